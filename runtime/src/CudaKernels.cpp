// Pipelines on a GPU (see CudaKernels.h).
#include "CudaKernels.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "gyrus/kernel/CudaLaunch.h"

namespace gyrus::rt {

namespace {

torch::Tensor deviceVolume(const kir::Grid& grid, const torch::Device& device) {
  return torch::empty({grid.shape[2], grid.shape[1], grid.shape[0]},
                      torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

/// The loaded program of `program` on `device`, loaded on first use.
kir::cuda::DeviceProgram& deviceProgram(const kir::Program& program, int device) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, int>, std::unique_ptr<kir::cuda::DeviceProgram>> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(kir::hash(program), device);
  auto it = loaded.find(key);
  if (it == loaded.end()) it = loaded.emplace(key, std::make_unique<kir::cuda::DeviceProgram>(program)).first;
  return *it->second;
}

/// The q-quantile of sorted values (double), numpy's linear interpolation: what
/// kir::runReduce computes, as a 1-element tensor.
torch::Tensor linearQuantile(const torch::Tensor& sorted, double q) {
  const int64_t count = sorted.numel();
  const double pos = q * static_cast<double>(count - 1);
  const auto k = static_cast<int64_t>(std::floor(pos));
  torch::Tensor a = sorted.narrow(0, k, 1);
  if (k + 1 >= count) return a;
  torch::Tensor next = sorted.narrow(0, k + 1, 1);
  return a + (next - a) * (pos - static_cast<double>(k));
}

/// The passes without a generated kernel, as LibTorch operations on the current stream.
void libraryPass(const kir::Program& program, const kir::Pass& pass, void* deviceSlots,
                 const kir::cuda::DeviceBuffers& buffers, const kir::Grid& out, const torch::Device& device) {
  const auto floats = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  if (pass.kind == kir::PassKind::Reduce && pass.reduce.op == kir::ReduceOp::Percentiles) {
    const int64_t n = out.shape[0] * out.shape[1] * out.shape[2];
    torch::Tensor data = torch::from_blob(buffers.of(pass.buffer), {n}, floats);
    torch::Tensor values = pass.reduce.nonzero ? data.masked_select(data != 0) : data;
    torch::Tensor slots = torch::from_blob(deviceSlots, {program.slots}, floats);
    torch::Tensor two = slots.narrow(0, pass.reduce.out, 2);
    if (values.numel() == 0) {
      two.zero_();
      return;
    }
    torch::Tensor sorted = std::get<0>(values.to(torch::kFloat64).sort());
    two.copy_(torch::cat({linearQuantile(sorted, pass.reduce.q0), linearQuantile(sorted, pass.reduce.q1)}).to(torch::kFloat32));
    return;
  }
  // A stencil: the CPU routine (kir::runStencil) on a host copy, for now. The slots are
  // read back from the device (the pass's switch and arguments may be any slot).
  const int64_t n = out.shape[0] * out.shape[1] * out.shape[2];
  torch::Tensor hostSlots = torch::from_blob(deviceSlots, {program.slots}, floats).to(torch::kCPU).contiguous();
  std::vector<float> slots(hostSlots.data_ptr<float>(), hostSlots.data_ptr<float>() + program.slots);
  if (kir::valueOf(pass.stencil.enabled, slots) == 0.0f) return;
  torch::Tensor data = torch::from_blob(buffers.of(pass.buffer), {n}, floats);
  torch::Tensor host = data.to(torch::kCPU).contiguous();
  kir::runStencil(pass.stencil, host.data_ptr<float>(), out.shape, slots);
  data.copy_(host);
}

}  // namespace

DeviceResult runPipelineCuda(const CompiledPipeline& compiled, const torch::Tensor& image, const kir::Grid& grid,
                             const torch::Tensor* mask, uint64_t seed, uint32_t sample) {
  if (!image.is_cuda() || image.scalar_type() != torch::kFloat32 || !image.is_contiguous())
    throw std::invalid_argument("runPipelineCuda: the image must be a contiguous float32 CUDA tensor");
  if (image.numel() != grid.shape[0] * grid.shape[1] * grid.shape[2])
    throw std::invalid_argument("runPipelineCuda: the image does not have the grid's shape");
  const torch::Device device = image.device();
  c10::cuda::CUDAGuard guard(device);
  DeviceResult r;
  r.grid = grid;
  r.image = image;
  if (compiled.options.target) r.target = image;
  if (compiled.options.mask) {
    if (mask == nullptr) throw std::invalid_argument("runPipelineCuda: the pipeline carries a mask; none given");
    r.mask = mask->to(torch::kFloat32).contiguous();
  }
  torch::Tensor targetSource;  // a later segment's target source
  for (size_t i = 0; i < compiled.segments.size(); ++i) {
    const kir::Kernel& k = compiled.segments[i];
    kir::Binding b = kir::bind(k, r.grid, seed, sample);
    DeviceResult next;
    next.grid = b.out;
    next.image = deviceVolume(b.out, device);
    if (k.program.hasTarget) next.target = deviceVolume(b.out, device);
    if (k.program.hasMask) next.mask = deviceVolume(b.out, device);
    kir::cuda::DeviceBuffers buffers;
    buffers.image = r.image.data_ptr();
    buffers.target = i > 0 && r.target.defined() ? r.target.data_ptr() : nullptr;
    buffers.mask = r.mask.defined() ? r.mask.data_ptr() : nullptr;
    buffers.outImage = next.image.data_ptr();
    buffers.outTarget = next.target.defined() ? next.target.data_ptr() : nullptr;
    buffers.outMask = next.mask.defined() ? next.mask.data_ptr() : nullptr;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
    kir::cuda::DeviceProgram& program = deviceProgram(k.program, device.index());
    const kir::Grid out = b.out;
    program.run(b, buffers, stream,
                [&](const kir::Pass& pass, int, void* slots, const kir::cuda::DeviceBuffers& buf, void*) {
                  libraryPass(k.program, pass, slots, buf, out, device);
                });
    // The next segment reads this one's outputs; the binding's host slots may go now
    // (run copies them before it returns).
    r = std::move(next);
  }
  return r;
}

std::string cudaKernelBackend() { return "CUDA (NVRTC, sm_90 CUBIN)"; }

}  // namespace gyrus::rt
