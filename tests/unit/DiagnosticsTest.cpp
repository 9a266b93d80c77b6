// The diagnostics engine: rendering, JSON, sorting, suggestions, and the coverage
// rule that every registered kind has a golden test.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "TestUtil.h"
#include "gyrus/Verify.h"

using namespace gyrus;

TEST_CASE("human rendering: location, severity, message, kind, line and caret") {
  SourceManager sm;
  FileId f = sm.add("x.gy", "line one\npipeline p = crop(100^3)\n");
  DiagnosticEngine de;
  de.report(DiagKind::ShapeDivisibility, {f, 27, 32}, "bad crop").note("nearest valid sizes: 96^3 or 112^3");
  std::string out = renderHuman(sm, de.sorted());
  CHECK(out ==
        "x.gy:2:19: error: bad crop [shape-divisibility]\n"
        "    2 | pipeline p = crop(100^3)\n"
        "      |                   ^~~~~\n"
        "note: nearest valid sizes: 96^3 or 112^3\n");
}

TEST_CASE("colour only when asked") {
  SourceManager sm;
  FileId f = sm.add("x.gy", "abc\n");
  DiagnosticEngine de;
  de.report(DiagKind::UnknownName, {f, 0, 3}, "unknown name 'abc'");
  CHECK(renderHuman(sm, de.sorted()).find('\x1b') == std::string::npos);
  RenderOptions ro;
  ro.color = true;
  CHECK(renderHuman(sm, de.sorted(), ro).find('\x1b') != std::string::npos);
}

TEST_CASE("a very long source line is shown as a window around the range") {
  SourceManager sm;
  std::string text = "let x = " + std::string(20000, '(') + "1" + std::string(20000, ')') + "\n";
  FileId f = sm.add("x.gy", text);
  DiagnosticEngine de;
  de.report(DiagKind::Syntax, {f, 264, 265}, "too deep");
  std::string out = renderHuman(sm, de.sorted());
  CHECK(out.size() < 600);
  // The caret still sits under the reported bracket: column 265 is shown at 60 + 3 ("...").
  CHECK(out.find("    1 | ...((((") != std::string::npos);
  CHECK(out.find("\n      | " + std::string(63, ' ') + "^\n") != std::string::npos);
}

TEST_CASE("a NUL or another control character in a file is shown escaped, not cutting the diagnostic short") {
  std::string source = std::string("let x = 1\nlet y = ") + '\0' + " 2\n";
  auto c = gyrus::test::compile(source);
  std::string out = renderHuman(c->sources, c->diags.sorted());
  CHECK(out.find('\0') == std::string::npos);
  CHECK(out.find("unexpected character '\\x00' [syntax]") != std::string::npos);
  CHECK(out.find("    2 | let y = ? 2\n") != std::string::npos);
}

TEST_CASE("JSON rendering has the editor fields") {
  SourceManager sm;
  FileId f = sm.add("x.gy", "let a = corpsu\n");
  DiagnosticEngine de;
  de.report(DiagKind::UnknownName, {f, 8, 14}, "unknown name 'corpsu'").fixit({f, 8, 14}, "corpus");
  std::string out = renderJson(sm, de.sorted());
  nlohmann::json j = nlohmann::json::parse(out);
  CHECK(j["file"] == "x.gy");
  CHECK(j["line"] == 1);
  CHECK(j["column"] == 9);
  CHECK(j["end"]["column"] == 15);
  CHECK(j["severity"] == "error");
  CHECK(j["kind"] == "unknown-name");
  CHECK(j["fixits"][0]["replacement"] == "corpus");
  CHECK(j["notes"].is_array());
}

TEST_CASE("diagnostics are sorted by position and deduplicated") {
  SourceManager sm;
  FileId f = sm.add("x.gy", "0123456789\n");
  DiagnosticEngine de;
  de.report(DiagKind::UnknownName, {f, 5, 6}, "b");
  de.report(DiagKind::UnknownName, {f, 1, 2}, "a");
  de.report(DiagKind::UnknownName, {f, 5, 6}, "b");
  std::vector<Diagnostic> s = de.sorted();
  REQUIRE(s.size() == 2);
  CHECK(s[0].message == "a");
  CHECK(s[1].message == "b");
  CHECK(de.errorCount() == 3);
}

TEST_CASE("suggestions are plausible typos only") {
  CHECK(editDistance("kitten", "sitting") == 3);
  CHECK(closestMatch("corpsu", {"corpus", "clinic"}) == "corpus");
  CHECK(closestMatch("epocs", {"epochs", "batch"}) == "epochs");
  CHECK(closestMatch("xyz", {"corpus", "clinic"}).empty());
  // Case is ignored and a swap of neighbouring letters is one edit.
  CHECK(closestMatch("MAE", {"mae", "dice"}) == "mae");
  CHECK(editDistance("unte", "unet") == 1);
  CHECK(closestMatch("unte", {"unet", "site"}) == "unet");
}

TEST_CASE("suggest() words the suggestion and its fix-it in one place") {
  Diagnostic d;
  d.message = "unknown layout \"fomo52\"";
  SourceRange at{0, 3, 11};
  CHECK(suggest(d, at, "fomo52", {"fomo25", "fomo60k"}, SuggestStyle{true, '"', "\"", "\""}) == "fomo25");
  CHECK(d.message == "unknown layout \"fomo52\"; did you mean \"fomo25\"?");
  REQUIRE(d.fixits.size() == 1);
  CHECK(d.fixits[0].replacement == "\"fomo25\"");
  Diagnostic none;
  CHECK(suggest(none, at, "xyz", {"corpus"}).empty());
  CHECK(none.fixits.empty());
}

TEST_CASE("every registered diagnostic kind has a golden test") {
  namespace fs = std::filesystem;
  std::set<std::string> covered;
  fs::path dir = fs::path(GYRUS_SOURCE_DIR) / "tests" / "golden";
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".expected") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    for (const DiagKindInfo& k : allDiagKinds())
      if (text.find("[" + std::string(k.name) + "]") != std::string::npos) covered.insert(std::string(k.name));
  }
  for (const DiagKindInfo& k : allDiagKinds()) {
    INFO("diagnostic kind without a golden test in tests/golden: " << k.name);
    CHECK(covered.count(std::string(k.name)) == 1);
  }
}

TEST_CASE("inline expectations: matched, missing and unexpected") {
  auto check = [](const std::string& src) {
    auto c = test::compile(src);
    return verifyDiagnostics(c->sources, c->mainFile, c->diags.sorted());
  };
  // `pretrain p { data = NAME }` with an unknown NAME reports exactly one diagnostic.
  CHECK(check("pretrain p {\n  // expect-error@+1 [unknown-name]\n  data = b\n}\n").empty());
  CHECK(check("pretrain p {\n  data = b  // expect-error [unknown-name]\n}\n").empty());
  CHECK(check("pretrain p {\n  data = b\n  // expect-error@-1 [unknown-name]\n}\n").empty());
  CHECK(check("// expect-error@* [unknown-name]\n\n\npretrain p {\n  data = b\n}\n").empty());
  // The wrong kind: one unexpected diagnostic and one unmet expectation.
  std::vector<std::string> wrong = check("pretrain p {\n  // expect-error@+1 [cycle]\n  data = b\n}\n");
  REQUIRE(wrong.size() == 2);
  CHECK(wrong[0].find("unexpected error [unknown-name]") != std::string::npos);
  CHECK(wrong[1].find("expected error [cycle] on line 3 was not reported") != std::string::npos);
  // The wrong line.
  CHECK(check("pretrain p {\n  // expect-error@+2 [unknown-name]\n  data = b\n\n}\n").size() == 2);
  // An expectation matches one diagnostic only.
  CHECK(check("pretrain p {\n  // expect-error@+1 [unknown-name]\n  data = b |> c\n}\n").size() == 1);
  CHECK(check("pretrain p {\n  // expect-error@+1 [unknown-name] [unknown-name]\n  data = b |> c\n}\n").empty());
}
