// Pipelines through the kernel IR (see Kernels.h).
#include "Kernels.h"

#include <cstdlib>
#include <memory>
#include <cstdio>
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

/// The back end of this process: the LLVM JIT (the module libgyrus_kernel_llvm.so,
/// loaded on first use; one thread per call: callers run volumes in parallel
/// themselves), or the reference interpreter. GYRUS_KERNEL_BACKEND=llvm requires the
/// JIT, =interpreter forces the interpreter; unset, the JIT is used when its module
/// loads, else the interpreter, with a warning (it is several times slower).
struct Backend {
  kir::Runner runner = kir::interpretKernel;
  std::string name = "reference interpreter";
  std::unique_ptr<kir::Jit> jit;
};

const Backend& backend() {
  static const Backend chosen = [] {
    Backend b;
    const char* env = std::getenv("GYRUS_KERNEL_BACKEND");
    const std::string_view want = env != nullptr ? env : "";
    if (want == "interpreter") return b;
    if (!want.empty() && want != "llvm")
      throw std::invalid_argument(std::string("GYRUS_KERNEL_BACKEND is 'interpreter' or 'llvm', not '") + env + "'");
    std::string error;
    b.jit = kir::loadJit(error);
    if (!b.jit) {
      if (want == "llvm") throw std::runtime_error("GYRUS_KERNEL_BACKEND=llvm: " + error);
      std::fprintf(stderr,
                   "warning: %s: pipelines run on the reference interpreter, several times slower "
                   "(GYRUS_KERNEL_BACKEND=interpreter silences this)\n",
                   error.c_str());
      return b;
    }
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
