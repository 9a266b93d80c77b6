// Pipelines as the runtime runs them: lowered once to the kernel IR (gyrus/kernel/), then
// applied to volume after volume by one back end. Every preprocessing and augmentation
// of the runtime goes through here: the cached prefix of each volume, its mask, and the
// views of every training step.
#pragma once

#include <string>
#include <vector>

#include "gyrus/clinic/Synth.h"
#include "gyrus/kernel/Kernel.h"

namespace gyrus::rt {

/// A pipeline lowered for the runtime (see kir::lowerSegments).
struct CompiledPipeline {
  ir::Pipeline pipeline;
  kir::LowerOptions options;
  std::vector<kir::Kernel> segments;  ///< empty for a pipeline without operations
};

/// Lowers `pipeline` with `options`. Throws std::invalid_argument for an operation
/// without a lowering.
CompiledPipeline compilePipeline(const ir::Pipeline& pipeline, const kir::LowerOptions& options = {});

/// Applies a compiled pipeline to one volume (draws keyed by `seed` and `sample`): the
/// result on the pipeline's output grid; `target`, when the pipeline was compiled with
/// a target, receives it. A pipeline without operations returns its input.
Volume runPipeline(const CompiledPipeline& compiled, const Volume& in, uint64_t seed = 0, uint32_t sample = 0,
                   Volume* target = nullptr);

/// The back end that runs kernel programs in this process, and its name for logs and
/// result.json: the reference interpreter ("reference interpreter"), or with
/// GYRUS_KERNEL_BACKEND=llvm the LLVM JIT ("LLVM JIT"; docs/kernels.md). Throws when
/// GYRUS_KERNEL_BACKEND names another back end or the JIT's module cannot be loaded.
const kir::Runner& kernelRunner();
std::string kernelBackend();

}  // namespace gyrus::rt
