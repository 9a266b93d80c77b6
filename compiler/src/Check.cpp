// The checker's driver: its passes in order (Halide's flat lowering list):
//   resolveNames         every declaration's name, across files
//   evaluateDeclarations type and evaluate every node (check/Expressions.cpp) into the
//                        side table; pretrain blocks with their rules (check/Pretrain.cpp)
//   checkEvaluations     every evaluation with its rules (check/Evaluate.cpp)
//   warnUnused           declarations nothing uses
//   lowerToIr            the stages in dependency order, hashed; then ir::verify
// `gyrus emit --stage=typed` prints the side table, `--stage=ir` the lowered IR.
//
// Declarations are evaluated on demand with cycle detection, so order in the file does
// not matter. An expression that fails gets the Error type and evaluation goes on:
// later uses of it stay silent, so one mistake is reported once.
#include "gyrus/Check.h"

#include "CheckInternal.h"
#include "gyrus/Data.h"
#include "gyrus/IrJson.h"
#include "gyrus/Plan.h"

#include <stdexcept>

namespace gyrus {
namespace check {


CheckResult Checker::run(const std::vector<const ast::File*>& files, bool library) {
  baseDir_ = std::filesystem::path(sm_.file(files.back()->id).path).parent_path();
  mainFile_ = files.back()->id;
  // The passes, in order; each reads what the earlier ones left in the symbol table
  // and the side table.
  resolveNames(files);
  evaluateDeclarations(*files.back());
  checkEvaluations(*files.back());
  warnUnused(*files.back(), library);
  CheckResult result;
  auto facts = std::make_shared<const std::vector<NodeFacts>>(std::move(facts_));
  const SourceManager* sm = &sm_;
  result.typed = [facts, sm] { return printTyped(*facts, *sm); };
  if (!diags_.hasErrors()) {
    result.experiment = lowerToIr();
    // Every pipeline declaration (a library's too, used or not), for the commands that
    // apply one by name.
    for (auto& [name, symbol] : symbols_) {
      const auto* bind = symbol.decl != nullptr ? symbol.decl->as<ast::DeclBind>() : nullptr;
      if (bind == nullptr || bind->isFunction || bind->bindKind != ast::BindKind::Pipeline) continue;
      Value v = evalDecl(symbol);
      if (v.ty == Ty::Pipeline) result.pipelines.emplace(name, v.pipeline);
    }
  }
  return result;
}

void Checker::resolveNames(const std::vector<const ast::File*>& files) {
  // Every declaration's name, across files (sweeps and `use` belong to the front end).
  for (size_t fi = 0; fi < files.size(); ++fi) {
    for (const ast::Decl* d : files[fi]->decls) {
      if (d->is<ast::DeclSweep>() || d->is<ast::DeclUse>()) continue;
      auto [it, inserted] = symbols_.try_emplace(d->name);
      if (!inserted) {
        Diagnostic& diag = diags_.report(DiagKind::DuplicateName, d->nameRange, "'" + d->name + "' is already declared");
        diag.note(it->second.decl->nameRange, "previous declaration here");
        if (const auto* e = d->as<ast::DeclEvaluate>(); e != nullptr && !e->explicitName) {
          diag.note("name this evaluation explicitly: `evaluate other_name = " + e->model + " on ...`");
        }
        duplicates_.push_back(d);
        continue;
      }
      it->second.decl = d;
      it->second.inPrelude = fi + 1 < files.size();
    }
  }
}

void Checker::evaluateDeclarations(const ast::File& main) {
  // The user's declarations in file order (others on demand); pretrain stages first.
  for (const ast::Decl* d : main.decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (const auto* b = d->as<ast::DeclBind>()) {
      Value v = evalDecl(it->second);
      if (b->isFunction) {
        std::string params;
        for (const ast::Param& p : b->params)
          params += (params.empty() ? "" : ", ") + p.name + (p.value != nullptr ? " = " + ast::printExpr(*p.value) : "");
        record(*b, v, b->name, "Function", "(" + params + ") = " + ast::printExpr(*b->value));
      } else if (v.ty != Ty::Error) {
        record(*b, v, b->name);
      }
    } else if (d->is<ast::DeclPretrain>()) {
      evalDecl(it->second);
    }
  }
}

void Checker::checkEvaluations(const ast::File& main) {
  for (const ast::Decl* d : main.decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (const auto* e = d->as<ast::DeclEvaluate>()) checkEvaluate(*e);
  }
}

void Checker::warnUnused(const ast::File& main, bool library) {
  // A name a sweep sets, or one its values mention, counts as used: the points that do
  // not need it are not the whole experiment.
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
  for (const ast::Decl* d : main.decls)
    if (const auto* sw = d->as<ast::DeclSweep>()) {
      for (const std::vector<std::string>& path : sw->paths) swept.insert(path.front());
      mentions(sw->values);
    }
  // What a declaration rejected as a duplicate name mentions is not unused: the error
  // about the name is the one to fix.
  for (const ast::Decl* d : duplicates_) {
    if (const auto* b = d->as<ast::DeclBind>()) mentions(b->value);
    if (const auto* p = d->as<ast::DeclPretrain>())
      for (const ast::Field& f : p->fields) mentions(f.value);
    if (const auto* e = d->as<ast::DeclEvaluate>()) {
      swept.insert(e->model);
      if (!e->task.empty()) swept.insert(e->task.front());
      for (const ast::Arg& a : e->args) mentions(a.value);
    }
  }
  for (const ast::Decl* d : main.decls) {
    auto it = symbols_.find(d->name);
    if (it == symbols_.end() || it->second.decl != d) continue;
    if (!library && d->is<ast::DeclBind>() && it->second.uses == 0 && swept.count(d->name) == 0) {
      diags_.report(DiagKind::UnusedDeclaration, d->nameRange, "'" + d->name + "' is declared but never used");
    }
  }
}

ir::Experiment Checker::lowerToIr() {
  // Pretrain stages first, so every dependency index is already final; then hashes.
  ir::Experiment ex;
  std::vector<size_t> remap(experiment_.stages.size());
  for (ir::StageKind kind : {ir::StageKind::Pretrain, ir::StageKind::Evaluate})
    for (size_t i = 0; i < experiment_.stages.size(); ++i)
      if (experiment_.stages[i].kind == kind) {
        remap[i] = ex.stages.size();
        ex.stages.push_back(experiment_.stages[i]);
      }
  for (ir::Stage& s : ex.stages)
    for (size_t& dep : s.deps) dep = remap[dep];
  ir::hashStages(ex);
  // The IR's invariants hold for whatever the checker accepted; a violation is our bug.
  if (std::string broken = ir::verify(ex); !broken.empty())
    throw std::logic_error("internal error: the checker produced invalid IR: " + broken);
  return ex;
}

}  // namespace check


CheckResult checkExperiment(const std::vector<const ast::File*>& files, const SourceManager& sm, DiagnosticEngine& diags,
                            bool library, DataResolver* data, const DataRoots* roots) {
  check::Checker c(sm, diags, data != nullptr ? *data : defaultDataResolver());
  if (roots != nullptr) c.setRoots(*roots);
  return c.run(files, library);
}

}  // namespace gyrus
