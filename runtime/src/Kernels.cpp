// Pipelines through the kernel IR (see Kernels.h).
#include "Kernels.h"

#include <stdexcept>

namespace gyrus::rt {

CompiledPipeline compilePipeline(const ir::Pipeline& pipeline, const kir::LowerOptions& options) {
  CompiledPipeline c;
  c.pipeline = pipeline;
  c.options = options;
  if (!pipeline.ops.empty()) c.segments = kir::lowerSegments(pipeline, options);
  return c;
}

Volume runPipeline(const CompiledPipeline& compiled, const Volume& in, uint64_t seed, uint32_t sample,
                   Volume* target) {
  if (compiled.segments.empty()) {
    if (target) *target = in;
    return in;
  }
  if (target != nullptr && !compiled.options.target)
    throw std::invalid_argument("runPipeline: the pipeline was compiled without a target");
  kir::Result r = kir::apply(compiled.segments, {in.shape, in.spacing}, in.data.data(), nullptr, seed, sample,
                             kernelRunner());
  Volume out;
  out.shape = r.grid.shape;
  out.spacing = r.grid.spacing;
  out.data = std::move(r.image);
  if (target) {
    target->shape = out.shape;
    target->spacing = out.spacing;
    target->data = std::move(r.target);
  }
  return out;
}

const kir::Runner& kernelRunner() {
  static const kir::Runner runner = kir::interpretKernel;
  return runner;
}

std::string kernelBackend() { return "reference interpreter"; }

}  // namespace gyrus::rt
