// `--set PATH=VALUE` overrides: applied to the AST and checked like the file itself.
#include <doctest/doctest.h>

#include <tuple>

#include "TestUtil.h"

using namespace gyrus;
using gyrus::test::compile;
using gyrus::test::kinds;
using gyrus::test::kValid;

namespace {
const ir::Experiment& experiment(const Compilation& c) {
  REQUIRE(c.check.experiment.has_value());
  return *c.check.experiment;
}
}  // namespace

TEST_CASE("parseOverride splits PATH=VALUE") {
  Override o;
  CHECK(parseOverride("base.epochs=2", o));
  CHECK(o.path == "base.epochs");
  CHECK(o.value == "2");
  CHECK(parseOverride("prep.crop.size=64^3", o));
  CHECK(o.value == "64^3");
  CHECK_FALSE(parseOverride("base.epochs", o));
  CHECK_FALSE(parseOverride("=3", o));
}

TEST_CASE("overrides reach block fields, call arguments and positional arguments") {
  auto c = compile(kValid, {{"base.epochs", "5"},
                            {"corpus.subjects", "16"},
                            {"base.objective.mask", "75%"},
                            {"prep.size", "24^3"},
                            {"base_lesion.shots", "4"},
                            {"base.seed", "7"}});
  CHECK(kinds(*c).empty());
  const ir::Experiment& ex = experiment(*c);
  CHECK(ex.stages[0].pretrain.epochs == 5);
  CHECK(ex.stages[0].pretrain.data.synthetic.subjects == 16);
  CHECK(ex.stages[0].pretrain.objective.terms[0].mae.maskRatio == doctest::Approx(0.75));
  CHECK(ex.stages[0].pretrain.pipeline.ops[0].shape("size") == ir::Shape3{24, 24, 24});
  CHECK(ex.stages[0].pretrain.seed == 7);
  CHECK(ex.stages[1].evaluate.shots == 4);
}

TEST_CASE("a function name selects the call inside a pipeline") {
  auto c = compile(kValid, {{"prep.crop.size", "16^3"}, {"prep.zscore.nonzero", "false"}});
  CHECK(kinds(*c).empty());
  const ir::Experiment& ex = experiment(*c);
  CHECK(ex.stages[0].pretrain.pipeline.ops[0].shape("size") == ir::Shape3{16, 16, 16});
  CHECK_FALSE(ex.stages[0].pretrain.pipeline.ops[1].flag("nonzero"));
}

TEST_CASE("override values are checked like the file") {
  auto c = compile(kValid, {{"base.epochs", "2.5"}});
  REQUIRE(kinds(*c) == std::vector<std::string>{"type-mismatch"});
  const Diagnostic* d = test::find(*c, "type-mismatch");
  CHECK(c->sources.file(d->range.file).path == "<--set base.epochs>");
  auto shape = compile(kValid, {{"prep.size", "30^3"}});
  CHECK(kinds(*shape) == std::vector<std::string>{"shape-divisibility"});
  auto syntax = compile(kValid, {{"base.epochs", "2 +"}});
  CHECK(kinds(*syntax) == std::vector<std::string>{"syntax"});
}

TEST_CASE("overrides that name nothing are [bad-override] with a suggestion") {
  auto c = compile(kValid, {{"bsae.epochs", "2"}});
  REQUIRE(kinds(*c) == std::vector<std::string>{"bad-override"});
  CHECK(test::find(*c, "bad-override")->message.find("did you mean 'base'?") != std::string::npos);
  CHECK(kinds(*compile(kValid, {{"base", "2"}})) == std::vector<std::string>{"bad-override"});
  CHECK(kinds(*compile(kValid, {{"base..epochs", "2"}})) == std::vector<std::string>{"bad-override"});
  // An unknown field is added and then reported by the checker, at the override.
  CHECK(kinds(*compile(kValid, {{"base.epocs", "2"}})) == std::vector<std::string>{"unknown-field"});
}

TEST_CASE("regression: a misspelt --set path is fixed in the path, not by replacing the value") {
  // `--set base.epoch=2` once offered "replace '2' with 'epochs'".
  for (const auto& [path, kind, wrong, right] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"base.epoch", "unknown-field", "epoch", "epochs"},
           {"bsae.epochs", "bad-override", "bsae", "base"},
           {"base.objective.maks", "unknown-argument", "maks", "mask"}}) {
    CAPTURE(path);
    auto c = compile(kValid, {{path, "2"}});
    const Diagnostic* d = test::find(*c, kind);
    REQUIRE(d != nullptr);
    REQUIRE(d->fixits.size() == 1);
    CHECK(c->sources.text(d->fixits[0].range) == wrong);
    CHECK(d->fixits[0].replacement == right);
    CHECK(c->sources.text(d->range) == wrong);
  }
}
