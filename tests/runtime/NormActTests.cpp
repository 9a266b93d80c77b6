// The fused CPU instance norm + leaky ReLU (NormAct.h) against ATen's composition in
// double: values and all three gradients, in both memory formats, for odd shapes; the
// layout it keeps; results independent of the thread count; the 1x1x1 convolution as a
// matrix product; and at::parallel_for really running on LibTorch's threads.
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "NormAct.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <doctest/doctest.h>

#include <mutex>
#include <set>
#include <vector>

using namespace gyrus::rt;

namespace {

constexpr double kEps = 1e-5, kSlope = 0.01;

struct Grads {
  at::Tensor y, dx, dgamma, dbeta;
};

/// y and the gradients of sum(y * upstream) for x, gamma, beta.
template <class F>
Grads run(F&& f, const at::Tensor& x0, const at::Tensor& gamma0, const at::Tensor& beta0, const at::Tensor& upstream) {
  at::Tensor x = x0.detach().clone(at::MemoryFormat::Preserve).requires_grad_(true);
  at::Tensor gamma = gamma0.detach().clone().requires_grad_(true);
  at::Tensor beta = beta0.detach().clone().requires_grad_(true);
  at::Tensor y = f(x, gamma, beta);
  y.backward(upstream);
  return {y.detach(), x.grad(), gamma.grad(), beta.grad()};
}

/// max |a - b| / max(1, max |b|), in double.
double relativeError(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor bd = b.to(at::kDouble);
  const double scale = std::max(1.0, bd.abs().max().item<double>());
  return (a.to(at::kDouble) - bd).abs().max().item<double>() / scale;
}

void checkAgainstAten(const at::Tensor& x, const at::Tensor& upstream) {
  const int64_t c = x.size(1);
  const at::Tensor gamma = at::randn({c}, at::kFloat) * 0.8 + 0.2;  // some negative
  const at::Tensor beta = at::randn({c}, at::kFloat) * 0.3;
  const Grads fused = run(
      [](const at::Tensor& v, const at::Tensor& g, const at::Tensor& b) {
        return instanceNormLeakyRelu(v, g, b, kEps, kSlope);
      },
      x, gamma, beta, upstream);
  const Grads ref = run(
      [](const at::Tensor& v, const at::Tensor& g, const at::Tensor& b) {
        return instanceNormLeakyReluAten(v, g, b, kEps, kSlope);
      },
      x.to(at::kDouble), gamma.to(at::kDouble), beta.to(at::kDouble), upstream.to(at::kDouble));
  CHECK(relativeError(fused.y, ref.y) < 2e-5);
  CHECK(relativeError(fused.dx, ref.dx) < 2e-4);
  CHECK(relativeError(fused.dgamma, ref.dgamma) < 2e-4);
  CHECK(relativeError(fused.dbeta, ref.dbeta) < 2e-4);
  CHECK(fused.dgamma.sizes() == gamma.sizes());
  CHECK(fused.dx.sizes() == x.sizes());
}

at::Tensor channelsLast(const at::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast3d); }

}  // namespace

TEST_CASE("fused norm + leaky ReLU equals ATen's composition, values and gradients, in both layouts") {
  at::manual_seed(7);
  CHECK(fusedNormActApplies(at::zeros({1, 2, 2, 2, 2})));
  CHECK_FALSE(fusedNormActApplies(at::zeros({1, 2, 2, 2, 2}, at::kDouble)));
  // Odd sizes (C not a multiple of the vector width, rows not of the chunk), several
  // channels-last chunks (12^3 = 1728 rows), a single voxel, a mean far from 0.
  const std::vector<std::vector<int64_t>> shapes = {{2, 5, 3, 4, 7}, {1, 16, 12, 12, 12}, {3, 6, 1, 1, 1},
                                                    {2, 3, 9, 2, 5}};
  for (const auto& shape : shapes) {
    CAPTURE(at::IntArrayRef(shape));
    const at::Tensor x = at::randn(shape, at::kFloat) * 3.0 + 5.0;
    const at::Tensor up = at::randn(shape, at::kFloat);
    checkAgainstAten(x, up);                                // contiguous
    checkAgainstAten(channelsLast(x), channelsLast(up));    // channels-last
    checkAgainstAten(channelsLast(x), up);                  // upstream in the other layout
    checkAgainstAten(x.transpose(2, 4), up.transpose(2, 4));  // neither layout: made contiguous
  }
}

TEST_CASE("fused norm + leaky ReLU keeps the layout and does not depend on the thread count") {
  at::manual_seed(11);
  const at::Tensor x = at::randn({2, 12, 10, 10, 10});
  const at::Tensor gamma = at::randn({12}), beta = at::randn({12});
  const at::Tensor up = at::randn({2, 12, 10, 10, 10});
  const at::Tensor cl = channelsLast(x);
  CHECK(instanceNormLeakyRelu(x, gamma, beta, kEps, kSlope).is_contiguous());
  const at::Tensor ycl = instanceNormLeakyRelu(cl, gamma, beta, kEps, kSlope);
  CHECK(ycl.is_contiguous(at::MemoryFormat::ChannelsLast3d));
  CHECK_FALSE(ycl.is_contiguous());

  const int threads = at::get_num_threads();
  auto once = [&](const at::Tensor& input, int n) {
    at::set_num_threads(n);
    return run([](const at::Tensor& v, const at::Tensor& g,
                  const at::Tensor& b) { return instanceNormLeakyRelu(v, g, b, kEps, kSlope); },
               input, gamma, beta, up);
  };
  for (const at::Tensor& input : {x, cl}) {
    const Grads one = once(input, 1), two = once(input, 2);
    CHECK(at::equal(one.y, two.y));
    CHECK(at::equal(one.dx, two.dx));
    CHECK(at::equal(one.dgamma, two.dgamma));
    CHECK(at::equal(one.dbeta, two.dbeta));
  }
  at::set_num_threads(threads);
}

TEST_CASE("a 1x1x1 convolution of a channels-last input is one matrix product with conv3d's values and gradients") {
  at::manual_seed(3);
  const at::Tensor x0 = channelsLast(at::randn({2, 8, 5, 6, 7}));
  const at::Tensor w0 = at::randn({3, 8, 1, 1, 1}), b0 = at::randn({3});
  const at::Tensor up = at::randn({2, 3, 5, 6, 7});
  auto grads = [&](bool rows) {
    at::Tensor x = x0.detach().clone(at::MemoryFormat::Preserve).requires_grad_(true);
    at::Tensor w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    at::Tensor y = rows ? pointwiseConv3d(x, w, b) : at::conv3d(x.contiguous(), w, b);
    y.backward(up);
    return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  const auto fast = grads(true), ref = grads(false);
  CHECK(fast[0].is_contiguous(at::MemoryFormat::ChannelsLast3d));
  for (size_t i = 0; i < fast.size(); ++i) CHECK(relativeError(fast[i], ref[i]) < 1e-5);
  // A contiguous input goes through conv3d itself.
  CHECK(at::equal(pointwiseConv3d(x0.contiguous(), w0, b0), at::conv3d(x0.contiguous(), w0, b0)));
}

TEST_CASE("at::parallel_for in gyrus code runs on LibTorch's threads (compiled with OpenMP)") {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  std::set<int> seen;
  std::mutex lock;
  at::parallel_for(0, 2, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> guard(lock);
    seen.insert(at::get_thread_num());
  });
  CHECK(seen.size() == 2);  // without -fopenmp, at::parallel_for silently runs on one thread
  at::set_num_threads(threads);
}
