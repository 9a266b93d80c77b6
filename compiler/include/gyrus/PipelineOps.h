// The pipeline-operation registry (PipelineOps.def) as data, and the generic IR of one
// operation: its registry name and its named parameter values. The checker builds
// operations from their bound arguments, the JSON writer and reader, the hash material,
// the print and the verifier walk the registry's parameters, and the runtime looks its
// reference implementation up by name: an operation is declared in one place.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gyrus::ir {

/// A 3-D size in voxels, in (x, y, z) order.
using Shape3 = std::array<int64_t, 3>;

/// How a parameter's value is range-checked (Signatures.def, PipelineOps.def):
/// None, AtLeast (>= lo), Closed [lo, hi], OpenLo (lo, hi], OpenHi [lo, hi), Open
/// (lo, hi), Sides (every side of a shape in [lo, hi]), Within (a range inside (lo, hi]),
/// Inside (a range inside [lo, hi]).
enum class Bounds { None, AtLeast, Closed, OpenLo, OpenHi, Open, Sides, Within, Inside };

/// The flags of a signature parameter (Signatures.def; a pipeline operation's parameter
/// is at most kRequired).
enum ParamFlag : unsigned {
  kRequired = 1u << 0,      ///< must be given (no default)
  kDescribed = 1u << 1,     ///< the default is prose for the reference, not a value
  kFinetuneOnly = 1u << 2,  ///< evaluate: an argument of the fine-tuning protocol only
  kOrSite = 1u << 3,        ///< evaluate's test: a fraction, or a site
  kMetrics = 1u << 4,       ///< a list of metrics (read by readMetrics, not coerced)
  kLater = 1u << 5,         ///< a pipeline operation's parameter added after stages were
                            ///< hashed: in the JSON and the hash only when not its default
  kMachinePath = 1u << 6,   ///< a folder data set's root: may be root(...), a folder of the site
                            ///< configuration (no other slot may, so no stage hash sees one)
  kDraws = 1u << 7,         ///< a pipeline operation's Bool parameter that, when true, makes
                            ///< a deterministic operation random (crop's `random`)
  kOrWeights = 1u << 8,     ///< pretrain's init: a pretrain stage, or weights("file")
};

/// The range as the reference writes it ("[1, 8]", "≥ 0"); empty when unchecked.
std::string boundsText(Bounds bounds, double lo, double hi);
/// An empty string when a value is within the bounds, else the reason ("must be in
/// [1, 8]"). `num` is a number's value or a range's lower end, `upper` a range's upper
/// end, `shape` a shape's sides.
std::string checkBounds(Bounds bounds, double lo, double hi, double num, double upper, const Shape3& shape);

/// The entry of `table` called `name`, or nullptr: the registry's operations, their
/// parameters and values, the runtime's implementations.
template <class T>
const T* findByName(const std::vector<T>& table, std::string_view name) {
  for (const T& entry : table)
    if (entry.name == name) return &entry;
  return nullptr;
}

/// The types a pipeline operation's parameter may have (the checker's types of the same
/// names): Float, Fraction and Length hold a number, Shape a shape, Bool a flag, Range
/// an interval.
enum class OpParamType { Float, Fraction, Length, Shape, Bool, Range };
/// Random operations are drawn anew for every view of every sample (pretraining only);
/// the deterministic prefix of a pipeline may be computed once and cached.
enum class OpDraw { Deterministic, Random };
/// Spatial operations move voxels (they act on masks and reconstruction targets too);
/// intensity operations change values only.
enum class OpActsOn { Spatial, Intensity };
/// An operation's effect on the grid: none; the shape becomes a Shape parameter; or the
/// voxels become isotropic of a Length parameter, each side scaled by its spacing.
enum class OpShape { Keeps, Sets, Resamples };

struct OpParamSpec {
  std::string_view name;
  OpParamType type = OpParamType::Float;
  std::string_view unit;         ///< for the reference
  std::string_view defaultText;  ///< a gyrus literal; empty: none (the parameter is required)
  Bounds bounds = Bounds::None;
  double lo = 0, hi = 0;
  unsigned flags = 0;
  std::string_view doc;
};

struct OpSpec {
  std::string_view name;
  OpDraw draw = OpDraw::Deterministic;
  OpActsOn actsOn = OpActsOn::Intensity;
  OpShape shape = OpShape::Keeps;
  std::string_view shapeParam;  ///< the parameter that Sets or Resamples reads
  std::string_view doc;
  std::vector<OpParamSpec> params;
  bool random() const { return draw == OpDraw::Random; }
  bool spatial() const { return actsOn == OpActsOn::Spatial; }
  const OpParamSpec* find(std::string_view param) const { return findByName(params, param); }
};

/// Every pipeline operation, in the registry's order.
const std::vector<OpSpec>& pipelineOps();
/// The operation called `name`, or nullptr.
const OpSpec* findPipelineOp(std::string_view name);

/// A range of numbers `lo .. hi`.
struct Interval {
  double lo = 0, hi = 0;
  bool operator==(const Interval&) const = default;
};
/// A parameter's value: a number (Float, Fraction, Length), a flag, a shape or a range.
using OpValue = std::variant<double, bool, Shape3, Interval>;
struct OpArg {
  std::string name;
  OpValue value;
};

/// One operation of a pipeline: its registry name and its parameters' values, one per
/// parameter of its registry entry, in the entry's order (ir::verify checks this).
/// The accessors throw std::invalid_argument for an unknown operation or parameter, or
/// a value of another type.
struct PipelineOp {
  std::string name;
  std::vector<OpArg> args;

  const OpSpec& spec() const;
  /// Drawn anew for every view: a random operation, or a deterministic one with a kDraws
  /// parameter set (`crop(96^3, random = true)`).
  bool isRandom() const;
  const OpValue& arg(std::string_view param) const;
  double number(std::string_view param) const;
  bool flag(std::string_view param) const;
  Shape3 shape(std::string_view param) const;
  Interval interval(std::string_view param) const;
  /// Sets a parameter's value (which must have its type); returns *this.
  PipelineOp& set(std::string_view param, OpValue value);
};

/// What an operation does without its draws, for evaluation (which sees the
/// deterministic part of a pipeline): a deterministic operation itself; one that is
/// random through a kDraws parameter with those parameters off (a random crop becomes the
/// centre crop, keeping the shape); false for a random operation (left out).
bool deterministicPart(const PipelineOp& op, PipelineOp& out);

/// The default of a parameter, parsed from its `defaultText` (a required parameter's:
/// zero of its type).
OpValue defaultValue(const OpParamSpec& param);
/// Operation `name` with every parameter at its default, then `values` set.
/// Example: `makeOp("crop", {{"size", Shape3{96, 96, 96}}})`.
PipelineOp makeOp(std::string_view name, std::initializer_list<std::pair<std::string_view, OpValue>> values = {});

/// The shape `resample(v, mm)` gives a volume of `shape` and `spacing` (mm per axis):
/// round(shape[i] * spacing[i] / mm) per axis, at least 1. Throws std::invalid_argument
/// unless mm and the spacing are positive.
Shape3 resampledShape(const Shape3& shape, const std::array<double, 3>& spacing, double mm);
/// The registry's shape effect of `op` on a grid of `shape` and `spacing` (mm).
void applyShape(const PipelineOp& op, Shape3& shape, std::array<double, 3>& spacing);

/// `name(param = value, ...)` in gyrus syntax, every parameter spelled out.
std::string print(const PipelineOp& op);
/// The invariants of one operation: a registry name, its parameters in order with their
/// types, values in their ranges, and the op-specific rules: empty, or the violation.
std::string verify(const PipelineOp& op);

}  // namespace gyrus::ir
