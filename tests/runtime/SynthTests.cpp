// Synthetic brains: determinism, labels, anatomy that follows age and lesion status.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "Metrics.h"
#include "gyrus/clinic/Synth.h"

using namespace gyrus::rt;

namespace {

gyrus::ir::SyntheticData dataOf(int64_t side, uint64_t seed = 3, double lesionRate = 0.5) {
  gyrus::ir::SyntheticData d;
  d.size = {side, side, side};
  d.seed = seed;
  d.lesionRate = lesionRate;
  return d;
}

bool sameBytes(const Volume& a, const Volume& b) {
  return a.shape == b.shape && a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

/// Dark (CSF-like) voxels inside a central ball that excludes the cortex and rim.
int64_t centralDarkVoxels(const Volume& v) {
  double c[3], r = 0.22 * static_cast<double>(v.shape[0]);
  for (int i = 0; i < 3; ++i) c[i] = 0.5 * static_cast<double>(v.shape[i] - 1);
  int64_t count = 0;
  for (int64_t z = 0; z < v.shape[2]; ++z)
    for (int64_t y = 0; y < v.shape[1]; ++y)
      for (int64_t x = 0; x < v.shape[0]; ++x) {
        double dx = static_cast<double>(x) - c[0], dy = static_cast<double>(y) - c[1], dz = static_cast<double>(z) - c[2];
        if (dx * dx + dy * dy + dz * dz <= r * r && v.at(x, y, z) < 0.45f) ++count;
      }
  return count;
}

}  // namespace

TEST_CASE("a subject depends only on (seed, index), not on call order") {
  auto d = dataOf(24);
  Subject a = synthesize(d, 5);
  Subject other = synthesize(d, 6);
  Subject b = synthesize(d, 5);
  CHECK(sameBytes(a.image, b.image));
  CHECK(a.age == b.age);
  CHECK(a.lesion == b.lesion);
  CHECK_FALSE(sameBytes(a.image, other.image));
  CHECK(a.age != other.age);
  Subject reseeded = synthesize(dataOf(24, 4), 5);
  CHECK_FALSE(sameBytes(a.image, reseeded.image));
}

TEST_CASE("volumes have the requested shape, a zero background and plausible intensities") {
  Subject s = synthesize(dataOf(40), 0);
  REQUIRE(s.image.shape == gyrus::ir::Shape3{40, 40, 40});
  REQUIRE(s.image.data.size() == 40u * 40u * 40u);
  CHECK(s.image.at(0, 0, 0) == 0.0f);
  CHECK(s.image.at(39, 39, 39) == 0.0f);
  int64_t nonzero = 0;
  for (float f : s.image.data) {
    REQUIRE(std::isfinite(f));
    REQUIRE(f >= 0.0f);
    nonzero += f > 0.0f;
  }
  double fraction = static_cast<double>(nonzero) / 64000.0;
  CHECK(fraction > 0.2);  // the head (4/3 pi 0.4^3 ~ 0.27 of the box)
  CHECK(fraction < 0.5);
  CHECK(s.image.at(20, 20, 20) > 0.0f);
  CHECK(s.age >= 20.0);
  CHECK(s.age < 85.0);
}

TEST_CASE("lesion labels follow lesionRate") {
  auto d = dataOf(12, 9, 0.3);
  int positives = 0, n = 600;
  for (int i = 0; i < n; ++i) positives += synthesize(d, i).lesion;
  double rate = static_cast<double>(positives) / n;
  MESSAGE("lesion rate over " << n << " subjects: " << rate);
  CHECK(std::abs(rate - 0.3) < 0.06);  // ~3 binomial standard deviations
}

TEST_CASE("a lesion adds a hyperintense blob and leaves the rest of the anatomy unchanged") {
  // With lesionRate 1 vs 0 the same (seed, index) gets the same anatomy.
  Subject with = synthesize(dataOf(40, 5, 1.0), 2);
  Subject without = synthesize(dataOf(40, 5, 0.0), 2);
  REQUIRE(with.lesion == 1);
  REQUIRE(without.lesion == 0);
  CHECK(with.age == without.age);
  auto bright = [](const Volume& v) {
    return std::count_if(v.data.begin(), v.data.end(), [](float f) { return f > 1.3f; });
  };
  CHECK(bright(with.image) >= bright(without.image) + 20);  // a radius >= 2 blob is ~33 voxels
}

TEST_CASE("ventricles grow with age") {
  auto d = dataOf(40, 17);
  std::vector<double> ages, dark;
  for (int i = 0; i < 40; ++i) {
    Subject s = synthesize(d, i);
    ages.push_back(s.age);
    dark.push_back(static_cast<double>(centralDarkVoxels(s.image)));
  }
  double r = pearsonR(ages, dark);
  MESSAGE("pearson r(age, central CSF voxels) = " << r);
  CHECK(r > 0.5);
}
