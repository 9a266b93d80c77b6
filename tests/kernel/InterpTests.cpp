// The kernel IR's reference interpreter against the op-by-op reference implementations
// (runtime/src/Preprocess.cpp), the lowering's structure, the print/hash, and Philox.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "Preprocess.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Philox.h"

using namespace gyrus;
using gyrus::ir::Shape3;

namespace {

/// A smooth "head": positive inside an ellipsoid, 0 outside (the background that
/// head-only operations leave alone).
rt::Volume head(const Shape3& s, std::array<double, 3> spacing = {1, 1, 1}) {
  rt::Volume v = rt::Volume::zeros(s);
  v.spacing = spacing;
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        double u = (x - 0.5 * (s[0] - 1)) / (0.4 * s[0]), w = (y - 0.5 * (s[1] - 1)) / (0.45 * s[1]),
               t = (z - 0.5 * (s[2] - 1)) / (0.42 * s[2]);
        double r = u * u + w * w + t * t;
        if (r < 1) v.at(x, y, z) = static_cast<float>(1.0 + 0.5 * std::sin(0.7 * x) * std::cos(0.3 * y) + 0.1 * z);
      }
  return v;
}

struct Run {
  rt::Volume image, target, mask;
  kir::Binding binding;
};

/// The whole pipeline (every segment) through the interpreter.
rt::Volume applyAll(const ir::Pipeline& p, const rt::Volume& in) {
  kir::Result r = kir::apply(kir::lowerSegments(p), {in.shape, in.spacing}, in.data.data(), nullptr, 1, 0,
                             kir::interpretKernel);
  rt::Volume v;
  v.shape = r.grid.shape;
  v.spacing = r.grid.spacing;
  v.data = std::move(r.image);
  return v;
}

Run interpret(const ir::Pipeline& p, const rt::Volume& in, const rt::Volume* mask = nullptr, bool target = false,
              uint64_t seed = 7, uint32_t sample = 0) {
  kir::LowerOptions o;
  o.target = target;
  o.mask = mask != nullptr;
  kir::Kernel k = kir::lower(p, o);
  Run r;
  r.binding = kir::bind(k, {in.shape, in.spacing}, seed, sample);
  r.image = rt::Volume::zeros(r.binding.out.shape);
  r.image.spacing = r.binding.out.spacing;
  kir::Buffers b;
  b.image = in.data.data();
  b.outImage = r.image.data.data();
  if (target) {
    r.target = r.image;
    b.outTarget = r.target.data.data();
  }
  if (mask) {
    r.mask = r.image;
    b.mask = mask->data.data();
    b.outMask = r.mask.data.data();
  }
  kir::interpret(k.program, r.binding, b);
  return r;
}

double maxAbsDiff(const rt::Volume& a, const rt::Volume& b) {
  REQUIRE(a.shape == b.shape);
  double m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a.data[i]) - b.data[i]));
  return m;
}

ir::Pipeline pipeline(std::initializer_list<ir::PipelineOp> ops) { return ir::Pipeline{ops}; }

}  // namespace

TEST_CASE("Philox4x32-10 matches the published known-answer vectors") {
  // Random123's kat_vectors: philox4x32 10 rounds.
  CHECK(kir::philox(0, {0, 0, 0, 0}) == kir::PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(kir::philox(0xffffffffffffffffULL, {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}) ==
        kir::PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(kir::philox(0x299f31d0a4093822ULL, {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}) ==
        kir::PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("voxel normals are standard normal and differ by stream, sample and voxel") {
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double v = kir::voxelNormal(3, 1, 2, static_cast<uint32_t>(i));
    sum += v;
    sq += v * v;
  }
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(std::abs(sq / n - 1.0) < 0.02);
  CHECK(kir::voxelNormal(3, 1, 2, 5) != kir::voxelNormal(3, 1, 3, 5));
  CHECK(kir::voxelNormal(3, 1, 2, 5) != kir::voxelNormal(3, 2, 2, 5));
  CHECK(kir::voxelNormal(3, 1, 2, 5) != kir::voxelNormal(4, 1, 2, 5));
}

TEST_CASE("deterministic pipelines: the interpreter agrees with the op-by-op reference") {
  rt::Volume in = head({37, 30, 26}, {1.2, 0.9, 2.0});
  std::vector<ir::Pipeline> cases = {
      pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}})}),
      pipeline({ir::makeOp("crop", {{"size", Shape3{20, 41, 13}}}), ir::makeOp("zscore")}),
      pipeline({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{40, 24, 48}}}),
                ir::makeOp("zscore")}),
      pipeline({ir::makeOp("resample", {{"spacing", 1.5}}), ir::makeOp("zscore", {{"nonzero", false}})}),
      pipeline({ir::makeOp("crop", {{"size", Shape3{30, 30, 30}}}), ir::makeOp("clip"), ir::makeOp("zscore", {{"nonzero", false}})}),
      // Two segments: the statistics are the whole volume's, then the crop.
      pipeline({ir::makeOp("zscore"), ir::makeOp("crop", {{"size", Shape3{16, 16, 16}}})}),
      pipeline({ir::makeOp("crop", {{"size", Shape3{30, 28, 26}}}), ir::makeOp("zscore"),
                ir::makeOp("resample", {{"spacing", 0.8}}), ir::makeOp("clip")}),
  };
  for (const ir::Pipeline& p : cases) {
    CAPTURE(ir::print(p));
    rt::Volume expected = rt::applyPipeline(p, in);
    rt::Volume got = applyAll(p, in);
    REQUIRE(got.shape == expected.shape);
    CHECK(got.spacing == expected.spacing);
    // Resampling composes positions in single precision: weights differ in the last bits.
    // (Percentiles over non-zero voxels right after a resample are left out: which border
    // voxels come out as 1e-16 rather than 0 decides the order statistics.)
    CHECK(maxAbsDiff(got, expected) < 2e-5);
  }
  CHECK(kir::lowerSegments(cases[5]).size() == 2);
  CHECK(kir::lowerSegments(cases[6]).size() == 2);
  CHECK(kir::lowerSegments(cases[2]).size() == 1);
  CHECK_THROWS_AS(kir::lower(cases[5]), std::invalid_argument);
}

TEST_CASE("a mask travels through the same map, nearest neighbour, as the reference's") {
  rt::Volume in = head({31, 27, 22}, {1.3, 1.0, 1.7});
  rt::Volume mask = in;
  for (float& f : mask.data) f = f > 1.2f ? 1.0f : 0.0f;
  ir::Pipeline p = pipeline({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{32, 24, 40}}}),
                             ir::makeOp("zscore")});
  Run got = interpret(p, in, &mask);
  rt::Volume expected = rt::applySpatialOps(p, mask);
  REQUIRE(got.mask.shape == expected.shape);
  CHECK(got.mask.data == expected.data);
}

TEST_CASE("random pipelines: the same seed and sample draw the same view; others differ") {
  rt::Volume in = head({24, 24, 24});
  ir::Pipeline p = pipeline({ir::makeOp("flip"), ir::makeOp("gamma"), ir::makeOp("noise", {{"sigma", 0.1}})});
  Run a = interpret(p, in, nullptr, true, 11, 3), b = interpret(p, in, nullptr, true, 11, 3);
  CHECK(a.image.data == b.image.data);
  CHECK(interpret(p, in, nullptr, true, 11, 4).image.data != a.image.data);
  CHECK(interpret(p, in, nullptr, true, 12, 3).image.data != a.image.data);
  // The target is the clean image in the view's geometry: flipped, no gamma, no noise.
  std::set<std::array<bool, 3>> seen;
  for (uint32_t sample = 0; sample < 24; ++sample) {
    Run r = interpret(p, in, nullptr, true, 5, sample);
    bool matched = false;
    for (int bits = 0; bits < 8; ++bits) {
      rt::FlipAxes axes{(bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0};
      rt::Volume flipped = in;
      rt::mirror(flipped, axes);
      if (flipped.data == r.target.data) {
        matched = true;
        seen.insert(axes);
      }
    }
    CHECK(matched);
    // Background stays 0 (noise and gamma act on head voxels only).
    for (size_t i = 0; i < r.image.data.size(); ++i)
      if (r.target.data[i] == 0.0f) CHECK(r.image.data[i] == 0.0f);
  }
  CHECK(seen.size() >= 6);  // the flips are drawn, not fixed
}

TEST_CASE("gamma and noise in the interpreter follow their reference definitions") {
  rt::Volume in = head({20, 22, 18});
  ir::Pipeline g = pipeline({ir::makeOp("gamma", {{"range", ir::Interval{0.6, 1.8}}})});
  kir::Kernel k = kir::lower(g);
  Run r = interpret(g, in, nullptr, false, 9, 1);
  float exponent = r.binding.slots[0];
  CHECK(exponent >= 0.6f);
  CHECK(exponent < 1.8f);
  rt::Volume expected = in;
  rt::gammaTransform(expected, exponent);
  CHECK(maxAbsDiff(r.image, expected) < 1e-5);
  // Noise: zero mean, the given sigma, head voxels only.
  ir::Pipeline n = pipeline({ir::makeOp("noise", {{"sigma", 0.5}})});
  Run noisy = interpret(n, in, nullptr, false, 9, 1);
  double sum = 0, sq = 0;
  int64_t count = 0;
  for (size_t i = 0; i < in.data.size(); ++i) {
    if (in.data[i] == 0.0f) {
      CHECK(noisy.image.data[i] == 0.0f);
      continue;
    }
    double d = noisy.image.data[i] - in.data[i];
    sum += d;
    sq += d * d;
    ++count;
  }
  CHECK(std::abs(sum / count) < 0.02);
  CHECK(std::abs(std::sqrt(sq / count) - 0.5) < 0.02);
}

TEST_CASE("lowering: spatial operations merge into one affine map; statistics split passes") {
  ir::Pipeline p = pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("flip"), ir::makeOp("zscore"),
                             ir::makeOp("gamma"), ir::makeOp("noise")});
  kir::Kernel k = kir::lower(p, {true, false});
  const kir::Program& prog = k.program;
  REQUIRE(prog.passes.size() >= 4);
  const kir::Pass& gather = prog.passes[0];
  REQUIRE(gather.coords.size() == 2);  // affine (flip after crop), window (crop)
  CHECK(gather.coords[0].op == kir::CoordOp::Affine);
  CHECK(gather.coords[1].op == kir::CoordOp::Window);
  CHECK(gather.outputs.size() == 2);
  std::string text = kir::print(prog);
  CHECK(text.find("reduce image moments nonzero") != std::string::npos);
  CHECK(text.find("reduce target moments nonzero") != std::string::npos);
  CHECK(text.find("add_noise(0.0500000007) head stream 4") != std::string::npos);
  CHECK(text.find("reduce target minmax") == std::string::npos);  // gamma leaves the target clean
  CHECK_THROWS_AS(kir::lower(pipeline({ir::PipelineOp{"sharpen", {}}})), std::invalid_argument);
}

TEST_CASE("the hash changes with every constant and every structural choice") {
  auto h = [](const ir::Pipeline& p, kir::LowerOptions o = {}) { return kir::hash(kir::lower(p, o).program); };
  ir::Pipeline base = pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("clip"), ir::makeOp("noise")});
  std::set<std::string> seen = {
      h(base),
      h(base, {true, false}),
      h(base, {false, true}),
      h(pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("clip", {{"lo", 0.01}}), ir::makeOp("noise")})),
      h(pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("clip", {{"hi", 0.98}}), ir::makeOp("noise")})),
      h(pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("clip"), ir::makeOp("noise", {{"sigma", 0.06}})})),
      h(pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("noise"), ir::makeOp("clip")})),
      h(pipeline({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("zscore"), ir::makeOp("noise")})),
  };
  CHECK(seen.size() == 8);
  // The shape of a crop is a per-volume value (a slot), not a constant: one compiled
  // kernel serves every size.
  CHECK(h(base) == h(pipeline({ir::makeOp("crop", {{"size", Shape3{48, 40, 32}}}), ir::makeOp("clip"), ir::makeOp("noise")})));
  CHECK(h(base) == h(base));
}

TEST_CASE("every registry operation lowers to the kernel IR (nothing runs op by op)") {
  for (const ir::OpSpec& spec : ir::pipelineOps()) {
    CAPTURE(spec.name);
    ir::PipelineOp op = ir::makeOp(spec.name);
    if (spec.name == "crop") op.set("size", Shape3{8, 8, 8});
    CHECK(kir::canLower(op));
    CHECK_NOTHROW(kir::lowerSegments(ir::Pipeline{{op}}, {true, true}));
  }
}
