// The kernels a stage runs (see Stages.h).
#include "gyrus/kernel/Stages.h"

#include <algorithm>
#include <map>
#include <set>

namespace gyrus::kir {

SplitPipeline splitAtFirstRandom(const ir::Pipeline& pipeline) {
  auto first = std::find_if(pipeline.ops.begin(), pipeline.ops.end(),
                            [](const ir::PipelineOp& op) { return op.isRandom(); });
  SplitPipeline split;
  split.prefix.ops.assign(pipeline.ops.begin(), first);
  split.suffix.ops.assign(first, pipeline.ops.end());
  return split;
}

ir::Pipeline withoutRandomOps(const ir::Pipeline& pipeline) {
  ir::Pipeline out;
  for (const ir::PipelineOp& op : pipeline.ops)
    if (ir::PipelineOp part; ir::deterministicPart(op, part)) out.ops.push_back(std::move(part));
  return out;
}

std::vector<StageKernel> stageKernels(const ir::Stage& stage) {
  std::vector<StageKernel> out;
  if (stage.kind == ir::StageKind::Pretrain) {
    const ir::PretrainStage& p = stage.pretrain;
    SplitPipeline split = splitAtFirstRandom(p.pipeline);
    out.push_back({stage.name, "prefix", split.prefix, {}});
    if (!split.suffix.ops.empty()) {
      LowerOptions views;
      views.target = std::any_of(p.objective.terms.begin(), p.objective.terms.end(),
                                 [](const ir::ObjectiveTerm& t) { return t.kind == ir::ObjectiveKind::Mae; });
      out.push_back({stage.name, "views", split.suffix, views});
    }
  } else {
    const ir::EvaluateStage& e = stage.evaluate;
    LowerOptions o;
    o.mask = e.labelKind == ir::LabelKind::Mask;
    out.push_back({stage.name, "prefix", withoutRandomOps(e.pipeline), o});
  }
  return out;
}

FusionSummary summarizeFusion(const ir::Experiment& experiment) {
  FusionSummary summary;
  std::set<std::string> hashes, unfused;
  for (const ir::Stage& stage : experiment.stages)
    for (const StageKernel& k : stageKernels(stage)) {
      for (const ir::PipelineOp& op : k.pipeline.ops)
        if (!canLower(op)) unfused.insert(op.name + " (stage " + k.stage + ", " + k.role + ")");
      ir::Pipeline lowerable;
      for (const ir::PipelineOp& op : k.pipeline.ops)
        if (canLower(op)) lowerable.ops.push_back(op);
      for (const Kernel& kernel : lowerSegments(lowerable, k.options)) hashes.insert(hash(kernel.program));
    }
  summary.programs = hashes.size();
  summary.unfused.assign(unfused.begin(), unfused.end());
  return summary;
}

std::string printKernels(const ir::Experiment& experiment, const KernelPrinter& printer) {
  const std::string c = printer.comment + " ";
  std::string text;
  std::map<std::string, std::string> printed;  // hash -> where it was printed first
  for (const ir::Stage& stage : experiment.stages)
    for (const StageKernel& k : stageKernels(stage)) {
      std::string where = "stage " + k.stage + ", " + k.role;
      text += c + where + ": " + (k.pipeline.ops.empty() ? std::string("(no operation)") : ir::print(k.pipeline));
      if (k.options.target) text += ", with the reconstruction target";
      if (k.options.mask) text += ", with the mask";
      text += "\n";
      std::vector<Kernel> segments = lowerSegments(k.pipeline, k.options);
      for (size_t i = 0; i < segments.size(); ++i) {
        std::string h = hash(segments[i].program);
        std::string label = segments.size() > 1 ? "segment " + std::to_string(i + 1) + " of " + std::to_string(segments.size()) + ", " : "";
        auto [it, fresh] = printed.emplace(h, where);
        if (!fresh) {
          text += c + label + "kernel " + h.substr(0, 16) + ": as " + it->second + "\n";
          continue;
        }
        text += c + label + "kernel " + h.substr(0, 16) + "\n" + printer.program(segments[i].program);
      }
      text += "\n";
    }
  return text;
}

}  // namespace gyrus::kir
