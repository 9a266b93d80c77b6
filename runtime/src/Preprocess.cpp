// Preprocessing operations (see Preprocess.h). Statistics are accumulated in double.
#include "Preprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace gyrus::rt {

Volume cropOrPadAt(const Volume& in, const ir::Shape3& size, const std::array<int64_t, 3>& off) {
  for (int64_t s : size)
    if (s <= 0) throw std::invalid_argument("cropOrPadAt: sizes must be positive");
  Volume out = Volume::zeros(size);
  out.spacing = in.spacing;
  // Source offset per axis: positive when cropping, negative when padding.
  for (int64_t z = 0; z < size[2]; ++z) {
    int64_t sz = z + off[2];
    if (sz < 0 || sz >= in.shape[2]) continue;
    for (int64_t y = 0; y < size[1]; ++y) {
      int64_t sy = y + off[1];
      if (sy < 0 || sy >= in.shape[1]) continue;
      int64_t x0 = std::max<int64_t>(0, -off[0]);
      int64_t x1 = std::min<int64_t>(size[0], in.shape[0] - off[0]);
      if (x1 <= x0) continue;
      const float* src = &in.data[in.index(x0 + off[0], sy, sz)];
      std::copy(src, src + (x1 - x0), &out.data[out.index(x0, y, z)]);
    }
  }
  return out;
}

Volume centerCropOrPad(const Volume& in, const ir::Shape3& size) {
  std::array<int64_t, 3> off{};
  for (size_t i = 0; i < 3; ++i) off[i] = (in.shape[i] - size[i]) / 2;
  return cropOrPadAt(in, size, off);
}

std::array<int64_t, 3> randomCropOffsets(const ir::Shape3& in, const ir::Shape3& size, Rng& rng) {
  std::array<int64_t, 3> off{};
  for (size_t i = 0; i < 3; ++i) {
    const int64_t slack = in[i] - size[i];
    off[i] = slack >= 0 ? static_cast<int64_t>(rng.below(static_cast<uint64_t>(slack) + 1)) : slack / 2;
  }
  return off;
}

void zscore(Volume& v, bool nonzeroOnly) {
  double sum = 0.0, sumSq = 0.0;
  size_t count = 0;
  for (float f : v.data) {
    if (nonzeroOnly && f == 0.0f) continue;
    sum += f;
    sumSq += static_cast<double>(f) * f;
    ++count;
  }
  if (count == 0) return;
  double mean = sum / static_cast<double>(count);
  double var = std::max(0.0, sumSq / static_cast<double>(count) - mean * mean);
  double sd = std::sqrt(var);
  if (sd < 1e-12) sd = 1.0;
  for (float& f : v.data) {
    if (nonzeroOnly && f == 0.0f) continue;
    f = static_cast<float>((f - mean) / sd);
  }
}


void clipPercentiles(Volume& v, double lo, double hi) {
  if (!(lo >= 0.0 && lo <= hi && hi <= 1.0))
    throw std::invalid_argument("clipPercentiles: need 0 <= lo <= hi <= 1");
  std::vector<float> values;
  values.reserve(v.data.size());
  for (float f : v.data)
    if (f != 0.0f) values.push_back(f);
  if (values.empty()) return;
  double loValue = kir::quantile(values, lo);
  double hiValue = kir::quantile(values, hi);
  for (float& f : v.data)
    if (f != 0.0f) f = static_cast<float>(std::clamp<double>(f, loValue, hiValue));
}

namespace {

/// One axis of a linear resampling: output voxel j reads input voxels i0[j] and i1[j]
/// with weight w[j] on i1 (value = a + w * (b - a)).
struct AxisMap {
  std::vector<int64_t> i0, i1;
  std::vector<float> w;
  bool identity = false;
};

AxisMap axisMap(int64_t nIn, double spacing, int64_t nOut, double mm) {
  AxisMap m;
  m.identity = nIn == nOut && spacing == mm;
  if (m.identity) return m;
  const double step = mm / spacing;
  const double cIn = 0.5 * static_cast<double>(nIn - 1), cOut = 0.5 * static_cast<double>(nOut - 1);
  auto n = static_cast<size_t>(nOut);
  m.i0.resize(n);
  m.i1.resize(n);
  m.w.resize(n);
  for (size_t j = 0; j < n; ++j) {
    double pos = std::clamp(cIn + (static_cast<double>(j) - cOut) * step, 0.0, static_cast<double>(nIn - 1));
    auto lo = static_cast<int64_t>(std::floor(pos));
    m.i0[j] = lo;
    m.i1[j] = std::min(lo + 1, nIn - 1);
    m.w[j] = static_cast<float>(pos - static_cast<double>(lo));
  }
  return m;
}

/// Resamples `in` (shape `s`, x fastest) along `axis` with `m` to `n` voxels on that axis.
std::vector<float> resampleAxis(const std::vector<float>& in, const ir::Shape3& s, int axis, const AxisMap& m,
                                int64_t n) {
  ir::Shape3 o = s;
  o[static_cast<size_t>(axis)] = n;
  std::vector<float> out(static_cast<size_t>(o[0] * o[1] * o[2]));
  if (axis == 0) {
    for (int64_t row = 0; row < s[1] * s[2]; ++row) {
      const float* src = in.data() + row * s[0];
      float* dst = out.data() + row * n;
      for (size_t j = 0; j < static_cast<size_t>(n); ++j) {
        float a = src[m.i0[j]], b = src[m.i1[j]];
        dst[j] = a + m.w[j] * (b - a);
      }
    }
    return out;
  }
  // y or z: whole rows (y) or planes (z) are blended, x fastest: vectorisable.
  const int64_t inner = axis == 1 ? s[0] : s[0] * s[1];          // contiguous run
  const int64_t outer = axis == 1 ? s[2] : 1;                     // repeated blocks
  const int64_t inAxis = s[static_cast<size_t>(axis)];
  for (int64_t k = 0; k < outer; ++k) {
    const float* srcBlock = in.data() + k * inner * inAxis;
    float* dstBlock = out.data() + k * inner * n;
    for (size_t j = 0; j < static_cast<size_t>(n); ++j) {
      const float* a = srcBlock + m.i0[j] * inner;
      const float* b = srcBlock + m.i1[j] * inner;
      float* d = dstBlock + static_cast<int64_t>(j) * inner;
      const float w = m.w[j];
      for (int64_t x = 0; x < inner; ++x) d[x] = a[x] + w * (b[x] - a[x]);
    }
  }
  return out;
}

}  // namespace

Volume resample(const Volume& in, double mm) {
  const ir::Shape3 target = resampledShape(in.shape, in.spacing, mm);
  Volume out;
  out.shape = in.shape;
  out.data = in.data;
  for (int axis = 0; axis < 3; ++axis) {
    auto a = static_cast<size_t>(axis);
    AxisMap m = axisMap(in.shape[a], in.spacing[a], target[a], mm);
    if (m.identity) continue;
    out.data = resampleAxis(out.data, out.shape, axis, m, target[a]);
    out.shape[a] = target[a];
  }
  out.spacing = {mm, mm, mm};
  return out;
}

std::array<double, 4> catmullRom(double t) {
  const double t2 = t * t, t3 = t2 * t;
  return {0.5 * (-t3 + 2 * t2 - t), 0.5 * (3 * t3 - 5 * t2 + 2), 0.5 * (-3 * t3 + 4 * t2 + t), 0.5 * (t3 - t2)};
}

Volume resampleCubic(const Volume& in, double mm) {
  const ir::Shape3 target = resampledShape(in.shape, in.spacing, mm);
  Volume out = in;
  for (size_t a = 0; a < 3; ++a) {
    const int64_t nIn = in.shape[a], nOut = target[a];
    if (nIn == nOut && in.spacing[a] == mm) continue;  // copied exactly, as resample
    const double step = mm / in.spacing[a];
    const double cIn = 0.5 * static_cast<double>(nIn - 1), cOut = 0.5 * static_cast<double>(nOut - 1);
    ir::Shape3 shape = out.shape;
    shape[a] = nOut;
    Volume next = Volume::zeros(shape);
    for (int64_t z = 0; z < shape[2]; ++z)
      for (int64_t y = 0; y < shape[1]; ++y)
        for (int64_t x = 0; x < shape[0]; ++x) {
          const int64_t j = a == 0 ? x : a == 1 ? y : z;
          double pos = std::clamp(cIn + (static_cast<double>(j) - cOut) * step, 0.0, static_cast<double>(nIn - 1));
          double f = std::floor(pos);
          std::array<double, 4> w = catmullRom(pos - f);
          double acc = 0;
          for (int64_t k = 0; k < 4; ++k) {
            int64_t i = static_cast<int64_t>(f) - 1 + k;
            if (i < 0 || i >= nIn) continue;
            acc += w[static_cast<size_t>(k)] * out.at(a == 0 ? i : x, a == 1 ? i : y, a == 2 ? i : z);
          }
          next.at(x, y, z) = static_cast<float>(acc);
        }
    out.data = std::move(next.data);
    out.shape = shape;
  }
  out.spacing = {mm, mm, mm};
  return out;
}

Volume resampleNearest(const Volume& in, double mm) {
  const ir::Shape3 target = resampledShape(in.shape, in.spacing, mm);
  // The source voxel of every output voxel, per axis (the positions of axisMap).
  std::array<std::vector<int64_t>, 3> source;
  for (size_t a = 0; a < 3; ++a) {
    const int64_t nIn = in.shape[a], nOut = target[a];
    source[a].resize(static_cast<size_t>(nOut));
    if (nIn == nOut && in.spacing[a] == mm) {
      for (int64_t j = 0; j < nOut; ++j) source[a][static_cast<size_t>(j)] = j;
      continue;
    }
    const double step = mm / in.spacing[a];
    const double cIn = 0.5 * static_cast<double>(nIn - 1), cOut = 0.5 * static_cast<double>(nOut - 1);
    for (int64_t j = 0; j < nOut; ++j) {
      double pos = std::clamp(cIn + (static_cast<double>(j) - cOut) * step, 0.0, static_cast<double>(nIn - 1));
      source[a][static_cast<size_t>(j)] = std::min(static_cast<int64_t>(std::floor(pos + 0.5)), nIn - 1);
    }
  }
  Volume out = Volume::zeros(target);
  out.spacing = {mm, mm, mm};
  for (int64_t z = 0; z < target[2]; ++z)
    for (int64_t y = 0; y < target[1]; ++y) {
      const float* row = in.data.data() + in.index(0, source[1][static_cast<size_t>(y)], source[2][static_cast<size_t>(z)]);
      float* dst = &out.data[out.index(0, y, z)];
      for (size_t x = 0; x < static_cast<size_t>(target[0]); ++x) dst[x] = row[source[0][x]];
    }
  return out;
}

void binarize(Volume& mask) {
  for (float& f : mask.data) f = f > 0.5f ? 1.0f : 0.0f;
}

void mirror(Volume& v, const FlipAxes& axes) {
  const int64_t nx = v.shape[0], ny = v.shape[1], nz = v.shape[2];
  float* d = v.data.data();
  if (axes[0])
    for (int64_t row = 0; row < ny * nz; ++row) std::reverse(d + row * nx, d + (row + 1) * nx);
  if (axes[1])
    for (int64_t z = 0; z < nz; ++z)
      for (int64_t y = 0; y < ny / 2; ++y) {
        float* a = d + nx * (y + ny * z);
        std::swap_ranges(a, a + nx, d + nx * ((ny - 1 - y) + ny * z));
      }
  if (axes[2])
    for (int64_t z = 0; z < nz / 2; ++z) {
      float* a = d + nx * ny * z;
      std::swap_ranges(a, a + nx * ny, d + nx * ny * (nz - 1 - z));
    }
}

FlipAxes drawFlip(double p, Rng& rng) {
  if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("flip: need 0 <= p <= 1");
  FlipAxes axes{};
  for (bool& a : axes) a = rng.bernoulli(p);
  return axes;
}

void addNoise(Volume& v, double sigma, Rng& rng) {
  if (!(sigma >= 0.0)) throw std::invalid_argument("noise: need sigma >= 0");
  if (sigma == 0.0) return;
  // Marsaglia's polar method: two normals per accepted pair, one log and one sqrt, no
  // trigonometry. The uniforms come from a SplitMix64 stream seeded by one draw of
  // `rng` (a voxel costs ~1 ns of generator instead of ~6 ns of mt19937_64), in single
  // precision (24-bit uniforms; the noise is stored as float anyway).
  uint64_t state = rng.bits();
  auto uniform = [&state] {  // in (-1, 1)
    state += 0x9e3779b97f4a7c15ULL;
    return static_cast<float>(static_cast<int32_t>(mix64(state) >> 32)) * 0x1.0p-31f;
  };
  const auto s = static_cast<float>(sigma);
  float spare = 0.0f;
  bool hasSpare = false;
  for (float& f : v.data) {
    if (f == 0.0f) continue;
    float n = spare;
    if (hasSpare) {
      hasSpare = false;
    } else {
      float a = 0.0f, b = 0.0f, r = 0.0f;
      do {
        a = uniform();
        b = uniform();
        r = a * a + b * b;
      } while (r >= 1.0f || r == 0.0f);
      float scale = std::sqrt(-2.0f * std::log(r) / r);
      n = a * scale;
      spare = b * scale;
      hasSpare = true;
    }
    f += s * n;
  }
}

bool headRange(const Volume& v, float& lo, float& hi) {
  lo = std::numeric_limits<float>::infinity();
  hi = -lo;
  for (float f : v.data)
    if (f != 0.0f) {
      lo = std::min(lo, f);
      hi = std::max(hi, f);
    }
  return hi > lo;
}

void gammaTransform(Volume& v, double gamma) {
  if (!(gamma > 0.0)) throw std::invalid_argument("gamma: need an exponent > 0");
  float lo = 0, hi = 0;
  if (!headRange(v, lo, hi)) return;  // no head voxels, or a constant head
  // Single precision: the result is stored as float anyway, and powf is ~2x faster.
  const float range = hi - lo, inv = 1.0f / range, g = static_cast<float>(gamma);
  for (float& f : v.data)
    if (f != 0.0f) f = std::clamp(lo + range * std::pow(std::min(1.0f, (f - lo) * inv), g), lo, hi);
}

double randomGamma(Volume& v, double lo, double hi, Rng& rng) {
  if (!(lo > 0.0 && lo <= hi)) throw std::invalid_argument("gamma: need 0 < lo <= hi");
  double gamma = rng.uniform(lo, hi);
  gammaTransform(v, gamma);
  return gamma;
}

const std::vector<OpImpl>& opImpls() {
  // Deterministic operations act on the target as on the input (each on its own
  // statistics); spatial ones move a mask with the image (resample: nearest-neighbour);
  // intensity augmentations leave the target clean.
  static const std::vector<OpImpl> table = {
      {"resample",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng*) {
         auto sample = op.flag("cubic") ? resampleCubic : resample;
         in = sample(in, op.number("spacing"));
         if (target) *target = sample(*target, op.number("spacing"));
       },
       [](const ir::PipelineOp& op, Volume mask) { return resampleNearest(mask, op.number("spacing")); }},
      {"crop",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng* rng) {
         const ir::Shape3 size = op.shape("size");
         std::array<int64_t, 3> off{};
         for (size_t i = 0; i < 3; ++i) off[i] = (in.shape[i] - size[i]) / 2;
         if (op.flag("random")) off = randomCropOffsets(in.shape, size, *rng);
         in = cropOrPadAt(in, size, off);
         if (target) *target = cropOrPadAt(*target, size, off);
       },
       [](const ir::PipelineOp& op, Volume mask) { return centerCropOrPad(mask, op.shape("size")); }},
      {"zscore",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng*) {
         zscore(in, op.flag("nonzero"));
         if (target) zscore(*target, op.flag("nonzero"));
       },
       nullptr},
      {"clip",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng*) {
         clipPercentiles(in, op.number("lo"), op.number("hi"));
         if (target) clipPercentiles(*target, op.number("lo"), op.number("hi"));
       },
       nullptr},
      {"flip",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng* rng) {
         FlipAxes axes = drawFlip(op.number("p"), *rng);
         mirror(in, axes);
         if (target) mirror(*target, axes);
       },
       nullptr},
      {"noise",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         double sigma = op.number("sigma"), hi = op.number("sigma_hi"), p = op.number("p");
         if (p < 1.0 || hi > sigma) {
           sigma = rng->uniform(sigma, std::max(sigma, hi));
           if (!rng->bernoulli(p)) return;
         }
         addNoise(in, sigma, *rng);
       },
       nullptr},
      {"gamma",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         ir::Interval range = op.interval("range");
         double u = rng->uniform(), gamma = range.lo + (range.hi - range.lo) * u;
         if (op.flag("halves") && range.lo < 1.0 && range.hi > 1.0)
           gamma = rng->bernoulli(0.5) ? range.lo + (1.0 - range.lo) * u : 1.0 + (range.hi - 1.0) * u;
         if (op.number("p") < 1.0 && !rng->bernoulli(op.number("p"))) return;
         gammaTransform(in, gamma, op.number("invert") > 0.0 && rng->bernoulli(op.number("invert")));
       },
       nullptr},
      {"elastic",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         ir::Interval alpha = op.interval("alpha"), sigma = op.interval("sigma");
         double a = rng->uniform(alpha.lo, alpha.hi), s = rng->uniform(sigma.lo, sigma.hi);
         kir::Draws draws(rng->bits(), 0, 0);
         std::array<Volume, 3> d = coarseElasticField(in.shape, a, s, draws);
         in = displace(in, d, false, op.flag("cubic"));
         if (target) *target = displace(*target, d, false, op.flag("cubic"));
       },
       nullptr},
      {"rotate",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         ir::Interval angle = op.interval("angle");
         std::array<double, 3> radians{};
         for (double& r : radians)
           if (rng->bernoulli(op.number("axis_p"))) r = rng->uniform(angle.lo, angle.hi) * 3.14159265358979323846 / 180.0;
         Matrix3 m = rotationMatrix(radians);
         in = warpAboutCentre(in, m, false, op.flag("cubic"));
         if (target) *target = warpAboutCentre(*target, m, false, op.flag("cubic"));
       },
       nullptr},
      {"scale",
       [](const ir::PipelineOp& op, Volume& in, Volume* target, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         double f = rng->uniform(op.interval("factor").lo, op.interval("factor").hi);
         Matrix3 m{{{f, 0, 0}, {0, f, 0}, {0, 0, f}}};
         in = warpAboutCentre(in, m, false, op.flag("cubic"));
         if (target) *target = warpAboutCentre(*target, m, false, op.flag("cubic"));
       },
       nullptr},
      {"blur",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p") * op.number("p_channel"))) return;
         gaussianBlur(in, rng->uniform(op.interval("sigma").lo, op.interval("sigma").hi));
       },
       nullptr},
      {"mul_noise",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         mulNoise(in, rng->uniform(op.interval("sigma").lo, op.interval("sigma").hi), *rng);
       },
       nullptr},
      {"ghosting",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         ir::Interval every = op.interval("every"), alpha = op.interval("alpha");
         auto lo = static_cast<int64_t>(std::ceil(every.lo)), hi = std::max(lo, static_cast<int64_t>(std::floor(every.hi)));
         auto axis = static_cast<int>(rng->below(3));
         int64_t k = lo + static_cast<int64_t>(rng->below(static_cast<uint64_t>(hi - lo + 1)));
         ghosting(in, axis, k, rng->uniform(alpha.lo, alpha.hi));
       },
       nullptr},
      {"ringing",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         auto axis = static_cast<int>(rng->below(3));
         ringing(in, axis, rng->uniform(op.interval("cut").lo, op.interval("cut").hi));
       },
       nullptr},
      {"lowres",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p") * op.number("p_channel"))) return;
         std::array<double, 3> zoom{1.0, 1.0, 1.0};
         for (double& z : zoom)
           if (rng->bernoulli(op.number("axis_p"))) z = rng->uniform(op.interval("zoom").lo, op.interval("zoom").hi);
         lowres(in, zoom);
       },
       nullptr},
      {"bias_field",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         std::array<double, 3> c{};
         for (double& x : c) x = rng->uniform(-1.0, 1.0);
         biasField(in, c, op.number("strength"));
       },
       nullptr},
      {"brightness",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         auto f = static_cast<float>(rng->uniform(op.interval("factor").lo, op.interval("factor").hi));
         for (float& v : in.data) v *= f;
       },
       nullptr},
      {"contrast",
       [](const ir::PipelineOp& op, Volume& in, Volume*, Rng* rng) {
         if (!rng->bernoulli(op.number("p"))) return;
         contrast(in, rng->uniform(op.interval("factor").lo, op.interval("factor").hi));
       },
       nullptr},
  };
  return table;
}

const OpImpl* findOpImpl(std::string_view name) { return ir::findByName(opImpls(), name); }

namespace {
// The implementation of `op`; a random one needs an Rng (applyAugmentations), which
// `caller` may not have.
const OpImpl& implOf(const ir::PipelineOp& op, const char* caller, bool rngGiven) {
  const OpImpl* impl = findOpImpl(op.name);
  if (impl == nullptr)
    throw std::invalid_argument(std::string(caller) + ": no implementation of the operation '" + op.name + "'");
  if (!rngGiven && op.isRandom())
    throw std::invalid_argument(std::string(caller) + ": the random operation " + op.name +
                                " needs an Rng: use applyAugmentations");
  return *impl;
}
}  // namespace

Volume applyPipeline(const ir::Pipeline& pipeline, Volume v) {
  for (const ir::PipelineOp& op : pipeline.ops) {
    implOf(op, "applyPipeline", false).apply(op, v, nullptr, nullptr);
  }
  return v;
}

Volume applySpatialOps(const ir::Pipeline& pipeline, Volume mask) {
  for (const ir::PipelineOp& op : pipeline.ops) {
    const OpImpl& impl = implOf(op, "applySpatialOps", false);
    if (impl.mask) mask = impl.mask(op, std::move(mask));  // intensity operations leave a mask alone
  }
  return mask;
}

void applyAugmentations(const ir::Pipeline& pipeline, Volume& input, Volume* target, Rng& rng) {
  for (const ir::PipelineOp& op : pipeline.ops) implOf(op, "applyAugmentations", true).apply(op, input, target, &rng);
}

}  // namespace gyrus::rt
