// The pipeline-operation registry (gyrus/PipelineOps.def) as data, the generic
// operation's accessors, its shape effect, print and verifier.
#include "gyrus/PipelineOps.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "gyrus/Ir.h"

namespace gyrus::ir {

std::string boundsText(Bounds bounds, double lo, double hi) {
  std::string l = formatNumber(lo), h = formatNumber(hi);
  switch (bounds) {
    case Bounds::None: return {};
    case Bounds::AtLeast: return "≥ " + l;
    case Bounds::Closed: return "[" + l + ", " + h + "]";
    case Bounds::OpenLo:
    case Bounds::Within: return "(" + l + ", " + h + "]";
    case Bounds::OpenHi: return "[" + l + ", " + h + ")";
    case Bounds::Open: return "(" + l + ", " + h + ")";
    case Bounds::Sides: return "sides " + l + " .. " + h;
    case Bounds::Inside: return "[" + l + ", " + h + "]";
  }
  return {};
}

std::string checkBounds(Bounds bounds, double lo, double hi, double num, double upper, const Shape3& shape) {
  auto interval = [&](bool openLo, bool openHi) {
    bool ok = (openLo ? num > lo : num >= lo) && (openHi ? num < hi : num <= hi);
    return ok ? std::string() : "must be in " + boundsText(bounds, lo, hi);
  };
  switch (bounds) {
    case Bounds::None: return {};
    case Bounds::AtLeast: return num >= lo ? std::string() : "must be at least " + formatNumber(lo);
    case Bounds::Closed: return interval(false, false);
    case Bounds::OpenLo: return interval(true, false);
    case Bounds::OpenHi: return interval(false, true);
    case Bounds::Open: return interval(true, true);
    case Bounds::Sides:
      for (int64_t d : shape)
        if (static_cast<double>(d) < lo) return "every side must be at least " + formatNumber(lo) + " voxels";
      for (int64_t d : shape)
        if (static_cast<double>(d) > hi) return "every side must be at most " + formatNumber(hi) + " voxels";
      return {};
    case Bounds::Within: return num > lo && upper <= hi ? std::string() : "must lie within " + boundsText(bounds, lo, hi);
    case Bounds::Inside: return num >= lo && upper <= hi ? std::string() : "must lie within " + boundsText(bounds, lo, hi);
  }
  return {};
}

const std::vector<OpSpec>& pipelineOps() {
  static const std::vector<OpSpec> table = [] {
    std::vector<OpSpec> ops;
#define GYRUS_OP(NAME, DRAW, ACTS_ON, SHAPE, SHAPE_PARAM, DOC) \
  ops.push_back({#NAME, OpDraw::DRAW, OpActsOn::ACTS_ON, OpShape::SHAPE, #SHAPE_PARAM, DOC, {}});
#define GYRUS_OP_PARAM(NAME, TYPE, UNIT, DEFAULT, BOUNDS, LO, HI, FLAGS, DOC) \
  ops.back().params.push_back({#NAME, OpParamType::TYPE, UNIT, DEFAULT, Bounds::BOUNDS, LO, HI, FLAGS, DOC});
#include "gyrus/PipelineOps.def"
#undef GYRUS_OP
#undef GYRUS_OP_PARAM
    return ops;
  }();
  return table;
}

const OpSpec* findPipelineOp(std::string_view name) { return findByName(pipelineOps(), name); }

namespace {
[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

// The alternative of OpValue a parameter of `type` holds.
size_t alternativeOf(OpParamType type) {
  switch (type) {
    case OpParamType::Bool: return 1;
    case OpParamType::Shape: return 2;
    case OpParamType::Range: return 3;
    default: return 0;
  }
}

double parseNumber(std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  double x = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) fail("pipeline registry: '" + s + "' is not a number");
  return x;
}

bool endsWith(std::string_view text, std::string_view tail) {
  return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

template <class T>
const T& get(const PipelineOp& op, std::string_view param) {
  const T* v = std::get_if<T>(&op.arg(param));
  if (v == nullptr) fail(op.name + "'s parameter '" + std::string(param) + "' has another type");
  return *v;
}
}  // namespace

OpValue defaultValue(const OpParamSpec& param) {
  std::string_view text = param.defaultText;
  switch (param.type) {
    case OpParamType::Bool: return text == "true";
    case OpParamType::Shape: {
      if (text.empty()) return Shape3{0, 0, 0};
      if (!endsWith(text, "^3")) fail("pipeline registry: a shape default must be N^3");
      auto side = static_cast<int64_t>(parseNumber(text.substr(0, text.size() - 2)));
      return Shape3{side, side, side};
    }
    case OpParamType::Range: {
      if (text.empty()) return Interval{};
      size_t dots = text.find(" .. ");
      if (dots == std::string_view::npos) fail("pipeline registry: a range default must be `lo .. hi`");
      return Interval{parseNumber(text.substr(0, dots)), parseNumber(text.substr(dots + 4))};
    }
    default:
      if (text.empty()) return 0.0;
      if (endsWith(text, "%")) return parseNumber(text.substr(0, text.size() - 1)) / 100.0;
      if (endsWith(text, "mm")) return parseNumber(text.substr(0, text.size() - 2));
      return parseNumber(text);
  }
}

PipelineOp makeOp(std::string_view name, std::initializer_list<std::pair<std::string_view, OpValue>> values) {
  const OpSpec* spec = findPipelineOp(name);
  if (spec == nullptr) fail("unknown pipeline operation '" + std::string(name) + "'");
  PipelineOp op;
  op.name = std::string(name);
  for (const OpParamSpec& p : spec->params) op.args.push_back({std::string(p.name), defaultValue(p)});
  for (const auto& [param, value] : values) op.set(param, value);
  return op;
}

const OpSpec& PipelineOp::spec() const {
  const OpSpec* s = findPipelineOp(name);
  if (s == nullptr) fail("unknown pipeline operation '" + name + "'");
  return *s;
}

const OpValue& PipelineOp::arg(std::string_view param) const {
  const OpArg* a = findByName(args, param);
  if (a == nullptr) fail(name + " has no parameter '" + std::string(param) + "'");
  return a->value;
}

double PipelineOp::number(std::string_view param) const { return get<double>(*this, param); }
bool PipelineOp::flag(std::string_view param) const { return get<bool>(*this, param); }
Shape3 PipelineOp::shape(std::string_view param) const { return get<Shape3>(*this, param); }
Interval PipelineOp::interval(std::string_view param) const { return get<Interval>(*this, param); }

bool PipelineOp::isRandom() const {
  const OpSpec& s = spec();
  if (s.random()) return true;
  for (const OpParamSpec& p : s.params) {
    if ((p.flags & kDraws) == 0) continue;
    const OpArg* a = findByName(args, p.name);  // absent: its default, false
    if (const bool* on = a != nullptr ? std::get_if<bool>(&a->value) : nullptr; on != nullptr && *on) return true;
  }
  return false;
}

bool deterministicPart(const PipelineOp& op, PipelineOp& out) {
  const OpSpec& s = op.spec();
  if (s.random()) return false;
  out = op;
  for (const OpParamSpec& p : s.params)
    if ((p.flags & kDraws) != 0 && findByName(out.args, p.name) != nullptr) out.set(p.name, false);
  return true;
}

PipelineOp& PipelineOp::set(std::string_view param, OpValue value) {
  const OpParamSpec* p = spec().find(param);
  if (p == nullptr) fail(name + " has no parameter '" + std::string(param) + "'");
  if (value.index() != alternativeOf(p->type)) fail(name + "'s parameter '" + std::string(param) + "' has another type");
  auto it = std::find_if(args.begin(), args.end(), [&](const OpArg& a) { return a.name == param; });
  if (it != args.end()) {
    it->value = std::move(value);
  } else {
    args.push_back({std::string(param), std::move(value)});
  }
  return *this;
}

Shape3 resampledShape(const Shape3& shape, const std::array<double, 3>& spacing, double mm) {
  if (!(mm > 0.0) || !std::isfinite(mm)) fail("resample: need a voxel size mm > 0");
  Shape3 out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!(spacing[i] > 0.0) || !std::isfinite(spacing[i])) fail("resample: the volume's spacing must be positive");
    out[i] = std::max<int64_t>(1, std::llround(static_cast<double>(shape[i]) * spacing[i] / mm));
  }
  return out;
}

void applyShape(const PipelineOp& op, Shape3& shape, std::array<double, 3>& spacing) {
  const OpSpec& spec = op.spec();
  switch (spec.shape) {
    case OpShape::Keeps: return;
    case OpShape::Sets: shape = op.shape(spec.shapeParam); return;
    case OpShape::Resamples: {
      double mm = op.number(spec.shapeParam);
      shape = resampledShape(shape, spacing, mm);
      spacing = {mm, mm, mm};
      return;
    }
  }
}

Shape3 outputShape(const Pipeline& pipeline, Shape3 in, std::array<double, 3> spacing) {
  for (const PipelineOp& op : pipeline.ops) applyShape(op, in, spacing);
  return in;
}

std::string print(const PipelineOp& op) {
  const OpSpec* spec = findPipelineOp(op.name);
  std::string out = op.name + "(";
  for (size_t i = 0; i < op.args.size(); ++i) {
    const OpArg& a = op.args[i];
    const OpParamSpec* p = spec != nullptr ? spec->find(a.name) : nullptr;
    std::string unit = p != nullptr && p->type == OpParamType::Length ? "mm" : "";
    out += (i == 0 ? "" : ", ") + a.name + " = ";
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, double>) out += formatNumber(v) + unit;
          if constexpr (std::is_same_v<T, bool>) out += v ? "true" : "false";
          if constexpr (std::is_same_v<T, Shape3>) out += formatShape(v);
          if constexpr (std::is_same_v<T, Interval>) out += formatNumber(v.lo) + " .. " + formatNumber(v.hi);
        },
        a.value);
  }
  return out + ")";
}

namespace {
// The rules an operation's ranges cannot say, keyed by its name (run before the ranges,
// so that their messages name the relation).
struct OpRule {
  std::string_view op;
  std::string (*check)(const PipelineOp& op);
};
const OpRule kRules[] = {
    {"clip",
     [](const PipelineOp& op) {
       return op.number("lo") < op.number("hi") ? std::string() : "clip percentiles are not 0 <= lo < hi <= 1";
     }},
    {"gamma",
     [](const PipelineOp& op) {
       Interval r = op.interval("range");
       return r.lo > 0 && r.lo < r.hi ? std::string() : "a gamma range is not 0 < lo < hi";
     }},
};
}  // namespace

std::string verify(const PipelineOp& op) {
  const OpSpec* spec = findPipelineOp(op.name);
  if (spec == nullptr) return "unknown pipeline operation '" + op.name + "'";
  if (op.args.size() != spec->params.size()) return op.name + " has not one value per parameter";
  for (size_t i = 0; i < op.args.size(); ++i) {
    const OpParamSpec& p = spec->params[i];
    if (op.args[i].name != p.name || op.args[i].value.index() != alternativeOf(p.type))
      return op.name + "'s parameter " + std::to_string(i) + " is not '" + std::string(p.name) + "' of its type";
  }
  for (size_t i = 0; i < op.args.size(); ++i)
    if (const auto* r = std::get_if<Interval>(&op.args[i].value); r != nullptr && !(r->lo < r->hi))
      return op.name + "'s " + op.args[i].name + " is not a range lo < hi";
  for (const OpRule& rule : kRules)
    if (rule.op == op.name)
      if (std::string why = rule.check(op); !why.empty()) return why;
  for (size_t i = 0; i < op.args.size(); ++i) {
    const OpParamSpec& p = spec->params[i];
    const OpValue& v = op.args[i].value;
    double num = 0, upper = 0;
    Shape3 shape{0, 0, 0};
    if (const auto* x = std::get_if<double>(&v)) num = *x;
    if (const auto* r = std::get_if<Interval>(&v)) num = r->lo, upper = r->hi;
    if (const auto* s = std::get_if<Shape3>(&v)) shape = *s;
    if (std::string why = checkBounds(p.bounds, p.lo, p.hi, num, upper, shape); !why.empty())
      return op.name + "'s " + std::string(p.name) + " " + why;
  }
  return {};
}

}  // namespace gyrus::ir
