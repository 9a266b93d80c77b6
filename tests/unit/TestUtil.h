// Shared fixtures for the front-end unit tests.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <vector>

#include "gyrus/Format.h"
#include "gyrus/Frontend.h"
#include "gyrus/Parse.h"

namespace gyrus::test {

/// The whole text of a file ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Compiles `source` as the file `test.gy`.
inline std::unique_ptr<Compilation> compile(const std::string& source, const std::vector<Override>& sets = {},
                                            StopAfter stop = StopAfter::Check) {
  return compileFile("test.gy", sets, stop, &source);
}

/// The kind names of every diagnostic, in sorted order.
inline std::vector<std::string> kinds(const Compilation& c, Severity atLeast = Severity::Error) {
  std::vector<std::string> out;
  for (const Diagnostic& d : c.diags.sorted())
    if (d.severity >= atLeast) out.emplace_back(info(d.kind).name);
  return out;
}

/// The first diagnostic of `kind`, or nullptr.
inline const Diagnostic* find(const Compilation& c, std::string_view kind) {
  for (const Diagnostic& d : c.diags.all())
    if (info(d.kind).name == kind) return &d;
  return nullptr;
}

/// `source` in the canonical layout of `gyrus fmt`; empty when it does not parse.
inline std::string format(const std::string& source) {
  SourceManager sm;
  ast::Arena arena;
  DiagnosticEngine diags;
  FileId id = sm.add("t.gy", source);
  ast::File* file = parseFile(sm, id, arena, diags);
  return file == nullptr ? std::string() : formatFile(sm, id, *file);
}

/// "line:col" of a diagnostic's primary range.
inline std::string where(const Compilation& c, const Diagnostic& d) {
  LineCol lc = c.sources.lineCol(d.range.file, d.range.begin);
  return std::to_string(lc.line) + ":" + std::to_string(lc.col);
}

/// A small valid experiment used as a base by many tests.
inline const char* kValid = R"(dataset corpus = synthetic(subjects = 32, size = 40^3, seed = 1)
dataset clinic = synthetic(subjects = 40, size = 40^3, seed = 2)
pipeline prep = crop(32^3) >> zscore()

pretrain base {
  data      = corpus |> prep
  encoder   = unet(width = 4, stages = 3)
  objective = mae(mask = 60%, cube = 4)
  optimizer = adamw(lr = 1e-3, warmup = 1)
  epochs    = 2
  batch     = 4
}

evaluate base on clinic.lesion (shots = 8, repeats = 2)
)";

}  // namespace gyrus::test
