// Preprocessing: crop/pad geometry, z-score statistics, percentile clipping, pipelines.
#include <doctest/doctest.h>

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
  gyrus::ir::PipelineOp crop;
  crop.kind = gyrus::ir::OpKind::Crop;
  crop.size = {6, 6, 6};
  gyrus::ir::PipelineOp z;
  z.kind = gyrus::ir::OpKind::ZScore;
  p.ops = {crop, z};
  Volume out = applyPipeline(p, ramp({10, 10, 10}));
  CHECK(out.shape == Shape3{6, 6, 6});
  Stats s = nonzeroStats(out);
  CHECK(s.mean == doctest::Approx(0.0).scale(1.0));
  CHECK(s.std == doctest::Approx(1.0).epsilon(1e-5));
}
