// Checker tests: names, types, units, shapes, protocols, and lowering to the IR.
#include <doctest/doctest.h>

#include <sstream>

#include "TestUtil.h"

using namespace gyrus;
using gyrus::test::compile;
using gyrus::test::kinds;
using gyrus::test::kValid;

namespace {
// kValid with one line replaced.
std::string withLine(const std::string& from, const std::string& to) {
  std::string s = kValid;
  size_t pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}
}  // namespace

TEST_CASE("the valid base experiment checks and lowers to two stages") {
  auto c = compile(kValid);
  CHECK(c->diags.errorCount() == 0);
  CHECK(c->diags.warningCount() == 0);
  REQUIRE(c->check.experiment.has_value());
  const ir::Experiment& ex = *c->check.experiment;
  REQUIRE(ex.stages.size() == 2);
  CHECK((ex.stages[0].kind == ir::StageKind::Pretrain));
  CHECK((ex.stages[1].kind == ir::StageKind::Evaluate));
  CHECK(ex.stages[1].deps == std::vector<size_t>{0});
  const ir::PretrainStage& p = ex.stages[0].pretrain;
  CHECK(p.data.synthetic.subjects == 32);
  CHECK(p.pipeline.ops.size() == 2);
  CHECK(p.pipeline.ops[0].shape("size") == ir::Shape3{32, 32, 32});
  CHECK(p.objective.terms.at(0).mae.maskRatio == doctest::Approx(0.6));
  CHECK(p.optimizer.lr == doctest::Approx(1e-3));
  CHECK(p.epochs == 2);
  const ir::EvaluateStage& e = ex.stages[1].evaluate;
  CHECK(e.name == "base_lesion");
  CHECK(e.shots == 8);
  CHECK((e.labelKind == ir::LabelKind::Binary));
  CHECK(e.pipeline.ops.size() == 2);
  CHECK(ex.stages[0].hash.size() == 64);
}

TEST_CASE("stage hashes are stable, content-addressed and ignore names") {
  auto a = compile(kValid);
  auto b = compile(kValid);
  REQUIRE(a->check.experiment);
  REQUIRE(b->check.experiment);
  CHECK(a->check.experiment->stages[0].hash == b->check.experiment->stages[0].hash);
  // Renaming the pretrain stage changes no hash.
  std::string renamed = kValid;
  for (size_t pos; (pos = renamed.find("base")) != std::string::npos;) renamed.replace(pos, 4, "other");
  auto r = compile(renamed);
  REQUIRE(r->check.experiment);
  CHECK(r->check.experiment->stages[0].hash == a->check.experiment->stages[0].hash);
  CHECK(r->check.experiment->stages[1].hash == a->check.experiment->stages[1].hash);
  // Changing the evaluation leaves the pretraining's hash alone; changing the
  // pretraining changes both (the evaluation depends on it).
  auto shots = compile(withLine("shots = 8", "shots = 10"));
  REQUIRE(shots->check.experiment);
  CHECK(shots->check.experiment->stages[0].hash == a->check.experiment->stages[0].hash);
  CHECK(shots->check.experiment->stages[1].hash != a->check.experiment->stages[1].hash);
  auto epochs = compile(withLine("epochs    = 2", "epochs    = 3"));
  REQUIRE(epochs->check.experiment);
  CHECK(epochs->check.experiment->stages[0].hash != a->check.experiment->stages[0].hash);
  CHECK(epochs->check.experiment->stages[1].hash != a->check.experiment->stages[1].hash);
}

TEST_CASE("declaration order does not matter") {
  auto c = compile(R"(pretrain base {
  data = corpus |> prep
  encoder = unet(width = 4, stages = 3)
  objective = mae()
}
pipeline prep = crop(32^3)
dataset corpus = synthetic(subjects = 16)
)");
  CHECK(kinds(*c).empty());
}

TEST_CASE("unknown names suggest the closest declared one") {
  auto c = compile(withLine("data      = corpus |> prep", "data      = corpsu |> prep"));
  REQUIRE(kinds(*c) == std::vector<std::string>{"unknown-name"});
  const Diagnostic* d = test::find(*c, "unknown-name");
  CHECK(d->message == "unknown name 'corpsu'; did you mean 'corpus'?");
  CHECK(test::where(*c, *d) == "6:15");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "corpus");
}

TEST_CASE("one mistake is reported once, and independent mistakes are all reported") {
  auto c = compile(withLine("pipeline prep = crop(32^3) >> zscore()", "pipeline prep = crop(1mm) >> zscore()"));
  // The bad crop poisons `prep`, and through it the pretraining and the evaluation:
  // still a single diagnostic.
  CHECK(kinds(*c) == std::vector<std::string>{"type-mismatch"});
  auto two = compile(withLine("objective = mae(mask = 60%, cube = 4)", "objective = mae(mask = 1.5, cube = 4)\n  epocs = 3"));
  CHECK(kinds(*two) == std::vector<std::string>{"value-range", "unknown-field"});
}

TEST_CASE("units are checked: a length is not a shape, a fraction is not an integer") {
  CHECK(kinds(*compile("pipeline p = crop(1mm)\nlet x = p")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("pipeline p = crop(32)\nlet x = p")) == std::vector<std::string>{"type-mismatch"});
  auto c = compile("pipeline p = crop(32)\nlet x = p");
  REQUIRE(test::find(*c, "type-mismatch")->fixits.size() == 1);
  CHECK(test::find(*c, "type-mismatch")->fixits[0].replacement == "32^3");
  CHECK(kinds(*compile("encoder e = unet(width = 50%)\nlet x = e")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("objective o = mae(mask = 60pc)\nlet x = o")) == std::vector<std::string>{"unknown-unit"});
  CHECK(kinds(*compile("objective o = mae(mask = 0.6)\nlet x = o")).empty());
  CHECK(kinds(*compile("objective o = mae(mask = 1.5)\nlet x = o")) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile("let s = 32x32\n")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("let s = 32^2\n")) == std::vector<std::string>{"value-range"});
}

TEST_CASE("arithmetic and objective algebra") {
  auto c = compile("let n = 2 * 16\ndataset d = synthetic(subjects = n)\nlet u = d");
  CHECK(kinds(*c).empty());
  CHECK(kinds(*compile("objective o = 0.5 * mae()\nlet x = o")).empty());
  CHECK(kinds(*compile("objective o = -1 * mae()\nlet x = o")) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile("let x = crop(32^3) + 1")) == std::vector<std::string>{"type-mismatch"});
}

TEST_CASE("a function used without a call gets a fix-it") {
  auto c = compile("pipeline p = crop(32^3) >> zscore\nlet x = p");
  REQUIRE(kinds(*c) == std::vector<std::string>{"type-mismatch"});
  const Diagnostic* d = test::find(*c, "type-mismatch");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "zscore()");
}

TEST_CASE("crops must be divisible by the encoder's total stride") {
  auto c = compile(withLine("pipeline prep = crop(32^3) >> zscore()", "pipeline prep = crop(30^3) >> zscore()"));
  REQUIRE(kinds(*c) == std::vector<std::string>{"shape-divisibility"});
  const Diagnostic* d = test::find(*c, "shape-divisibility");
  CHECK(d->message == "crop 30^3 is not divisible by the encoder's total stride 4 (2 downsamplings)");
  CHECK(test::where(*c, *d) == "3:22");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "32^3");
  // The note points at the encoder.
  REQUIRE(!d->notes.empty());
  CHECK(std::string(c->sources.text(d->notes[0].range)) == "unet(width = 4, stages = 3)");
}

TEST_CASE("without a crop, the data set's size must fit the encoder") {
  auto c = compile(R"(dataset corpus = synthetic(subjects = 16, size = 36^3)
pretrain base {
  data = corpus
  encoder = unet(width = 4, stages = 4)
  objective = mae(cube = 4)
}
)");
  REQUIRE(kinds(*c) == std::vector<std::string>{"shape-divisibility"});
  CHECK(std::string(c->sources.text(test::find(*c, "shape-divisibility")->range)) == "36^3");
}

TEST_CASE("the MAE mask cube must tile the input") {
  auto c = compile(withLine("objective = mae(mask = 60%, cube = 4)", "objective = mae(mask = 60%, cube = 5)"));
  REQUIRE(kinds(*c) == std::vector<std::string>{"shape-divisibility"});
  CHECK(test::find(*c, "shape-divisibility")->message == "MAE mask cube 5 does not tile the input 32^3");
}

TEST_CASE("pretrain blocks: unknown, duplicate and missing fields") {
  CHECK(kinds(*compile(withLine("epochs    = 2", "epocs = 2"))) == std::vector<std::string>{"unknown-field"});
  CHECK(kinds(*compile(withLine("epochs    = 2", "epochs = 2\n  epochs = 3"))) ==
        std::vector<std::string>{"duplicate-argument"});
  CHECK(kinds(*compile(withLine("objective = mae(mask = 60%, cube = 4)", ""))) ==
        std::vector<std::string>{"missing-field"});
  CHECK(kinds(*compile(withLine("batch     = 4", "batch = 64"))) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile(withLine("epochs    = 2", "epochs = 0"))) == std::vector<std::string>{"value-range"});
}

TEST_CASE("evaluations: model, task, label and few-shot sizes") {
  CHECK(kinds(*compile(withLine("evaluate base on", "evaluate bsae on"))) == std::vector<std::string>{"unknown-name"});
  CHECK(kinds(*compile(withLine("evaluate base on", "evaluate corpus on"))) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile(withLine("clinic.lesion", "clinic.lesoin"))) == std::vector<std::string>{"unknown-label"});
  CHECK(kinds(*compile(withLine("clinic.lesion", "clinic.age"))).empty());
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 21"))) == std::vector<std::string>{"few-shot-size"});
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 20"))).empty());
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 1"))) == std::vector<std::string>{"few-shot-size"});
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 8, shot = 3"))) == std::vector<std::string>{"unknown-argument"});
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 8, test = 150%"))) == std::vector<std::string>{"value-range"});
  // alpha is the ridge probe's: a binary label's logistic probe and fine-tuning have none.
  CHECK(kinds(*compile(withLine("shots = 8", "shots = 8, alpha = 10"))) == std::vector<std::string>{"unknown-argument"});
  std::string age = withLine("clinic.lesion", "clinic.age");
  CHECK(kinds(*compile(age, {{"base_age.alpha", "10"}})).empty());
  CHECK(kinds(*compile(age, {{"base_age.alpha", "0"}})) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile(age, {{"base_age.alpha", "1e-300"}})) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile(age, {{"base_age.alpha", "1e-6"}})).empty());
  CHECK(kinds(*compile(age, {{"base_age.alpha", "10"}, {"base_age.protocol", "finetune"}})) ==
        std::vector<std::string>{"unknown-argument"});
  auto single = compile(withLine("seed = 2)", "seed = 2, lesion_rate = 0%)"));
  CHECK(kinds(*single) == std::vector<std::string>{"value-range"});
}

TEST_CASE("duplicate names and cycles") {
  CHECK(kinds(*compile("let a = 1\nlet a = 2\n")) == std::vector<std::string>{"duplicate-name"});
  CHECK(kinds(*compile("let a = b\nlet b = a\n")) == std::vector<std::string>{"cycle"});
  // Shadowing a prelude preset is a duplicate too.
  CHECK(kinds(*compile("encoder unet_b = unet()\n")) == std::vector<std::string>{"duplicate-name"});
  // Two evaluations of the same model and label need explicit names.
  std::string twice = std::string(kValid) + "evaluate base on clinic.lesion (shots = 4)\n";
  CHECK(kinds(*compile(twice)) == std::vector<std::string>{"duplicate-name"});
  std::string named = std::string(kValid) + "evaluate few = base on clinic.lesion (shots = 4)\n";
  CHECK(kinds(*compile(named)).empty());
  // What only the rejected duplicate uses is not reported unused on top (regression).
  std::string other = std::string(kValid) + "dataset other = synthetic(subjects = 40, size = 32^3, seed = 5)\n" +
                      "evaluate base on other.lesion (shots = 4)\n";
  CHECK(kinds(*compile(other)) == std::vector<std::string>{"duplicate-name"});
}

TEST_CASE("prelude presets are usable") {
  auto c = compile(R"(dataset corpus = synthetic(subjects = 16, size = 64^3)
pretrain base {
  data = corpus |> normalize
  encoder = unet_b
  objective = amaes
}
)");
  CHECK(kinds(*c).empty());
  REQUIRE(c->check.experiment);
  CHECK(c->check.experiment->stages[0].pretrain.encoder.unet.width == 32);
  CHECK(c->check.experiment->stages[0].pretrain.encoder.unet.stages == 5);
}

TEST_CASE("unused declarations warn") {
  auto c = compile(std::string(kValid) + "dataset spare = synthetic()\n");
  CHECK(kinds(*c).empty());
  CHECK(kinds(*c, Severity::Warning) == std::vector<std::string>{"unused"});
}

TEST_CASE("the typed print is deterministic and shows defaults") {
  auto a = compile(kValid);
  auto b = compile(kValid);
  CHECK(a->check.typed() == b->check.typed());
  CHECK(a->check.typed().find("weight_decay = 3e-05") != std::string::npos);
  CHECK(a->check.typed().find("DeclPretrain 5:1 base : Pretrain shape 32^3 = base  // data = ") != std::string::npos);
  CHECK(a->check.typed().find("; input = 32^3; ") != std::string::npos);
  CHECK(a->check.typed().find("ExprQuantity 8:26 : Fraction [%] = 60%") != std::string::npos);
}

TEST_CASE("a declared memory budget warns when the estimate exceeds it") {
  const char* src = R"(dataset corpus = synthetic(subjects = 16, size = 96^3)
pretrain base {
  data = corpus
  encoder = unet_b
  objective = amaes
  batch = 8
  memory = 4GiB
}
)";
  auto c = compile(src);
  CHECK(kinds(*c).empty());
  REQUIRE(kinds(*c, Severity::Warning) == std::vector<std::string>{"memory-budget"});
  const Diagnostic* d = test::find(*c, "memory-budget");
  CHECK(d->message.find("more than memory = 4GiB") != std::string::npos);
  REQUIRE(!d->notes.empty());
  CHECK(d->notes[0].message.find("would fit") != std::string::npos);
  // Enough memory: no warning; the budget is not part of the stage's identity.
  auto roomy = compile(src, {{"base.memory", "80GiB"}});
  CHECK(kinds(*roomy, Severity::Warning).empty());
  CHECK(roomy->check.experiment->stages[0].hash == c->check.experiment->stages[0].hash);
  CHECK(kinds(*compile(src, {{"base.memory", "4"}})) == std::vector<std::string>{"type-mismatch"});
}

TEST_CASE("fine-tuning: protocol arguments, and preprocessing that must match the pretraining's") {
  const char* src = R"(dataset corpus = synthetic(subjects = 32, size = 40^3, seed = 1)
dataset clinic = synthetic(subjects = 40, size = 40^3, seed = 2)
pipeline prep = resample(1mm) >> crop(32^3) >> zscore()

pretrain base {
  data      = corpus |> prep >> flip()
  encoder   = unet(width = 4, stages = 3)
  objective = mae()
}

evaluate base on clinic.lesion (shots = 8, protocol = finetune, epochs = 20, lr = 1e-3)
)";
  auto c = compile(src);
  REQUIRE(kinds(*c).empty());
  const ir::EvaluateStage& e = c->check.experiment->stages[1].evaluate;
  CHECK((e.protocol == ir::Protocol::Finetune));
  CHECK(e.epochs == 20);
  CHECK(e.lr == doctest::Approx(1e-3));
  CHECK(e.pipeline.ops.size() == 3);  // the flip is for pretraining views only
  // The protocol is part of the evaluation's identity.
  auto probe = compile(src, {{"base_lesion.protocol", "probe"}, {"base_lesion.epochs", "20"}});
  CHECK(kinds(*probe) == std::vector<std::string>{"unknown-argument", "unknown-argument"});
  // Own preprocessing: a different crop is fine; a different spacing or normalisation is not.
  CHECK(kinds(*compile(src, {{"base_lesion.pipeline", "resample(1mm) >> crop(24^3) >> zscore()"}})).empty());
  auto spacing = compile(src, {{"base_lesion.pipeline", "crop(32^3) >> zscore()"}});
  REQUIRE(kinds(*spacing) == std::vector<std::string>{"pipeline-mismatch"});
  const Diagnostic* d = test::find(*spacing, "pipeline-mismatch");
  CHECK(d->message == "fine-tuning data are resampled to native spacing, but the encoder was pretrained at 1mm");
  REQUIRE(!d->notes.empty());
  CHECK(std::string(spacing->sources.text(d->notes[0].range)) == "resample(1mm)");
  auto norm = compile(src, {{"base_lesion.pipeline", "resample(1mm) >> crop(32^3) >> zscore(nonzero = false)"}});
  CHECK(kinds(*norm) == std::vector<std::string>{"pipeline-mismatch"});
  auto twoMm = compile(src, {{"base_lesion.pipeline", "resample(2mm) >> crop(16^3) >> zscore()"}});
  CHECK(kinds(*twoMm) == std::vector<std::string>{"pipeline-mismatch"});
}

TEST_CASE("multi-stage recipes: a pretraining that starts from another's encoder") {
  const char* src = R"(dataset corpus = synthetic(subjects = 32, size = 32^3)
pipeline views = zscore() >> flip() >> noise(sigma = 0.05)

pretrain first {
  data      = corpus |> views
  encoder   = unet(width = 4, stages = 3)
  objective = mae(mask = 60%)
}

pretrain second {
  data      = corpus |> views
  encoder   = unet(width = 4, stages = 3)
  objective = mae(mask = 60%) + 0.1 * simclr()
  init      = first
}
)";
  auto c = compile(src);
  REQUIRE(kinds(*c).empty());
  const ir::Experiment& ex = *c->check.experiment;
  REQUIRE(ex.stages.size() == 2);
  CHECK(ex.stages[0].name == "first");
  CHECK(ex.stages[1].pretrain.init == "first");
  CHECK(ex.stages[1].deps == std::vector<size_t>{0});
  // The second stage's identity includes the first's.
  auto longer = compile(src, {{"first.epochs", "20"}});
  REQUIRE(longer->check.experiment);
  CHECK(longer->check.experiment->stages[1].hash != ex.stages[1].hash);
  // Encoders must match; init must name a pretraining; no cycles.
  CHECK(kinds(*compile(src, {{"second.encoder", "unet(width = 8, stages = 3)"}})) ==
        std::vector<std::string>{"init-mismatch"});
  CHECK(kinds(*compile(src, {{"second.init", "corpus"}})) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile(src, {{"first.init", "second"}})) == std::vector<std::string>{"cycle"});
}

TEST_CASE("regressions found in review: evaluation names are not values; integer arithmetic is bounded") {
  // An evaluation used where a value or a model is needed is an error, not a silent drop.
  CHECK(kinds(*compile(std::string(kValid) + "evaluate p2 = base_lesion on clinic.lesion (shots = 8)\n")) ==
        std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile(std::string(kValid) + "let x = base_lesion\n")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("dataset d = synthetic(seed = 100000000000 * 100000000000)\nlet x = d\n")) ==
        std::vector<std::string>{"value-range"});
}

TEST_CASE("parameterised definitions: called like built-ins, checked at every call") {
  const char* src = R"(dataset corpus = synthetic(subjects = 32, size = 40^3)
pipeline prep = crop(32^3) >> zscore()
pipeline views(p = 50%, sigma) = prep >> flip(p = p) >> noise(sigma = sigma)
encoder small(w = 8) = unet(width = w, stages = 3)

pretrain base {
  data      = corpus |> views(sigma = 0.05)
  encoder   = small(16)
  objective = mae() + 0.1 * simclr()
}
)";
  auto c = compile(src);
  REQUIRE(kinds(*c).empty());
  const ir::PretrainStage& p = c->check.experiment->stages[0].pretrain;
  CHECK(p.encoder.unet.width == 16);
  REQUIRE(p.pipeline.ops.size() == 4);
  CHECK(p.pipeline.ops[2].number("p") == doctest::Approx(0.5));
  CHECK(p.pipeline.ops[3].number("sigma") == doctest::Approx(0.05));
  // Argument errors, like a built-in's.
  CHECK(kinds(*compile("pipeline v(p) = flip(p = p)\nlet x = v(q = 1)\n")) == std::vector<std::string>{"unknown-argument"});
  CHECK(kinds(*compile("pipeline v(p) = flip(p = p)\nlet x = v()\n")) == std::vector<std::string>{"missing-argument"});
  CHECK(kinds(*compile("pipeline v(p) = flip(p = p)\nlet x = v(1, 2)\n")) ==
        std::vector<std::string>{"too-many-arguments"});
  CHECK(kinds(*compile("pipeline v(p) = flip(p = p)\nlet x = v(p = 150%)\n")) == std::vector<std::string>{"value-range"});
  // The keyword constrains the result; recursion is a cycle; parameters do not leak.
  CHECK(kinds(*compile("pipeline bad() = synthetic()\nlet x = bad()\n")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("let r(n = 1) = r(n)\nlet x = r()\n")) == std::vector<std::string>{"cycle"});
  CHECK(kinds(*compile("let f(a = 1) = g()\nlet g() = a\nlet x = f()\n")) == std::vector<std::string>{"unknown-name"});
  // A definition used without a call gets the call as a fix-it.
  auto bare = compile("pipeline v(p = 50%) = flip(p = p)\npipeline w = zscore() >> v\nlet x = w\n");
  REQUIRE(kinds(*bare) == std::vector<std::string>{"type-mismatch"});
  CHECK(test::find(*bare, "type-mismatch")->fixits.at(0).replacement == "v()");
}

TEST_CASE("fine-tuning batch and batches per epoch: checked, and in the stage only when set") {
  const std::string base = R"(dataset corpus = synthetic(subjects = 16, size = 32^3)
dataset clinic = synthetic(subjects = 40, size = 32^3, seed = 2)
pretrain base {
  data = corpus
  encoder = unet(width = 4, stages = 3)
  objective = mae()
}
)";
  auto plain = compile(base + "evaluate base on clinic.lesion (shots = 4, protocol = finetune)\n");
  REQUIRE(plain->check.experiment);
  const ir::Experiment& p = *plain->check.experiment;
  CHECK(ir::printStage(p.stages[1], p).find("batch") == std::string::npos);  // old hashes stay

  auto baseline = compile(base + "evaluate base on clinic.lesion (shots = 4, protocol = finetune, epochs = 500, "
                                 "batches = 100, batch = 2)\n");
  REQUIRE(baseline->check.experiment);
  const ir::Experiment& b = *baseline->check.experiment;
  CHECK(b.stages[1].evaluate.batch == 2);
  CHECK(b.stages[1].evaluate.batches == 100);
  CHECK(ir::printStage(b.stages[1], b).find("batch = 2, batches = 100") != std::string::npos);
  CHECK(b.stages[1].hash != p.stages[1].hash);

  auto big = compile(base + "evaluate base on clinic.lesion (shots = 4, protocol = finetune, batch = 8)\n");
  CHECK(kinds(*big) == std::vector<std::string>{"value-range"});
  auto probe = compile(base + "evaluate base on clinic.lesion (shots = 4, batches = 10)\n");
  CHECK(kinds(*probe) == std::vector<std::string>{"unknown-argument"});
}

TEST_CASE("regression: \"did you mean\" suggests only names that fit the position, ignoring case") {
  // Once `unte(...)` suggested `site`, `dino()` `dice` and `schedule = step` `site`.
  auto suggestion = [](const std::string& encoder, const std::string& objective, const std::string& schedule) {
    std::string src = "dataset corpus = synthetic(subjects = 32, size = 32^3)\n"
                      "pretrain m {\n  data = corpus\n  encoder = " + encoder + "\n  objective = " + objective +
                      "\n  optimizer = adamw(schedule = " + schedule + ")\n}\n";
    auto c = test::compile(src);
    std::vector<std::string> fixes;
    for (const Diagnostic& d : c->diags.sorted()) {
      CHECK(info(d.kind).name == std::string_view("unknown-name"));
      fixes.push_back(d.fixits.empty() ? std::string("-") : d.fixits[0].replacement);
    }
    return fixes;
  };
  CHECK(suggestion("unte(width = 4, stages = 3)", "dino()", "step") == std::vector<std::string>{"unet", "-", "-"});
  CHECK(suggestion("UNET(width = 4, stages = 3)", "MAE()", "Cosine") ==
        std::vector<std::string>{"unet", "mae", "cosine"});
  CHECK(suggestion("vit_ss", "simclr_()", "constnat") == std::vector<std::string>{"vit_s", "simclr", "constant"});
}

TEST_CASE("regression: a plain number where a fraction is expected gets a percentage fix-it") {
  std::string src = std::string(test::kValid);
  size_t at = src.find("mask = 60%");
  REQUIRE(at != std::string::npos);
  auto c = test::compile(src.replace(at, 10, "mask = 60"));
  const Diagnostic* d = test::find(*c, "value-range");
  REQUIRE(d != nullptr);
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "60%");
  CHECK(c->sources.text(d->fixits[0].range) == "60");
}

TEST_CASE("regression: evaluate's test = 20 gets the percentage fix-it too") {
  std::string src = std::string(test::kValid) + "evaluate held = base on clinic.lesion (shots = 4, test = 20)\n";
  auto c = test::compile(src);
  const Diagnostic* d = test::find(*c, "value-range");
  REQUIRE(d != nullptr);
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "20%");
}

TEST_CASE("regression: a crop larger than the volume warns, for the evaluation's data too") {
  // The pretraining crops 32^3 from 40^3 volumes (fine); the evaluation's data set has
  // 24^3 volumes, which the same crop zero-pads.
  std::string src = std::string(test::kValid);
  size_t at = src.find("size = 40^3, seed = 2");
  REQUIRE(at != std::string::npos);
  src.replace(at, 11, "size = 24^3");
  auto c = test::compile(src);
  const Diagnostic* d = test::find(*c, "crop-padding");
  REQUIRE(d != nullptr);
  CHECK((d->severity == Severity::Warning));
  CHECK(d->message == "crop 32^3 is larger than the volume (24^3): the volume is zero-padded to fill it");
  CHECK(c->sources.text(d->notes.at(0).range) == "clinic");
}

TEST_CASE("a crop shared by the pretraining and its evaluation warns once") {
  std::string src = std::string(test::kValid);
  size_t at = src.find("crop(32^3)");
  REQUIRE(at != std::string::npos);
  auto c = test::compile(src.replace(at, 10, "crop(48^3)"));
  size_t warnings = 0;
  for (const Diagnostic& d : c->diags.sorted()) warnings += info(d.kind).name == "crop-padding" ? 1 : 0;
  CHECK(warnings == 1);
}

TEST_CASE("the side table: every node of the file with its kind, place, type, unit, shape and value") {
  auto c = compile(kValid);
  std::string t = c->check.typed();
  CHECK(t.find("DeclBind 3:1 pipeline prep : Pipeline shape 32^3 = crop(size = 32^3, random = false) >> "
               "zscore(nonzero = true)\n") != std::string::npos);
  CHECK(t.find("ExprCall 3:17 : Pipeline shape 32^3 = crop(size = 32^3, random = false)\n") != std::string::npos);
  CHECK(t.find("ExprBinary 3:22 : Shape = 32^3\n") != std::string::npos);
  CHECK(t.find("ExprNumber 3:22 : Int = 32\n") != std::string::npos);
  // Source order: every line's place is at or after the previous line's.
  std::istringstream lines(t);
  std::string line;
  std::pair<int, int> last{0, 0};
  while (std::getline(lines, line)) {
    size_t sp = line.find(' '), colon = line.find(':', sp);
    std::pair<int, int> at{std::stoi(line.substr(sp + 1, colon - sp - 1)), std::stoi(line.substr(colon + 1))};
    CHECK(at >= last);
    last = at;
  }
}

TEST_CASE("ir::verify: what the checker accepts holds the IR's invariants; a violation is named") {
  auto c = compile(kValid);
  REQUIRE(c->check.experiment.has_value());
  ir::Experiment ex = *c->check.experiment;
  CHECK(ir::verify(ex).empty());
  ir::Experiment badOrder = ex;
  badOrder.stages.front().deps.push_back(badOrder.stages.size() - 1);
  CHECK(ir::verify(badOrder).find("a dependency does not come before it") != std::string::npos);
  ir::Experiment badBatch = ex;
  badBatch.stages.front().pretrain.batch = 0;
  CHECK(ir::verify(badBatch).find("epochs or batch below 1") != std::string::npos);
  ir::Experiment badTest = ex;
  badTest.stages.back().evaluate.testFraction = 1.5;
  CHECK(ir::verify(badTest).find("the test share is outside (0, 1)") != std::string::npos);
}
