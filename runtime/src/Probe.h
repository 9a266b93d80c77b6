// Linear probes fitted on frozen-encoder features: L2-regularised logistic regression
// (binary labels) and ridge regression (continuous labels), plus feature
// standardisation. Plain double-precision code, independent of LibTorch, so it is
// testable without it and gives the same answer on every machine.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gyrus::rt {

/// L2 strength of the logistic probe: it minimises
/// mean_i log(1 + exp(-s_i (w.x_i + b))) + kLogisticL2 / 2 * |w|^2 (b unpenalised).
/// Few-shot features are usually linearly separable; the penalty keeps w finite.
inline constexpr double kLogisticL2 = 1e-2;
/// L2 strength of the ridge probe: it minimises
/// sum_i (y_i - b - w.x_i)^2 + kRidgeL2 * |w|^2 (b unpenalised), scikit-learn's
/// Ridge(alpha=1.0) default.
inline constexpr double kRidgeL2 = 1.0;

/// A dense row-major matrix: one row per subject, one column per feature.
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> data;

  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), data(static_cast<size_t>(r * c), 0.0) {}
  double& operator()(int64_t r, int64_t c) { return data[static_cast<size_t>(r * cols + c)]; }
  double operator()(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
  std::span<const double> row(int64_t r) const {
    return {data.data() + r * cols, static_cast<size_t>(cols)};
  }
  /// The rows listed in `indices`, in that order.
  Matrix selectRows(std::span<const int64_t> indices) const;
};

/// Per-feature affine standardisation fitted on a training draw: (x - mean) / std;
/// a constant feature is only centred.
struct Standardizer {
  std::vector<double> mean;
  std::vector<double> scale;
  static Standardizer fit(const Matrix& x);
  Matrix apply(const Matrix& x) const;
};

/// A fitted linear model: score = w.x + b.
struct LinearModel {
  std::vector<double> weights;
  double bias = 0.0;
  int64_t iterations = 0;  ///< optimiser iterations used (0 for closed forms)
  std::vector<double> predict(const Matrix& x) const;
};

/// Fits the logistic probe (labels 0 / 1) by accelerated gradient descent with
/// adaptive restart until the gradient's max-norm is below 1e-8 (or 100000 steps).
LinearModel fitLogistic(const Matrix& x, std::span<const int> labels, double l2 = kLogisticL2);

/// Fits the ridge probe in closed form (Cholesky; the dual form when features
/// outnumber samples). Expects centred features (as Standardizer makes them) for the
/// bias to be exact: b = mean(y) - w.mean(x) is used either way.
LinearModel fitRidge(const Matrix& x, std::span<const double> targets, double l2 = kRidgeL2);

/// The L2 strengths `fitRidgeLoo` chooses from: 10^-2 to 10^6 in half decades.
std::vector<double> ridgeAlphaGrid();

/// A ridge fit whose strength was chosen by leave-one-out.
struct RidgeChoice {
  LinearModel model;
  double alpha = 0.0;        ///< the chosen strength
  double looError = 0.0;     ///< its leave-one-out mean squared error
};

/// Fits the ridge probe with the strength of `alphas` that minimises the exact
/// leave-one-out mean squared error on the training rows (ties: the larger strength).
/// The leave-one-out residuals come in closed form from the hat matrix of the
/// penalised fit with an unpenalised intercept, r_i / (1 - h_ii), so no fit is repeated:
/// in the dual form (features outnumber rows) h_ii = 1/n + 1 - alpha [(Kc + alpha I)^-1]_ii
/// with Kc the centred Gram matrix; in the primal form h_ii = 1/n + xc_i^T
/// (Xc^T Xc + alpha I)^-1 xc_i. Needs at least 3 rows.
RidgeChoice fitRidgeLoo(const Matrix& x, std::span<const double> targets, std::span<const double> alphas);

}  // namespace gyrus::rt
