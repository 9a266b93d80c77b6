// The diagnostics engine and its two renderers.
#include "gyrus/Diagnostics.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <tuple>

namespace gyrus {

const std::vector<DiagKindInfo>& allDiagKinds() {
  static const std::vector<DiagKindInfo> kinds = {
#define DIAGNOSTIC(id, name, severity, summary) {DiagKind::id, name, Severity::severity, summary},
#include "gyrus/Diagnostics.def"
  };
  return kinds;
}

const DiagKindInfo& info(DiagKind kind) { return allDiagKinds().at(static_cast<size_t>(kind)); }

std::string_view toString(Severity s) {
  switch (s) {
    case Severity::Note: return "note";
    case Severity::Warning: return "warning";
    case Severity::Error: return "error";
  }
  return "error";
}

Diagnostic& DiagnosticEngine::report(DiagKind kind, SourceRange range, std::string message) {
  Diagnostic d;
  d.kind = kind;
  d.severity = info(kind).severity;
  d.range = range;
  d.message = std::move(message);
  if (d.severity == Severity::Error) ++errors_;
  if (d.severity == Severity::Warning) ++warnings_;
  diags_.push_back(std::move(d));
  return diags_.back();
}

std::vector<Diagnostic> DiagnosticEngine::sorted() const {
  std::vector<Diagnostic> out = diags_;
  auto key = keyOf;
  std::stable_sort(out.begin(), out.end(), [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  out.erase(std::unique(out.begin(), out.end(), [&](const Diagnostic& a, const Diagnostic& b) { return key(a) == key(b); }),
            out.end());
  return out;
}

namespace {

struct Palette {
  bool on;
  std::string_view bold() const { return on ? "\x1b[1m" : ""; }
  std::string_view reset() const { return on ? "\x1b[0m" : ""; }
  std::string_view severity(Severity s) const {
    if (!on) return "";
    switch (s) {
      case Severity::Error: return "\x1b[1;31m";
      case Severity::Warning: return "\x1b[1;35m";
      case Severity::Note: return "\x1b[1;36m";
    }
    return "";
  }
  std::string_view caret() const { return on ? "\x1b[1;32m" : ""; }
};

std::string location(const SourceManager& sm, SourceRange r) {
  LineCol lc = sm.lineCol(r.file, r.begin);
  return sm.file(r.file).path + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col);
}

// The source line of `r` and a marker line under it: `^` at the start, `~` to the end
// of the range (clipped to the line).
// A line longer than kMaxShown columns is shown as a window around the range, with
// "..." where it is cut (a generated file may have a line of 40,000 brackets).
void renderSnippet(const SourceManager& sm, SourceRange r, const Palette& p, std::string& out) {
  constexpr size_t kMaxShown = 160, kBefore = 60;
  LineCol b = sm.lineCol(r.file, r.begin);
  std::string_view line = sm.lineText(r.file, b.line);
  std::string num = std::to_string(b.line);
  std::string gutter(std::max<size_t>(num.size(), 4), ' ');
  std::string lineNo = std::string(gutter.size() - num.size(), ' ') + num;
  size_t start = b.col - 1;
  size_t len = 1;
  if (r.end > r.begin) {
    LineCol e = sm.lineCol(r.file, r.end);
    size_t endCol = e.line == b.line ? e.col - 1 : line.size();
    len = endCol > start ? endCol - start : 1;
  }
  std::string prefix, suffix;
  if (line.size() > kMaxShown) {
    size_t from = start > kBefore ? std::min(start - kBefore, line.size() - kMaxShown) : 0;
    prefix = from > 0 ? "..." : "";
    suffix = from + kMaxShown < line.size() ? "..." : "";
    line = line.substr(from, kMaxShown);
    start -= from;
    len = std::max<size_t>(1, std::min(len, line.size() > start ? line.size() - start : 1));
  }
  // Control characters other than tabs (a NUL would end the printed text) show as '?',
  // one column each, so the marker stays under them.
  std::string shown(line);
  for (char& c : shown)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
  out += " " + lineNo + " | " + prefix + shown + suffix + "\n";
  std::string marker(prefix.size(), ' ');
  for (size_t i = 0; i < start && i < line.size(); ++i) marker += line[i] == '\t' ? '\t' : ' ';
  if (start > line.size()) marker += std::string(start - line.size(), ' ');
  marker += std::string(p.caret()) + "^" + std::string(len - 1, '~') + std::string(p.reset());
  out += " " + gutter + " | " + marker + "\n";
}

}  // namespace

std::string renderHuman(const SourceManager& sm, const std::vector<Diagnostic>& diags, const RenderOptions& options) {
  Palette p{options.color};
  std::string out;
  for (const Diagnostic& d : diags) {
    if (d.range.valid()) out += std::string(p.bold()) + location(sm, d.range) + ": " + std::string(p.reset());
    out += std::string(p.severity(d.severity)) + std::string(toString(d.severity)) + ":" + std::string(p.reset()) + " ";
    out += std::string(p.bold()) + d.message + std::string(p.reset()) + " [" + std::string(info(d.kind).name) + "]\n";
    if (d.range.valid()) renderSnippet(sm, d.range, p, out);
    for (const DiagNote& n : d.notes) {
      if (n.range.valid()) out += std::string(p.bold()) + location(sm, n.range) + ": " + std::string(p.reset());
      out += std::string(p.severity(Severity::Note)) + "note:" + std::string(p.reset()) + " " + n.message + "\n";
      if (n.range.valid()) renderSnippet(sm, n.range, p, out);
    }
    for (const FixIt& f : d.fixits) {
      out += std::string(p.bold()) + location(sm, f.range) + ": " + std::string(p.reset());
      out += std::string(p.severity(Severity::Note)) + "fix-it:" + std::string(p.reset());
      std::string_view old = sm.text(f.range);
      if (old.empty()) {
        out += " insert '" + f.replacement + "'\n";
      } else {
        out += " replace '" + std::string(old) + "' with '" + f.replacement + "'\n";
      }
    }
  }
  return out;
}

namespace {
nlohmann::json position(const SourceManager& sm, FileId file, uint32_t offset) {
  LineCol lc = sm.lineCol(file, offset);
  return {{"line", lc.line}, {"column", lc.col}};
}
void addRange(nlohmann::json& j, const SourceManager& sm, SourceRange r) {
  if (!r.valid()) {
    j["file"] = nullptr;
    return;
  }
  LineCol b = sm.lineCol(r.file, r.begin);
  j["file"] = sm.file(r.file).path;
  j["line"] = b.line;
  j["column"] = b.col;
  j["end"] = position(sm, r.file, std::max(r.end, r.begin));
}
}  // namespace

std::string renderJson(const SourceManager& sm, const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const Diagnostic& d : diags) {
    nlohmann::json j;
    addRange(j, sm, d.range);
    j["severity"] = toString(d.severity);
    j["kind"] = info(d.kind).name;
    j["message"] = d.message;
    j["notes"] = nlohmann::json::array();
    // A note or fix-it: its range and its one text.
    auto located = [&sm](SourceRange range, const char* key, const std::string& text) {
      nlohmann::json x;
      addRange(x, sm, range);
      x[key] = text;
      return x;
    };
    for (const DiagNote& n : d.notes) j["notes"].push_back(located(n.range, "message", n.message));
    j["fixits"] = nlohmann::json::array();
    for (const FixIt& f : d.fixits) j["fixits"].push_back(located(f.range, "replacement", f.replacement));
    out += j.dump() + "\n";
  }
  return out;
}

size_t editDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps of two
  // neighbouring letters (`unte` is one edit from `unet`) each cost 1.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string closestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  auto lower = [](std::string_view w) {
    std::string out(w);
    for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
  };
  std::string folded = lower(word);
  std::string best;
  size_t bestDist = ~size_t{0};
  for (const std::string& c : candidates) {
    if (c == word) continue;  // the word itself is no suggestion
    size_t d = editDistance(folded, lower(c));
    if (d < bestDist || (d == bestDist && c < best)) {
      best = c;
      bestDist = d;
    }
  }
  // Plausible typo: at most a third of the word's letters wrong (and at least one allowed).
  size_t limit = std::max<size_t>(1, (word.size() + 2) / 3);
  return bestDist <= limit ? best : std::string();
}

std::string suggest(Diagnostic& d, SourceRange where, std::string_view word, const std::vector<std::string>& candidates,
                    const SuggestStyle& style) {
  std::string best = closestMatch(word, candidates);
  if (best.empty()) return best;
  if (style.inMessage) d.message += std::string("; did you mean ") + style.quote + best + style.quote + "?";
  if (where.valid()) d.fixit(where, style.fixPrefix + best + style.fixSuffix);
  return best;
}

}  // namespace gyrus
