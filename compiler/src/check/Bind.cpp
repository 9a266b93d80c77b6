// The one argument binder: a built-in call's arguments, a pretrain block's fields and
// an evaluation's arguments are all bound to their signature (Signatures.def) here:
// positional and named arguments, duplicates, unknown names with a suggestion and the
// list of what the signature takes, type coercion (units included), ranges, defaults.
#include "../CheckInternal.h"

namespace gyrus::check {

namespace {
std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}
}  // namespace

bool Checker::bindArguments(const Signature& sig, const std::vector<ArgItem>& items, BindSite site,
                            const std::string& owner, std::map<std::string, Bound>& bound) {
  const std::vector<Param>& params = sig.params;
  bool ok = true;
  size_t positional = 0;
  bool sawNamed = false;
  for (const ArgItem& a : items) {
    // What the slot expects, so that "did you mean" offers names that fit it.
    Ty slot = Ty::Error;
    for (size_t k = 0; k < params.size(); ++k)
      if (a.name.empty() ? site == BindSite::Call && !sawNamed && k == positional : params[k].name == a.name)
        slot = params[k].ty;
    Value v = evalAs(*a.value, slot);
    const Param* p = nullptr;
    if (a.name.empty()) {
      if (site == BindSite::Evaluate) {
        diags_.report(DiagKind::TypeMismatch, a.value->range, "evaluate's arguments must be named, e.g. `shots = 16`");
        ok = false;
        continue;
      }
      if (sawNamed) {
        diags_.report(DiagKind::Syntax, a.value->range, "positional argument after a named one");
        ok = false;
        continue;
      }
      if (positional >= params.size()) {
        diags_.report(DiagKind::TooManyArguments, a.value->range,
                      sig.name + "() takes at most " + std::to_string(params.size()) + " argument" +
                          (params.size() == 1 ? "" : "s"));
        ok = false;
        continue;
      }
      p = &params[positional++];
    } else {
      sawNamed = true;
      p = sig.find(a.name);
      if (p == nullptr) {
        std::vector<std::string> names = sig.paramNames();
        if (site == BindSite::Pretrain) {
          Diagnostic& d = diags_.report(DiagKind::UnknownField, a.nameRange, "pretrain has no field '" + a.name + "'");
          suggest(d, a.nameRange, a.name, names);
        } else {
          std::string who = site == BindSite::Call ? sig.name + "()" : sig.name;
          Diagnostic& d = diags_.report(DiagKind::UnknownArgument, a.nameRange,
                                        who + (site == BindSite::Call ? " has no parameter '" : " has no argument '") +
                                            a.name + "'");
          suggest(d, a.nameRange, a.name, names);
          d.note(who + " takes: " + (names.empty() ? "no arguments" : joinNames(names)));
        }
        ok = false;
        continue;
      }
    }
    if (auto first = bound.find(p->name); first != bound.end()) {
      SourceRange at = a.name.empty() ? a.value->range : a.nameRange;
      if (site == BindSite::Pretrain) {
        diags_.report(DiagKind::DuplicateArgument, at, "field '" + p->name + "' is set twice")
            .note(first->second.range, "first set here");
      } else {
        diags_.report(DiagKind::DuplicateArgument, at,
                      "argument '" + p->name + "'" + (site == BindSite::Call ? " of " + sig.name + "()" : "") +
                          " is given twice")
            .note(first->second.range, "first given here");
      }
      ok = false;
      continue;
    }
    std::string what = site == BindSite::Pretrain ? "field '" + p->name + "' of pretrain '" + owner + "'"
                       : site == BindSite::Call   ? "argument '" + p->name + "' of " + sig.name + "()"
                                                  : "argument '" + p->name + "' of " + sig.name;
    if ((p->flags & kMetrics) != 0) {
      std::vector<std::string> names;
      std::vector<SourceRange> ranges;
      if (!readMetrics(v, a.value->range, what, names, ranges)) {
        ok = false;
        continue;
      }
      bound[p->name] = {true, v, a.value->range};
      continue;
    }
    Ty want = (p->flags & kOrSite) != 0 && v.ty == Ty::Site         ? Ty::Site
              : (p->flags & kOrWeights) != 0 && v.ty == Ty::Weights ? Ty::Weights
                                                                    : p->ty;
    if (!coerce(v, want, a.value->range, what)) {
      ok = false;
      bound[p->name] = {true, errorValue(), a.value->range};
      continue;
    }
    // A folder of the site configuration (root(...)) only where the data's place is not
    // part of the stage hash: a folder data set's root.
    bool machinePath = v.machinePath;
    for (const Value& item : v.items) machinePath = machinePath || item.machinePath;
    if (machinePath && (p->flags & kMachinePath) == 0) {
      diags_.report(DiagKind::TypeMismatch, a.value->range,
                    what + " cannot be root(...): a folder of the site configuration may only be a folder data "
                           "set's root, so that no stage hash depends on where this machine keeps its data");
      ok = false;
      bound[p->name] = {true, errorValue(), a.value->range};
      continue;
    }
    if (want != Ty::Site && want != Ty::Weights) {
      if (std::string why = checkBounds(*p, v); !why.empty()) {
        Diagnostic& d = diags_.report(DiagKind::ValueRange, a.value->range,
                                      what + " " + why + "; got " + std::string(sm_.text(a.value->range)));
        if (want == Ty::Fraction) suggestPercentage(d, *a.value);
        ok = false;
        bound[p->name] = {true, errorValue(), a.value->range};
        continue;
      }
    }
    bound[p->name] = {true, v, a.value->range};
  }
  return ok;
}

void Checker::fillDefaults(const Signature& sig, std::map<std::string, Bound>& bound, SourceRange at) {
  for (const Param& p : sig.params)
    if (bound.count(p.name) == 0) bound[p.name] = {false, p.defaultValue, at};
}

}  // namespace gyrus::check
