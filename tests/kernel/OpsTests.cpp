// The FOMO25 augmentations, op by op: the stencil routines and the reference
// implementations (runtime/src/Augment.cpp) against numpy/scipy fixtures
// (fixtures/make_fixtures.py); the interpreter against the reference with the values its
// binder drew; the draws' statistics (probability of firing, ranges), determinism by
// (seed, sample), the elastic field's statistics against the dense definition, and the
// FOMO25 preset end to end (target clean, mask nearest).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "Preprocess.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Philox.h"

using namespace gyrus;
using gyrus::ir::Shape3;

namespace {

rt::Volume head(const Shape3& s) {
  rt::Volume v = rt::Volume::zeros(s);
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        double u = (x - 0.5 * (s[0] - 1)) / (0.42 * s[0]), w = (y - 0.5 * (s[1] - 1)) / (0.45 * s[1]),
               t = (z - 0.5 * (s[2] - 1)) / (0.44 * s[2]);
        if (u * u + w * w + t * t < 1)
          v.at(x, y, z) = static_cast<float>(1.0 + 0.5 * std::sin(0.7 * x) * std::cos(0.3 * y) + 0.05 * z);
      }
  return v;
}

double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// ---- fixtures ----------------------------------------------------------------------------

const std::string kFixtures = GYRUS_KERNEL_FIXTURES;

std::vector<float> readBin(const std::string& name) {
  std::ifstream in(kFixtures + "/" + name, std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

nlohmann::json manifest() {
  std::ifstream in(kFixtures + "/fixtures.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

kir::Stencil stencil(kir::StencilOp op, std::vector<float> args) {
  kir::Stencil s;
  s.op = op;
  for (float a : args) s.args.push_back(kir::Operand::constant(a));
  return s;
}

// ---- one kernel of one pipeline --------------------------------------------------------------

struct Run {
  kir::Kernel kernel;
  kir::Binding binding;
  std::vector<float> image, target, mask;
  float slot(const std::string& suffix) const {
    const auto& names = kernel.program.slotNames;
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i].size() >= suffix.size() && names[i].compare(names[i].size() - suffix.size(), suffix.size(), suffix) == 0)
        return binding.slots[i];
    FAIL("no slot " << suffix);
    return 0;
  }
};

/// Lowers `ops` (one segment), binds (seed, sample), lets `adjust` change the binding,
/// and interprets.
template <class Adjust>
Run runWith(const std::vector<ir::PipelineOp>& ops, const rt::Volume& in, uint32_t sample, Adjust&& adjust,
        const rt::Volume* mask = nullptr, bool target = false, uint64_t seed = 7) {
  Run r;
  kir::LowerOptions o;
  o.mask = mask != nullptr;
  o.target = target;
  r.kernel = kir::lower(ir::Pipeline{ops}, o);
  r.binding = kir::bind(r.kernel, {in.shape, in.spacing}, seed, sample);
  adjust(r);
  const auto n = static_cast<size_t>(in.numel());
  r.image.assign(n, 0.0f);
  kir::Buffers b;
  b.image = in.data.data();
  b.outImage = r.image.data();
  if (target) {
    r.target.assign(n, 0.0f);
    b.outTarget = r.target.data();
  }
  if (mask != nullptr) {
    r.mask.assign(n, 0.0f);
    b.mask = mask->data.data();
    b.outMask = r.mask.data();
  }
  kir::interpret(r.kernel.program, r.binding, b);
  return r;
}
Run run(const std::vector<ir::PipelineOp>& ops, const rt::Volume& in, uint32_t sample = 0,
        const rt::Volume* mask = nullptr, bool target = false, uint64_t seed = 7) {
  return runWith(ops, in, sample, [](Run&) {}, mask, target, seed);
}

/// The 3x3 part of the kernel's one composite affine (from the output index to the source).
rt::Matrix3 compositeMatrix(const Run& r) {
  REQUIRE(r.kernel.composites.size() == 1);
  rt::Matrix3 m{};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) m[i][j] = r.binding.slots[static_cast<size_t>(r.kernel.composites[0].slot) + 4 * i + j];
  return m;
}

/// Sets the kernel's one composite affine to A (p - c) + c.
void setAboutCentre(Run& r, const rt::Matrix3& a, const Shape3& shape) {
  const auto first = static_cast<size_t>(r.kernel.composites.at(0).slot);
  for (size_t i = 0; i < 3; ++i) {
    double t = 0.5 * static_cast<double>(shape[i] - 1);
    for (size_t j = 0; j < 3; ++j) {
      r.binding.slots[first + 4 * i + j] = static_cast<float>(a[i][j]);
      t -= a[i][j] * 0.5 * static_cast<double>(shape[j] - 1);
    }
    r.binding.slots[first + 4 * i + 3] = static_cast<float>(t);
  }
}

}  // namespace

TEST_CASE("stencils and reference implementations match the numpy/scipy fixtures") {
  nlohmann::json m = manifest();
  const Shape3 shape{m["shape"][0].get<int64_t>(), m["shape"][1].get<int64_t>(), m["shape"][2].get<int64_t>()};
  rt::Volume input = rt::Volume::zeros(shape);
  input.data = readBin(m["input"].get<std::string>());
  REQUIRE(input.data.size() == static_cast<size_t>(input.numel()));
  for (const auto& c : m["cases"]) {
    const std::string op = c["op"].get<std::string>();
    CAPTURE(c.dump());
    std::vector<float> expected = readBin(c["file"].get<std::string>());
    std::vector<float> viaStencil = input.data;
    rt::Volume viaReference = input;
    if (op == "blur") {
      auto sigma = c["sigma"].get<float>();
      kir::runStencil(stencil(kir::StencilOp::Blur, {sigma, sigma, sigma}), viaStencil.data(), shape, {});
      rt::gaussianBlur(viaReference, sigma);
    } else if (op == "ghost") {
      auto axis = c["axis"].get<int>(), every = c["every"].get<int>();
      auto alpha = c["alpha"].get<float>();
      kir::runStencil(stencil(kir::StencilOp::Ghost, {float(axis), float(every), alpha}), viaStencil.data(), shape, {});
      rt::ghosting(viaReference, axis, every, alpha);
    } else if (op == "ring") {
      auto axis = c["axis"].get<int>();
      auto cut = c["cut"].get<float>();
      kir::runStencil(stencil(kir::StencilOp::Ring, {float(axis), cut}), viaStencil.data(), shape, {});
      rt::ringing(viaReference, axis, cut);
    } else if (op == "lowres") {
      std::vector<float> zoom = c["zoom"].get<std::vector<float>>();
      kir::runStencil(stencil(kir::StencilOp::LowRes, zoom), viaStencil.data(), shape, {});
      rt::lowres(viaReference, {zoom[0], zoom[1], zoom[2]});
    } else {
      // rotate, scale: the interpreter's gather with the fixture's matrix about the centre.
      rt::Matrix3 a{};
      for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 3; ++j) a[i][j] = c["matrix"][i][j].get<double>();
      Run r = runWith({ir::makeOp(op)}, input, 0, [&](Run& x) { setAboutCentre(x, a, shape); });
      viaStencil = r.image;
      viaReference = rt::warpAboutCentre(input, a);
      // Single-precision coordinates: trilinear weights differ in the last bits.
      CHECK(maxAbsDiff(viaStencil, expected) < 1e-4);
      CHECK(maxAbsDiff(viaReference.data, expected) < 1e-5);
      continue;
    }
    CHECK(maxAbsDiff(viaStencil, expected) < 1e-5);
    CHECK(maxAbsDiff(viaReference.data, expected) < 1e-5);
  }
}

TEST_CASE("each random operation, fired, in the interpreter follows its reference with the drawn values") {
  rt::Volume in = head({18, 16, 14});
  rt::Volume mask = in;
  for (float& f : mask.data) f = f > 1.1f ? 1.0f : 0.0f;
  for (uint32_t sample = 0; sample < 4; ++sample) {
    CAPTURE(sample);
    {
      Run r = run({ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 1.0}})}, in, sample, &mask);
      rt::Matrix3 a = compositeMatrix(r);
      // A rotation: orthonormal, angles within +-30 degrees about each axis.
      for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 3; ++j) {
          double dot = a[0][i] * a[0][j] + a[1][i] * a[1][j] + a[2][i] * a[2][j];
          CHECK(std::abs(dot - (i == j ? 1.0 : 0.0)) < 1e-6);
        }
      CHECK(std::abs(a[0][0] - 1.0) > 1e-6);  // fired
      CHECK(maxAbsDiff(r.image, rt::warpAboutCentre(in, a).data) < 1e-4);
      // The mask travels through the same map, nearest neighbour: {0, 1} and (but for
      // positions within rounding of a half voxel) the reference's.
      std::vector<float> expected = rt::warpAboutCentre(mask, a, true).data;
      size_t differ = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        CHECK((r.mask[i] == 0.0f || r.mask[i] == 1.0f));
        differ += r.mask[i] != expected[i];
      }
      CHECK(differ <= expected.size() / 200);
    }
    {
      // Elastic: the reference displaces by the same coarse field, drawn from the same
      // counters (after the binder's three draws: fires, alpha, sigma).
      ir::PipelineOp op = ir::makeOp("elastic", {{"p", 1.0}, {"alpha", ir::Interval{200, 300}}, {"sigma", ir::Interval{3, 5}}});
      Run r = run({op}, in, sample, &mask);
      kir::Draws d(7, sample, 0);
      CHECK(d.bernoulli(1.0));
      double alpha = d.uniform(200, 300), sigma = d.uniform(3, 5);
      std::array<rt::Volume, 3> field = rt::coarseElasticField(in.shape, alpha, sigma, d);
      CHECK(maxAbsDiff(r.image, rt::displace(in, field).data) < 1e-4);
      CHECK(r.image != in.data);
      std::vector<float> expected = rt::displace(mask, field, true).data;
      size_t differ = 0;
      for (size_t i = 0; i < expected.size(); ++i) differ += r.mask[i] != expected[i];
      CHECK(differ <= expected.size() / 200);
    }
    {
      Run r = run({ir::makeOp("scale", {{"p", 1.0}})}, in, sample);
      rt::Matrix3 a = compositeMatrix(r);
      CHECK(a[0][0] >= 0.9 - 1e-6);
      CHECK(a[0][0] <= 1.1 + 1e-6);
      CHECK(a[1][1] == a[0][0]);
      CHECK(maxAbsDiff(r.image, rt::warpAboutCentre(in, a).data) < 1e-4);
    }
    {
      Run r = run({ir::makeOp("blur", {{"p", 1.0}, {"p_channel", 1.0}})}, in, sample);
      float sigma = r.slot("sigma[0]");
      CHECK(sigma >= 0.0f);
      CHECK(sigma < 1.0f);
      rt::Volume expected = in;
      rt::gaussianBlur(expected, sigma);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("ghosting", {{"p", 1.0}})}, in, sample);
      auto axis = static_cast<int>(r.slot("axis_every_alpha[0]"));
      auto every = static_cast<int64_t>(r.slot("axis_every_alpha[1]"));
      float alpha = r.slot("axis_every_alpha[2]");
      CHECK(every >= 2);
      CHECK(every <= 10);
      CHECK(alpha >= 0.85f);
      CHECK(alpha <= 0.95f);
      rt::Volume expected = in;
      rt::ghosting(expected, axis, every, alpha);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("ringing", {{"p", 1.0}, {"cut", ir::Interval{0.4, 0.9}}})}, in, sample);
      auto axis = static_cast<int>(r.slot("axis_cut[0]"));
      float cut = r.slot("axis_cut[1]");
      CHECK(cut >= 0.4f);
      CHECK(cut <= 0.9f);
      rt::Volume expected = in;
      rt::ringing(expected, axis, cut);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("lowres", {{"p", 1.0}, {"p_channel", 1.0}, {"axis_p", 1.0}})}, in, sample);
      std::array<double, 3> zoom{r.slot("zoom[0]"), r.slot("zoom[1]"), r.slot("zoom[2]")};
      for (double z : zoom) {
        CHECK(z >= 0.5);
        CHECK(z <= 1.0);
      }
      rt::Volume expected = in;
      rt::lowres(expected, zoom);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("bias_field", {{"p", 1.0}, {"strength", 2.0}})}, in, sample);
      const double q = 2.0 / 4.0;
      std::array<double, 3> c{r.slot("coefficients[1]") / (2 * q), r.slot("coefficients[2]") / (2 * q),
                              r.slot("coefficients[3]") / (2 * q)};
      rt::Volume expected = in;
      rt::biasField(expected, c, 2.0);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
      for (size_t i = 0; i < in.data.size(); ++i) {
        CHECK(r.image[i] >= 0.0f);  // always positive: nothing is blanked
        if (in.data[i] > 0.0f) CHECK(r.image[i] > 0.0f);
      }
    }
    {
      Run r = run({ir::makeOp("brightness", {{"p", 1.0}})}, in, sample);
      float f = r.slot("factor");
      CHECK(f >= 0.75f);
      CHECK(f <= 1.25f);
      std::vector<float> expected = in.data;
      for (float& v : expected) v *= f;
      CHECK(maxAbsDiff(r.image, expected) < 1e-6);
    }
    {
      Run r = run({ir::makeOp("contrast", {{"p", 1.0}})}, in, sample);
      rt::Volume expected = in;
      rt::contrast(expected, r.slot("factor"));
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("gamma", {{"range", ir::Interval{0.5, 2.0}}, {"invert", 1.0}, {"halves", true}})}, in, sample);
      CHECK(r.slot("invert") == 1.0f);
      rt::Volume expected = in;
      rt::gammaTransform(expected, r.slot("exponent"), true);
      CHECK(maxAbsDiff(r.image, expected.data) < 1e-5);
    }
    {
      Run r = run({ir::makeOp("mul_noise", {{"p", 1.0}, {"sigma", ir::Interval{0.1, 0.2}}})}, in, sample);
      const double sigma = r.slot("sigma");
      CHECK(sigma >= 0.1 - 1e-7);
      CHECK(sigma <= 0.2 + 1e-7);
      double sum = 0, sq = 0;
      int64_t count = 0;
      for (size_t i = 0; i < in.data.size(); ++i) {
        if (in.data[i] == 0.0f) {
          CHECK(r.image[i] == 0.0f);
          continue;
        }
        double n = (r.image[i] / in.data[i] - 1.0) / sigma;
        sum += n;
        sq += n * n;
        ++count;
      }
      CHECK(std::abs(sum / count) < 0.1);
      CHECK(std::abs(std::sqrt(sq / count) - 1.0) < 0.1);
    }
  }
}

TEST_CASE("every random operation fires with its probability, is the identity otherwise, and draws by (seed, sample)") {
  rt::Volume in = head({12, 11, 10});
  struct Case {
    ir::PipelineOp op;
    double p;  // the probability of firing
  };
  std::vector<Case> cases = {
      {ir::makeOp("elastic", {{"p", 0.3}, {"sigma", ir::Interval{3, 4}}, {"alpha", ir::Interval{200, 300}}}), 0.3},
      {ir::makeOp("rotate", {{"p", 0.3}, {"axis_p", 1.0}}), 0.3},
      {ir::makeOp("scale", {{"p", 0.3}}), 0.3},
      {ir::makeOp("noise", {{"sigma", 0.1}, {"p", 0.3}}), 0.3},
      {ir::makeOp("blur", {{"p", 0.6}, {"p_channel", 0.5}, {"sigma", ir::Interval{0.5, 1}}}), 0.3},
      {ir::makeOp("mul_noise", {{"p", 0.3}}), 0.3},
      {ir::makeOp("ghosting", {{"p", 0.3}}), 0.3},
      {ir::makeOp("ringing", {{"p", 0.3}, {"cut", ir::Interval{0.3, 0.6}}}), 0.3},
      {ir::makeOp("lowres", {{"p", 0.6}, {"p_channel", 0.5}, {"axis_p", 1.0}, {"zoom", ir::Interval{0.5, 0.6}}}), 0.3},
      {ir::makeOp("bias_field", {{"p", 0.3}}), 0.3},
      {ir::makeOp("brightness", {{"p", 0.3}}), 0.3},
  };
  const int samples = 300;
  for (const Case& c : cases) {
    CAPTURE(ir::print(c.op));
    CHECK(ir::verify(c.op).empty());
    int fired = 0;
    for (uint32_t sample = 0; sample < samples; ++sample) {
      Run r = run({c.op}, in, sample);
      fired += r.image != in.data;
      if (sample < 3) CHECK(run({c.op}, in, sample).image == r.image);  // (seed, sample) decides
    }
    // Binomial(300, 0.3): sd 7.9 samples.
    CHECK(std::abs(fired - c.p * samples) < 4 * std::sqrt(samples * c.p * (1 - c.p)));
  }
  // Gamma and contrast: the identity is exponent 1 (factor 1), which is exact up to rounding.
  int gammas = 0, contrasts = 0;
  for (uint32_t sample = 0; sample < samples; ++sample) {
    gammas += run({ir::makeOp("gamma", {{"p", 0.3}})}, in, sample).slot("exponent") != 1.0f;
    contrasts += run({ir::makeOp("contrast", {{"p", 0.3}})}, in, sample).slot("factor") != 1.0f;
  }
  CHECK(std::abs(gammas - 90) < 32);
  CHECK(std::abs(contrasts - 90) < 32);
  // A rotation about one axis at a time: axis_p.
  int axes = 0;
  for (uint32_t sample = 0; sample < samples; ++sample) {
    rt::Matrix3 a = compositeMatrix(run({ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 0.66}})}, in, sample));
    axes += std::abs(a[1][2]) > 1e-9 || std::abs(a[2][1]) > 1e-9 ? 1 : 0;  // fired about x (alone or with others)
  }
  CHECK(axes > 150);  // 0.66 of 300 about x, give or take
}

TEST_CASE("elastic: the coarse field has the dense definition's statistics") {
  // The control points: standard deviation alpha sqrt(Σ g^2 / 3) (elasticSd), here over
  // 60 samples of 16^3 x 3 values.
  for (double sigma : {4.0, 25.0}) {
    const double alpha = 400.0, expected = kir::elasticSd(alpha, sigma);
    double sq = 0;
    size_t count = 0;
    for (uint32_t sample = 0; sample < 60; ++sample) {
      kir::Draws d(3, sample, 0);
      std::vector<float> field(3 * 16 * 16 * 16);
      double h = 95.0 / 15.0;
      kir::elasticField(d, {16, 16, 16}, {h, h, h}, alpha, sigma, field);
      for (float f : field) sq += static_cast<double>(f) * f;
      count += field.size();
    }
    CAPTURE(sigma);
    CHECK(std::sqrt(sq / static_cast<double>(count)) == doctest::Approx(expected).epsilon(0.1));
  }
  // The dense definition (the reference: batchgenerators' gaussian_filter of U(-1, 1)
  // noise times alpha) has that standard deviation away from its zero-padded border.
  {
    rt::Rng rng(4);
    const double alpha = 50.0, sigma = 3.0;
    double sq = 0;
    size_t count = 0;
    for (int rep = 0; rep < 3; ++rep) {
      std::array<rt::Volume, 3> d = rt::denseElasticField({40, 40, 40}, alpha, sigma, rng);
      for (const rt::Volume& c : d)
        for (int64_t z = 13; z < 27; ++z)
          for (int64_t y = 13; y < 27; ++y)
            for (int64_t x = 13; x < 27; ++x) {
              sq += static_cast<double>(c.at(x, y, z)) * c.at(x, y, z);
              ++count;
            }
    }
    CHECK(std::sqrt(sq / static_cast<double>(count)) == doctest::Approx(kir::elasticSd(alpha, sigma)).epsilon(0.1));
  }
  // Between control points the trilinear field keeps most of it: the displacement of every
  // voxel, read through a ramp image (linear interpolation of a linear image is exact),
  // with the baseline's σ on a 96-voxel axis (control points 6.3 voxels apart).
  rt::Volume ramp = rt::Volume::zeros({96, 8, 8});
  for (int64_t z = 0; z < 8; ++z)
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 96; ++x) ramp.at(x, y, z) = static_cast<float>(x + 100);
  const ir::PipelineOp op = ir::makeOp("elastic", {{"p", 1.0}, {"alpha", ir::Interval{400, 400.001}},
                                                   {"sigma", ir::Interval{20, 20.001}}});
  double sq = 0;
  size_t count = 0;
  for (uint32_t sample = 0; sample < 40; ++sample) {
    Run r = run({op}, ramp, sample);
    // Away from the borders, where a displaced position would read the zero outside.
    for (int64_t z = 2; z < 6; ++z)
      for (int64_t y = 2; y < 6; ++y)
        for (int64_t x = 4; x < 92; ++x) {
          double dx = r.image[ramp.index(x, y, z)] - ramp.at(x, y, z);
          sq += dx * dx;
          ++count;
        }
  }
  // The ramp's 8-voxel y/z extent spans only part of a cell: allow 20 %.
  CHECK(std::sqrt(sq / static_cast<double>(count)) == doctest::Approx(kir::elasticSd(400, 20)).epsilon(0.2));
}

TEST_CASE("the FOMO25 preset is one kernel, its target the spatially augmented clean image, its mask nearest") {
  rt::Volume in = head({24, 22, 20});
  rt::Volume mask = in;
  for (float& f : mask.data) f = f > 1.2f ? 1.0f : 0.0f;
  auto always = [](const char* name) { return ir::makeOp(name, {{"p", 1.0}}); };
  std::vector<ir::PipelineOp> spatial = {
      ir::makeOp("elastic", {{"p", 1.0}, {"sigma", ir::Interval{4, 6}}, {"alpha", ir::Interval{20, 60}}}),
      ir::makeOp("rotate", {{"p", 1.0}}), always("scale")};
  std::vector<ir::PipelineOp> all = spatial;
  for (ir::PipelineOp op :
       {ir::makeOp("noise", {{"sigma", 1e-4}, {"sigma_hi", 1e-3}, {"p", 0.2}}), always("blur"), always("mul_noise"),
        always("ghosting"), always("ringing"), always("lowres"), always("bias_field"),
        ir::makeOp("gamma", {{"range", ir::Interval{0.5, 2}}, {"p", 0.2}, {"invert", 0.05}, {"halves", true}})})
    all.push_back(op);
  for (uint32_t sample = 0; sample < 3; ++sample) {
    Run full = run(all, in, sample, &mask, true);
    Run geometry = run(spatial, in, sample, &mask, false);
    CHECK(full.target == geometry.image);  // the same draws (keyed by the operation's index)
    CHECK(full.mask == geometry.mask);
    CHECK(full.image != full.target);
    for (float f : full.mask) CHECK((f == 0.0f || f == 1.0f));
  }
  CHECK(kir::lowerSegments(ir::Pipeline{all}).size() == 1);
  const std::string text = kir::print(kir::lower(ir::Pipeline{all}).program);
  for (const char* piece : {"displace f0", "stencil image blur", "stencil image ghost", "stencil image ring",
                            "stencil image lowres", "bias(", "mul_noise(", "field f0 16x16x16 x3"})
    CHECK(text.find(piece) != std::string::npos);
}

TEST_CASE("noise and gamma with their later parameters at their defaults lower as before") {
  // sigma stays a constant when it always applies with one value: the kernels of files
  // written before `p` and `sigma_hi` keep their text and hash.
  CHECK(kir::print(kir::lower(ir::Pipeline{{ir::makeOp("noise")}}).program).find("add_noise(0.0500000007)") !=
        std::string::npos);
  CHECK(kir::print(kir::lower(ir::Pipeline{{ir::makeOp("noise", {{"p", 0.5}})}}).program).find("add_noise(s0)") !=
        std::string::npos);
  // Gamma's exponent is the first uniform of its draws, as before.
  rt::Volume in = head({10, 10, 10});
  for (uint32_t sample = 0; sample < 5; ++sample) {
    kir::Draws d(7, sample, 0);
    double expected = 0.7 + 0.8 * d.uniform();
    CHECK(run({ir::makeOp("gamma")}, in, sample).slot("exponent") == static_cast<float>(expected));
  }
}
