// The side table as text (`gyrus emit --stage=typed`): one line per node of the user's
// file, in source order, each with its node kind, `line:col`, type, unit, shape and
// value (defaults spelled out), and for a stage what follows from it.
#include <algorithm>

#include "../CheckInternal.h"

namespace gyrus::check {

namespace {
std::string_view kindName(ast::NodeKind k) {
  switch (k) {
    case ast::NodeKind::ExprNumber: return "ExprNumber";
    case ast::NodeKind::ExprQuantity: return "ExprQuantity";
    case ast::NodeKind::ExprShape: return "ExprShape";
    case ast::NodeKind::ExprString: return "ExprString";
    case ast::NodeKind::ExprBool: return "ExprBool";
    case ast::NodeKind::ExprName: return "ExprName";
    case ast::NodeKind::ExprMember: return "ExprMember";
    case ast::NodeKind::ExprCall: return "ExprCall";
    case ast::NodeKind::ExprUnary: return "ExprUnary";
    case ast::NodeKind::ExprBinary: return "ExprBinary";
    case ast::NodeKind::ExprList: return "ExprList";
    case ast::NodeKind::ExprRecord: return "ExprRecord";
    case ast::NodeKind::DeclBind: return "DeclBind";
    case ast::NodeKind::DeclPretrain: return "DeclPretrain";
    case ast::NodeKind::DeclEvaluate: return "DeclEvaluate";
    case ast::NodeKind::DeclSweep: return "DeclSweep";
    case ast::NodeKind::DeclUse: return "DeclUse";
  }
  return "?";
}

// A value's type; records list their fields' types.
std::string typeText(const Value& v) {
  if (v.ty != Ty::Record) return std::string(typeLabel(v.ty));
  std::string out = "{";
  for (size_t i = 0; i < v.fieldNames.size(); ++i)
    out += (i ? ", " : "") + v.fieldNames[i] + " : " + typeText(v.items[i]);
  return out + "}";
}

std::string_view unitOf(Ty t) {
  switch (t) {
    case Ty::Length: return "mm";
    case Ty::Fraction: return "%";
    case Ty::Voxels: return "vox";
    case Ty::Bytes: return "bytes";
    default: return "";
  }
}

// The value, canonical (defaults spelled out); `written` when it has no better form.
std::string valueText(const Value& v, const std::string& written) {
  switch (v.ty) {
    case Ty::Int:
    case Ty::Float:
    case Ty::Length:
    case Ty::Voxels:
    case Ty::Bytes: return ir::formatNumber(v.num);
    case Ty::Fraction: return ir::formatNumber(v.num * 100) + "%";
    case Ty::Shape: return ir::formatShape(v.shape);
    case Ty::String: return "\"" + v.str + "\"";
    case Ty::Bool: return v.flag ? "true" : "false";
    case Ty::Range: return ir::formatNumber(v.num) + " .. " + ir::formatNumber(v.hi);
    case Ty::List:
    case Ty::Record: {
      std::string out = v.ty == Ty::List ? "[" : "{ ";
      for (size_t i = 0; i < v.items.size(); ++i)
        out += (i ? ", " : "") + (v.ty == Ty::Record ? v.fieldNames[i] + " = " : std::string()) +
               valueText(v.items[i], "?");
      return out + (v.ty == Ty::List ? "]" : " }");
    }
    case Ty::Dataset: return ir::print(v.dataset);
    case Ty::Data: return ir::print(v.dataset) + " |> " + ir::print(v.pipeline);
    case Ty::Pipeline: return ir::print(v.pipeline);
    case Ty::Encoder: return ir::print(v.encoder);
    case Ty::Objective: return ir::print(v.objective);
    case Ty::Optimizer: return ir::print(v.optimizer);
    case Ty::Schedule: return std::string(ir::toString(v.schedule));
    case Ty::Function: return v.function;
    case Ty::Model: return v.model;
    case Ty::Site: return "site(\"" + v.str + "\")";
    case Ty::Weights: return "weights(\"" + v.str + "\")";
    case Ty::Metric: return v.str;
    default: return written;
  }
}

// The scalar part a Value and the side table's NodeFacts share: type, numbers, shape,
// flag (each direction of the copy is one call).
template <class To, class From>
void copyScalars(To& to, const From& from) {
  to.ty = from.ty;
  to.num = from.num;
  to.hi = from.hi;
  to.shape = from.shape;
  to.flag = from.flag;
}

std::string scalarText(const NodeFacts& f, const std::string& written) {
  if (f.parts != nullptr) return valueText(*f.parts, written);
  Value v;
  copyScalars(v, f);
  v.str = v.function = v.model = f.str;
  return valueText(v, written);
}

// A value's type; records list their fields' types.
std::string typeOf(const NodeFacts& f) {
  return f.parts != nullptr ? typeText(*f.parts) : std::string(typeLabel(f.ty));
}
}  // namespace

NodeFacts Checker::facts(const Value& v) {
  NodeFacts f;
  copyScalars(f, v);
  f.carriesShape = (v.ty == Ty::Dataset || v.ty == Ty::Data) ? v.shapeKnown
                   : v.ty == Ty::Pipeline                   ? v.pipelineSetsShape
                                                            : v.ty == Ty::Model || v.ty == Ty::Error;
  f.carriesShape = f.carriesShape && v.shape[0] != 0;
  switch (v.ty) {
    case Ty::String:
    case Ty::Site:
    case Ty::Weights:
    case Ty::Metric: f.str = v.str; break;
    case Ty::Function: f.str = v.function; break;
    case Ty::Model: f.str = v.model; break;
    case Ty::Dataset:
    case Ty::Data:
    case Ty::Pipeline:
    case Ty::Encoder:
    case Ty::Objective:
    case Ty::Optimizer:
    case Ty::Schedule:
    case Ty::List:
    case Ty::Record: {
      auto parts = std::make_shared<Value>();
      parts->ty = v.ty;
      parts->schedule = v.schedule;
      parts->dataset = v.dataset;
      parts->pipeline = v.pipeline;
      parts->encoder = v.encoder;
      parts->objective = v.objective;
      parts->optimizer = v.optimizer;
      parts->items = v.items;
      parts->fieldNames = v.fieldNames;
      f.parts = std::move(parts);
      break;
    }
    default: break;
  }
  return f;
}

std::string printTyped(const std::vector<NodeFacts>& facts, const SourceManager& sm) {
  // A node evaluated more than once (a definition's body, a default) counts once.
  std::set<const ast::Node*> seen;
  std::vector<const NodeFacts*> order;
  for (const NodeFacts& f : facts)
    if (seen.insert(f.node).second) order.push_back(&f);
  // Source order; an enclosing node before the nodes inside it.
  std::stable_sort(order.begin(), order.end(), [](const NodeFacts* a, const NodeFacts* b) {
    if (a->node->range.begin != b->node->range.begin) return a->node->range.begin < b->node->range.begin;
    return a->node->range.end > b->node->range.end;
  });
  std::string out;
  for (const NodeFacts* f : order) {
    const ast::Node& n = *f->node;
    LineCol at = sm.lineCol(n.range.file, n.range.begin);
    std::string line = std::string(kindName(n.kind)) + " " + std::to_string(at.line) + ":" + std::to_string(at.col);
    if (const auto* bind = n.as<ast::DeclBind>()) line += " " + std::string(ast::toString(bind->bindKind));
    if (!f->name.empty()) line += " " + f->name;
    line += " : " + (f->type.empty() ? typeOf(*f) : f->type);
    if (std::string_view unit = unitOf(f->ty); !unit.empty()) line += " [" + std::string(unit) + "]";
    if (f->carriesShape && f->ty != Ty::Shape) line += " shape " + ir::formatShape(f->shape);
    if (f->type.empty()) {
      std::string written(sm.text(n.range));
      if (const auto* e = dynamic_cast<const ast::Expr*>(&n)) written = ast::printExpr(*e);
      line += " = " + scalarText(*f, written);
    }
    if (!f->detail.empty()) line += (f->type.empty() ? "  // " : " = ") + f->detail;
    out += line + "\n";
  }
  return out;
}

}  // namespace gyrus::check
