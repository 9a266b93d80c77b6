// `gyrus score` / `gyrus rank`'s computations (runtime/src/Metrics.h, Scoring.h),
// torch-free, built with the runtime OFF: the metrics against fixtures from numpy and
// scipy (fixtures/make_fixtures.py), HD95 and NSD on analytic shapes at isotropic and
// anisotropic spacing, the bootstrap's determinism, the parsing of a one-number file,
// and the FOMO25 ranking on a table worked by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "Metrics.h"
#include "Scoring.h"

using namespace gyrus;

namespace {

nlohmann::json fixtures() {
  std::ifstream in(std::string(GYRUS_SCORE_FIXTURES) + "/metrics.json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

std::vector<uint8_t> maskFrom(const nlohmann::json& indices, const ir::Shape3& shape) {
  std::vector<uint8_t> m(static_cast<size_t>(shape[0] * shape[1] * shape[2]), 0);
  for (const auto& i : indices) m[i.get<size_t>()] = 1;
  return m;
}

/// A box [lo, hi) per axis in a grid of `shape`, x fastest.
std::vector<uint8_t> box(const ir::Shape3& shape, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi) {
  std::vector<uint8_t> m(static_cast<size_t>(shape[0] * shape[1] * shape[2]), 0);
  for (int64_t z = lo[2]; z < hi[2]; ++z)
    for (int64_t y = lo[1]; y < hi[1]; ++y)
      for (int64_t x = lo[0]; x < hi[0]; ++x) m[static_cast<size_t>(x + shape[0] * (y + shape[1] * z))] = 1;
  return m;
}

}  // namespace

TEST_CASE("AUROC, Pearson r and MAE match the fixtures (pairwise count / scipy / numpy), ties and constants included") {
  const nlohmann::json f = fixtures();
  // Each case: two inputs and the expected value, null where the metric is undefined.
  auto expect = [](const nlohmann::json& c, double got) {
    if (c["value"].is_null())
      CHECK(std::isnan(got));
    else
      CHECK(got == doctest::Approx(c["value"].get<double>()).epsilon(1e-12));
  };
  for (const auto& c : f["auroc"])
    expect(c, rt::auroc(c["scores"].get<std::vector<double>>(), c["labels"].get<std::vector<int>>()));
  for (const auto& c : f["pearson"])
    expect(c, rt::pearsonR(c["x"].get<std::vector<double>>(), c["y"].get<std::vector<double>>()));
  for (const auto& c : f["mae"])
    expect(c, rt::meanAbsoluteError(c["x"].get<std::vector<double>>(), c["y"].get<std::vector<double>>()));
}

TEST_CASE("Dice, NSD and HD95 match scipy on random and empty masks, isotropic and anisotropic") {
  const nlohmann::json f = fixtures();
  int cases = 0;
  for (const auto& c : f["masks"]) {
    const ir::Shape3 shape{c["shape"][0].get<int64_t>(), c["shape"][1].get<int64_t>(), c["shape"][2].get<int64_t>()};
    const std::array<double, 3> spacing{c["spacing"][0].get<double>(), c["spacing"][1].get<double>(),
                                        c["spacing"][2].get<double>()};
    const std::vector<uint8_t> a = maskFrom(c["a"], shape), b = maskFrom(c["b"], shape);
    CAPTURE(cases);
    CHECK(rt::dice(a, b) == doctest::Approx(c["dice"].get<double>()).epsilon(1e-12));
    CHECK(rt::normalizedSurfaceDice(a, b, shape, spacing, c["tolerance"].get<double>()) ==
          doctest::Approx(c["nsd"].get<double>()).epsilon(1e-12));
    CHECK(rt::hausdorff95(a, b, shape, spacing) == doctest::Approx(c["hd95"].get<double>()).epsilon(1e-9));
    CHECK(rt::hausdorff95(a, b, shape, spacing) == rt::hausdorff95(b, a, shape, spacing));
    ++cases;
  }
  CHECK(cases == 18);
}

TEST_CASE("HD95 and NSD of two concentric cubes, worked by hand") {
  // a = [4, 8)^3 (56 surface voxels), b = [3, 9)^3 (152: 96 on faces, 48 on edges, 8
  // corners) in a 12^3 grid. Isotropic 1 mm: every surface voxel of a is 1 from b's;
  // b's face voxels are 1 from a's, edge voxels sqrt 2, corners sqrt 3. Pooled, sorted:
  // 152 ones, 48 x sqrt 2, 8 x sqrt 3 (208); the 95th percentile sits at position
  // 0.95 * 207 = 196.65, between entries 196 and 197, both sqrt 2.
  const ir::Shape3 shape{12, 12, 12};
  const std::vector<uint8_t> a = box(shape, {4, 4, 4}, {8, 8, 8}), b = box(shape, {3, 3, 3}, {9, 9, 9});
  CHECK(rt::hausdorff95(a, b, shape, {1, 1, 1}) == doctest::Approx(std::sqrt(2.0)));
  CHECK(rt::normalizedSurfaceDice(a, b, shape, {1, 1, 1}, 1.0) == doctest::Approx(152.0 / 208.0));
  CHECK(rt::normalizedSurfaceDice(a, b, shape, {1, 1, 1}, 1.5) == doctest::Approx(200.0 / 208.0));
  // Spacing (1, 1, 2) mm: a's surface voxels with x or y on its boundary are 1 from b's
  // (48); the 8 with x, y in {5, 6} and z in {4, 7} are 2. b: x- and y-faces 1 (64),
  // z-faces 2 (32), xy-edges sqrt 2 (16), xz- and yz-edges sqrt 5 (32), corners sqrt 6
  // (8). Sorted: 112 x 1, 16 x sqrt 2, 40 x 2, 32 x sqrt 5, 8 x sqrt 6; entries 196 and
  // 197 are sqrt 5.
  CHECK(rt::hausdorff95(a, b, shape, {1, 1, 2}) == doctest::Approx(std::sqrt(5.0)));
  CHECK(rt::normalizedSurfaceDice(a, b, shape, {1, 1, 2}, 1.0) == doctest::Approx(112.0 / 208.0));
  CHECK(rt::normalizedSurfaceDice(a, b, shape, {1, 1, 2}, 2.0) == doctest::Approx(168.0 / 208.0));
  // The same cube: 0 and 1; empty conventions.
  const std::vector<uint8_t> empty(a.size(), 0);
  CHECK(rt::hausdorff95(a, a, shape, {1, 1, 2}) == 0.0);
  CHECK(rt::hausdorff95(empty, empty, shape, {1, 1, 2}) == 0.0);
  CHECK(rt::hausdorff95(a, empty, shape, {1, 1, 2}) == doctest::Approx(std::sqrt(144.0 + 144.0 + 576.0)));
  CHECK(rt::dice(empty, empty) == 1.0);
  CHECK(rt::dice(a, empty) == 0.0);
}

TEST_CASE("HD95 of a ball against the same ball shifted along an anisotropic axis") {
  // A ball of radius 5 mm on 1 x 1 x 2.5 mm voxels against itself shifted by one voxel
  // along z: no surface voxel is farther than the shift (2.5 mm) from the other
  // surface, and some (the poles) are that far.
  const ir::Shape3 shape{24, 24, 12};
  const std::array<double, 3> spacing{1.0, 1.0, 2.5};
  auto ball = [&](double cz) {
    std::vector<uint8_t> m(static_cast<size_t>(shape[0] * shape[1] * shape[2]), 0);
    for (int64_t z = 0; z < shape[2]; ++z)
      for (int64_t y = 0; y < shape[1]; ++y)
        for (int64_t x = 0; x < shape[0]; ++x) {
          const double dx = x - 11.5, dy = y - 11.5, dz = (static_cast<double>(z) - cz) * 2.5;
          m[static_cast<size_t>(x + shape[0] * (y + shape[1] * z))] = dx * dx + dy * dy + dz * dz <= 25.0;
        }
    return m;
  };
  const std::vector<uint8_t> a = ball(5.0), b = ball(6.0);
  const double hd = rt::hausdorff95(a, b, shape, spacing);
  CHECK(hd > 0.0);
  CHECK(hd <= 2.5 + 1e-12);
  CHECK(rt::normalizedSurfaceDice(a, b, shape, spacing, 2.5) == 1.0);
}

TEST_CASE("percentile is numpy's linear interpolation") {
  CHECK(rt::percentile({1, 2, 3, 4}, 50) == 2.5);
  CHECK(rt::percentile({4, 1, 3, 2}, 95) == doctest::Approx(3.85));
  CHECK(rt::percentile({7}, 2.5) == 7);
  CHECK(std::isnan(rt::percentile({}, 50)));
}

TEST_CASE("the percentile bootstrap is seeded, brackets the estimate and skips undefined resamples") {
  const std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  auto mean = [&](std::span<const size_t> idx) {
    double s = 0;
    for (size_t i : idx) s += v[i];
    return s / static_cast<double>(idx.size());
  };
  const rt::Interval a = rt::percentileBootstrap(v.size(), 1000, 7, mean);
  const rt::Interval b = rt::percentileBootstrap(v.size(), 1000, 7, mean);
  const rt::Interval c = rt::percentileBootstrap(v.size(), 1000, 8, mean);
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  CHECK((a.low != c.low || a.high != c.high));
  CHECK(a.used == 1000);
  CHECK(a.low < 5.5);
  CHECK(a.high > 5.5);
  // The normal approximation's half width is 1.96 * 2.87 / sqrt(10) = 1.78.
  CHECK(a.high - a.low == doctest::Approx(3.56).epsilon(0.2));
  // AUROC on 2 subjects of different classes: a resample of one class is NaN, skipped.
  const std::vector<double> s{0.2, 0.8};
  const std::vector<int> l{0, 1};
  const rt::Interval d = rt::percentileBootstrap(2, 200, 1, [&](std::span<const size_t> idx) {
    std::vector<double> ss;
    std::vector<int> ll;
    for (size_t i : idx) {
      ss.push_back(s[i]);
      ll.push_back(l[i]);
    }
    return rt::auroc(ss, ll);
  });
  CHECK(d.used > 50);
  CHECK(d.used < 150);
  CHECK(d.low == 1.0);
  CHECK(std::isnan(rt::percentileBootstrap(0, 10, 1, mean).low));
}

TEST_CASE("a prediction .txt is exactly one finite number") {
  std::string why;
  CHECK(rt::parseOneNumber("0.73\n", why) == 0.73);
  CHECK(rt::parseOneNumber("  47 ", why) == 47.0);
  CHECK(rt::parseOneNumber("+1e-3", why) == 0.001);
  CHECK(rt::parseOneNumber("-2", why) == -2.0);
  CHECK(!rt::parseOneNumber("", why));
  CHECK(why == "it is empty");
  CHECK(!rt::parseOneNumber("0.1 0.9", why));
  CHECK(why == "it holds more than one value");
  CHECK(!rt::parseOneNumber("0.5\n0.5\n", why));
  CHECK(!rt::parseOneNumber("abc", why));
  CHECK(why == "'abc' is not a number");
  CHECK(!rt::parseOneNumber("0.5x", why));
  CHECK(!rt::parseOneNumber("nan", why));
  CHECK(!rt::parseOneNumber("inf", why));
  // Beyond a double: too small reads as 0 (as Python reads it), too large is named so.
  CHECK(rt::parseOneNumber("1e-400", why) == 0.0);
  CHECK(rt::parseOneNumber("5e-324", why) > 0.0);
  CHECK(!rt::parseOneNumber("1e400", why));
  CHECK(why == "'1e400' is beyond the range of a double (not finite)");
}

TEST_CASE("affines agree within the tolerance") {
  std::array<std::array<double, 4>, 4> a{{{1, 0, 0, -15.5}, {0, 1, 0, -15.5}, {0, 0, 1, -15.5}, {0, 0, 0, 1}}};
  auto b = a;
  b[0][3] += 5e-4;
  CHECK(rt::sameAffine(a, b));
  b[0][3] += 1e-2;
  CHECK(!rt::sameAffine(a, b));
  b = a;
  b[1][1] = 1.2;
  CHECK(!rt::sameAffine(a, b));
}

TEST_CASE("average ranks: ties share the mean of their ranks, direction, NaN last") {
  CHECK(rt::averageRanks(std::vector<double>{0.8, 0.7, 0.7}, true) == std::vector<double>{1, 2.5, 2.5});
  CHECK(rt::averageRanks(std::vector<double>{10, 12, 10, 11}, false) == std::vector<double>{1.5, 4, 1.5, 3});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(rt::averageRanks(std::vector<double>{nan, 0.5, nan}, true) == std::vector<double>{2.5, 1, 2.5});
}

TEST_CASE("the FOMO25 ranking reproduces a table worked by hand") {
  // Four methods (n = 4, so a missing task counts 5):
  //   infarct     AUROC: A 0.80, B 0.70, C 0.70 (D none)       -> A 1, B 2.5, C 2.5, D 5
  //   meningioma  Dice:  A 0.20, B 0.30, D 0.20 -> B 1, A 2.5, D 2.5
  //               NSD:   A 0.10, B 0.25, D 0.30 -> D 1, B 2,   A 3
  //               task:  A (2.5 + 3) / 2 = 2.75, B (1 + 2) / 2 = 1.5, D (2.5 + 1) / 2 = 1.75, C 5
  //   brain_age   MAE:   A 10, B 12, C 10, D 11 -> A 1.5, C 1.5, D 3, B 4
  //               r:     A 0.6, B 0.5, C 0.7, D 0.6 -> C 1, A 2.5, D 2.5, B 4
  //               task:  A (1.5 + 2.5) / 2 = 2, B 4, C (1.5 + 1) / 2 = 1.25, D (3 + 2.5) / 2 = 2.75
  //   overall: A (1 + 2.75 + 2) / 3 = 1.9167, B (2.5 + 1.5 + 4) / 3 = 2.6667,
  //            C (2.5 + 5 + 1.25) / 3 = 2.9167, D (5 + 1.75 + 2.75) / 3 = 3.1667
  // With --hd95 (HD95: A 10, B 20, D 10 -> A 1.5, D 1.5, B 3), meningioma becomes
  //   A (2.5 + 3 + 1.5) / 3 = 7/3, B (1 + 2 + 3) / 3 = 2, D (2.5 + 1 + 1.5) / 3 = 5/3.
  const std::vector<rt::ScoreResult> results{
      {"A", "infarct", {{"auroc", 0.80}}},
      {"B", "infarct", {{"auroc", 0.70}}},
      {"C", "infarct", {{"auroc", 0.70}}},
      {"A", "meningioma", {{"dice", 0.20}, {"nsd", 0.10}, {"hd95", 10}}},
      {"B", "meningioma", {{"dice", 0.30}, {"nsd", 0.25}, {"hd95", 20}}},
      {"D", "meningioma", {{"dice", 0.20}, {"nsd", 0.30}, {"hd95", 10}}},
      {"A", "brain_age", {{"mae", 10}, {"pearson_r", 0.6}}},
      {"B", "brain_age", {{"mae", 12}, {"pearson_r", 0.5}}},
      {"C", "brain_age", {{"mae", 10}, {"pearson_r", 0.7}}},
      {"D", "brain_age", {{"mae", 11}, {"pearson_r", 0.6}}},
  };
  const std::vector<rt::MethodRank> r = rt::rankMethods(results);
  REQUIRE(r.size() == 4);
  CHECK(r[0].method == "A");
  CHECK(r[1].method == "B");
  CHECK(r[2].method == "C");
  CHECK(r[3].method == "D");
  CHECK(r[0].taskRanks == std::vector<double>{1, 2.75, 2});
  CHECK(r[1].taskRanks == std::vector<double>{2.5, 1.5, 4});
  CHECK(r[2].taskRanks == std::vector<double>{2.5, 5, 1.25});
  CHECK(r[3].taskRanks == std::vector<double>{5, 1.75, 2.75});
  CHECK(r[0].overall == doctest::Approx(5.75 / 3));
  CHECK(r[1].overall == doctest::Approx(8.0 / 3));
  CHECK(r[2].overall == doctest::Approx(8.75 / 3));
  CHECK(r[3].overall == doctest::Approx(9.5 / 3));
  CHECK(r[2].taskPresent == std::vector<bool>{true, false, true});
  CHECK(r[3].place == 4);
  const std::vector<rt::MethodRank> h = rt::rankMethods(results, true);
  for (const rt::MethodRank& m : h) {
    if (m.method == "A") CHECK(m.taskRanks[1] == doctest::Approx(7.0 / 3));
    if (m.method == "B") CHECK(m.taskRanks[1] == doctest::Approx(2.0));
    if (m.method == "D") CHECK(m.taskRanks[1] == doctest::Approx(5.0 / 3));
  }
  // Ties in the overall rank share a place.
  const std::vector<rt::MethodRank> t =
      rt::rankMethods({{"X", "infarct", {{"auroc", 0.5}}}, {"Y", "infarct", {{"auroc", 0.5}}}});
  CHECK(t[0].place == 1);
  CHECK(t[1].place == 1);
  CHECK_THROWS_AS(rt::rankMethods({{"X", "infarct", {{"auroc", 0.5}}}, {"X", "infarct", {{"auroc", 0.6}}}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(rt::rankMethods({{"X", "lesion", {{"auroc", 0.5}}}}), std::invalid_argument);
  CHECK_THROWS_AS(rt::rankMethods({{"X", "brain_age", {{"mae", 3}}}}), std::invalid_argument);
}
