// The LLVM back end against the reference interpreter (ggml's test-backend-ops style):
// random pipelines of every operation that has a lowering, random shapes (odd sizes,
// axes of one voxel), spacings and parameters, with and without the reconstruction
// target and a mask; hand-made programs that use every coordinate and pointwise
// instruction; thread-count independence; the memory and disk caches (hits, corrupt
// files, keys that see every constant); the module loaded with dlopen.
//
// The random pipelines draw every registry operation that has a lowering (Lower.cpp):
// resample, crop, zscore, clip, flip, noise, gamma, elastic, rotate, scale, blur,
// mul_noise, ghosting, ringing, lowres, bias_field, brightness, contrast; the spatial
// ones sometimes with `cubic` (tricubic gathers), crop sometimes with `random`.
//
// Tolerance: masks (nearest neighbour) must be equal bit for bit; images within
// kTolerance times their value range (at least 1), statistics of images within
// kTolerance relative. The generated code evaluates every instruction in the
// interpreter's order without contraction; in vectorised loops exp/log/pow/cos are
// libmvec's vector functions (≤ 4 ulp from the scalar libm the interpreter calls): the
// largest difference measured over the random pipelines is 2.2e-7 of the range (0 with
// GYRUS_KERNEL_VECTOR_MATH=0). Instructions skipped for a sample (Kernel.h) are tested
// bit for bit.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <thread>

#include "Kernels.h"
#include "gyrus/PipelineOps.h"
#include "gyrus/kernel/Jit.h"
#include "gyrus/kernel/Kernel.h"

using namespace gyrus;
using gyrus::ir::Shape3;

namespace {

namespace fs = std::filesystem;

constexpr double kTolerance = 1e-5;

/// A scratch directory for a disk cache, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("gyrus-jit-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// A JIT whose disk cache is off (or in `dir`).
std::unique_ptr<kir::Jit> makeJit(const fs::path& dir = {}) {
  return kir::createJit(kir::JitOptions().withDiskCache(!dir.empty()).withCacheDir(dir.string()));
}

/// A "head": random intensities inside an ellipsoid, 0 outside; its mask labels 0..2.
struct Source {
  kir::Grid grid;
  std::vector<float> image, mask;
};
Source randomSource(std::mt19937& rng, const Shape3& s, std::array<double, 3> spacing) {
  std::uniform_real_distribution<float> value(0.2f, 3.0f);
  std::uniform_real_distribution<double> scale(0.35, 0.6);
  const double rx = scale(rng), ry = scale(rng), rz = scale(rng);
  Source src;
  src.grid = {s, spacing};
  const auto n = static_cast<size_t>(s[0] * s[1] * s[2]);
  src.image.assign(n, 0.0f);
  src.mask.assign(n, 0.0f);
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        auto norm = [](int64_t i, int64_t len, double r) { return (i - 0.5 * (len - 1)) / (r * len + 0.5); };
        double d = std::pow(norm(x, s[0], rx), 2) + std::pow(norm(y, s[1], ry), 2) + std::pow(norm(z, s[2], rz), 2);
        auto i = static_cast<size_t>(x + s[0] * (y + s[1] * z));
        if (d < 1.0) {
          src.image[i] = value(rng);
          src.mask[i] = d < 0.3 ? 2.0f : 1.0f;
        }
      }
  return src;
}

/// The largest difference of two outputs, and the reference's value range.
struct Difference {
  double maxAbs = 0, range = 0;
  bool nanMismatch = false;
};
Difference difference(const std::vector<float>& ref, const std::vector<float>& got) {
  Difference d;
  if (ref.empty()) return d;
  auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
  d.range = static_cast<double>(*hi) - *lo;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) || std::isnan(got[i])) {
      d.nanMismatch = d.nanMismatch || std::isnan(ref[i]) != std::isnan(got[i]);
      continue;
    }
    d.maxAbs = std::max(d.maxAbs, std::abs(static_cast<double>(ref[i]) - got[i]));
  }
  return d;
}
bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

/// The largest relative difference seen (reported at the end of the random cases).
double worstRelative = 0;

void checkAgainst(const kir::Result& ref, const kir::Result& got, const std::string& what) {
  INFO(what);
  REQUIRE(ref.grid.shape == got.grid.shape);
  REQUIRE(ref.image.size() == got.image.size());
  REQUIRE(ref.target.size() == got.target.size());
  for (const auto* pair : {&ref.image, &ref.target}) {
    const std::vector<float>& r = *pair;
    const std::vector<float>& g = pair == &ref.image ? got.image : got.target;
    Difference d = difference(r, g);
    CHECK_FALSE(d.nanMismatch);
    const double allowed = kTolerance * std::max(1.0, d.range);
    CHECK(d.maxAbs <= allowed);
    worstRelative = std::max(worstRelative, d.maxAbs / std::max(1.0, d.range));
  }
  CHECK(sameBits(ref.mask, got.mask));
}

// ---- random pipelines ------------------------------------------------------------------

ir::PipelineOp randomOp(std::mt19937& rng) {
  std::uniform_int_distribution<int> which(0, 17);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto side = [&] { return std::uniform_int_distribution<int64_t>(1, 19)(rng); };
  // A probability of applying: mostly 1, so the operation acts.
  auto p = [&] { return u(rng) < 0.8 ? 1.0 : 0.5; };
  auto range = [&](double lo, double hi) {
    double a = lo + (hi - lo) * u(rng), b = lo + (hi - lo) * u(rng);
    return ir::Interval{std::min(a, b), std::max(a, b) + 1e-3 * (hi - lo)};
  };
  switch (which(rng)) {
    case 0: return ir::makeOp("resample", {{"spacing", 0.7 + 1.5 * u(rng)}, {"cubic", u(rng) < 0.3}});
    case 1: return ir::makeOp("crop", {{"size", Shape3{side(), side(), side()}}, {"random", u(rng) < 0.5}});
    case 2: return ir::makeOp("zscore", {{"nonzero", u(rng) < 0.5}});
    case 3: return ir::makeOp("clip", {{"lo", 0.1 * u(rng)}, {"hi", 0.9 + 0.099 * u(rng)}});
    case 4: {
      const double ps[] = {0.0, 0.5, 1.0};
      return ir::makeOp("flip", {{"p", ps[std::uniform_int_distribution<int>(0, 2)(rng)]}});
    }
    case 5:
      return ir::makeOp("noise", {{"sigma", 0.3 * u(rng)}, {"sigma_hi", u(rng) < 0.5 ? 0.0 : 0.4}, {"p", p()}});
    case 6:
      return ir::makeOp("gamma",
                        {{"range", range(0.5, 2.0)}, {"p", p()}, {"invert", u(rng) < 0.5 ? 0.0 : 0.7}, {"halves", u(rng) < 0.5}});
    case 7:
      return ir::makeOp("elastic",
                        {{"p", p()}, {"alpha", range(1, 40)}, {"sigma", range(2, 6)}, {"cubic", u(rng) < 0.3}});
    case 8: return ir::makeOp("rotate", {{"p", p()}, {"axis_p", 0.7}, {"angle", range(-40, 40)}, {"cubic", u(rng) < 0.3}});
    case 9: return ir::makeOp("scale", {{"p", p()}, {"factor", range(0.7, 1.3)}, {"cubic", u(rng) < 0.3}});
    case 10: return ir::makeOp("blur", {{"p", p()}, {"p_channel", 1.0}, {"sigma", range(0.2, 1.5)}});
    case 11: return ir::makeOp("mul_noise", {{"p", p()}, {"sigma", range(0.01, 0.3)}});
    case 12: return ir::makeOp("ghosting", {{"p", p()}, {"every", range(2, 5)}, {"alpha", range(0.3, 0.95)}});
    case 13: return ir::makeOp("ringing", {{"p", p()}, {"cut", range(0.3, 1.0)}});
    case 14: return ir::makeOp("lowres", {{"p", p()}, {"p_channel", 1.0}, {"axis_p", 0.7}, {"zoom", range(0.4, 1.0)}});
    case 15: return ir::makeOp("bias_field", {{"p", p()}, {"strength", 3 * u(rng)}});
    case 16: return ir::makeOp("brightness", {{"p", p()}, {"factor", range(0.75, 1.25)}});
    default: return ir::makeOp("contrast", {{"p", p()}, {"factor", range(0.75, 1.25)}});
  }
}

Shape3 randomShape(std::mt19937& rng) {
  const int64_t sides[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 21};
  std::uniform_int_distribution<int> pick(0, 10);
  return {sides[pick(rng)], sides[pick(rng)], sides[pick(rng)]};
}

}  // namespace

TEST_CASE("random pipelines: the JIT computes what the interpreter computes") {
  std::mt19937 rng(20261204);
  std::unique_ptr<kir::Jit> jit = makeJit();
  std::uniform_real_distribution<double> spacing(0.6, 2.5);
  int segmentsSeen = 0, cubicSeen = 0, randomCropsSeen = 0;
  for (int round = 0; round < 200; ++round) {
    ir::Pipeline p;
    const int ops = std::uniform_int_distribution<int>(1, 5)(rng);
    for (int i = 0; i < ops; ++i) p.ops.push_back(randomOp(rng));
    kir::LowerOptions options;
    options.target = rng() % 2 == 0;
    options.mask = rng() % 2 == 0;
    options.labels = rng() % 5 == 0;  // the image is a label map: nearest, spatial operations only
    Source src = randomSource(rng, randomShape(rng), {spacing(rng), spacing(rng), spacing(rng)});
    const uint64_t seed = (static_cast<uint64_t>(rng()) << 32) | rng();
    const uint32_t sample = rng() % 1000;
    std::string what = "round " + std::to_string(round) + ": " + ir::print(p) + (options.target ? " +target" : "") +
                       (options.mask ? " +mask" : "") + (options.labels ? " labels" : "");
    std::vector<kir::Kernel> segments = kir::lowerSegments(p, options);
    segmentsSeen += static_cast<int>(segments.size());
    for (const kir::Kernel& k : segments)
      for (const kir::GatherOutput& o : k.program.passes[0].outputs) cubicSeen += o.interp == kir::Interp::Cubic ? 1 : 0;
    for (const ir::PipelineOp& op : p.ops) randomCropsSeen += op.name == "crop" && op.flag("random") ? 1 : 0;
    const float* mask = options.mask ? src.mask.data() : nullptr;
    kir::Result ref = kir::apply(segments, src.grid, src.image.data(), mask, seed, sample, kir::interpretKernel);
    kir::Result one = kir::apply(segments, src.grid, src.image.data(), mask, seed, sample, jit->runner());
    checkAgainst(ref, one, what);
    if (options.labels) CHECK(sameBits(ref.image, one.image));
    // The same with three threads over z slices: the same bits.
    kir::Result three = kir::apply(segments, src.grid, src.image.data(), mask, seed, sample,
                                   jit->runner(kir::RunOptions().withThreads(3)));
    INFO(what);
    CHECK(sameBits(one.image, three.image));
    CHECK(sameBits(one.target, three.target));
    CHECK(sameBits(one.mask, three.mask));
  }
  CHECK(segmentsSeen > 200);  // some pipelines had a spatial operation after an intensity one
  CHECK(cubicSeen >= 10);       // tricubic gathers (image, target) were compared
  CHECK(randomCropsSeen >= 10);
  MESSAGE("random pipelines: largest |JIT - interpreter| / max(1, range) = " << worstRelative);
}

namespace {

/// A hand-made program with every coordinate and pointwise instruction: an affine map,
/// a displacement field, a clamp and a window; image (linear) and mask (nearest) outputs
/// with chains of every pointwise kind; a reduction and a map after it.
struct Handmade {
  kir::Program program;
  kir::Binding binding;
};
Handmade handmade(std::mt19937& rng, const Shape3& in, const Shape3& out, bool invertGamma, bool flatGamma) {
  using kir::Operand;
  Handmade h;
  kir::Program& p = h.program;
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> slots;
  auto slot = [&](float v) {
    slots.push_back(v);
    p.slotNames.push_back("s" + std::to_string(slots.size() - 1));
    return Operand::at(static_cast<int>(slots.size()) - 1);
  };
  kir::Pass gather;
  gather.kind = kir::PassKind::Gather;
  // A rotation-ish affine map with scaling, in slots.
  const float scale[3] = {static_cast<float>(in[0]) / static_cast<float>(out[0]),
                          static_cast<float>(in[1]) / static_cast<float>(out[1]),
                          static_cast<float>(in[2]) / static_cast<float>(out[2])};
  kir::CoordInstr affine{kir::CoordOp::Affine, {}, -1, "affine"};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      float v = j == 3 ? 0.7f * u(rng) : (i == j ? scale[i] : 0.1f * u(rng));
      affine.args.push_back(slot(v));
    }
  gather.coords.push_back(affine);
  // A displacement field of 4x3x5 control points over the output grid.
  p.fields.push_back({Shape3{4, 3, 5}, "elastic"});
  kir::CoordInstr displace{kir::CoordOp::Displace, {}, 0, "elastic"};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      float v =
          j == 3 ? -0.2f
                 : (i == j ? 3.0f / static_cast<float>(std::max<int64_t>(out[static_cast<size_t>(i)] - 1, 1)) : 0.0f);
      displace.args.push_back(j == 3 ? Operand::constant(v) : slot(v));
    }
  gather.coords.push_back(displace);
  if (rng() % 2 == 0) {
    gather.coords.push_back({kir::CoordOp::Clamp,
                             {slot(static_cast<float>(in[0] - 1)), slot(static_cast<float>(in[1] - 1)),
                              Operand::constant(static_cast<float>(in[2] - 1))},
                             -1,
                             "clamp"});
  }
  gather.coords.push_back(
      {kir::CoordOp::Window,
       {slot(static_cast<float>(in[0] - 1)), slot(static_cast<float>(in[1] - 1)), slot(static_cast<float>(in[2] - 1))},
       -1,
       "window"});
  kir::GatherOutput image{kir::Buffer::Image, kir::Buffer::Image, kir::Interp::Linear, {}};
  image.chain = {
      {kir::PointOp::Affine, false, {slot(1.3f), Operand::constant(0.25f)}, 0, "affine"},
      {kir::PointOp::Contrast, true, {slot(1.4f), slot(1.1f)}, 0, "contrast"},
      {kir::PointOp::Clamp, false, {Operand::constant(-0.5f), slot(4.0f)}, 0, "clamp"},
      {kir::PointOp::Gamma,
       true,
       {slot(0.7f), slot(0.1f), slot(flatGamma ? 0.1f : 3.5f), Operand::constant(invertGamma ? 1.0f : 0.0f)},
       0,
       "gamma"},
      {kir::PointOp::AddNoise, true, {Operand::constant(0.1f)}, 3, "noise"},
      {kir::PointOp::MulNoise, false, {slot(0.2f)}, 5, "mulnoise"},
      {kir::PointOp::Bias, true, {}, 0, "bias"},
  };
  for (int i = 0; i < 10; ++i) image.chain.back().args.push_back(slot(0.15f * u(rng)));
  gather.outputs.push_back(image);
  gather.outputs.push_back({kir::Buffer::Mask, kir::Buffer::Mask, kir::Interp::Nearest, {}});
  kir::GatherOutput target{kir::Buffer::Target, kir::Buffer::Image, kir::Interp::Linear, {}};
  target.chain = {{kir::PointOp::Gamma,
                   false,
                   {slot(1.6f), Operand::constant(0.0f), Operand::constant(2.0f), slot(invertGamma ? 0.0f : 1.0f)},
                   0,
                   "gamma"}};
  gather.outputs.push_back(target);
  p.passes.push_back(gather);
  kir::Pass reduce;
  reduce.kind = kir::PassKind::Reduce;
  reduce.reduce = {kir::ReduceOp::Moments, true, 0, 0, static_cast<int>(slots.size())};
  slot(0.0f);
  slot(0.0f);
  p.passes.push_back(reduce);
  kir::Pass map;
  map.kind = kir::PassKind::Map;
  map.chain = {{kir::PointOp::Normalize,
                true,
                {Operand::at(reduce.reduce.out), Operand::at(reduce.reduce.out + 1)},
                0,
                "zscore"},
               {kir::PointOp::MulNoise, true, {Operand::constant(0.05f)}, 9, "mulnoise"},
               {kir::PointOp::Bias, false, {}, 0, "bias"}};
  for (int i = 0; i < 10; ++i) map.chain.back().args.push_back(Operand::constant(0.1f * u(rng)));
  p.passes.push_back(map);
  p.slots = static_cast<int>(slots.size());
  p.hasMask = p.hasTarget = true;

  kir::Binding& b = h.binding;
  b.in = {in, {1, 1, 1}};
  b.out = {out, {1, 1, 1}};
  b.slots = slots;
  b.seed = 0x123456789abcdefULL;
  b.sample = 17;
  std::vector<float> field(3 * 4 * 3 * 5);
  for (float& v : field) v = 1.5f * u(rng);
  b.fields.push_back(field);
  return h;
}

struct Outputs {
  std::vector<float> image, target, mask;
  std::vector<float> slots;
};
Outputs runProgram(const kir::Program& p, kir::Binding b, const Source& src,
                   const std::function<void(const kir::Program&, kir::Binding&, const kir::Buffers&)>& run) {
  Outputs o;
  const auto n = static_cast<size_t>(b.out.shape[0] * b.out.shape[1] * b.out.shape[2]);
  o.image.assign(n, -7.0f);
  o.target.assign(n, -7.0f);
  o.mask.assign(n, -7.0f);
  kir::Buffers buffers;
  buffers.image = src.image.data();
  buffers.mask = src.mask.data();
  buffers.outImage = o.image.data();
  buffers.outTarget = o.target.data();
  buffers.outMask = o.mask.data();
  run(p, b, buffers);
  o.slots = b.slots;
  return o;
}

}  // namespace

TEST_CASE("every coordinate and pointwise instruction: the JIT computes what the interpreter computes") {
  std::mt19937 rng(7);
  std::unique_ptr<kir::Jit> jit = makeJit();
  for (int round = 0; round < 24; ++round) {
    Shape3 in = randomShape(rng), out = randomShape(rng);
    Source src = randomSource(rng, in, {1, 1, 1});
    Handmade h = handmade(rng, in, out, round % 2 == 1, round % 5 == 4);
    INFO("round " << round << "\n" << kir::print(h.program));
    Outputs ref =
        runProgram(h.program, h.binding, src,
                   [](const kir::Program& p, kir::Binding& b, const kir::Buffers& f) { kir::interpret(p, b, f); });
    auto compiled = jit->compile(h.program);
    for (int threads : {1, 4}) {
      Outputs got =
          runProgram(h.program, h.binding, src, [&](const kir::Program&, kir::Binding& b, const kir::Buffers& f) {
            compiled->run(b, f, kir::RunOptions().withThreads(threads));
          });
      CHECK(sameBits(ref.mask, got.mask));
      for (const auto& [r, g] : {std::pair{&ref.image, &got.image}, std::pair{&ref.target, &got.target}}) {
        Difference d = difference(*r, *g);
        CHECK_FALSE(d.nanMismatch);
        CHECK(d.maxAbs <= kTolerance * std::max(1.0, d.range));
      }
      // Statistics of images: within the images' tolerance (vector math, Kernel.h).
      REQUIRE(ref.slots.size() == got.slots.size());
      for (size_t i = 0; i < ref.slots.size(); ++i)
        CHECK(std::abs(static_cast<double>(ref.slots[i]) - got.slots[i]) <=
              kTolerance * std::max(1.0, std::abs(static_cast<double>(ref.slots[i]))));
    }
  }
}

TEST_CASE("results do not depend on the thread count or on the caller's parallel loop") {
  std::mt19937 rng(11);
  std::unique_ptr<kir::Jit> jit = makeJit();
  Source src = randomSource(rng, {21, 17, 13}, {1, 1, 1});
  Handmade h = handmade(rng, {21, 17, 13}, {19, 16, 23}, false, false);
  auto compiled = jit->compile(h.program);
  auto run = [&](const kir::RunOptions& options) {
    return runProgram(h.program, h.binding, src, [&](const kir::Program&, kir::Binding& b, const kir::Buffers& f) {
      compiled->run(b, f, options);
    });
  };
  Outputs one = run(kir::RunOptions());
  for (int threads : {2, 3, 7, 23, 64}) {
    Outputs many = run(kir::RunOptions().withThreads(threads));
    CHECK(sameBits(one.image, many.image));
    CHECK(sameBits(one.target, many.target));
    CHECK(sameBits(one.mask, many.mask));
  }
  // A parallel loop that hands out single slices in reverse order, from two threads.
  int64_t calls = 0;
  Outputs custom =
      run(kir::RunOptions().withParallelFor([&](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
        std::thread other([&] {
          for (int64_t z = n - 1; z >= 0; z -= 2) body(z, z + 1);
        });
        for (int64_t z = n - 2; z >= 0; z -= 2) body(z, z + 1);
        other.join();
        calls += n;
      }));
  CHECK(calls == 2 * 23);  // two generated passes (the gather and the map), 23 slices each
  CHECK(sameBits(one.image, custom.image));
  CHECK(sameBits(one.mask, custom.mask));
}

namespace {

kir::Result applyWith(const std::vector<kir::Kernel>& segments, const Source& src, const kir::Runner& run) {
  return kir::apply(segments, src.grid, src.image.data(), segments[0].program.hasMask ? src.mask.data() : nullptr, 99,
                    3, run);
}

std::vector<kir::Kernel> lowered(std::initializer_list<ir::PipelineOp> ops, kir::LowerOptions options = {}) {
  return kir::lowerSegments(ir::Pipeline{ops}, options);
}

}  // namespace

TEST_CASE("caches: memory and disk hits give the same code; compile times cold and cached") {
  TempDir dir("cache");
  std::mt19937 rng(3);
  Source src = randomSource(rng, {24, 20, 18}, {1.1, 0.9, 1.3});
  auto segments =
      lowered({ir::makeOp("resample", {{"spacing", 1.2}}), ir::makeOp("crop", {{"size", Shape3{16, 16, 16}}}),
               ir::makeOp("flip"), ir::makeOp("zscore"), ir::makeOp("gamma"), ir::makeOp("noise")},
              {.target = true, .mask = true});
  REQUIRE(segments.size() == 1);
  const kir::Program& program = segments[0].program;

  std::unique_ptr<kir::Jit> cold = makeJit(dir.path);
  CHECK(cold->cacheDirectory() == dir.path.string());
  auto first = cold->compile(program);
  CHECK(first->source() == kir::CodeSource::Compiled);
  CHECK(first->hash() == kir::hash(program));
  auto again = cold->compile(program);
  CHECK(again->source() == kir::CodeSource::MemoryCache);
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    CHECK(entry.path().extension() == ".o");  // no temporary file left behind
    ++files;
  }
  CHECK(files == 1);

  std::unique_ptr<kir::Jit> warm = makeJit(dir.path);
  auto loaded = warm->compile(program);
  CHECK(loaded->source() == kir::CodeSource::DiskCache);
  MESSAGE("compile: cold " << first->compileMs() << " ms, disk cache " << loaded->compileMs() << " ms, memory cache "
                           << again->compileMs() << " ms (" << cold->target() << ")");

  kir::Result ref = applyWith(segments, src, kir::interpretKernel);
  kir::Result a = applyWith(segments, src, cold->runner());
  kir::Result b = applyWith(segments, src, warm->runner());
  checkAgainst(ref, a, "compiled");
  CHECK(sameBits(a.image, b.image));
  CHECK(sameBits(a.target, b.target));
  CHECK(sameBits(a.mask, b.mask));
}

TEST_CASE("caches: the disk cache's directory: $GYRUS_KERNEL_CACHE, else ~/.cache/gyrus/kernels") {
  TempDir dir("env");
  const char* saved = std::getenv("GYRUS_KERNEL_CACHE");
  std::string before = saved ? saved : "";
  ::setenv("GYRUS_KERNEL_CACHE", dir.path.c_str(), 1);
  CHECK(kir::createJit()->cacheDirectory() == dir.path.string());
  CHECK(kir::createJit(kir::JitOptions().withCacheDir("/elsewhere"))->cacheDirectory() == "/elsewhere");
  CHECK(kir::createJit(kir::JitOptions().withDiskCache(false))->cacheDirectory().empty());
  ::unsetenv("GYRUS_KERNEL_CACHE");
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    CHECK(kir::createJit()->cacheDirectory() == (fs::path(home) / ".cache" / "gyrus" / "kernels").string());
  // A directory that cannot be created costs only the cache.
  std::unique_ptr<kir::Jit> jit = makeJit("/proc/gyrus-no-such-dir");
  auto segments = lowered({ir::makeOp("zscore")});
  CHECK(jit->compile(segments[0].program)->source() == kir::CodeSource::Compiled);
  if (saved) ::setenv("GYRUS_KERNEL_CACHE", before.c_str(), 1);
}

TEST_CASE("caches: a corrupt or truncated object file is ignored and rewritten") {
  TempDir dir("corrupt");
  std::mt19937 rng(5);
  Source src = randomSource(rng, {9, 8, 7}, {1, 1, 1});
  auto segments = lowered({ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}}), ir::makeOp("clip"), ir::makeOp("noise")});
  const kir::Program& program = segments[0].program;
  kir::Result ref = applyWith(segments, src, kir::interpretKernel);
  makeJit(dir.path)->compile(program);
  fs::path file;
  for (const auto& entry : fs::directory_iterator(dir.path)) file = entry.path();
  REQUIRE(fs::exists(file));
  const auto size = fs::file_size(file);
  std::string bytes(size, '\0');
  {
    std::ifstream in(file, std::ios::binary);
    in.read(bytes.data(), static_cast<std::streamsize>(size));
  }
  auto damaged = [&](const std::string& what, const std::string& content) {
    INFO(what);
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out << content;
    }
    std::unique_ptr<kir::Jit> jit = makeJit(dir.path);
    auto compiled = jit->compile(program);
    CHECK(compiled->source() == kir::CodeSource::Compiled);
    checkAgainst(ref, applyWith(segments, src, jit->runner()), what);
    CHECK(fs::file_size(file) == size);  // rewritten whole
    CHECK(makeJit(dir.path)->compile(program)->source() == kir::CodeSource::DiskCache);
  };
  damaged("truncated", bytes.substr(0, size / 2));
  damaged("empty", "");
  std::string flipped = bytes;
  flipped[size - 100] = static_cast<char>(flipped[size - 100] ^ 0x5a);
  damaged("a flipped byte", flipped);
  damaged("garbage", std::string(size, 'x'));
  damaged("header only", bytes.substr(0, bytes.find('\n', bytes.find('\n') + 1) + 1));
}

TEST_CASE("caches: programs that differ only in a constant give different results through the caches") {
  TempDir dir("constants");
  std::mt19937 rng(9);
  Source src = randomSource(rng, {12, 11, 10}, {1, 1, 1});
  std::unique_ptr<kir::Jit> jit = makeJit(dir.path);
  auto check = [&](const std::vector<kir::Kernel>& a, const std::vector<kir::Kernel>& b, const char* what) {
    INFO(what);
    REQUIRE(kir::hash(a[0].program) != kir::hash(b[0].program));
    for (int pass = 0; pass < 2; ++pass) {  // compiled, then from the memory cache
      kir::Result ra = applyWith(a, src, jit->runner()), rb = applyWith(b, src, jit->runner());
      CHECK_FALSE(sameBits(ra.image, rb.image));
      checkAgainst(applyWith(a, src, kir::interpretKernel), ra, what);
      checkAgainst(applyWith(b, src, kir::interpretKernel), rb, what);
    }
    // A fresh JIT on the same disk cache: each program gets its own object file.
    std::unique_ptr<kir::Jit> other = makeJit(dir.path);
    CHECK(other->compile(a[0].program)->source() == kir::CodeSource::DiskCache);
    CHECK(other->compile(b[0].program)->source() == kir::CodeSource::DiskCache);
    checkAgainst(applyWith(a, src, kir::interpretKernel), applyWith(a, src, other->runner()), what);
    checkAgainst(applyWith(b, src, kir::interpretKernel), applyWith(b, src, other->runner()), what);
  };
  check(lowered({ir::makeOp("noise", {{"sigma", 0.05}})}), lowered({ir::makeOp("noise", {{"sigma", 0.06}})}),
        "noise sigma 0.05 vs 0.06");
  check(lowered({ir::makeOp("clip", {{"lo", 0.01}, {"hi", 0.99}})}),
        lowered({ir::makeOp("clip", {{"lo", 0.2}, {"hi", 0.99}})}), "clip percentiles");
  check(lowered({ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}}), ir::makeOp("zscore", {{"nonzero", true}})}),
        lowered({ir::makeOp("crop", {{"size", Shape3{8, 8, 8}}}), ir::makeOp("zscore", {{"nonzero", false}})}),
        "zscore nonzero");
}

TEST_CASE("the optimised LLVM IR: one function per generated pass, vectorised gathers") {
  std::unique_ptr<kir::Jit> jit = makeJit();
  auto segments = lowered({ir::makeOp("crop", {{"size", Shape3{32, 32, 32}}}), ir::makeOp("zscore")});
  std::string ir = jit->llvmIr(segments[0].program);
  INFO(ir.substr(0, 4000));
  CHECK(ir.find("define void @gyrus_kernel_") != std::string::npos);
  CHECK(ir.find("_pass0_gather(") != std::string::npos);
  CHECK(ir.find("_map_image(") != std::string::npos);
  const bool wide = ir.find("<8 x float>") != std::string::npos || ir.find("<16 x float>") != std::string::npos;
  CHECK(wide);
  CHECK(ir.find("fmuladd") == std::string::npos);  // no contraction
  CHECK(ir.find(" contract ") == std::string::npos);
}

#ifdef GYRUS_KERNEL_LLVM_MODULE
TEST_CASE("the module: loadJit finds it (also for the runtime), and says why when it cannot") {
  std::mt19937 rng(13);
  Source src = randomSource(rng, {10, 9, 8}, {1, 1, 1});
  auto segments = lowered({ir::makeOp("flip"), ir::makeOp("noise")});
  ::setenv("GYRUS_KERNEL_LLVM", GYRUS_KERNEL_LLVM_MODULE, 1);
  std::string error;
  std::unique_ptr<kir::Jit> jit = kir::loadJit(error, kir::JitOptions().withDiskCache(false));
  REQUIRE_MESSAGE(jit, error);
  CHECK(jit->cacheDirectory().empty());
  checkAgainst(applyWith(segments, src, kir::interpretKernel), applyWith(segments, src, jit->runner()), "module");
  // The runtime's back end, chosen with GYRUS_KERNEL_BACKEND=llvm (the first use in this
  // process: rt::kernelRunner chooses once).
  ::setenv("GYRUS_KERNEL_BACKEND", "llvm", 1);
  CHECK(rt::kernelBackend() == "LLVM JIT");
  ::unsetenv("GYRUS_KERNEL_BACKEND");
  ir::Pipeline views{{ir::makeOp("flip"), ir::makeOp("gamma"), ir::makeOp("noise")}};
  rt::Volume in;
  in.shape = src.grid.shape;
  in.spacing = src.grid.spacing;
  in.data = src.image;
  rt::Volume target, viaRuntime = rt::runPipeline(rt::compilePipeline(views, {.target = true}), in, 5, 2, &target);
  kir::Result ref = kir::apply(kir::lowerSegments(views, {.target = true}), src.grid, src.image.data(), nullptr, 5, 2,
                               kir::interpretKernel);
  kir::Result got;
  got.grid = ref.grid;
  got.image = viaRuntime.data;
  got.target = target.data;
  checkAgainst(ref, got, "through rt::runPipeline");
  ::setenv("GYRUS_KERNEL_LLVM", "/nonexistent/libgyrus_kernel_llvm.so", 1);
  CHECK_FALSE(kir::loadJit(error));
  CHECK(error.find("GYRUS_KERNEL_LLVM") != std::string::npos);
  ::unsetenv("GYRUS_KERNEL_LLVM");
}
#endif

// The perf mode (skipped by default; run it with
//   gyrus_kernel_jit_tests -tc='perf*' --no-skip):
// interpreter vs JIT on one view of a 160^3 volume.
TEST_CASE("perf: interpreter vs JIT on a 160^3 view" * doctest::skip()) {
  std::mt19937 rng(1);
  Source src = randomSource(rng, {160, 160, 160}, {1.0, 1.0, 1.2});
  struct Case {
    const char* name;
    std::vector<kir::Kernel> segments;
  };
  std::vector<Case> cases;
  cases.push_back({"crop(128^3) >> zscore (quickstart prefix)",
                   lowered({ir::makeOp("crop", {{"size", Shape3{128, 128, 128}}}), ir::makeOp("zscore")})});
  cases.push_back(
      {"resample(1mm) >> crop(128^3) >> flip >> zscore >> gamma >> noise, target + mask",
       lowered({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{128, 128, 128}}}),
                ir::makeOp("flip"), ir::makeOp("zscore"), ir::makeOp("gamma"), ir::makeOp("noise")},
               {.target = true, .mask = true})});
  cases.push_back({"elastic >> rotate >> scale >> mul_noise >> bias_field >> brightness >> contrast (p = 1), mask",
                   lowered({ir::makeOp("elastic", {{"p", 1.0}}), ir::makeOp("rotate", {{"p", 1.0}, {"axis_p", 1.0}}),
                            ir::makeOp("scale", {{"p", 1.0}}), ir::makeOp("mul_noise", {{"p", 1.0}}),
                            ir::makeOp("bias_field", {{"p", 1.0}}), ir::makeOp("brightness", {{"p", 1.0}}),
                            ir::makeOp("contrast", {{"p", 1.0}})},
                           {.mask = true})});
  std::unique_ptr<kir::Jit> jit = makeJit();
  auto time = [&](const std::vector<kir::Kernel>& segments, const kir::Runner& run) {
    applyWith(segments, src, run);  // warm (and compile)
    double best = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto start = std::chrono::steady_clock::now();
      applyWith(segments, src, run);
      best =
          std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  };
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const Case& c : cases) {
    double interp = time(c.segments, kir::interpretKernel);
    double one = time(c.segments, jit->runner());
    double all = time(c.segments, jit->runner(kir::RunOptions().withThreads(cores)));
    MESSAGE(std::string(c.name) << ": interpreter " << interp << " ms, JIT 1 thread " << one << " ms, JIT " << cores
                                << " threads " << all << " ms");
  }
}

TEST_CASE("caches: a gather's source is part of the key (a later segment's target reads its own source)") {
  // `noise >> crop` cuts into two segments; the second's target reads the target source
  // (the view without noise), while `crop` alone reads its target from the image. The
  // two crop programs must not share compiled code.
  std::mt19937 rng(21);
  Source src = randomSource(rng, {10, 9, 8}, {1, 1, 1});
  auto two = lowered({ir::makeOp("noise", {{"sigma", 0.5}}), ir::makeOp("crop", {{"size", Shape3{6, 6, 6}}})},
                     {.target = true});
  auto one = lowered({ir::makeOp("crop", {{"size", Shape3{6, 6, 6}}})}, {.target = true});
  REQUIRE(two.size() == 2);
  CHECK(kir::hash(two[1].program) != kir::hash(one[0].program));
  std::unique_ptr<kir::Jit> jit = makeJit();
  kir::Result a = applyWith(one, src, jit->runner());
  kir::Result b = applyWith(two, src, jit->runner());
  checkAgainst(applyWith(one, src, kir::interpretKernel), a, "crop");
  checkAgainst(applyWith(two, src, kir::interpretKernel), b, "noise >> crop");
  CHECK(sameBits(a.target, b.target));  // the target never sees the noise
  CHECK_FALSE(sameBits(b.image, b.target));
  // The same program but for the target's source: another key, other code.
  kir::Program other = one[0].program;
  REQUIRE(other.passes[0].outputs.size() == 2);
  REQUIRE(other.passes[0].outputs[1].source == kir::Buffer::Image);
  other.passes[0].outputs[1].source = kir::Buffer::Target;
  CHECK(kir::hash(other) != kir::hash(one[0].program));
  kir::Binding binding = kir::bind(one[0], src.grid, 99, 3);
  std::vector<float> image(216), target(216), fromTarget(216);
  std::vector<float> noisy = src.image;
  for (float& v : noisy) v += 1.0f;
  kir::Buffers buffers;
  buffers.image = src.image.data();
  buffers.target = noisy.data();
  buffers.outImage = image.data();
  buffers.outTarget = target.data();
  jit->compile(one[0].program)->run(binding, buffers);
  buffers.outTarget = fromTarget.data();
  jit->compile(other)->run(binding, buffers);
  CHECK_FALSE(sameBits(target, fromTarget));
}

// ---- instructions skipped for a sample (Kernel.h) ------------------------------------------

TEST_CASE("skipped: the identity values of each pointwise instruction") {
  using kir::PointOp;
  const float inf = std::numeric_limits<float>::infinity();
  auto skipped = [](PointOp op, std::vector<float> args, int invert = -1) {
    kir::PointInstr p;
    p.op = op;
    for (float a : args) p.args.push_back(kir::Operand::constant(a));
    if (invert >= 0) p.args.back() = kir::Operand::constant(static_cast<float>(invert));
    return kir::skipped(p, {});
  };
  CHECK(skipped(PointOp::Affine, {1, 0}));
  CHECK_FALSE(skipped(PointOp::Affine, {1, 0.5f}));
  CHECK(skipped(PointOp::Normalize, {0, 1}));
  CHECK_FALSE(skipped(PointOp::Normalize, {0, 2}));
  CHECK(skipped(PointOp::Clamp, {-inf, inf}));
  CHECK_FALSE(skipped(PointOp::Clamp, {-inf, 3}));
  CHECK(skipped(PointOp::Gamma, {1, 0, 2, 0}));
  CHECK_FALSE(skipped(PointOp::Gamma, {1, 0, 2, 1}));
  CHECK_FALSE(skipped(PointOp::Gamma, {0.7f, 0, 2, 0}));
  CHECK(skipped(PointOp::Gamma, {0.7f, 2, 2, 0}));  // a flat range
  CHECK(skipped(PointOp::AddNoise, {0}));
  CHECK(skipped(PointOp::MulNoise, {0}));
  CHECK_FALSE(skipped(PointOp::MulNoise, {0.01f}));
  CHECK(skipped(PointOp::Contrast, {1, 0.3f}));
  CHECK_FALSE(skipped(PointOp::Contrast, {1.1f, 0.3f}));
  CHECK(skipped(PointOp::Bias, std::vector<float>(10, 0.0f)));
  std::vector<float> c(10, 0.0f);
  c[7] = 1e-3f;
  CHECK_FALSE(skipped(PointOp::Bias, c));
}

TEST_CASE("skipped: a chain of identities leaves every value alone, bit for bit, in both back ends") {
  std::mt19937 rng(3);
  const Shape3 s{13, 9, 7};
  Source src = randomSource(rng, s, {1, 1, 1});
  // Values a formula would change: -0 (a + 0 gives +0), an infinity, a NaN.
  src.image[5] = -0.0f;
  src.image[6] = std::numeric_limits<float>::infinity();
  src.image[7] = -std::numeric_limits<float>::infinity();
  src.image[40] = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  kir::Program p;
  std::vector<float> slots;
  auto slot = [&](float v) {
    slots.push_back(v);
    return kir::Operand::at(static_cast<int>(slots.size()) - 1);
  };
  kir::Chain identities = {
      {kir::PointOp::Affine, false, {slot(1.0f), slot(0.0f)}, 0, "brightness"},
      {kir::PointOp::Normalize, false, {slot(0.0f), slot(1.0f)}, 0, "normalize"},
      {kir::PointOp::Clamp, false, {slot(-inf), slot(inf)}, 0, "clamp"},
      {kir::PointOp::Gamma, false, {slot(1.0f), slot(-1.0f), slot(4.0f), slot(0.0f)}, 0, "gamma"},
      {kir::PointOp::AddNoise, false, {slot(0.0f)}, 3, "noise"},
      {kir::PointOp::MulNoise, false, {slot(0.0f)}, 4, "mul_noise"},
      {kir::PointOp::Contrast, false, {slot(1.0f), slot(0.5f)}, 0, "contrast"},
      {kir::PointOp::Bias, false, {}, 0, "bias"},
  };
  for (int i = 0; i < 10; ++i) identities.back().args.push_back(slot(0.0f));
  kir::Pass gather;
  gather.kind = kir::PassKind::Gather;
  kir::CoordInstr shift{kir::CoordOp::Affine, {}, -1, "crop"};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) shift.args.push_back(slot(j == 3 ? 0.0f : (i == j ? 1.0f : 0.0f)));
  gather.coords.push_back(shift);
  gather.outputs.push_back({kir::Buffer::Image, kir::Buffer::Image, kir::Interp::Linear, identities});
  p.passes.push_back(gather);
  // A statistic whose only reader is a Gamma of exponent 1: not run, its slots stay -3.
  kir::Pass reduce;
  reduce.kind = kir::PassKind::Reduce;
  reduce.reduce = {kir::ReduceOp::MinMax, true, 0, 0, static_cast<int>(slots.size())};
  slot(-3.0f);
  slot(-3.0f);
  p.passes.push_back(reduce);
  kir::Pass map;
  map.kind = kir::PassKind::Map;
  map.chain = identities;
  map.chain[3].args[1] = kir::Operand::at(reduce.reduce.out);
  map.chain[3].args[2] = kir::Operand::at(reduce.reduce.out + 1);
  p.passes.push_back(map);
  p.slots = static_cast<int>(slots.size());
  kir::Binding b;
  b.in = b.out = {s, {1, 1, 1}};
  b.slots = slots;
  std::unique_ptr<kir::Jit> jit = makeJit();
  auto compiled = jit->compile(p);
  Outputs ref = runProgram(p, b, src, [](const kir::Program& q, kir::Binding& c, const kir::Buffers& f) {
    kir::interpret(q, c, f);
  });
  Outputs got = runProgram(p, b, src, [&](const kir::Program&, kir::Binding& c, const kir::Buffers& f) {
    compiled->run(c, f, kir::RunOptions());
  });
  CHECK(sameBits(ref.image, src.image));
  CHECK(sameBits(got.image, src.image));
  CHECK(sameBits(ref.slots, slots));
  CHECK(sameBits(got.slots, slots));
  CHECK_FALSE(kir::reductionNeeded(p, 1, slots));
  b.slots[static_cast<size_t>(identities[3].args[0].slot)] = 0.5f;  // the exponent: now the Gamma runs, and needs its range
  CHECK(kir::reductionNeeded(p, 1, b.slots));
}

TEST_CASE("skipped: an operation that does not fire leaves the image as without it") {
  std::mt19937 rng(5);
  Source src = randomSource(rng, {17, 13, 9}, {1, 1, 1});
  std::unique_ptr<kir::Jit> jit = makeJit();
  auto runJit = [&](const kir::Kernel& k, kir::Binding& b, const kir::Buffers& f) {
    jit->compile(k.program)->run(b, f, kir::RunOptions());
  };
  auto without = lowered({ir::makeOp("crop", {{"size", Shape3{15, 13, 11}}})});
  auto with = lowered({ir::makeOp("crop", {{"size", Shape3{15, 13, 11}}}),
                       ir::makeOp("noise", {{"sigma", 0.1}, {"p", 0.0}}), ir::makeOp("mul_noise", {{"p", 0.0}}),
                       ir::makeOp("bias_field", {{"p", 0.0}}), ir::makeOp("brightness", {{"p", 0.0}}),
                       ir::makeOp("gamma", {{"p", 0.0}})});
  for (const kir::Runner& run : {kir::Runner(kir::interpretKernel), kir::Runner(runJit)}) {
    kir::Result a = applyWith(without, src, run), b = applyWith(with, src, run);
    CHECK(sameBits(a.image, b.image));
  }
  // A whole-voxel crop copies: the JIT's copy agrees with the interpreter bit for bit.
  CHECK(sameBits(applyWith(with, src, kir::interpretKernel).image, applyWith(with, src, runJit).image));
}
