// rt::runPipelineCuda (the CUDA back end on device tensors) against the reference
// interpreter, on a GPU: masks bit for bit, images and targets to 1e-4 (relative; CUDA's
// powf/expf/logf/cosf differ from glibc's by a few ulp, and a stencil spreads that to
// its neighbours), percentiles exactly. Exits 77
// (ctest: skipped) where no GPU or no CUDA driver is usable.
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "CudaKernels.h"
#include "gyrus/PipelineOps.h"
#include "gyrus/kernel/CudaLaunch.h"

using namespace gyrus;
using ir::Shape3;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  std::printf("FAIL: %s\n", what.c_str());
  ++failures;
}

std::vector<float> head(const Shape3& s) {
  std::vector<float> v(static_cast<size_t>(s[0] * s[1] * s[2]), 0.0f);
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        double u = (x - 0.5 * (s[0] - 1)) / (0.4 * s[0]), w = (y - 0.5 * (s[1] - 1)) / (0.45 * s[1]),
               t = (z - 0.5 * (s[2] - 1)) / (0.42 * s[2]);
        if (u * u + w * w + t * t < 1)
          v[static_cast<size_t>(x + s[0] * (y + s[1] * z))] =
              static_cast<float>(1.0 + 0.5 * std::sin(0.7 * x) * std::cos(0.3 * y) + 0.1 * z);
      }
  return v;
}

std::vector<float> toHost(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

double compare(const std::vector<float>& ref, const torch::Tensor& got, const std::string& what, bool exact) {
  std::vector<float> g = toHost(got);
  expect(g.size() == ref.size(), what + ": size");
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size() && i < g.size(); ++i) {
    double d = std::abs(static_cast<double>(ref[i]) - g[i]);
    worst = std::max(worst, d);
    if (exact ? std::memcmp(&ref[i], &g[i], 4) != 0 : d > 1e-4 * std::max(1.0, std::abs(static_cast<double>(ref[i]))))
      ++bad;
  }
  expect(bad == 0, what + ": " + std::to_string(bad) + " voxels differ");
  return worst;
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::puts("skipped: no CUDA device");
    return 77;
  }
  std::string why;
  if (!kir::cuda::deviceAvailable(&why)) {
    std::printf("skipped: %s\n", why.c_str());
    return 77;
  }
  const Shape3 shape{61, 70, 53};
  const kir::Grid grid{shape, {1.2, 0.9, 2.0}};
  std::vector<float> image = head(shape), mask(image.size());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = image[i] > 1.2f ? 1.0f : 0.0f;
  const torch::Device cuda(torch::kCUDA, 0);
  auto onDevice = [&](std::vector<float>& v) {
    return torch::from_blob(v.data(), {shape[2], shape[1], shape[0]}, torch::kFloat32).to(cuda);
  };
  torch::Tensor dImage = onDevice(image), dMask = onDevice(mask);

  std::vector<std::pair<ir::Pipeline, kir::LowerOptions>> cases = {
      {ir::Pipeline{{ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{48, 48, 48}}}),
                     ir::makeOp("clip"), ir::makeOp("zscore")}},
       {.target = false, .mask = true}},
      {ir::Pipeline{{ir::makeOp("flip"), ir::makeOp("gamma"), ir::makeOp("noise", {{"sigma", 0.1}})}},
       {.target = true, .mask = false}},
      {ir::Pipeline{{ir::makeOp("zscore", {{"nonzero", false}}), ir::makeOp("crop", {{"size", Shape3{40, 40, 40}}}),
                     ir::makeOp("noise", {{"sigma", 0.2}})}},
       {.target = true, .mask = true}},
      // The FOMO25 augmentations, every one applied: displacement field, rotation, the
      // pointwise ones and the stencils (the CPU routines on a host copy).
      {ir::Pipeline{{ir::makeOp("elastic", {{"p", 1.0}}), ir::makeOp("rotate", {{"p", 1.0}}),
                     ir::makeOp("scale", {{"p", 1.0}}), ir::makeOp("noise", {{"p", 1.0}}), ir::makeOp("blur", {{"p", 1.0}}),
                     ir::makeOp("mul_noise", {{"p", 1.0}}), ir::makeOp("ghosting", {{"p", 1.0}}),
                     ir::makeOp("ringing", {{"p", 1.0}}), ir::makeOp("lowres", {{"p", 1.0}}),
                     ir::makeOp("bias_field", {{"p", 1.0}}), ir::makeOp("gamma", {{"p", 1.0}}),
                     ir::makeOp("brightness", {{"p", 1.0}}), ir::makeOp("contrast", {{"p", 1.0}})}},
       {.target = true, .mask = true}},
  };
  double worst = 0;
  for (const auto& [pipeline, options] : cases) {
    rt::CompiledPipeline c = rt::compilePipeline(pipeline, options);
    for (uint32_t sample : {0u, 7u}) {
      const std::string what = ir::print(pipeline) + " sample " + std::to_string(sample);
      kir::Result ref = kir::apply(c.segments, grid, image.data(), options.mask ? mask.data() : nullptr, 11, sample,
                                   kir::interpretKernel);
      rt::DeviceResult got = rt::runPipelineCuda(c, dImage, grid, options.mask ? &dMask : nullptr, 11, sample);
      expect(got.grid.shape == ref.grid.shape, what + ": grid");
      worst = std::max(worst, compare(ref.image, got.image, what + ": image", false));
      if (options.target) worst = std::max(worst, compare(ref.target, got.target, what + ": target", false));
      if (options.mask) compare(ref.mask, got.mask, what + ": mask", true);
    }
  }
  std::printf("%s: largest difference from the interpreter %.3g\n", failures ? "FAILED" : "passed", worst);
  return failures ? 1 : 0;
}
