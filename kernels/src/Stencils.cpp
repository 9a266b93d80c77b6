// The stencil passes of the kernel IR (see Kernel.h for each kind's exact semantics):
// operations that are not pointwise, one library routine per kind, shared by the CPU
// back ends. Every kind is separable and linear along its axis: it becomes an n x n
// matrix (banded for blur and low resolution, circulant for the spectral filters),
// applied to the lines of that axis with the contiguous dimension innermost, in double
// precision, stored in single precision.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

/// A linear map of the lines of one axis (every stencil kind is one): out_i = Σ_m
/// at(i, m) in_m, row i nonzero only in columns first[i] .. last[i].
struct LineOp {
  int64_t n = 0;
  std::vector<double> matrix;  ///< n x n, row-major
  std::vector<int64_t> first, last;
  explicit LineOp(int64_t size)
      : n(size), matrix(static_cast<size_t>(size * size), 0.0), first(static_cast<size_t>(size), size),
        last(static_cast<size_t>(size), -1) {}
  void add(int64_t i, int64_t m, double v) {
    matrix[static_cast<size_t>(i * n + m)] += v;
    first[static_cast<size_t>(i)] = std::min(first[static_cast<size_t>(i)], m);
    last[static_cast<size_t>(i)] = std::max(last[static_cast<size_t>(i)], m);
  }
};

/// Applies `op` along `axis`: the volume as [outer][n][inner] (inner: the axis's stride),
/// accumulated in double, the inner (contiguous) dimension innermost.
void applyAlong(float* data, const ir::Shape3& shape, size_t axis, const LineOp& op) {
  const int64_t n = shape[axis];
  const int64_t inner = axis == 0 ? 1 : axis == 1 ? shape[0] : shape[0] * shape[1];
  const int64_t outer = shape[0] * shape[1] * shape[2] / (n * inner);
  if (inner == 1) {
    // Lines along x are contiguous: kB of them at a time, transposed so the kB lines are
    // the inner (vectorisable) dimension, each sum in the same order as below.
    constexpr int64_t kB = 16;
    std::vector<double> in(static_cast<size_t>(n * kB)), acc(static_cast<size_t>(n * kB));
    for (int64_t o0 = 0; o0 < outer; o0 += kB) {
      const int64_t lines = std::min(kB, outer - o0);
      std::fill(in.begin(), in.end(), 0.0);
      for (int64_t b = 0; b < lines; ++b)
        for (int64_t m = 0; m < n; ++m) in[static_cast<size_t>(m * kB + b)] = data[(o0 + b) * n + m];
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const double* row = op.matrix.data() + i * n;
        double* out = acc.data() + i * kB;
        for (int64_t m = op.first[static_cast<size_t>(i)]; m <= op.last[static_cast<size_t>(i)]; ++m) {
          const double c = row[m];
          if (c == 0.0) continue;
          const double* col = in.data() + m * kB;
          for (int64_t k = 0; k < kB; ++k) out[k] += c * col[k];
        }
      }
      for (int64_t b = 0; b < lines; ++b)
        for (int64_t i = 0; i < n; ++i) data[(o0 + b) * n + i] = static_cast<float>(acc[static_cast<size_t>(i * kB + b)]);
    }
    return;
  }
  std::vector<double> acc(static_cast<size_t>(n * inner));
  for (int64_t o = 0; o < outer; ++o) {
    float* block = data + o * n * inner;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const double* row = op.matrix.data() + i * n;
      double* out = acc.data() + i * inner;
      for (int64_t m = op.first[static_cast<size_t>(i)]; m <= op.last[static_cast<size_t>(i)]; ++m) {
        const double c = row[m];
        if (c == 0.0) continue;
        const float* in = block + m * inner;
        int64_t k = 0;
        for (; k + 16 <= inner; k += 16)  // fixed-length chunks: vectorised at -O2
          for (int64_t j = 0; j < 16; ++j) out[k + j] += c * static_cast<double>(in[k + j]);
        for (; k < inner; ++k) out[k] += c * static_cast<double>(in[k]);
      }
    }
    for (int64_t k = 0; k < n * inner; ++k) block[k] = static_cast<float>(acc[static_cast<size_t>(k)]);
  }
}

/// scipy.ndimage's 'reflect' boundary (d c b a | a b c d | d c b a), for any offset.
int64_t reflect(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

void blurAxis(float* data, const ir::Shape3& shape, size_t axis, double sigma) {
  if (!(sigma > 1e-15)) return;  // as scipy: an axis of sigma 0 is left alone
  const auto radius = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> w(static_cast<size_t>(2 * radius + 1));
  double sum = 0;
  for (int64_t x = -radius; x <= radius; ++x) {
    double v = std::exp(-0.5 * static_cast<double>(x * x) / (sigma * sigma));
    w[static_cast<size_t>(x + radius)] = v;
    sum += v;
  }
  const int64_t n = shape[axis];
  LineOp op(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t x = -radius; x <= radius; ++x) op.add(i, reflect(i + x, n), w[static_cast<size_t>(x + radius)] / sum);
  applyAlong(data, shape, axis, op);
}

/// Re(ifft(gain · fft(line))) along `axis`, gain[j] per (unshifted) frequency index j: the
/// circulant matrix of h[t] = (1/n) Σ_j gain[j] cos(2π j t / n).
void spectralAxis(float* data, const ir::Shape3& shape, size_t axis, const std::vector<double>& gain) {
  const int64_t n = shape[axis];
  std::vector<double> h(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    double acc = 0;
    for (int64_t j = 0; j < n; ++j)
      acc += gain[static_cast<size_t>(j)] * std::cos(kTwoPi * static_cast<double>((j * t) % n) / static_cast<double>(n));
    h[static_cast<size_t>(t)] = acc / static_cast<double>(n);
  }
  LineOp op(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < n; ++m) op.add(i, m, h[static_cast<size_t>(((i - m) % n + n) % n)]);
  applyAlong(data, shape, axis, op);
}

size_t axisOf(float value) {
  auto a = static_cast<int64_t>(std::lround(value));
  if (a < 0 || a > 2) throw std::invalid_argument("kernel stencil: an axis is not 0, 1 or 2");
  return static_cast<size_t>(a);
}

void ghost(float* data, const ir::Shape3& shape, size_t axis, int64_t every, double alpha) {
  const int64_t n = shape[axis];
  if (n < 2 || every < 1) return;
  std::vector<double> gain(static_cast<size_t>(n), 1.0);
  // Plane m of the centred spectrum (numpy's fftshift) is frequency m - n/2 (floor).
  for (int64_t m = 0; m < n; m += every) {
    int64_t j = ((m - n / 2) % n + n) % n;
    gain[static_cast<size_t>(j)] = alpha;
  }
  spectralAxis(data, shape, axis, gain);
}

void ring(float* data, const ir::Shape3& shape, size_t axis, double cut) {
  const int64_t n = shape[axis];
  if (n < 2) return;
  std::vector<double> gain(static_cast<size_t>(n), 1.0);
  for (int64_t j = 0; j < n; ++j) {
    int64_t f = std::min(j, n - j);  // |signed frequency|
    if (2.0 * static_cast<double>(f) > cut * static_cast<double>(n)) gain[static_cast<size_t>(j)] = 0.0;
  }
  spectralAxis(data, shape, axis, gain);
}

void lowresAxis(float* data, const ir::Shape3& shape, size_t axis, double zoom) {
  const int64_t n = shape[axis];
  const int64_t m = std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(n) * zoom + 0.5)));
  if (n < 2 || m >= n) return;
  // Down: sample j takes voxel floor(j (n - 1) / (m - 1) + 1/2) (scipy's zoom, order 0).
  std::vector<int64_t> src(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) {
    double pos = m > 1 ? static_cast<double>(j) * static_cast<double>(n - 1) / static_cast<double>(m - 1) : 0.0;
    src[static_cast<size_t>(j)] = std::min(n - 1, static_cast<int64_t>(std::floor(pos + 0.5)));
  }
  // Up: voxel i at position i (m - 1) / (n - 1), linear between its neighbours.
  LineOp op(n);
  for (int64_t i = 0; i < n; ++i) {
    double pos = m > 1 ? static_cast<double>(i) * static_cast<double>(m - 1) / static_cast<double>(n - 1) : 0.0;
    int64_t x0 = std::min(static_cast<int64_t>(std::floor(pos)), m - 1), x1 = std::min(x0 + 1, m - 1);
    double w = pos - static_cast<double>(x0);
    op.add(i, src[static_cast<size_t>(x0)], 1.0 - w);
    op.add(i, src[static_cast<size_t>(x1)], w);
  }
  applyAlong(data, shape, axis, op);
}

}  // namespace

void runStencil(const Stencil& s, float* data, const ir::Shape3& shape, const std::vector<float>& slots) {
  auto arg = [&](size_t i) { return valueOf(s.args.at(i), slots); };
  switch (s.op) {
    case StencilOp::Blur:
      for (size_t a = 0; a < 3; ++a) blurAxis(data, shape, a, arg(a));
      return;
    case StencilOp::Ghost:
      ghost(data, shape, axisOf(arg(0)), static_cast<int64_t>(std::lround(arg(1))), arg(2));
      return;
    case StencilOp::Ring: ring(data, shape, axisOf(arg(0)), arg(1)); return;
    case StencilOp::LowRes:
      for (size_t a = 0; a < 3; ++a)
        if (arg(a) < 1.0f) lowresAxis(data, shape, a, arg(a));
      return;
  }
  throw std::logic_error("kernel stencil '" + s.origin + "': no routine for this kind");
}

}  // namespace gyrus::kir
