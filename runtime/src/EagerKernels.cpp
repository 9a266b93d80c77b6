// The kernel IR as eager LibTorch operations (see EagerKernels.h).
#include "EagerKernels.h"

#include <torch/nn/functional/vision.h>

#include <array>
#include <stdexcept>

namespace gyrus::rt {

namespace {

using torch::indexing::Slice;

struct Coords {
  torch::Tensor x, y, z;  ///< positions, [Z, Y, X] float each
  torch::Tensor valid;    ///< bool, [Z, Y, X]
};

float val(const kir::Operand& o, const kir::Binding& b) { return kir::valueOf(o, b.slots); }

void affine(Coords& c, const std::vector<kir::Operand>& a, const kir::Binding& b) {
  torch::Tensor p[3] = {c.x, c.y, c.z}, r[3];
  for (size_t i = 0; i < 3; ++i)
    r[i] = p[0] * val(a[4 * i], b) + p[1] * val(a[4 * i + 1], b) + p[2] * val(a[4 * i + 2], b) + val(a[4 * i + 3], b);
  c.x = r[0];
  c.y = r[1];
  c.z = r[2];
}

/// grid_sample's normalised coordinate of index position p on an axis of n voxels
/// (align_corners: -1 and 1 are the centres of the first and last voxels).
torch::Tensor normalised(const torch::Tensor& p, int64_t n) {
  return n > 1 ? p * (2.0f / static_cast<float>(n - 1)) - 1.0f : torch::zeros_like(p);
}

/// Catmull-Rom weights of the neighbours floor(p) - 1 .. floor(p) + 2 at fractions t.
std::array<torch::Tensor, 4> cubicWeights(const torch::Tensor& t) {
  return {((-0.5f * t + 1.0f) * t - 0.5f) * t, (1.5f * t - 2.5f) * t * t + 1.0f, ((-1.5f * t + 2.0f) * t + 0.5f) * t,
          (0.5f * t - 0.5f) * t * t};
}

/// Tricubic (Kernel.h's Interp::Cubic) as 64 gathers of the flattened source
/// (grid_sample's bicubic is 2-D only, and Keys' a = -0.75): neighbours outside the
/// grid count as 0, and an integral position reads the voxel itself.
torch::Tensor sampleCubic(const torch::Tensor& src, const Coords& c, const ir::Shape3& shape) {
  const torch::Tensor flat = src.contiguous().flatten();
  const torch::Tensor* p[3] = {&c.x, &c.y, &c.z};
  std::array<torch::Tensor, 3> base, t;
  std::array<std::array<torch::Tensor, 4>, 3> w;
  for (size_t a = 0; a < 3; ++a) {
    // A position that is not finite reads nothing (every neighbour outside).
    torch::Tensor q = torch::where(torch::isfinite(*p[a]), *p[a], torch::full_like(*p[a], -8.0f));
    q = torch::clamp(q, -8.0f, static_cast<float>(shape[a]) + 8.0f);
    torch::Tensor fl = torch::floor(q);
    base[a] = fl.to(torch::kLong);
    t[a] = q - fl;
    w[a] = cubicWeights(t[a]);
  }
  // Per axis, the four neighbours' clamped indices (y and z scaled to their strides)
  // and whether each is inside the source.
  std::array<std::array<torch::Tensor, 4>, 3> at, inside;
  const int64_t stride[3] = {1, shape[0], shape[0] * shape[1]};
  for (size_t a = 0; a < 3; ++a)
    for (int64_t i = 0; i < 4; ++i) {
      torch::Tensor k = base[a] + (i - 1);
      inside[a][static_cast<size_t>(i)] = (k >= 0) & (k < shape[a]);
      at[a][static_cast<size_t>(i)] = torch::clamp(k, 0, shape[a] - 1) * stride[a];
    }
  auto voxel = [&](size_t i, size_t j, size_t k) {
    torch::Tensor index = at[0][i] + at[1][j] + at[2][k];
    torch::Tensor v = flat.index_select(0, index.flatten()).view(index.sizes());
    return torch::where(inside[0][i] & inside[1][j] & inside[2][k], v, torch::zeros_like(v));
  };
  torch::Tensor planes = torch::zeros_like(t[0]);
  for (size_t k = 0; k < 4; ++k) {
    torch::Tensor rows = torch::zeros_like(t[0]);
    for (size_t j = 0; j < 4; ++j) {
      torch::Tensor row = torch::zeros_like(t[0]);
      for (size_t i = 0; i < 4; ++i) row = row + w[0][i] * voxel(i, j, k);
      rows = rows + w[1][j] * row;
    }
    planes = planes + w[2][k] * rows;
  }
  torch::Tensor integral = (t[0] == 0) & (t[1] == 0) & (t[2] == 0);
  torch::Tensor out = torch::where(integral, voxel(1, 1, 1), planes);
  return torch::where(c.valid, out, torch::zeros_like(out));
}

torch::Tensor sample(const torch::Tensor& src, const Coords& c, const ir::Shape3& shape, kir::Interp interp) {
  if (interp == kir::Interp::Cubic) return sampleCubic(src, c, shape);
  auto grid = torch::stack({normalised(c.x, shape[0]), normalised(c.y, shape[1]), normalised(c.z, shape[2])}, -1)
                  .unsqueeze(0);
  namespace F = torch::nn::functional;
  auto opts = F::GridSampleFuncOptions().padding_mode(torch::kZeros).align_corners(true);
  if (interp == kir::Interp::Linear)
    opts.mode(torch::kBilinear);
  else
    opts.mode(torch::kNearest);
  torch::Tensor out = F::grid_sample(src.unsqueeze(0).unsqueeze(0), grid, opts).squeeze(0).squeeze(0);
  return torch::where(c.valid, out, torch::zeros_like(out));
}

torch::Tensor chain(const kir::Chain& chain, torch::Tensor v, const kir::Binding& b, const Coords& unit) {
  for (const kir::PointInstr& p : chain) {
    if (kir::skipped(p, b.slots)) continue;  // the identity for this sample: no work
    auto arg = [&](size_t i) { return val(p.args[i], b); };
    torch::Tensor r;
    switch (p.op) {
      case kir::PointOp::Affine: r = v * arg(0) + arg(1); break;
      case kir::PointOp::Normalize: r = (v - arg(0)) / arg(1); break;
      case kir::PointOp::Clamp: r = torch::clamp(v, arg(0), arg(1)); break;
      case kir::PointOp::Gamma: {
        float g = arg(0), lo = arg(1), hi = arg(2), range = hi - lo;
        if (!(range > 0.0f)) {
          r = v;
          break;
        }
        torch::Tensor t = torch::clamp((v - lo) / range, 0.0f, 1.0f);
        torch::Tensor u = arg(3) != 0.0f ? 1.0f - torch::pow(1.0f - t, g) : torch::pow(t, g);
        r = lo + range * u;
        break;
      }
      case kir::PointOp::AddNoise: r = v + arg(0) * torch::randn_like(v); break;
      case kir::PointOp::MulNoise: r = v * (1.0f + arg(0) * torch::randn_like(v)); break;
      case kir::PointOp::Contrast: r = (v - arg(1)) * arg(0) + arg(1); break;
      case kir::PointOp::Bias: {
        const torch::Tensor &x = unit.x, &y = unit.y, &z = unit.z;
        torch::Tensor e = arg(0) + arg(1) * x + arg(2) * y + arg(3) * z + arg(4) * x * x + arg(5) * y * y +
                          arg(6) * z * z + arg(7) * x * y + arg(8) * x * z + arg(9) * y * z;
        r = v * torch::exp(e);
        break;
      }
    }
    v = p.headOnly ? torch::where(v != 0, r, v) : r;
  }
  return v;
}

void reduce(const kir::Reduction& r, const torch::Tensor& data, kir::Binding& b) {
  torch::Tensor values = r.nonzero ? data.masked_select(data != 0) : data.flatten();
  auto out = static_cast<size_t>(r.out);
  if (values.numel() == 0) {
    b.slots[out] = 0.0f;
    b.slots[out + 1] = r.op == kir::ReduceOp::Moments ? 1.0f : 0.0f;
    return;
  }
  switch (r.op) {
    case kir::ReduceOp::Moments: {
      torch::Tensor d = values.to(torch::kFloat64);
      double mean = d.mean().item<double>();
      double sd = std::sqrt(std::max(0.0, (d * d).mean().item<double>() - mean * mean));
      b.slots[out] = static_cast<float>(mean);
      b.slots[out + 1] = static_cast<float>(sd < 1e-12 ? 1.0 : sd);
      return;
    }
    case kir::ReduceOp::MinMax:
      b.slots[out] = values.min().item<float>();
      b.slots[out + 1] = values.max().item<float>();
      return;
    case kir::ReduceOp::Percentiles: {
      torch::Tensor q = torch::tensor({static_cast<double>(r.q0), static_cast<double>(r.q1)},
                                      torch::TensorOptions().dtype(torch::kFloat64).device(values.device()));
      torch::Tensor got = torch::quantile(values.to(torch::kFloat64), q).cpu();
      b.slots[out] = static_cast<float>(got[0].item<double>());
      b.slots[out + 1] = static_cast<float>(got[1].item<double>());
      return;
    }
  }
}

}  // namespace

void runEager(const kir::Kernel& kernel, kir::Binding& b, EagerBuffers& buffers) {
  const kir::Program& program = kernel.program;
  const ir::Shape3& out = b.out.shape;
  torch::TensorOptions f32 = torch::TensorOptions().dtype(torch::kFloat32).device(buffers.image.device());
  torch::Tensor z = torch::arange(out[2], f32), y = torch::arange(out[1], f32), x = torch::arange(out[0], f32);
  std::vector<torch::Tensor> mesh = torch::meshgrid({z, y, x}, "ij");
  Coords unit;
  auto unitOf = [](const torch::Tensor& p, int64_t n) {
    return n > 1 ? p * (2.0f / static_cast<float>(n - 1)) - 1.0f : torch::zeros_like(p);
  };
  unit.x = unitOf(mesh[2], out[0]);
  unit.y = unitOf(mesh[1], out[1]);
  unit.z = unitOf(mesh[0], out[2]);
  auto outOf = [&](kir::Buffer buf) -> torch::Tensor& {
    return buf == kir::Buffer::Image ? buffers.outImage : buf == kir::Buffer::Target ? buffers.outTarget : buffers.outMask;
  };
  for (size_t passIndex = 0; passIndex < program.passes.size(); ++passIndex) {
    const kir::Pass& pass = program.passes[passIndex];
    switch (pass.kind) {
      case kir::PassKind::Gather: {
        Coords c{mesh[2], mesh[1], mesh[0], torch::ones({out[2], out[1], out[0]}, f32.dtype(torch::kBool))};
        for (const kir::CoordInstr& ci : pass.coords) {
          switch (ci.op) {
            case kir::CoordOp::Affine: affine(c, ci.args, b); break;
            case kir::CoordOp::Clamp:
              c.x = torch::clamp(c.x, 0.0f, val(ci.args[0], b));
              c.y = torch::clamp(c.y, 0.0f, val(ci.args[1], b));
              c.z = torch::clamp(c.z, 0.0f, val(ci.args[2], b));
              break;
            case kir::CoordOp::Window: {
              const torch::Tensor* p[3] = {&c.x, &c.y, &c.z};
              for (size_t a = 0; a < 3; ++a)
                c.valid = c.valid & (*p[a] > -0.5f) & (*p[a] < val(ci.args[a], b) + 0.5f);
              break;
            }
            case kir::CoordOp::Displace: {
              const kir::FieldSpec& spec = program.fields[static_cast<size_t>(ci.field)];
              const std::vector<float>& field = b.fields[static_cast<size_t>(ci.field)];
              torch::Tensor f = torch::from_blob(const_cast<float*>(field.data()),
                                                 {3, spec.shape[2], spec.shape[1], spec.shape[0]}, torch::kFloat32)
                                    .to(f32.device());
              Coords q = c;
              affine(q, ci.args, b);
              // Clamped to the field: border padding of grid_sample.
              auto grid = torch::stack({normalised(q.x, spec.shape[0]), normalised(q.y, spec.shape[1]),
                                        normalised(q.z, spec.shape[2])},
                                       -1)
                              .unsqueeze(0);
              namespace F = torch::nn::functional;
              torch::Tensor d = F::grid_sample(f.unsqueeze(0), grid,
                                               F::GridSampleFuncOptions()
                                                   .mode(torch::kBilinear)
                                                   .padding_mode(torch::kBorder)
                                                   .align_corners(true))
                                    .squeeze(0);
              c.x = c.x + d[0];
              c.y = c.y + d[1];
              c.z = c.z + d[2];
              break;
            }
          }
        }
        for (const kir::GatherOutput& o : pass.outputs) {
          const torch::Tensor& src = o.source == kir::Buffer::Image    ? buffers.image
                                     : o.source == kir::Buffer::Target ? buffers.target
                                                                        : buffers.mask;
          outOf(o.buffer) = chain(o.chain, sample(src, c, b.in.shape, o.interp), b, unit);
        }
        break;
      }
      case kir::PassKind::Map: outOf(pass.buffer) = chain(pass.chain, outOf(pass.buffer), b, unit); break;
      case kir::PassKind::Reduce:
        if (kir::reductionNeeded(program, passIndex, b.slots)) reduce(pass.reduce, outOf(pass.buffer), b);
        break;
      case kir::PassKind::Stencil: {
        if (kir::valueOf(pass.stencil.enabled, b.slots) == 0.0f) break;
        torch::Tensor host = outOf(pass.buffer).to(torch::kCPU).contiguous().clone();
        kir::runStencil(pass.stencil, host.data_ptr<float>(), out, b.slots);
        outOf(pass.buffer) = host.to(f32.device());
        break;
      }
    }
  }
}

}  // namespace gyrus::rt
