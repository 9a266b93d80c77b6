// Pipelines through the kernel IR (see Kernels.h).
#include "Kernels.h"

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "gyrus/kernel/Jit.h"

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

namespace {

/// The back end of this process: the reference interpreter, or with
/// GYRUS_KERNEL_BACKEND=llvm the LLVM JIT (the module libgyrus_kernel_llvm.so, loaded
/// on first use; one thread per call: callers run volumes in parallel themselves).
struct Backend {
  kir::Runner runner = kir::interpretKernel;
  std::string name = "reference interpreter";
  std::unique_ptr<kir::Jit> jit;
};

const Backend& backend() {
  static const Backend chosen = [] {
    Backend b;
    const char* want = std::getenv("GYRUS_KERNEL_BACKEND");
    if (want == nullptr || *want == '\0' || std::string_view(want) == "interpreter") return b;
    if (std::string_view(want) != "llvm")
      throw std::invalid_argument(std::string("GYRUS_KERNEL_BACKEND is 'interpreter' or 'llvm', not '") + want + "'");
    std::string error;
    b.jit = kir::loadJit(error);
    if (!b.jit) throw std::runtime_error("GYRUS_KERNEL_BACKEND=llvm: " + error);
    b.runner = b.jit->runner();
    b.name = "LLVM JIT";
    return b;
  }();
  return chosen;
}

}  // namespace

const kir::Runner& kernelRunner() { return backend().runner; }

std::string kernelBackend() { return backend().name; }

}  // namespace gyrus::rt
