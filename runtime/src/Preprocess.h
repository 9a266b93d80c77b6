// Preprocessing operations on float volumes: centre crop / zero pad, z-score, and
// percentile clipping, plus the interpreter of an `ir::Pipeline`.
#pragma once

#include "Synth.h"
#include "gyrus/Ir.h"

namespace gyrus::rt {

/// Centre crop and/or zero pad each axis to `size`. Where the difference is odd, the
/// extra voxel is cropped from (or padded at) the high end.
Volume centerCropOrPad(const Volume& in, const ir::Shape3& size);

/// Z-scores the volume in place: (v - mean) / std. With `nonzeroOnly`, the statistics
/// are taken over non-zero voxels and zero voxels stay 0 (background of skull-stripped
/// images). A constant volume gets std 1 (only the mean is removed).
void zscore(Volume& v, bool nonzeroOnly);

/// Clips the volume in place to its [lo, hi] percentiles (lo, hi in [0, 1], linear
/// interpolation between order statistics like numpy's default `percentile`). The
/// percentiles are taken over non-zero voxels and zero voxels stay 0, so clipping never
/// lifts the background. Throws std::invalid_argument unless 0 <= lo <= hi <= 1.
void clipPercentiles(Volume& v, double lo, double hi);

/// Applies the operations of `pipeline` in order.
Volume applyPipeline(const ir::Pipeline& pipeline, Volume v);

}  // namespace gyrus::rt
