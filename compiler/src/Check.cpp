// The checker: resolves names, evaluates declarations to typed values (with units and
// 3-D shapes), checks parameters, shapes and protocols, and lowers to the IR.
//
// Declarations are evaluated on demand with cycle detection, so order in the file does
// not matter. An expression that fails gets the Error type and evaluation goes on:
// later uses of it stay silent, so one mistake is reported once.
#include "gyrus/Check.h"

#include "CheckInternal.h"
#include "gyrus/Data.h"
#include "gyrus/IrJson.h"
#include "gyrus/Plan.h"

namespace gyrus {
namespace check {


namespace {
// A value's type as `emit --stage=typed` prints it; records list their fields' types.
std::string typeText(const Value& v) {
  if (v.ty != Ty::Record) return std::string(typeLabel(v.ty));
  std::string out = "{";
  for (size_t i = 0; i < v.fieldNames.size(); ++i)
    out += (i ? ", " : "") + v.fieldNames[i] + " : " + typeText(v.items[i]);
  return out + "}";
}
}  // namespace

namespace {
// The type a declaration's keyword promises (Ty::Error: any, for `let`).
Ty bindTy(ast::BindKind kind) {
  switch (kind) {
    case ast::BindKind::Dataset: return Ty::Dataset;
    case ast::BindKind::Pipeline: return Ty::Pipeline;
    case ast::BindKind::Encoder: return Ty::Encoder;
    case ast::BindKind::Objective: return Ty::Objective;
    case ast::BindKind::Let: return Ty::Error;
  }
  return Ty::Error;
}
}  // namespace

std::vector<std::string> Checker::visibleNames(Ty want, bool callee) const {
  // A name fits when it can give what the slot expects (`Ty::Error` on either side: unknown).
  auto fits = [want](Ty t) {
    return want == Ty::Error || t == Ty::Error || t == want || (want == Ty::Data && t == Ty::Dataset) ||
           (want == Ty::Float && t == Ty::Int);
  };
  std::vector<std::string> names;
  if (!scopes_.empty() && !callee)
    for (const auto& [name, value] : scopes_.back()) names.push_back(name);
  for (const auto& [name, sym] : symbols_) {
    Ty t = Ty::Error;
    if (const auto* b = sym.decl->as<ast::DeclBind>()) {
      if (callee && !b->isFunction) continue;
      t = bindTy(b->bindKind);
    } else if (sym.decl->is<ast::DeclPretrain>() && !callee) {
      t = Ty::Model;
    } else {
      continue;
    }
    if (fits(t)) names.push_back(name);
  }
  for (const Signature* b : builtins())
    if (fits(b->result)) names.push_back(b->name);
  if (!callee)
    for (const auto& [name, ty] : namedValues())
      if (fits(ty)) names.push_back(name);
  return names;
}

Value Checker::eval(const ast::Expr& e) {
  // What the slot expects applies to this expression only, not to its parts.
  Ty want = std::exchange(expected_, Ty::Error);
  Value v;
  switch (e.kind) {
    case ast::NodeKind::ExprNumber: {
      const auto& n = static_cast<const ast::ExprNumber&>(e);
      v.ty = n.isInteger ? Ty::Int : Ty::Float;
      v.num = n.value;
      if (n.isInteger && n.value > 4.0e15) {
        diags_.report(DiagKind::ValueRange, e.range, "integer " + std::string(sm_.text(e.range)) + " is too large");
        return errorValue();
      }
      break;
    }
    case ast::NodeKind::ExprQuantity: v = evalQuantity(static_cast<const ast::ExprQuantity&>(e)); break;
    case ast::NodeKind::ExprShape: {
      const auto& s = static_cast<const ast::ExprShape&>(e);
      if (s.dims.size() != 3) {
        diags_.report(DiagKind::TypeMismatch, e.range,
                      "shape '" + std::string(sm_.text(e.range)) + "' has " + std::to_string(s.dims.size()) +
                          " sides; volumes are 3-D (write AxBxC)");
        return errorValue();
      }
      v.ty = Ty::Shape;
      for (size_t i = 0; i < 3; ++i) {
        if (s.dims[i] < 0) {
          diags_.report(DiagKind::ValueRange, e.range, "shape '" + std::string(sm_.text(e.range)) + "' is too large");
          return errorValue();
        }
        v.shape[i] = s.dims[i];
      }
      break;
    }
    case ast::NodeKind::ExprString:
      v.ty = Ty::String;
      v.str = static_cast<const ast::ExprString&>(e).value;
      break;
    case ast::NodeKind::ExprBool:
      v.ty = Ty::Bool;
      v.flag = static_cast<const ast::ExprBool&>(e).value;
      break;
    case ast::NodeKind::ExprName: v = evalName(static_cast<const ast::ExprName&>(e), want); break;
    case ast::NodeKind::ExprMember:
      v = evalMember(static_cast<const ast::ExprMember&>(e));
      if (v.ty == Ty::Error) return v;
      break;
    case ast::NodeKind::ExprRecord:
      v = evalRecord(static_cast<const ast::ExprRecord&>(e));
      if (v.ty == Ty::Error) return v;
      break;
    case ast::NodeKind::ExprCall: v = evalCall(static_cast<const ast::ExprCall&>(e), want); break;
    case ast::NodeKind::ExprUnary: {
      const auto& u = static_cast<const ast::ExprUnary&>(e);
      v = eval(*u.operand);
      if (v.ty == Ty::Error) return v;
      if (!(isNumeric(v.ty) || v.ty == Ty::Fraction || v.ty == Ty::Length)) {
        diags_.report(DiagKind::TypeMismatch, e.range, "cannot negate " + std::string(tyName(v.ty)));
        return errorValue();
      }
      v.num = -v.num;
      break;
    }
    case ast::NodeKind::ExprBinary: v = evalBinary(static_cast<const ast::ExprBinary&>(e)); break;
    case ast::NodeKind::ExprList: {
      v.ty = Ty::List;
      for (const ast::Expr* item : static_cast<const ast::ExprList&>(e).items) {
        Value iv = eval(*item);
        if (iv.ty == Ty::Error) v.ty = Ty::Error;
        v.items.push_back(std::move(iv));
      }
      if (v.ty == Ty::Error) return errorValue();
      break;
    }
    default: return errorValue();
  }
  v.range = e.range;
  return v;
}

Value Checker::evalQuantity(const ast::ExprQuantity& q) {
  Value v;
  v.num = q.value;
  if (q.unit == "mm") {
    v.ty = Ty::Length;
  } else if (q.unit == "%") {
    v.ty = Ty::Fraction;
    v.num = q.value / 100.0;
  } else if (q.unit == "GiB" || q.unit == "MiB" || q.unit == "GB" || q.unit == "MB") {
    v.ty = Ty::Bytes;
    double scale = q.unit == "GiB" ? 1024.0 * 1024 * 1024 : q.unit == "MiB" ? 1024.0 * 1024 : q.unit == "GB" ? 1e9 : 1e6;
    v.num = q.value * scale;
  } else if (q.unit == "vox") {
    if (!q.isInteger) {
      diags_.report(DiagKind::TypeMismatch, q.range, "a voxel count must be a whole number");
      return errorValue();
    }
    v.ty = Ty::Voxels;
  } else {
    Diagnostic& d = diags_.report(DiagKind::UnknownUnit, q.unitRange, "unknown unit '" + q.unit + "'");
    suggest(d, q.unitRange, q.unit, {"mm", "vox", "GiB", "MiB", "GB", "MB"}, SuggestStyle{false, '\'', "", ""});
    d.note("units are mm (length), % (fraction), vox (voxels), and GiB, MiB, GB, MB (memory)");
    return errorValue();
  }
  return v;
}

Value Checker::evalName(const ast::ExprName& n, Ty want, bool callee) {
  if (!scopes_.empty()) {
    auto local = scopes_.back().find(n.name);
    if (local != scopes_.back().end()) return local->second;
  }
  auto it = symbols_.find(n.name);
  if (it != symbols_.end()) {
    ++it->second.uses;
    if (it->second.decl->is<ast::DeclEvaluate>()) {
      diags_.report(DiagKind::TypeMismatch, n.range,
                    "'" + n.name + "' is an evaluation: it produces metrics, not a value that can be used here")
          .note(it->second.decl->nameRange, "'" + n.name + "' declared here");
      return errorValue();
    }
    Value v = evalDecl(it->second);
    return v;
  }
  if (const Signature* b = findSignature(n.name); b != nullptr && b->callable) {
    Value v;
    v.ty = Ty::Function;
    v.function = b->name;
    return v;
  }
  // Metrics: `mae` is also the objective's function, resolved above (see metricName).
  if (Value v; namedValue(n.name, v)) return v;
  Diagnostic& d = diags_.report(DiagKind::UnknownName, n.range, "unknown name '" + n.name + "'");
  suggest(d, n.range, n.name, visibleNames(want, callee));
  return errorValue();
}

Value Checker::evalCall(const ast::ExprCall& c, Ty want) {
  const auto* calleeName = c.callee->as<ast::ExprName>();
  if (calleeName != nullptr && (scopes_.empty() || scopes_.back().count(calleeName->name) == 0)) {
    auto sym = symbols_.find(calleeName->name);
    if (sym != symbols_.end()) {
      const auto* def = sym->second.decl->as<ast::DeclBind>();
      if (def != nullptr && def->isFunction) {
        ++sym->second.uses;
        return callDefinition(sym->second, *def, c);
      }
    }
  }
  if (calleeName == nullptr || symbols_.count(calleeName->name) != 0 ||
      (!scopes_.empty() && scopes_.back().count(calleeName->name) != 0)) {
    Value callee = eval(*c.callee);
    for (const ast::Arg& a : c.args) eval(*a.value);
    if (callee.ty == Ty::Error) return errorValue();
    diags_.report(DiagKind::TypeMismatch, c.callee->range,
                  "'" + std::string(sm_.text(c.callee->range)) + "' is " + std::string(tyName(callee.ty)) +
                      ", not a function");
    return errorValue();
  }
  const Signature* fn = findSignature(calleeName->name);
  if (fn == nullptr || !fn->callable) {
    Value callee = evalName(*calleeName, want, true);  // reports the unknown name
    for (const ast::Arg& a : c.args) eval(*a.value);
    return errorValue();
  }

  std::map<std::string, Bound> bound;
  std::vector<ArgItem> items;
  for (const ast::Arg& a : c.args) items.push_back({a.name, a.nameRange, a.value});
  bool ok = bindArguments(*fn, items, BindSite::Call, {}, bound);
  // A task record supplies the arguments the call does not give (Tasks.cpp).
  // After a mistake in the task, a missing argument is usually its echo.
  TaskUse task;
  bool taskOk = applyTask(*fn, c, bound, task);
  if (bound.count("task") != 0 && bound["task"].present && bound["task"].value.ty == Ty::Error) taskOk = false;
  ok = ok && taskOk;
  for (const Param& p : fn->params) {
    if (p.required() && bound.count(p.name) == 0) {
      if (taskOk) {
        Diagnostic& d = diags_.report(DiagKind::MissingArgument, c.range, fn->name + "() needs argument '" + p.name + "'");
        if (task.given && p.name != "root") d.note(task.at, "the task given here does not set '" + p.name + "' either");
      }
      ok = false;
    }
  }
  if (!ok) return errorValue();
  fillDefaults(*fn, bound, c.range);
  size_t firstDiag = diags_.all().size();
  Value v = buildHook(fn->name)(*this, bound, c.range);
  finishTask(task, firstDiag, c.range, v);
  v.range = c.range;
  if (v.ty == Ty::Pipeline) v.opOrigins.assign(v.pipeline.ops.size(), c.range);
  return v;
}

// Calls a parameterised definition: binds the arguments (positional, then named) to
// its parameters, fills defaults, and evaluates the body with only the parameters in
// scope. The declaration's keyword constrains the result.
Value Checker::callDefinition(Symbol& sym, const ast::DeclBind& def, const ast::ExprCall& c) {
  std::map<std::string, Value> bound;
  std::map<std::string, SourceRange> where;
  bool ok = true, sawNamed = false;
  size_t positional = 0;
  for (const ast::Arg& a : c.args) {
    Value v = eval(*a.value);
    std::string name;
    if (a.name.empty()) {
      if (sawNamed) {
        diags_.report(DiagKind::Syntax, a.value->range, "positional argument after a named one");
        ok = false;
        continue;
      }
      if (positional >= def.params.size()) {
        diags_.report(DiagKind::TooManyArguments, a.value->range,
                      def.name + "() takes at most " + std::to_string(def.params.size()) + " argument" +
                          (def.params.size() == 1 ? "" : "s"))
            .note(def.nameRange, "'" + def.name + "' declared here");
        ok = false;
        continue;
      }
      name = def.params[positional++].name;
    } else {
      sawNamed = true;
      std::vector<std::string> names;
      for (const ast::Param& p : def.params) names.push_back(p.name);
      if (std::find(names.begin(), names.end(), a.name) == names.end()) {
        Diagnostic& d = diags_.report(DiagKind::UnknownArgument, a.nameRange,
                                      def.name + "() has no parameter '" + a.name + "'");
        suggest(d, a.nameRange, a.name, names);
        d.note(def.nameRange, "'" + def.name + "' declared here");
        ok = false;
        continue;
      }
      name = a.name;
    }
    if (bound.count(name) != 0) {
      diags_.report(DiagKind::DuplicateArgument, a.name.empty() ? a.value->range : a.nameRange,
                    "argument '" + name + "' of " + def.name + "() is given twice")
          .note(where[name], "first given here");
      ok = false;
      continue;
    }
    if (v.ty == Ty::Error) ok = false;
    bound[name] = v;
    where[name] = a.value->range;
  }
  if (activeCalls_.count(def.name) != 0) {
    diags_.report(DiagKind::Cycle, c.range, "'" + def.name + "' calls itself");
    return errorValue();
  }
  // Defaults and the body see the definition's parameters only, never the caller's.
  std::vector<std::map<std::string, Value>> saved;
  saved.swap(scopes_);
  for (const ast::Param& p : def.params) {
    if (bound.count(p.name) != 0) continue;
    if (p.value == nullptr) {
      // After an argument error (often a misspelt name) a missing one is its echo.
      if (ok)
        diags_.report(DiagKind::MissingArgument, c.range, def.name + "() needs argument '" + p.name + "'")
            .note(p.nameRange, "parameter declared here without a default");
      ok = false;
      continue;
    }
    Value dv = eval(*p.value);
    if (dv.ty == Ty::Error) ok = false;
    bound[p.name] = dv;
  }
  Value result;
  if (ok) {
    activeCalls_.insert(def.name);
    scopes_.push_back(bound);
    result = eval(*def.value);
    scopes_.pop_back();
    activeCalls_.erase(def.name);
  }
  scopes_.swap(saved);
  (void)sym;
  if (!ok || result.ty == Ty::Error) return errorValue();
  Ty want = def.bindKind == ast::BindKind::Dataset    ? Ty::Dataset
            : def.bindKind == ast::BindKind::Pipeline ? Ty::Pipeline
            : def.bindKind == ast::BindKind::Encoder  ? Ty::Encoder
            : def.bindKind == ast::BindKind::Objective ? Ty::Objective
                                                       : result.ty;
  if (result.ty != want) {
    diags_.report(DiagKind::TypeMismatch, c.range,
                  def.name + "() is declared as " + std::string(tyName(want)) + " but returns " +
                      std::string(tyName(result.ty)))
        .note(def.value->range, "its body");
    return errorValue();
  }
  return result;
}

Value Checker::evalBinary(const ast::ExprBinary& b) {
  Value l = eval(*b.lhs);
  Value r = eval(*b.rhs);
  if (l.ty == Ty::Error || r.ty == Ty::Error) return errorValue();
  auto mismatch = [&]() {
    diags_.report(DiagKind::TypeMismatch, b.opRange.end > b.opRange.begin ? b.opRange : b.range,
                  "operator '" + std::string(ast::toString(b.op)) + "' cannot combine " + std::string(tyName(l.ty)) +
                      " and " + std::string(tyName(r.ty)));
    return errorValue();
  };
  Value v;
  switch (b.op) {
    case ast::BinaryOp::Pow: {
      if (l.ty != Ty::Int || r.ty != Ty::Int) return mismatch();
      if (r.num != 3) {
        diags_.report(DiagKind::ValueRange, b.rhs->range,
                      "a shape power must be 3 (a cube, e.g. 96^3); write other shapes as AxBxC");
        return errorValue();
      }
      if (l.num < 1 || l.num > 4096) {
        diags_.report(DiagKind::ValueRange, b.lhs->range, "a shape side must be between 1 and 4096 voxels");
        return errorValue();
      }
      v.ty = Ty::Shape;
      auto s = static_cast<int64_t>(l.num);
      v.shape = {s, s, s};
      return v;
    }
    case ast::BinaryOp::Mul:
    case ast::BinaryOp::Div:
    case ast::BinaryOp::Add:
    case ast::BinaryOp::Sub: {
      bool mul = b.op == ast::BinaryOp::Mul;
      if (mul && isNumeric(l.ty) && r.ty == Ty::Objective) std::swap(l, r);
      if (mul && l.ty == Ty::Objective && isNumeric(r.ty)) {
        if (!(r.num > 0)) {
          diags_.report(DiagKind::ValueRange, b.lhs->range.begin == r.range.begin ? b.lhs->range : b.rhs->range,
                        "objective weights must be positive; got " + ir::formatNumber(r.num));
          return errorValue();
        }
        v = l;
        for (ir::ObjectiveTerm& t : v.objective.terms) t.weight *= r.num;
        return v;
      }
      if (b.op == ast::BinaryOp::Add && l.ty == Ty::Objective && r.ty == Ty::Objective) {
        v = l;
        for (const ir::ObjectiveTerm& t : r.objective.terms) v.objective.terms.push_back(t);
        for (const SourceRange& o : r.cubeOrigins) v.cubeOrigins.push_back(o);
        return v;
      }
      if (isNumeric(l.ty) && isNumeric(r.ty)) {
        bool isInt = l.ty == Ty::Int && r.ty == Ty::Int;
        switch (b.op) {
          case ast::BinaryOp::Mul: v.num = l.num * r.num; break;
          case ast::BinaryOp::Add: v.num = l.num + r.num; break;
          case ast::BinaryOp::Sub: v.num = l.num - r.num; break;
          default:
            if (r.num == 0) {
              diags_.report(DiagKind::ValueRange, b.rhs->range, "division by zero");
              return errorValue();
            }
            v.num = l.num / r.num;
            isInt = isInt && std::fmod(l.num, r.num) == 0;
        }
        v.ty = isInt ? Ty::Int : Ty::Float;
        if (isInt && std::fabs(v.num) > 4.0e15) {
          diags_.report(DiagKind::ValueRange, b.range, "integer result " + ir::formatNumber(v.num) + " is too large");
          return errorValue();
        }
        return v;
      }
      bool sameUnit = l.ty == r.ty && (l.ty == Ty::Length || l.ty == Ty::Fraction || l.ty == Ty::Voxels);
      if (sameUnit && (b.op == ast::BinaryOp::Add || b.op == ast::BinaryOp::Sub)) {
        v.ty = l.ty;
        v.num = b.op == ast::BinaryOp::Add ? l.num + r.num : l.num - r.num;
        return v;
      }
      if ((mul || b.op == ast::BinaryOp::Div) && (l.ty == Ty::Length || l.ty == Ty::Fraction) && isNumeric(r.ty)) {
        v.ty = l.ty;
        v.num = mul ? l.num * r.num : l.num / r.num;
        return v;
      }
      return mismatch();
    }
    case ast::BinaryOp::Range: {
      bool numeric = isNumeric(l.ty) && isNumeric(r.ty);
      if (!numeric && (!(l.ty == Ty::Fraction || l.ty == Ty::Length) || l.ty != r.ty)) return mismatch();
      if (!(l.num < r.num)) {
        diags_.report(DiagKind::ValueRange, b.range,
                      "a range must go from low to high; got " + ir::formatNumber(l.num) + " .. " + ir::formatNumber(r.num));
        return errorValue();
      }
      v.ty = Ty::Range;
      v.num = l.num;
      v.hi = r.num;
      return v;
    }
    case ast::BinaryOp::Compose: {
      if (l.ty != Ty::Pipeline || r.ty != Ty::Pipeline) {
        if (l.ty == Ty::Function) typeMismatch(l, Ty::Pipeline, b.lhs->range, "the left side of '>>'");
        if (r.ty == Ty::Function) typeMismatch(r, Ty::Pipeline, b.rhs->range, "the right side of '>>'");
        if (l.ty == Ty::Function || r.ty == Ty::Function) return errorValue();
        return mismatch();
      }
      v = l;
      for (const ir::PipelineOp& op : r.pipeline.ops) v.pipeline.ops.push_back(op);
      for (const SourceRange& o : r.opOrigins) v.opOrigins.push_back(o);
      if (r.pipelineSetsShape) {
        v.pipelineSetsShape = true;
        v.shapeOrigin = r.shapeOrigin;
      }
      return v;
    }
    case ast::BinaryOp::Apply: {
      if (r.ty == Ty::Function) {
        typeMismatch(r, Ty::Pipeline, b.rhs->range, "the right side of '|>'");
        return errorValue();
      }
      if (l.ty != Ty::Dataset || r.ty != Ty::Pipeline) return mismatch();
      warnCropPadding(l, r.pipeline, r.opOrigins);
      v = l;
      v.ty = Ty::Data;
      v.pipeline = r.pipeline;
      v.opOrigins = r.opOrigins;
      if (r.pipelineSetsShape) {
        v.pipelineSetsShape = true;
        v.shapeOrigin = r.shapeOrigin;
      }
      flowShape(v, r.pipeline);
      return v;
    }
  }
  return errorValue();
}

void Checker::suggestPercentage(Diagnostic& d, const ast::Expr& value) {
  // `mask = 60` meant 60%: a whole number up to 100 where a fraction is expected.
  const auto* n = value.as<ast::ExprNumber>();
  if (n == nullptr || !n->isInteger || n->value <= 1 || n->value > 100) return;
  std::string written(sm_.text(value.range));
  d.note("a fraction is written as a percentage (" + written + "%) or as a number below 1 (" +
         ir::formatNumber(n->value / 100) + ")");
  d.fixit(value.range, written + "%");
}

void Checker::warnCropPadding(const Value& data, const ir::Pipeline& pipeline, const std::vector<SourceRange>& origins,
                              SourceRange usedAt) {
  // Only a synthetic volume's size is known at check time (folder volumes are not read).
  if (data.dataset.kind != ir::DataKind::Synthetic || !data.shapeKnown) return;
  Value flowing = data;
  for (size_t i = 0; i < pipeline.ops.size(); ++i) {
    const ir::PipelineOp& op = pipeline.ops[i];
    if (op.kind == ir::OpKind::Crop && flowing.shapeKnown) {
      bool larger = false;
      ir::Shape3 fits{};
      for (size_t k = 0; k < 3; ++k) {
        larger = larger || op.size[k] > flowing.shape[k];
        fits[k] = std::min(op.size[k], flowing.shape[k]);
      }
      // One warning per crop and volume size, however many stages share the pipeline.
      bool first = larger && i < origins.size() &&
                   paddingWarned_.insert({origins[i].file, origins[i].begin, flowing.shape}).second;
      if (first) {
        Diagnostic& d = diags_.report(DiagKind::CropPadding, origins[i],
                                      "crop " + ir::formatShape(op.size) + " is larger than the volume (" +
                                          ir::formatShape(flowing.shape) + "): the volume is zero-padded to fill it");
        if (usedAt.valid()) d.note(usedAt, "the volumes of this data set go through it here");
        d.note("a crop cuts the centre of the volume; where the volume is smaller it pads with zeros, which the "
               "encoder then learns as content");
        d.note("the largest crop without padding is " + ir::formatShape(fits));
      }
    }
    ir::Pipeline one;
    one.ops.push_back(op);
    flowShape(flowing, one);
  }
}

Value Checker::evalDecl(Symbol& s) {
  if (s.state == Symbol::State::Done) return s.value;
  if (s.state == Symbol::State::InProgress) {
    diags_.report(DiagKind::Cycle, s.decl->nameRange, "'" + s.decl->name + "' depends on itself");
    return errorValue();
  }
  s.state = Symbol::State::InProgress;
  Value v;
  if (const auto* b = s.decl->as<ast::DeclBind>()) {
    v = evalBind(*b);
  } else if (const auto* p = s.decl->as<ast::DeclPretrain>()) {
    v = evalPretrain(*p);
  }
  s.value = v;
  s.state = Symbol::State::Done;
  return v;
}

Value Checker::evalBind(const ast::DeclBind& d) {
  if (d.isFunction) {
    Value f;
    f.ty = Ty::Function;
    f.function = d.name;
    return f;
  }
  Ty want = bindTy(d.bindKind);
  Value v = evalAs(*d.value, want);
  if (want == Ty::Error || v.ty == Ty::Error || v.ty == want) return v;
  typeMismatch(v, want, d.value->range, std::string(ast::toString(d.bindKind)) + " '" + d.name + "'");
  return errorValue();
}

bool Checker::checkDivisible(const Value& data, const ir::Encoder& enc, SourceRange encoderRange, const char* what) {
  int64_t stride = enc.totalStride();
  bool ok = true;
  for (int64_t side : data.shape) ok = ok && side % stride == 0;
  if (ok) return true;
  std::string shape = ir::formatShape(data.shape);
  Diagnostic& d = diags_.report(DiagKind::ShapeDivisibility, data.shapeOrigin,
                                std::string(what) + " " + shape +
                                    (enc.kind == ir::EncoderKind::Vit
                                         ? " is not divisible by the ViT's patch size " + std::to_string(stride) +
                                               ": the patches must tile the input"
                                         : " is not divisible by the encoder's total stride " + std::to_string(stride) +
                                               " (" + std::to_string(enc.unet.stages - 1) + " downsamplings)"));
  d.note(encoderRange, "encoder '" + std::string(sm_.text(encoderRange)) + "' declared here");
  ir::Shape3 down{}, up{};
  for (size_t i = 0; i < 3; ++i) {
    down[i] = std::max(stride, data.shape[i] / stride * stride);
    up[i] = (data.shape[i] + stride - 1) / stride * stride;
  }
  ir::Shape3 nearest{};
  for (size_t i = 0; i < 3; ++i) nearest[i] = data.shape[i] - down[i] < up[i] - data.shape[i] ? down[i] : up[i];
  std::string downS = ir::formatShape(down), upS = ir::formatShape(up);
  d.note(downS == upS ? "nearest valid size: " + upS : "nearest valid sizes: " + downS + " or " + upS);
  // Offer the replacement only where the origin is a shape literal the user wrote.
  std::string_view origin = sm_.text(data.shapeOrigin);
  if (!origin.empty() && origin.find('(') == std::string_view::npos) d.fixit(data.shapeOrigin, ir::formatShape(nearest));
  return false;
}

void Checker::checkCube(const Value& data, const Value& objective) {
  for (size_t t = 0; t < objective.objective.terms.size(); ++t) {
    const ir::ObjectiveTerm& term = objective.objective.terms[t];
    if (term.kind != ir::ObjectiveKind::Mae) continue;
    int64_t cube = term.mae.cube;
    bool ok = true;
    for (int64_t side : data.shape) ok = ok && side % cube == 0;
    if (ok) continue;
    SourceRange where = t < objective.cubeOrigins.size() ? objective.cubeOrigins[t] : objective.range;
    Diagnostic& d = diags_.report(DiagKind::ShapeDivisibility, where,
                                  "MAE mask cube " + std::to_string(cube) + " does not tile the input " +
                                      ir::formatShape(data.shape));
    d.note(data.shapeOrigin, "input size set here");
    std::vector<int64_t> divisors;
    for (int64_t c = 1; c <= data.shape[0]; ++c) {
      bool all = true;
      for (int64_t side : data.shape) all = all && side % c == 0;
      if (all) divisors.push_back(c);
    }
    int64_t best = 1;
    for (int64_t c : divisors)
      if (std::llabs(c - cube) < std::llabs(best - cube)) best = c;
    d.note("nearest cube that tiles it: " + std::to_string(best));
  }
}

// Spacing and intensity normalisation of an evaluation's pipeline must be those the
// encoder was pretrained with (the FOMO25 baseline fine-tuned at native spacing and
// predicted at 1 mm: a silent accuracy loss). Crops may differ.
bool Checker::checkPipelinesAgree(const Value& pre, const Value& eval, SourceRange evalAt, bool finetune) {
  struct Facts {
    double mm = 0;  // 0: native spacing
    SourceRange mmAt;
    int zscore = 0;  // 0 none, 1 over all voxels, 2 over non-zero voxels
    SourceRange zAt;
    bool clip = false;  // and its percentiles
    double clipLo = 0, clipHi = 0;
    SourceRange clipAt;
  };
  auto facts = [](const Value& v, SourceRange fallback) {
    Facts f;
    f.mmAt = f.zAt = f.clipAt = fallback;
    for (size_t i = 0; i < v.pipeline.ops.size(); ++i) {
      const ir::PipelineOp& op = v.pipeline.ops[i];
      SourceRange at = i < v.opOrigins.size() ? v.opOrigins[i] : fallback;
      if (op.kind == ir::OpKind::Resample) {
        f.mm = op.mm;
        f.mmAt = at;
      }
      if (op.kind == ir::OpKind::ZScore) {
        f.zscore = op.nonzero ? 2 : 1;
        f.zAt = at;
      }
      if (op.kind == ir::OpKind::Clip) {
        f.clip = true;
        f.clipLo = op.lo;
        f.clipHi = op.hi;
        f.clipAt = at;
      }
    }
    return f;
  };
  // Without the step in question, notes point at the pretraining's pipeline as a whole.
  Facts a = facts(pre, pre.dataOrigin.valid() ? pre.dataOrigin : pre.range), b = facts(eval, evalAt);
  const char* use = finetune ? "fine-tuning" : "evaluation";
  auto spacing = [](double mm) { return mm == 0 ? std::string("native spacing") : ir::formatNumber(mm) + "mm"; };
  if (a.mm != b.mm) {
    diags_.report(DiagKind::PipelineMismatch, b.mmAt,
                  std::string(use) + " data are resampled to " + spacing(b.mm) + ", but the encoder was pretrained at " +
                      spacing(a.mm))
        .note(a.mmAt, a.mm == 0 ? "the pretraining's pipeline, which does not resample"
                                : "pretraining resamples here")
        .note("use the pretraining's spacing, e.g. `resample(" + (a.mm == 0 ? std::string("1") : ir::formatNumber(a.mm)) +
              "mm)`, in both pipelines");
    return false;
  }
  if (a.clip != b.clip || (a.clip && (a.clipLo != b.clipLo || a.clipHi != b.clipHi))) {
    auto clipping = [](const Facts& f) {
      return f.clip ? "clipped at " + ir::formatNumber(f.clipLo * 100) + "% .. " + ir::formatNumber(f.clipHi * 100) + "%"
                    : std::string("not clipped");
    };
    Diagnostic& diag = diags_.report(DiagKind::NormalizationMismatch, b.clipAt,
                                     std::string(use) + " data are " + clipping(b) + ", but the encoder was pretrained on " +
                                         "data " + clipping(a));
    diag.note(a.clipAt, b.clip && !a.clip ? "the pretraining's pipeline, which does not clip" : "pretraining clips here");
    diag.note("intensities the encoder never saw in pretraining shift its features; use the same clip() in both "
              "pipelines");
  }
  if (a.zscore != b.zscore) {
    auto norm = [](int z) {
      return z == 0 ? std::string("no z-score") : z == 1 ? std::string("a z-score over all voxels")
                                                         : std::string("a z-score over non-zero voxels");
    };
    diags_.report(DiagKind::PipelineMismatch, b.zAt,
                  std::string(use) + " data get " + norm(b.zscore) + ", but the encoder was pretrained with " + norm(a.zscore))
        .note(a.zAt, a.zscore == 0 ? "the pretraining's pipeline, which has no z-score" : "pretraining normalises here");
    return false;
  }
  return true;
}

Value Checker::evalPretrain(const ast::DeclPretrain& d) {
  const Signature& sig = *findSignature("pretrain");
  std::map<std::string, Bound> fields;
  std::vector<ArgItem> items;
  for (const ast::Field& f : d.fields) items.push_back({f.name, f.nameRange, f.value});
  bool ok = bindArguments(sig, items, BindSite::Pretrain, d.name, fields);
  for (const Param& req : sig.params) {
    if (!req.required() || fields.count(req.name) != 0) continue;
    if (ok) {
      Diagnostic& diag = diags_.report(DiagKind::MissingField, d.nameRange,
                                       "pretrain '" + d.name + "' does not set '" + req.name + "'");
      std::string example = req.name == "data"      ? "data = corpus |> prep"
                            : req.name == "encoder" ? "encoder = unet(width = 32, stages = 5)"
                                                    : "objective = mae(mask = 60%)";
      diag.note("add a field such as `" + example + "`");
    }
    ok = false;
  }
  if (!ok) return errorValue();
  for (const auto& [name, bound] : fields)
    if (bound.value.ty == Ty::Error) return errorValue();
  fillDefaults(sig, fields, d.nameRange);

  const Value& data = fields["data"].value;
  const Value& enc = fields["encoder"].value;
  const Value& obj = fields["objective"].value;
  ir::Encoder encoder = enc.encoder;
  encoder.setInChannels(1);
  if (data.dataset.channelCount() > 1) {
    diags_.report(DiagKind::Data, fields["data"].range,
                  "pretraining takes single-channel volumes, but this data set has " +
                      std::to_string(data.dataset.channelCount()) + " channels per sample")
        .note("pretrain on a fomo60k(...) folder, where every scan is its own sample");
    return errorValue();
  }
  if (!data.shapeKnown) {
    reportUnknownShape(fields["data"].range);
    return errorValue();
  }
  // A size the encoder cannot tile is reported once: fixing it usually fixes the mask
  // cube too, so the cube is checked only against sizes the encoder accepts.
  if (checkDivisible(data, encoder, fields["encoder"].range, data.pipelineSetsShape ? "crop" : "input size"))
    checkCube(data, obj);
  // A reconstruction objective needs a decoder (the light MAE decoder is the default).
  bool reconstructs = false;
  for (const ir::ObjectiveTerm& t : obj.objective.terms) reconstructs = reconstructs || t.kind == ir::ObjectiveKind::Mae;
  if (fields["decoder"].present) {
    bool light = fields["decoder"].value.flag;
    if (reconstructs && !light) {
      diags_.report(DiagKind::ObjectiveHead, fields["decoder"].range,
                    "mae reconstructs the input, so pretrain '" + d.name + "' needs a decoder")
          .fixit(fields["decoder"].range, "light")
          .note(fields["objective"].range, "the objective is declared here");
      return errorValue();
    }
    if (!reconstructs && light) {
      diags_.report(DiagKind::UnusedDeclaration, fields["decoder"].range,
                    "the decoder is unused: no term of the objective reconstructs the input");
    }
  }
  bool stochastic = false;
  for (const ir::PipelineOp& op : data.pipeline.ops) stochastic = stochastic || op.isRandom();
  for (size_t t = 0; t < obj.objective.terms.size(); ++t) {
    if (obj.objective.terms[t].kind != ir::ObjectiveKind::SimClr || stochastic) continue;
    SourceRange where = t < obj.cubeOrigins.size() ? obj.cubeOrigins[t] : fields["objective"].range;
    Diagnostic& diag = diags_.report(DiagKind::ContrastiveViews, where,
                                     "simclr compares two random views of each volume, but the data of pretrain '" +
                                         d.name + "' has no random augmentation: both views would be identical");
    diag.note(fields["data"].range, "data prepared here");
    diag.note("add an augmentation such as flip(), noise(sigma = 0.05) or gamma(0.7 .. 1.5) to the pipeline");
    SourceRange dataRange = fields["data"].range;
    diag.fixit(dataRange, std::string(sm_.text(dataRange)) + " >> flip() >> noise(sigma = 0.05)");
    return errorValue();
  }
  ir::Stage stage;
  stage.kind = ir::StageKind::Pretrain;
  stage.name = d.name;
  ir::PretrainStage& p = stage.pretrain;
  p.name = d.name;
  p.data = data.dataset;
  p.pipeline = data.pipeline;
  p.encoder = encoder;
  p.objective = obj.objective;
  if (fields["optimizer"].present) p.optimizer = fields["optimizer"].value.optimizer;
  p.epochs = static_cast<int64_t>(fields["epochs"].value.num);
  p.batch = static_cast<int64_t>(fields["batch"].value.num);
  p.seed = static_cast<uint64_t>(fields["seed"].value.num);
  if (fields["init"].present) {
    const Value& from = fields["init"].value;
    const ir::Encoder& a = from.encoder;
    if (!(a == encoder)) {
      diags_.report(DiagKind::InitMismatch, fields["encoder"].range,
                    "pretrain '" + d.name + "' starts from '" + from.model + "', whose encoder is " + ir::print(a) +
                        ", not " + ir::print(encoder))
          .note(from.encoderOrigin, "'" + from.model + "' declares its encoder here")
          .note("a stage that continues another's training must use the same encoder");
      return errorValue();
    }
    p.init = from.model;
  }
  if (p.optimizer.warmupEpochs > 0 && p.optimizer.warmupEpochs >= p.epochs) {
    SourceRange at = fields["optimizer"].present ? fields["optimizer"].range : d.nameRange;
    Diagnostic& diag = diags_.report(
        DiagKind::WarmupLength, at,
        "the warm-up of " + std::to_string(p.optimizer.warmupEpochs) + " epoch" +
            (p.optimizer.warmupEpochs == 1 ? "" : "s") + " is not shorter than the run (" + std::to_string(p.epochs) +
            " epoch" + (p.epochs == 1 ? "" : "s") + "): the learning rate never reaches lr = " +
            ir::formatNumber(p.optimizer.lr));
    if (fields["epochs"].present) diag.note(fields["epochs"].range, "epochs set here");
    diag.note("warm-up ramps the learning rate up from lr/1000; make it shorter than the run, or train longer");
  }
  if (p.batch > p.data.count()) {
    diags_.report(DiagKind::ValueRange, fields["batch"].present ? fields["batch"].range : d.nameRange,
                  "batch " + std::to_string(p.batch) + " is larger than the data set (" +
                      std::to_string(p.data.count()) + " samples)");
    return errorValue();
  }
  // The declared device memory: a warning (not an error) when the estimate exceeds it.
  if (fields["memory"].present) {
    CostEstimate cost = estimateCost(p);
    double state = static_cast<double>(cost.parameters) * 4.0 * 4.0;  // weights, gradients, AdamW m and v
    double need = state + cost.activationMiB * 1024.0 * 1024.0;
    double budget = fields["memory"].value.num;
    if (need > budget) {
      auto gib = [](double b) { return ir::formatNumber(std::round(b / (1024.0 * 1024 * 1024) * 100) / 100) + " GiB"; };
      double perSample = cost.activationMiB * 1024.0 * 1024.0 / static_cast<double>(p.batch);
      auto fits = static_cast<int64_t>((budget - state) / perSample);
      Diagnostic& diag = diags_.report(
          DiagKind::MemoryBudget, fields["memory"].range,
          "pretrain '" + d.name + "' needs about " + gib(need) + " (" + gib(state) + " for parameters and optimizer " +
              "state, " + gib(need - state) + " of activations at batch " + std::to_string(p.batch) + "), more than " +
              "memory = " + std::string(sm_.text(fields["memory"].range)));
      if (fits >= 1) {
        diag.note("batch " + std::to_string(fits) + " would fit");
      } else {
        diag.note("even batch 1 does not fit: use a smaller crop or a narrower encoder");
      }
    }
  }

  typed_ += "pretrain " + d.name + " : Pretrain\n";
  typed_ += "  data      : Data = " + ir::print(p.data) + " |> " + ir::print(p.pipeline) + "\n";
  typed_ += "  input     : Shape = " + ir::formatShape(data.shape) + "\n";
  typed_ += "  encoder   : Encoder = " + ir::print(p.encoder) + "  // " +
            std::to_string(ir::parameterCount(p.encoder)) +
            (p.encoder.kind == ir::EncoderKind::Vit ? " parameters, patch " : " parameters, stride ") +
            std::to_string(p.encoder.totalStride()) + "\n";
  typed_ += "  objective : Objective = " + ir::print(p.objective) + "\n";
  typed_ += "  optimizer : Optimizer = " + ir::print(p.optimizer) + "\n";
  typed_ += "  epochs    : Int = " + std::to_string(p.epochs) + "\n";
  typed_ += "  batch     : Int = " + std::to_string(p.batch) + "\n";
  typed_ += "  seed      : Int = " + std::to_string(p.seed) + "\n";
  if (!p.init.empty()) typed_ += "  init      : Pretrain = " + p.init + "\n";

  if (!p.init.empty()) stage.deps.push_back(stageIndex_.at(p.init));
  stageIndex_[d.name] = experiment_.stages.size();
  experiment_.stages.push_back(std::move(stage));
  Value v;
  v.ty = Ty::Model;
  v.model = d.name;
  v.encoder = encoder;
  v.pipeline = data.pipeline;
  v.opOrigins = data.opOrigins;
  v.pipelineSetsShape = data.pipelineSetsShape;
  v.shapeOrigin = data.shapeOrigin;
  v.range = fields["encoder"].range;
  v.encoderOrigin = fields["encoder"].range;
  v.dataOrigin = fields["data"].range;
  return v;
}

void Checker::checkEvaluate(const ast::DeclEvaluate& d, size_t /*order*/) {
  // The model.
  auto it = symbols_.find(d.model);
  Value model;
  if (it == symbols_.end()) {
    std::vector<std::string> names;
    for (const auto& [name, sym] : symbols_)
      if (sym.decl->is<ast::DeclPretrain>()) names.push_back(name);
    Diagnostic& diag = diags_.report(DiagKind::UnknownName, d.modelRange, "unknown pretrain stage '" + d.model + "'");
    suggest(diag, d.modelRange, d.model, names);
  } else if (it->second.decl->is<ast::DeclEvaluate>()) {
    diags_.report(DiagKind::TypeMismatch, d.modelRange,
                  "evaluate needs a pretrain stage, but '" + d.model + "' is an evaluation")
        .note(it->second.decl->nameRange, "'" + d.model + "' declared here");
  } else {
    ++it->second.uses;
    model = evalDecl(it->second);
    if (model.ty != Ty::Model && model.ty != Ty::Error) {
      diags_.report(DiagKind::TypeMismatch, d.modelRange,
                    "evaluate needs a pretrain stage, but '" + d.model + "' is " + std::string(tyName(model.ty)))
          .note(it->second.decl->nameRange, "'" + d.model + "' declared here");
      model = errorValue();
    }
  }

  // The task: dataset.label.
  Value data;
  std::string label;
  ir::LabelKind labelKind = ir::LabelKind::Binary;
  if (d.task.size() != 2) {
    diags_.report(DiagKind::TypeMismatch, {d.taskRanges.front().file, d.taskRanges.front().begin, d.taskRanges.back().end},
                  "evaluate needs a task written as dataset.label, e.g. `clinic.lesion`");
  } else {
    auto ds = symbols_.find(d.task[0]);
    if (ds == symbols_.end()) {
      Diagnostic& diag = diags_.report(DiagKind::UnknownName, d.taskRanges[0], "unknown dataset '" + d.task[0] + "'");
      std::vector<std::string> names;
      for (const auto& [name, sym] : symbols_) names.push_back(name);
      suggest(diag, d.taskRanges[0], d.task[0], names);
    } else {
      ++ds->second.uses;
      data = evalDecl(ds->second);
      if (data.ty != Ty::Dataset && data.ty != Ty::Error) {
        diags_.report(DiagKind::TypeMismatch, d.taskRanges[0],
                      "'" + d.task[0] + "' is " + std::string(tyName(data.ty)) + ", not a dataset");
        data = errorValue();
      }
      if (data.ty == Ty::Dataset && data.dataset.kind == ir::DataKind::Folder) {
        label = d.task[1];
        if (!data.dataset.folder.hasLabel) {
          diags_.report(DiagKind::UnknownLabel, d.taskRanges[1], "dataset '" + d.task[0] + "' has no labels")
              .note("fomo60k folders are unlabelled; labelled data are fomo25(...) folders or folder(...) with a table");
          data = errorValue();
        } else if (label != data.dataset.folder.labelName) {
          const std::string& name = data.dataset.folder.labelName;
          Diagnostic& diag = diags_.report(DiagKind::UnknownLabel, d.taskRanges[1],
                                           "dataset '" + d.task[0] + "' has no label '" + label + "'");
          diag.fixit(d.taskRanges[1], name);
          diag.note(data.dataset.folder.layout == ir::FolderData::Layout::Fomo25
                        ? std::string("a fomo25 folder's label (labels/<subject>/<session>/label.txt) is called `label`")
                        : "this folder's label is its table column `" + name + "`");
          data = errorValue();
        } else {
          labelKind = data.dataset.folder.labelKind;
        }
      } else if (data.ty == Ty::Dataset) {
        static const std::vector<std::string> kLabels = {"lesion", "age"};
        label = d.task[1];
        if (label == "lesion") {
          labelKind = ir::LabelKind::Binary;
        } else if (label == "age") {
          labelKind = ir::LabelKind::Continuous;
        } else {
          Diagnostic& diag = diags_.report(DiagKind::UnknownLabel, d.taskRanges[1],
                                           "dataset '" + d.task[0] + "' has no label '" + label + "'");
          suggest(diag, d.taskRanges[1], label, kLabels);
          diag.note("synthetic data sets provide: lesion (binary), age (years)");
          data = errorValue();
        }
      }
    }
  }

  // Protocol arguments.
  const Signature& sig = *findSignature("evaluate");
  std::map<std::string, Bound> args;
  std::vector<ArgItem> items;
  for (const ast::Arg& a : d.args) items.push_back({a.name, a.nameRange, a.value});
  bool ok = bindArguments(sig, items, BindSite::Evaluate, d.name, args);
  bool finetune = args.count("protocol") != 0 && args["protocol"].value.flag;
  for (const Param& only : sig.params) {
    auto given = args.find(only.name);
    if ((only.flags & kFinetuneOnly) == 0 || given == args.end() || given->second.value.ty == Ty::Error || finetune)
      continue;
    diags_.report(DiagKind::UnknownArgument, given->second.range,
                  "'" + only.name + "' is an argument of the fine-tuning protocol; a probe does not train the encoder")
        .note("add `protocol = finetune` to fine-tune the encoder on the shots");
    ok = false;
  }
  if (!ok || model.ty != Ty::Model || data.ty != Ty::Dataset) return;
  fillDefaults(sig, args, d.range);
  std::vector<std::string> metricNames;
  std::vector<SourceRange> metricRanges;
  for (const Value& m : args["metrics"].value.items) {
    metricNames.push_back(metricName(m));
    metricRanges.push_back(m.range);
  }

  // The head follows from the task: one number per sample needs a pooled head, a mask
  // a dense decoder; a probe has no decoder at all.
  bool segmentation = labelKind == ir::LabelKind::Mask;
  if (segmentation && !finetune) {
    diags_.report(DiagKind::TaskHead, d.taskRanges[1],
                  "'" + d.task[0] + "." + label + "' is a segmentation; a probe predicts one number per sample")
        .note(std::string("segment with `protocol = finetune`: the encoder is trained with ") +
              (model.encoder.kind == ir::EncoderKind::Vit ? "a per-token patch head (one logit per voxel)"
                                                          : "a dense U-Net decoder"));
    return;
  }
  if (args["head"].present && args["head"].value.flag != segmentation) {
    bool dense = args["head"].value.flag;
    Diagnostic& diag = diags_.report(
        DiagKind::TaskHead, args["head"].range,
        dense ? "a dense decoder predicts a mask, but '" + d.task[0] + "." + label + "' is one number per sample"
              : "a pooled head predicts one number, but '" + d.task[0] + "." + label + "' is a segmentation mask");
    diag.fixit(args["head"].range, dense ? "pooled" : "dense");
    return;
  }
  if (args["tolerance"].present && !segmentation) {
    diags_.report(DiagKind::UnknownArgument, args["tolerance"].range,
                  "'tolerance' is the surface-distance tolerance of segmentation metrics; '" + d.task[0] + "." + label +
                      "' is not a segmentation");
    return;
  }

  // The metrics to report, in order: the evaluation's own, its data set's task's, or
  // the label kind's.
  std::vector<std::string> metrics;
  std::string metricsFrom;
  if (args["metrics"].present) {
    if (!checkMetricsSuit(metricNames, metricRanges, args["metrics"].range, labelKind,
                          "'" + d.task[0] + "." + label + "'", SourceRange{}))
      return;
    metrics = metricNames;
  } else if (!data.taskMetrics.empty()) {
    for (const Value& m : data.taskMetrics) metrics.push_back(metricName(m));
    metricsFrom = " (from the task of '" + d.task[0] + "')";
  } else {
    metrics = metricsOf(labelKind);
    metricsFrom = " (the default for " + labelKindWord(labelKind) + " labels)";
  }

  // The evaluation's own preprocessing must match what the encoder was pretrained on.
  Value evalPipeline = model;
  SourceRange evalPipelineAt = model.range;
  if (args["pipeline"].present) {
    const Value& pv = args["pipeline"].value;
    evalPipeline.pipeline = pv.pipeline;
    evalPipeline.opOrigins = pv.opOrigins;
    evalPipeline.pipelineSetsShape = pv.pipelineSetsShape;
    evalPipeline.shapeOrigin = pv.shapeOrigin;
    evalPipelineAt = args["pipeline"].range;
    if (!checkPipelinesAgree(model, evalPipeline, evalPipelineAt, finetune)) return;
  }

  ir::Stage stage;
  stage.kind = ir::StageKind::Evaluate;
  stage.name = d.name;
  ir::EvaluateStage& e = stage.evaluate;
  e.name = d.name;
  e.pretrain = model.model;
  e.data = data.dataset;
  e.encoder = model.encoder;
  // Augmentations are for training views only: evaluation sees the deterministic part.
  for (const ir::PipelineOp& op : evalPipeline.pipeline.ops)
    if (!op.isRandom()) e.pipeline.ops.push_back(op);
  if (finetune) {
    e.protocol = ir::Protocol::Finetune;
    e.epochs = static_cast<int64_t>(args["epochs"].value.num);
    e.lr = args["lr"].value.num;
    if (args["batch"].present) e.batch = static_cast<int64_t>(args["batch"].value.num);
    if (args["batches"].present) e.batches = static_cast<int64_t>(args["batches"].value.num);
    e.gradClip = args["clip"].value.num;
    if (e.data.channelCount() > e.encoder.inChannels()) {
      diags_.report(DiagKind::StemReinit, d.taskRanges[0],
                    "'" + d.task[0] + "' has " + std::to_string(e.data.channelCount()) +
                        " channels but '" + model.model + "' was pretrained on " +
                        std::to_string(e.encoder.inChannels()) + ": fine-tuning re-initialises the " +
                        (e.encoder.kind == ir::EncoderKind::Vit ? "patch embedding" : "first convolution"))
          .note("the rest of the encoder starts from the pretrained weights; the probe protocol instead encodes each "
                "channel with the pretrained stem");
    }
  }
  e.encoder = model.encoder;
  e.label = label;
  e.labelKind = labelKind;
  e.metrics = metrics;
  e.shots = static_cast<int64_t>(args["shots"].value.num);
  if (e.batch > e.shots) {
    diags_.report(DiagKind::ValueRange, args["batch"].range,
                  "batch " + std::to_string(e.batch) + " is larger than shots " + std::to_string(e.shots) +
                      ": a batch holds distinct training samples")
        .fixit(args["batch"].range, std::to_string(e.shots))
        .note("to train on more batches per epoch, set `batches` (e.g. the FOMO25 baseline's 100)");
    return;
  }
  e.repeats = static_cast<int64_t>(args["repeats"].value.num);
  if (args["test"].value.ty == Ty::Site) {
    e.testSite = args["test"].value.str;
  } else {
    e.testFraction = args["test"].value.num;
  }
  e.seed = static_cast<uint64_t>(args["seed"].value.num);
  e.nsdToleranceMm = args["tolerance"].value.num;

  // Sizes: the held-out test set and the pool the shots are drawn from.
  int64_t n = e.data.count();
  auto testCount = static_cast<int64_t>(std::llround(e.testFraction * static_cast<double>(n)));
  testCount = std::clamp<int64_t>(testCount, 1, std::max<int64_t>(1, n - 1));
  if (!e.testSite.empty()) {
    // Out-of-domain: test on one site, draw the shots from the others.
    std::vector<std::string> sites;
    testCount = 0;
    if (e.data.kind == ir::DataKind::Folder)
      for (const ir::FolderSample& smp : e.data.folder.samples) {
        if (std::find(sites.begin(), sites.end(), smp.site) == sites.end() && !smp.site.empty()) sites.push_back(smp.site);
        testCount += smp.site == e.testSite ? 1 : 0;
      }
    SourceRange at = args["test"].range;
    if (sites.empty()) {
      diags_.report(DiagKind::Data, at, "'" + d.task[0] + "' has no sites to test on")
          .note("sites come from a table of subject and site (sites.tsv in the folder, or the `sites` argument)");
      return;
    }
    if (testCount == 0) {
      std::string list;
      for (const std::string& site : sites) list += (list.empty() ? "" : ", ") + site;
      Diagnostic& diag = diags_.report(DiagKind::Data, at, "'" + d.task[0] + "' has no site '" + e.testSite + "'");
      suggest(diag, at, e.testSite, sites, SuggestStyle{false, '"', "site(\"", "\")"});
      diag.note("its sites: " + list);
      return;
    }
    if (testCount == n) {
      diags_.report(DiagKind::Data, at, "every sample of '" + d.task[0] + "' is from site '" + e.testSite +
                                            "': no other site is left to draw the shots from");
      return;
    }
  }
  int64_t pool = n - testCount;
  SourceRange shotsAt = args["shots"].present ? args["shots"].range : d.range;
  int64_t minShots = labelKind == ir::LabelKind::Binary ? 2 : labelKind == ir::LabelKind::Mask ? 1 : 3;
  if (e.shots > pool || e.shots < minShots || pool < minShots) {
    Diagnostic& diag = diags_.report(
        DiagKind::FewShotSize, shotsAt,
        e.shots > pool ? std::to_string(e.shots) + " shots do not fit in the training pool of " + std::to_string(pool) +
                             " subjects"
                       : "a " + std::string(labelKind == ir::LabelKind::Binary ? "binary" : "regression") +
                             " task needs at least " + std::to_string(minShots) + " shots");
    diag.note(taskDatasetRange(d),
              "'" + d.task[0] + "' has " + std::to_string(n) + " subjects; " + std::to_string(testCount) +
                  " are held out for testing (" +
                  (e.testSite.empty() ? "test = " + ir::formatNumber(e.testFraction * 100) + "%"
                                      : "site '" + e.testSite + "'") +
                  ")");
    return;
  }
  if (e.shots == pool && e.repeats > 1) {
    // Every repeat draws the whole pool: the repeats differ in nothing but their seed.
    SourceRange repeatsAt = args["repeats"].present ? args["repeats"].range : shotsAt;
    Diagnostic& diag = diags_.report(
        DiagKind::IdenticalRepeats, repeatsAt,
        "the " + std::to_string(e.shots) + " shots are the whole training pool, so all " + std::to_string(e.repeats) +
            " repeats draw the same samples" + (finetune ? "" : ": identical results, std 0"));
    diag.note(shotsAt, "shots set here; the pool is the " + std::to_string(pool) + " subjects not held out for testing");
    if (args["repeats"].present) diag.fixit(repeatsAt, "1");
  }
  if (e.data.kind == ir::DataKind::Synthetic && labelKind == ir::LabelKind::Binary &&
      (e.data.synthetic.lesionRate <= 0.0 || e.data.synthetic.lesionRate >= 1.0)) {
    diags_.report(DiagKind::ValueRange, d.taskRanges[1],
                  "label 'lesion' of '" + d.task[0] + "' has a single class (lesion_rate = " +
                      ir::formatNumber(e.data.synthetic.lesionRate * 100) + "%); AUROC needs both");
    return;
  }
  if (e.data.kind == ir::DataKind::Folder && labelKind == ir::LabelKind::Binary) {
    size_t positives = 0;
    for (const ir::FolderSample& smp : e.data.folder.samples) positives += smp.label == 1.0 ? 1 : 0;
    if (positives == 0 || positives == e.data.folder.samples.size()) {
      diags_.report(DiagKind::Data, d.taskRanges[1],
                    "every label of '" + d.task[0] + "' is " + (positives == 0 ? "0" : "1") + "; AUROC needs both classes");
      return;
    }
  }
  // The task data go through the pretraining pipeline: they must fit the encoder too.
  Value taskData = data;
  taskData.ty = Ty::Data;
  warnCropPadding(data, evalPipeline.pipeline, evalPipeline.opOrigins, taskDatasetRange(d));
  flowShape(taskData, evalPipeline.pipeline);
  if (evalPipeline.pipelineSetsShape) taskData.shapeOrigin = evalPipeline.shapeOrigin;
  if (!taskData.shapeKnown) {
    reportUnknownShape(d.taskRanges[0]);
    return;
  }
  if (!checkDivisible(taskData, e.encoder, model.range, evalPipeline.pipelineSetsShape ? "crop" : "input size")) return;

  typed_ += "evaluate " + d.name + " : Evaluate\n";
  typed_ += "  model  : Pretrain = " + e.pretrain + "\n";
  typed_ += "  task   : Label = " + d.task[0] + "." + e.label + " (" + std::string(ir::toString(e.labelKind)) +
            ") of " + ir::print(e.data) + "\n";
  typed_ += std::string("  ") + (finetune ? "finetune : Protocol = finetune, epochs = " + std::to_string(e.epochs) +
                                                  ", lr = " + ir::formatNumber(e.lr) + ","
                                            : "probe  : Probe = linear,") +
            " shots = " + std::to_string(e.shots) + ", repeats = " + std::to_string(e.repeats) +
            ", test = " +
            (e.testSite.empty() ? ir::formatNumber(e.testFraction * 100) + "%" : "site(\"" + e.testSite + "\")") + " (" +
            std::to_string(testCount) + " subjects)\n";
  typed_ += "  pipeline : Pipeline = " + ir::print(e.pipeline) + "\n";
  std::string metricList;
  for (const std::string& m : e.metrics) metricList += (metricList.empty() ? "" : ", ") + m;
  typed_ += "  metrics  : List = [" + metricList + "]" + metricsFrom + "\n";

  stage.deps.push_back(stageIndex_.at(e.pretrain));
  experiment_.stages.push_back(std::move(stage));
}

CheckResult Checker::run(const std::vector<const ast::File*>& files, bool library) {
  baseDir_ = std::filesystem::path(sm_.file(files.back()->id).path).parent_path();
  // Resolve: every declaration's name, across files.
  std::vector<const ast::DeclEvaluate*> evaluates;
  for (size_t fi = 0; fi < files.size(); ++fi) {
    for (const ast::Decl* d : files[fi]->decls) {
      if (d->is<ast::DeclSweep>() || d->is<ast::DeclUse>()) continue;  // handled by the front end
      auto [it, inserted] = symbols_.try_emplace(d->name);
      if (!inserted) {
        Diagnostic& diag = diags_.report(DiagKind::DuplicateName, d->nameRange, "'" + d->name + "' is already declared");
        diag.note(it->second.decl->nameRange, "previous declaration here");
        if (const auto* e = d->as<ast::DeclEvaluate>(); e != nullptr && !e->explicitName) {
          diag.note("name this evaluation explicitly: `evaluate other_name = " + e->model + " on ...`");
        }
        continue;
      }
      it->second.decl = d;
      it->second.inPrelude = fi + 1 < files.size();
      if (const auto* e = d->as<ast::DeclEvaluate>()) evaluates.push_back(e);
    }
  }
  // Check and lower: pretrain stages first (in file order), then evaluations.
  const ast::File* main = files.back();
  for (const ast::Decl* d : main->decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (const auto* b = d->as<ast::DeclBind>()) {
      Value v = evalDecl(it->second);
      if (b->isFunction) {
        std::string params;
        for (const ast::Param& p : b->params)
          params += (params.empty() ? "" : ", ") + p.name + (p.value != nullptr ? " = " + ast::printExpr(*p.value) : "");
        typed_ += std::string(ast::toString(b->bindKind)) + " " + b->name + "(" + params + ") : Function = " +
                  ast::printExpr(*b->value) + "\n";
      } else if (v.ty != Ty::Error) {
        std::string shown = v.ty == Ty::Dataset    ? ir::print(v.dataset)
                            : v.ty == Ty::Pipeline ? ir::print(v.pipeline)
                            : v.ty == Ty::Encoder  ? ir::print(v.encoder)
                            : v.ty == Ty::Objective ? ir::print(v.objective)
                            : v.ty == Ty::Optimizer ? ir::print(v.optimizer)
                            : v.ty == Ty::Shape     ? ir::formatShape(v.shape)
                            : isNumeric(v.ty) || v.ty == Ty::Fraction || v.ty == Ty::Length ? ir::formatNumber(v.num)
                                                                                             : ast::printExpr(*b->value);
        typed_ += std::string(ast::toString(b->bindKind)) + " " + b->name + " : " + typeText(v) + " = " + shown + "\n";
      }
    } else if (d->is<ast::DeclPretrain>()) {
      evalDecl(it->second);
    }
  }
  for (const ast::Decl* d : main->decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (const auto* e = d->as<ast::DeclEvaluate>()) checkEvaluate(*e, 0);
  }
  // Warn about declarations of the user's file that nothing uses. A name a sweep sets,
  // or one its values mention, counts as used: the points that do not need it are not
  // the whole experiment (and each point is checked on its own).
  std::set<std::string> swept;
  std::function<void(const ast::Expr*)> mentions = [&](const ast::Expr* e) {
    if (e == nullptr) return;
    if (const auto* n = e->as<ast::ExprName>()) swept.insert(n->name);
    if (const auto* m = e->as<ast::ExprMember>()) mentions(m->base);
    if (const auto* c = e->as<ast::ExprCall>()) {
      mentions(c->callee);
      for (const ast::Arg& a : c->args) mentions(a.value);
    }
    if (const auto* u = e->as<ast::ExprUnary>()) mentions(u->operand);
    if (const auto* b = e->as<ast::ExprBinary>()) {
      mentions(b->lhs);
      mentions(b->rhs);
    }
    if (const auto* l = e->as<ast::ExprList>())
      for (const ast::Expr* item : l->items) mentions(item);
    if (const auto* r = e->as<ast::ExprRecord>())
      for (const ast::RecordField& f : r->fields) mentions(f.value);
  };
  for (const ast::Decl* d : main->decls)
    if (const auto* sw = d->as<ast::DeclSweep>()) {
      for (const std::vector<std::string>& path : sw->paths) swept.insert(path.front());
      mentions(sw->values);
    }
  for (const ast::Decl* d : main->decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (!library && d->is<ast::DeclBind>() && it->second.uses == 0 && swept.count(d->name) == 0) {
      diags_.report(DiagKind::UnusedDeclaration, d->nameRange, "'" + d->name + "' is declared but never used");
    }
  }

  CheckResult result;
  result.typed = typed_;
  if (!diags_.hasErrors()) {
    // Pretrain stages come first, so every dependency index is already final.
    ir::Experiment ex;
    std::vector<size_t> remap(experiment_.stages.size());
    for (size_t i = 0; i < experiment_.stages.size(); ++i)
      if (experiment_.stages[i].kind == ir::StageKind::Pretrain) {
        remap[i] = ex.stages.size();
        ex.stages.push_back(experiment_.stages[i]);
      }
    for (size_t i = 0; i < experiment_.stages.size(); ++i)
      if (experiment_.stages[i].kind == ir::StageKind::Evaluate) {
        remap[i] = ex.stages.size();
        ex.stages.push_back(experiment_.stages[i]);
      }
    for (ir::Stage& s : ex.stages)
      for (size_t& dep : s.deps) dep = remap[dep];
    ir::hashStages(ex);
    result.experiment = std::move(ex);
  }
  return result;
}

}  // namespace check


CheckResult checkExperiment(const std::vector<const ast::File*>& files, const SourceManager& sm, DiagnosticEngine& diags,
                            bool library, DataResolver* data) {
  check::Checker c(sm, diags, data != nullptr ? *data : defaultDataResolver());
  return c.run(files, library);
}

}  // namespace gyrus
