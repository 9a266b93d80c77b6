// The GPU kernels of an experiment as text: `gyrus emit --stage=cuda` (the generated
// CUDA C++) and `--stage=ptx` (NVRTC's PTX); see Nvrtc.h.
#include <functional>
#include <set>

#include "gyrus/kernel/Nvrtc.h"
#include "gyrus/kernel/Stages.h"

namespace gyrus::kir::cuda {

namespace {

/// Every distinct kernel program of `experiment`, as kir::printKernels enumerates them,
/// each as its header line and `body(program, hash)`.
std::string eachModule(const ir::Experiment& experiment,
                       const std::function<std::string(const Program&, const std::string&)>& body) {
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
        std::string module = body(segments[i].program, h);
        if (!module.empty() && module.back() != '\n') module += "\n";
        text += module;
      }
    }
  return text;
}

}  // namespace

std::string printPtx(const ir::Experiment& experiment, const std::string& arch) {
  const Nvrtc& nvrtc = Nvrtc::get();
  return eachModule(experiment, [&](const Program& program, const std::string& h) {
    return nvrtc.ptx(cudaSource(program), arch, "gyrus_" + h.substr(0, 16) + ".cu");
  });
}

std::string printCuda(const ir::Experiment& experiment) {
  return eachModule(experiment, [](const Program& program, const std::string&) { return cudaSource(program); });
}

}  // namespace gyrus::kir::cuda
