// Preprocessing: crop/pad geometry, z-score statistics, percentile clipping, pipelines.
#include <doctest/doctest.h>

#include <array>
#include <set>
#include <string>
#include <cmath>
#include <stdexcept>

#include "Preprocess.h"

using namespace gyrus::rt;
using gyrus::ir::Shape3;

namespace {

/// A volume whose voxel value encodes its coordinates (1-based, so never 0).
Volume ramp(const Shape3& shape) {
  Volume v = Volume::zeros(shape);
  for (int64_t z = 0; z < shape[2]; ++z)
    for (int64_t y = 0; y < shape[1]; ++y)
      for (int64_t x = 0; x < shape[0]; ++x) v.at(x, y, z) = static_cast<float>(1 + x + 100 * y + 10000 * z);
  return v;
}

struct Stats {
  double mean, std;
  int64_t count;
};
Stats nonzeroStats(const Volume& v) {
  double s = 0, sq = 0;
  int64_t n = 0;
  for (float f : v.data)
    if (f != 0.0f) {
      s += f;
      sq += static_cast<double>(f) * f;
      ++n;
    }
  double m = s / static_cast<double>(n);
  return {m, std::sqrt(sq / static_cast<double>(n) - m * m), n};
}

}  // namespace

TEST_CASE("centre crop takes the middle; odd differences crop the extra voxel at the high end") {
  Volume in = ramp({40, 40, 40});
  in.spacing = {1.0, 1.2, 1.5};
  Volume out = centerCropOrPad(in, {32, 32, 32});
  CHECK(out.shape == Shape3{32, 32, 32});
  CHECK(out.spacing == in.spacing);
  CHECK(out.at(0, 0, 0) == in.at(4, 4, 4));
  CHECK(out.at(31, 31, 31) == in.at(35, 35, 35));
  Volume odd = centerCropOrPad(ramp({5, 6, 7}), {4, 6, 4});
  CHECK(odd.at(0, 0, 0) == ramp({5, 6, 7}).at(0, 0, 1));
}

TEST_CASE("padding centres the input in zeros; mixed crop and pad per axis") {
  Volume in = ramp({10, 10, 10});
  Volume out = centerCropOrPad(in, {14, 10, 6});
  CHECK(out.shape == Shape3{14, 10, 6});
  CHECK(out.at(0, 0, 0) == 0.0f);
  CHECK(out.at(1, 5, 3) == 0.0f);
  CHECK(out.at(2, 0, 0) == in.at(0, 0, 2));
  CHECK(out.at(11, 9, 5) == in.at(9, 9, 7));
  CHECK(out.at(12, 9, 5) == 0.0f);
}

TEST_CASE("z-score over non-zero voxels keeps the background at 0") {
  Volume v = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  zscore(v, /*nonzeroOnly=*/true);
  Stats s = nonzeroStats(v);
  CHECK(s.count == 512);
  CHECK(s.mean == doctest::Approx(0.0).scale(1.0));
  CHECK(s.std == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(v.at(0, 0, 0) == 0.0f);
}

TEST_CASE("z-score over all voxels moves the background too") {
  Volume v = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  zscore(v, /*nonzeroOnly=*/false);
  double s = 0, sq = 0;
  for (float f : v.data) {
    s += f;
    sq += static_cast<double>(f) * f;
  }
  double n = static_cast<double>(v.data.size());
  CHECK(s / n == doctest::Approx(0.0).scale(1.0));
  CHECK(sq / n == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(v.at(0, 0, 0) < 0.0f);
}

TEST_CASE("percentile clipping uses numpy's linear interpolation over non-zero voxels") {
  Volume v = Volume::zeros({101, 1, 2});
  for (int64_t x = 0; x < 101; ++x) v.at(x, 0, 0) = static_cast<float>(x + 1);  // 1..101, z=1 stays 0
  clipPercentiles(v, 0.1, 0.905);
  CHECK(v.at(0, 0, 0) == 11.0f);    // 10th percentile of 1..101
  CHECK(v.at(50, 0, 0) == 51.0f);   // untouched
  CHECK(v.at(100, 0, 0) == 91.5f);  // 90.5th: halfway between 91 and 92
  CHECK(v.at(0, 0, 1) == 0.0f);     // background not lifted
  CHECK_THROWS_AS(clipPercentiles(v, 0.9, 0.1), std::invalid_argument);
}

TEST_CASE("applyPipeline applies the operations in order") {
  gyrus::ir::Pipeline p;
  p.ops = {gyrus::ir::makeOp("crop", {{"size", Shape3{6, 6, 6}}}), gyrus::ir::makeOp("zscore")};
  Volume out = applyPipeline(p, ramp({10, 10, 10}));
  CHECK(out.shape == Shape3{6, 6, 6});
  Stats s = nonzeroStats(out);
  CHECK(s.mean == doctest::Approx(0.0).scale(1.0));
  CHECK(s.std == doctest::Approx(1.0).epsilon(1e-5));
}

// --- random augmentations -------------------------------------------------------------

namespace {

using gyrus::ir::PipelineOp;

/// The operation called `name` with its registry defaults, then `values`.
PipelineOp op(std::string_view name, std::initializer_list<std::pair<std::string_view, gyrus::ir::OpValue>> values = {}) {
  return gyrus::ir::makeOp(name, values);
}

/// A 32^3 volume with a zero background and a 20^3 "head" of value `head`.
Volume boxHead(float head) {
  Volume v = Volume::zeros({32, 32, 32});
  for (int64_t z = 6; z < 26; ++z)
    for (int64_t y = 6; y < 26; ++y)
      for (int64_t x = 6; x < 26; ++x) v.at(x, y, z) = head;
  return v;
}


}  // namespace

TEST_CASE("mirror reverses exactly the chosen axes and is an involution") {
  const Shape3 shape{5, 6, 7};
  const Volume in = ramp(shape);
  for (int mask = 0; mask < 8; ++mask) {
    FlipAxes axes{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    Volume v = in;
    mirror(v, axes);
    bool mapped = true;
    for (int64_t z = 0; z < 7; ++z)
      for (int64_t y = 0; y < 6; ++y)
        for (int64_t x = 0; x < 5; ++x)
          mapped = mapped && v.at(x, y, z) == in.at(axes[0] ? 4 - x : x, axes[1] ? 5 - y : y, axes[2] ? 6 - z : z);
    CHECK_MESSAGE(mapped, "axes mask " << mask);
    CHECK((mask == 0) == (v.data == in.data));
    mirror(v, axes);
    CHECK_MESSAGE(v.data == in.data, "axes mask " << mask);
  }
}

TEST_CASE("flip with p = 0 is the identity, with p = 1 mirrors all three axes") {
  const Volume in = ramp({5, 6, 7});
  Rng rng(3);
  gyrus::ir::Pipeline p;
  p.ops = {op("flip", {{"p", 0.0}})};
  for (int i = 0; i < 20; ++i) {
    Volume v = in;
    applyAugmentations(p, v, nullptr, rng);
    CHECK(v.data == in.data);
  }
  p.ops[0].set("p", 1.0);
  Volume v = in;
  applyAugmentations(p, v, nullptr, rng);
  CHECK(v.at(0, 0, 0) == in.at(4, 5, 6));
  CHECK(v.at(1, 2, 3) == in.at(3, 3, 3));
  Volume all = in;
  mirror(all, {true, true, true});
  CHECK(v.data == all.data);
}

TEST_CASE("flip draws each axis independently with probability p") {
  Rng rng(11);
  int counts[3] = {0, 0, 0}, both = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    FlipAxes a = drawFlip(0.3, rng);
    for (int k = 0; k < 3; ++k) counts[k] += a[static_cast<size_t>(k)];
    both += a[0] && a[2];
  }
  for (int c : counts) CHECK(static_cast<double>(c) / kDraws == doctest::Approx(0.3).epsilon(0.05));
  CHECK(static_cast<double>(both) / kDraws == doctest::Approx(0.09).epsilon(0.1));
  CHECK_THROWS_AS(drawFlip(1.5, rng), std::invalid_argument);
}

TEST_CASE("noise has the requested std on the head and leaves the background at zero") {
  const Volume clean = boxHead(2.0f);
  Volume v = clean;
  Rng rng(5);
  addNoise(v, 0.5, rng);
  double s = 0, sq = 0;
  int64_t n = 0;
  bool backgroundZero = true;
  for (size_t i = 0; i < v.data.size(); ++i) {
    if (clean.data[i] == 0.0f) {
      backgroundZero = backgroundZero && v.data[i] == 0.0f;
      continue;
    }
    double d = static_cast<double>(v.data[i]) - clean.data[i];
    s += d;
    sq += d * d;
    ++n;
  }
  CHECK(backgroundZero);
  REQUIRE(n == 8000);
  double mean = s / static_cast<double>(n);
  CHECK(mean == doctest::Approx(0.0).scale(1.0).epsilon(0.02));  // standard error 0.0056
  CHECK(std::sqrt(sq / static_cast<double>(n) - mean * mean) == doctest::Approx(0.5).epsilon(0.03));
  Volume same = clean;
  addNoise(same, 0.0, rng);
  CHECK(same.data == clean.data);
  CHECK_THROWS_AS(addNoise(same, -1.0, rng), std::invalid_argument);
}

TEST_CASE("gamma keeps the head's min/max, maps by the normalised power, is the identity at 1") {
  Volume v = Volume::zeros({4, 1, 1});
  v.at(0, 0, 0) = -1.0f;
  v.at(1, 0, 0) = 2.0f;
  v.at(2, 0, 0) = 3.0f;  // v.at(3) is background
  Volume g = v;
  gammaTransform(g, 2.0);
  CHECK(g.at(0, 0, 0) == -1.0f);
  CHECK(g.at(1, 0, 0) == doctest::Approx(1.25));  // -1 + 4 * ((2 + 1) / 4)^2
  CHECK(g.at(2, 0, 0) == 3.0f);
  CHECK(g.at(3, 0, 0) == 0.0f);

  // On a z-scored head (negative values), any exponent keeps the range and the order.
  Volume z = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  zscore(z, true);
  auto range = [](const Volume& w) {
    float lo = 1e30f, hi = -1e30f;
    for (float f : w.data)
      if (f != 0.0f) lo = std::min(lo, f), hi = std::max(hi, f);
    return std::pair{lo, hi};
  };
  Rng rng(9);
  for (int i = 0; i < 5; ++i) {
    Volume w = z;
    double e = randomGamma(w, 0.7, 1.5, rng);
    CHECK(e >= 0.7);
    CHECK(e <= 1.5);
    CHECK(range(w).first == doctest::Approx(range(z).first));
    CHECK(range(w).second == doctest::Approx(range(z).second));
    CHECK(w.at(0, 0, 0) == 0.0f);
    CHECK(w.at(3, 3, 3) < w.at(4, 3, 3));  // monotone
  }
  Volume one = z;
  gammaTransform(one, 1.0);
  for (size_t i = 0; i < z.data.size(); ++i) REQUIRE(one.data[i] == doctest::Approx(z.data[i]).epsilon(1e-6));
  Volume bent = z;
  gammaTransform(bent, 2.0);
  CHECK(bent.at(5, 5, 5) < z.at(5, 5, 5));  // exponent > 1 darkens the middle of the range
  CHECK_THROWS_AS(gammaTransform(bent, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(randomGamma(bent, 1.5, 0.7, rng), std::invalid_argument);
}

TEST_CASE("augmented views: deterministic given the seed; the target gets the flips only") {
  gyrus::ir::Pipeline p;
  p.ops = {op("flip", {{"p", 1.0}}), op("noise", {{"sigma", 0.1}}),
           op("gamma", {{"range", gyrus::ir::Interval{0.7, 1.5}}})};
  Volume clean = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  zscore(clean, true);
  auto view = [&](uint64_t seed, bool withTarget) {
    Rng rng(seed);
    std::pair<Volume, Volume> out{clean, clean};
    applyAugmentations(p, out.first, withTarget ? &out.second : nullptr, rng);
    return out;
  };
  auto [a, targetA] = view(42, true);
  auto [b, targetB] = view(42, false);
  CHECK(a.data == b.data);  // same seed, same view; the target does not change the draws
  CHECK(view(43, true).first.data != a.data);
  Volume flipped = clean;
  mirror(flipped, {true, true, true});
  CHECK(targetA.data == flipped.data);  // clean image, view geometry
  CHECK(a.data != flipped.data);
  CHECK(targetB.data == clean.data);    // untouched without a target
}

TEST_CASE("deterministic operations after a random one apply, in order, to input and target") {
  gyrus::ir::Pipeline p;
  p.ops = {op("noise", {{"sigma", 50.0}}), op("zscore"), op("crop", {{"size", Shape3{8, 8, 8}}})};
  Volume in = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  Volume target = in;
  Rng rng(1);
  applyAugmentations(p, in, &target, rng);
  CHECK(in.shape == Shape3{8, 8, 8});
  CHECK(target.shape == Shape3{8, 8, 8});
  Stats si = nonzeroStats(in), st = nonzeroStats(target);
  CHECK(si.mean == doctest::Approx(0.0).scale(1.0));
  CHECK(si.std == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(st.std == doctest::Approx(1.0).epsilon(1e-4));
  Volume expected = in;
  expected = centerCropOrPad(ramp({8, 8, 8}), {12, 12, 12});
  zscore(expected, true);
  expected = centerCropOrPad(expected, {8, 8, 8});
  CHECK(target.data == expected.data);
  CHECK(in.data != target.data);
}

TEST_CASE("pipelines split at the first random operation; evaluation drops random ones") {
  gyrus::ir::Pipeline p;
  p.ops = {op("crop", {{"size", Shape3{6, 6, 6}}}), op("zscore"), op("flip"), op("clip"), op("noise")};
  SplitPipeline s = splitAtFirstRandom(p);
  REQUIRE(s.prefix.ops.size() == 2);
  REQUIRE(s.suffix.ops.size() == 3);
  CHECK(s.prefix.ops[1].name == "zscore");
  CHECK(s.suffix.ops[0].name == "flip");
  CHECK(s.suffix.ops[1].name == "clip");
  gyrus::ir::Pipeline det = withoutRandomOps(p);
  REQUIRE(det.ops.size() == 3);
  CHECK(det.ops[2].name == "clip");
  CHECK(outputShape(p, {10, 12, 14}) == Shape3{6, 6, 6});
  CHECK(outputShape(withoutRandomOps(gyrus::ir::Pipeline{{op("noise")}}), {10, 12, 14}) == Shape3{10, 12, 14});
  CHECK(splitAtFirstRandom(det).suffix.ops.empty());
  CHECK_THROWS_AS(applyPipeline(p, ramp({10, 10, 10})), std::invalid_argument);
}

namespace {

/// A volume of `shape` and isotropic `mm` spacing holding a + bx*x + by*y + bz*z.
Volume linear(const Shape3& shape, double mm, float a, float bx, float by, float bz) {
  Volume v = Volume::zeros(shape);
  v.spacing = {mm, mm, mm};
  for (int64_t z = 0; z < shape[2]; ++z)
    for (int64_t y = 0; y < shape[1]; ++y)
      for (int64_t x = 0; x < shape[0]; ++x)
        v.at(x, y, z) = a + bx * static_cast<float>(x) + by * static_cast<float>(y) + bz * static_cast<float>(z);
  return v;
}

}  // namespace

TEST_CASE("resample: identity when the spacing already is the target") {
  Volume v = ramp({7, 5, 6});
  Volume r = resample(v, 1.0);
  CHECK(r.shape == v.shape);
  CHECK(r.data == v.data);  // bit for bit
  CHECK(r.spacing == std::array<double, 3>{1.0, 1.0, 1.0});
  // One axis already at the target is copied, the others resampled.
  v.spacing = {1.0, 2.0, 1.0};
  Volume s = resample(v, 1.0);
  CHECK(s.shape == Shape3{7, 10, 6});
}

TEST_CASE("resample: a 2 mm volume doubles its shape at 1 mm and keeps a linear ramp in the interior") {
  // Input voxel i of a 2 mm axis of n voxels sits at output index 2i + 0.5 (centres
  // aligned): the ramp a + b*i becomes a + b*(j - 0.5)/2.
  Volume v = linear({10, 8, 6}, 2.0, 3.0f, 1.0f, -2.0f, 0.5f);
  Volume r = resample(v, 1.0);
  REQUIRE(r.shape == Shape3{20, 16, 12});
  CHECK(r.spacing == std::array<double, 3>{1.0, 1.0, 1.0});
  int64_t checked = 0;
  for (int64_t z = 1; z < 11; ++z)
    for (int64_t y = 1; y < 15; ++y)
      for (int64_t x = 1; x < 19; ++x) {
        double ix = (static_cast<double>(x) - 0.5) / 2.0, iy = (static_cast<double>(y) - 0.5) / 2.0,
               iz = (static_cast<double>(z) - 0.5) / 2.0;
        double expected = 3.0 + ix - 2.0 * iy + 0.5 * iz;
        REQUIRE(r.at(x, y, z) == doctest::Approx(expected).epsilon(1e-6));
        ++checked;
      }
  CHECK(checked == 18 * 14 * 10);
  // At the faces the input's edge values extend outwards (index clamped at 0 and n-1).
  CHECK(r.at(0, 1, 1) == doctest::Approx(r.at(1, 1, 1) - 0.25));
  CHECK(r.at(0, 1, 1) == doctest::Approx(v.at(0, 0, 0) - 2.0 * 0.25 + 0.5 * 0.25));
}

TEST_CASE("resample: downsampling keeps the centre; shape rounds, at least one voxel") {
  Volume v = linear({9, 9, 9}, 1.0, 0.0f, 1.0f, 0.0f, 0.0f);
  Volume r = resample(v, 3.0);
  REQUIRE(r.shape == Shape3{3, 3, 3});
  CHECK(r.spacing == std::array<double, 3>{3.0, 3.0, 3.0});
  // Output voxel j reads input index 4 + 3 (j - 1): 1, 4, 7.
  CHECK(r.at(0, 1, 1) == doctest::Approx(1.0));
  CHECK(r.at(1, 1, 1) == doctest::Approx(4.0));
  CHECK(r.at(2, 1, 1) == doctest::Approx(7.0));
  Volume thin = Volume::zeros({4, 4, 1});
  thin.spacing = {1.0, 1.0, 0.4};
  CHECK(resample(thin, 2.0).shape == Shape3{2, 2, 1});
  CHECK(resampledShape({10, 10, 10}, {1.25, 1.0, 0.7}, 1.0) == Shape3{13, 10, 7});  // 12.5 rounds away from 0
  CHECK_THROWS_AS(resample(thin, 0.0), std::invalid_argument);
  thin.spacing = {1.0, 0.0, 1.0};
  CHECK_THROWS_AS(resample(thin, 1.0), std::invalid_argument);
}

TEST_CASE("resample: a constant volume stays constant, exactly") {
  Volume v = Volume::zeros({11, 7, 5});
  v.spacing = {0.9, 1.7, 3.1};
  for (float& f : v.data) f = 0.3f;
  Volume r = resample(v, 1.0);
  CHECK(r.shape == Shape3{10, 12, 16});
  for (float f : r.data) REQUIRE(f == 0.3f);
}

TEST_CASE("pipelines with resample: output shape follows spacing, crop fixes it") {
  PipelineOp res = op("resample", {{"spacing", 1.0}});
  gyrus::ir::Pipeline p{{res, op("crop", {{"size", Shape3{16, 16, 16}}}), op("zscore")}};
  CHECK(outputShape(gyrus::ir::Pipeline{{res}}, {10, 10, 10}, {2.0, 1.5, 1.0}) == Shape3{20, 15, 10});
  CHECK(outputShape(p, {10, 10, 10}, {2.0, 1.5, 1.0}) == Shape3{16, 16, 16});
  for (double mm : {0.8, 1.0, 2.0}) {
    Volume v = ramp({10, 12, 9});
    v.spacing = {mm, mm, mm};
    Volume out = applyPipeline(p, v);
    CHECK(out.shape == Shape3{16, 16, 16});
    CHECK(out.spacing == std::array<double, 3>{1.0, 1.0, 1.0});
  }
  // As an augmentation step, the target is resampled along with the input.
  Volume in = ramp({6, 6, 6}), target = in;
  in.spacing = target.spacing = {2.0, 2.0, 2.0};
  Rng rng(1);
  applyAugmentations(gyrus::ir::Pipeline{{res}}, in, &target, rng);
  CHECK(in.shape == Shape3{12, 12, 12});
  CHECK(target.data == in.data);
}

TEST_CASE("nearest-neighbour resampling: the grid of resample, values copied, never blended") {
  Volume mask = Volume::zeros({6, 5, 4});
  mask.spacing = {2.0, 1.5, 1.0};
  for (int64_t z = 1; z < 3; ++z)
    for (int64_t y = 1; y < 4; ++y)
      for (int64_t x = 2; x < 5; ++x) mask.at(x, y, z) = 1.0f;
  Volume linear = resample(mask, 1.0);
  Volume nearest = resampleNearest(mask, 1.0);
  CHECK(nearest.shape == linear.shape);
  CHECK(nearest.shape == Shape3{12, 8, 4});
  CHECK(nearest.spacing == std::array<double, 3>{1.0, 1.0, 1.0});
  for (float f : nearest.data) CHECK((f == 0.0f || f == 1.0f));
  // Where the trilinear result is clearly inside or outside, nearest agrees with it.
  size_t compared = 0;
  for (size_t i = 0; i < linear.data.size(); ++i) {
    if (linear.data[i] > 0.75f || linear.data[i] < 0.25f) {
      CHECK(nearest.data[i] == (linear.data[i] > 0.5f ? 1.0f : 0.0f));
      ++compared;
    }
  }
  CHECK(compared > linear.data.size() / 2);
  // z already is 1 mm with an unchanged size: copied exactly, slice by slice.
  for (int64_t z = 0; z < 4; ++z) CHECK(nearest.at(6, 4, z) == mask.at(3, 2, z));
  // A volume already at 1 mm is copied.
  Volume same = resampleNearest(ramp({3, 3, 3}), 1.0);
  CHECK(same.data == ramp({3, 3, 3}).data);
  CHECK_THROWS_AS(resampleNearest(mask, 0.0), std::invalid_argument);
}

TEST_CASE("masks: binarised above 0.5; spatial operations only (crop pads with zeros, z-score and clip skip)") {
  Volume m = Volume::zeros({4, 4, 4});
  m.data[0] = 0.5f;
  m.data[1] = 0.51f;
  m.data[2] = 3.0f;
  m.data[3] = -1.0f;
  binarize(m);
  CHECK(m.data[0] == 0.0f);
  CHECK(m.data[1] == 1.0f);
  CHECK(m.data[2] == 1.0f);
  CHECK(m.data[3] == 0.0f);

  Volume mask = Volume::zeros({8, 8, 8});
  mask.spacing = {2.0, 2.0, 2.0};
  for (int64_t z = 3; z < 5; ++z)
    for (int64_t y = 3; y < 5; ++y)
      for (int64_t x = 3; x < 5; ++x) mask.at(x, y, z) = 1.0f;
  gyrus::ir::Pipeline pipeline{{gyrus::ir::makeOp("resample", {{"spacing", 1.0}}), gyrus::ir::makeOp("zscore"),
                                gyrus::ir::makeOp("crop", {{"size", Shape3{20, 12, 16}}}),  // pad x, crop y and z
                                gyrus::ir::makeOp("clip", {{"lo", 0.1}, {"hi", 0.9}})}};
  Volume out = applySpatialOps(pipeline, mask);
  CHECK(out.shape == Shape3{20, 12, 16});
  CHECK(out.shape == outputShape(pipeline, mask.shape, mask.spacing));
  double sum = 0.0;
  for (float f : out.data) {
    CHECK((f == 0.0f || f == 1.0f));
    sum += f;
  }
  CHECK(sum == 4.0 * 4.0 * 4.0);  // 2^3 voxels of 2 mm are 4^3 of 1 mm
  CHECK(out.at(9, 5, 7) == 1.0f);  // the centre (padded by 2 on x, cropped by 2 on y)
  CHECK(out.at(0, 0, 0) == 0.0f);
  CHECK_THROWS_AS(applySpatialOps(gyrus::ir::Pipeline{{gyrus::ir::makeOp("flip")}}, mask), std::invalid_argument);
}

TEST_CASE("every registry operation has one reference implementation, and masks follow the spatial ones") {
  std::set<std::string> registry, implemented;
  for (const gyrus::ir::OpSpec& spec : gyrus::ir::pipelineOps()) {
    INFO(spec.name);
    registry.insert(std::string(spec.name));
    const OpImpl* impl = findOpImpl(spec.name);
    REQUIRE(impl != nullptr);
    CHECK((impl->apply != nullptr));
    // A deterministic spatial operation moves a mask with the image; intensity ones leave it.
    if (!spec.random()) CHECK((impl->mask != nullptr) == spec.spatial());
  }
  for (const OpImpl& impl : opImpls()) CHECK(implemented.insert(std::string(impl.name)).second);
  CHECK(implemented == registry);
  // Each operation with its defaults (a crop with a size) runs on a volume, and its output
  // has the shape the registry's shape effect gives.
  for (const gyrus::ir::OpSpec& spec : gyrus::ir::pipelineOps()) {
    INFO(spec.name);
    PipelineOp o = op(spec.name);
    if (spec.shape == gyrus::ir::OpShape::Sets) o.set(spec.shapeParam, Shape3{6, 7, 8});
    Volume v = ramp({10, 9, 8});
    v.spacing = {1.5, 1.0, 0.8};
    Rng rng(5);
    applyAugmentations(gyrus::ir::Pipeline{{o}}, v, nullptr, rng);
    CHECK(v.shape == outputShape(gyrus::ir::Pipeline{{o}}, {10, 9, 8}, {1.5, 1.0, 0.8}));
  }
  CHECK(findOpImpl("sharpen") == nullptr);
  CHECK_THROWS_AS(applyPipeline(gyrus::ir::Pipeline{{PipelineOp{"sharpen", {}}}}, ramp({4, 4, 4})), std::invalid_argument);
}
