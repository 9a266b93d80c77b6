// The U-Net's norm + activation as one operation on the CPU: leaky_relu(instance_norm(x))
// with a hand-written forward and backward that read and write each voxel twice instead
// of the five passes (and the layout copies) of ATen's composition, in either memory
// format, so that channels-last convolutions (oneDNN's fast path) stay channels-last
// end to end. See docs/architecture.md, "The U-Net on a CPU".
#pragma once

#include <ATen/core/Tensor.h>

namespace gyrus::rt {

/// leaky_relu(instance_norm(x, gamma, beta, eps), slope) with its gradients for x,
/// gamma and beta, for x [N, C, D, H, W] float32 on the CPU, contiguous or
/// channels-last-3d (the result has x's layout; any other layout is made contiguous
/// first). The statistics are the biased per-(sample, channel) mean and variance, as
/// InstanceNorm3d's in training and evaluation alike (no running statistics).
/// Sums are taken in double in a fixed order, so the result does not depend on the
/// number of threads. Anything else (CUDA, bf16, ...) goes through ATen's composition.
///
/// Example:
///   auto y = instanceNormLeakyRelu(conv(x), norm->weight, norm->bias, 1e-5, 0.01);
at::Tensor instanceNormLeakyRelu(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, double eps,
                                 double slope);

/// The same through ATen's operations (torch::instance_norm, then torch::leaky_relu):
/// what instanceNormLeakyRelu falls back to, and the tests' reference.
at::Tensor instanceNormLeakyReluAten(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, double eps,
                                     double slope);

/// Whether instanceNormLeakyRelu runs the fused kernel for x (float32, 5-D, CPU), and
/// not ATen's composition; the environment's GYRUS_FUSED_NORM=0 turns it off.
bool fusedNormActApplies(const at::Tensor& x);

/// Whether the U-Net's convolutions on the CPU run channels-last (their weights are
/// handed to the convolution in channels-last order, so oneDNN needs no reorders and
/// its output is channels-last); GYRUS_CHANNELS_LAST=0 turns it off.
bool cpuChannelsLast();

/// A 1x1x1 convolution (the decoders' heads) of a channels-last CPU input as one matrix
/// product over the voxels (x's [N*D*H*W, C] rows times the weight), with the result in
/// channels-last order; other inputs go through torch::conv3d.
at::Tensor pointwiseConv3d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace gyrus::rt
