// The front-end pipeline and `--set` overrides.
#include "gyrus/Frontend.h"

#include <functional>
#include <algorithm>
#include <filesystem>
#include <map>

#include "gyrus/Parse.h"

namespace gyrus {

struct EmbeddedModule {
  const char* name;
  const char* text;
};
extern const EmbeddedModule kStdlibModules[];
extern const size_t kStdlibModuleCount;

const std::string* stdlibModule(const std::string& name) {
  static const std::map<std::string, std::string> modules = [] {
    std::map<std::string, std::string> m;
    for (size_t i = 0; i < kStdlibModuleCount; ++i) m[kStdlibModules[i].name] = kStdlibModules[i].text;
    return m;
  }();
  auto it = modules.find(name);
  return it == modules.end() ? nullptr : &it->second;
}

std::vector<std::string> stdlibModuleNames() {
  std::vector<std::string> names;
  for (size_t i = 0; i < kStdlibModuleCount; ++i)
    if (std::string(kStdlibModules[i].name) != "prelude") names.emplace_back(kStdlibModules[i].name);
  return names;
}

const std::string& preludeSource() { return *stdlibModule("prelude"); }

bool parseOverride(const std::string& text, Override& out) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  out.path = text.substr(0, eq);
  out.value = text.substr(eq + 1);
  while (!out.path.empty() && out.path.back() == ' ') out.path.pop_back();
  return true;
}

namespace {

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

/// An override with its value parsed (from `--set`) or taken from a sweep.
struct ParsedOverride {
  Override text;  // path and value as written (value may be empty for sweeps)
  std::vector<std::string> path;
  std::vector<SourceRange> segments;  // where each part of the path is written
  ast::Expr* value = nullptr;
  bool fromSweep = false;
};

/// What applying overrides changed in an AST, to change it back: a sweep point's values
/// are substituted into the one parsed file and taken out again after its check.
class UndoLog {
 public:
  void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  /// A list grew past its capacity: slots logged inside it moved, so the log cannot
  /// undo (the caller parses the file afresh instead).
  void moved() { reliable_ = false; }
  bool reliable() const { return reliable_; }
  /// Undoes every change, the last first.
  void undo() {
    for (size_t i = steps_.size(); i-- > 0;) steps_[i]();
    forget();
  }
  void forget() {
    steps_.clear();
    reliable_ = true;
  }

 private:
  std::vector<std::function<void()>> steps_;
  bool reliable_ = true;
};

// Appends `item` to `list`, logging how to take it out again.
template <class T>
void append(std::vector<T>& list, T item, UndoLog* undo) {
  if (undo != nullptr) {
    size_t size = list.size();
    if (size == list.capacity()) undo->moved();
    undo->add([&list, size] { list.resize(size); });
  }
  list.push_back(std::move(item));
}

class OverrideApplier {
 public:
  OverrideApplier(const ParsedOverride& o, DiagnosticEngine& diags, std::vector<SourceRange>* replaced,
                  UndoLog* undo)
      : o_(o), value_(o.value), diags_(diags), replaced_(replaced), undo_(undo) {}

  // Replaces the slot `path` (relative to `slot`) with the override's value.
  bool apply(ast::Expr*& slot, const std::vector<std::string>& path, size_t i) {
    if (i == path.size()) {
      replace(slot);
      return true;
    }
    // A record literal: one of its fields (added when absent, like a block's).
    if (auto* record = slot->as<ast::ExprRecord>()) {
      for (ast::RecordField& f : record->fields)
        if (f.name == path[i]) return apply(f.value, path, i + 1);
      if (i + 1 == path.size()) {
        append(record->fields, ast::RecordField{path[i], segment(i), value_}, undo_);
        return true;
      }
      std::vector<std::string> names;
      for (const ast::RecordField& f : record->fields) names.push_back(f.name);
      fail("the record '" + join(path, i) + "' has no field '" + path[i] + "'", i, names);
      return false;
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
    std::vector<std::string> known;  // every name that would have selected something
    for (ast::ExprCall* c : calls) {
      known.push_back(calleeName(*c));
      std::vector<std::string> params = builtinParameters(calleeName(*c));
      known.insert(known.end(), params.begin(), params.end());
      bool has = std::find(params.begin(), params.end(), path[i]) != params.end();
      for (const ast::Arg& a : c->args) has = has || a.name == path[i];
      if (has) takers.push_back(c);
    }
    if (takers.size() == 1) return applyToCall(*takers[0], path, i);
    if (takers.size() > 1) {
      fail("'" + path[i] + "' is a parameter of several calls here; name the function, e.g. '" + join(path, i) + "." +
               calleeName(*takers[0]) + "." + path[i] + "'",
           i);
      return false;
    }
    if (calls.size() == 1 && i + 1 == path.size()) return applyToCall(*calls[0], path, i);  // checker reports it
    fail("'" + join(path, i) + "' has no parameter '" + path[i] + "'", i, known);
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
      fail("'" + path[i] + "' is not set in '" + join(path, i) + "', so it has no '" + path[i + 1] + "'", i, params);
      return false;
    }
    ast::Arg arg;
    arg.name = path[i];
    arg.nameRange = segment(i);  // a misspelt name is reported (and fixed) in the path
    arg.value = value_;
    append(call.args, arg, undo_);
    return true;
  }

  // Puts the override's value into `slot`, remembering what was written there.
  void replace(ast::Expr*& slot) {
    if (replaced_ != nullptr && slot != nullptr) replaced_->push_back(slot->range);
    if (undo_ != nullptr) {
      ast::Expr* old = slot;
      ast::Expr** where = &slot;
      undo_->add([where, old] { *where = old; });
    }
    slot = value_;
  }

  /// Where part `i` of the path is written (the value when unknown).
  SourceRange segment(size_t i) const { return i < o_.segments.size() ? o_.segments[i] : value_->range; }

  // Reports that part `i` of the path names nothing; suggests one of `candidates`.
  void fail(const std::string& why, size_t i, const std::vector<std::string>& candidates = {}) {
    SourceRange at = i < o_.segments.size() ? o_.segments[i] : SourceRange{};
    Diagnostic& d = diags_.report(o_.fromSweep ? DiagKind::BadSweep : DiagKind::BadOverride, at,
                                  (o_.fromSweep ? "sweep " : "--set ") + o_.text.path + ": " + why);
    suggest(d, at, o_.path[i], candidates);
  }

  static std::string join(const std::vector<std::string>& path, size_t n) {
    std::string out;
    for (size_t k = 0; k < n; ++k) out += (k ? "." : "") + path[k];
    return out;
  }

 private:
  const ParsedOverride& o_;
  ast::Expr* value_;
  DiagnosticEngine& diags_;
  std::vector<SourceRange>* replaced_;
  UndoLog* undo_;
};

// Applies one override to `file`; the ranges of the values it replaces are added to
// `replaced` when given.
void applyParsed(ast::File& file, const ParsedOverride& o, DiagnosticEngine& diags,
                 std::vector<SourceRange>* replaced = nullptr, UndoLog* undo = nullptr,
                 const std::vector<const ast::File*>* modules = nullptr) {
  const std::vector<std::string>& path = o.path;
  ast::Expr* value = o.value;
  ast::Decl* target = nullptr;
  std::vector<std::string> names;
  for (ast::Decl* d : file.decls) {
    if (d->is<ast::DeclSweep>() || d->is<ast::DeclUse>()) continue;
    names.push_back(d->name);
    if (d->name == path[0]) target = d;
  }
  OverrideApplier applier(o, diags, replaced, undo);
  if (target == nullptr) {
    // Declared in a module the file uses (or the standard library): overrides change
    // the experiment file only, so say that rather than "no declaration".
    if (modules != nullptr)
      for (const ast::File* m : *modules)
        for (const ast::Decl* d : m->decls)
          if (d->name == path[0] && !d->is<ast::DeclSweep>() && !d->is<ast::DeclUse>()) {
            const SourceRange at = o.segments.empty() ? SourceRange{} : o.segments.front();
            diags
                .report(o.fromSweep ? DiagKind::BadSweep : DiagKind::BadOverride, at,
                        (o.fromSweep ? "sweep " : "--set ") + o.text.path + ": '" + path[0] +
                            "' is declared in a module the file uses, and " +
                            (o.fromSweep ? "a sweep" : "--set") + " changes only the experiment file")
                .note(d->nameRange, "declared here")
                .note("declare what you vary in the experiment file (e.g. `let " + path[0] +
                      " = ...` there, passed to the module's functions), or set the place in this file that uses it");
            return;
          }
    applier.fail("no declaration named '" + path[0] + "'", 0, names);
    return;
  }
  if (auto* b = target->as<ast::DeclBind>()) {
    applier.apply(b->value, path, 1);
  } else if (auto* p = target->as<ast::DeclPretrain>()) {
    if (path.size() == 1) {
      applier.fail("a pretrain block cannot be replaced whole; set one of its fields, e.g. '" + path[0] + ".epochs'", 0);
      return;
    }
    ast::Field* field = nullptr;
    for (ast::Field& f : p->fields)
      if (f.name == path[1]) field = &f;
    if (field == nullptr) {
      if (path.size() > 2) {
        std::vector<std::string> set;
        for (const ast::Field& f : p->fields) set.push_back(f.name);
        applier.fail("pretrain '" + path[0] + "' does not set '" + path[1] + "'", 1, set);
        return;
      }
      append(p->fields, ast::Field{path[1], applier.segment(1), value}, undo);  // checked like any field
      return;
    }
    applier.apply(field->value, path, 2);
  } else if (auto* e = target->as<ast::DeclEvaluate>()) {
    if (path.size() != 2) {
      applier.fail("set one argument of the evaluation, e.g. '" + path[0] + ".shots'", 0);
      return;
    }
    for (ast::Arg& a : e->args)
      if (a.name == path[1]) {
        applier.replace(a.value);
        return;
      }
    append(e->args, ast::Arg{path[1], applier.segment(1), value}, undo);
  }
}

// The range of each dot-separated part of a path written at `at` (a sweep's path, or a
// --set's path in its own virtual file); empty when the text does not split as `path`.
std::vector<SourceRange> pathSegments(const SourceManager& sm, SourceRange at, const std::vector<std::string>& path) {
  std::vector<SourceRange> out;
  std::string_view text = sm.text(at);
  size_t pos = 0;
  for (const std::string& part : path) {
    size_t found = text.find(part, pos);
    if (found == std::string_view::npos) return {};
    auto begin = at.begin + static_cast<uint32_t>(found);
    out.push_back({at.file, begin, begin + static_cast<uint32_t>(part.size())});
    pos = found + part.size();
  }
  return out;
}

bool wellFormedPath(const std::vector<std::string>& path) {
  bool ok = !path.empty();
  for (const std::string& p : path) ok = ok && !p.empty();
  return ok;
}

std::vector<ParsedOverride> parseOverrides(const std::vector<Override>& overrides, SourceManager& sm, ast::Arena& arena,
                                           DiagnosticEngine& diags) {
  std::vector<ParsedOverride> out;
  for (const Override& o : overrides) {
    ParsedOverride po;
    po.text = o;
    po.path = split(o.path, '.');
    if (!wellFormedPath(po.path)) {
      diags.report(DiagKind::BadOverride, SourceRange{}, "--set " + o.path + ": malformed path (expected NAME.FIELD...)");
      continue;
    }
    FileId pathFile = sm.add("<--set>", o.path);
    po.segments = pathSegments(sm, {pathFile, 0, static_cast<uint32_t>(o.path.size())}, po.path);
    FileId id = sm.add("<--set " + o.path + ">", o.value);
    po.value = parseExpression(sm, id, arena, diags);
    if (po.value != nullptr) out.push_back(std::move(po));
  }
  return out;
}

std::string joinPath(const std::vector<std::string>& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) out += (i ? "." : "") + path[i];
  return out;
}

// One axis of a sweep: its paths and, for each of its values, one expression per path.
struct SweepAxis {
  std::vector<std::vector<std::string>> paths;
  std::vector<SourceRange> pathRanges;
  std::vector<std::vector<ast::Expr*>> rows;
};

// Validates the shape of a sweep declaration; false (with a diagnostic) when malformed.
bool readSweep(const ast::DeclSweep& sw, DiagnosticEngine& diags, SweepAxis& axis) {
  axis.paths = sw.paths;
  axis.pathRanges = sw.pathRanges;
  const auto* list = sw.values->as<ast::ExprList>();
  if (list == nullptr || list->items.empty()) {
    diags.report(DiagKind::BadSweep, sw.values->range, "a sweep's values must be a non-empty list, e.g. [60%, 75%]");
    return false;
  }
  size_t k = sw.paths.size();
  for (ast::Expr* item : list->items) {
    if (k == 1) {
      axis.rows.push_back({item});
      continue;
    }
    const auto* tuple = item->as<ast::ExprList>();
    if (tuple == nullptr || tuple->items.size() != k) {
      diags.report(DiagKind::BadSweep, item->range,
                   "this sweep pairs " + std::to_string(k) + " paths, so each value must be a list of " +
                       std::to_string(k) + " values, e.g. [10, 1e-3]");
      return false;
    }
    axis.rows.push_back(tuple->items);
  }
  return true;
}

// Adds one point's experiment to the plan, merging stages already there by hash.
void mergePoint(Plan& plan, const ir::Experiment& ex, size_t point, std::map<std::string, size_t>& byHash) {
  std::vector<size_t> local(ex.stages.size());
  for (size_t i = 0; i < ex.stages.size(); ++i) {
    const ir::Stage& s = ex.stages[i];
    // Identical work under two names in one file stays two stages (both are reported);
    // the same stage in several points is shared.
    std::string key = s.hash + " " + s.name;
    auto it = byHash.find(key);
    if (it != byHash.end()) {
      local[i] = it->second;
      std::vector<size_t>& users = plan.users[it->second];
      if (users.empty() || users.back() != point) users.push_back(point);
      continue;
    }
    ir::Stage copy = s;
    for (size_t& d : copy.deps) d = local[d];
    local[i] = plan.experiment.stages.size();
    byHash[key] = local[i];
    plan.experiment.stages.push_back(std::move(copy));
    plan.users.push_back({point});
  }
}

// Stages of one name with several variants become `name[1]`, `name[2]`, ... in order of
// first appearance; evaluations follow their model's new name.
void nameVariants(Plan& plan) {
  std::map<std::string, size_t> count, seen;
  for (const ir::Stage& s : plan.experiment.stages) ++count[s.name];
  std::vector<std::string> names, original;
  for (ir::Stage& s : plan.experiment.stages) {
    original.push_back(s.name);
    if (count[s.name] > 1) s.name += "[" + std::to_string(++seen[s.name]) + "]";
    names.push_back(s.name);
  }
  // The variant of pretraining `name` that the sweep point `point` uses.
  auto variantIn = [&](const std::string& name, size_t point) -> std::string {
    for (size_t j = 0; j < plan.experiment.stages.size(); ++j) {
      const std::vector<size_t>& users = plan.users[j];
      if (plan.experiment.stages[j].kind == ir::StageKind::Pretrain && original[j] == name &&
          std::find(users.begin(), users.end(), point) != users.end())
        return names[j];
    }
    return name;
  };
  for (size_t i = 0; i < plan.experiment.stages.size(); ++i) {
    ir::Stage& s = plan.experiment.stages[i];
    if (s.kind == ir::StageKind::Pretrain) {
      s.pretrain.name = s.name;
      if (!s.deps.empty()) s.pretrain.init = names[s.deps.front()];
    } else {
      s.evaluate.name = s.name;
      if (!s.deps.empty()) {
        s.evaluate.pretrain = names[s.deps.front()];
      } else if (count[s.evaluate.pretrain] > 1 && !plan.users[i].empty()) {
        // An evaluation of a weights file depends on no stage: its model (which lends
        // the architecture) is the variant of its own sweep point.
        s.evaluate.pretrain = variantIn(s.evaluate.pretrain, plan.users[i].front());
      }
    }
  }
}

// Loads the modules a file uses, depth first; `loaded` maps a module's key (`std:name`
// or a canonical path) to its state so each is loaded once and cycles are reported.
class ModuleLoader {
 public:
  ModuleLoader(Compilation& c) : c_(c) {}

  void load(const ast::File& file) {
    for (const ast::Decl* d : file.decls) {
      const auto* u = d->as<ast::DeclUse>();
      if (u != nullptr) loadOne(*u, file);
    }
  }
  /// Loads the modules the experiment file uses. The file itself counts as being
  /// loaded, so a module that uses it back is a cycle, not a second copy of its
  /// declarations.
  void loadRoot(const ast::File& file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path p = c_.sources.file(file.id).path;
    fs::path canon = fs::weakly_canonical(p, ec);
    std::string key = (ec ? p : canon).string();
    state_[key] = State::Loading;
    load(file);
    state_[key] = State::Done;
  }
  std::vector<const ast::File*> modules;  // in dependency order

 private:
  void loadOne(const ast::DeclUse& u, const ast::File& from) {
    std::string key, path, text;
    if (!u.module.empty()) {
      std::string name = u.module.size() == 2 && u.module[0] == "std" ? u.module[1] : std::string();
      const std::string* src = name.empty() || name == "prelude" ? nullptr : stdlibModule(name);
      if (src == nullptr) {
        std::string dotted = joinPath(u.module);
        Diagnostic& d = c_.diags.report(DiagKind::Module, u.targetRange, "no standard-library module '" + dotted + "'");
        std::vector<std::string> names;
        for (const std::string& n : stdlibModuleNames()) names.push_back("std." + n);
        suggest(d, u.targetRange, dotted, names, SuggestStyle{false, '\'', "", ""});
        std::string list;
        for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
        d.note("the standard library has: " + list);
        return;
      }
      key = "std:" + name;
      path = "<std>/" + name + ".gy";
      text = *src;
    } else {
      namespace fs = std::filesystem;
      fs::path base = fs::path(c_.sources.file(from.id).path).parent_path();
      fs::path p = fs::path(u.file).is_absolute() ? fs::path(u.file) : base / u.file;
      std::error_code ec;
      fs::path canon = fs::weakly_canonical(p, ec);
      key = (ec ? p : canon).string();
      path = p.lexically_normal().string();
      std::string error;
      if (state_.count(key) == 0 && !readFile(path, text, error)) {
        // A path that names nothing names no module; one that cannot be read is an I/O problem.
        bool missing = !fs::exists(fs::symlink_status(p, ec));
        c_.diags.report(missing ? DiagKind::Module : DiagKind::IoError, u.targetRange, error);
        return;
      }
    }
    auto it = state_.find(key);
    if (it != state_.end()) {
      if (it->second == State::Loading)
        c_.diags.report(DiagKind::Cycle, u.targetRange, "module '" + path + "' uses itself (through the modules it uses)");
      return;
    }
    state_[key] = State::Loading;
    FileId id = c_.sources.add(path, std::move(text));
    ast::File* module = parseFile(c_.sources, id, c_.arena, c_.diags);
    if (module != nullptr) {
      load(*module);
      for (const ast::Decl* d : module->decls) {
        if (d->is<ast::DeclBind>() || d->is<ast::DeclUse>()) continue;
        c_.diags.report(DiagKind::Module, d->range, "a module may only declare values (dataset, pipeline, encoder, "
                                                    "objective, let); stages and sweeps belong in the experiment file")
            .note(u.targetRange, "module used here");
      }
      modules.push_back(module);
    }
    state_[key] = State::Done;
  }

  enum class State { Loading, Done };
  Compilation& c_;
  std::map<std::string, State> state_;
};

// A value written in the file that every sweep point replaces is checked nonetheless
// (a misspelt name there is still a mistake): the file is checked as written, and the
// errors inside those values that do not depend on their context are kept.
void checkReplacedValues(Compilation& c, const std::vector<const ast::File*>& files,
                         const std::vector<SourceRange>& replaced, bool library) {
  if (replaced.empty()) return;
  DiagnosticEngine asWritten;
  std::vector<const ast::File*> all = files;
  all.push_back(c.main);
  checkExperiment(all, c.sources, asWritten, library, c.data, &c.roots);
  static const DiagKind kLocal[] = {DiagKind::UnknownName,      DiagKind::UnknownArgument, DiagKind::MissingArgument,
                                    DiagKind::DuplicateArgument, DiagKind::TooManyArguments, DiagKind::TypeMismatch,
                                    DiagKind::UnknownUnit,      DiagKind::ValueRange,      DiagKind::UnknownField,
                                    DiagKind::UnknownRoot,      DiagKind::Syntax};
  for (const Diagnostic& d : asWritten.all()) {
    if (d.severity != Severity::Error || std::find(std::begin(kLocal), std::end(kLocal), d.kind) == std::end(kLocal))
      continue;
    bool inside = false;
    for (const SourceRange& r : replaced)
      inside = inside || (d.range.file == r.file && d.range.begin >= r.begin && d.range.end <= r.end);
    if (!inside) continue;
    Diagnostic& copy = c.diags.report(d.kind, d.range, d.message);
    copy.notes = d.notes;
    copy.fixits = d.fixits;
    copy.note("every sweep point replaces this value, but it is checked as written");
  }
}

}  // namespace

void applyOverrides(ast::File& file, const std::vector<Override>& overrides, SourceManager& sm, ast::Arena& arena,
                    DiagnosticEngine& diags) {
  for (const ParsedOverride& o : parseOverrides(overrides, sm, arena, diags)) applyParsed(file, o, diags);
}

/// A diagnostic that some sweep points raise and others do not is caused by their
/// values: each copy gets a note naming those points (a sweep over a `let` name reports
/// at the name's uses, which show the file's text, not the point's value).
void notePoints(DiagnosticEngine& diags, const std::vector<std::pair<size_t, size_t>>& pointDiags,
                const std::vector<std::string>& labels, const std::vector<SourceRange>& sweepValues) {
  // One that points into a sweep's values shows the point's value already.
  auto atSweepValue = [&](const Diagnostic& d) {
    for (const SourceRange& v : sweepValues)
      if (d.range.file == v.file && d.range.begin >= v.begin && d.range.end <= v.end) return true;
    return false;
  };
  auto key = keyOf;
  std::map<DiagnosticKey, std::vector<size_t>> points;  // the points that raised each diagnostic
  for (size_t p = 0; p < pointDiags.size(); ++p)
    for (size_t i = pointDiags[p].first; i < pointDiags[p].second; ++i) {
      std::vector<size_t>& at = points[key(diags.all()[i])];
      if (at.empty() || at.back() != p) at.push_back(p);
    }
  for (size_t p = 0; p < pointDiags.size(); ++p)
    for (size_t i = pointDiags[p].first; i < pointDiags[p].second; ++i) {
      const std::vector<size_t>& at = points[key(diags.all()[i])];
      if (at.size() == pointDiags.size()) continue;  // every point: not the sweep's doing
      if (atSweepValue(diags.all()[i])) continue;
      std::string text = at.size() == 1 ? "in sweep point " : "in sweep points ";
      constexpr size_t kShown = 3;
      for (size_t k = 0; k < at.size() && k < kShown; ++k)
        text += (k ? "; " : "") + std::to_string(at[k] + 1) + " (" + labels[at[k]] + ")";
      if (at.size() > kShown) text += " and " + std::to_string(at.size() - kShown) + " more";
      text += " of " + std::to_string(pointDiags.size());
      diags.at(i).note(text);
    }
}

std::unique_ptr<Compilation> compileFile(const std::string& path, const std::vector<Override>& overrides,
                                         StopAfter stop, const std::string* text, DataResolver* data,
                                         const DataRoots* roots) {
  auto c = std::make_unique<Compilation>();
  if (roots != nullptr) c->roots = *roots;
  if (data == nullptr) {
    c->ownData = std::make_unique<CachingDataResolver>(defaultDataResolver());
    data = c->ownData.get();
  }
  c->data = data;
  std::string contents, error;
  if (text != nullptr) {
    contents = *text;
  } else if (!readFile(path, contents, error)) {
    c->diags.report(DiagKind::IoError, SourceRange{}, error);
    return c;
  }
  // A standard-library file checked on its own (`gyrus check stdlib/prelude.gy`): the
  // prelude is not loaded a second time beside itself, and its presets are not unused.
  bool isPrelude = contents == preludeSource();
  bool library = isPrelude;
  for (const std::string& name : stdlibModuleNames()) library = library || contents == *stdlibModule(name);
  FileId prelude = isPrelude ? kNoFile : c->sources.add("<std>/prelude.gy", preludeSource());
  c->mainFile = c->sources.add(path, std::move(contents));
  c->prelude = isPrelude ? nullptr : parseFile(c->sources, prelude, c->arena, c->diags);
  c->main = parseFile(c->sources, c->mainFile, c->arena, c->diags);
  if (isPrelude) c->prelude = c->main;
  if (c->main == nullptr || c->prelude == nullptr) return c;
  ModuleLoader loader(*c);
  loader.loadRoot(*c->main);
  std::vector<const ast::File*> files;
  if (!isPrelude) files.push_back(c->prelude);
  for (const ast::File* m : loader.modules) files.push_back(m);
  std::vector<ParsedOverride> sets = parseOverrides(overrides, c->sources, c->arena, c->diags);
  // A bad override does not stop checking: the file's own errors are reported too.
  for (const ParsedOverride& o : sets) applyParsed(*c->main, o, c->diags, nullptr, nullptr, &files);
  if (stop == StopAfter::Parse) return c;

  // Sweeps: every point of the grid is the file with the sweep's values set.
  std::vector<SweepAxis> axes;
  bool sweepsOk = true;
  for (const ast::Decl* d : c->main->decls) {
    const auto* sw = d->as<ast::DeclSweep>();
    if (sw == nullptr) continue;
    SweepAxis axis;
    for (size_t i = 0; i < sw->paths.size(); ++i) {
      if (!wellFormedPath(sw->paths[i])) {
        c->diags.report(DiagKind::BadSweep, sw->pathRanges[i], "malformed sweep path");
        sweepsOk = false;
      }
    }
    if (readSweep(*sw, c->diags, axis)) axes.push_back(std::move(axis));
    else sweepsOk = false;
  }
  // A path is swept once: with two sweeps over it, or a --set of it, every point would
  // silently take one value and drop the other.
  {
    std::map<std::string, SourceRange> swept;
    for (const SweepAxis& a : axes)
      for (size_t k = 0; k < a.paths.size(); ++k) {
        const std::string sweepPath = joinPath(a.paths[k]);
        auto [at, fresh] = swept.emplace(sweepPath, a.pathRanges[k]);
        if (fresh) continue;
        c->diags.report(DiagKind::BadSweep, a.pathRanges[k], "'" + sweepPath + "' is swept twice")
            .note(at->second, "first swept here")
            .note("list all its values in one sweep: sweep " + sweepPath + " in [...]");
        sweepsOk = false;
      }
    for (const ParsedOverride& o : sets) {
      const std::string setPath = joinPath(o.path);
      for (const auto& [sweptPath, range] : swept) {
        // The --set names the swept path or a part of its value: the sweep replaces it.
        if (setPath != sweptPath && setPath.rfind(sweptPath + ".", 0) != 0) continue;
        c->diags
            .report(DiagKind::BadOverride, SourceRange{},
                    "--set " + setPath + " has no effect: '" + sweptPath + "' is swept, and every point sets its own value")
            .note(range, "swept here")
            .note("change the sweep's values in the file, or remove the sweep to run one value");
        sweepsOk = false;
      }
    }
  }
  constexpr size_t kMaxPoints = 10000;
  size_t points = 1;
  for (const SweepAxis& a : axes) points = points > kMaxPoints ? points : points * a.rows.size();
  if (points > kMaxPoints) {
    c->diags.report(DiagKind::BadSweep, SourceRange{},
                    "the sweeps expand to " + std::to_string(points) + " points; at most " + std::to_string(kMaxPoints) +
                        " are allowed");
    sweepsOk = false;
  }
  if (!sweepsOk) return c;
  if (axes.empty()) {
    files.push_back(c->main);
    c->check = checkExperiment(files, c->sources, c->diags, library, c->data, &c->roots);
    if (c->check.experiment) {
      c->plan.experiment = *c->check.experiment;
      c->plan.users.assign(c->plan.experiment.stages.size(), {0});
    }
    return c;
  }

  std::map<std::string, size_t> byHash;
  bool allOk = true;
  std::vector<SourceRange> replaced;  // the values written in the file that the sweeps replace
  // One parse for every point: each point's sweep values are substituted into it and
  // taken out again after the point is checked.
  ast::File* file = parseFile(c->sources, c->mainFile, c->arena, c->diags);
  for (const ParsedOverride& o : sets) applyParsed(*file, o, c->diags);
  // Room for the fields and arguments a sweep adds, so that adding them moves nothing.
  for (ast::Decl* d : file->decls) {
    if (auto* p = d->as<ast::DeclPretrain>()) p->fields.reserve(p->fields.size() + 8);
    if (auto* e = d->as<ast::DeclEvaluate>()) e->args.reserve(e->args.size() + 8);
  }
  UndoLog undo;
  std::vector<std::pair<size_t, size_t>> pointDiags;  // each point's diagnostics: [first, end) of all()
  for (size_t point = 0; point < points; ++point) {
    std::string label;
    size_t rest = point;
    // The last sweep varies fastest.
    std::vector<size_t> choice(axes.size());
    for (size_t a = axes.size(); a-- > 0;) {
      choice[a] = rest % axes[a].rows.size();
      rest /= axes[a].rows.size();
    }
    for (size_t a = 0; a < axes.size(); ++a) {
      const std::vector<ast::Expr*>& row = axes[a].rows[choice[a]];
      for (size_t k = 0; k < axes[a].paths.size(); ++k) {
        ParsedOverride o;
        o.text.path = joinPath(axes[a].paths[k]);
        o.path = axes[a].paths[k];
        o.segments = pathSegments(c->sources, axes[a].pathRanges[k], o.path);
        o.fromSweep = true;
        o.value = row[k];
        applyParsed(*file, o, c->diags, point == 0 ? &replaced : nullptr, &undo, &files);
        label += (label.empty() ? "" : ", ") + o.text.path + " = " + ast::printExpr(*row[k]);
      }
    }
    std::vector<const ast::File*> pointFiles = files;
    pointFiles.push_back(file);
    const size_t firstDiag = c->diags.all().size();
    CheckResult r = checkExperiment(pointFiles, c->sources, c->diags, library, c->data, &c->roots);
    pointDiags.push_back({firstDiag, c->diags.all().size()});
    if (undo.reliable()) {
      undo.undo();
    } else {
      undo.forget();
      file = parseFile(c->sources, c->mainFile, c->arena, c->diags);
      for (const ParsedOverride& o : sets) applyParsed(*file, o, c->diags);
    }
    if (point == 0) {
      c->check.typed = r.typed;
      c->check.pipelines = r.pipelines;  // the first point's (a sweep over a pipeline: its first value)
    }
    c->plan.points.push_back(label);
    if (!r.experiment) {
      allOk = false;
      continue;
    }
    mergePoint(c->plan, *r.experiment, point, byHash);
  }
  std::vector<SourceRange> sweepValues;
  for (const ast::Decl* d : c->main->decls)
    if (const auto* sw = d->as<ast::DeclSweep>()) sweepValues.push_back(sw->values->range);
  notePoints(c->diags, pointDiags, c->plan.points, sweepValues);
  checkReplacedValues(*c, files, replaced, library);
  if (!allOk || c->diags.hasErrors()) return c;
  nameVariants(c->plan);
  c->check.experiment = c->plan.experiment;
  return c;
}

}  // namespace gyrus
