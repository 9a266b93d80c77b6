// The front-end pipeline and `--set` overrides.
#include "gyrus/Frontend.h"

#include <algorithm>

#include "gyrus/Parse.h"

namespace gyrus {

extern const char* const kPreludeText;

const std::string& preludeSource() {
  static const std::string text = kPreludeText;
  return text;
}

bool parseOverride(const std::string& text, Override& out) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  out.path = text.substr(0, eq);
  out.value = text.substr(eq + 1);
  while (!out.path.empty() && out.path.back() == ' ') out.path.pop_back();
  return true;
}

namespace {

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

// The calls reachable through pipeline/data composition (`a >> b`, `d |> p`).
void collectCalls(ast::Expr* e, std::vector<ast::ExprCall*>& out) {
  if (auto* c = e->as<ast::ExprCall>()) {
    out.push_back(c);
  } else if (auto* b = e->as<ast::ExprBinary>()) {
    collectCalls(b->lhs, out);
    collectCalls(b->rhs, out);
  }
}

std::string calleeName(const ast::ExprCall& c) {
  const auto* n = c.callee->as<ast::ExprName>();
  return n != nullptr ? n->name : std::string();
}

class OverrideApplier {
 public:
  OverrideApplier(const Override& o, ast::Expr* value, DiagnosticEngine& diags) : o_(o), value_(value), diags_(diags) {}

  // Replaces the slot `path` (relative to `slot`) with the override's value.
  bool apply(ast::Expr*& slot, const std::vector<std::string>& path, size_t i) {
    if (i == path.size()) {
      slot = value_;
      return true;
    }
    std::vector<ast::ExprCall*> calls;
    collectCalls(slot, calls);
    // `prep.crop.size`: select a call by its function's name first.
    std::vector<ast::ExprCall*> byName;
    for (ast::ExprCall* c : calls)
      if (calleeName(*c) == path[i]) byName.push_back(c);
    if (byName.size() == 1 && i + 1 < path.size()) return applyToCall(*byName[0], path, i + 1);
    // Otherwise the unique call that has (or can take) an argument of that name.
    std::vector<ast::ExprCall*> takers;
    for (ast::ExprCall* c : calls) {
      std::vector<std::string> params = builtinParameters(calleeName(*c));
      bool has = std::find(params.begin(), params.end(), path[i]) != params.end();
      for (const ast::Arg& a : c->args) has = has || a.name == path[i];
      if (has) takers.push_back(c);
    }
    if (takers.size() == 1) return applyToCall(*takers[0], path, i);
    if (takers.size() > 1) {
      fail("'" + path[i] + "' is a parameter of several calls here; name the function, e.g. '" +
           join(path, i) + "." + calleeName(*takers[0]) + "." + path[i] + "'");
      return false;
    }
    if (calls.size() == 1 && i + 1 == path.size()) return applyToCall(*calls[0], path, i);  // checker reports it
    fail("'" + join(path, i) + "' has no parameter '" + path[i] + "'");
    return false;
  }

  bool applyToCall(ast::ExprCall& call, const std::vector<std::string>& path, size_t i) {
    // A named argument, a positional one (by the function's parameter order), or a new one.
    std::vector<std::string> params = builtinParameters(calleeName(call));
    for (ast::Arg& a : call.args)
      if (a.name == path[i]) return apply(a.value, path, i + 1);
    size_t position = 0;
    for (ast::Arg& a : call.args) {
      if (!a.name.empty()) break;
      if (position < params.size() && params[position] == path[i]) return apply(a.value, path, i + 1);
      ++position;
    }
    if (i + 1 != path.size()) {
      fail("'" + path[i] + "' is not set in '" + join(path, i) + "', so it has no '" + path[i + 1] + "'");
      return false;
    }
    ast::Arg arg;
    arg.name = path[i];
    arg.nameRange = value_->range;
    arg.value = value_;
    call.args.push_back(arg);
    return true;
  }

  void fail(const std::string& why) {
    diags_.report(DiagKind::BadOverride, SourceRange{}, "--set " + o_.path + ": " + why);
  }

  static std::string join(const std::vector<std::string>& path, size_t n) {
    std::string out;
    for (size_t k = 0; k < n; ++k) out += (k ? "." : "") + path[k];
    return out;
  }

 private:
  const Override& o_;
  ast::Expr* value_;
  DiagnosticEngine& diags_;
};

}  // namespace

void applyOverrides(ast::File& file, const std::vector<Override>& overrides, SourceManager& sm, ast::Arena& arena,
                    DiagnosticEngine& diags) {
  for (const Override& o : overrides) {
    std::vector<std::string> path = splitPath(o.path);
    bool wellFormed = !path.empty();
    for (const std::string& p : path) wellFormed = wellFormed && !p.empty();
    if (!wellFormed) {
      diags.report(DiagKind::BadOverride, SourceRange{}, "--set " + o.path + ": malformed path (expected NAME.FIELD...)");
      continue;
    }
    FileId id = sm.add("<--set " + o.path + ">", o.value);
    ast::Expr* value = parseExpression(sm, id, arena, diags);
    if (value == nullptr) continue;

    ast::Decl* target = nullptr;
    std::vector<std::string> names;
    for (ast::Decl* d : file.decls) {
      names.push_back(d->name);
      if (d->name == path[0]) target = d;
    }
    OverrideApplier applier(o, value, diags);
    if (target == nullptr) {
      std::string best = closestMatch(path[0], names);
      applier.fail("no declaration named '" + path[0] + "'" + (best.empty() ? "" : "; did you mean '" + best + "'?"));
      continue;
    }
    if (auto* b = target->as<ast::DeclBind>()) {
      applier.apply(b->value, path, 1);
    } else if (auto* p = target->as<ast::DeclPretrain>()) {
      if (path.size() == 1) {
        applier.fail("a pretrain block cannot be replaced whole; set one of its fields, e.g. '" + path[0] + ".epochs'");
        continue;
      }
      ast::Field* field = nullptr;
      for (ast::Field& f : p->fields)
        if (f.name == path[1]) field = &f;
      if (field == nullptr) {
        if (path.size() > 2) {
          applier.fail("pretrain '" + path[0] + "' does not set '" + path[1] + "'");
          continue;
        }
        p->fields.push_back({path[1], value->range, value});  // checked like any field
        continue;
      }
      applier.apply(field->value, path, 2);
    } else if (auto* e = target->as<ast::DeclEvaluate>()) {
      if (path.size() != 2) {
        applier.fail("set one argument of the evaluation, e.g. '" + path[0] + ".shots'");
        continue;
      }
      bool found = false;
      for (ast::Arg& a : e->args)
        if (a.name == path[1]) {
          a.value = value;
          found = true;
        }
      if (!found) e->args.push_back({path[1], value->range, value});
    }
  }
}

std::unique_ptr<Compilation> compileFile(const std::string& path, const std::vector<Override>& overrides,
                                         StopAfter stop, const std::string* text) {
  auto c = std::make_unique<Compilation>();
  std::string contents, error;
  if (text != nullptr) {
    contents = *text;
  } else if (!readFile(path, contents, error)) {
    c->diags.report(DiagKind::Syntax, SourceRange{}, error);
    return c;
  }
  FileId prelude = c->sources.add("<std>/prelude.gy", preludeSource());
  c->mainFile = c->sources.add(path, std::move(contents));
  c->prelude = parseFile(c->sources, prelude, c->arena, c->diags);
  c->main = parseFile(c->sources, c->mainFile, c->arena, c->diags);
  if (c->main == nullptr || c->prelude == nullptr) return c;
  applyOverrides(*c->main, overrides, c->sources, c->arena, c->diags);
  // A bad override does not stop checking: the file's own errors are reported too.
  if (stop == StopAfter::Parse) return c;
  c->check = checkExperiment({c->prelude, c->main}, c->sources, c->diags);
  return c;
}

}  // namespace gyrus
