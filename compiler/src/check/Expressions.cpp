// Evaluating and typing expressions (Carbon's handle_* for expressions): literals with
// their units, names, calls of built-in functions (through the signature table's
// binder) and of parameterised definitions, operators (shapes, objective algebra,
// pipeline composition and application), and declarations on demand with cycle
// detection. A failed expression gets the Error type, so one mistake is reported once.
#include "../CheckInternal.h"
#include "gyrus/IrJson.h"

namespace gyrus::check {

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
  record(e, v);
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


}  // namespace gyrus::check
