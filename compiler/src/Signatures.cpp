// The signature table (Signatures.def) as data: parameters with parsed defaults, range
// checks and their messages, the named constants, and the generated reference.
#include <cstdlib>

#include "CheckInternal.h"

namespace gyrus::check {

namespace {
const std::vector<std::pair<std::string, Ty>> kNamedValues = {
    {"cosine", Ty::Schedule},       {"constant", Ty::Schedule},    {"linear", Ty::Probe},  {"probe", Ty::ProtocolTy},
    {"finetune", Ty::ProtocolTy},   {"binary", Ty::LabelType},     {"regression", Ty::LabelType},
    {"segmentation", Ty::LabelType}, {"pooled", Ty::Head},         {"dense", Ty::Head},    {"light", Ty::Decoder},
    {"none", Ty::Decoder},          {"auroc", Ty::Metric},         {"dice", Ty::Metric},   {"nsd", Ty::Metric},
    {"pearson_r", Ty::Metric},      {"mae", Ty::Metric},           {"fp32", Ty::Precision}, {"bf16", Ty::Precision},
    {"reinit", Ty::Stem},           {"repeat", Ty::Stem}};

bool parseNumber(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// A default as written in the table: a number (with `%` or `mm`), a cube `N^3`, a
// boolean, a string, a range `a .. b`, `[]`, or a named constant. Ty::Error otherwise.
Value parseDefault(const std::string& text) {
  Value v;
  double x = 0;
  if (text == "[]") {
    v.ty = Ty::List;
  } else if (text == "true" || text == "false") {
    v.ty = Ty::Bool;
    v.flag = text == "true";
  } else if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    v.ty = Ty::String;
    v.str = text.substr(1, text.size() - 2);
  } else if (size_t dots = text.find(" .. "); dots != std::string::npos) {
    double hi = 0;
    if (parseNumber(text.substr(0, dots), x) && parseNumber(text.substr(dots + 4), hi)) {
      v.ty = Ty::Range;
      v.num = x;
      v.hi = hi;
    }
  } else if (text.size() > 2 && text.compare(text.size() - 2, 2, "^3") == 0) {
    if (parseNumber(text.substr(0, text.size() - 2), x)) {
      v.ty = Ty::Shape;
      auto side = static_cast<int64_t>(x);
      v.shape = {side, side, side};
    }
  } else if (text.back() == '%') {
    if (parseNumber(text.substr(0, text.size() - 1), x)) {
      v.ty = Ty::Fraction;
      v.num = x / 100.0;
    }
  } else if (text.size() > 2 && text.compare(text.size() - 2, 2, "mm") == 0) {
    if (parseNumber(text.substr(0, text.size() - 2), x)) {
      v.ty = Ty::Length;
      v.num = x;
    }
  } else if (parseNumber(text, x)) {
    v.ty = text.find_first_of(".eE") == std::string::npos ? Ty::Int : Ty::Float;
    v.num = x;
  } else {
    namedValue(text, v);
  }
  return v;
}

std::vector<Signature> buildTable() {
  std::vector<Signature> table;
  auto param = [&table](const char* name, Ty ty, const char* unit, const char* def, Bounds bounds, double lo, double hi,
                        unsigned flags, const char* doc) {
    Param p;
    p.name = name;
    p.ty = ty;
    p.unit = unit;
    p.defaultText = def;
    p.bounds = bounds;
    p.lo = lo;
    p.hi = hi;
    p.flags = flags;
    p.doc = doc;
    if ((flags & kDescribed) == 0 && !p.defaultText.empty()) {
      p.defaultValue = parseDefault(p.defaultText);
      // A number written plainly takes the parameter's numeric type (`16` voxels).
      if ((p.defaultValue.ty == Ty::Int || p.defaultValue.ty == Ty::Float) &&
          (ty == Ty::Float || ty == Ty::Fraction || ty == Ty::Voxels))
        p.defaultValue.ty = ty;
      // A default of another type is a bug in the table (SignatureTest reports it).
      if (p.defaultValue.ty != ty) p.defaultValue = Value{};
    }
    table.back().params.push_back(std::move(p));
  };
#define GYRUS_FUNCTION(NAME, RESULT, DOC) table.push_back({#NAME, Ty::RESULT, true, DOC, {}});
#define GYRUS_BLOCK(NAME, DOC) table.push_back({#NAME, Ty::Error, false, DOC, {}});
#define GYRUS_PARAM(NAME, TYPE, UNIT, DEFAULT, BOUNDS, LO, HI, FLAGS, DOC) \
  param(#NAME, Ty::TYPE, UNIT, DEFAULT, Bounds::BOUNDS, LO, HI, FLAGS, DOC);
#include "Signatures.def"
#undef GYRUS_FUNCTION
#undef GYRUS_BLOCK
#undef GYRUS_PARAM
  return table;
}

std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}
}  // namespace

const std::vector<Signature>& signatures() {
  static const std::vector<Signature> table = buildTable();
  return table;
}

const Signature* findSignature(const std::string& name) {
  for (const Signature& s : signatures())
    if (s.name == name) return &s;
  return nullptr;
}

const std::vector<const Signature*>& builtins() {
  static const std::vector<const Signature*> functions = [] {
    std::vector<const Signature*> out;
    for (const Signature& s : signatures())
      if (s.callable) out.push_back(&s);
    return out;
  }();
  return functions;
}

bool namedValue(const std::string& name, Value& v) {
  for (const auto& [n, ty] : kNamedValues) {
    if (n != name) continue;
    v = Value{};
    v.ty = ty;
    switch (ty) {
      case Ty::Schedule: v.schedule = name == "cosine" ? ir::Schedule::Cosine : ir::Schedule::Constant; break;
      case Ty::ProtocolTy: v.flag = name == "finetune"; break;
      case Ty::LabelType:
        v.flag = name == "binary";
        v.num = name == "binary" ? 0 : name == "regression" ? 1 : 2;
        break;
      case Ty::Head: v.flag = name == "dense"; break;
      case Ty::Decoder: v.flag = name == "light"; break;
      case Ty::Stem: v.flag = name == "repeat"; break;
      case Ty::Precision: v.flag = name == "bf16"; break;
      case Ty::Metric: v.str = name; break;
      default: break;
    }
    return true;
  }
  return false;
}

const std::vector<std::pair<std::string, Ty>>& namedValues() { return kNamedValues; }

std::string checkBounds(const Param& p, const Value& v) { return ir::checkBounds(p.bounds, p.lo, p.hi, v.num, v.hi, v.shape); }

std::string boundsText(const Param& p) { return ir::boundsText(p.bounds, p.lo, p.hi); }

std::string signaturesMarkdown() {
  std::string out;
  for (const Signature& s : signatures()) {
    if (s.callable) {
      out += "#### `" + s.name + "` → `" + std::string(typeLabel(s.result)) + "`\n\n" + cell(s.doc) + ".\n\n";
    } else {
      out += "#### `" + s.name + "`\n\n" + cell(s.doc) + ".\n\n";
    }
    if (s.params.empty()) continue;
    out += "| parameter | type | unit | default | range | meaning |\n|---|---|---|---|---|---|\n";
    for (const Param& p : s.params) {
      std::string type = "`" + std::string(typeLabel(p.ty)) + "`";
      if ((p.flags & kOrSite) != 0) type += " or `Site`";
      if ((p.flags & kOrWeights) != 0) type += " or `Weights`";
      std::string def = p.required()                   ? std::string("required")
                        : (p.flags & kDescribed) != 0 ? cell(p.defaultText)
                        : p.defaultText.empty()        ? std::string("none")
                                                       : "`" + cell(p.defaultText) + "`";
      std::string doc = cell(p.doc);
      if ((p.flags & kFinetuneOnly) != 0) doc += " (`protocol = finetune` only)";
      out += "| `" + p.name + "` | " + type + " | " + p.unit + " | " + def + " | " + boundsText(p) + " | " + doc +
             " |\n";
    }
    out += "\n";
  }
  return out;
}

}  // namespace gyrus::check
