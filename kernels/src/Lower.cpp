// Lowering a pipeline to the kernel IR, and binding it to a volume and a sample (see
// Kernel.h). Every registry operation has one entry in `lowerings()`: how it adds to the
// program (coordinate instructions, pointwise instructions, reductions, stencils) and the
// host code that fills its slots.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/Philox.h"
#include "gyrus/PipelineOps.h"

namespace gyrus::kir {

namespace {

using Affine12 = std::array<double, 12>;

Affine12 identityAffine() { return {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}; }

/// a after b: p -> a(b(p)).
Affine12 compose(const Affine12& a, const Affine12& b) {
  Affine12 r{};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += a[static_cast<size_t>(4 * i + k)] * b[static_cast<size_t>(4 * k + j)];
      r[static_cast<size_t>(4 * i + j)] = s;
    }
    double t = a[static_cast<size_t>(4 * i + 3)];
    for (int k = 0; k < 3; ++k) t += a[static_cast<size_t>(4 * i + k)] * b[static_cast<size_t>(4 * k + 3)];
    r[static_cast<size_t>(4 * i + 3)] = t;
  }
  return r;
}

double top(int64_t n) { return static_cast<double>(n - 1); }

/// A coordinate instruction of one spatial operation before affines are merged: an
/// Affine refers to the operation's affine map by id.
struct PendingCoord {
  CoordInstr instr;
  int affine = -1;
};

class Lowerer {
 public:
  explicit Lowerer(const LowerOptions& options) : options_(options) {
    Pass gather;
    gather.kind = PassKind::Gather;
    gather.outputs.push_back({Buffer::Image, Buffer::Image, options.labels ? Interp::Nearest : Interp::Linear, {}});
    if (options.target)
      gather.outputs.push_back(
          {Buffer::Target, options.targetSource ? Buffer::Target : Buffer::Image, Interp::Linear, {}});
    if (options.mask) gather.outputs.push_back({Buffer::Mask, Buffer::Mask, Interp::Nearest, {}});
    k_.program.passes.push_back(std::move(gather));
    k_.program.hasTarget = options.target;
    k_.program.hasMask = options.mask;
    open_[0] = {0, 0};
    open_[1] = {0, options.target ? 1 : -1};
  }

  const LowerOptions& options() const { return options_; }
  Kernel& kernel() { return k_; }
  uint32_t index() const { return index_; }
  const std::string& origin() const { return origin_; }
  void begin(uint32_t index, const std::string& origin) {
    index_ = index;
    origin_ = origin;
    spatial_.emplace_back();
  }

  /// The image and the target are interpolated tricubically (an operation's `cubic`): a
  /// program interpolates once, so one operation that asks for it is enough. Masks and
  /// label maps stay nearest.
  void cubic() {
    for (GatherOutput& o : k_.program.passes[0].outputs)
      if (o.interp == Interp::Linear) o.interp = Interp::Cubic;
  }

  /// A new slot named `<origin>.<name>`.
  int slot(const std::string& name) {
    k_.program.slotNames.push_back(origin_ + "#" + std::to_string(index_) + "." + name);
    return k_.program.slots++;
  }
  /// `n` consecutive slots; returns the first.
  int slots(const std::string& name, int n) {
    int first = k_.program.slots;
    for (int i = 0; i < n; ++i) slot(name + "[" + std::to_string(i) + "]");
    return first;
  }
  /// A new affine map of this operation (its id in Binding::affines), as a coordinate step.
  int affine() {
    int id = k_.affineCount++;
    PendingCoord c;
    c.instr.op = CoordOp::Affine;
    c.instr.origin = origin_;
    c.affine = id;
    spatial_.back().push_back(std::move(c));
    return id;
  }
  /// A coordinate step with `n` slot operands (first slot returned).
  int coord(CoordOp op, const std::string& name, int n) {
    int first = slots(name, n);
    PendingCoord c;
    c.instr.op = op;
    c.instr.origin = origin_;
    for (int i = 0; i < n; ++i) c.instr.args.push_back(Operand::at(first + i));
    spatial_.back().push_back(std::move(c));
    return first;
  }

  /// A displacement step: a new field of `shape` control points and the 12 slots of its
  /// map q = M p + t (first slot returned); `field` receives the field's index.
  int displace(const ir::Shape3& shape, int& field) {
    field = static_cast<int>(k_.program.fields.size());
    k_.program.fields.push_back({shape, origin_});
    int first = coord(CoordOp::Displace, "field_map", 12);
    spatial_.back().back().instr.field = field;
    return first;
  }

  /// Appends `instr` to the open chain of `buffer` (Image or Target).
  void point(Buffer buffer, PointInstr instr) {
    instr.origin = origin_;
    chainOf(buffer).push_back(std::move(instr));
  }
  /// A reduction of `buffer` into two new slots (returned: the first), after which the
  /// buffer's chain continues in a new map pass.
  int reduce(Buffer buffer, Reduction r, const std::string& name) {
    r.out = slots(name, 2);
    Pass pass;
    pass.kind = PassKind::Reduce;
    pass.buffer = buffer;
    pass.reduce = r;
    k_.program.passes.push_back(std::move(pass));
    openMap(buffer);
    return r.out;
  }
  void stencil(Buffer buffer, Stencil s) {
    s.origin = origin_;
    Pass pass;
    pass.kind = PassKind::Stencil;
    pass.buffer = buffer;
    pass.stencil = std::move(s);
    k_.program.passes.push_back(std::move(pass));
    openMap(buffer);
  }
  /// The buffers a deterministic intensity operation acts on (the image, and the target).
  std::vector<Buffer> deterministicBuffers() const {
    if (options_.target) return {Buffer::Image, Buffer::Target};
    return {Buffer::Image};
  }

  /// Finishes the program: the coordinate program (spatial operations last to first,
  /// adjacent affine maps merged into one instruction) and empty map passes dropped.
  Kernel finish() {
    std::vector<CoordInstr>& coords = k_.program.passes[0].coords;
    std::vector<int> run;  // affine ids of the current run
    std::string runOrigin;
    auto flush = [&] {
      if (run.empty()) return;
      Kernel::Composite c;
      c.affines = run;
      c.slot = k_.program.slots;
      for (int i = 0; i < 12; ++i) {
        k_.program.slotNames.push_back("affine(" + runOrigin + ")[" + std::to_string(i) + "]");
        ++k_.program.slots;
      }
      CoordInstr instr;
      instr.op = CoordOp::Affine;
      instr.origin = runOrigin;
      for (int i = 0; i < 12; ++i) instr.args.push_back(Operand::at(c.slot + i));
      coords.push_back(std::move(instr));
      k_.composites.push_back(std::move(c));
      run.clear();
      runOrigin.clear();
    };
    for (auto op = spatial_.rbegin(); op != spatial_.rend(); ++op)
      for (PendingCoord& c : *op) {
        if (c.affine >= 0) {
          run.push_back(c.affine);
          runOrigin += (runOrigin.empty() ? "" : " ") + c.instr.origin;
          continue;
        }
        flush();
        coords.push_back(std::move(c.instr));
      }
    flush();
    auto& passes = k_.program.passes;
    passes.erase(std::remove_if(passes.begin() + 1, passes.end(),
                                [](const Pass& p) { return p.kind == PassKind::Map && p.chain.empty(); }),
                 passes.end());
    return std::move(k_);
  }

 private:
  struct Open {
    int pass = 0;    ///< the pass whose chain is open
    int output = 0;  ///< the gather's output index, or -1 (a map pass's chain)
  };
  Chain& chainOf(Buffer buffer) {
    Open& o = open_[buffer == Buffer::Target ? 1 : 0];
    Pass& p = k_.program.passes[static_cast<size_t>(o.pass)];
    return o.output >= 0 ? p.outputs[static_cast<size_t>(o.output)].chain : p.chain;
  }
  void openMap(Buffer buffer) {
    Pass pass;
    pass.kind = PassKind::Map;
    pass.buffer = buffer;
    k_.program.passes.push_back(std::move(pass));
    open_[buffer == Buffer::Target ? 1 : 0] = {static_cast<int>(k_.program.passes.size()) - 1, -1};
  }

  LowerOptions options_;
  Kernel k_;
  std::array<Open, 2> open_{};
  std::vector<std::vector<PendingCoord>> spatial_;
  uint32_t index_ = 0;
  std::string origin_;
};

using Binder = std::function<Grid(const Grid&, Binding&)>;

/// The rotation R = Rz Ry Rx by the angles (radians) about x, y and z.
std::array<std::array<double, 3>, 3> rotationMatrix(const std::array<double, 3>& r) {
  const double cx = std::cos(r[0]), sx = std::sin(r[0]), cy = std::cos(r[1]), sy = std::sin(r[1]);
  const double cz = std::cos(r[2]), sz = std::sin(r[2]);
  using M = std::array<std::array<double, 3>, 3>;
  M rx{{{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}}}, ry{{{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}}};
  M rz{{{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}}};
  auto mul = [](const M& a, const M& b) {
    M c{};
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 3; ++j)
        for (size_t k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
    return c;
  };
  return mul(rz, mul(ry, rx));
}

}  // namespace

double elasticSd(double alpha, double sigma) {
  // scipy's kernel: radius int(4 sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalised.
  const auto radius = static_cast<int>(4.0 * sigma + 0.5);
  double sum = 0, sumSq = 0;
  for (int x = -radius; x <= radius; ++x) sum += std::exp(-0.5 * x * x / (sigma * sigma));
  for (int x = -radius; x <= radius; ++x) {
    double w = std::exp(-0.5 * x * x / (sigma * sigma)) / sum;
    sumSq += w * w;
  }
  // U(-1, 1) has variance 1/3; the separable 3-D kernel's sum of squares is the 1-D one cubed.
  return alpha * std::sqrt(sumSq * sumSq * sumSq / 3.0);
}

void elasticField(Draws& d, const ir::Shape3& points, const std::array<double, 3>& spacing, double alpha, double sigma,
                  std::vector<float>& out) {
  // Per axis, the Cholesky factor of the control points' correlation exp(-r^2 / (4 sigma^2))
  // (a Gaussian filter of white noise correlates as a Gaussian of twice the variance), with
  // 1e-9 on the diagonal (the matrix is near-singular for close points).
  std::array<std::vector<double>, 3> chol;
  for (size_t a = 0; a < 3; ++a) {
    const auto n = static_cast<size_t>(points[a]);
    std::vector<double> r(n * n), l(n * n, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) {
        double dist = (static_cast<double>(i) - static_cast<double>(j)) * spacing[a];
        r[i * n + j] = std::exp(-dist * dist / (4.0 * sigma * sigma)) + (i == j ? 1e-9 : 0.0);
      }
    for (size_t j = 0; j < n; ++j) {
      double diag = r[j * n + j];
      for (size_t k = 0; k < j; ++k) diag -= l[j * n + k] * l[j * n + k];
      l[j * n + j] = std::sqrt(std::max(diag, 1e-12));
      for (size_t i = j + 1; i < n; ++i) {
        double v = r[i * n + j];
        for (size_t k = 0; k < j; ++k) v -= l[i * n + k] * l[j * n + k];
        l[i * n + j] = v / l[j * n + j];
      }
    }
    chol[a] = std::move(l);
  }
  const double sd = elasticSd(alpha, sigma);
  const auto nx = static_cast<size_t>(points[0]), ny = static_cast<size_t>(points[1]), nz = static_cast<size_t>(points[2]);
  const size_t count = nx * ny * nz;
  std::vector<double> w(count), t(count);
  for (size_t c = 0; c < 3; ++c) {
    for (double& x : w) x = d.normal();
    // (Lz ⊗ Ly ⊗ Lx) w, one axis at a time.
    auto apply = [&](size_t axis, size_t n, size_t stride) {
      const std::vector<double>& l = chol[axis];
      for (size_t idx = 0; idx < count; ++idx) {
        size_t i = (idx / stride) % n, base = idx - i * stride;
        double v = 0;
        for (size_t m = 0; m <= i; ++m) v += l[i * n + m] * w[base + m * stride];
        t[idx] = v;
      }
      std::swap(w, t);
    };
    apply(0, nx, 1);
    apply(1, ny, nx);
    apply(2, nz, nx * ny);
    for (size_t i = 0; i < count; ++i) out[c * count + i] = static_cast<float>(sd * w[i]);
  }
}

namespace {

void setSlot(Binding& b, int slot, double v) { b.slots[static_cast<size_t>(slot)] = static_cast<float>(v); }

// ---- the operations -------------------------------------------------------------------

/// An operation's `cubic` (a parameter added later: absent from older operations).
void interpolation(Lowerer& l, const ir::PipelineOp& op) {
  if (op.spec().find("cubic") != nullptr && op.flag("cubic")) l.cubic();
}

Binder lowerResample(Lowerer& l, const ir::PipelineOp& op) {
  const double mm = op.number("spacing");
  interpolation(l, op);
  // Outside the resampled grid there is nothing (a later rotation or scaling that moves a
  // voxel there reads 0, as op by op); inside it, positions clamp to the source (edge
  // values extend by half a voxel, as rt::resample).
  int window = l.coord(CoordOp::Window, "out_top", 3);
  int affine = l.affine();
  int clamp = l.coord(CoordOp::Clamp, "top", 3);
  return [=](const Grid& in, Binding& b) {
    Grid out;
    out.shape = ir::resampledShape(in.shape, in.spacing, mm);
    out.spacing = {mm, mm, mm};
    Affine12 m{};
    for (size_t a = 0; a < 3; ++a) {
      // As rt::resample: output voxel j samples c_in + (j - c_out) * mm / spacing, except
      // that an axis whose grid does not change maps exactly onto itself.
      bool same = in.shape[a] == out.shape[a] && in.spacing[a] == mm;
      double step = same ? 1.0 : mm / in.spacing[a];
      double cIn = 0.5 * top(in.shape[a]), cOut = 0.5 * top(out.shape[a]);
      m[4 * a + a] = step;
      m[4 * a + 3] = same ? 0.0 : cIn - cOut * step;
      setSlot(b, clamp + static_cast<int>(a), top(in.shape[a]));
      setSlot(b, window + static_cast<int>(a), top(out.shape[a]));
    }
    b.affines[static_cast<size_t>(affine)] = m;
    return out;
  };
}

Binder lowerCrop(Lowerer& l, const ir::PipelineOp& op) {
  const ir::Shape3 size = op.shape("size");
  const bool random = op.flag("random");
  const uint32_t index = l.index();
  int affine = l.affine();
  int window = l.coord(CoordOp::Window, "top", 3);
  return [=](const Grid& in, Binding& b) {
    Affine12 m = identityAffine();
    Draws d(b.seed, b.sample, index);
    for (size_t a = 0; a < 3; ++a) {
      // The centre (as rt::centerCropOrPad), or a whole offset uniform over [0, n - size]
      // (the patch inside the field of view); a side shorter than the patch stays
      // centred (zero-padded). One draw per axis whatever the sides.
      const int64_t slack = in.shape[a] - size[a];
      const int64_t drawn = random ? d.integer(0, std::max<int64_t>(slack, 0)) : 0;
      m[4 * a + 3] = static_cast<double>(random && slack >= 0 ? drawn : slack / 2);
      setSlot(b, window + static_cast<int>(a), top(in.shape[a]));
    }
    b.affines[static_cast<size_t>(affine)] = m;
    return Grid{size, in.spacing};
  };
}

Binder lowerFlip(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const uint32_t index = l.index();
  int affine = l.affine();
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    Affine12 m = identityAffine();
    for (size_t a = 0; a < 3; ++a)
      if (d.bernoulli(p)) {
        m[4 * a + a] = -1.0;
        m[4 * a + 3] = top(in.shape[a]);
      }
    b.affines[static_cast<size_t>(affine)] = m;
    return in;
  };
}

Binder lowerZscore(Lowerer& l, const ir::PipelineOp& op) {
  const bool nonzero = op.flag("nonzero");
  for (Buffer buffer : l.deterministicBuffers()) {
    Reduction r;
    r.op = ReduceOp::Moments;
    r.nonzero = nonzero;
    int s = l.reduce(buffer, r, buffer == Buffer::Target ? "target.moments" : "moments");
    l.point(buffer, {PointOp::Normalize, nonzero, {Operand::at(s), Operand::at(s + 1)}, 0, {}});
  }
  return [](const Grid& in, Binding&) { return in; };
}

Binder lowerClip(Lowerer& l, const ir::PipelineOp& op) {
  for (Buffer buffer : l.deterministicBuffers()) {
    Reduction r;
    r.op = ReduceOp::Percentiles;
    r.nonzero = true;
    r.q0 = static_cast<float>(op.number("lo"));
    r.q1 = static_cast<float>(op.number("hi"));
    int s = l.reduce(buffer, r, buffer == Buffer::Target ? "target.percentiles" : "percentiles");
    l.point(buffer, {PointOp::Clamp, true, {Operand::at(s), Operand::at(s + 1)}, 0, {}});
  }
  return [](const Grid& in, Binding&) { return in; };
}

Binder lowerNoise(Lowerer& l, const ir::PipelineOp& op) {
  const double sigma = op.number("sigma"), sigmaHi = std::max(sigma, op.number("sigma_hi")), p = op.number("p");
  const uint32_t index = l.index();
  // A fixed sigma that always applies stays a constant (the kernel files written before
  // `p` and `sigma_hi` existed keep their text and hash); otherwise it is drawn per sample.
  if (p >= 1.0 && sigmaHi <= sigma) {
    l.point(Buffer::Image, {PointOp::AddNoise, true, {Operand::constant(static_cast<float>(sigma))}, index, {}});
    return [](const Grid& in, Binding&) { return in; };
  }
  int s = l.slot("sigma");
  l.point(Buffer::Image, {PointOp::AddNoise, true, {Operand::at(s)}, index, {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    double value = d.uniform(sigma, sigmaHi);
    setSlot(b, s, d.bernoulli(p) ? value : 0.0);
    return in;
  };
}

Binder lowerGamma(Lowerer& l, const ir::PipelineOp& op) {
  const ir::Interval range = op.interval("range");
  const double p = op.number("p"), invertP = op.number("invert");
  const bool halves = op.flag("halves");
  const uint32_t index = l.index();
  int g = l.slot("exponent");
  int inv = invertP > 0.0 ? l.slot("invert") : -1;
  Reduction r;
  r.op = ReduceOp::MinMax;
  r.nonzero = true;
  int s = l.reduce(Buffer::Image, r, "minmax");
  l.point(Buffer::Image, {PointOp::Gamma,
                          true,
                          {Operand::at(g), Operand::at(s), Operand::at(s + 1),
                           inv >= 0 ? Operand::at(inv) : Operand::constant(0.0f)},
                          0,
                          {}});
  return [=](const Grid& in, Binding& b) {
    // The exponent's uniform comes first (as before `p`, `invert` and `halves` existed).
    Draws d(b.seed, b.sample, index);
    double u = d.uniform(), exponent = range.lo + (range.hi - range.lo) * u;
    if (halves && range.lo < 1.0 && range.hi > 1.0)
      exponent = d.bernoulli(0.5) ? range.lo + (1.0 - range.lo) * u : 1.0 + (range.hi - 1.0) * u;
    bool fires = p >= 1.0 || d.bernoulli(p);
    bool inverted = invertP > 0.0 && d.bernoulli(invertP);
    setSlot(b, g, fires ? exponent : 1.0);
    if (inv >= 0) setSlot(b, inv, fires && inverted ? 1.0 : 0.0);
    return in;
  };
}

/// The map from an operation's output index to its input's, p -> A (p - c) + c, c the
/// grid's centre ((n - 1) / 2 per axis).
Affine12 aboutCentre(const std::array<std::array<double, 3>, 3>& a, const Grid& grid) {
  Affine12 m{};
  for (size_t i = 0; i < 3; ++i) {
    double t = 0.5 * top(grid.shape[i]);
    for (size_t j = 0; j < 3; ++j) {
      m[4 * i + j] = a[i][j];
      t -= a[i][j] * 0.5 * top(grid.shape[j]);
    }
    m[4 * i + 3] = t;
  }
  return m;
}

Binder lowerRotate(Lowerer& l, const ir::PipelineOp& op) {
  interpolation(l, op);
  const double p = op.number("p"), axisP = op.number("axis_p");
  const ir::Interval angle = op.interval("angle");
  const uint32_t index = l.index();
  int affine = l.affine();
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    std::array<double, 3> radians{};
    for (double& r : radians) {
      bool axis = d.bernoulli(axisP);
      double deg = d.uniform(angle.lo, angle.hi);
      r = fires && axis ? deg * 3.14159265358979323846 / 180.0 : 0.0;
    }
    b.affines[static_cast<size_t>(affine)] = aboutCentre(rotationMatrix(radians), in);
    return in;
  };
}

Binder lowerScale(Lowerer& l, const ir::PipelineOp& op) {
  interpolation(l, op);
  const double p = op.number("p");
  const ir::Interval factor = op.interval("factor");
  const uint32_t index = l.index();
  int affine = l.affine();
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    double f = d.uniform(factor.lo, factor.hi);
    if (!fires) f = 1.0;
    b.affines[static_cast<size_t>(affine)] = aboutCentre({{{f, 0, 0}, {0, f, 0}, {0, 0, f}}}, in);
    return in;
  };
}

Binder lowerElastic(Lowerer& l, const ir::PipelineOp& op) {
  interpolation(l, op);
  const double p = op.number("p");
  const ir::Interval alpha = op.interval("alpha"), sigma = op.interval("sigma");
  const uint32_t index = l.index();
  const ir::Shape3 points{kElasticPoints, kElasticPoints, kElasticPoints};
  int field = -1;
  int map = l.displace(points, field);
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    double a = d.uniform(alpha.lo, alpha.hi), s = d.uniform(sigma.lo, sigma.hi);
    // q = p / h: the control points span the grid, h = (n - 1) / (points - 1) voxels apart.
    std::array<double, 3> spacing{};
    for (size_t i = 0; i < 3; ++i) {
      spacing[i] = in.shape[i] > 1 ? top(in.shape[i]) / static_cast<double>(points[i] - 1) : 1.0;
      for (size_t j = 0; j < 4; ++j) setSlot(b, map + static_cast<int>(4 * i + j), i == j ? 1.0 / spacing[i] : 0.0);
    }
    std::vector<float>& values = b.fields[static_cast<size_t>(field)];
    values.assign(static_cast<size_t>(3 * points[0] * points[1] * points[2]), 0.0f);
    if (fires) elasticField(d, points, spacing, a, s, values);
    return in;
  };
}

Binder lowerMulNoise(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const ir::Interval sigma = op.interval("sigma");
  const uint32_t index = l.index();
  int s = l.slot("sigma");
  l.point(Buffer::Image, {PointOp::MulNoise, false, {Operand::at(s)}, index, {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    double value = d.uniform(sigma.lo, sigma.hi);
    setSlot(b, s, fires ? value : 0.0);
    return in;
  };
}

/// A stencil of `kind` on the image with `n` argument slots and an `enabled` slot;
/// returns the first argument slot (the enabled slot is the one after the arguments).
int imageStencil(Lowerer& l, StencilOp kind, const std::string& name, int n) {
  Stencil st;
  st.op = kind;
  int first = l.slots(name, n);
  for (int i = 0; i < n; ++i) st.args.push_back(Operand::at(first + i));
  st.enabled = Operand::at(l.slot("enabled"));
  l.stencil(Buffer::Image, std::move(st));
  return first;
}

Binder lowerBlur(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p"), pChannel = op.number("p_channel");
  const ir::Interval sigma = op.interval("sigma");
  const uint32_t index = l.index();
  int s = imageStencil(l, StencilOp::Blur, "sigma", 3);
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    // Both drawn whatever the first gives: the same number of draws whether it fires.
    const bool sample = d.bernoulli(p), channel = d.bernoulli(pChannel);
    bool fires = sample && channel;
    double value = d.uniform(sigma.lo, sigma.hi);
    for (int i = 0; i < 3; ++i) setSlot(b, s + i, fires ? value : 0.0);
    setSlot(b, s + 3, fires && value > 0.0 ? 1.0 : 0.0);
    return in;
  };
}

Binder lowerGhosting(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const ir::Interval every = op.interval("every"), alpha = op.interval("alpha");
  const uint32_t index = l.index();
  int s = imageStencil(l, StencilOp::Ghost, "axis_every_alpha", 3);
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    int64_t axis = d.integer(0, 2);
    const auto kLo = static_cast<int64_t>(std::ceil(every.lo));
    int64_t k = d.integer(kLo, std::max(kLo, static_cast<int64_t>(std::floor(every.hi))));
    double a = d.uniform(alpha.lo, alpha.hi);
    setSlot(b, s, static_cast<double>(axis));
    setSlot(b, s + 1, static_cast<double>(std::max<int64_t>(k, 1)));
    setSlot(b, s + 2, a);
    setSlot(b, s + 3, fires ? 1.0 : 0.0);
    return in;
  };
}

Binder lowerRinging(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const ir::Interval cut = op.interval("cut");
  const uint32_t index = l.index();
  int s = imageStencil(l, StencilOp::Ring, "axis_cut", 2);
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    int64_t axis = d.integer(0, 2);
    double c = d.uniform(cut.lo, cut.hi);
    setSlot(b, s, static_cast<double>(axis));
    setSlot(b, s + 1, c);
    setSlot(b, s + 2, fires && c < 1.0 ? 1.0 : 0.0);
    return in;
  };
}

Binder lowerLowres(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p"), pChannel = op.number("p_channel"), axisP = op.number("axis_p");
  const ir::Interval zoom = op.interval("zoom");
  const uint32_t index = l.index();
  int s = imageStencil(l, StencilOp::LowRes, "zoom", 3);
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    // Both drawn whatever the first gives: the same number of draws whether it fires.
    const bool sample = d.bernoulli(p), channel = d.bernoulli(pChannel);
    bool fires = sample && channel;
    bool any = false;
    for (int i = 0; i < 3; ++i) {
      bool axis = d.bernoulli(axisP);
      double z = d.uniform(zoom.lo, zoom.hi);
      bool zoomed = fires && axis && z < 1.0;
      setSlot(b, s + i, zoomed ? z : 1.0);
      any = any || zoomed;
    }
    setSlot(b, s + 3, any ? 1.0 : 0.0);
    return in;
  };
}

Binder lowerBiasField(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p"), strength = op.number("strength");
  const uint32_t index = l.index();
  int s = l.slots("coefficients", 10);
  std::vector<Operand> args;
  for (int i = 0; i < 10; ++i) args.push_back(Operand::at(s + i));
  l.point(Buffer::Image, {PointOp::Bias, false, std::move(args), 0, {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    std::array<double, 3> c{};
    for (double& x : c) x = d.uniform(-1.0, 1.0);
    // exp(-strength/4 · Σ (u - c)^2), u in [-1, 1]: (X - x0) / n = (u - c) / 2 for a voxel
    // index X and a centre x0 in the volume.
    std::array<double, 10> k{};
    if (fires) {
      const double q = strength / 4.0;
      for (size_t a = 0; a < 3; ++a) {
        k[0] -= q * c[a] * c[a];
        k[1 + a] = 2.0 * q * c[a];
        k[4 + a] = -q;
      }
    }
    for (int i = 0; i < 10; ++i) setSlot(b, s + i, k[static_cast<size_t>(i)]);
    return in;
  };
}

Binder lowerBrightness(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const ir::Interval factor = op.interval("factor");
  const uint32_t index = l.index();
  int s = l.slot("factor");
  l.point(Buffer::Image, {PointOp::Affine, false, {Operand::at(s), Operand::constant(0.0f)}, 0, {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    double f = d.uniform(factor.lo, factor.hi);
    setSlot(b, s, fires ? f : 1.0);
    return in;
  };
}

Binder lowerContrast(Lowerer& l, const ir::PipelineOp& op) {
  const double p = op.number("p");
  const ir::Interval factor = op.interval("factor");
  const uint32_t index = l.index();
  int f = l.slot("factor");
  Reduction moments;
  moments.op = ReduceOp::Moments;
  moments.nonzero = true;
  int m = l.reduce(Buffer::Image, moments, "moments");
  Reduction range;
  range.op = ReduceOp::MinMax;
  range.nonzero = true;
  int r = l.reduce(Buffer::Image, range, "minmax");
  l.point(Buffer::Image, {PointOp::Contrast, true, {Operand::at(f), Operand::at(m)}, 0, {}});
  l.point(Buffer::Image, {PointOp::Clamp, true, {Operand::at(r), Operand::at(r + 1)}, 0, {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    bool fires = d.bernoulli(p);
    double value = d.uniform(factor.lo, factor.hi);
    setSlot(b, f, fires ? value : 1.0);
    return in;
  };
}

struct OpLowering {
  std::string_view name;
  Binder (*lower)(Lowerer&, const ir::PipelineOp&);
};

const std::vector<OpLowering>& lowerings() {
  static const std::vector<OpLowering> table = {
      {"resample", lowerResample}, {"crop", lowerCrop},   {"zscore", lowerZscore}, {"clip", lowerClip},
      {"flip", lowerFlip},         {"noise", lowerNoise}, {"gamma", lowerGamma},   {"elastic", lowerElastic},
      {"rotate", lowerRotate},     {"scale", lowerScale}, {"blur", lowerBlur},     {"mul_noise", lowerMulNoise},
      {"ghosting", lowerGhosting}, {"ringing", lowerRinging}, {"lowres", lowerLowres},
      {"bias_field", lowerBiasField}, {"brightness", lowerBrightness}, {"contrast", lowerContrast},
  };
  return table;
}

}  // namespace

namespace {
/// The index of the first operation that must start a new segment (a spatial one after
/// an intensity one), or ops.size().
size_t segmentEnd(const std::vector<ir::PipelineOp>& ops, size_t begin) {
  bool intensity = false;
  for (size_t i = begin; i < ops.size(); ++i) {
    const ir::OpSpec* spec = ir::findPipelineOp(ops[i].name);
    bool spatial = spec != nullptr && spec->spatial();
    if (spatial && intensity) return i;
    if (!spatial) intensity = true;
  }
  return ops.size();
}
}  // namespace

bool canLower(const ir::PipelineOp& op) { return ir::findByName(lowerings(), op.name) != nullptr; }

bool isOneSegment(const ir::Pipeline& pipeline) { return segmentEnd(pipeline.ops, 0) == pipeline.ops.size(); }

std::vector<Kernel> lowerSegments(const ir::Pipeline& pipeline, const LowerOptions& options) {
  std::vector<Kernel> segments;
  size_t begin = 0;
  do {
    size_t end = segmentEnd(pipeline.ops, begin);
    ir::Pipeline part;
    part.ops.assign(pipeline.ops.begin() + static_cast<std::ptrdiff_t>(begin),
                    pipeline.ops.begin() + static_cast<std::ptrdiff_t>(end));
    LowerOptions o = options;
    o.firstOp = options.firstOp + static_cast<uint32_t>(begin);
    o.targetSource = options.targetSource || begin > 0;
    segments.push_back(lower(part, o));
    begin = end;
  } while (begin < pipeline.ops.size());
  return segments;
}

Kernel lower(const ir::Pipeline& pipeline, const LowerOptions& options) {
  if (!isOneSegment(pipeline))
    throw std::invalid_argument("kernel lowering: a spatial operation after an intensity one needs lowerSegments");
  Lowerer l(options);
  std::vector<Binder> binders;
  for (size_t i = 0; i < pipeline.ops.size(); ++i) {
    const ir::PipelineOp& op = pipeline.ops[i];
    const OpLowering* lowering = ir::findByName(lowerings(), op.name);
    if (lowering == nullptr)
      throw std::invalid_argument("kernel lowering: no lowering of the pipeline operation '" + op.name + "'");
    if (options.labels && !op.spec().spatial()) continue;  // a mask keeps its values
    l.begin(options.firstOp + static_cast<uint32_t>(i), op.name);
    binders.push_back(lowering->lower(l, op));
  }
  Kernel k = l.finish();
  k.binders = std::move(binders);
  k.pipeline = pipeline;
  return k;
}

Binding bind(const Kernel& kernel, const Grid& in, uint64_t seed, uint32_t sample) {
  for (size_t a = 0; a < 3; ++a)
    if (in.shape[a] <= 0 || !(in.spacing[a] > 0))
      throw std::invalid_argument("kernel bind: the source needs a positive shape and voxel size");
  Binding b;
  b.in = in;
  b.seed = seed;
  b.sample = sample;
  b.slots.assign(static_cast<size_t>(kernel.program.slots), 0.0f);
  b.fields.resize(kernel.program.fields.size());
  b.affines.assign(static_cast<size_t>(kernel.affineCount), identityAffine());
  Grid grid = in;
  for (const auto& binder : kernel.binders) grid = binder(grid, b);
  b.out = grid;
  for (const Kernel::Composite& c : kernel.composites) {
    // The instruction maps the output's index to the source's: the last operation's
    // map first (c.affines lists them from the output back).
    Affine12 m = identityAffine();
    for (int id : c.affines) m = compose(b.affines[static_cast<size_t>(id)], m);
    for (int i = 0; i < 12; ++i) setSlot(b, c.slot + i, m[static_cast<size_t>(i)]);
  }
  return b;
}

}  // namespace gyrus::kir
