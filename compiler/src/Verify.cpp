// Inline diagnostic expectations (see Verify.h).
#include "gyrus/Verify.h"

#include <regex>

#include "gyrus/Parse.h"

namespace gyrus {

namespace {
struct Expectation {
  Severity severity;
  std::string kind;
  int64_t line;  // 0: anywhere
  uint32_t at;   // the comment's line, for messages
  bool matched = false;
};
}  // namespace

std::vector<std::string> verifyDiagnostics(const SourceManager& sm, FileId id, const std::vector<Diagnostic>& diags) {
  static const std::regex head(R"(expect-(error|warning)(@([+-]\d+|\*))?((\s*\[[a-z-]+\])+))");
  static const std::regex kindRe(R"(\[([a-z-]+)\])");
  std::vector<Expectation> expected;
  const std::string& path = sm.file(id).path;
  for (const SourceRange& c : comments(sm, id)) {
    std::string text(sm.text(c));
    uint32_t line = sm.lineCol(id, c.begin).line;
    for (std::sregex_iterator it(text.begin(), text.end(), head), end; it != end; ++it) {
      const std::smatch& m = *it;
      Severity sev = m[1] == "error" ? Severity::Error : Severity::Warning;
      int64_t target = line;
      if (m[3].matched) target = m[3] == "*" ? 0 : static_cast<int64_t>(line) + std::stoll(m[3].str());
      std::string kinds = m[4];
      for (std::sregex_iterator k(kinds.begin(), kinds.end(), kindRe); k != end; ++k)
        expected.push_back({sev, (*k)[1], target, line});
    }
  }
  std::vector<std::string> problems;
  for (const Diagnostic& d : diags) {
    if (d.severity == Severity::Note) continue;
    bool inFile = d.range.valid() && d.range.file == id;
    int64_t line = inFile ? sm.lineCol(id, d.range.begin).line : -1;
    Expectation* match = nullptr;
    for (Expectation& e : expected) {
      if (e.matched || e.severity != d.severity || e.kind != info(d.kind).name) continue;
      if (e.line == 0 || e.line == line) {
        match = &e;
        break;
      }
    }
    if (match != nullptr) {
      match->matched = true;
      continue;
    }
    std::string where = inFile ? path + ":" + std::to_string(line) : std::string("(no place in ") + path + ")";
    problems.push_back(where + ": unexpected " + std::string(toString(d.severity)) + " [" +
                       std::string(info(d.kind).name) + "]: " + d.message);
  }
  for (const Expectation& e : expected) {
    if (e.matched) continue;
    problems.push_back(path + ":" + std::to_string(e.at) + ": expected " + std::string(toString(e.severity)) + " [" +
                       e.kind + "]" + (e.line == 0 ? " anywhere" : " on line " + std::to_string(e.line)) +
                       " was not reported");
  }
  return problems;
}

}  // namespace gyrus
