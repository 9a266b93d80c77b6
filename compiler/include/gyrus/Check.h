// Name resolution, type/unit/shape checking and lowering to the experiment IR.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gyrus/Ast.h"
#include "gyrus/Diagnostics.h"
#include "gyrus/Ir.h"

namespace gyrus {

class DataResolver;
struct DataRoots;

struct CheckResult {
  /// The lowered experiment (stages hashed); empty when there were errors.
  std::optional<ir::Experiment> experiment;
  /// Every declared pipeline (the standard library's included), by name, when there
  /// were no errors: what `gyrus preview` and `gyrus bench augment` apply.
  std::map<std::string, ir::Pipeline> pipelines;
  /// The side table of the last file (`gyrus emit --stage=typed`): one line per node
  /// with its kind, `line:col`, type, unit, shape and canonical value; printed on
  /// demand (valid while the compilation's sources and AST live).
  std::function<std::string()> typed = [] { return std::string(); };
};

/// Checks `files` as one experiment: the standard prelude first, the user's file last.
/// Declarations of all files share one namespace; only the last file's are reported as
/// unused or printed. Reports every independent error once. A `library` (a standard
/// library file checked on its own) declares presets for others: none is unused.
/// Folder data sets are listed by `data` (nullptr: defaultDataResolver(), the files);
/// `root(...)` resolves against `roots` (none when null).
CheckResult checkExperiment(const std::vector<const ast::File*>& files, const SourceManager& sm,
                            DiagnosticEngine& diags, bool library = false, DataResolver* data = nullptr,
                            const DataRoots* roots = nullptr);

/// Parameter names of a built-in function, in positional order (empty if unknown).
std::vector<std::string> builtinParameters(const std::string& function);
/// Names of all built-in functions.
std::vector<std::string> builtinFunctions();

}  // namespace gyrus
