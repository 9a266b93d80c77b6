// Metric implementations (see Metrics.h). AUROC uses the Mann-Whitney U statistic
// with mid-ranks for ties, which equals the trapezoidal ROC area scikit-learn computes.
#include "Metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace gyrus::rt {

double auroc(std::span<const double> scores, std::span<const int> labels) {
  if (scores.size() != labels.size())
    throw std::invalid_argument("auroc: scores and labels differ in length");
  if (scores.empty()) throw std::invalid_argument("auroc: empty input");
  size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positiveRankSum = 0.0;
  size_t positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    double midRank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k) {
      int label = labels[order[k]];
      if (label != 0 && label != 1) throw std::invalid_argument("auroc: labels must be 0 or 1");
      if (label == 1) {
        positiveRankSum += midRank;
        ++positives;
      }
    }
    i = j;
  }
  size_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();
  double p = static_cast<double>(positives), q = static_cast<double>(negatives);
  double u = positiveRankSum - p * (p + 1.0) / 2.0;
  return u / (p * q);
}

double meanAbsoluteError(std::span<const double> predicted, std::span<const double> target) {
  if (predicted.size() != target.size())
    throw std::invalid_argument("meanAbsoluteError: inputs differ in length");
  if (predicted.empty()) throw std::invalid_argument("meanAbsoluteError: empty input");
  double sum = 0.0;
  for (size_t i = 0; i < predicted.size(); ++i) sum += std::abs(predicted[i] - target[i]);
  return sum / static_cast<double>(predicted.size());
}

double pearsonR(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) throw std::invalid_argument("pearsonR: inputs differ in length");
  if (x.size() < 2) throw std::invalid_argument("pearsonR: need at least 2 values");
  double n = static_cast<double>(x.size());
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0.0, sxx = 0.0, syy = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0.0 || syy == 0.0) return std::numeric_limits<double>::quiet_NaN();
  double r = sxy / (std::sqrt(sxx) * std::sqrt(syy));
  return std::clamp(r, -1.0, 1.0);
}

MeanStd meanStd(std::span<const double> values) {
  MeanStd out;
  if (values.empty()) return out;
  double n = static_cast<double>(values.size());
  out.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0.0;
  for (double v : values) ss += (v - out.mean) * (v - out.mean);
  out.std = std::sqrt(ss / n);
  return out;
}

}  // namespace gyrus::rt
