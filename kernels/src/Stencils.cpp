// The stencil passes of the kernel IR (see Kernel.h for each kind's exact semantics):
// operations that are not pointwise, one library routine per kind, shared by the CPU
// back ends. Every kind is separable: it filters the lines of one axis at a time, in
// double precision, and stores single precision.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

/// Calls `filter(in, out)` on every line along `axis` (copied out, filtered, copied back).
template <class F>
void eachLine(float* data, const ir::Shape3& shape, size_t axis, F&& filter) {
  const int64_t n = shape[axis];
  const int64_t stride = axis == 0 ? 1 : axis == 1 ? shape[0] : shape[0] * shape[1];
  const int64_t lines = shape[0] * shape[1] * shape[2] / n;
  std::vector<double> in(static_cast<size_t>(n)), out(static_cast<size_t>(n));
  for (int64_t line = 0; line < lines; ++line) {
    // The line's first voxel: `line` enumerates the other two axes, x fastest.
    int64_t base = 0;
    if (axis == 0) base = line * n;
    if (axis == 1) base = (line % shape[0]) + (line / shape[0]) * shape[0] * n;
    if (axis == 2) base = line;
    for (int64_t i = 0; i < n; ++i) in[static_cast<size_t>(i)] = data[base + i * stride];
    filter(in, out);
    for (int64_t i = 0; i < n; ++i) data[base + i * stride] = static_cast<float>(out[static_cast<size_t>(i)]);
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
  for (double& v : w) v /= sum;
  const int64_t n = shape[axis];
  eachLine(data, shape, axis, [&](const std::vector<double>& in, std::vector<double>& out) {
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t x = -radius; x <= radius; ++x)
        acc += w[static_cast<size_t>(x + radius)] * in[static_cast<size_t>(reflect(i + x, n))];
      out[static_cast<size_t>(i)] = acc;
    }
  });
}

/// Re(ifft(gain · fft(line))) along `axis`, gain[j] per (unshifted) frequency index j, as
/// the circular convolution with h[t] = (1/n) Σ_j gain[j] cos(2π j t / n).
void spectralAxis(float* data, const ir::Shape3& shape, size_t axis, const std::vector<double>& gain) {
  const int64_t n = shape[axis];
  std::vector<double> h(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    double acc = 0;
    for (int64_t j = 0; j < n; ++j)
      acc += gain[static_cast<size_t>(j)] * std::cos(kTwoPi * static_cast<double>((j * t) % n) / static_cast<double>(n));
    h[static_cast<size_t>(t)] = acc / static_cast<double>(n);
  }
  eachLine(data, shape, axis, [&](const std::vector<double>& in, std::vector<double>& out) {
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t m = 0; m < n; ++m) acc += h[static_cast<size_t>(((i - m) % n + n) % n)] * in[static_cast<size_t>(m)];
      out[static_cast<size_t>(i)] = acc;
    }
  });
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
  std::vector<double> low(static_cast<size_t>(m));
  eachLine(data, shape, axis, [&](const std::vector<double>& in, std::vector<double>& out) {
    // Down: sample j takes voxel floor(j (n - 1) / (m - 1) + 1/2) (scipy's zoom, order 0).
    for (int64_t j = 0; j < m; ++j) {
      double pos = m > 1 ? static_cast<double>(j) * static_cast<double>(n - 1) / static_cast<double>(m - 1) : 0.0;
      int64_t src = std::min(n - 1, static_cast<int64_t>(std::floor(pos + 0.5)));
      low[static_cast<size_t>(j)] = in[static_cast<size_t>(src)];
    }
    // Up: voxel i at position i (m - 1) / (n - 1), linear between its neighbours.
    for (int64_t i = 0; i < n; ++i) {
      double pos = m > 1 ? static_cast<double>(i) * static_cast<double>(m - 1) / static_cast<double>(n - 1) : 0.0;
      auto x0 = static_cast<int64_t>(std::floor(pos));
      x0 = std::min(x0, m - 1);
      int64_t x1 = std::min(x0 + 1, m - 1);
      double w = pos - static_cast<double>(x0);
      out[static_cast<size_t>(i)] = (1.0 - w) * low[static_cast<size_t>(x0)] + w * low[static_cast<size_t>(x1)];
    }
  });
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
