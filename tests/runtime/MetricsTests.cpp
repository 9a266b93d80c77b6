// Metrics and linear probes against reference values from scikit-learn and scipy
// (fixtures/metrics.json, made by fixtures/make_metric_fixtures.py).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <stdexcept>

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
