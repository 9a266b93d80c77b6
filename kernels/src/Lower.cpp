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

void setSlot(Binding& b, int slot, double v) { b.slots[static_cast<size_t>(slot)] = static_cast<float>(v); }

// ---- the operations -------------------------------------------------------------------

Binder lowerResample(Lowerer& l, const ir::PipelineOp& op) {
  const double mm = op.number("spacing");
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
    }
    b.affines[static_cast<size_t>(affine)] = m;
    return out;
  };
}

Binder lowerCrop(Lowerer& l, const ir::PipelineOp& op) {
  const ir::Shape3 size = op.shape("size");
  int affine = l.affine();
  int window = l.coord(CoordOp::Window, "top", 3);
  return [=](const Grid& in, Binding& b) {
    Affine12 m = identityAffine();
    for (size_t a = 0; a < 3; ++a) {
      m[4 * a + 3] = static_cast<double>((in.shape[a] - size[a]) / 2);  // as rt::centerCropOrPad
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
  l.point(Buffer::Image,
          {PointOp::AddNoise, true, {Operand::constant(static_cast<float>(op.number("sigma")))}, l.index(), {}});
  return [](const Grid& in, Binding&) { return in; };
}

Binder lowerGamma(Lowerer& l, const ir::PipelineOp& op) {
  const ir::Interval range = op.interval("range");
  const uint32_t index = l.index();
  int g = l.slot("exponent");
  Reduction r;
  r.op = ReduceOp::MinMax;
  r.nonzero = true;
  int s = l.reduce(Buffer::Image, r, "minmax");
  l.point(Buffer::Image, {PointOp::Gamma,
                          true,
                          {Operand::at(g), Operand::at(s), Operand::at(s + 1), Operand::constant(0.0f)},
                          0,
                          {}});
  return [=](const Grid& in, Binding& b) {
    Draws d(b.seed, b.sample, index);
    setSlot(b, g, d.uniform(range.lo, range.hi));
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
      {"flip", lowerFlip},         {"noise", lowerNoise}, {"gamma", lowerGamma},
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
