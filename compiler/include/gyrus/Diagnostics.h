// Diagnostics are data: passes report them to a `DiagnosticEngine`; the driver renders
// them at the edge (human, clang-style, or JSON). No pass prints or exits.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <string_view>
#include <vector>

#include "gyrus/Source.h"

namespace gyrus {

enum class Severity { Note, Warning, Error };

enum class DiagKind {
#define DIAGNOSTIC(id, name, severity, summary) id,
#include "gyrus/Diagnostics.def"
};

/// Metadata of one kind, from Diagnostics.def.
struct DiagKindInfo {
  DiagKind kind;
  std::string_view name;
  Severity severity;
  std::string_view summary;
};
/// Every registered kind, in declaration order.
const std::vector<DiagKindInfo>& allDiagKinds();
const DiagKindInfo& info(DiagKind kind);
std::string_view toString(Severity s);

struct DiagNote {
  SourceRange range;  ///< may be invalid: a note without a place
  std::string message;
};

/// Replace `range` with `replacement`.
struct FixIt {
  SourceRange range;
  std::string replacement;
};

struct Diagnostic {
  DiagKind kind = DiagKind::Syntax;
  Severity severity = Severity::Error;
  SourceRange range;
  std::string message;
  std::vector<DiagNote> notes;
  std::vector<FixIt> fixits;

  /// Adds a note (chainable).
  Diagnostic& note(SourceRange where, std::string text) {
    notes.push_back({where, std::move(text)});
    return *this;
  }
  Diagnostic& note(std::string text) { return note(SourceRange{}, std::move(text)); }
  Diagnostic& fixit(SourceRange where, std::string replacement) {
    fixits.push_back({where, std::move(replacement)});
    return *this;
  }
};

/// Collects the diagnostics of one compilation.
/// What makes two diagnostics the same one (sorted() keeps one of each; a sweep's
/// points raise the same diagnostic once each): place, kind and message, not the notes.
using DiagnosticKey = std::tuple<FileId, uint32_t, uint32_t, int, std::string>;
inline DiagnosticKey keyOf(const Diagnostic& d) {
  return {d.range.file, d.range.begin, d.range.end, static_cast<int>(d.kind), d.message};
}

class DiagnosticEngine {
 public:
  /// Reports a diagnostic of `kind` at `range` with its kind's default severity. The
  /// returned reference stays valid until the next report.
  Diagnostic& report(DiagKind kind, SourceRange range, std::string message);
  bool hasErrors() const { return errors_ > 0; }
  size_t errorCount() const { return errors_; }
  size_t warningCount() const { return warnings_; }
  /// Diagnostics sorted by file, position and kind, exact duplicates removed.
  std::vector<Diagnostic> sorted() const;
  const std::vector<Diagnostic>& all() const { return diags_; }
  /// The diagnostic reported `index`-th (an index into all()), for a pass that adds a
  /// note to what a callee reported.
  Diagnostic& at(size_t index) { return diags_.at(index); }

 private:
  std::vector<Diagnostic> diags_;
  size_t errors_ = 0;
  size_t warnings_ = 0;
};

struct RenderOptions {
  bool color = false;
};

/// Renders clang-style: `file:line:col: error: message [kind]`, the source line with
/// a `^~~~` marker, then notes and fix-its.
std::string renderHuman(const SourceManager& sm, const std::vector<Diagnostic>& diags,
                        const RenderOptions& options = {});
/// Renders one JSON object per diagnostic, one per line (JSON Lines): file, line,
/// column, end {line, column}, severity, kind, message, notes, fixits.
std::string renderJson(const SourceManager& sm, const std::vector<Diagnostic>& diags);

/// Edit distance for "did you mean" suggestions.
size_t editDistance(std::string_view a, std::string_view b);
/// The candidate closest to `word` if it is close enough to be a plausible typo. Case
/// is ignored (`MAE` finds `mae`); among equally close candidates the first in
/// alphabetical order wins.
std::string closestMatch(std::string_view word, const std::vector<std::string>& candidates);
/// How `suggest` words a suggestion.
struct SuggestStyle {
  bool inMessage = true;    ///< append "; did you mean 'X'?" to the message
  char quote = '\'';        ///< around X in the message
  std::string fixPrefix;    ///< the fix-it writes fixPrefix + X + fixSuffix
  std::string fixSuffix;
};
/// "Did you mean": every such suggestion goes through here. When a candidate is a
/// plausible typo of `word` (closestMatch), adds it to `d`'s message and a fix-it
/// replacing `where` with it (none when `where` is invalid). Returns the suggestion, or
/// an empty string.
std::string suggest(Diagnostic& d, SourceRange where, std::string_view word, const std::vector<std::string>& candidates,
                    const SuggestStyle& style = {});

}  // namespace gyrus
