// Metric implementations (see Metrics.h). AUROC uses the Mann-Whitney U statistic
// with mid-ranks for ties, which equals the trapezoidal ROC area scikit-learn computes.
// The distance transform is Felzenszwalb & Huttenlocher's ("Distance Transforms of
// Sampled Functions", Theory of Computing 8, 2012): the squared distance to a feature
// set is min over q of (x - x_q)^2 + f(q), computed per axis as the lower envelope of
// parabolas, with f = 0 on features and +infinity elsewhere for the first axis and the
// previous axis's result for the next. Positions are in mm (x_q = q * spacing), so
// anisotropic voxels are exact, not rescaled afterwards.
#include "Metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
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

namespace gyrus::rt {

namespace {

void checkMaskSize(size_t size, const ir::Shape3& shape, const char* what) {
  for (int64_t n : shape)
    if (n < 1) throw std::invalid_argument(std::string(what) + ": the shape must be positive");
  if (static_cast<int64_t>(size) != shape[0] * shape[1] * shape[2])
    throw std::invalid_argument(std::string(what) + ": the mask does not have the shape's number of voxels");
}

/// One line of the separable transform: d[q] = min_p ((q - p) * step)^2 + f[p] for q
/// in [0, n). `v` (n), `z` (n + 1) are scratch. Entries of f that are +infinity are no
/// parabolas at all (skipped), so a line without finite entries stays +infinity.
void envelope(const double* f, int64_t n, double step, double* d, int64_t* v, double* z) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    const double xq = static_cast<double>(q) * step;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
      continue;
    }
    double x = 0.0;
    for (;;) {
      const double xv = static_cast<double>(v[k]) * step;
      x = ((f[q] + xq * xq) - (f[v[k]] + xv * xv)) / (2.0 * (xq - xv));
      if (x > z[k]) break;
      --k;  // z[0] is -infinity: k never drops below 0
    }
    ++k;
    v[k] = q;
    z[k] = x;
    z[k + 1] = kInf;
  }
  if (k < 0) {
    std::fill(d, d + n, kInf);
    return;
  }
  k = 0;
  for (int64_t q = 0; q < n; ++q) {
    const double xq = static_cast<double>(q) * step;
    while (z[k + 1] < xq) ++k;
    const double dx = xq - static_cast<double>(v[k]) * step;
    d[q] = dx * dx + f[v[k]];
  }
}

}  // namespace

double dice(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) throw std::invalid_argument("dice: the masks differ in size");
  size_t na = 0, nb = 0, both = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    bool x = a[i] != 0, y = b[i] != 0;
    na += x ? 1 : 0;
    nb += y ? 1 : 0;
    both += x && y ? 1 : 0;
  }
  if (na + nb == 0) return 1.0;
  return 2.0 * static_cast<double>(both) / static_cast<double>(na + nb);
}

std::vector<uint8_t> surfaceVoxels(std::span<const uint8_t> mask, const ir::Shape3& shape) {
  checkMaskSize(mask.size(), shape, "surfaceVoxels");
  const int64_t nx = shape[0], ny = shape[1], nz = shape[2];
  std::vector<uint8_t> out(mask.size(), 0);
  auto inside = [&](int64_t x, int64_t y, int64_t z) {
    return x >= 0 && y >= 0 && z >= 0 && x < nx && y < ny && z < nz &&
           mask[static_cast<size_t>(x + nx * (y + ny * z))] != 0;
  };
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        if (!inside(x, y, z)) continue;
        bool surface = !inside(x - 1, y, z) || !inside(x + 1, y, z) || !inside(x, y - 1, z) ||
                       !inside(x, y + 1, z) || !inside(x, y, z - 1) || !inside(x, y, z + 1);
        out[static_cast<size_t>(x + nx * (y + ny * z))] = surface ? 1 : 0;
      }
  return out;
}

std::vector<double> squaredDistanceTransform(std::span<const uint8_t> features, const ir::Shape3& shape,
                                             const std::array<double, 3>& spacing) {
  checkMaskSize(features.size(), shape, "squaredDistanceTransform");
  for (double s : spacing)
    if (!(s > 0.0) || !std::isfinite(s))
      throw std::invalid_argument("squaredDistanceTransform: the spacing must be positive");
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> dist(features.size());
  for (size_t i = 0; i < features.size(); ++i) dist[i] = features[i] != 0 ? 0.0 : kInf;
  const int64_t longest = std::max({shape[0], shape[1], shape[2]});
  std::vector<double> f(static_cast<size_t>(longest)), d(static_cast<size_t>(longest)),
      z(static_cast<size_t>(longest) + 1);
  std::vector<int64_t> v(static_cast<size_t>(longest));
  const int64_t strides[3] = {1, shape[0], shape[0] * shape[1]};
  for (size_t axis = 0; axis < 3; ++axis) {
    const int64_t n = shape[axis], stride = strides[axis];
    const size_t a1 = axis == 0 ? 1 : 0, a2 = axis == 2 ? 1 : 2;  // the other two axes
    for (int64_t i2 = 0; i2 < shape[a2]; ++i2)
      for (int64_t i1 = 0; i1 < shape[a1]; ++i1) {
        double* line = dist.data() + i1 * strides[a1] + i2 * strides[a2];
        for (int64_t q = 0; q < n; ++q) f[static_cast<size_t>(q)] = line[q * stride];
        envelope(f.data(), n, spacing[axis], d.data(), v.data(), z.data());
        for (int64_t q = 0; q < n; ++q) line[q * stride] = d[static_cast<size_t>(q)];
      }
  }
  return dist;
}

double normalizedSurfaceDice(std::span<const uint8_t> a, std::span<const uint8_t> b, const ir::Shape3& shape,
                             const std::array<double, 3>& spacing, double toleranceMm) {
  if (a.size() != b.size()) throw std::invalid_argument("normalizedSurfaceDice: the masks differ in size");
  if (!(toleranceMm >= 0.0) || !std::isfinite(toleranceMm))
    throw std::invalid_argument("normalizedSurfaceDice: the tolerance must be finite and >= 0");
  std::vector<uint8_t> sa = surfaceVoxels(a, shape), sb = surfaceVoxels(b, shape);
  auto count = [](const std::vector<uint8_t>& m) {
    return static_cast<size_t>(std::count_if(m.begin(), m.end(), [](uint8_t x) { return x != 0; }));
  };
  const size_t na = count(sa), nb = count(sb);
  if (na == 0 && nb == 0) return 1.0;
  if (na == 0 || nb == 0) return 0.0;
  const double limit = toleranceMm * toleranceMm * (1.0 + 1e-9);
  auto within = [&](const std::vector<uint8_t>& from, const std::vector<uint8_t>& to) {
    std::vector<double> d = squaredDistanceTransform(to, shape, spacing);
    size_t n = 0;
    for (size_t i = 0; i < from.size(); ++i) n += from[i] != 0 && d[i] <= limit ? 1 : 0;
    return n;
  };
  return static_cast<double>(within(sa, sb) + within(sb, sa)) / static_cast<double>(na + nb);
}

double hausdorff95(std::span<const uint8_t> a, std::span<const uint8_t> b, const ir::Shape3& shape,
                   const std::array<double, 3>& spacing) {
  if (a.size() != b.size()) throw std::invalid_argument("hausdorff95: the masks differ in size");
  std::vector<uint8_t> sa = surfaceVoxels(a, shape), sb = surfaceVoxels(b, shape);
  const bool emptyA = std::none_of(sa.begin(), sa.end(), [](uint8_t x) { return x != 0; });
  const bool emptyB = std::none_of(sb.begin(), sb.end(), [](uint8_t x) { return x != 0; });
  if (emptyA && emptyB) return 0.0;
  if (emptyA || emptyB) {
    double diagonal = 0.0;
    for (size_t i = 0; i < 3; ++i) {
      const double extent = static_cast<double>(shape[i]) * spacing[i];
      diagonal += extent * extent;
    }
    return std::sqrt(diagonal);
  }
  std::vector<double> distances;
  auto collect = [&](const std::vector<uint8_t>& from, const std::vector<uint8_t>& to) {
    std::vector<double> d = squaredDistanceTransform(to, shape, spacing);
    for (size_t i = 0; i < from.size(); ++i)
      if (from[i] != 0) distances.push_back(std::sqrt(d[i]));
  };
  collect(sa, sb);
  collect(sb, sa);
  return percentile(std::move(distances), 95.0);
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return values[below] + (values[above] - values[below]) * fraction;
}

}  // namespace gyrus::rt
