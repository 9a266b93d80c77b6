// Fused instance norm + leaky ReLU on the CPU (see NormAct.h).
//
// Forward, per (sample n, channel c) over the M voxels:
//   mean, var (biased), rstd = 1 / sqrt(var + eps), a = gamma * rstd
//   y = leaky((x - mean) * a + beta)
// (centred first: with a near-constant channel rstd is large, and x * a + (beta - mean *
// a) would lose the result to cancellation.)
// Backward, with g = dy * leaky'(pre-activation) and xhat = (x - mean) * rstd:
//   dbeta  = sum over n, voxels of g             (per c)
//   dgamma = sum over n, voxels of g * xhat      (per c)
//   dx     = a * (g - sum(g) / M - xhat * sum(g * xhat) / M)
//          = a * g + k2 * (x - mean) + k3, with k2 and k3 constant per (n, c)
// Each direction is two passes over the voxels: one reduction, one elementwise pass.
// The reductions sum in double in an order fixed by the shape alone: planes (or
// fixed-size chunks of channels-last rows) are each summed by one thread, and chunk
// sums are added in chunk order.
#include "NormAct.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace gyrus::rt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunkRows = 256;  // channels-last rows summed by one task
constexpr int64_t kLanes = 8;        // independent partial sums of a contiguous plane

bool envOn(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr || std::strcmp(v, "0") != 0;
}

/// x [N, C, S] as planes (contiguous) or as N x S rows of C channels (channels-last).
struct Layout {
  int64_t n, c, s;
  bool channelsLast;
};

Layout layoutOf(const at::Tensor& x) {
  return {x.size(0), x.size(1), x.size(2) * x.size(3) * x.size(4), !x.is_contiguous()};
}

/// The per-(n, c) coefficients, each [N * C] float, in one [6, N * C] tensor saved for the
/// backward pass: mean, rstd, a, beta (and two rows for the backward's k2, k3).
struct Coefficients {
  explicit Coefficients(const at::Tensor& t) : tensor(t) {
    const int64_t nc = t.size(1);
    float* base = t.data_ptr<float>();
    mean = base;
    rstd = base + nc;
    a = base + 2 * nc;
    beta = base + 3 * nc;
    k2 = base + 4 * nc;
    k3 = base + 5 * nc;
  }
  at::Tensor tensor;
  float *mean, *rstd, *a, *beta, *k2, *k3;
};

/// The two terms summed for one voxel: x and x^2 (forward); g, the gradient through the
/// leaky ReLU, and g * (x - mean) (backward).
template <bool Backward>
inline void terms(float x, float dy, float mean, float a, float beta, float slope, float& t, float& w) {
  if constexpr (Backward) {
    const float d = x - mean;
    t = d * a + beta > 0.0f ? dy : dy * slope;
    w = d;
  } else {
    (void)dy, (void)mean, (void)a, (void)beta, (void)slope;
    t = x;
    w = x;
  }
}

/// sums[2 * (n * C + c)] = sum of t, sums[2 * (n * C + c) + 1] = sum of t * w, where t, w
/// are terms<Backward>; in double, in a fixed order.
template <bool Backward>
std::vector<double> planeSums(const Layout& l, const float* x, const float* gy, const Coefficients* k, float slope) {
  std::vector<double> sums(static_cast<size_t>(2 * l.n * l.c), 0.0);
  if (!l.channelsLast) {
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, l.s));
    at::parallel_for(0, l.n * l.c, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* __restrict xp = x + p * l.s;
        const float* __restrict gp = (Backward ? gy : x) + p * l.s;
        const float mean = Backward ? k->mean[p] : 0.0f, a = Backward ? k->a[p] : 0.0f;
        const float beta = Backward ? k->beta[p] : 0.0f;
        double u[kLanes] = {}, v[kLanes] = {};
        float t, w;
        int64_t i = 0;
        for (; i + kLanes <= l.s; i += kLanes)
          for (int64_t j = 0; j < kLanes; ++j) {
            terms<Backward>(xp[i + j], gp[i + j], mean, a, beta, slope, t, w);
            u[j] += t;
            v[j] += static_cast<double>(t) * w;
          }
        for (; i < l.s; ++i) {
          terms<Backward>(xp[i], gp[i], mean, a, beta, slope, t, w);
          u[0] += t;
          v[0] += static_cast<double>(t) * w;
        }
        double su = 0.0, sv = 0.0;
        for (int64_t j = 0; j < kLanes; ++j) su += u[j], sv += v[j];
        sums[static_cast<size_t>(2 * p)] = su;
        sums[static_cast<size_t>(2 * p + 1)] = sv;
      }
    });
    return sums;
  }
  // Channels-last: rows of C values; each chunk of rows of one sample is summed by one
  // task into its own partial sums, which are then added in chunk order.
  const int64_t chunks = (l.s + kChunkRows - 1) / kChunkRows;
  std::vector<double> partial(static_cast<size_t>(l.n * chunks * 2 * l.c), 0.0);
  at::parallel_for(0, l.n * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t n = q / chunks, first = (q % chunks) * kChunkRows, last = std::min(l.s, first + kChunkRows);
      double* __restrict u = partial.data() + q * 2 * l.c;
      double* __restrict v = u + l.c;
      // (forward: the coefficients are not read; any valid pointer will do)
      const float* __restrict mean = (Backward ? k->mean : x) + (Backward ? n * l.c : 0);
      const float* __restrict a = (Backward ? k->a : x) + (Backward ? n * l.c : 0);
      const float* __restrict beta = (Backward ? k->beta : x) + (Backward ? n * l.c : 0);
      float t, w;
      for (int64_t r = first; r < last; ++r) {
        const int64_t row = (n * l.s + r) * l.c;
        const float* __restrict xr = x + row;
        const float* __restrict gr = (Backward ? gy : x) + row;
        for (int64_t c = 0; c < l.c; ++c) {
          terms<Backward>(xr[c], gr[c], Backward ? mean[c] : 0.0f, Backward ? a[c] : 0.0f,
                          Backward ? beta[c] : 0.0f, slope, t, w);
          u[c] += t;
          v[c] += static_cast<double>(t) * w;
        }
      }
    }
  });
  for (int64_t n = 0; n < l.n; ++n)
    for (int64_t q = 0; q < chunks; ++q) {
      const double* u = partial.data() + (n * chunks + q) * 2 * l.c;
      for (int64_t c = 0; c < l.c; ++c) {
        sums[static_cast<size_t>(2 * (n * l.c + c))] += u[c];
        sums[static_cast<size_t>(2 * (n * l.c + c) + 1)] += u[l.c + c];
      }
    }
  return sums;
}

/// out = leaky((x - mean) * a + beta) (forward) or a * g + k2 * (x - mean) + k3
/// (backward), per voxel, where g is dy through the leaky ReLU.
template <bool Backward>
inline float voxel(float x, float dy, float mean, float a, float beta, float k2, float k3, float slope) {
  const float d = x - mean;
  const float z = d * a + beta;
  if constexpr (Backward) {
    const float g = z > 0.0f ? dy : dy * slope;
    return a * g + k2 * d + k3;
  } else {
    (void)dy, (void)k2, (void)k3;
    return z > 0.0f ? z : z * slope;
  }
}

template <bool Backward>
void pointwise(const Layout& l, const float* x, const float* gy, const Coefficients& k, float slope, float* out) {
  if (!l.channelsLast) {
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, l.s));
    at::parallel_for(0, l.n * l.c, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float* __restrict xp = x + p * l.s;
        const float* __restrict gp = Backward ? gy + p * l.s : x + p * l.s;
        float* __restrict op = out + p * l.s;
        const float mean = k.mean[p], a = k.a[p], beta = k.beta[p], k2 = k.k2[p], k3 = k.k3[p];
        for (int64_t i = 0; i < l.s; ++i) op[i] = voxel<Backward>(xp[i], gp[i], mean, a, beta, k2, k3, slope);
      }
    });
    return;
  }
  const int64_t chunks = (l.s + kChunkRows - 1) / kChunkRows;
  at::parallel_for(0, l.n * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t n = q / chunks, first = (q % chunks) * kChunkRows, last = std::min(l.s, first + kChunkRows);
      const float* __restrict mean = k.mean + n * l.c;
      const float* __restrict a = k.a + n * l.c;
      const float* __restrict beta = k.beta + n * l.c;
      const float* __restrict k2 = k.k2 + n * l.c;
      const float* __restrict k3 = k.k3 + n * l.c;
      for (int64_t r = first; r < last; ++r) {
        const int64_t row = (n * l.s + r) * l.c;
        const float* __restrict xr = x + row;
        const float* __restrict gr = (Backward ? gy : x) + row;
        float* __restrict orow = out + row;
        for (int64_t c = 0; c < l.c; ++c)
          orow[c] = voxel<Backward>(xr[c], gr[c], mean[c], a[c], beta[c], k2[c], k3[c], slope);
      }
    }
  });
}

at::Tensor emptyLike(const at::Tensor& x, bool channelsLast) {
  return at::empty(x.sizes(),
                   x.options().memory_format(channelsLast ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous));
}

class FusedNormAct : public torch::autograd::Function<FusedNormAct> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& gamma,
                            const at::Tensor& beta, double eps, double slope) {
    const bool channelsLast = !input.is_contiguous() && input.is_contiguous(at::MemoryFormat::ChannelsLast3d);
    const at::Tensor x = channelsLast ? input : input.contiguous();
    const Layout l = layoutOf(x);
    const auto m = static_cast<double>(l.s);
    Coefficients k(at::empty({6, l.n * l.c}, x.options().memory_format(at::MemoryFormat::Contiguous)));
    const std::vector<double> sums = planeSums<false>(l, x.data_ptr<float>(), nullptr, nullptr, 0.0f);
    const at::Tensor g = gamma.contiguous(), bt = beta.contiguous();
    const float* gd = g.data_ptr<float>();
    const float* bd = bt.data_ptr<float>();
    for (int64_t p = 0; p < l.n * l.c; ++p) {
      const double mean = sums[static_cast<size_t>(2 * p)] / m;
      const double var = std::max(0.0, sums[static_cast<size_t>(2 * p + 1)] / m - mean * mean);
      const double rstd = 1.0 / std::sqrt(var + eps);
      const double a = gd[p % l.c] * rstd;
      k.mean[p] = static_cast<float>(mean);
      k.rstd[p] = static_cast<float>(rstd);
      k.a[p] = static_cast<float>(a);
      k.beta[p] = bd[p % l.c];
      k.k2[p] = k.k3[p] = 0.0f;
    }
    at::Tensor y = emptyLike(x, channelsLast);
    pointwise<false>(l, x.data_ptr<float>(), nullptr, k, static_cast<float>(slope), y.data_ptr<float>());
    ctx->save_for_backward({x, k.tensor});
    ctx->saved_data["slope"] = slope;
    ctx->saved_data["gamma_sizes"] = gamma.sizes().vec();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    Coefficients k(saved[1].clone());  // k2, k3 are written: keep the saved copy intact
    const auto slope = static_cast<float>(ctx->saved_data["slope"].toDouble());
    const Layout l = layoutOf(x);
    const auto m = static_cast<double>(l.s);
    const at::Tensor gy =
        grads[0].contiguous(l.channelsLast ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous);
    const std::vector<double> sums = planeSums<true>(l, x.data_ptr<float>(), gy.data_ptr<float>(), &k, slope);
    std::vector<double> dgamma(static_cast<size_t>(l.c), 0.0), dbeta(static_cast<size_t>(l.c), 0.0);
    for (int64_t p = 0; p < l.n * l.c; ++p) {
      const double sg = sums[static_cast<size_t>(2 * p)];
      const double rstd = k.rstd[p], a = k.a[p];
      const double sgxhat = rstd * sums[static_cast<size_t>(2 * p + 1)];  // sum of g * xhat
      k.k2[p] = static_cast<float>(-a * rstd * sgxhat / m);
      k.k3[p] = static_cast<float>(-a * sg / m);
      dgamma[static_cast<size_t>(p % l.c)] += sgxhat;
      dbeta[static_cast<size_t>(p % l.c)] += sg;
    }
    at::Tensor dx = emptyLike(x, l.channelsLast);
    pointwise<true>(l, x.data_ptr<float>(), gy.data_ptr<float>(), k, slope, dx.data_ptr<float>());
    const std::vector<int64_t> gammaSizes = ctx->saved_data["gamma_sizes"].toIntVector();
    auto toTensor = [&](const std::vector<double>& v) {
      return at::tensor(v, x.options().dtype(at::kDouble)).to(at::kFloat).reshape(gammaSizes);
    };
    return {dx, toTensor(dgamma), toTensor(dbeta), at::Tensor(), at::Tensor()};
  }
};

bool parameterFits(const at::Tensor& t, int64_t channels) {
  return t.defined() && t.is_cpu() && t.scalar_type() == at::kFloat && t.numel() == channels;
}

}  // namespace

bool fusedNormActApplies(const at::Tensor& x) {
  static const bool enabled = envOn("GYRUS_FUSED_NORM");
  return enabled && x.defined() && x.is_cpu() && x.dim() == 5 && x.scalar_type() == at::kFloat && x.numel() > 0;
}

bool cpuChannelsLast() {
  static const bool enabled = envOn("GYRUS_CHANNELS_LAST");
  return enabled;
}

at::Tensor instanceNormLeakyReluAten(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, double eps,
                                     double slope) {
  return at::leaky_relu(at::instance_norm(x, gamma, beta, {}, {}, /*use_input_stats=*/true, /*momentum=*/0.1, eps,
                                          at::globalContext().userEnabledCuDNN()),
                        slope);
}

at::Tensor instanceNormLeakyRelu(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, double eps,
                                 double slope) {
  if (!fusedNormActApplies(x) || !parameterFits(gamma, x.size(1)) || !parameterFits(beta, x.size(1)))
    return instanceNormLeakyReluAten(x, gamma, beta, eps, slope);
  return FusedNormAct::apply(x, gamma, beta, eps, slope);
}

at::Tensor pointwiseConv3d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const bool rows = x.is_cpu() && x.dim() == 5 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast3d) &&
                    x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && weight.dim() == 5 &&
                    weight.size(2) == 1 && weight.size(3) == 1 && weight.size(4) == 1 && weight.size(1) == x.size(1);
  if (!rows) return at::conv3d(x, weight, bias);
  const int64_t n = x.size(0), c = x.size(1), o = weight.size(0);
  const at::Tensor voxels = x.permute({0, 2, 3, 4, 1}).reshape({-1, c});  // a view: x is channels-last
  const at::Tensor w = weight.reshape({o, c}).t();
  const at::Tensor out = bias.defined() ? at::addmm(bias, voxels, w) : at::mm(voxels, w);
  return out.view({n, x.size(2), x.size(3), x.size(4), o}).permute({0, 4, 1, 2, 3});
}

}  // namespace gyrus::rt
