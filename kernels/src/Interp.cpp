// The reference interpreter of the kernel IR (see Kernel.h): scalar, one voxel at a
// time, every instruction as specified. It is the oracle the compiled back ends are
// tested against, so it favours plainness over speed. Coordinates and values are single
// precision and evaluated in the documented order; statistics accumulate in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Philox.h"

namespace gyrus::kir {

namespace {

using Vec3 = std::array<float, 3>;

float lerp(float a, float b, float w) { return a + w * (b - a); }

int64_t count(const ir::Shape3& s) { return s[0] * s[1] * s[2]; }

/// The affine map of 12 operands: p'_i = ((m_i0 x + m_i1 y) + m_i2 z) + t_i.
Vec3 affine(const std::vector<Operand>& args, const std::vector<float>& slots, const Vec3& p, size_t first = 0) {
  Vec3 r{};
  for (size_t i = 0; i < 3; ++i) {
    const Operand* m = &args[first + 4 * i];
    r[i] = valueOf(m[0], slots) * p[0] + valueOf(m[1], slots) * p[1];
    r[i] = r[i] + valueOf(m[2], slots) * p[2];
    r[i] = r[i] + valueOf(m[3], slots);
  }
  return r;
}

/// The value of voxel (x, y, z) of `data` (shape `s`), 0 outside the grid.
float voxel(const float* data, const ir::Shape3& s, int64_t x, int64_t y, int64_t z) {
  if (x < 0 || y < 0 || z < 0 || x >= s[0] || y >= s[1] || z >= s[2]) return 0.0f;
  return data[x + s[0] * (y + s[1] * z)];
}

/// Trilinear interpolation at p, lerps along x, then y, then z.
float trilinear(const float* data, const ir::Shape3& s, const Vec3& p) {
  if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2])) return 0.0f;  // nowhere: outside
  float fx = std::floor(p[0]), fy = std::floor(p[1]), fz = std::floor(p[2]);
  auto x = static_cast<int64_t>(fx), y = static_cast<int64_t>(fy), z = static_cast<int64_t>(fz);
  float wx = p[0] - fx, wy = p[1] - fy, wz = p[2] - fz;
  if (wx == 0.0f && wy == 0.0f && wz == 0.0f) return voxel(data, s, x, y, z);  // an integral position
  float c00 = lerp(voxel(data, s, x, y, z), voxel(data, s, x + 1, y, z), wx);
  float c10 = lerp(voxel(data, s, x, y + 1, z), voxel(data, s, x + 1, y + 1, z), wx);
  float c01 = lerp(voxel(data, s, x, y, z + 1), voxel(data, s, x + 1, y, z + 1), wx);
  float c11 = lerp(voxel(data, s, x, y + 1, z + 1), voxel(data, s, x + 1, y + 1, z + 1), wx);
  return lerp(lerp(c00, c10, wy), lerp(c01, c11, wy), wz);
}

/// Catmull-Rom weights of the four neighbours floor(p) - 1 .. floor(p) + 2 at fraction t.
std::array<float, 4> cubicWeights(float t) {
  return {((-0.5f * t + 1.0f) * t - 0.5f) * t, (1.5f * t - 2.5f) * t * t + 1.0f, ((-1.5f * t + 2.0f) * t + 0.5f) * t,
          (0.5f * t - 0.5f) * t * t};
}

/// Tricubic (Catmull-Rom) interpolation at p: rows along x, then y, then z (Kernel.h).
float tricubic(const float* data, const ir::Shape3& s, const Vec3& p) {
  if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2])) return 0.0f;  // nowhere: outside
  float fx = std::floor(p[0]), fy = std::floor(p[1]), fz = std::floor(p[2]);
  auto x = static_cast<int64_t>(fx), y = static_cast<int64_t>(fy), z = static_cast<int64_t>(fz);
  float tx = p[0] - fx, ty = p[1] - fy, tz = p[2] - fz;
  if (tx == 0.0f && ty == 0.0f && tz == 0.0f) return voxel(data, s, x, y, z);  // an integral position
  const std::array<float, 4> wx = cubicWeights(tx), wy = cubicWeights(ty), wz = cubicWeights(tz);
  auto sum4 = [](const std::array<float, 4>& w, const std::array<float, 4>& v) {
    return ((w[0] * v[0] + w[1] * v[1]) + w[2] * v[2]) + w[3] * v[3];
  };
  std::array<float, 4> planes{};
  for (int64_t k = 0; k < 4; ++k) {
    std::array<float, 4> rows{};
    for (int64_t j = 0; j < 4; ++j) {
      std::array<float, 4> v{};
      for (int64_t i = 0; i < 4; ++i) v[static_cast<size_t>(i)] = voxel(data, s, x - 1 + i, y - 1 + j, z - 1 + k);
      rows[static_cast<size_t>(j)] = sum4(wx, v);
    }
    planes[static_cast<size_t>(k)] = sum4(wy, rows);
  }
  return sum4(wz, planes);
}

float nearest(const float* data, const ir::Shape3& s, const Vec3& p) {
  if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2])) return 0.0f;
  return voxel(data, s, static_cast<int64_t>(std::floor(p[0] + 0.5f)), static_cast<int64_t>(std::floor(p[1] + 0.5f)),
               static_cast<int64_t>(std::floor(p[2] + 0.5f)));
}

/// A displacement field's component c at q (field coordinates), clamped to the field.
float fieldAt(const std::vector<float>& field, const ir::Shape3& s, int c, Vec3 q) {
  if (!std::isfinite(q[0]) || !std::isfinite(q[1]) || !std::isfinite(q[2])) return 0.0f;
  for (size_t a = 0; a < 3; ++a) q[a] = std::min(std::max(q[a], 0.0f), static_cast<float>(s[a] - 1));
  const float* data = field.data() + static_cast<int64_t>(c) * count(s);
  // Clamped: the top neighbour of the last control point is the point itself.
  float fx = std::floor(q[0]), fy = std::floor(q[1]), fz = std::floor(q[2]);
  auto x = static_cast<int64_t>(fx), y = static_cast<int64_t>(fy), z = static_cast<int64_t>(fz);
  int64_t x1 = std::min(x + 1, s[0] - 1), y1 = std::min(y + 1, s[1] - 1), z1 = std::min(z + 1, s[2] - 1);
  float wx = q[0] - fx, wy = q[1] - fy, wz = q[2] - fz;
  auto at = [&](int64_t i, int64_t j, int64_t k) { return data[i + s[0] * (j + s[1] * k)]; };
  float c00 = lerp(at(x, y, z), at(x1, y, z), wx), c10 = lerp(at(x, y1, z), at(x1, y1, z), wx);
  float c01 = lerp(at(x, y, z1), at(x1, y, z1), wx), c11 = lerp(at(x, y1, z1), at(x1, y1, z1), wx);
  return lerp(lerp(c00, c10, wy), lerp(c01, c11, wy), wz);
}

/// Where a voxel is, for the instructions that need it.
struct VoxelPlace {
  uint32_t index = 0;  ///< linear index in the output grid
  Vec3 unit{};         ///< position scaled to [-1, 1] per axis (0 on an axis of one voxel)
};

VoxelPlace place(const ir::Shape3& s, int64_t x, int64_t y, int64_t z) {
  VoxelPlace v;
  v.index = static_cast<uint32_t>(x + s[0] * (y + s[1] * z));
  const int64_t xyz[3] = {x, y, z};
  for (size_t a = 0; a < 3; ++a)
    v.unit[a] = s[a] > 1 ? 2.0f * static_cast<float>(xyz[a]) / static_cast<float>(s[a] - 1) - 1.0f : 0.0f;
  return v;
}

float runChain(const Chain& chain, float v, const Binding& b, const VoxelPlace& at) {
  for (const PointInstr& p : chain) {
    if (p.headOnly && v == 0.0f) continue;
    if (skipped(p, b.slots)) continue;
    auto arg = [&](size_t i) { return valueOf(p.args[i], b.slots); };
    switch (p.op) {
      case PointOp::Affine: v = arg(0) * v + arg(1); break;
      case PointOp::Normalize: v = (v - arg(0)) / arg(1); break;
      case PointOp::Clamp: v = std::min(std::max(v, arg(0)), arg(1)); break;
      case PointOp::Gamma: {
        float g = arg(0), lo = arg(1), hi = arg(2), range = hi - lo;
        if (!(range > 0.0f)) break;
        float t = std::min(std::max((v - lo) / range, 0.0f), 1.0f);
        float u = arg(3) != 0.0f ? 1.0f - std::pow(1.0f - t, g) : std::pow(t, g);
        v = lo + range * u;
        break;
      }
      case PointOp::AddNoise: v = v + arg(0) * voxelNormal(b.seed, b.sample, p.stream, at.index); break;
      case PointOp::MulNoise: v = v * (1.0f + arg(0) * voxelNormal(b.seed, b.sample, p.stream, at.index)); break;
      case PointOp::Contrast: v = (v - arg(1)) * arg(0) + arg(1); break;
      case PointOp::Bias: {
        const float x = at.unit[0], y = at.unit[1], z = at.unit[2];
        const float terms[10] = {1.0f, x, y, z, x * x, y * y, z * z, x * y, x * z, y * z};
        float e = 0.0f;
        for (size_t i = 0; i < 10; ++i) e = e + arg(i) * terms[i];
        v = v * std::exp(e);
        break;
      }
    }
  }
  return v;
}

void gather(const Pass& pass, const std::vector<FieldSpec>& fields, const Binding& b, const Buffers& buffers) {
  const ir::Shape3& out = b.out.shape;
  for (int64_t z = 0; z < out[2]; ++z)
    for (int64_t y = 0; y < out[1]; ++y)
      for (int64_t x = 0; x < out[0]; ++x) {
        Vec3 p{static_cast<float>(x), static_cast<float>(y), static_cast<float>(z)};
        bool valid = true;
        for (const CoordInstr& c : pass.coords) {
          switch (c.op) {
            case CoordOp::Affine: p = affine(c.args, b.slots, p); break;
            case CoordOp::Clamp:
              for (size_t a = 0; a < 3; ++a) p[a] = std::min(std::max(p[a], 0.0f), valueOf(c.args[a], b.slots));
              break;
            case CoordOp::Window:
              for (size_t a = 0; a < 3; ++a)
                if (!(p[a] > -0.5f && p[a] < valueOf(c.args[a], b.slots) + 0.5f)) valid = false;
              break;
            case CoordOp::Displace: {
              const auto f = static_cast<size_t>(c.field);
              Vec3 q = affine(c.args, b.slots, p);
              Vec3 d{};
              for (int k = 0; k < 3; ++k)
                d[static_cast<size_t>(k)] = fieldAt(b.fields[f], fields[f].shape, k, q);
              for (size_t a = 0; a < 3; ++a) p[a] = p[a] + d[a];
              break;
            }
          }
          if (!valid) break;
        }
        const VoxelPlace at = place(out, x, y, z);
        for (const GatherOutput& o : pass.outputs) {
          const float* src = buffers.source(o.source);
          float v = 0.0f;
          if (valid)
            v = o.interp == Interp::Linear  ? trilinear(src, b.in.shape, p)
                : o.interp == Interp::Cubic ? tricubic(src, b.in.shape, p)
                                            : nearest(src, b.in.shape, p);
          buffers.of(o.buffer)[at.index] = runChain(o.chain, v, b, at);
        }
      }
}

void map(const Pass& pass, const Binding& b, float* data) {
  const ir::Shape3& s = b.out.shape;
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        const VoxelPlace at = place(s, x, y, z);
        data[at.index] = runChain(pass.chain, data[at.index], b, at);
      }
}

}  // namespace

double quantile(std::vector<float>& values, double q) {
  double pos = q * static_cast<double>(values.size() - 1);
  auto k = static_cast<size_t>(std::floor(pos));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  double a = values[k];
  if (k + 1 >= values.size()) return a;
  double next = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(k) + 1, values.end());
  return a + (next - a) * (pos - static_cast<double>(k));
}

bool skipped(const PointInstr& p, const std::vector<float>& slots) {
  auto arg = [&](size_t i) { return i < p.args.size() ? valueOf(p.args[i], slots) : 0.0f; };
  constexpr float inf = std::numeric_limits<float>::infinity();
  switch (p.op) {
    case PointOp::Affine: return arg(0) == 1.0f && arg(1) == 0.0f;
    case PointOp::Normalize: return arg(0) == 0.0f && arg(1) == 1.0f;
    case PointOp::Clamp: return arg(0) == -inf && arg(1) == inf;
    case PointOp::Gamma: return !(arg(2) - arg(1) > 0.0f) || (arg(0) == 1.0f && arg(3) == 0.0f);
    case PointOp::AddNoise:
    case PointOp::MulNoise: return arg(0) == 0.0f;
    case PointOp::Contrast: return arg(0) == 1.0f;
    case PointOp::Bias:
      for (size_t i = 0; i < 10; ++i)
        if (arg(i) != 0.0f) return false;
      return true;
  }
  return false;
}

bool reductionNeeded(const Program& program, size_t pass, const std::vector<float>& slots) {
  const Reduction& r = program.passes.at(pass).reduce;
  auto reads = [&](const Operand& o) { return o.isSlot && (o.slot == r.out || o.slot == r.out + 1); };
  auto readsAny = [&](const std::vector<Operand>& args) { return std::any_of(args.begin(), args.end(), reads); };
  auto needs = [&](const PointInstr& p) {
    if (!readsAny(p.args)) return false;
    // Skipped whatever the statistic: operands that are not the statistic's say so.
    auto fixed = [&](size_t i, float v) {
      return i < p.args.size() && !reads(p.args[i]) && valueOf(p.args[i], slots) == v;
    };
    if (p.op == PointOp::Gamma && fixed(0, 1.0f) && fixed(3, 0.0f)) return false;
    if (p.op == PointOp::Contrast && fixed(0, 1.0f)) return false;
    return true;
  };
  for (size_t i = pass + 1; i < program.passes.size(); ++i) {
    const Pass& q = program.passes[i];
    for (const CoordInstr& c : q.coords)
      if (readsAny(c.args)) return true;
    for (const GatherOutput& o : q.outputs)
      if (std::any_of(o.chain.begin(), o.chain.end(), needs)) return true;
    if (std::any_of(q.chain.begin(), q.chain.end(), needs)) return true;
    if (q.kind == PassKind::Stencil && (readsAny(q.stencil.args) || reads(q.stencil.enabled))) return true;
  }
  return false;
}

void runReduce(const Reduction& r, const float* data, int64_t n, std::vector<float>& slots) {
  auto out = static_cast<size_t>(r.out);
  switch (r.op) {
    case ReduceOp::Moments: {
      double sum = 0, sumSq = 0;
      int64_t used = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (r.nonzero && data[i] == 0.0f) continue;
        sum += data[i];
        sumSq += static_cast<double>(data[i]) * data[i];
        ++used;
      }
      double mean = 0, sd = 1;
      if (used > 0) {
        mean = sum / static_cast<double>(used);
        sd = std::sqrt(std::max(0.0, sumSq / static_cast<double>(used) - mean * mean));
        if (sd < 1e-12) sd = 1;
      }
      slots[out] = static_cast<float>(mean);
      slots[out + 1] = static_cast<float>(sd);
      return;
    }
    case ReduceOp::MinMax: {
      float lo = 0, hi = 0;
      bool any = false;
      for (int64_t i = 0; i < n; ++i) {
        if (r.nonzero && data[i] == 0.0f) continue;
        lo = any ? std::min(lo, data[i]) : data[i];
        hi = any ? std::max(hi, data[i]) : data[i];
        any = true;
      }
      slots[out] = lo;
      slots[out + 1] = hi;
      return;
    }
    case ReduceOp::Percentiles: {
      std::vector<float> values;
      values.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        if (!r.nonzero || data[i] != 0.0f) values.push_back(data[i]);
      if (values.empty()) {
        slots[out] = slots[out + 1] = 0.0f;
        return;
      }
      slots[out] = static_cast<float>(quantile(values, r.q0));
      slots[out + 1] = static_cast<float>(quantile(values, r.q1));
      return;
    }
  }
}

void interpret(const Program& program, Binding& binding, const Buffers& buffers) {
  if (program.passes.empty() || program.passes[0].kind != PassKind::Gather)
    throw std::invalid_argument("kernel interpret: a program starts with its gather");
  const int64_t n = count(binding.out.shape);
  for (size_t i = 0; i < program.passes.size(); ++i) {
    const Pass& pass = program.passes[i];
    switch (pass.kind) {
      case PassKind::Gather: gather(pass, program.fields, binding, buffers); break;
      case PassKind::Map: map(pass, binding, buffers.of(pass.buffer)); break;
      case PassKind::Reduce:
        if (reductionNeeded(program, i, binding.slots))
          runReduce(pass.reduce, buffers.of(pass.buffer), n, binding.slots);
        break;
      case PassKind::Stencil:
        if (valueOf(pass.stencil.enabled, binding.slots) != 0.0f)
          runStencil(pass.stencil, buffers.of(pass.buffer), binding.out.shape, binding.slots);
        break;
    }
  }
}

void interpretKernel(const Kernel& kernel, Binding& binding, const Buffers& buffers) {
  interpret(kernel.program, binding, buffers);
}

Result apply(const std::vector<Kernel>& segments, const Grid& in, const float* image, const float* mask, uint64_t seed,
             uint32_t sample, const Runner& run) {
  if (segments.empty()) throw std::invalid_argument("kernel apply: no segment");
  Result r;
  r.grid = in;
  const bool target = segments[0].program.hasTarget, withMask = segments[0].program.hasMask;
  if (withMask && mask == nullptr) throw std::invalid_argument("kernel apply: the kernel carries a mask; none given");
  std::vector<float> srcImage, srcTarget, srcMask;
  for (size_t i = 0; i < segments.size(); ++i) {
    Binding b = bind(segments[i], r.grid, seed, sample);
    const auto n = static_cast<size_t>(count(b.out.shape));
    if (i > 0) {
      srcImage = std::move(r.image);
      srcTarget = std::move(r.target);
      srcMask = std::move(r.mask);
    }
    r.image.assign(n, 0.0f);
    if (target) r.target.assign(n, 0.0f);
    if (withMask) r.mask.assign(n, 0.0f);
    Buffers buffers;
    buffers.image = i == 0 ? image : srcImage.data();
    buffers.mask = i == 0 ? mask : srcMask.data();
    buffers.target = i == 0 ? nullptr : srcTarget.data();
    buffers.outImage = r.image.data();
    buffers.outTarget = target ? r.target.data() : nullptr;
    buffers.outMask = withMask ? r.mask.data() : nullptr;
    run(segments[i], b, buffers);
    r.grid = b.out;
  }
  return r;
}

}  // namespace gyrus::kir
