// Pipelines on a GPU: the kernel programs of a compiled pipeline (Kernels.h) run on
// device tensors by the CUDA back end (gyrus/kernel/CudaLaunch.h: NVRTC's CUBIN
// launched with the driver API on LibTorch's current stream). The passes without a
// generated kernel run here as LibTorch operations on the same stream: percentiles
// (a sort, numpy's linear interpolation, written into the device slot block); stencils
// (blur, ghosting, ringing, low resolution) for now as the CPU routine on a host copy
// of the buffer (kir::runStencil: correct, not fast; GPU routines are still to come).
//
// Status: compiled, not yet run on a GPU (tests/runtime/CudaKernelsTest.cpp exits 77
// without one).
#pragma once

#include <torch/types.h>

#include "Kernels.h"

namespace gyrus::rt {

/// A pipeline's result on the device: float32 tensors of shape [z, y, x] (x fastest, as
/// Volume::data) on the input's device; `target` and `mask` undefined unless compiled
/// with them.
struct DeviceResult {
  kir::Grid grid;
  torch::Tensor image, target, mask;
};

/// Applies `compiled` to one volume on a CUDA device: `image` (and `mask`, for a
/// pipeline compiled with one) float32 [z, y, x] on the device, `grid` their shape and
/// spacing. Asynchronous on the device's current CUDA stream; draws keyed by `seed`
/// and `sample`, the same as runPipeline's. Programs are compiled and loaded once per
/// process and device (cached CUBINs, Nvrtc.h); calls must come from one thread at a
/// time per device (the programs' slot blocks are shared).
DeviceResult runPipelineCuda(const CompiledPipeline& compiled, const torch::Tensor& image, const kir::Grid& grid,
                             const torch::Tensor* mask, uint64_t seed, uint32_t sample);

/// The name of this back end for logs and result.json.
std::string cudaKernelBackend();

}  // namespace gyrus::rt
