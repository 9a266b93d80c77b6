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
