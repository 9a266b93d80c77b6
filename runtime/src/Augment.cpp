// The FOMO25 baseline's augmentations, each as a plain function of its drawn values (see
// Preprocess.h): the reference the kernel lowering (kernels/src/Lower.cpp, Stencils.cpp)
// is tested against, written independently of it (3-D loops, direct DFTs, the dense
// elastic field).
#include <algorithm>
#include <cmath>
#include <complex>
#include <stdexcept>

#include "Preprocess.h"

namespace gyrus::rt {

namespace {

constexpr double kPi = 3.14159265358979323846;

double centre(int64_t n) { return 0.5 * static_cast<double>(n - 1); }

float sampleLinear(const Volume& v, const std::array<double, 3>& p) {
  std::array<int64_t, 3> base{};
  std::array<double, 3> w{};
  for (size_t a = 0; a < 3; ++a) {
    double f = std::floor(p[a]);
    base[a] = static_cast<int64_t>(f);
    w[a] = p[a] - f;
  }
  double acc = 0;
  for (int corner = 0; corner < 8; ++corner) {
    int64_t x = base[0] + (corner & 1), y = base[1] + ((corner >> 1) & 1), z = base[2] + ((corner >> 2) & 1);
    if (x < 0 || y < 0 || z < 0 || x >= v.shape[0] || y >= v.shape[1] || z >= v.shape[2]) continue;
    double weight = ((corner & 1) ? w[0] : 1 - w[0]) * (((corner >> 1) & 1) ? w[1] : 1 - w[1]) *
                    (((corner >> 2) & 1) ? w[2] : 1 - w[2]);
    acc += weight * v.at(x, y, z);
  }
  return static_cast<float>(acc);
}

float sampleNearest(const Volume& v, const std::array<double, 3>& p) {
  auto x = static_cast<int64_t>(std::floor(p[0] + 0.5)), y = static_cast<int64_t>(std::floor(p[1] + 0.5)),
       z = static_cast<int64_t>(std::floor(p[2] + 0.5));
  if (x < 0 || y < 0 || z < 0 || x >= v.shape[0] || y >= v.shape[1] || z >= v.shape[2]) return 0.0f;
  return v.at(x, y, z);
}

/// Tricubic: the 4 x 4 x 4 neighbours with Catmull-Rom weights, those outside 0.
float sampleCubic(const Volume& v, const std::array<double, 3>& p) {
  std::array<int64_t, 3> base{};
  std::array<std::array<double, 4>, 3> w{};
  for (size_t a = 0; a < 3; ++a) {
    double f = std::floor(p[a]);
    base[a] = static_cast<int64_t>(f);
    w[a] = catmullRom(p[a] - f);
  }
  double acc = 0;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < 4; ++i) {
        int64_t x = base[0] - 1 + i, y = base[1] - 1 + j, z = base[2] - 1 + k;
        if (x < 0 || y < 0 || z < 0 || x >= v.shape[0] || y >= v.shape[1] || z >= v.shape[2]) continue;
        acc += w[0][static_cast<size_t>(i)] * w[1][static_cast<size_t>(j)] * w[2][static_cast<size_t>(k)] * v.at(x, y, z);
      }
  return static_cast<float>(acc);
}

/// A new volume of `in`'s grid whose voxel j is `in` sampled at position(j).
template <class F>
Volume resampleAt(const Volume& in, bool nearest, bool cubic, F&& position) {
  Volume out = Volume::zeros(in.shape);
  out.spacing = in.spacing;
  for (int64_t z = 0; z < in.shape[2]; ++z)
    for (int64_t y = 0; y < in.shape[1]; ++y)
      for (int64_t x = 0; x < in.shape[0]; ++x) {
        std::array<double, 3> p = position(x, y, z);
        out.at(x, y, z) = nearest ? sampleNearest(in, p) : cubic ? sampleCubic(in, p) : sampleLinear(in, p);
      }
  return out;
}

/// Every voxel of every line along `axis`: f(line's voxel indices).
template <class F>
void eachLine(Volume& v, int axis, F&& f) {
  const auto a = static_cast<size_t>(axis);
  const int64_t n = v.shape[a];
  std::vector<size_t> idx(static_cast<size_t>(n));
  for (int64_t z = 0; z < (a == 2 ? 1 : v.shape[2]); ++z)
    for (int64_t y = 0; y < (a == 1 ? 1 : v.shape[1]); ++y)
      for (int64_t x = 0; x < (a == 0 ? 1 : v.shape[0]); ++x) {
        for (int64_t i = 0; i < n; ++i)
          idx[static_cast<size_t>(i)] = v.index(a == 0 ? i : x, a == 1 ? i : y, a == 2 ? i : z);
        f(idx);
      }
}

/// Each line along `axis` through its DFT: gain(shifted plane m) scales the centred
/// spectrum; the line becomes the real part of the inverse.
template <class G>
void spectral(Volume& v, int axis, G&& gainOfPlane) {
  if (axis < 0 || axis > 2) throw std::invalid_argument("spectral filter: axis must be 0, 1 or 2");
  const int64_t n = v.shape[static_cast<size_t>(axis)];
  if (n < 2) return;
  std::vector<double> gain(static_cast<size_t>(n));
  for (int64_t m = 0; m < n; ++m) gain[static_cast<size_t>(((m - n / 2) % n + n) % n)] = gainOfPlane(m);
  std::vector<std::complex<double>> twiddle(static_cast<size_t>(n)), spectrum(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) twiddle[static_cast<size_t>(t)] = std::polar(1.0, -2.0 * kPi * static_cast<double>(t) / static_cast<double>(n));
  eachLine(v, axis, [&](const std::vector<size_t>& idx) {
    for (int64_t j = 0; j < n; ++j) {
      std::complex<double> acc = 0;
      for (int64_t m = 0; m < n; ++m) acc += static_cast<double>(v.data[idx[static_cast<size_t>(m)]]) * twiddle[static_cast<size_t>((j * m) % n)];
      spectrum[static_cast<size_t>(j)] = acc * gain[static_cast<size_t>(j)];
    }
    for (int64_t i = 0; i < n; ++i) {
      std::complex<double> acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += spectrum[static_cast<size_t>(j)] * std::conj(twiddle[static_cast<size_t>((j * i) % n)]);
      v.data[idx[static_cast<size_t>(i)]] = static_cast<float>(acc.real() / static_cast<double>(n));
    }
  });
}

/// Gaussian weights of scipy's gaussian_filter1d (radius int(4 sigma + 0.5), sum 1).
std::vector<double> gaussianWeights(double sigma) {
  const auto radius = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> w;
  double sum = 0;
  for (int64_t x = -radius; x <= radius; ++x) {
    w.push_back(std::exp(-0.5 * static_cast<double>(x * x) / (sigma * sigma)));
    sum += w.back();
  }
  for (double& x : w) x /= sum;
  return w;
}

/// One axis of a Gaussian filter; `reflect` (scipy's default) or zero outside ('constant').
void gaussianAxis(Volume& v, int axis, double sigma, bool reflect) {
  const std::vector<double> w = gaussianWeights(sigma);
  const auto radius = static_cast<int64_t>(w.size() / 2);
  const int64_t n = v.shape[static_cast<size_t>(axis)];
  std::vector<double> line(static_cast<size_t>(n));
  eachLine(v, axis, [&](const std::vector<size_t>& idx) {
    for (int64_t i = 0; i < n; ++i) line[static_cast<size_t>(i)] = v.data[idx[static_cast<size_t>(i)]];
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t k = -radius; k <= radius; ++k) {
        int64_t j = i + k;
        if (reflect) {
          // d c b a | a b c d | d c b a
          while (j < 0 || j >= n) j = j < 0 ? -j - 1 : 2 * n - j - 1;
        } else if (j < 0 || j >= n) {
          continue;
        }
        acc += w[static_cast<size_t>(k + radius)] * line[static_cast<size_t>(j)];
      }
      v.data[idx[static_cast<size_t>(i)]] = static_cast<float>(acc);
    }
  });
}

}  // namespace

void gammaTransform(Volume& v, double gamma, bool invert) {
  if (!invert) return gammaTransform(v, gamma);
  if (!(gamma > 0.0)) throw std::invalid_argument("gamma: need an exponent > 0");
  float lo = 0, hi = 0;
  if (!headRange(v, lo, hi)) return;
  const double range = static_cast<double>(hi) - lo;
  for (float& f : v.data)
    if (f != 0.0f) {
      double t = std::clamp((f - lo) / range, 0.0, 1.0);
      f = static_cast<float>(lo + range * (1.0 - std::pow(1.0 - t, gamma)));
    }
}

Matrix3 rotationMatrix(const std::array<double, 3>& r) {
  Matrix3 out{};
  // Rz Ry Rx applied to the unit vectors, column by column.
  for (size_t col = 0; col < 3; ++col) {
    std::array<double, 3> e{};
    e[col] = 1.0;
    std::array<double, 3> p{e[0], e[1] * std::cos(r[0]) - e[2] * std::sin(r[0]), e[1] * std::sin(r[0]) + e[2] * std::cos(r[0])};
    p = {p[0] * std::cos(r[1]) + p[2] * std::sin(r[1]), p[1], -p[0] * std::sin(r[1]) + p[2] * std::cos(r[1])};
    p = {p[0] * std::cos(r[2]) - p[1] * std::sin(r[2]), p[0] * std::sin(r[2]) + p[1] * std::cos(r[2]), p[2]};
    for (size_t row = 0; row < 3; ++row) out[row][col] = p[row];
  }
  return out;
}

Volume warpAboutCentre(const Volume& in, const Matrix3& a, bool nearest, bool cubic) {
  const std::array<double, 3> c{centre(in.shape[0]), centre(in.shape[1]), centre(in.shape[2])};
  return resampleAt(in, nearest, cubic, [&](int64_t x, int64_t y, int64_t z) {
    const std::array<double, 3> d{static_cast<double>(x) - c[0], static_cast<double>(y) - c[1], static_cast<double>(z) - c[2]};
    std::array<double, 3> p{};
    for (size_t i = 0; i < 3; ++i) p[i] = a[i][0] * d[0] + a[i][1] * d[1] + a[i][2] * d[2] + c[i];
    return p;
  });
}

std::array<Volume, 3> denseElasticField(const ir::Shape3& shape, double alpha, double sigma, Rng& rng) {
  std::array<Volume, 3> d;
  for (Volume& component : d) {
    component = Volume::zeros(shape);
    for (float& f : component.data) f = static_cast<float>(rng.uniform(-1.0, 1.0));
    for (int axis = 0; axis < 3; ++axis) gaussianAxis(component, axis, sigma, false);
    for (float& f : component.data) f = static_cast<float>(f * alpha);
  }
  return d;
}

std::array<Volume, 3> coarseElasticField(const ir::Shape3& shape, double alpha, double sigma, kir::Draws& d) {
  const ir::Shape3 points{kir::kElasticPoints, kir::kElasticPoints, kir::kElasticPoints};
  std::array<double, 3> spacing{};
  for (size_t a = 0; a < 3; ++a)
    spacing[a] = shape[a] > 1 ? static_cast<double>(shape[a] - 1) / static_cast<double>(points[a] - 1) : 1.0;
  std::vector<float> field(static_cast<size_t>(3 * points[0] * points[1] * points[2]));
  kir::elasticField(d, points, spacing, alpha, sigma, field);
  const int64_t count = points[0] * points[1] * points[2];
  std::array<Volume, 3> out;
  for (size_t c = 0; c < 3; ++c) {
    Volume grid = Volume::zeros(points);
    std::copy(field.begin() + static_cast<int64_t>(c) * count, field.begin() + static_cast<int64_t>(c + 1) * count,
              grid.data.begin());
    out[c] = Volume::zeros(shape);
    for (int64_t z = 0; z < shape[2]; ++z)
      for (int64_t y = 0; y < shape[1]; ++y)
        for (int64_t x = 0; x < shape[0]; ++x) {
          // Within the control grid (the last point's upper neighbour is itself).
          std::array<double, 3> q{x / spacing[0], y / spacing[1], z / spacing[2]};
          for (size_t a = 0; a < 3; ++a) q[a] = std::min(q[a], static_cast<double>(points[a] - 1) - 1e-9);
          out[c].at(x, y, z) = sampleLinear(grid, q);
        }
  }
  return out;
}

Volume displace(const Volume& in, const std::array<Volume, 3>& d, bool nearest, bool cubic) {
  return resampleAt(in, nearest, cubic, [&](int64_t x, int64_t y, int64_t z) {
    return std::array<double, 3>{x + static_cast<double>(d[0].at(x, y, z)), y + static_cast<double>(d[1].at(x, y, z)),
                                 z + static_cast<double>(d[2].at(x, y, z))};
  });
}

void gaussianBlur(Volume& v, double sigma) {
  if (!(sigma >= 0.0)) throw std::invalid_argument("blur: need sigma >= 0");
  if (sigma <= 1e-15) return;
  for (int axis = 0; axis < 3; ++axis) gaussianAxis(v, axis, sigma, true);
}

void mulNoise(Volume& v, double sigma, Rng& rng) {
  for (float& f : v.data) f = static_cast<float>(f * (1.0 + sigma * rng.normal()));
}

void ghosting(Volume& v, int axis, int64_t every, double alpha) {
  if (every < 1) throw std::invalid_argument("ghosting: need every >= 1");
  spectral(v, axis, [&](int64_t m) { return m % every == 0 ? alpha : 1.0; });
}

void ringing(Volume& v, int axis, double cut) {
  const int64_t n = v.shape[static_cast<size_t>(axis)];
  // Plane m of the centred spectrum is frequency m - n/2 (floor).
  spectral(v, axis, [&](int64_t m) { return 2.0 * std::abs(static_cast<double>(m - n / 2)) > cut * static_cast<double>(n) ? 0.0 : 1.0; });
}

void lowres(Volume& v, const std::array<double, 3>& zoom) {
  ir::Shape3 low{};
  for (size_t a = 0; a < 3; ++a)
    low[a] = zoom[a] >= 1.0 || v.shape[a] < 2
                 ? v.shape[a]
                 : std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(v.shape[a]) * zoom[a] + 0.5)));
  auto ratio = [](int64_t from, int64_t to) {
    return to > 1 ? static_cast<double>(from - 1) / static_cast<double>(to - 1) : 0.0;
  };
  Volume down = Volume::zeros(low);
  for (int64_t z = 0; z < low[2]; ++z)
    for (int64_t y = 0; y < low[1]; ++y)
      for (int64_t x = 0; x < low[0]; ++x)
        down.at(x, y, z) = sampleNearest(v, {x * ratio(v.shape[0], low[0]), y * ratio(v.shape[1], low[1]),
                                             z * ratio(v.shape[2], low[2])});
  for (int64_t z = 0; z < v.shape[2]; ++z)
    for (int64_t y = 0; y < v.shape[1]; ++y)
      for (int64_t x = 0; x < v.shape[0]; ++x) {
        std::array<double, 3> p{x * ratio(low[0], v.shape[0]), y * ratio(low[1], v.shape[1]), z * ratio(low[2], v.shape[2])};
        // The top edge lands on the last sample exactly: clamp rounding beyond it.
        for (size_t a = 0; a < 3; ++a) p[a] = std::min(p[a], static_cast<double>(low[a] - 1));
        v.at(x, y, z) = sampleLinear(down, p);
      }
}

void biasField(Volume& v, const std::array<double, 3>& c, double strength) {
  for (int64_t z = 0; z < v.shape[2]; ++z)
    for (int64_t y = 0; y < v.shape[1]; ++y)
      for (int64_t x = 0; x < v.shape[0]; ++x) {
        const int64_t xyz[3] = {x, y, z};
        double e = 0;
        for (size_t a = 0; a < 3; ++a) {
          double u = v.shape[a] > 1 ? 2.0 * static_cast<double>(xyz[a]) / static_cast<double>(v.shape[a] - 1) - 1.0 : 0.0;
          e += (u - c[a]) * (u - c[a]);
        }
        v.at(x, y, z) = static_cast<float>(v.at(x, y, z) * std::exp(-strength / 4.0 * e));
      }
}

void contrast(Volume& v, double factor) {
  double sum = 0;
  int64_t count = 0;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (float f : v.data)
    if (f != 0.0f) {
      sum += f;
      ++count;
      lo = std::min(lo, f);
      hi = std::max(hi, f);
    }
  if (count == 0) return;
  const double mean = sum / static_cast<double>(count);
  for (float& f : v.data)
    if (f != 0.0f) f = std::clamp(static_cast<float>((f - mean) * factor + mean), lo, hi);
}

}  // namespace gyrus::rt
