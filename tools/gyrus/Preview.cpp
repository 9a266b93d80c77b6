// `gyrus preview` (see Preview.h).
#include "Preview.h"

#include "gyrus/Diagnostics.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "Inspect.h"
#include "gyrus/kernel/Jit.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Stages.h"

namespace gyrus::driver {

namespace fs = std::filesystem;

namespace {

using Affine12 = std::array<double, 12>;

/// out index -> in index of the gather's affine instructions, composed (the coordinate
/// map without its clamps and windows: the geometry of the deterministic operations).
Affine12 indexMap(const kir::Kernel& k, const kir::Binding& b) {
  Affine12 m{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  for (const kir::CoordInstr& c : k.program.passes[0].coords) {
    if (c.op != kir::CoordOp::Affine) continue;
    Affine12 a{}, r{};
    for (size_t i = 0; i < 12; ++i) a[i] = kir::valueOf(c.args[i], b.slots);
    // r = a after m
    for (size_t i = 0; i < 3; ++i) {
      for (size_t j = 0; j < 3; ++j)
        r[4 * i + j] = a[4 * i] * m[j] + a[4 * i + 1] * m[4 + j] + a[4 * i + 2] * m[8 + j];
      r[4 * i + 3] = a[4 * i] * m[3] + a[4 * i + 1] * m[7] + a[4 * i + 2] * m[11] + a[4 * i + 3];
    }
    m = r;
  }
  return m;
}

/// The world affine of sample `sample`'s output grid: the input's affine after every
/// segment's index map of the deterministic spatial operations and of the random patch
/// positions (a random crop moves the grid; its offset is this sample's draw). The other
/// random spatial operations move the content on the same grid: `flip(p = 0)` in their
/// place keeps the split, the segments and every operation's index (its draws).
io::Affine outputAffine(const ir::Pipeline& pipeline, const io::Image& in, uint64_t seed, uint32_t sample) {
  io::Affine world = in.affine;
  if (pipeline.ops.empty()) return world;
  ir::Pipeline geometry = pipeline;
  for (ir::PipelineOp& op : geometry.ops)
    if (op.spec().random() && op.spec().spatial()) op = ir::makeOp("flip", {{"p", 0.0}});
  // As the run: the prefix with (0, 0), the views with the sample's draws.
  const kir::SplitPipeline split = kir::splitAtFirstRandom(geometry);
  kir::Grid grid{in.shape, in.spacing};
  auto walk = [&](const ir::Pipeline& part, uint64_t s, uint32_t n) {
    if (part.ops.empty()) return;
    for (const kir::Kernel& k : kir::lowerSegments(part)) {
      kir::Binding b = kir::bind(k, grid, s, n);
      Affine12 m = indexMap(k, b);
      io::Affine next{};
      for (size_t i = 0; i < 4; ++i) {
        for (size_t j = 0; j < 3; ++j)
          next[i][j] = world[i][0] * m[j] + world[i][1] * m[4 + j] + world[i][2] * m[8 + j];
        next[i][3] = world[i][0] * m[3] + world[i][1] * m[7] + world[i][2] * m[11] + world[i][3];
      }
      world = next;
      grid = b.out;
    }
  };
  walk(split.prefix, 0, 0);
  walk(split.suffix, seed, sample);
  return world;
}

/// The three central slices side by side (axial, coronal, sagittal; superior and
/// anterior up), grey levels from the 1st to the 99th percentile of the non-zero voxels.
bool writeMontage(const fs::path& path, const kir::Result& r, std::string& error) {
  const ir::Shape3& s = r.grid.shape;
  std::vector<float> values;
  for (float v : r.image)
    if (v != 0.0f) values.push_back(v);
  float lo = 0, hi = 1;
  if (!values.empty()) {
    auto at = [&](double q) {
      auto k = static_cast<size_t>(q * static_cast<double>(values.size() - 1));
      std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
      return values[k];
    };
    lo = at(0.01);
    hi = at(0.99);
    if (!(hi > lo)) hi = lo + 1;
  }
  auto voxel = [&](int64_t x, int64_t y, int64_t z) { return r.image[static_cast<size_t>(x + s[0] * (y + s[1] * z))]; };
  const int64_t cx = s[0] / 2, cy = s[1] / 2, cz = s[2] / 2;
  // Panels: axial (x right, y up), coronal (x right, z up), sagittal (y right, z up).
  const int64_t width = s[0] + s[0] + s[1] + 2 * 4, height = std::max({s[1], s[2]});
  std::vector<png_byte> pixels(static_cast<size_t>(width * height), 0);
  auto put = [&](int64_t offset, int64_t u, int64_t v, float value) {
    float t = std::clamp((value - lo) / (hi - lo), 0.0f, 1.0f);
    pixels[static_cast<size_t>((height - 1 - v) * width + offset + u)] = static_cast<png_byte>(std::lround(255 * t));
  };
  for (int64_t y = 0; y < s[1]; ++y)
    for (int64_t x = 0; x < s[0]; ++x) put(0, x, y, voxel(x, y, cz));
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t x = 0; x < s[0]; ++x) put(s[0] + 4, x, z, voxel(x, cy, z));
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y) put(2 * s[0] + 8, y, z, voxel(cx, y, z));
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_GRAY;
  if (png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr) == 0) {
    error = image.message;
    return false;
  }
  return true;
}

}  // namespace

int runPreview(const PreviewOptions& options, const std::map<std::string, ir::Pipeline>& pipelines) {
  auto found = pipelines.find(options.pipeline);
  if (found == pipelines.end()) {
    std::string names;
    std::vector<std::string> candidates;
    for (const auto& [name, p] : pipelines) {
      names += (names.empty() ? "" : ", ") + name;
      candidates.push_back(name);
    }
    const std::string close = closestMatch(options.pipeline, candidates);
    if (!close.empty()) {
      fmt::print(stderr, "error: no pipeline '{}' in the file; did you mean '{}'?\n", options.pipeline, close);
      fmt::print(stderr, "note: the file's pipelines: {}\n", names);
      return 1;
    }
    fmt::print(stderr, "error: no pipeline '{}' in the file: declare `pipeline {} = ...`, or use one of: {}\n",
               options.pipeline, options.pipeline, names);
    return 1;
  }
  const ir::Pipeline& pipeline = found->second;
  std::unique_ptr<io::IoModule> module = loadIoModule();
  if (!module) return 1;
  io::Image in;
  io::IoResult read = module->readNifti(options.input, io::ReadOptions{}, in);
  if (!read.ok()) {
    fmt::print(stderr, "error: {}: {}\n", options.input, read.message);
    return 1;
  }
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec) {
    fmt::print(stderr, "error: cannot create {}: {}\n", options.out, ec.message());
    return 1;
  }
  // The runtime's back end: the LLVM JIT (the interpreter, more slowly, without it).
  std::string jitError;
  std::unique_ptr<kir::Jit> jit = kir::loadJit(jitError);
  if (!jit) fmt::print(stderr, "warning: {}: running the reference interpreter\n", jitError);
  const kir::Runner run = jit ? jit->runner() : kir::Runner(kir::interpretKernel);
  // As training: the deterministic prefix once, then the views' draws per sample.
  kir::SplitPipeline split = kir::splitAtFirstRandom(pipeline);
  kir::Result prefix;
  try {
    prefix.grid = {in.shape, in.spacing};
    prefix.image = in.data;
    if (!split.prefix.ops.empty())
      prefix = kir::apply(kir::lowerSegments(split.prefix), prefix.grid, in.data.data(), nullptr, 0, 0, run);
    std::vector<kir::Kernel> views;
    if (!split.suffix.ops.empty()) views = kir::lowerSegments(split.suffix);
    const int64_t samples = split.suffix.ops.empty() ? 1 : options.samples;
    for (int64_t i = 0; i < samples; ++i) {
      kir::Result r = views.empty() ? prefix
                                    : kir::apply(views, prefix.grid, prefix.image.data(), nullptr, options.seed,
                                                 static_cast<uint32_t>(i), run);
      io::Image out;
      out.shape = r.grid.shape;
      out.spacing = r.grid.spacing;
      out.affine = outputAffine(pipeline, in, options.seed, static_cast<uint32_t>(i));
      out.data = r.image;
      const fs::path base = fs::path(options.out) / fmt::format("sample_{:03}", i);
      io::WriteOptions wo;
      wo.sourceGeometry = false;
      io::IoResult written = module->writeNifti(base.string() + ".nii.gz", out, wo);
      if (!written.ok()) {
        fmt::print(stderr, "error: {}.nii.gz: {}\n", base.string(), written.message);
        return 1;
      }
      std::string error;
      if (!writeMontage(base.string() + ".png", r, error)) {
        fmt::print(stderr, "error: {}.png: {}\n", base.string(), error);
        return 1;
      }
      fmt::print("{}.nii.gz  {}x{}x{} at {}x{}x{} mm\n", base.string(), out.shape[0], out.shape[1], out.shape[2],
                 out.spacing[0], out.spacing[1], out.spacing[2]);
    }
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "error: pipeline '{}' on {}: {}\n", options.pipeline, options.input, e.what());
    return 1;
  }
  return 0;
}

}  // namespace gyrus::driver
