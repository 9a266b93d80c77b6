// The PTX of every GPU kernel of an experiment (`gyrus emit --stage=ptx`; see Nvrtc.h).
#include <set>

#include "gyrus/kernel/Nvrtc.h"
#include "gyrus/kernel/Stages.h"

namespace gyrus::kir::cuda {

std::string printPtx(const ir::Experiment& experiment, const std::string& arch) {
  const Nvrtc& nvrtc = Nvrtc::get();
  std::string text;
  std::set<std::string> printed;
  for (const ir::Stage& stage : experiment.stages)
    for (const StageKernel& k : stageKernels(stage)) {
      std::vector<Kernel> segments = lowerSegments(k.pipeline, k.options);
      for (size_t i = 0; i < segments.size(); ++i) {
        const std::string h = hash(segments[i].program);
        if (!printed.insert(h).second) continue;
        text += "// kernel " + h.substr(0, 16) + " " + k.stage + " " + k.role;
        if (segments.size() > 1) text += " segment " + std::to_string(i + 1) + "/" + std::to_string(segments.size());
        text += "\n";
        CudaModule m = cudaModule(segments[i].program);
        std::string ptx = nvrtc.ptx(m.source, arch, "gyrus_" + h.substr(0, 16) + ".cu");
        if (!ptx.empty() && ptx.back() != '\n') ptx += "\n";
        text += ptx;
      }
    }
  return text;
}

}  // namespace gyrus::kir::cuda
