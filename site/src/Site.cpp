// gyrus.toml: reading (toml++), validation and diagnostics at file:line:col.
#include "gyrus/site/Site.h"

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <toml++/toml.h>

namespace gyrus {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopKeys = {"store",  "roots", "volume_cache", "loader_memory",
                                           "device", "jobs",  "ranks",        "slurm"};
const std::vector<std::string> kSlurmKeys = {"partition",   "account", "time",        "gpus_per_task",
                                             "max_running", "retries", "extra_sbatch"};

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string typeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// Reads one site file: every problem is reported where it is, and the valid settings
// are kept.
class SiteReader {
 public:
  SiteReader(SourceManager& sm, DiagnosticEngine& diags, FileId file, SiteConfig& out)
      : sm_(sm), diags_(diags), file_(file), out_(out), dir_(fs::absolute(sm.file(file).path).parent_path()) {}

  // toml++ counts lines from 1 and columns in code points from 1; a SourceRange is in
  // bytes.
  uint32_t offsetOf(const toml::source_position& p) const {
    const SourceFile& f = sm_.file(file_);
    if (p.line == 0 || f.lineStarts.empty()) return 0;
    size_t line = std::min<size_t>(p.line, f.lineStarts.size());
    uint32_t off = f.lineStarts[line - 1];
    for (uint32_t col = 1; col < p.column && off < f.text.size() && f.text[off] != '\n'; ++col) {
      ++off;
      while (off < f.text.size() && (static_cast<unsigned char>(f.text[off]) & 0xC0) == 0x80) ++off;
    }
    return off;
  }
  SourceRange rangeOf(const toml::source_region& r) const {
    uint32_t begin = offsetOf(r.begin);
    uint32_t end = r.end.line != 0 ? offsetOf(r.end) : begin;
    const std::string& text = sm_.file(file_).text;
    // A value's region may run to the end of its line; a caret under the value itself
    // reads better, so trailing blanks and comments are left out.
    while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\n' ||
                           text[end - 1] == '\r'))
      --end;
    if (end <= begin) end = std::min<uint32_t>(begin + 1, static_cast<uint32_t>(text.size()));
    return SourceRange{file_, begin, end};
  }

  void syntaxError(const toml::parse_error& e) {
    std::string what(e.description());
    diags_.report(DiagKind::SiteSyntax, rangeOf(e.source()), "the site configuration is not valid TOML: " + what)
        .note("TOML's syntax: https://toml.io/en/v1.0.0");
  }

  void read(const toml::table& top) {
    for (auto&& [key, node] : top) {
      std::string k(key.str());
      SourceRange at = rangeOf(key.source());
      if (k == "slurm") {
        if (const toml::table* t = node.as_table()) readSlurm(*t);
        else wrongType("slurm", node, "a table ([slurm])");
        continue;
      }
      if (k == "roots") {
        if (const toml::table* t = node.as_table()) readRoots(*t);
        else wrongType("roots", node, "a table ([roots] of name = \"/folder\")");
        continue;
      }
      if (k == "store") readPath(k, node, out_.store);
      else if (k == "volume_cache") readPath(k, node, out_.volumeCache);
      else if (k == "loader_memory") readSize(k, node, out_.loaderMemory);
      else if (k == "device") readDevice(k, node);
      else if (k == "jobs") readCount(k, node, 1, 256, out_.jobs);  // as --jobs
      else if (k == "ranks") readCount(k, node, 1, 1024, out_.ranks);
      else {
        unknownKey(k, at, kTopKeys, "the site configuration");
        continue;
      }
    }
  }

 private:
  void unknownKey(const std::string& k, SourceRange at, const std::vector<std::string>& keys, const std::string& where) {
    Diagnostic& d = diags_.report(DiagKind::SiteUnknownKey, at, "unknown key '" + k + "' in " + where);
    std::string fix = suggest(d, at, k, keys);
    d.note(where + " has the keys: " + joined(keys));
    // A key that is no close typo is perhaps a setting that belongs to the experiment.
    if (fix.empty() && &keys == &kTopKeys)
      d.note("settings that change results (epochs, seeds, data, ...) are never taken from the site file: they "
             "belong in the experiment file, where the stage hash sees them (see docs/site-config.md)");
  }

  void wrongType(const std::string& key, const toml::node& node, const std::string& want) {
    Diagnostic& d = diags_.report(DiagKind::SiteType, rangeOf(node.source()),
                                  "'" + key + "' must be " + want + ", not " + typeName(node.type()));
    // "4" where a count is wanted: the number itself.
    if (const auto* s = node.as_string(); s != nullptr && want == "an integer" &&
                                          std::regex_match(s->get(), std::regex("[0-9]+")))
      d.fixit(rangeOf(node.source()), s->get());
  }

  void place(const std::string& key, const toml::node& node) { out_.places[key] = rangeOf(node.source()); }

  const std::string* string(const std::string& key, const toml::node& node, const std::string& want = "a string") {
    const auto* s = node.as_string();
    if (s == nullptr) {
      wrongType(key, node, want);
      return nullptr;
    }
    return &s->get();
  }

  void badValue(const toml::node& node, const std::string& message, const std::string& note = {}) {
    Diagnostic& d = diags_.report(DiagKind::SiteValue, rangeOf(node.source()), message);
    if (!note.empty()) d.note(note);
  }

  // `~` and `~/...` are the home folder.
  bool expandHome(const toml::node& node, const std::string& key, std::string& path) {
    if (path != "~" && path.rfind("~/", 0) != 0) return true;
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      badValue(node, "'" + key + "' starts with '~', but $HOME is not set");
      return false;
    }
    path = std::string(home) + path.substr(1);
    return true;
  }

  void readPath(const std::string& key, const toml::node& node, std::optional<std::string>& out) {
    const std::string* s = string(key, node, "a string (a folder)");
    if (s == nullptr) return;
    std::string path = *s;
    if (path.empty()) {
      badValue(node, "'" + key + "' is empty: name a folder, or leave the key out");
      return;
    }
    if (!expandHome(node, key, path)) return;
    // A relative folder is relative to the site file, wherever the command runs.
    fs::path p(path);
    out = (p.is_absolute() ? p : dir_ / p).lexically_normal().string();
    place(key, node);
  }

  void readSize(const std::string& key, const toml::node& node, std::optional<int64_t>& out) {
    int64_t bytes = 0;
    if (const auto* i = node.as_integer()) {
      if (i->get() <= 0) {
        badValue(node, "'" + key + "' must be positive; got " + std::to_string(i->get()));
        return;
      }
      bytes = i->get();
    } else if (const auto* s = node.as_string()) {
      if (!parseByteSize(s->get(), bytes)) {
        badValue(node, "'" + key + "' is not a size: '" + s->get() + "'", "write e.g. \"8GiB\", \"512MiB\" or \"2G\"");
        return;
      }
    } else {
      wrongType(key, node, "a size (a string such as \"8GiB\", or a number of bytes)");
      return;
    }
    out = bytes;
    place(key, node);
  }

  void readDevice(const std::string& key, const toml::node& node) {
    const std::string* s = string(key, node);
    if (s == nullptr) return;
    if (!isDeviceName(*s)) {
      Diagnostic& d = diags_.report(DiagKind::SiteValue, rangeOf(node.source()), "'" + *s + "' is not a device");
      suggest(d, rangeOf(node.source()), *s, {"auto", "cpu", "cuda"}, SuggestStyle{true, '"', "\"", "\""});
      d.note("devices: \"auto\" (the first GPU when one is usable, else the CPU), \"cpu\", \"cuda\" or \"cuda:N\"");
      return;
    }
    out_.device = *s;
    place(key, node);
  }

  void readCount(const std::string& key, const toml::node& node, int64_t least, int64_t most,
                 std::optional<int64_t>& out) {
    const auto* i = node.as_integer();
    if (i == nullptr) {
      wrongType(key, node, "an integer");
      return;
    }
    if (i->get() < least || i->get() > most) {
      badValue(node, "'" + key + "' must be " + std::to_string(least) + " to " + std::to_string(most) + "; got " +
                         std::to_string(i->get()));
      return;
    }
    out = i->get();
    place(key, node);
  }

  void readRoots(const toml::table& roots) {
    static const std::regex nameRe("[A-Za-z0-9_.-]+");
    for (auto&& [key, node] : roots) {
      std::string name(key.str());
      std::string slot = "roots." + name;
      if (!std::regex_match(name, nameRe)) {
        diags_.report(DiagKind::SiteValue, rangeOf(key.source()),
                      "data root name '" + name + "' may hold only letters, digits, '_', '.' and '-'");
        continue;
      }
      const std::string* s = string(slot, node, "a string (an absolute folder)");
      if (s == nullptr) continue;
      std::string path = *s;
      if (!expandHome(node, slot, path)) continue;
      if (!fs::path(path).is_absolute()) {
        badValue(node, "data root '" + name + "' must be an absolute folder, not '" + *s + "'",
                 "a named root is where data lie on this machine; a folder relative to the experiment is written "
                 "in the experiment file itself");
        continue;
      }
      out_.roots[name] = fs::path(path).lexically_normal().string();
      place(slot, node);
    }
  }

  // A value that ends up on a line of a batch script: one line, printable.
  bool oneLine(const std::string& key, const toml::node& node, const std::string& s) {
    for (char ch : s) {
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
        badValue(node, "'" + key + "' must be one line of printable characters");
        return false;
      }
    }
    return true;
  }

  void readSlurmName(const std::string& key, const toml::node& node, std::optional<std::string>& out) {
    const std::string* s = string("slurm." + key, node);
    if (s == nullptr) return;
    if (s->empty() || s->find_first_of(" \t\r\n") != std::string::npos) {
      badValue(node, "slurm." + key + " must be one word (a Slurm " + key + " name); got '" + *s + "'");
      return;
    }
    if (!oneLine("slurm." + key, node, *s)) return;
    out = *s;
    place("slurm." + key, node);
  }

  void readSlurm(const toml::table& slurm) {
    SlurmSite& s = out_.slurm;
    for (auto&& [key, node] : slurm) {
      std::string k(key.str());
      if (k == "partition") readSlurmName(k, node, s.partition);
      else if (k == "account") readSlurmName(k, node, s.account);
      else if (k == "time") readTime(node);
      else if (k == "gpus_per_task") readCount("slurm." + k, node, 0, 64, s.gpusPerTask);
      else if (k == "max_running") readCount("slurm." + k, node, 1, 100000, s.maxRunning);
      else if (k == "retries") readCount("slurm." + k, node, 0, 100, s.retries);
      else if (k == "extra_sbatch") readExtra(node);
      else unknownKey(k, rangeOf(key.source()), kSlurmKeys, "[slurm]");
    }
  }

  void readTime(const toml::node& node) {
    // Slurm's --time: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit.
    static const std::regex timeRe(R"((\d+-\d+(:\d+){0,2})|(\d+(:\d+){0,2})|UNLIMITED|INFINITE)");
    const std::string* t = string("slurm.time", node, "a string (e.g. \"4:00:00\")");
    if (t == nullptr) return;
    if (!std::regex_match(*t, timeRe)) {
      badValue(node, "slurm.time '" + *t + "' is not a Slurm time",
               "write minutes (\"30\"), \"HH:MM:SS\" (\"4:00:00\") or \"D-HH:MM:SS\" (\"1-12:00:00\")");
      return;
    }
    out_.slurm.time = *t;
    place("slurm.time", node);
  }

  void readExtra(const toml::node& node) {
    const toml::array* lines = node.as_array();
    if (lines == nullptr) {
      wrongType("slurm.extra_sbatch", node, "an array of strings (e.g. [\"#SBATCH --qos=high\"])");
      return;
    }
    std::vector<std::string> kept;
    bool ok = true;
    for (const toml::node& line : *lines) {
      const std::string* s = string("slurm.extra_sbatch", line, "a string (a whole \"#SBATCH ...\" line)");
      if (s == nullptr) {
        ok = false;
        continue;
      }
      if (!oneLine("slurm.extra_sbatch", line, *s)) {
        ok = false;
        continue;
      }
      if (s->rfind("#SBATCH ", 0) != 0 || s->size() <= 8) {
        Diagnostic& d = diags_.report(DiagKind::SiteValue, rangeOf(line.source()),
                                      "an extra_sbatch line must start with '#SBATCH ' and give an option; got '" +
                                          *s + "'");
        if (s->rfind("--", 0) == 0 || s->rfind("-", 0) == 0) d.fixit(rangeOf(line.source()), "\"#SBATCH " + *s + "\"");
        ok = false;
        continue;
      }
      kept.push_back(*s);
    }
    if (!ok) return;
    out_.slurm.extraSbatch = kept;
    place("slurm.extra_sbatch", node);
  }

  SourceManager& sm_;
  DiagnosticEngine& diags_;
  FileId file_;
  SiteConfig& out_;
  fs::path dir_;
};

}  // namespace

SourceRange SiteConfig::place(const std::string& key) const {
  auto it = places.find(key);
  return it == places.end() ? SourceRange{} : it->second;
}

std::vector<std::string> siteSearchPath(const std::string& experimentFile) {
  std::vector<std::string> paths;
  if (!experimentFile.empty())
    paths.push_back((fs::absolute(experimentFile).parent_path() / "gyrus.toml").lexically_normal().string());
  // XDG base directories: a relative $XDG_CONFIG_HOME is to be ignored.
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && fs::path(xdg).is_absolute())
    paths.push_back((fs::path(xdg) / "gyrus" / "gyrus.toml").string());
  else if (home != nullptr && *home != '\0')
    paths.push_back((fs::path(home) / ".config" / "gyrus" / "gyrus.toml").string());
  return paths;
}

std::string findSiteFile(const std::string& experimentFile) {
  for (const std::string& p : siteSearchPath(experimentFile)) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return {};
}

bool parseSiteConfig(const std::string& path, std::string text, SourceManager& sm, DiagnosticEngine& diags,
                     SiteConfig& out) {
  size_t before = diags.errorCount();
  out.path = path;
  FileId id = sm.add(path, std::move(text));
  SiteReader reader(sm, diags, id, out);
  try {
    toml::table top = toml::parse(sm.file(id).text, path);
    reader.read(top);
  } catch (const toml::parse_error& e) {
    reader.syntaxError(e);
  }
  return diags.errorCount() == before;
}

bool loadSiteConfig(const std::string& path, SourceManager& sm, DiagnosticEngine& diags, SiteConfig& out) {
  std::string text, error;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    diags.report(DiagKind::IoError, SourceRange{}, "cannot read the site configuration '" + path + "': it is a directory");
    return false;
  }
  if (!readFile(path, text, error)) {
    diags.report(DiagKind::IoError, SourceRange{}, "cannot read the site configuration: " + error);
    return false;
  }
  return parseSiteConfig(path, std::move(text), sm, diags, out);
}

bool parseByteSize(const std::string& text, int64_t& bytes) {
  size_t end = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    return false;
  }
  std::string unit = text.substr(end);
  static const std::pair<const char*, double> units[] = {
      {"", 1.0},          {"B", 1.0},         {"K", 1024.0},      {"KiB", 1024.0}, {"M", 1048576.0},
      {"MiB", 1048576.0}, {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"T", 1099511627776.0}, {"TiB", 1099511627776.0}};
  for (const auto& [name, scale] : units) {
    if (unit != name) continue;
    double b = value * scale;
    if (!(b >= 1.0) || b > 9.0e18) return false;
    bytes = static_cast<int64_t>(b);
    return true;
  }
  return false;
}

bool isDeviceName(const std::string& v) {
  bool cudaN = v.rfind("cuda:", 0) == 0 && v.size() > 5 && v.find_first_not_of("0123456789", 5) == std::string::npos;
  return v == "auto" || v == "cpu" || v == "cuda" || cudaN;
}

}  // namespace gyrus
