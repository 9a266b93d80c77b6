// CUDA C++ from a kernel program (see Cuda.h). Every instruction is written as the
// reference interpreter (Interp.cpp) evaluates it, operation by operation, so that with
// --fmad=false the GPU computes the same single-precision values in the same order.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "gyrus/kernel/Cuda.h"

namespace gyrus::kir {

namespace {

/// The device library every module starts with: the interpreter's helpers, one for one.
/// gy_min and gy_max are std::min and std::max (not fminf/fmaxf: the same result for
/// NaN and signed zeros).
constexpr const char* kPrelude = R"(typedef unsigned int gy_u32;
typedef unsigned long long gy_u64;

__device__ __forceinline__ float gy_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float gy_max(float a, float b) { return a < b ? b : a; }
__device__ __forceinline__ float gy_lerp(float a, float b, float w) { return a + w * (b - a); }

/* The value of voxel (x, y, z), 0 outside the grid. */
__device__ __forceinline__ float gy_voxel(const float* __restrict__ d, int nx, int ny, int nz, long long x,
                                          long long y, long long z) {
  if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz) return 0.0f;
  return d[x + (long long)nx * (y + (long long)ny * z)];
}

/* Trilinear: lerps along x, then y, then z; neighbours outside the grid count as 0. */
__device__ __forceinline__ float gy_trilinear(const float* __restrict__ d, int nx, int ny, int nz, float px,
                                              float py, float pz) {
  const float fx = floorf(px), fy = floorf(py), fz = floorf(pz);
  const long long x = (long long)fx, y = (long long)fy, z = (long long)fz;
  const float wx = px - fx, wy = py - fy, wz = pz - fz;
  const float c00 = gy_lerp(gy_voxel(d, nx, ny, nz, x, y, z), gy_voxel(d, nx, ny, nz, x + 1, y, z), wx);
  const float c10 = gy_lerp(gy_voxel(d, nx, ny, nz, x, y + 1, z), gy_voxel(d, nx, ny, nz, x + 1, y + 1, z), wx);
  const float c01 = gy_lerp(gy_voxel(d, nx, ny, nz, x, y, z + 1), gy_voxel(d, nx, ny, nz, x + 1, y, z + 1), wx);
  const float c11 =
      gy_lerp(gy_voxel(d, nx, ny, nz, x, y + 1, z + 1), gy_voxel(d, nx, ny, nz, x + 1, y + 1, z + 1), wx);
  return gy_lerp(gy_lerp(c00, c10, wy), gy_lerp(c01, c11, wy), wz);
}

/* Catmull-Rom weights at fraction t (Interp.cpp's cubicWeights). */
__device__ __forceinline__ void gy_cubic_weights(float t, float* w) {
  w[0] = ((-0.5f * t + 1.0f) * t - 0.5f) * t;
  w[1] = (1.5f * t - 2.5f) * t * t + 1.0f;
  w[2] = ((-1.5f * t + 2.0f) * t + 0.5f) * t;
  w[3] = (0.5f * t - 0.5f) * t * t;
}

/* Tricubic (Catmull-Rom): the 4 neighbours floor(p) - 1 .. floor(p) + 2 per axis, those
   outside the grid 0; rows along x, then y, then z; the voxel itself at an integral p. */
__device__ __forceinline__ float gy_tricubic(const float* __restrict__ d, int nx, int ny, int nz, float px,
                                             float py, float pz) {
  const float fx = floorf(px), fy = floorf(py), fz = floorf(pz);
  const long long x = (long long)fx, y = (long long)fy, z = (long long)fz;
  const float tx = px - fx, ty = py - fy, tz = pz - fz;
  if (tx == 0.0f && ty == 0.0f && tz == 0.0f) return gy_voxel(d, nx, ny, nz, x, y, z);
  float wx[4], wy[4], wz[4], planes[4];
  gy_cubic_weights(tx, wx);
  gy_cubic_weights(ty, wy);
  gy_cubic_weights(tz, wz);
  for (int k = 0; k < 4; ++k) {
    float rows[4];
    for (int j = 0; j < 4; ++j) {
      float v[4];
      for (int i = 0; i < 4; ++i) v[i] = gy_voxel(d, nx, ny, nz, x - 1 + i, y - 1 + j, z - 1 + k);
      rows[j] = ((wx[0] * v[0] + wx[1] * v[1]) + wx[2] * v[2]) + wx[3] * v[3];
    }
    planes[k] = ((wy[0] * rows[0] + wy[1] * rows[1]) + wy[2] * rows[2]) + wy[3] * rows[3];
  }
  return ((wz[0] * planes[0] + wz[1] * planes[1]) + wz[2] * planes[2]) + wz[3] * planes[3];
}

/* Nearest: voxel floor(p + 0.5) per axis. */
__device__ __forceinline__ float gy_nearest(const float* __restrict__ d, int nx, int ny, int nz, float px,
                                            float py, float pz) {
  return gy_voxel(d, nx, ny, nz, (long long)floorf(px + 0.5f), (long long)floorf(py + 0.5f),
                  (long long)floorf(pz + 0.5f));
}

/* Component c of a displacement field (sx x sy x sz control points) at q, clamped. */
__device__ __forceinline__ float gy_field(const float* __restrict__ f, int sx, int sy, int sz, int c, float qx,
                                          float qy, float qz) {
  qx = gy_min(gy_max(qx, 0.0f), (float)(sx - 1));
  qy = gy_min(gy_max(qy, 0.0f), (float)(sy - 1));
  qz = gy_min(gy_max(qz, 0.0f), (float)(sz - 1));
  const float* __restrict__ d = f + (long long)c * sx * sy * sz;
  const float fx = floorf(qx), fy = floorf(qy), fz = floorf(qz);
  const long long x = (long long)fx, y = (long long)fy, z = (long long)fz;
  const long long x1 = x + 1 < sx - 1 ? x + 1 : sx - 1, y1 = y + 1 < sy - 1 ? y + 1 : sy - 1,
                  z1 = z + 1 < sz - 1 ? z + 1 : sz - 1;
  const float wx = qx - fx, wy = qy - fy, wz = qz - fz;
#define GY_AT(i, j, k) d[(i) + (long long)sx * ((j) + (long long)sy * (k))]
  const float c00 = gy_lerp(GY_AT(x, y, z), GY_AT(x1, y, z), wx), c10 = gy_lerp(GY_AT(x, y1, z), GY_AT(x1, y1, z), wx);
  const float c01 = gy_lerp(GY_AT(x, y, z1), GY_AT(x1, y, z1), wx),
              c11 = gy_lerp(GY_AT(x, y1, z1), GY_AT(x1, y1, z1), wx);
#undef GY_AT
  return gy_lerp(gy_lerp(c00, c10, wy), gy_lerp(c01, c11, wy), wz);
}

/* Philox4x32-10 of the counter (voxel, stream, sample, 0) under seed (Philox.h), then
   Box-Muller's cosine branch in single precision: kir::voxelNormal. */
__device__ __forceinline__ float gy_normal(gy_u64 seed, gy_u32 sample, gy_u32 stream, gy_u32 voxel) {
  gy_u32 c0 = voxel, c1 = stream, c2 = sample, c3 = 0u;
  gy_u32 k0 = (gy_u32)seed, k1 = (gy_u32)(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const gy_u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const gy_u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const gy_u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  const float u1 = (float)((c0 >> 8) + 1u) * 0x1p-24f, u2 = (float)((c1 >> 8) + 1u) * 0x1p-24f;
  return sqrtf(-2.0f * logf(u1)) * cosf(0x1.921fb6p+2f * u2);
}

/* Reductions: a block's partial values, then atomics into the accumulator; the last
   block writes the slots and zeroes the accumulator for the next launch. */
struct gy_moments_acc {
  double sum, sum_sq;
  gy_u64 used;
  gy_u32 done, pad;
};
struct gy_minmax_acc {
  gy_u32 neg_min, max; /* ordered encodings; neg_min holds ~encode(min) */
  gy_u64 used;
  gy_u32 done, pad;
};
/* A float as an unsigned integer of the same order (-0 just below +0). */
__device__ __forceinline__ gy_u32 gy_order(float f) {
  const gy_u32 u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float gy_unorder(gy_u32 e) {
  return __uint_as_float((e & 0x80000000u) ? (e & 0x7fffffffu) : ~e);
}
)";

/// A float constant, exactly: a hexadecimal literal (non-finite values by their bits).
std::string literal(float v) {
  if (std::isnan(v)) return "__int_as_float(0x7fffffff)";
  if (std::isinf(v)) return v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float((int)0xff800000u)";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(v));
  return v < 0 || std::signbit(v) ? "(" + std::string(buf) + ")" : std::string(buf);
}

std::string operand(const Operand& o) { return o.isSlot ? "slots[" + std::to_string(o.slot) + "]" : literal(o.value); }

const char* bufferName(Buffer b) { return b == Buffer::Image ? "Image" : b == Buffer::Target ? "Target" : "Mask"; }


void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("cuda source: " + what);
}

/// A comment's text: never closes a comment or breaks a line.
std::string commentText(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  for (size_t at = s.find("*/"); at != std::string::npos; at = s.find("*/")) s.replace(at, 2, "* /");
  return s;
}

bool usesBias(const Chain& chain) {
  for (const PointInstr& p : chain)
    if (p.op == PointOp::Bias) return true;
  return false;
}

/// The statements of a pointwise chain on `v` (a float lvalue), given `index` (the
/// voxel's linear index, gy_u32), `ux`, `uy`, `uz` (its position in [-1, 1]), `seed`
/// and `sample`.
void emitChain(std::ostringstream& out, const Chain& chain, const std::string& indent) {
  for (const PointInstr& p : chain) {
    auto arg = [&](size_t i) {
      need(i < p.args.size(), std::string(toString(p.op)) + " has too few operands");
      return operand(p.args[i]);
    };
    out << indent << "/* " << toString(p.op) << (p.headOnly ? " head" : "") << ": " << commentText(p.origin)
        << " */\n";
    std::string in = indent;
    if (p.headOnly) {
      out << indent << "if (v != 0.0f) {\n";
      in += "  ";
    }
    switch (p.op) {
      case PointOp::Affine: out << in << "v = " << arg(0) << " * v + " << arg(1) << ";\n"; break;
      case PointOp::Normalize: out << in << "v = (v - " << arg(0) << ") / " << arg(1) << ";\n"; break;
      case PointOp::Clamp: out << in << "v = gy_min(gy_max(v, " << arg(0) << "), " << arg(1) << ");\n"; break;
      case PointOp::Gamma:
        out << in << "{\n"
            << in << "  const float g = " << arg(0) << ", lo = " << arg(1) << ", hi = " << arg(2)
            << ", range = hi - lo;\n"
            << in << "  if (range > 0.0f) {\n"
            << in << "    const float t = gy_min(gy_max((v - lo) / range, 0.0f), 1.0f);\n"
            << in << "    const float u = " << arg(3) << " != 0.0f ? 1.0f - powf(1.0f - t, g) : powf(t, g);\n"
            << in << "    v = lo + range * u;\n"
            << in << "  }\n"
            << in << "}\n";
        break;
      case PointOp::AddNoise:
        out << in << "v = v + " << arg(0) << " * gy_normal(seed, sample, " << p.stream << "u, index);\n";
        break;
      case PointOp::MulNoise:
        out << in << "v = v * (1.0f + " << arg(0) << " * gy_normal(seed, sample, " << p.stream << "u, index));\n";
        break;
      case PointOp::Contrast:
        out << in << "v = (v - " << arg(1) << ") * " << arg(0) << " + " << arg(1) << ";\n";
        break;
      case PointOp::Bias: {
        static const char* const terms[10] = {"1.0f",    "ux",      "uy",      "uz",      "ux * ux",
                                              "uy * uy", "uz * uz", "ux * uy", "ux * uz", "uy * uz"};
        out << in << "{\n" << in << "  float e = 0.0f;\n";
        for (size_t i = 0; i < 10; ++i) out << in << "  e = e + " << arg(i) << " * (" << terms[i] << ");\n";
        out << in << "  v = v * expf(e);\n" << in << "}\n";
        break;
      }
    }
    if (p.headOnly) out << indent << "}\n";
  }
}

/// The loop header every voxel kernel shares: `i` the linear index, (x, y, z) the voxel.
void emitVoxelLoop(std::ostringstream& out, bool bias) {
  out << "  const gy_u32 n = (gy_u32)outX * (gy_u32)outY * (gy_u32)outZ;\n"
         "  for (gy_u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {\n"
         "    const gy_u32 row = i / (gy_u32)outX;\n"
         "    const int x = (int)(i - row * (gy_u32)outX), y = (int)(row % (gy_u32)outY), z = (int)(row / (gy_u32)outY);\n"
         "    const gy_u32 index = i;\n";
  if (bias)
    out << "    const float ux = outX > 1 ? 2.0f * (float)x / (float)(outX - 1) - 1.0f : 0.0f;\n"
           "    const float uy = outY > 1 ? 2.0f * (float)y / (float)(outY - 1) - 1.0f : 0.0f;\n"
           "    const float uz = outZ > 1 ? 2.0f * (float)z / (float)(outZ - 1) - 1.0f : 0.0f;\n";
  else
    out << "    (void)x; (void)y; (void)z; (void)index;\n";
}

/// Declares `args` as the kernel's parameter list.
void emitSignature(std::ostringstream& out, const CudaKernel& k) {
  out << "extern \"C\" __global__ void __launch_bounds__(" << k.blockSize << ") " << k.name << "(";
  for (size_t i = 0; i < k.args.size(); ++i) {
    const CudaArg& a = k.args[i];
    out << (i ? ",\n    " : "\n    ");
    switch (a.kind) {
      case CudaParam::Slots:
        out << (k.kind == PassKind::Reduce ? "float* __restrict__ " : "const float* __restrict__ ");
        break;
      case CudaParam::Field:
      case CudaParam::Source: out << "const float* __restrict__ "; break;
      case CudaParam::Output: out << "float* __restrict__ "; break;
      case CudaParam::Data:
        out << (k.kind == PassKind::Reduce ? "const float* __restrict__ " : "float* __restrict__ ");
        break;
      case CudaParam::Accum: out << "void* "; break;
      case CudaParam::InShape:
      case CudaParam::OutShape: out << "int "; break;
      case CudaParam::Seed: out << "gy_u64 "; break;
      case CudaParam::Sample: out << "gy_u32 "; break;
    }
    out << a.name;
  }
  out << ") {\n";
}

std::vector<CudaArg> outShapeArgs() {
  return {{CudaParam::OutShape, 0, Buffer::Image, "outX"},
          {CudaParam::OutShape, 1, Buffer::Image, "outY"},
          {CudaParam::OutShape, 2, Buffer::Image, "outZ"}};
}

/// Axis names of a coordinate step's three values.
constexpr const char* kAxis[3] = {"x", "y", "z"};

void emitAffine(std::ostringstream& out, const std::vector<Operand>& args, const char* to, const std::string& indent) {
  need(args.size() >= 12, "an affine coordinate step needs 12 operands");
  for (int i = 0; i < 3; ++i) {
    const Operand* m = &args[static_cast<size_t>(4 * i)];
    std::string r = std::string(to) + kAxis[i];
    out << indent << "float " << r << " = " << operand(m[0]) << " * px + " << operand(m[1]) << " * py;\n";
    out << indent << r << " = " << r << " + " << operand(m[2]) << " * pz;\n";
    out << indent << r << " = " << r << " + " << operand(m[3]) << ";\n";
  }
}

CudaKernel gatherKernel(const Program& program, const Pass& pass, int index, std::ostringstream& out) {
  CudaKernel k;
  k.name = "gyrus_p" + std::to_string(index) + "_gather";
  k.pass = index;
  k.kind = PassKind::Gather;
  k.args.push_back({CudaParam::Slots, 0, Buffer::Image, "slots"});
  std::vector<bool> fieldUsed(program.fields.size(), false);
  for (const CoordInstr& c : pass.coords)
    if (c.op == CoordOp::Displace) {
      need(c.field >= 0 && static_cast<size_t>(c.field) < program.fields.size(), "displace names no field");
      fieldUsed[static_cast<size_t>(c.field)] = true;
    }
  for (size_t f = 0; f < fieldUsed.size(); ++f)
    if (fieldUsed[f]) k.args.push_back({CudaParam::Field, static_cast<int>(f), Buffer::Image, "field" + std::to_string(f)});
  bool sourceUsed[3] = {false, false, false};
  for (const GatherOutput& o : pass.outputs) sourceUsed[static_cast<int>(o.source)] = true;
  for (Buffer b : {Buffer::Image, Buffer::Target, Buffer::Mask})
    if (sourceUsed[static_cast<int>(b)]) k.args.push_back({CudaParam::Source, 0, b, std::string("src") + bufferName(b)});
  for (const GatherOutput& o : pass.outputs)
    k.args.push_back({CudaParam::Output, 0, o.buffer, std::string("out") + bufferName(o.buffer)});
  k.args.push_back({CudaParam::InShape, 0, Buffer::Image, "inX"});
  k.args.push_back({CudaParam::InShape, 1, Buffer::Image, "inY"});
  k.args.push_back({CudaParam::InShape, 2, Buffer::Image, "inZ"});
  for (const CudaArg& a : outShapeArgs()) k.args.push_back(a);
  k.args.push_back({CudaParam::Seed, 0, Buffer::Image, "seed"});
  k.args.push_back({CudaParam::Sample, 0, Buffer::Image, "sample"});

  bool bias = false;
  for (const GatherOutput& o : pass.outputs) bias = bias || usesBias(o.chain);
  out << "/* pass " << index << ": gather */\n";
  emitSignature(out, k);
  emitVoxelLoop(out, bias);
  out << "    float px = (float)x, py = (float)y, pz = (float)z;\n"
         "    bool valid = true;\n";
  const std::string in = "    ";
  for (const CoordInstr& c : pass.coords) {
    switch (c.op) {
      case CoordOp::Affine:
        out << in << "{ /* affine: " << commentText(c.origin) << " */\n";
        emitAffine(out, c.args, "r", in + "  ");
        out << in << "  px = rx; py = ry; pz = rz;\n" << in << "}\n";
        break;
      case CoordOp::Clamp:
        need(c.args.size() >= 3, "a clamp coordinate step needs 3 operands");
        out << in << "/* clamp: " << commentText(c.origin) << " */\n";
        for (size_t a = 0; a < 3; ++a)
          out << in << "p" << kAxis[a] << " = gy_min(gy_max(p" << kAxis[a] << ", 0.0f), " << operand(c.args[a])
              << ");\n";
        break;
      case CoordOp::Window:
        need(c.args.size() >= 3, "a window coordinate step needs 3 operands");
        out << in << "/* window: " << commentText(c.origin) << " */\n";
        for (size_t a = 0; a < 3; ++a)
          out << in << "if (!(p" << kAxis[a] << " > -0.5f && p" << kAxis[a] << " < " << operand(c.args[a])
              << " + 0.5f)) valid = false;\n";
        break;
      case CoordOp::Displace: {
        const FieldSpec& f = program.fields[static_cast<size_t>(c.field)];
        need(f.shape[0] > 0 && f.shape[1] > 0 && f.shape[2] > 0, "a displacement field has an empty shape");
        const std::string fs = "field" + std::to_string(c.field) + ", " + std::to_string(f.shape[0]) + ", " +
                               std::to_string(f.shape[1]) + ", " + std::to_string(f.shape[2]);
        out << in << "{ /* displace by field " << c.field << ": " << commentText(c.origin) << " */\n";
        emitAffine(out, c.args, "q", in + "  ");
        for (int comp = 0; comp < 3; ++comp)
          out << in << "  const float d" << kAxis[comp] << " = gy_field(" << fs << ", " << comp << ", qx, qy, qz);\n";
        out << in << "  px = px + dx; py = py + dy; pz = pz + dz;\n" << in << "}\n";
        break;
      }
    }
  }
  for (const GatherOutput& o : pass.outputs) {
    const std::string src = std::string("src") + bufferName(o.source);
    out << in << "{ /* " << bufferName(o.buffer) << " */\n"
        << in << "  float v = valid ? " << (o.interp == Interp::Linear  ? "gy_trilinear("
                                                 : o.interp == Interp::Cubic ? "gy_tricubic("
                                                                             : "gy_nearest(") << src
        << ", inX, inY, inZ, px, py, pz) : 0.0f;\n";
    emitChain(out, o.chain, in + "  ");
    out << in << "  out" << bufferName(o.buffer) << "[i] = v;\n" << in << "}\n";
  }
  out << "  }\n}\n\n";
  return k;
}

CudaKernel mapKernel(const Pass& pass, int index, std::ostringstream& out) {
  CudaKernel k;
  k.name = "gyrus_p" + std::to_string(index) + "_map";
  k.pass = index;
  k.kind = PassKind::Map;
  k.args = {{CudaParam::Slots, 0, Buffer::Image, "slots"}, {CudaParam::Data, 0, pass.buffer, "data"}};
  for (const CudaArg& a : outShapeArgs()) k.args.push_back(a);
  k.args.push_back({CudaParam::Seed, 0, Buffer::Image, "seed"});
  k.args.push_back({CudaParam::Sample, 0, Buffer::Image, "sample"});
  out << "/* pass " << index << ": map " << bufferName(pass.buffer) << " */\n";
  emitSignature(out, k);
  emitVoxelLoop(out, usesBias(pass.chain));
  out << "    float v = data[i];\n";
  emitChain(out, pass.chain, "    ");
  out << "    data[i] = v;\n  }\n}\n\n";
  return k;
}

CudaKernel reduceKernel(const Pass& pass, int index, std::ostringstream& out) {
  const Reduction& r = pass.reduce;
  const bool moments = r.op == ReduceOp::Moments;
  CudaKernel k;
  k.name = "gyrus_p" + std::to_string(index) + (moments ? "_moments" : "_minmax");
  k.pass = index;
  k.kind = PassKind::Reduce;
  k.accumBytes = 32;
  k.args = {{CudaParam::Slots, 0, Buffer::Image, "slots"},
            {CudaParam::Data, 0, pass.buffer, "data"},
            {CudaParam::Accum, 0, Buffer::Image, "accum"}};
  for (const CudaArg& a : outShapeArgs()) k.args.push_back(a);
  need(r.out >= 0, "a reduction without slots");
  const std::string s0 = "slots[" + std::to_string(r.out) + "]", s1 = "slots[" + std::to_string(r.out + 1) + "]";
  const char* skip = r.nonzero ? "    if (d == 0.0f) continue;\n" : "";
  out << "/* pass " << index << ": reduce " << bufferName(pass.buffer) << (moments ? " moments" : " minmax")
      << (r.nonzero ? " nonzero" : "") << " -> s" << r.out << ", s" << r.out + 1 << " */\n";
  emitSignature(out, k);
  out << "  const gy_u32 n = (gy_u32)outX * (gy_u32)outY * (gy_u32)outZ;\n";
  const int bs = k.blockSize;
  if (moments) {
    out << "  gy_moments_acc* acc = (gy_moments_acc*)accum;\n"
           "  double sum = 0.0, sumSq = 0.0;\n"
           "  gy_u64 used = 0;\n"
           "  for (gy_u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {\n"
           "    const float d = data[i];\n"
        << skip
        << "    sum += d;\n"
           "    sumSq += (double)d * d;\n"
           "    ++used;\n"
           "  }\n"
           "  __shared__ double bSum["
        << bs << "], bSq[" << bs << "];\n  __shared__ gy_u64 bUsed[" << bs
        << "];\n"
           "  __shared__ bool last;\n"
           "  bSum[threadIdx.x] = sum; bSq[threadIdx.x] = sumSq; bUsed[threadIdx.x] = used;\n"
           "  __syncthreads();\n"
           "  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {\n"
           "    if (threadIdx.x < s) {\n"
           "      bSum[threadIdx.x] += bSum[threadIdx.x + s];\n"
           "      bSq[threadIdx.x] += bSq[threadIdx.x + s];\n"
           "      bUsed[threadIdx.x] += bUsed[threadIdx.x + s];\n"
           "    }\n"
           "    __syncthreads();\n"
           "  }\n"
           "  if (threadIdx.x == 0) {\n"
           "    atomicAdd(&acc->sum, bSum[0]);\n"
           "    atomicAdd(&acc->sum_sq, bSq[0]);\n"
           "    atomicAdd(&acc->used, bUsed[0]);\n"
           "    __threadfence();\n"
           "    last = atomicAdd(&acc->done, 1u) == gridDim.x - 1;\n"
           "  }\n"
           "  __syncthreads();\n"
           "  if (last && threadIdx.x == 0) {\n"
           "    volatile gy_moments_acc* total = acc;\n"
           "    const double tSum = total->sum, tSq = total->sum_sq;\n"
           "    const gy_u64 tUsed = total->used;\n"
           "    double mean = 0.0, sd = 1.0;\n"
           "    if (tUsed > 0) {\n"
           "      mean = tSum / (double)tUsed;\n"
           "      const double var = tSq / (double)tUsed - mean * mean;\n"
           "      sd = sqrt(0.0 < var ? var : 0.0);\n"
           "      if (sd < 1e-12) sd = 1.0;\n"
           "    }\n"
           "    "
        << s0 << " = (float)mean;\n    " << s1
        << " = (float)sd;\n"
           "    total->sum = 0.0; total->sum_sq = 0.0; total->used = 0; total->done = 0u;\n"
           "  }\n}\n\n";
  } else {
    out << "  gy_minmax_acc* acc = (gy_minmax_acc*)accum;\n"
           "  gy_u32 negMin = 0u, hi = 0u;\n"
           "  gy_u64 used = 0;\n"
           "  for (gy_u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {\n"
           "    const float d = data[i];\n"
        << skip
        << "    const gy_u32 e = gy_order(d);\n"
           "    negMin = negMin < ~e ? ~e : negMin;\n"
           "    hi = hi < e ? e : hi;\n"
           "    ++used;\n"
           "  }\n"
           "  __shared__ gy_u32 bNegMin["
        << bs << "], bMax[" << bs << "];\n  __shared__ gy_u64 bUsed[" << bs
        << "];\n"
           "  __shared__ bool last;\n"
           "  bNegMin[threadIdx.x] = negMin; bMax[threadIdx.x] = hi; bUsed[threadIdx.x] = used;\n"
           "  __syncthreads();\n"
           "  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {\n"
           "    if (threadIdx.x < s) {\n"
           "      const gy_u32 a = bNegMin[threadIdx.x + s], b = bMax[threadIdx.x + s];\n"
           "      if (bNegMin[threadIdx.x] < a) bNegMin[threadIdx.x] = a;\n"
           "      if (bMax[threadIdx.x] < b) bMax[threadIdx.x] = b;\n"
           "      bUsed[threadIdx.x] += bUsed[threadIdx.x + s];\n"
           "    }\n"
           "    __syncthreads();\n"
           "  }\n"
           "  if (threadIdx.x == 0) {\n"
           "    atomicMax(&acc->neg_min, bNegMin[0]);\n"
           "    atomicMax(&acc->max, bMax[0]);\n"
           "    atomicAdd(&acc->used, bUsed[0]);\n"
           "    __threadfence();\n"
           "    last = atomicAdd(&acc->done, 1u) == gridDim.x - 1;\n"
           "  }\n"
           "  __syncthreads();\n"
           "  if (last && threadIdx.x == 0) {\n"
           "    volatile gy_minmax_acc* total = acc;\n"
           "    const bool any = total->used > 0;\n"
           "    "
        << s0 << " = any ? gy_unorder(~total->neg_min) : 0.0f;\n    " << s1
        << " = any ? gy_unorder(total->max) : 0.0f;\n"
           "    total->neg_min = 0u; total->max = 0u; total->used = 0; total->done = 0u;\n"
           "  }\n}\n\n";
  }
  return k;
}

}  // namespace

CudaModule cudaModule(const Program& program) {
  need(!program.passes.empty() && program.passes[0].kind == PassKind::Gather, "a program starts with its gather");
  CudaModule m;
  std::ostringstream out;
  out << "/* gyrus kernel " << hash(program) << "\n"
      << "   CUDA C++ generated by kir::cudaSource (kernels/src/CudaSource.cpp); compile with --fmad=false. */\n"
      << kPrelude << "\n";
  for (size_t i = 0; i < program.passes.size(); ++i) {
    const Pass& pass = program.passes[i];
    const int index = static_cast<int>(i);
    int kernel = -1;
    switch (pass.kind) {
      case PassKind::Gather:
        need(i == 0, "a gather that is not the first pass");
        kernel = static_cast<int>(m.kernels.size());
        m.kernels.push_back(gatherKernel(program, pass, index, out));
        break;
      case PassKind::Map:
        kernel = static_cast<int>(m.kernels.size());
        m.kernels.push_back(mapKernel(pass, index, out));
        break;
      case PassKind::Reduce:
        if (pass.reduce.op == ReduceOp::Percentiles) {
          out << "/* pass " << index << ": reduce percentiles: a library operation on the device tensor */\n\n";
          break;
        }
        kernel = static_cast<int>(m.kernels.size());
        m.kernels.push_back(reduceKernel(pass, index, out));
        break;
      case PassKind::Stencil:
        out << "/* pass " << index << ": stencil (" << commentText(pass.stencil.origin)
            << "): a library operation on the device tensor */\n\n";
        break;
    }
    m.passKernel.push_back(kernel);
  }
  m.source = out.str();
  return m;
}

std::string cudaSource(const Program& program) { return cudaModule(program).source; }

std::vector<std::string> cudaCompileOptions() {
  return {"--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false", "--std=c++17"};
}

uint32_t cudaGridSize(const CudaKernel& kernel, int64_t voxels) {
  const int64_t bs = kernel.blockSize > 0 ? kernel.blockSize : 256;
  int64_t blocks = (voxels + bs - 1) / bs;
  const int64_t cap = kernel.kind == PassKind::Reduce ? 1024 : int64_t{1} << 30;
  blocks = blocks < 1 ? 1 : blocks > cap ? cap : blocks;
  return static_cast<uint32_t>(blocks);
}

}  // namespace gyrus::kir
