// Preprocessing operations on float volumes: centre crop / zero pad, z-score,
// percentile clipping and trilinear resampling to an isotropic voxel size; the random
// augmentations (flip, Gaussian noise, gamma), which
// take an explicit Rng so a view is a function of the generator's seed; and the
// interpreters of an `ir::Pipeline`.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "gyrus/clinic/Random.h"
#include "gyrus/clinic/Synth.h"
#include "gyrus/Ir.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Philox.h"
#include "gyrus/kernel/Stages.h"

namespace gyrus::rt {

/// Centre crop and/or zero pad each axis to `size`. Where the difference is odd, the
/// extra voxel is cropped from (or padded at) the high end.
Volume centerCropOrPad(const Volume& in, const ir::Shape3& size);
/// Crops and/or zero pads to `size`, output voxel j reading input voxel j + offset[a]
/// per axis (0 where that is outside the input): centerCropOrPad with the offsets
/// (n - size) / 2.
Volume cropOrPadAt(const Volume& in, const ir::Shape3& size, const std::array<int64_t, 3>& offset);
/// A random patch's offsets (`crop(size, random = true)`): per axis uniform over
/// 0 .. n - size (whole voxels, the patch inside the volume), or the centre crop's
/// (n - size) / 2 where the volume is smaller than the patch.
std::array<int64_t, 3> randomCropOffsets(const ir::Shape3& in, const ir::Shape3& size, Rng& rng);

/// Z-scores the volume in place: (v - mean) / std. With `nonzeroOnly`, the statistics
/// are taken over non-zero voxels and zero voxels stay 0 (background of skull-stripped
/// images). A constant volume gets std 1 (only the mean is removed).
void zscore(Volume& v, bool nonzeroOnly);

/// Clips the volume in place to its [lo, hi] percentiles (lo, hi in [0, 1], linear
/// interpolation between order statistics like numpy's default `percentile`). The
/// percentiles are taken over non-zero voxels and zero voxels stay 0, so clipping never
/// lifts the background. Throws std::invalid_argument unless 0 <= lo <= hi <= 1.
void clipPercentiles(Volume& v, double lo, double hi);

/// The shape `resample(v, mm)` gives a volume of `shape` and `spacing` (mm per axis):
/// round(shape[i] * spacing[i] / mm) per axis, at least 1 (one formula, in the IR library,
/// which the checker and the planner use too).
using ir::resampledShape;

/// Trilinear resampling to isotropic voxels of `mm` millimetres (the output's spacing).
/// The output shape is resampledShape(in.shape, in.spacing, mm); the physical centre of
/// the field of view stays where it was: output voxel j of an axis samples the input at
/// index c_in + (j - c_out) * mm / spacing, c = (n - 1) / 2, clamped to the volume
/// (edge values extend outwards, so a constant volume stays constant). An axis whose
/// spacing already is `mm` and whose size does not change is copied exactly. Separable:
/// one linear pass per axis, in single precision. Throws std::invalid_argument unless
/// mm > 0 and every spacing is positive.
///
/// Example:
///   Volume v = Volume::zeros({10, 10, 10});
///   v.spacing = {2.0, 2.0, 2.0};
///   Volume w = resample(v, 1.0);  // 20^3, spacing 1 mm
Volume resample(const Volume& in, double mm);
/// As `resample`, with a separable cubic (Catmull-Rom) kernel instead of the linear one
/// (`resample(cubic = true)`): output voxel j of an axis blends the four input voxels
/// floor(pos) - 1 .. floor(pos) + 2 around the same clamped position, those outside the
/// volume counting as 0, in double precision per axis (Kernel.h's Interp::Cubic).
Volume resampleCubic(const Volume& in, double mm);
/// The Catmull-Rom weights of the four neighbours floor(p) - 1 .. floor(p) + 2 at
/// fraction t = p - floor(p), in double precision.
std::array<double, 4> catmullRom(double t);

/// Nearest-neighbour resampling on the grid of `resample(in, mm)` (same output shape,
/// spacing and centre): output voxel j of an axis takes input voxel round(pos), pos
/// being the (clamped) position `resample` interpolates at, halves rounded up. Values
/// are copied, never blended, so a {0, 1} mask stays a {0, 1} mask (used for masks and
/// label maps). An axis whose spacing already is `mm` and whose size does not change is
/// copied exactly. Throws std::invalid_argument unless mm > 0 and every spacing is
/// positive.
Volume resampleNearest(const Volume& in, double mm);

/// Binarises a mask in place: 1 where the value is above 0.5, else 0.
void binarize(Volume& mask);

/// The axes (x, y, z) a flip mirrors.
using FlipAxes = std::array<bool, 3>;

/// Mirrors the volume in place along every axis i with `axes[i]` (an involution).
void mirror(Volume& v, const FlipAxes& axes);

/// Draws the axes of a random flip: each axis independently with probability `p`
/// (three draws, x first). Throws std::invalid_argument unless 0 <= p <= 1.
FlipAxes drawFlip(double p, Rng& rng);

/// Adds N(0, sigma^2) noise (intensity units) to every non-zero voxel in place; zero
/// voxels (the background of skull-stripped images) stay 0. Throws
/// std::invalid_argument unless sigma >= 0.
void addNoise(Volume& v, double sigma, Rng& rng);

/// Gamma transform of the non-zero (head) voxels in place, nnU-Net style: min-max
/// normalise them to [0, 1], raise to `gamma`, map back to the original [min, max]
/// (so it works on z-scored data with negative values). The extremes are kept, zero
/// voxels stay 0, a constant head is unchanged. Throws std::invalid_argument unless
/// gamma > 0.
void gammaTransform(Volume& v, double gamma);

/// The range [lo, hi] of the non-zero (head) voxels; false when there are none or they
/// are all equal (gamma leaves such a volume alone).
bool headRange(const Volume& v, float& lo, float& hi);

/// Draws an exponent uniformly in [lo, hi] (one draw) and applies gammaTransform;
/// returns the exponent. Throws std::invalid_argument unless 0 < lo <= hi.
double randomGamma(Volume& v, double lo, double hi, Rng& rng);

/// Gamma as gammaTransform, or inverted (1 - (1 - t)^gamma on the min-max normalised
/// head voxels t) when `invert`.
void gammaTransform(Volume& v, double gamma, bool invert);

// ---- The FOMO25 baseline's augmentations (Augment.cpp): each as a function of its drawn
// values, straightforward code that the kernel lowering is tested against. ------------

/// A 3x3 matrix, row-major.
using Matrix3 = std::array<std::array<double, 3>, 3>;
/// The rotation Rz Ry Rx by the angles (radians) about x, y and z.
Matrix3 rotationMatrix(const std::array<double, 3>& radians);
/// Resamples on the same grid at positions A (j - c) + c, c = (n - 1) / 2 per axis:
/// trilinear (0 outside), or nearest (floor(p + 1/2)) for masks, or with `cubic`
/// tricubic (Catmull-Rom, neighbours outside the volume 0; double precision).
Volume warpAboutCentre(const Volume& in, const Matrix3& a, bool nearest = false, bool cubic = false);
/// batchgenerators' dense elastic displacement: per axis, alpha times U(-1, 1) noise
/// filtered by a Gaussian of `sigma` voxels (truncated at 4 sigma, zero outside the
/// volume: scipy's mode 'constant'). Three volumes of `shape` (x, y, z components).
std::array<Volume, 3> denseElasticField(const ir::Shape3& shape, double alpha, double sigma, Rng& rng);
/// The kernel's coarse elastic displacement (kir::elasticField: kElasticPoints^3 control
/// points spanning the grid, drawn from `d`), interpolated trilinearly at every voxel of
/// `shape` in double precision. The runtime's op-by-op path uses it (the dense field costs
/// seconds per 96^3 patch).
std::array<Volume, 3> coarseElasticField(const ir::Shape3& shape, double alpha, double sigma, kir::Draws& d);
/// Samples `in` at j + d(j) (trilinear, 0 outside; nearest for masks; tricubic with `cubic`).
Volume displace(const Volume& in, const std::array<Volume, 3>& d, bool nearest = false, bool cubic = false);
/// scipy.ndimage.gaussian_filter(v, sigma) with its defaults (truncate 4, 'reflect').
void gaussianBlur(Volume& v, double sigma);
/// Multiplicative noise v (1 + sigma n), n standard normal per voxel.
void mulNoise(Volume& v, double sigma, Rng& rng);
/// Motion ghosting along `axis`: the planes 0, k, 2k, ... of the centred 1-D spectrum
/// (fftshift) scaled by alpha, the real part of the inverse (a direct DFT per line).
void ghosting(Volume& v, int axis, int64_t every, double alpha);
/// Gibbs ringing along `axis`: frequencies f with 2 |f| > cut n removed, the real part
/// of the inverse (a direct DFT per line).
void ringing(Volume& v, int axis, double cut);
/// Low resolution: nearest-neighbour down to round(n z) per axis, then trilinear back up
/// (scipy's zoom with order 0, then order 1); an axis of zoom 1 is kept.
void lowres(Volume& v, const std::array<double, 3>& zoom);
/// The bias field exp(-strength / 4 Σ (u - c)^2), u the voxel's position in [-1, 1]
/// per axis, c the centre (in [-1, 1]).
void biasField(Volume& v, const std::array<double, 3>& centre, double strength);
/// Scales the head voxels about their mean by `factor`, then clamps them to their former
/// [min, max] (nnU-Net's contrast with preserve_range).
void contrast(Volume& v, double factor);

/// The reference implementation of one pipeline operation, keyed by its registry name
/// (gyrus/PipelineOps.def) in one table: every pipeline function below reads it instead
/// of switching on the operation, and reads the operation's parameters by name. Whether
/// an operation is random, and its effect on the grid, are the registry's.
struct OpImpl {
  std::string_view name;  ///< the registry's name
  /// Applies the operation to `input` and, when given, to the view's reconstruction
  /// target (see applyAugmentations): deterministic and spatial operations act on it too
  /// (a random spatial one with the same draw), intensity augmentations do not. `rng`
  /// may be null for deterministic operations.
  void (*apply)(const ir::PipelineOp& op, Volume& input, Volume* target, Rng* rng) = nullptr;
  /// Deterministic spatial operations: the same operation on a segmentation mask
  /// (nearest-neighbour); null for intensity operations, which leave a mask alone.
  Volume (*mask)(const ir::PipelineOp& op, Volume mask) = nullptr;
};
/// Every implementation, one per registry operation.
const std::vector<OpImpl>& opImpls();
/// The implementation of operation `name`, or nullptr.
const OpImpl* findOpImpl(std::string_view name);

/// Applies the operations of `pipeline` in order. Throws std::invalid_argument on a
/// random operation (those need an Rng: see applyAugmentations).
Volume applyPipeline(const ir::Pipeline& pipeline, Volume v);

/// Applies the spatial operations of `pipeline` to a mask, in order, so that it stays
/// on the grid of the images the whole pipeline preprocesses: Crop (zero padding, as
/// for images) and Resample (nearest-neighbour, see resampleNearest); the intensity
/// operations (ZScore, Clip) leave a mask alone. Throws std::invalid_argument on a
/// random operation (evaluation pipelines have none).
Volume applySpatialOps(const ir::Pipeline& pipeline, Volume mask);

/// The deterministic prefix and random suffix of a pipeline, and a pipeline without its
/// random operations: the kernel compiler's (gyrus/kernel/Stages.h), one definition.
using kir::SplitPipeline;
using kir::splitAtFirstRandom;
using kir::withoutRandomOps;

/// The spatial shape `pipeline` produces from an input of shape `in` and voxel size
/// `spacing` (mm): each operation's registry shape effect (Resample changes both, Crop
/// sets the shape).
using ir::outputShape;

/// Makes one stochastic view: applies every operation of `pipeline` in order to
/// `input`, random ones with draws from `rng`. When `target` is given it must hold the
/// same image as `input` on entry; it becomes the view's reconstruction target (AMAES):
/// spatial operations (Flip with the same axes, Crop, Resample) and deterministic ones (ZScore,
/// Clip, computed on the target itself) apply to it too, intensity augmentations
/// (Noise, Gamma) do not, so the target is the clean image in the view's geometry.
/// The draws do not depend on whether `target` is given.
void applyAugmentations(const ir::Pipeline& pipeline, Volume& input, Volume* target, Rng& rng);

}  // namespace gyrus::rt
