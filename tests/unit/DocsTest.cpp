// Every ```gyrus block in docs/ and every example in examples/ checks without errors.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "TestUtil.h"

using namespace gyrus;
using gyrus::test::slurp;

namespace {

// Checks `source` as if it were the file at `path` (relative data roots resolve there).
// Warnings fail it, except stem-reinit (fine-tuning a single-channel pretraining on a
// multi-channel FOMO25 task, as examples/fomo25_synthetic.gy does on purpose).
void checkClean(const std::string& where, const std::string& source, const std::string& path = "test.gy") {
  auto c = compileFile(path, {}, StopAfter::Check, &source);
  std::string rendered = renderHuman(c->sources, c->diags.sorted());
  INFO(where << ":\n" << rendered);
  CHECK(c->diags.errorCount() == 0);
  size_t warnings = 0;
  for (const Diagnostic& d : c->diags.all())
    if (d.severity == Severity::Warning && d.kind != DiagKind::StemReinit) ++warnings;
  CHECK(warnings == 0);
  CHECK(c->check.experiment.has_value());
}
}  // namespace

TEST_CASE("docs_examples: gyrus blocks in docs/*.md check cleanly") {
  namespace fs = std::filesystem;
  size_t blocks = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(GYRUS_SOURCE_DIR) / "docs")) {
    if (entry.path().extension() != ".md") continue;
    std::string text = slurp(entry.path());
    size_t pos = 0;
    while ((pos = text.find("```gyrus\n", pos)) != std::string::npos) {
      size_t start = pos + 9;
      size_t end = text.find("```", start);
      REQUIRE(end != std::string::npos);
      checkClean(entry.path().filename().string() + " block " + std::to_string(++blocks), text.substr(start, end - start));
      pos = end + 3;
    }
  }
  CHECK(blocks >= 3);
}

TEST_CASE("examples/*.gy check cleanly") {
  namespace fs = std::filesystem;
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(GYRUS_SOURCE_DIR) / "examples")) {
    if (entry.path().extension() != ".gy") continue;
    ++files;
    std::string text = slurp(entry.path());
    if (text.find("gyrus synth --out") != std::string::npos) {
      // An example over `gyrus synth` folders (tests/e2e and tests/cli/ExampleTree.cmake
      // run it on generated data): only the data sets may fail (the folders may be
      // missing, or made by another version of the example's commands).
      auto c = compileFile(entry.path().string(), {}, StopAfter::Check, &text);
      for (const Diagnostic& d : c->diags.all()) {
        INFO(entry.path().string() << ": " << d.message);
        CHECK((d.kind == DiagKind::Data || d.severity != Severity::Error));
      }
      continue;
    }
    checkClean(entry.path().string(), text, entry.path().string());
  }
  CHECK(files >= 1);
}
