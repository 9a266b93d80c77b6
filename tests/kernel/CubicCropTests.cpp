// Tricubic interpolation (`cubic = true` on resample, rotate, scale, elastic) and the
// random patch position (`crop(size, random = true)`) in the lowering and the reference
// interpreter: analytic properties of the Catmull-Rom kernel, agreement with the op-by-op
// reference (runtime/src/Preprocess.cpp, Augment.cpp), and the draws of the patch.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "Preprocess.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Stages.h"

using namespace gyrus;
using gyrus::ir::Shape3;

namespace {

/// A volume whose voxel (x, y, z) is f(x, y, z).
rt::Volume field(const Shape3& s, const std::function<double(double, double, double)>& f) {
  rt::Volume v = rt::Volume::zeros(s);
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) v.at(x, y, z) = static_cast<float>(f(x, y, z));
  return v;
}

struct Out {
  rt::Volume image, target, mask;
  kir::Kernel kernel;
  kir::Binding binding;
};

/// One segment through the interpreter, with the target and mask when asked.
Out run(const ir::Pipeline& p, const rt::Volume& in, const rt::Volume* mask = nullptr, bool target = false,
        uint64_t seed = 3, uint32_t sample = 0) {
  kir::LowerOptions o;
  o.target = target;
  o.mask = mask != nullptr;
  Out r;
  r.kernel = kir::lower(p, o);
  r.binding = kir::bind(r.kernel, {in.shape, in.spacing}, seed, sample);
  r.image = rt::Volume::zeros(r.binding.out.shape);
  r.image.spacing = r.binding.out.spacing;
  r.target = r.image;
  r.mask = r.image;
  kir::Buffers b;
  b.image = in.data.data();
  b.outImage = r.image.data.data();
  if (target) b.outTarget = r.target.data.data();
  if (mask != nullptr) {
    b.mask = mask->data.data();
    b.outMask = r.mask.data.data();
  }
  kir::interpret(r.kernel.program, r.binding, b);
  return r;
}

ir::Pipeline pipeline(std::initializer_list<ir::PipelineOp> ops) { return ir::Pipeline{ops}; }

double maxAbsDiff(const rt::Volume& a, const rt::Volume& b) {
  REQUIRE(a.shape == b.shape);
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a.data[i]) - b.data[i]));
  return m;
}

/// The largest error of `out` against f at the positions its gather read (the one
/// composed affine map of the binding), over the voxels whose 4^3 neighbours are all
/// inside `in`'s grid.
double interiorError(const Out& r, const Shape3& in, const std::function<double(double, double, double)>& f,
                     int64_t& counted) {
  REQUIRE(r.kernel.composites.size() == 1);
  const int slot = r.kernel.composites[0].slot;
  auto m = [&](int i) { return static_cast<double>(r.binding.slots[static_cast<size_t>(slot + i)]); };
  double worst = 0;
  counted = 0;
  const Shape3& s = r.image.shape;
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        double p[3];
        bool inside = true;
        for (int a = 0; a < 3; ++a) {
          p[a] = m(4 * a) * x + m(4 * a + 1) * y + m(4 * a + 2) * z + m(4 * a + 3);
          inside = inside && p[a] >= 1.0 && p[a] < static_cast<double>(in[static_cast<size_t>(a)] - 3);
        }
        if (!inside) continue;
        ++counted;
        worst = std::max(worst, std::abs(r.image.at(x, y, z) - f(p[0], p[1], p[2])));
      }
  return worst;
}

}  // namespace

TEST_CASE("cubic: Catmull-Rom reproduces quadratics exactly inside the grid, trilinear does not") {
  const Shape3 s{22, 20, 18};
  auto quadratic = [](double x, double y, double z) {
    return 0.02 * x * x - 0.015 * x * y + 0.01 * z * z + 0.03 * y * z + 0.4 * x - 0.3 * y + 0.2 * z + 5.0;
  };
  rt::Volume in = field(s, quadratic);
  auto rotation = [](bool cubic) {
    return pipeline({ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 1.0}, {"angle", ir::Interval{17, 23}}, {"cubic", cubic}})});
  };
  int64_t n = 0;
  Out cubic = run(rotation(true), in);
  double cubicError = interiorError(cubic, s, quadratic, n);
  CHECK(n > 1000);
  // Single-precision positions and sums: exact up to rounding.
  CHECK(cubicError < 2e-4);
  Out linear = run(rotation(false), in);
  double linearError = interiorError(linear, s, quadratic, n);
  CHECK(linearError > 1e-3);
  CHECK(linearError > 10 * cubicError);
  // A cubic term is not reproduced (Catmull-Rom has quadratic precision): the error is
  // small but not rounding.
  auto cubicPoly = [](double x, double y, double z) { return 0.02 * x * x * x + 0.5 * y + z; };
  Out third = run(rotation(true), field(s, cubicPoly));
  CHECK(interiorError(third, s, cubicPoly, n) > 1e-3);
}

TEST_CASE("cubic: the same positions as trilinear, integral positions read the voxel, masks stay nearest") {
  rt::Volume in = field({17, 15, 13}, [](double x, double y, double z) { return std::sin(0.5 * x) + y * 0.1 - z * z * 0.01; });
  in.spacing = {1.0, 1.0, 1.0};
  rt::Volume mask = field(in.shape, [](double x, double, double z) { return x + z > 12 ? 1.0 : 0.0; });
  // A resample onto the same grid, a crop and a rotation that does not fire: every
  // position is integral, the copy is exact.
  ir::Pipeline same = pipeline({ir::makeOp("resample", {{"spacing", 1.0}, {"cubic", true}}),
                                ir::makeOp("rotate", {{"p", 0.0}, {"cubic", true}}),
                                ir::makeOp("crop", {{"size", Shape3{11, 9, 7}}})});
  Out r = run(same, in, &mask, true);
  CHECK(r.kernel.program.passes[0].outputs[0].interp == kir::Interp::Cubic);
  CHECK(r.kernel.program.passes[0].outputs[1].interp == kir::Interp::Cubic);  // the target
  CHECK(r.kernel.program.passes[0].outputs[2].interp == kir::Interp::Nearest);  // the mask
  CHECK(r.image.data == rt::centerCropOrPad(in, {11, 9, 7}).data);
  CHECK(r.mask.data == rt::centerCropOrPad(mask, {11, 9, 7}).data);
  // A label map stays nearest whatever an operation asks.
  kir::LowerOptions labels;
  labels.labels = true;
  CHECK(kir::lower(same, labels).program.passes[0].outputs[0].interp == kir::Interp::Nearest);
  // One operation asking is enough: the segment interpolates once.
  ir::Pipeline mixed = pipeline({ir::makeOp("resample", {{"spacing", 0.9}}), ir::makeOp("scale", {{"cubic", true}})});
  CHECK(kir::lower(mixed).program.passes[0].outputs[0].interp == kir::Interp::Cubic);
  // The mask of a cubic view is the mask of the trilinear one (nearest, same map).
  ir::Pipeline rot = pipeline({ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 1.0}, {"cubic", true}})});
  ir::Pipeline rotLinear = pipeline({ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 1.0}})});
  CHECK(run(rot, in, &mask, false, 5, 2).mask.data == run(rotLinear, in, &mask, false, 5, 2).mask.data);
}

TEST_CASE("cubic: print, hash and the pipelines that do not ask for it") {
  ir::Pipeline linear = pipeline({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}})});
  ir::Pipeline cubic = pipeline({ir::makeOp("resample", {{"spacing", 1.0}, {"cubic", true}}),
                                 ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}})});
  std::string a = kir::print(kir::lower(linear).program), b = kir::print(kir::lower(cubic).program);
  CHECK(a.find("cubic") == std::string::npos);
  CHECK(b.find("image = sample cubic") != std::string::npos);
  CHECK(kir::hash(kir::lower(linear).program) != kir::hash(kir::lower(cubic).program));
  // A parameter added later: written only when set, so older files keep their hashes.
  CHECK(ir::print(linear.ops[0]).find("cubic = false") != std::string::npos);
  CHECK_FALSE(ir::makeOp("resample", {{"cubic", true}}).isRandom());
}

TEST_CASE("cubic: the interpreter agrees with the op-by-op reference (resample, scale)") {
  rt::Volume in = field({29, 23, 19}, [](double x, double y, double z) {
    double r = (x - 14) * (x - 14) / 120.0 + (y - 11) * (y - 11) / 80.0 + (z - 9) * (z - 9) / 60.0;
    return r < 1 ? 1.0 + 0.5 * std::sin(0.7 * x) * std::cos(0.3 * y) + 0.1 * z : 0.0;
  });
  in.spacing = {1.2, 0.9, 1.7};
  for (double mm : {1.0, 0.7, 1.6}) {
    CAPTURE(mm);
    ir::Pipeline p = pipeline({ir::makeOp("resample", {{"spacing", mm}, {"cubic", true}})});
    rt::Volume expected = rt::resampleCubic(in, mm);
    Out got = run(p, in);
    CHECK(maxAbsDiff(got.image, expected) < 5e-5);
    // And it is not the trilinear resampling.
    CHECK(maxAbsDiff(got.image, rt::resample(in, mm)) > 1e-3);
  }
  rt::Volume iso = in;
  iso.spacing = {1, 1, 1};
  ir::Pipeline scale = pipeline({ir::makeOp("scale", {{"p", 1.0}, {"factor", ir::Interval{0.8, 1.2}}, {"cubic", true}})});
  Out got = run(scale, iso, nullptr, false, 9, 4);
  const double f = got.binding.slots[static_cast<size_t>(got.kernel.composites[0].slot)];
  CHECK(f != 1.0);
  rt::Volume expected = rt::warpAboutCentre(iso, {{{f, 0, 0}, {0, f, 0}, {0, 0, f}}}, false, true);
  CHECK(maxAbsDiff(got.image, expected) < 5e-5);
}

TEST_CASE("random crop: a whole-voxel window inside the field of view, uniform, drawn by (seed, sample)") {
  const Shape3 in{20, 17, 15}, size{8, 8, 8};
  // Every voxel distinct: a window identifies its offset.
  rt::Volume v = field(in, [&](double x, double y, double z) { return 1 + x + 100 * y + 10000 * z; });
  rt::Volume mask = field(in, [&](double x, double y, double z) { return static_cast<double>((static_cast<int>(x + y + z)) % 3); });
  ir::Pipeline p = pipeline({ir::makeOp("crop", {{"size", size}, {"random", true}})});
  std::array<std::set<int64_t>, 3> seen;
  std::map<std::array<int64_t, 3>, int> counts;
  for (uint32_t sample = 0; sample < 300; ++sample) {
    Out r = run(p, v, &mask, true, 17, sample);
    REQUIRE(r.image.shape == size);
    // The offset: where voxel 0 came from.
    auto first = static_cast<int64_t>(r.image.data[0]) - 1;
    std::array<int64_t, 3> off{first % 100, (first / 100) % 100, first / 10000};
    for (size_t a = 0; a < 3; ++a) {
      CHECK(off[a] >= 0);
      CHECK(off[a] <= in[a] - size[a]);
      seen[a].insert(off[a]);
    }
    ++counts[off];
    // The whole window, the target and the mask through the same offset.
    rt::Volume expected = rt::cropOrPadAt(v, size, off);
    CHECK(r.image.data == expected.data);
    CHECK(r.target.data == expected.data);
    CHECK(r.mask.data == rt::cropOrPadAt(mask, size, off).data);
    if (sample == 5) CHECK(run(p, v, &mask, true, 17, 5).image.data == r.image.data);  // the same draw again
  }
  // Uniform over the valid offsets: every value of every axis occurs.
  for (size_t a = 0; a < 3; ++a) CHECK(seen[a].size() == static_cast<size_t>(in[a] - size[a] + 1));
  CHECK(counts.size() > 200);  // positions, not one fixed patch
  // Another seed draws other positions.
  CHECK(run(p, v, nullptr, false, 18, 0).image.data != run(p, v, nullptr, false, 17, 0).image.data);
}

TEST_CASE("random crop: a side shorter than the patch stays centred; without random, the centre crop") {
  rt::Volume v = field({20, 6, 15}, [](double x, double y, double z) { return 1 + x + 100 * y + 10000 * z; });
  ir::Pipeline p = pipeline({ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}, {"random", true}})});
  for (uint32_t sample = 0; sample < 20; ++sample) {
    Out r = run(p, v, nullptr, false, 1, sample);
    // y: 6 < 8, the centre crop's offset (6 - 8) / 2 = -1: row 0 is padding, rows 1..6 the volume.
    CHECK(r.image.at(3, 0, 3) == 0.0f);
    CHECK(r.image.at(3, 7, 3) == 0.0f);
    auto first = static_cast<int64_t>(r.image.at(0, 1, 0)) - 1;
    CHECK((first / 100) % 100 == 0);
  }
  rt::Volume centre = rt::centerCropOrPad(v, {8, 8, 8});
  CHECK(run(pipeline({ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}})}), v).image.data == centre.data);
}

TEST_CASE("random crop: random for the stages, the centre crop for evaluation") {
  ir::PipelineOp crop = ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}, {"random", true}});
  CHECK(crop.isRandom());
  CHECK_FALSE(ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}}).isRandom());
  ir::PipelineOp part;
  REQUIRE(ir::deterministicPart(crop, part));
  CHECK_FALSE(part.flag("random"));
  CHECK(part.shape("size") == Shape3{8, 8, 8});
  CHECK_FALSE(ir::deterministicPart(ir::makeOp("flip"), part));
  ir::Pipeline p = pipeline({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("zscore"), crop, ir::makeOp("flip")});
  kir::SplitPipeline split = kir::splitAtFirstRandom(p);
  CHECK(split.prefix.ops.size() == 2);  // the patch is cut per view, not cached
  CHECK(split.suffix.ops.front().name == "crop");
  ir::Pipeline eval = kir::withoutRandomOps(p);
  REQUIRE(eval.ops.size() == 3);  // the crop kept (the shape), centred; flip left out
  CHECK(eval.ops[2].name == "crop");
  CHECK_FALSE(eval.ops[2].isRandom());
  CHECK(ir::verify(crop).empty());
}

TEST_CASE("the op-by-op reference: Catmull-Rom weights, random crop offsets, the random crop operation") {
  // The weights sum to 1, interpolate (t = 0: the voxel itself) and reproduce t and t^2.
  for (double t : {0.0, 0.125, 0.3, 0.5, 0.77, 0.999}) {
    std::array<double, 4> w = rt::catmullRom(t);
    double s0 = 0, s1 = 0, s2 = 0;
    for (int k = 0; k < 4; ++k) {
      double x = k - 1.0;
      s0 += w[static_cast<size_t>(k)];
      s1 += w[static_cast<size_t>(k)] * x;
      s2 += w[static_cast<size_t>(k)] * x * x;
    }
    CHECK(s0 == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(s1 == doctest::Approx(t).epsilon(1e-12));
    CHECK(s2 == doctest::Approx(t * t).epsilon(1e-12));
  }
  CHECK(rt::catmullRom(0.0)[1] == 1.0);
  // Offsets: uniform over 0 .. n - size, the centre's where the volume is smaller.
  rt::Rng rng(5);
  std::array<std::set<int64_t>, 3> seen;
  for (int i = 0; i < 400; ++i) {
    std::array<int64_t, 3> off = rt::randomCropOffsets({12, 7, 9}, {8, 10, 9}, rng);
    CHECK(off[0] >= 0);
    CHECK(off[0] <= 4);
    CHECK(off[1] == -1);  // 7 < 10: (7 - 10) / 2, zero-padded around the centre
    CHECK(off[2] == 0);
    for (size_t a = 0; a < 3; ++a) seen[a].insert(off[a]);
  }
  CHECK(seen[0].size() == 5);
  // The operation: a window of the input at the drawn offsets, image and target alike.
  rt::Volume in = field({14, 12, 10}, [](double x, double y, double z) { return 1 + x + 100 * y + 10000 * z; });
  ir::Pipeline p = pipeline({ir::makeOp("crop", {{"size", Shape3{6, 5, 4}}, {"random", true}})});
  std::set<float> corners;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    rt::Volume image = in, target = in;
    rt::Rng r(seed);
    rt::applyAugmentations(p, image, &target, r);
    REQUIRE(image.shape == Shape3{6, 5, 4});
    CHECK(image.data == target.data);
    auto first = static_cast<int64_t>(image.data[0]) - 1;
    std::array<int64_t, 3> off{first % 100, (first / 100) % 100, first / 10000};
    CHECK(image.data == rt::cropOrPadAt(in, {6, 5, 4}, off).data);
    corners.insert(image.data[0]);
  }
  CHECK(corners.size() > 10);
  CHECK_THROWS_AS(rt::applyPipeline(p, in), std::invalid_argument);  // random: needs an Rng
}
