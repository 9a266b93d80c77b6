// The kernel IR run as eager LibTorch operations, one tensor operation after another:
// the coordinate program on whole coordinate tensors, grid_sample for the interpolation,
// the pointwise chains and statistics as tensor expressions. It is what a PyTorch user
// writes by hand for the same pipeline, so `gyrus bench augment` compares the fused
// kernels against it ("eager_torch_patches_per_s"); it runs on any device the tensors
// are on. Per-voxel noise comes from LibTorch's generator (not Philox): the same
// distribution, not the same values as the other back ends.
#pragma once

#include <torch/types.h>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::rt {

/// The buffers of one program, as [z, y, x] float tensors on one device: sources on the
/// binding's `in` grid, outputs on its `out` grid (undefined where the program does not
/// write them). Outputs are allocated by the call.
struct EagerBuffers {
  torch::Tensor image, mask, target;  ///< sources (target: a later segment's)
  torch::Tensor outImage, outTarget, outMask;
};

/// Runs `kernel` on `binding` (reductions fill its slots). Stencil passes run on the
/// host through kir::runStencil (the tensors are moved there and back).
void runEager(const kir::Kernel& kernel, kir::Binding& binding, EagerBuffers& buffers);

}  // namespace gyrus::rt
