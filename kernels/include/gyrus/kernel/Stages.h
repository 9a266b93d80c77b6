// The kernels a stage of an experiment runs, as the runtime lowers them: what
// `gyrus emit --stage=kernel` prints and `gyrus plan` summarises.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

/// A pipeline cut before its first random operation: `prefix` is deterministic
/// (computed once per volume and cached); `suffix` starts with a random operation and
/// holds everything after it.
struct SplitPipeline {
  ir::Pipeline prefix;
  ir::Pipeline suffix;
};
SplitPipeline splitAtFirstRandom(const ir::Pipeline& pipeline);
/// The deterministic part of the pipeline (what evaluation applies): its random operations
/// left out, a random crop as the centre crop (ir::deterministicPart).
ir::Pipeline withoutRandomOps(const ir::Pipeline& pipeline);

/// One pipeline a stage runs, and how it is lowered.
struct StageKernel {
  std::string stage;  ///< the stage's name
  std::string role;   ///< "prefix" (per volume, cached) or "views" (per sample)
  ir::Pipeline pipeline;
  LowerOptions options;
};
/// Pretraining: its prefix, and its views (with the reconstruction target when the
/// objective has a MAE term) when the pipeline has random operations. Evaluation: the
/// pipeline without random operations (with a mask for a segmentation label).
std::vector<StageKernel> stageKernels(const ir::Stage& stage);

/// How `printKernels` prints: the comment marker of its headings and the text of one
/// program (the canonical print; `gyrus emit --stage=llvm`: the optimised LLVM IR).
struct KernelPrinter {
  std::string comment = "//";
  std::function<std::string(const Program&)> program = [](const Program& p) { return print(p); };
};

/// How `experiment`'s pipelines compile: the distinct kernel programs, and the operations
/// (with their stage) that do not lower to a kernel and so would not be fused (none
/// while every registry operation has a lowering: `gyrus plan` says so).
struct FusionSummary {
  size_t programs = 0;
  std::vector<std::string> unfused;  ///< "op (stage name, role)"
};
FusionSummary summarizeFusion(const ir::Experiment& experiment);

/// Every kernel of `experiment` as text: per stage and role, the pipeline and the
/// canonical print of each segment with its hash. Kernels that two stages share are
/// printed once (the second names the first).
std::string printKernels(const ir::Experiment& experiment, const KernelPrinter& printer = {});

}  // namespace gyrus::kir
