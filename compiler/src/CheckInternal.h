// The checker's internal types, shared by its passes (Check.cpp, check/*.cpp), the
// signature table (Signatures.def, Signatures.cpp), the build hooks (Builtins.cpp) and
// records and tasks (Tasks.cpp): values, the side table, the Checker. Not public API.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gyrus/Check.h"
#include "gyrus/Data.h"
#include "gyrus/Weights.h"

namespace gyrus::check {

enum class Ty {
  Error, Int, Float, Fraction, Length, Voxels, Shape, String, Bool, Range, List,
  Dataset, Data, Pipeline, Encoder, Objective, Optimizer, Schedule, Probe, Function, Model, LabelType, Bytes,
  ProtocolTy, Site, Head, Decoder, Stem, Precision, Record, Metric, Weights,
};

inline std::string_view tyName(Ty t) {
  switch (t) {
    case Ty::Error: return "<error>";
    case Ty::Int: return "an integer";
    case Ty::Float: return "a number";
    case Ty::Fraction: return "a fraction";
    case Ty::Length: return "a length";
    case Ty::Voxels: return "a voxel count";
    case Ty::Shape: return "a 3-D shape";
    case Ty::String: return "a string";
    case Ty::Bool: return "a boolean";
    case Ty::Range: return "a range";
    case Ty::List: return "a list";
    case Ty::Dataset: return "a dataset";
    case Ty::Data: return "prepared data";
    case Ty::Pipeline: return "a pipeline";
    case Ty::Encoder: return "an encoder";
    case Ty::Objective: return "an objective";
    case Ty::Optimizer: return "an optimizer";
    case Ty::Schedule: return "a schedule";
    case Ty::Probe: return "a probe";
    case Ty::Function: return "a function";
    case Ty::Model: return "a pretrained model";
    case Ty::LabelType: return "a label kind (binary, regression or segmentation)";
    case Ty::Bytes: return "an amount of memory";
    case Ty::ProtocolTy: return "a protocol (probe or finetune)";
    case Ty::Site: return "a site";
    case Ty::Head: return "a head (pooled or dense)";
    case Ty::Decoder: return "a decoder (light or none)";
    case Ty::Stem: return "a stem (reinit or repeat)";
    case Ty::Precision: return "a precision (fp32 or bf16)";
    case Ty::Record: return "a record";
    case Ty::Metric: return "a metric (auroc, dice, nsd, mae or pearson_r)";
    case Ty::Weights: return "a weights file (weights(\"file.safetensors\"))";
  }
  return "?";
}

inline std::string_view typeLabel(Ty t) {
  switch (t) {
    case Ty::Int: return "Int";
    case Ty::Float: return "Float";
    case Ty::Fraction: return "Fraction";
    case Ty::Length: return "Length";
    case Ty::Voxels: return "Voxels";
    case Ty::Shape: return "Shape";
    case Ty::String: return "String";
    case Ty::Bool: return "Bool";
    case Ty::Range: return "Range";
    case Ty::List: return "List";
    case Ty::Dataset: return "Dataset";
    case Ty::Data: return "Data";
    case Ty::Pipeline: return "Pipeline";
    case Ty::Encoder: return "Encoder";
    case Ty::Objective: return "Objective";
    case Ty::Optimizer: return "Optimizer";
    case Ty::Schedule: return "Schedule";
    case Ty::Probe: return "Probe";
    case Ty::Function: return "Function";
    case Ty::Model: return "Pretrain";
    case Ty::LabelType: return "LabelKind";
    case Ty::Bytes: return "Bytes";
    case Ty::ProtocolTy: return "Protocol";
    case Ty::Site: return "Site";
    case Ty::Head: return "Head";
    case Ty::Decoder: return "Decoder";
    case Ty::Stem: return "Stem";
    case Ty::Precision: return "Precision";
    case Ty::Record: return "Record";
    case Ty::Metric: return "Metric";
    case Ty::Weights: return "Weights";
    case Ty::Error: return "Error";
  }
  return "?";
}

struct Value {
  Ty ty = Ty::Error;
  double num = 0.0;
  double hi = 0.0;  // Ty::Range: the upper end (`num` is the lower one)
  ir::Shape3 shape{0, 0, 0};
  std::string str;
  bool flag = false;
  // Ty::String made by root(...): a folder on this machine, from the site configuration.
  // Only a folder data set's root may take it, so that no stage hash sees it.
  bool machinePath = false;
  std::vector<Value> items;  // Ty::List; Ty::Record: the field values, in source order
  std::vector<std::string> fieldNames;        // Ty::Record
  std::vector<SourceRange> fieldNameRanges;  // Ty::Record
  ir::DataSource dataset;
  ir::Pipeline pipeline;
  ir::Encoder encoder;
  ir::Objective objective;
  ir::Optimizer optimizer;
  ir::Schedule schedule = ir::Schedule::Cosine;
  std::string function;  // Ty::Function: the builtin's name
  std::string model;     // Ty::Model: the pretrain's name
  ir::WeightsFile weights;  // Ty::Weights: the file (absolute path) and its digest
  st::Header weightsHeader; // Ty::Weights: its tensors
  // Provenance, for diagnostics that point at where a property came from.
  SourceRange range;                     // the whole expression
  SourceRange shapeOrigin;               // Dataset/Pipeline/Data: what set the spatial size
  bool pipelineSetsShape = false;        // Pipeline/Data: contains a crop
  bool shapeKnown = true;                // Dataset/Data: false when sizes vary by volume
  std::vector<SourceRange> opOrigins;    // Pipeline/Data: the call that made each op
  SourceRange encoderOrigin;             // Model: where its encoder is declared
  SourceRange dataOrigin;                // Model: its data and pipeline (the `data` field's value)
  std::vector<SourceRange> cubeOrigins;  // Objective: each MAE term's `cube` argument
  SourceRange literal;                   // Record: the literal that made it
  // Dataset: the metrics of the task record it was declared with (Ty::Metric items or
  // `mae`, ranges inside the record), the list, and where the task was given.
  std::vector<Value> taskMetrics;
  SourceRange taskMetricsOrigin;
  SourceRange taskOrigin;
};

inline Value errorValue() { return Value{}; }

// Source range of an evaluation's dataset (for notes).
inline SourceRange taskDatasetRange(const ast::DeclEvaluate& d) {
  return d.taskRanges.empty() ? d.range : d.taskRanges.front();
}

inline bool isNumeric(Ty t) { return t == Ty::Int || t == Ty::Float; }

// ---- Records and metrics (Tasks.cpp) ------------------------------------------------

/// The index of field `name` of a record value, or -1.
inline int fieldIndex(const Value& record, const std::string& name) {
  for (size_t i = 0; i < record.fieldNames.size(); ++i)
    if (record.fieldNames[i] == name) return static_cast<int>(i);
  return -1;
}

/// The metric a value names: a metric identifier, or `mae` (which is also the MAE
/// objective's function); empty when it names none.
std::string metricName(const Value& v);
/// The metrics that can score a label kind, in their default order.
const std::vector<std::string>& metricsOf(ir::LabelKind kind);
/// "binary", "regression" or "segmentation".
std::string labelKindWord(ir::LabelKind kind);

// ---- Signatures (Signatures.def, Signatures.cpp) --------------------------------------

/// An argument bound to a parameter: given (`present`), or its default.
struct Bound {
  bool present = false;
  Value value;
  SourceRange range;  // the argument's value, or the call when defaulted
};

class Checker;

// How a parameter's value is range-checked, and its flags: shared with the pipeline
// registry (gyrus/PipelineOps.h), whose entries Signatures.def includes.
using ir::Bounds;
using ir::ParamFlag;
using ir::kRequired;
using ir::kDescribed;
using ir::kFinetuneOnly;
using ir::kOrSite;
using ir::kOrWeights;
using ir::kMetrics;
using ir::kLater;
using ir::kMachinePath;
using ir::kDraws;

/// One parameter of a signature, as declared in Signatures.def.
struct Param {
  std::string name;
  Ty ty = Ty::Error;
  std::string unit;         ///< for the reference only (the type carries the checked unit)
  std::string defaultText;  ///< as written in the table (empty: none)
  Bounds bounds = Bounds::None;
  double lo = 0, hi = 0;
  unsigned flags = 0;
  std::string doc;
  /// The default, parsed from `defaultText` once (Ty::Error when there is none).
  Value defaultValue;
  bool required() const { return (flags & kRequired) != 0; }
};

/// A built-in function, or the fields of a `pretrain` block, or `evaluate`'s arguments.
struct Signature {
  std::string name;
  Ty result = Ty::Error;  ///< Ty::Error for a declaration's block
  bool callable = false;  ///< a built-in function (GYRUS_FUNCTION)
  std::string doc;
  std::vector<Param> params;
  const Param* find(const std::string& param) const {
    for (const Param& p : params)
      if (p.name == param) return &p;
    return nullptr;
  }
  std::vector<std::string> paramNames() const {
    std::vector<std::string> out;
    for (const Param& p : params) out.push_back(p.name);
    return out;
  }
};
using Builtin = Signature;

/// Every signature, in the table's order.
const std::vector<Signature>& signatures();
/// The signature called `name` (a function, "pretrain" or "evaluate"), or nullptr.
const Signature* findSignature(const std::string& name);
/// An empty string when `v` is within `p`'s range, else the reason ("must be in [1, 8]").
std::string checkBounds(const Param& p, const Value& v);
/// The range as the reference writes it ("[1, 8]", "≥ 0"); empty when unchecked.
std::string boundsText(const Param& p);
/// The value of a named constant (`cosine`, `linear`, `binary`, `dense`, `auroc`, ...).
bool namedValue(const std::string& name, Value& out);
/// The named constants with their types, in order ("did you mean" offers those that fit).
const std::vector<std::pair<std::string, Ty>>& namedValues();
/// The reference of every signature as Markdown tables (docs/language.md embeds it).
std::string signaturesMarkdown();

/// The built-in functions: their signatures, in the table's order.
const std::vector<const Signature*>& builtins();

/// Builds a built-in function's value from its bound arguments (defaults filled in).
using BuildHook = std::function<Value(Checker&, std::map<std::string, Bound>&, SourceRange call)>;
/// The build hook of built-in `name` (Builtins.cpp), or nullptr.
BuildHook buildHook(const std::string& name);
/// The names of the functions that have a build hook (to test them against the table).
std::vector<std::string> buildHookNames();

// The volume size after `pipeline`, by each operation's registry shape effect: one that
// sets the shape fixes it; a resample scales a synthetic (1 mm) volume and makes a
// folder's sizes unknown until the next crop.
inline void flowShape(Value& data, const ir::Pipeline& pipeline) {
  for (const ir::PipelineOp& op : pipeline.ops) {
    ir::OpShape effect = op.spec().shape;
    if (effect == ir::OpShape::Sets) {
      data.shape = op.shape(op.spec().shapeParam);
      data.shapeKnown = true;
    } else if (effect == ir::OpShape::Resamples) {
      if (data.dataset.kind == ir::DataKind::Synthetic && data.shapeKnown) {
        std::array<double, 3> spacing{1.0, 1.0, 1.0};
        ir::applyShape(op, data.shape, spacing);
      } else {
        data.shapeKnown = false;
      }
    }
  }
}

/// A new stage of `kind` called `name` (its pretrain or evaluate part named too).
inline ir::Stage newStage(ir::StageKind kind, const std::string& name) {
  ir::Stage stage;
  stage.kind = kind;
  stage.name = name;
  (kind == ir::StageKind::Pretrain ? stage.pretrain.name : stage.evaluate.name) = name;
  return stage;
}

// ---- The side table (check/Typed.cpp) -------------------------------------------------

/// What checking found for one AST node of the user's file (Luau's `astTypes`): the
/// evaluation pass fills it as it types each node; `gyrus emit --stage=typed` prints it.
struct NodeFacts {
  const ast::Node* node = nullptr;
  /// Type (its unit follows from it), shape and scalar value; a value with parts (a
  /// data set, a pipeline, a list, ...) is kept whole in `parts` (no provenance).
  Ty ty = Ty::Error;
  double num = 0.0, hi = 0.0;
  ir::Shape3 shape{0, 0, 0};
  bool flag = false;
  bool carriesShape = false;  ///< `shape` is a known spatial size the value carries
  std::string str;            ///< a string's, site's, metric's, function's or model's name
  std::shared_ptr<const Value> parts;
  std::string name;    ///< a declaration's name
  std::string type;    ///< the type to print when it is not the value's (an evaluation)
  std::string detail;  ///< derived facts (a stage's input shape, parameters, sizes)
};

/// The side table as text: one line per node (its first entry) in source order (deterministic: node
/// kind, `line:col`, name, type, unit, shape, value, derived facts).
std::string printTyped(const std::vector<NodeFacts>& facts, const SourceManager& sm);

// ---- The checker --------------------------------------------------------------------

/// What checking one evaluation has learned so far, pass by pass (check/Evaluate.cpp
/// and its rules: Heads.cpp, FewShot.cpp, Shapes.cpp, Pipelines.cpp).
struct Evaluation {
  const ast::DeclEvaluate* decl = nullptr;
  Value model;  ///< Ty::Model: the pretraining judged
  Value data;   ///< Ty::Dataset: the task's data set
  std::string label;
  ir::LabelKind labelKind = ir::LabelKind::Binary;
  std::map<std::string, Bound> args;  ///< bound to the `evaluate` signature, defaults filled
  bool finetune = false;
  std::vector<std::string> metrics;  ///< to report, in order
  std::string metricsFrom;           ///< where they come from (for the side table)
  Value pipeline;                    ///< the evaluation's pipeline (the pretraining's unless its own)
  SourceRange pipelineAt;
  int64_t testCount = 0;  ///< subjects held out for testing
  /// The label as the evaluation names it, quoted: `'task.label'`.
  std::string labelText() const { return "'" + decl->task[0] + "." + label + "'"; }
};

struct Symbol {
  const ast::Decl* decl = nullptr;
  bool inPrelude = false;
  enum class State { Unvisited, InProgress, Done } state = State::Unvisited;
  Value value;
  size_t uses = 0;
};

class Checker {
 public:
  Checker(const SourceManager& sm, DiagnosticEngine& diags, DataResolver& data)
      : sm_(sm), diags_(diags), data_(data) {}

  CheckResult run(const std::vector<const ast::File*>& files, bool library = false);

  DiagnosticEngine& diags() { return diags_; }
  /// Lists folder data sets (the checker reads no files itself).
  DataResolver& dataResolver() { return data_; }
  /// The site configuration's named data roots (`root(...)`).
  void setRoots(const DataRoots& roots) { roots_ = roots; }
  const DataRoots& roots() const { return roots_; }
  const SourceManager& sources() const { return sm_; }
  /// A data path as the user wrote it, relative to the experiment file's directory.
  std::string resolvePath(const std::string& path) const {
    std::filesystem::path p(path);
    return p.is_absolute() ? path : (baseDir_ / p).lexically_normal().string();
  }

  // Reports that `v` (at `where`) is not of the type `want` needs, with a fix where an
  // obvious one exists. `what` names the slot, e.g. "argument 'size' of crop".
  void typeMismatch(const Value& v, Ty want, SourceRange where, const std::string& what) {
    Diagnostic& d = diags_.report(DiagKind::TypeMismatch, where,
                                  what + " must be " + std::string(tyName(want)) + ", not " + std::string(tyName(v.ty)) +
                                      " ('" + std::string(sm_.text(where)) + "')");
    if (want == Ty::Shape && v.ty == Ty::Int) {
      d.fixit(where, std::string(sm_.text(where)) + "^3");
    } else if (want == Ty::Length && isNumeric(v.ty)) {
      d.fixit(where, std::string(sm_.text(where)) + "mm");
    } else if (want == Ty::Shape) {
      d.note("write a shape in voxels, such as 96^3 or 160x192x160");
    } else if (want == Ty::Pipeline && v.ty == Ty::Function) {
      d.fixit(where, std::string(sm_.text(where)) + "()");
    }
  }

  // Converts `v` to what a parameter of type `want` holds; reports and returns false
  // when it cannot.
  bool coerce(Value& v, Ty want, SourceRange where, const std::string& what) {
    if (v.ty == Ty::Error) return false;
    if (v.ty == want) return true;
    if (want == Ty::Float && v.ty == Ty::Int) {
      v.ty = Ty::Float;
      return true;
    }
    if (want == Ty::Fraction && isNumeric(v.ty)) {
      v.ty = Ty::Fraction;
      return true;
    }
    if (want == Ty::Voxels && v.ty == Ty::Int) {
      v.ty = Ty::Voxels;
      return true;
    }
    if (want == Ty::Data && v.ty == Ty::Dataset) {
      Value d = v;
      d.ty = Ty::Data;
      v = d;
      return true;
    }
    typeMismatch(v, want, where, what);
    return false;
  }

  Value eval(const ast::Expr& e);
  /// Adds `n`'s facts to the side table (the first evaluation of a node of the user's
  /// file counts: a definition's body is typed where it is written).
  void record(const ast::Node& n, const Value& v, std::string name = {}, std::string type = {},
              std::string detail = {}) {
    if (n.range.file != mainFile_) return;
    facts_.push_back(facts(v));
    NodeFacts& f = facts_.back();
    f.node = &n;
    f.name = std::move(name);
    f.type = std::move(type);
    f.detail = std::move(detail);
  }
  /// What the side table keeps of `v` (cheap for scalars; no provenance).
  static NodeFacts facts(const Value& v);
  /// Evaluates `e` in a slot that expects `want`: "did you mean" suggests only names that
  /// fit it (an encoder where an encoder is expected).
  Value evalAs(const ast::Expr& e, Ty want) {
    expected_ = want;
    return eval(e);
  }

  // The argument binder (check/Bind.cpp).
  /// One argument or field as written: named, or positional (empty name).
  struct ArgItem {
    std::string name;
    SourceRange nameRange;
    const ast::Expr* value = nullptr;
  };
  /// Whose arguments are bound: they differ only in how their mistakes are worded
  /// (evaluate takes named arguments only).
  enum class BindSite { Call, Pretrain, Evaluate };
  /// Binds `items` to `sig`'s parameters: positional and named arguments, duplicates,
  /// unknown names (with a suggestion and what the signature takes), type coercion and
  /// units, ranges. Every mistake is reported; false after any. `owner` names the
  /// pretrain block. Parameters not given are not in `bound` (see fillDefaults).
  bool bindArguments(const Signature& sig, const std::vector<ArgItem>& items, BindSite site, const std::string& owner,
                     std::map<std::string, Bound>& bound);
  /// Binds every parameter not given to its default (not `present`), at `at`.
  static void fillDefaults(const Signature& sig, std::map<std::string, Bound>& bound, SourceRange at);

  // Records, task records and metric lists (Tasks.cpp).
  /// A call's `task = RECORD` argument: its fields become the call's arguments where the
  /// call does not give them (checked like them); `layout` must be the function's;
  /// `metrics` must suit the label. Every error shows the field and the use.
  struct TaskUse {
    bool given = false;
    SourceRange at;              // the task argument
    std::vector<Value> metrics;  // the task's metrics, when it has any
    SourceRange metricsAt;       // its `metrics` field's value
  };
  bool applyTask(const Builtin& fn, const ast::ExprCall& call, std::map<std::string, Bound>& bound, TaskUse& use);
  /// After the built-in ran: notes at the use on what it reported about task fields,
  /// and the task's metrics on the data set it made.
  void finishTask(const TaskUse& use, size_t firstDiag, SourceRange call, Value& result);
  /// Reads a list of metrics (`what` names the slot); false after reporting.
  bool readMetrics(const Value& list, SourceRange at, const std::string& what, std::vector<std::string>& names,
                   std::vector<SourceRange>& ranges);
  /// Reports the metrics that cannot score a label of `kind` ([metric-mismatch], once, at
  /// the first), with the corrected list as a fix-it for `listAt`; `label` describes the
  /// label and `labelAt` (when valid) is where it was set.
  bool checkMetricsSuit(const std::vector<std::string>& names, const std::vector<SourceRange>& ranges,
                        SourceRange listAt, ir::LabelKind kind, const std::string& label, SourceRange labelAt);
  /// Adds "task given here" at `use` to the diagnostics reported since `from` outside it.
  void noteTaskUse(size_t from, SourceRange use);

 private:
  Value evalRecord(const ast::ExprRecord& r);
  Value evalMember(const ast::ExprMember& m);
  Value evalName(const ast::ExprName& n, Ty want = Ty::Error, bool callee = false);
  Value evalCall(const ast::ExprCall& c, Ty want = Ty::Error);
  Value callDefinition(Symbol& sym, const ast::DeclBind& def, const ast::ExprCall& c);
  Value evalBinary(const ast::ExprBinary& b);
  Value evalQuantity(const ast::ExprQuantity& q);
  Value evalDecl(Symbol& s);
  Value evalBind(const ast::DeclBind& d);
  Value evalPretrain(const ast::DeclPretrain& d);
  // The passes (Check.cpp).
  void resolveNames(const std::vector<const ast::File*>& files);
  void evaluateDeclarations(const ast::File& main);
  void checkEvaluations(const ast::File& main);
  void warnUnused(const ast::File& main, bool library);
  ir::Experiment lowerToIr();
  void checkEvaluate(const ast::DeclEvaluate& d);
  // An evaluation, step by step (check/Evaluate.cpp) and its rules.
  Value resolveEvaluatedModel(const ast::DeclEvaluate& d);
  Value resolveTask(const ast::DeclEvaluate& d, std::string& label, ir::LabelKind& labelKind);
  bool chooseMetrics(Evaluation& ev);
  bool buildEvaluateStage(Evaluation& ev, ir::Stage& stage);
  // `init = weights(...)` (at `at`) for an encoder declared at `encoderOrigin`: an
  // init-mismatch error unless the file holds exactly its parameters. `who` names the
  // stage ("pretrain 'base'").
  bool checkInitWeights(const Value& weights, SourceRange at, const ir::Encoder& encoder, SourceRange encoderOrigin,
                        const std::string& who);
  /// Rule: a reconstruction objective needs a decoder (check/Heads.cpp).
  bool checkObjectiveHead(const ast::DeclPretrain& d, const Value& objective, std::map<std::string, Bound>& fields);
  /// Rule: the memory budget a pretraining declares (a warning; check/Memory.cpp).
  void checkMemoryBudget(const ast::DeclPretrain& d, const ir::PretrainStage& p, const Bound& memory);
  /// Rule: the head follows from the task (check/Heads.cpp).
  bool checkTaskHead(Evaluation& ev);
  /// Rule: few-shot sizing; sets ev.testCount (check/FewShot.cpp).
  bool checkFewShot(Evaluation& ev, const ir::EvaluateStage& e);
  /// Rule: the task data through the evaluation's pipeline fit the encoder (check/Shapes.cpp).
  bool checkTaskShape(Evaluation& ev, const ir::EvaluateStage& e, Value& taskData);
  bool checkDivisible(const Value& data, const ir::Encoder& enc, SourceRange encoderRange, const char* what);
  void checkCube(const Value& data, const Value& objective);
  /// Warns [crop-padding] at each crop of `pipeline` (made at `origins`) larger than the
  /// volume of `data` when its size is known (synthetic data); `usedAt`, when valid, is
  /// where the data meet a pipeline declared elsewhere (an evaluation's task).
  void warnCropPadding(const Value& data, const ir::Pipeline& pipeline, const std::vector<SourceRange>& origins,
                       SourceRange usedAt = {});
  /// Adds a fix-it from `60` to `60%` to `d` when `value` is a whole number that reads as
  /// a percentage where a fraction is expected.
  void suggestPercentage(Diagnostic& d, const ast::Expr& value);
  bool checkPipelinesAgree(const Value& pretrained, const Value& evaluation, SourceRange evalAt, bool finetune);
  void reportUnknownShape(SourceRange where) {
    diags_.report(DiagKind::ShapeUnknown, where,
                  "the volumes of this data set differ in size, so the encoder's input size is unknown")
        .note("end the pipeline with a crop to a fixed size, e.g. `resample(1mm) >> crop(96^3) >> zscore()`");
  }
  /// The names a mistyped name may have meant: those that can give `want` (Ty::Error:
  /// any), only functions when it is called.
  std::vector<std::string> visibleNames(Ty want, bool callee) const;

  const SourceManager& sm_;
  DiagnosticEngine& diags_;
  DataResolver& data_;
  DataRoots roots_;
  std::filesystem::path baseDir_;
  std::map<std::string, Symbol> symbols_;
  std::vector<const ast::Decl*> duplicates_;  ///< declarations rejected as a name's second
  // Parameters of the parameterised definitions being called (innermost last).
  std::vector<std::map<std::string, Value>> scopes_;
  std::set<std::string> activeCalls_;
  std::vector<const ast::DeclPretrain*> pretrains_;
  Ty expected_ = Ty::Error;  // what the slot being evaluated expects (consumed by eval)
  std::set<std::tuple<FileId, uint32_t, ir::Shape3>> paddingWarned_;  // crops warned about, by volume size
  ir::Experiment experiment_;
  std::map<std::string, size_t> stageIndex_;
  FileId mainFile_ = kNoFile;
  std::vector<NodeFacts> facts_;  // the side table (a node evaluated twice: its first entry counts)
};

}  // namespace gyrus::check
