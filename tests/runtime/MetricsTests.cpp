// Metrics and linear probes against reference values from scikit-learn and scipy
// (fixtures/metrics.json, made by fixtures/make_metric_fixtures.py); segmentation
// metrics against hand-computed cases and scipy.ndimage (fixtures/segmentation.json,
// made by fixtures/make_segmentation_fixtures.py).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "Metrics.h"
#include "Probe.h"

using namespace gyrus::rt;

namespace {

const nlohmann::json& fixtures() {
  static const nlohmann::json j = [] {
    std::ifstream f(GYRUS_RUNTIME_FIXTURES "/metrics.json");
    if (!f) throw std::runtime_error("cannot open " GYRUS_RUNTIME_FIXTURES "/metrics.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

Matrix toMatrix(const nlohmann::json& rows) {
  Matrix m(static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size()));
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) m(r, c) = rows[static_cast<size_t>(r)][static_cast<size_t>(c)];
  return m;
}

}  // namespace

TEST_CASE("auroc matches scikit-learn roc_auc_score, ties and edge cases included") {
  const auto& cases = fixtures().at("auroc");
  REQUIRE(cases.size() >= 8);
  for (const auto& c : cases) {
    CAPTURE(c.at("name").get<std::string>());
    auto scores = c.at("scores").get<std::vector<double>>();
    auto labels = c.at("labels").get<std::vector<int>>();
    double got = auroc(scores, labels);
    if (c.at("auroc").is_null())
      CHECK(std::isnan(got));
    else
      CHECK(got == doctest::Approx(c.at("auroc").get<double>()).epsilon(1e-12));
  }
}

TEST_CASE("auroc rejects malformed input") {
  std::vector<double> s{0.1, 0.2};
  std::vector<int> wrongSize{1};
  std::vector<int> badLabel{0, 2};
  CHECK_THROWS_AS(auroc(s, wrongSize), std::invalid_argument);
  CHECK_THROWS_AS(auroc(s, badLabel), std::invalid_argument);
  CHECK_THROWS_AS(auroc({}, {}), std::invalid_argument);
}

TEST_CASE("pearson r matches scipy.stats.pearsonr and MAE matches numpy") {
  for (const auto& c : fixtures().at("regression")) {
    CAPTURE(c.at("name").get<std::string>());
    auto x = c.at("x").get<std::vector<double>>();
    auto y = c.at("y").get<std::vector<double>>();
    double r = pearsonR(x, y);
    if (c.at("pearson_r").is_null())
      CHECK(std::isnan(r));
    else
      CHECK(r == doctest::Approx(c.at("pearson_r").get<double>()).epsilon(1e-12));
    CHECK(meanAbsoluteError(x, y) == doctest::Approx(c.at("mae").get<double>()).epsilon(1e-12));
  }
  std::vector<double> one{1.0};
  CHECK_THROWS_AS(pearsonR(one, one), std::invalid_argument);
}

TEST_CASE("meanStd is numpy's mean and population std") {
  std::vector<double> v{2, 4, 4, 4, 5, 5, 7, 9};
  MeanStd m = meanStd(v);
  CHECK(m.mean == doctest::Approx(5.0));
  CHECK(m.std == doctest::Approx(2.0));
}

TEST_CASE("probes match scikit-learn LogisticRegression and Ridge with the same objective") {
  for (const auto& c : fixtures().at("probes")) {
    CAPTURE(c.at("name").get<std::string>());
    Matrix x = toMatrix(c.at("x"));
    auto expected = c.at("weights").get<std::vector<double>>();
    LinearModel model;
    if (c.at("kind") == "logistic")
      model = fitLogistic(x, c.at("y").get<std::vector<int>>(), c.at("l2").get<double>());
    else
      model = fitRidge(x, c.at("y").get<std::vector<double>>(), c.at("l2").get<double>());
    REQUIRE(model.weights.size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) CHECK(model.weights[i] == doctest::Approx(expected[i]).epsilon(1e-5));
    CHECK(model.bias == doctest::Approx(c.at("bias").get<double>()).epsilon(1e-5));
  }
}

namespace {

/// Leave-one-out mean squared error by brute force: n refits on n - 1 rows.
double bruteForceLoo(const Matrix& x, const std::vector<double>& y, double alpha) {
  double sum = 0.0;
  for (int64_t out = 0; out < x.rows; ++out) {
    std::vector<int64_t> keep;
    std::vector<double> yk;
    for (int64_t r = 0; r < x.rows; ++r)
      if (r != out) {
        keep.push_back(r);
        yk.push_back(y[static_cast<size_t>(r)]);
      }
    LinearModel m = fitRidge(x.selectRows(keep), yk, alpha);
    std::vector<int64_t> one{out};
    double e = m.predict(x.selectRows(one))[0] - y[static_cast<size_t>(out)];
    sum += e * e;
  }
  return sum / static_cast<double>(x.rows);
}

/// Rows of random features whose first column carries the target (plus noise).
void regressionData(int64_t n, int64_t d, double noise, uint64_t seed, Matrix& x, std::vector<double>& y) {
  uint64_t state = seed;
  auto uniform = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
  };
  x = Matrix(n, d);
  y.assign(static_cast<size_t>(n), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < d; ++c) x(r, c) = uniform() * (c == 0 ? 4.0 : 1.0);
    y[static_cast<size_t>(r)] = 30.0 + 10.0 * x(r, 0) + noise * uniform();
  }
}

}  // namespace

TEST_CASE("ridge leave-one-out: the closed form equals n refits, primal and dual; the best strength is chosen") {
  for (auto [n, d] : {std::pair<int64_t, int64_t>{12, 5}, {10, 40}, {16, 240}}) {
    CAPTURE(n);
    CAPTURE(d);
    Matrix x;
    std::vector<double> y;
    regressionData(n, d, 2.0, static_cast<uint64_t>(n * 1000 + d), x, y);
    std::vector<double> grid = ridgeAlphaGrid();
    double best = 0.0, bestError = 1e300;
    for (double alpha : grid) {
      std::vector<double> one{alpha};
      RidgeChoice c = fitRidgeLoo(x, y, one);
      double brute = bruteForceLoo(x, y, alpha);
      CHECK(c.looError == doctest::Approx(brute).epsilon(1e-7));
      if (brute < bestError) {
        bestError = brute;
        best = alpha;
      }
    }
    RidgeChoice chosen = fitRidgeLoo(x, y, grid);
    CHECK(chosen.alpha == best);
    CHECK(chosen.looError == doctest::Approx(bestError).epsilon(1e-7));
    // The chosen model is the plain ridge fit at that strength.
    LinearModel plain = fitRidge(x, y, chosen.alpha);
    CHECK(chosen.model.bias == doctest::Approx(plain.bias));
    for (size_t i = 0; i < plain.weights.size(); ++i) CHECK(chosen.model.weights[i] == doctest::Approx(plain.weights[i]));
  }
  // A feature that carries the target is used (a weak penalty wins); features of pure
  // noise are not (the strongest penalty, whose predictions are nearly the mean).
  Matrix x;
  std::vector<double> y;
  regressionData(16, 8, 0.5, 7, x, y);
  CHECK(fitRidgeLoo(x, y, ridgeAlphaGrid()).alpha < 10.0);
  for (int64_t r = 0; r < x.rows; ++r) x(r, 0) = static_cast<double>((r * 7) % 5);
  CHECK(fitRidgeLoo(x, y, ridgeAlphaGrid()).alpha >= 1e5);
  // Constant targets: every strength has error 0 and the strongest is kept.
  std::vector<double> flat(static_cast<size_t>(x.rows), 42.0);
  RidgeChoice c = fitRidgeLoo(x, flat, ridgeAlphaGrid());
  CHECK(c.alpha == ridgeAlphaGrid().back());
  CHECK(c.model.predict(x)[3] == doctest::Approx(42.0));
  CHECK_THROWS_AS(fitRidgeLoo(x.selectRows(std::vector<int64_t>{0, 1}), std::vector<double>{1, 2}, ridgeAlphaGrid()),
                  std::invalid_argument);
  // The smallest strength the language accepts (1e-6) fits 240 standardised features of
  // 16 shots (a rank-deficient Gram matrix) without losing positive definiteness.
  Matrix wide;
  std::vector<double> wy;
  regressionData(16, 240, 2.0, 11, wide, wy);
  wide = Standardizer::fit(wide).apply(wide);
  CHECK_NOTHROW(fitRidge(wide, wy, 1e-6));
}

TEST_CASE("standardizer centres and scales training features; constant columns are only centred") {
  Matrix x(4, 2);
  double col0[] = {1, 2, 3, 4};
  for (int64_t r = 0; r < 4; ++r) {
    x(r, 0) = col0[r];
    x(r, 1) = 7.0;
  }
  Standardizer s = Standardizer::fit(x);
  Matrix z = s.apply(x);
  double sum = 0, sq = 0;
  for (int64_t r = 0; r < 4; ++r) {
    sum += z(r, 0);
    sq += z(r, 0) * z(r, 0);
    CHECK(z(r, 1) == 0.0);
  }
  CHECK(sum == doctest::Approx(0.0));
  CHECK(sq / 4 == doctest::Approx(1.0));
}

// Segmentation metrics: hand-computable cases, then scipy.ndimage on random masks
// (fixtures/segmentation.json, made by fixtures/make_segmentation_fixtures.py).
namespace {

using gyrus::ir::Shape3;

/// A {0, 1} mask of `shape` holding the box [lo, hi] (inclusive, per axis x, y, z).
std::vector<uint8_t> box(const Shape3& shape, const std::array<int64_t, 3>& lo, const std::array<int64_t, 3>& hi) {
  std::vector<uint8_t> m(static_cast<size_t>(shape[0] * shape[1] * shape[2]), 0);
  for (int64_t z = lo[2]; z <= hi[2]; ++z)
    for (int64_t y = lo[1]; y <= hi[1]; ++y)
      for (int64_t x = lo[0]; x <= hi[0]; ++x) m[static_cast<size_t>(x + shape[0] * (y + shape[1] * z))] = 1;
  return m;
}

size_t ones(const std::vector<uint8_t>& m) { return static_cast<size_t>(std::count(m.begin(), m.end(), uint8_t{1})); }

const nlohmann::json& segmentationFixtures() {
  static const nlohmann::json j = [] {
    std::ifstream f(GYRUS_RUNTIME_FIXTURES "/segmentation.json");
    if (!f) throw std::runtime_error("cannot open " GYRUS_RUNTIME_FIXTURES "/segmentation.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

}  // namespace

TEST_CASE("dice of known overlaps; both empty is 1, one empty is 0") {
  std::vector<uint8_t> a{1, 1, 1, 1, 0, 0}, b{0, 0, 0, 1, 1, 0}, empty(6, 0);
  CHECK(dice(a, b) == doctest::Approx(2.0 * 1 / (4 + 2)));
  CHECK(dice(a, a) == 1.0);
  CHECK(dice(a, std::vector<uint8_t>{0, 0, 0, 0, 1, 1}) == 0.0);
  CHECK(dice(empty, empty) == 1.0);
  CHECK(dice(a, empty) == 0.0);
  CHECK(dice(empty, b) == 0.0);
  std::vector<uint8_t> nonBinary{7, 0, 0, 0, 0, 0};  // non-zero is inside
  CHECK(dice(nonBinary, std::vector<uint8_t>{1, 0, 0, 0, 0, 0}) == 1.0);
  CHECK_THROWS_AS(dice(a, std::vector<uint8_t>{1}), std::invalid_argument);
}

TEST_CASE("surface voxels: a cube's shell without its core; the volume's edge counts as outside") {
  Shape3 shape{5, 5, 5};
  std::vector<uint8_t> cube = box(shape, {1, 1, 1}, {3, 3, 3});
  std::vector<uint8_t> s = surfaceVoxels(cube, shape);
  CHECK(ones(s) == 26);
  CHECK(s[static_cast<size_t>(2 + 5 * (2 + 5 * 2))] == 0);  // the centre
  std::vector<uint8_t> full(27, 1);
  CHECK(ones(surfaceVoxels(full, {3, 3, 3})) == 26);  // touching every edge
  std::vector<uint8_t> single = box(shape, {2, 2, 2}, {2, 2, 2});
  CHECK(ones(surfaceVoxels(single, shape)) == 1);
  CHECK_THROWS_AS(surfaceVoxels(full, shape), std::invalid_argument);
}

TEST_CASE("distance transform: exact squared distances in mm on anisotropic voxels") {
  Shape3 shape{3, 3, 3};
  std::vector<uint8_t> centre = box(shape, {1, 1, 1}, {1, 1, 1});
  std::vector<double> d = squaredDistanceTransform(centre, shape, {1.0, 2.0, 3.0});
  CHECK(d[static_cast<size_t>(1 + 3 * (1 + 3 * 1))] == 0.0);
  CHECK(d[0] == doctest::Approx(1.0 + 4.0 + 9.0));            // a corner
  CHECK(d[static_cast<size_t>(1 + 3 * (0 + 3 * 1))] == 4.0);  // one voxel along y
  CHECK(d[static_cast<size_t>(2 + 3 * (1 + 3 * 2))] == doctest::Approx(1.0 + 9.0));
  // A line of 6 voxels, features at both ends, 2 mm apart: the nearer end wins.
  std::vector<uint8_t> ends{1, 0, 0, 0, 0, 1};
  std::vector<double> line = squaredDistanceTransform(ends, {6, 1, 1}, {2.0, 1.0, 1.0});
  std::vector<double> expected{0, 4, 16, 16, 4, 0};
  for (size_t i = 0; i < 6; ++i) CHECK(line[i] == doctest::Approx(expected[i]));
  // No features: infinitely far.
  std::vector<double> none = squaredDistanceTransform(std::vector<uint8_t>(27, 0), shape, {1.0, 1.0, 1.0});
  CHECK(std::isinf(none[13]));
  CHECK_THROWS_AS(squaredDistanceTransform(centre, shape, {1.0, 0.0, 1.0}), std::invalid_argument);
}

TEST_CASE("NSD: identical masks give 1; a cube shifted by one voxel is within 1 mm but not 0.5 mm") {
  Shape3 shape{10, 10, 10};
  std::vector<uint8_t> a = box(shape, {2, 2, 2}, {5, 5, 5});
  std::vector<uint8_t> b = box(shape, {3, 2, 2}, {6, 5, 5});  // one voxel along x
  const std::array<double, 3> iso{1.0, 1.0, 1.0};
  CHECK(normalizedSurfaceDice(a, a, shape, iso, 0.0) == 1.0);
  CHECK(normalizedSurfaceDice(a, b, shape, iso, 1.0) == 1.0);
  // 56 surface voxels each; 36 of each surface lie on the other (the rings of x = 3..5),
  // the rest are 1 mm away: (36 + 36) / (56 + 56) within 0.5 mm.
  CHECK(normalizedSurfaceDice(a, b, shape, iso, 0.5) == doctest::Approx(72.0 / 112.0));
  CHECK(normalizedSurfaceDice(a, b, shape, iso, 0.5) == normalizedSurfaceDice(b, a, shape, iso, 0.5));
  // The spacing is respected: 2 mm voxels along x put the shifted end faces (16 voxels
  // each) 2 mm from the other surface; the 4 voxels inside the other end face of each
  // cube are still 1 mm (along y or z) from the other surface: (40 + 40) / 112.
  const std::array<double, 3> wideX{2.0, 1.0, 1.0};
  CHECK(normalizedSurfaceDice(a, b, shape, wideX, 1.5) == doctest::Approx(80.0 / 112.0));
  CHECK(normalizedSurfaceDice(a, b, shape, wideX, 2.0) == 1.0);
  // A one-voxel shift along a 1 mm axis of the same grid is 1 mm.
  std::vector<uint8_t> c = box(shape, {2, 3, 2}, {5, 6, 5});  // one voxel along y
  CHECK(normalizedSurfaceDice(a, c, shape, wideX, 1.0) == 1.0);
  // A tolerance that equals a non-integer spacing counts the neighbour at that distance.
  CHECK(normalizedSurfaceDice(a, b, shape, {0.8, 1.0, 1.0}, 0.8) == 1.0);
}

TEST_CASE("NSD: both empty is 1, one empty is 0; bad arguments throw") {
  Shape3 shape{4, 4, 4};
  std::vector<uint8_t> empty(64, 0), a = box(shape, {1, 1, 1}, {2, 2, 2});
  CHECK(normalizedSurfaceDice(empty, empty, shape, {1.0, 1.0, 1.0}, 2.0) == 1.0);
  CHECK(normalizedSurfaceDice(a, empty, shape, {1.0, 1.0, 1.0}, 2.0) == 0.0);
  CHECK(normalizedSurfaceDice(empty, a, shape, {1.0, 1.0, 1.0}, 2.0) == 0.0);
  CHECK_THROWS_AS(normalizedSurfaceDice(a, a, shape, {1.0, 1.0, 1.0}, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(normalizedSurfaceDice(a, std::vector<uint8_t>(8, 0), shape, {1.0, 1.0, 1.0}, 1.0),
                  std::invalid_argument);
}

TEST_CASE("segmentation metrics match scipy.ndimage (distance_transform_edt, binary_erosion) on random masks") {
  const auto& cases = segmentationFixtures().at("cases");
  REQUIRE(cases.size() >= 2);
  for (const auto& c : cases) {
    CAPTURE(c.at("name").get<std::string>());
    auto s = c.at("shape").get<std::vector<int64_t>>();
    auto sp = c.at("spacing").get<std::vector<double>>();
    Shape3 shape{s[0], s[1], s[2]};
    std::array<double, 3> spacing{sp[0], sp[1], sp[2]};
    auto a = c.at("a").get<std::vector<uint8_t>>();
    auto b = c.at("b").get<std::vector<uint8_t>>();
    CHECK(dice(a, b) == doctest::Approx(c.at("dice").get<double>()).epsilon(1e-12));
    CHECK(surfaceVoxels(a, shape) == c.at("surface_a").get<std::vector<uint8_t>>());
    std::vector<double> d = squaredDistanceTransform(surfaceVoxels(b, shape), shape, spacing);
    auto expected = c.at("distance_to_surface_b").get<std::vector<double>>();
    REQUIRE(d.size() == expected.size());
    size_t bad = 0;
    for (size_t i = 0; i < d.size(); ++i) bad += std::abs(std::sqrt(d[i]) - expected[i]) > 1e-9 ? 1 : 0;
    CHECK(bad == 0);
    for (const auto& [tau, nsd] : c.at("nsd").items()) {
      CAPTURE(tau);
      CHECK(normalizedSurfaceDice(a, b, shape, spacing, std::stod(tau)) ==
            doctest::Approx(nsd.get<double>()).epsilon(1e-12));
    }
  }
}
