// Evaluation metrics with the conventions of the FOMO25 scoring code: AUROC as
// scikit-learn's roc_auc_score (ties count one half), Pearson r as scipy's pearsonr,
// mean absolute error.
#pragma once

#include <span>

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

}  // namespace gyrus::rt
