// The experiment IR as JSON and stage hashing (see IrJson.h): three visitors over the
// field tables of IrFields.h.
#include "gyrus/IrJson.h"

#include <nlohmann/json.hpp>

#include <set>
#include <stdexcept>

#include "IrFields.h"
#include "gyrus/Version.h"

namespace gyrus::ir {
namespace {

using Json = nlohmann::ordered_json;

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// ---- writing ------------------------------------------------------------------------

template <class T>
Json write(const T& value, bool identityOnly);

// Writes every field, or with `identityOnly` only the identity fields (hash material).
struct Writer {
  Json& out;
  bool identityOnly;
  template <class T>
  void operator()(const char* key, const T& value) {
    out[key] = write(value, identityOnly);
  }
  template <class T>
  void info(const char* key, const T& value) {
    if (!identityOnly) out[key] = write(value, false);
  }
  /// An identity field added after stages were first hashed: written only when it is
  /// not its default, so the stages that do not use it keep their hashes and JSON.
  template <class T>
  void unlessDefault(const char* key, const T& value, const T& dflt) {
    if (!(value == dflt)) out[key] = write(value, identityOnly);
  }
};

template <class T>
Json write(const T& value, bool identityOnly) {
  if constexpr (std::is_enum_v<T>) {
    return std::string(fields::enumName(value));
  } else if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, Shape3>) {
    return Json::array({value[0], value[1], value[2]});
  } else if constexpr (std::is_same_v<T, Interval>) {
    return Json::array({value.lo, value.hi});
  } else if constexpr (IsVector<T>::value) {
    Json a = Json::array();
    for (const auto& item : value) a.push_back(write(item, identityOnly));
    return a;
  } else {
    Json o = Json::object();
    Writer w{o, identityOnly};
    fields::visit(w, value);
    return o;
  }
}

Json writeStage(const Stage& stage, const std::vector<std::string>& depHashes) {
  Json j = Json::object();
  j["hash"] = stage.hash;
  j["kind"] = std::string(fields::enumName(stage.kind));
  j["name"] = stage.name;
  j["deps"] = depHashes;
  if (stage.kind == StageKind::Pretrain) {
    j["pretrain"] = write(stage.pretrain, false);
  } else {
    j["evaluate"] = write(stage.evaluate, false);
  }
  return j;
}

// ---- reading ------------------------------------------------------------------------

struct ReadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string_view typeName(const Json& j) { return j.type_name(); }

template <class T>
void read(const Json& j, T& out, const std::string& path);

// Reads the fields a table visits from one JSON object; keys it does not visit are
// errors (a newer writer's field must not be dropped silently).
struct Reader {
  const Json& in;
  std::string path;
  std::set<std::string> seen;
  template <class T>
  void operator()(const char* key, T& value) {
    auto it = in.find(key);
    if (it == in.end()) throw ReadError(path + ": missing key '" + key + "'");
    seen.insert(key);
    read(*it, value, path + "." + key);
  }
  template <class T>
  void info(const char* key, T& value) {
    (*this)(key, value);
  }
  template <class T>
  void unlessDefault(const char* key, T& value, const T& dflt) {
    if (in.contains(key)) (*this)(key, value);
    else value = dflt;
  }
  /// A value the table cannot take (an unknown operation).
  [[noreturn]] void invalid(const char* key, const std::string& why) const {
    throw ReadError(path + "." + key + ": " + why);
  }
  void finish() const {
    for (auto it = in.begin(); it != in.end(); ++it)
      if (!seen.count(it.key())) throw ReadError(path + ": unknown key '" + it.key() + "'");
  }
};

template <class T>
void read(const Json& j, T& out, const std::string& path) {
  auto wrong = [&](std::string_view expected) {
    return ReadError(path + ": expected " + std::string(expected) + ", found " + std::string(typeName(j)));
  };
  if constexpr (std::is_enum_v<T>) {
    if (!j.is_string()) throw wrong("a name");
    if (!fields::enumFromName(j.get_ref<const std::string&>(), out))
      throw ReadError(path + ": unknown value '" + j.get<std::string>() + "'");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) throw wrong("true or false");
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number_integer()) throw wrong("an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if (!j.is_number_unsigned()) throw wrong("a non-negative integer");
    }
    out = j.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) throw wrong("a number");
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) throw wrong("a string");
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<T, Shape3>) {
    if (!j.is_array() || j.size() != 3) throw wrong("an array of 3 integers");
    for (size_t i = 0; i < 3; ++i) read(j[i], out[i], path + "[" + std::to_string(i) + "]");
  } else if constexpr (std::is_same_v<T, Interval>) {
    if (!j.is_array() || j.size() != 2) throw wrong("an array of 2 numbers");
    read(j[0], out.lo, path + "[0]");
    read(j[1], out.hi, path + "[1]");
  } else if constexpr (IsVector<T>::value) {
    if (!j.is_array()) throw wrong("an array");
    out.clear();
    out.resize(j.size());
    for (size_t i = 0; i < j.size(); ++i) read(j[i], out[i], path + "[" + std::to_string(i) + "]");
  } else {
    if (!j.is_object()) throw wrong("an object");
    Reader r{j, path, {}};
    fields::visit(r, out);
    r.finish();
  }
}

void readStage(const Json& j, Stage& out, std::vector<std::string>& depHashes, const std::string& path) {
  if (!j.is_object()) throw ReadError(path + ": expected an object");
  Reader r{j, path, {}};
  r("hash", out.hash);
  r("kind", out.kind);
  r("name", out.name);
  r("deps", depHashes);
  if (out.kind == StageKind::Pretrain) {
    r("pretrain", out.pretrain);
  } else {
    r("evaluate", out.evaluate);
  }
  r.finish();
  std::string expected = sha256Hex(hashMaterial(out, depHashes));
  if (expected != out.hash)
    throw ReadError(path + ": stage '" + out.name + "' has hash " + out.hash.substr(0, 12) + " but its content hashes to " +
                    expected.substr(0, 12) + " (written by another gyrus version, or edited)");
}

Json parse(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw ReadError("not valid JSON");
  return j;
}

}  // namespace

std::string hashMaterial(const Stage& stage, const std::vector<std::string>& deps) {
  Json j = Json::object();
  j["ir"] = kIrVersion;
  j["kind"] = std::string(fields::enumName(stage.kind));
  if (stage.kind == StageKind::Pretrain) {
    j["pretrain"] = write(stage.pretrain, /*identityOnly=*/true);
  } else {
    j["evaluate"] = write(stage.evaluate, /*identityOnly=*/true);
  }
  j["deps"] = deps;
  return j.dump();
}

void hashStages(Experiment& experiment) {
  for (Stage& s : experiment.stages) s.hash = sha256Hex(hashMaterial(s, depHashes(s, experiment)));
}

std::string toJson(const Experiment& experiment, int indent) {
  Json j = Json::object();
  j["format"] = "gyrus-ir";
  j["version"] = kIrJsonFormat;
  j["ir_version"] = kIrVersion;
  j["stages"] = Json::array();
  for (const Stage& s : experiment.stages) j["stages"].push_back(writeStage(s, depHashes(s, experiment)));
  return j.dump(indent) + "\n";
}

std::vector<std::string> depHashes(const Stage& stage, const Experiment& experiment) {
  std::vector<std::string> hashes;
  for (size_t d : stage.deps) hashes.push_back(experiment.stages.at(d).hash);
  return hashes;
}

std::string stageToJson(const Stage& stage, const std::vector<std::string>& deps, int indent) {
  Json j = writeStage(stage, deps);
  j["format"] = "gyrus-stage";
  j["version"] = kIrJsonFormat;
  return j.dump(indent) + "\n";
}

namespace {
void checkFormat(const Json& j, std::string_view format) {
  if (!j.is_object()) throw ReadError("expected a JSON object");
  auto f = j.find("format");
  if (f == j.end() || !f->is_string() || *f != format) throw ReadError("not a " + std::string(format) + " document");
  auto v = j.find("version");
  if (v == j.end() || !v->is_number_integer() || v->get<int>() != kIrJsonFormat)
    throw ReadError("written in layout version " + (v == j.end() ? std::string("?") : v->dump()) +
                    "; this gyrus reads version " + std::to_string(kIrJsonFormat));
}
}  // namespace

bool experimentFromJson(std::string_view text, Experiment& out, std::string& error) {
  try {
    Json j = parse(text);
    checkFormat(j, "gyrus-ir");
    auto stages = j.find("stages");
    if (stages == j.end() || !stages->is_array()) throw ReadError("missing the array 'stages'");
    Experiment ex;
    for (size_t i = 0; i < stages->size(); ++i) {
      Stage s;
      std::vector<std::string> deps;
      readStage((*stages)[i], s, deps, "stages[" + std::to_string(i) + "]");
      for (const std::string& h : deps) {
        size_t d = 0;
        while (d < ex.stages.size() && ex.stages[d].hash != h) ++d;
        if (d == ex.stages.size())
          throw ReadError("stages[" + std::to_string(i) + "]: dependency " + h.substr(0, 12) + " is not an earlier stage");
        s.deps.push_back(d);
      }
      ex.stages.push_back(std::move(s));
    }
    out = std::move(ex);
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

bool stageFromJson(std::string_view text, Stage& out, std::vector<std::string>& depHashes, std::string& error) {
  try {
    Json j = parse(text);
    checkFormat(j, "gyrus-stage");
    j.erase("format");
    j.erase("version");
    Stage s;
    std::vector<std::string> deps;
    readStage(j, s, deps, "stage");
    out = std::move(s);
    depHashes = std::move(deps);
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

}  // namespace gyrus::ir
