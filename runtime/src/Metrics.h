// Evaluation metrics with the conventions of the FOMO25 scoring code: AUROC as
// scikit-learn's roc_auc_score (ties count one half), Pearson r as scipy's pearsonr,
// mean absolute error; for segmentation, Dice of binary masks and the normalised
// surface Dice (NSD, Nikolov et al. 2021) at a tolerance in millimetres, with an exact
// Euclidean distance transform on anisotropic voxels.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::rt {

/// Area under the ROC curve of `scores` for binary `labels` (0 / 1), tie-aware (equal
/// scores count 1/2, as scikit-learn's roc_auc_score). Returns NaN when only one class
/// is present (scikit-learn raises). Throws std::invalid_argument on a size mismatch,
/// an empty input, or a label other than 0 / 1.
double auroc(std::span<const double> scores, std::span<const int> labels);

/// Mean absolute error. Throws std::invalid_argument on a size mismatch or empty input.
double meanAbsoluteError(std::span<const double> predicted, std::span<const double> target);

/// Pearson correlation coefficient (scipy.stats.pearsonr's statistic). Returns NaN when
/// either input is constant (scipy warns and returns nan). Throws
/// std::invalid_argument on a size mismatch or fewer than 2 values.
double pearsonR(std::span<const double> x, std::span<const double> y);

/// Mean and population standard deviation (ddof = 0, numpy's default).
struct MeanStd {
  double mean = 0.0;
  double std = 0.0;
};
MeanStd meanStd(std::span<const double> values);

// Segmentation metrics. A mask is one byte per voxel, x fastest (data[x + nx * (y + ny *
// z)], as Volume), non-zero inside; `spacing` is the voxel size in mm per axis (x, y, z).

/// Dice coefficient 2|A n B| / (|A| + |B|). Both masks empty: 1.0 (nothing to find, and
/// nothing was found: a perfect answer, the convention of the FOMO25 scoring code and of
/// nnU-Net's evaluation); exactly one empty: 0.0. Throws std::invalid_argument when the
/// sizes differ.
double dice(std::span<const uint8_t> a, std::span<const uint8_t> b);

/// The surface of a mask: voxels inside it with at least one of their 6 face
/// neighbours outside it. Voxels beyond the volume's edge count as outside, so a mask
/// touching the edge has its surface there. Returns one byte per voxel (1 on the
/// surface). Throws std::invalid_argument when mask.size() is not the shape's volume.
std::vector<uint8_t> surfaceVoxels(std::span<const uint8_t> mask, const ir::Shape3& shape);

/// Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012,
/// separable: one lower envelope of parabolas per axis): for every voxel, the squared
/// distance in mm^2 between its centre and the centre of the nearest voxel with
/// `features` non-zero, voxel centres lying `spacing` apart per axis. +infinity
/// everywhere when there is no feature voxel. Equals the square of scipy's
/// distance_transform_edt(features == 0, sampling=spacing) up to rounding.
std::vector<double> squaredDistanceTransform(std::span<const uint8_t> features, const ir::Shape3& shape,
                                             const std::array<double, 3>& spacing);

/// Normalised surface Dice at tolerance `toleranceMm` (Nikolov et al.): with S_a, S_b
/// the surfaces of the masks (surfaceVoxels) and d the Euclidean distance between voxel
/// centres (mm),
///   NSD = (|{s in S_a : d(s, S_b) <= tau}| + |{s in S_b : d(s, S_a) <= tau}|) / (|S_a| + |S_b|),
/// counting surface voxels (not surface areas). Distances equal to tau count as within
/// it (up to a relative 1e-9, so that tau = 0.8 holds a neighbour 0.8 mm away whatever
/// the rounding). Both masks empty: 1.0; exactly one empty: 0.0. Throws
/// std::invalid_argument on a size mismatch, a non-positive spacing or a negative or
/// non-finite tolerance.
double normalizedSurfaceDice(std::span<const uint8_t> a, std::span<const uint8_t> b, const ir::Shape3& shape,
                             const std::array<double, 3>& spacing, double toleranceMm);

/// The 95th percentile Hausdorff distance (mm) between two masks, as medpy's hd95: the
/// distances from every surface voxel of `a` to the surface of `b` and from every
/// surface voxel of `b` to the surface of `a` (surfaceVoxels, voxel centres, exact
/// Euclidean distance at `spacing`) pooled into one list, then its 95th percentile with
/// linear interpolation (numpy.percentile's default). Both masks empty: 0.0; exactly
/// one empty: the length of the volume's diagonal, sqrt(sum((n_i * spacing_i)^2)), the
/// largest distance the image can hold (so a missed or invented lesion is penalised
/// and a mean over cases stays finite). Throws std::invalid_argument on a size
/// mismatch or a non-positive spacing.
double hausdorff95(std::span<const uint8_t> a, std::span<const uint8_t> b, const ir::Shape3& shape,
                   const std::array<double, 3>& spacing);

/// The q-th percentile (0..100) of `values` with linear interpolation between the
/// closest ranks (numpy.percentile's default method). NaN for an empty input.
double percentile(std::vector<double> values, double q);

}  // namespace gyrus::rt
