// Parser and AST tests: literals, precedence, locations, and syntax errors.
#include <doctest/doctest.h>

#include "TestUtil.h"
#include "gyrus/Parse.h"

using namespace gyrus;
using gyrus::test::compile;

namespace {
const ast::Expr* bindValue(const Compilation& c, size_t i) {
  return c.main->decls.at(i)->as<ast::DeclBind>()->value;
}
}  // namespace

TEST_CASE("literals keep their units and shapes") {
  auto c = compile("let a = 1mm\nlet b = 60%\nlet c = 4vox\nlet d = 160x192x160\nlet e = 1e-4\nlet f = 16\n",
                   {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* a = bindValue(*c, 0)->as<ast::ExprQuantity>();
  REQUIRE(a != nullptr);
  CHECK(a->unit == "mm");
  CHECK(a->value == 1.0);
  CHECK(bindValue(*c, 1)->as<ast::ExprQuantity>()->unit == "%");
  CHECK(bindValue(*c, 2)->as<ast::ExprQuantity>()->unit == "vox");
  const auto* d = bindValue(*c, 3)->as<ast::ExprShape>();
  REQUIRE(d != nullptr);
  CHECK(d->dims == std::vector<int64_t>{160, 192, 160});
  const auto* e = bindValue(*c, 4)->as<ast::ExprNumber>();
  REQUIRE(e != nullptr);
  CHECK(e->value == doctest::Approx(1e-4));
  CHECK_FALSE(e->isInteger);
  CHECK(bindValue(*c, 5)->as<ast::ExprNumber>()->isInteger);
}

TEST_CASE("operator precedence: |> binds looser than >>, which binds looser than arithmetic") {
  auto c = compile("let x = d |> a >> b\nlet y = 1 + 2 * 3\nlet z = 96^3\nlet r = 0.7 .. 1.5\n", {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* x = bindValue(*c, 0)->as<ast::ExprBinary>();
  REQUIRE(x != nullptr);
  CHECK((x->op == ast::BinaryOp::Apply));
  CHECK((x->rhs->as<ast::ExprBinary>()->op == ast::BinaryOp::Compose));
  CHECK(ast::printExpr(*bindValue(*c, 1)) == "1 + 2 * 3");
  CHECK((bindValue(*c, 1)->as<ast::ExprBinary>()->op == ast::BinaryOp::Add));
  CHECK((bindValue(*c, 2)->as<ast::ExprBinary>()->op == ast::BinaryOp::Pow));
  CHECK((bindValue(*c, 3)->as<ast::ExprBinary>()->op == ast::BinaryOp::Range));
}

TEST_CASE("keywords can name block fields and arguments") {
  auto c = compile("pretrain p {\n  encoder = unet()\n  objective = mae()\n}\n", {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* p = c->main->decls.at(0)->as<ast::DeclPretrain>();
  REQUIRE(p != nullptr);
  REQUIRE(p->fields.size() == 2);
  CHECK(p->fields[0].name == "encoder");
  CHECK(p->fields[1].name == "objective");
}

TEST_CASE("evaluate declarations get a default name and keep their arguments") {
  auto c = compile("evaluate base on clinic.lesion (shots = 16, repeats = 3)\nevaluate probe2 = base on clinic.age\n",
                   {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* e = c->main->decls.at(0)->as<ast::DeclEvaluate>();
  REQUIRE(e != nullptr);
  CHECK(e->name == "base_lesion");
  CHECK_FALSE(e->explicitName);
  CHECK(e->task == std::vector<std::string>{"clinic", "lesion"});
  CHECK(e->args.size() == 2);
  const auto* e2 = c->main->decls.at(1)->as<ast::DeclEvaluate>();
  CHECK(e2->name == "probe2");
  CHECK(e2->explicitName);
}

TEST_CASE("source ranges point at the text they came from") {
  auto c = compile("dataset corpus = synthetic(subjects = 8)\n", {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* b = c->main->decls.at(0)->as<ast::DeclBind>();
  CHECK(std::string(c->sources.text(b->nameRange)) == "corpus");
  CHECK(std::string(c->sources.text(b->value->range)) == "synthetic(subjects = 8)");
  const auto* call = b->value->as<ast::ExprCall>();
  CHECK(std::string(c->sources.text(call->args.at(0).nameRange)) == "subjects");
}

TEST_CASE("comments are ignored, including non-ASCII ones, and ranges stay byte-exact") {
  auto c = compile("// Gehirn – Ödem\n/* ü */ dataset corpus = synthetic(subjects = 8)\n", {}, StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* b = c->main->decls.at(0)->as<ast::DeclBind>();
  CHECK(std::string(c->sources.text(b->nameRange)) == "corpus");
}

TEST_CASE("a syntax error is reported once per line with its position") {
  auto c = compile("dataset corpus = synthetic(subjects = 64 size = 40^3)\n", {}, StopAfter::Parse);
  CHECK(c->main == nullptr);
  REQUIRE(c->diags.errorCount() == 1);
  const Diagnostic& d = c->diags.all().front();
  CHECK((d.kind == DiagKind::Syntax));
  CHECK(test::where(*c, d) == "1:42");
  CHECK(d.message.find("unexpected 'size'") != std::string::npos);
}

TEST_CASE("a stray character is a syntax error, not a crash") {
  auto c = compile("dataset corpus = synthetic(subjects = 8) $\n", {}, StopAfter::Parse);
  CHECK(c->main == nullptr);
  REQUIRE(c->diags.errorCount() == 1);
  CHECK(c->diags.all().front().message == "unexpected character '$'");
}

TEST_CASE("errors on separate lines are all reported") {
  auto c = compile("dataset a = synthetic(subjects 3)\ndataset b = = 3\n", {}, StopAfter::Parse);
  CHECK(c->diags.errorCount() >= 2);
  // Each declaration left open is reported where the next one starts, with a note at its bracket.
  auto open = compile("dataset a = synthetic(\npretrain p {\n  data = a\nlet b = [1\n", {}, StopAfter::Parse);
  std::vector<std::string> at;
  for (const Diagnostic& d : open->diags.sorted()) {
    at.push_back(test::where(*open, d));
    REQUIRE(d.notes.size() == 1);
  }
  CHECK(at == std::vector<std::string>{"2:1", "4:1", "5:1"});
}

TEST_CASE("the token dump is deterministic and positioned") {
  SourceManager sm;
  FileId id = sm.add("t.gy", "let x = 96^3");
  std::string tokens = dumpTokens(sm, id);
  CHECK(tokens == "1:1 KEYWORD 'let'\n1:5 ID 'x'\n1:7 KEYWORD '='\n1:9 NUMBER '96'\n1:11 KEYWORD '^'\n1:12 NUMBER '3'\n1:13 EOF\n");
}

TEST_CASE("invalid UTF-8 is a located syntax error, not an exception") {
  std::string text = "// ok\nlet a = 1 // \xff\xfe\n";
  auto c = compile(text, {}, StopAfter::Parse);
  CHECK(c->main == nullptr);
  REQUIRE(c->diags.errorCount() == 1);
  const Diagnostic& d = c->diags.all().front();
  CHECK(test::where(*c, d) == "2:14");
  CHECK(d.message.find("invalid UTF-8") != std::string::npos);
  // Overlong encodings and lone surrogates are invalid too; valid multi-byte text is fine.
  CHECK(compile("let a = 1 // \xc0\xaf\n", {}, StopAfter::Parse)->main == nullptr);
  CHECK(compile("let a = 1 // \xed\xa0\x80\n", {}, StopAfter::Parse)->main == nullptr);
  CHECK(compile("let a = 1 // \xe2\x9c\x93 \xf0\x9f\xa7\xa0\n", {}, StopAfter::Parse)->main != nullptr);
}

TEST_CASE("expressions nested deeper than 256 levels are a syntax error, not a stack overflow") {
  auto nested = [](int depth, const std::string& open, const std::string& close) {
    std::string text = "let r = ";
    for (int i = 0; i < depth; ++i) text += open;
    text += "1";
    for (int i = 0; i < depth; ++i) text += close;
    return text + "\n";
  };
  for (const auto& [open, close] : std::vector<std::pair<std::string, std::string>>{{"{a = ", "}"}, {"[", "]"}, {"(", ")"}}) {
    CAPTURE(open);
    CHECK(compile(nested(200, open, close))->diags.errorCount() == 0);
    auto deep = compile(nested(5000, open, close));
    REQUIRE(deep->diags.errorCount() == 1);
    CHECK(deep->diags.all().front().message.find("nest more than 256 levels") != std::string::npos);
  }
  std::string sum = "let r = 1";
  for (int i = 0; i < 20000; ++i) sum += " + 1";
  CHECK(compile(sum + "\n")->diags.errorCount() == 1);
}

TEST_CASE("regression: an unterminated string or block comment is reported as such, at its opening") {
  struct Case {
    std::string source, message, at;
  };
  const std::vector<Case> cases = {
      {"dataset c = synthetic(subjects = 16, seed = \"x)\n",
       "unterminated string: a string ends with '\"' on the line where it starts", "\""},
      {"dataset c = synthetic(subjects = 16, seed = \"abc\n", "unterminated string: a string ends with '\"' on the line where it starts", "\""},
      {"dataset c = synthetic(subjects = 16) /* never closed\nlet x = 1\n", "unterminated comment: this '/*' has no closing '*/'", "/*"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.source);
    auto c = compile(k.source, {}, StopAfter::Parse);
    CHECK(c->main == nullptr);
    REQUIRE(c->diags.errorCount() == 1);
    const Diagnostic& d = c->diags.all().front();
    CHECK(d.message == k.message);
    CHECK(c->sources.text(d.range) == k.at);
  }
  // Closed ones, with escapes and stars, are fine.
  auto ok = compile("let s = \"a\\\"b\" /* one */ /* two **/\n", {}, StopAfter::Parse);
  CHECK(ok->main != nullptr);
  CHECK(ok->diags.errorCount() == 0);
}

TEST_CASE("regression: a UTF-8 byte-order mark is not a column of line 1") {
  auto c = compile("\xEF\xBB\xBF" "dataset c = synthetic(subjects = 16, seeed = 1)\n");
  const Diagnostic* d = test::find(*c, "unknown-argument");
  REQUIRE(d != nullptr);
  CHECK(c->sources.text(d->range) == "seeed");
  CHECK(c->sources.lineCol(d->range.file, d->range.begin).col == 38);  // as without the mark
  CHECK(c->sources.lineText(d->range.file, 1).rfind("dataset", 0) == 0);
}
