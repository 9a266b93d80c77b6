// The front end as one call: read, parse (prelude + file), apply `--set` overrides,
// check and lower. Used by the driver and by tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gyrus/Ast.h"
#include "gyrus/Check.h"
#include "gyrus/Data.h"
#include "gyrus/Diagnostics.h"
#include "gyrus/Plan.h"
#include "gyrus/Source.h"

namespace gyrus {

/// `PATH=VALUE` from the command line: PATH names a declaration and then a field,
/// argument or parameter inside it (`base.epochs`, `corpus.subjects`,
/// `base.objective.mask`, `prep.crop.size`); VALUE is a gyrus expression.
struct Override {
  std::string path;
  std::string value;
};

enum class StopAfter { Parse, Check };

/// Everything one compilation produced. Diagnostics refer into `sources`.
struct Compilation {
  SourceManager sources;
  ast::Arena arena;
  DiagnosticEngine diags;
  FileId mainFile = kNoFile;
  ast::File* main = nullptr;     ///< null when the file could not be read or parsed
  ast::File* prelude = nullptr;
  /// The checked experiment; with sweeps, every point's stages merged by hash.
  CheckResult check;
  /// The same stages with the sweep points that use each (one point without sweeps).
  Plan plan;
  /// Lists folder data sets for the checker: the caller's, or `ownData`.
  DataResolver* data = nullptr;
  /// Without a resolver from the caller: the files, cached for this compilation (every
  /// sweep point lists a folder once).
  std::unique_ptr<CachingDataResolver> ownData;
  /// The site configuration's named data roots, for `root(...)`.
  DataRoots roots;
  bool ok() const { return !diags.hasErrors(); }
};

/// Compiles the file at `path` (or `text` when given, shown as `path`).
/// Folder data sets are listed by `data` (nullptr: the files, cached for this
/// compilation). `roots`: the site configuration's named data roots (none when null).
std::unique_ptr<Compilation> compileFile(const std::string& path, const std::vector<Override>& overrides,
                                         StopAfter stop, const std::string* text = nullptr,
                                         DataResolver* data = nullptr, const DataRoots* roots = nullptr);

/// Applies overrides to a parsed file; reports [bad-override] for paths that name
/// nothing. Override values are parsed as their own virtual files.
void applyOverrides(ast::File& file, const std::vector<Override>& overrides, SourceManager& sm, ast::Arena& arena,
                    DiagnosticEngine& diags);

/// Splits `PATH=VALUE`; false when there is no `=`.
bool parseOverride(const std::string& text, Override& out);

/// The standard prelude's source text (stdlib/prelude.gy, embedded at build time).
const std::string& preludeSource();

}  // namespace gyrus
