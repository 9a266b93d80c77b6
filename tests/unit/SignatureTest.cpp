// The signature table (compiler/src/Signatures.def): every entry is well formed, has a
// build hook, defaults equal to the IR's, and the reference in docs/language.md is the
// one generated from it.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "CheckInternal.h"
#include "TestUtil.h"

using namespace gyrus;
using namespace gyrus::test;

TEST_CASE("signatures: every built-in function has a build hook, and every hook a signature") {
  std::set<std::string> hooks;
  for (const std::string& h : check::buildHookNames()) hooks.insert(h);
  std::set<std::string> functions;
  for (const check::Signature* s : check::builtins()) functions.insert(s->name);
  CHECK(hooks == functions);
  CHECK(check::findSignature("pretrain") != nullptr);
  CHECK(check::findSignature("evaluate") != nullptr);
  CHECK(builtinParameters("crop") == std::vector<std::string>{"size", "random"});
  CHECK(builtinParameters("pretrain").empty());  // a block, not a function
}

TEST_CASE("signatures: every literal default parses to its parameter's type") {
  for (const check::Signature& s : check::signatures()) {
    std::set<std::string> names;
    for (const check::Param& p : s.params) {
      INFO(s.name << "." << p.name << " = " << p.defaultText);
      CHECK(names.insert(p.name).second);  // no parameter twice
      CHECK_FALSE(p.doc.empty());
      bool literal = !p.defaultText.empty() && (p.flags & check::kDescribed) == 0;
      CHECK_FALSE((literal && p.required()));
      if (literal) CHECK((p.defaultValue.ty == p.ty));
      if (!literal) CHECK((p.defaultValue.ty == check::Ty::Error));
    }
  }
}

TEST_CASE("signatures: the table's defaults are the IR's defaults") {
  // Every argument left out: the stages must equal default-constructed IR structs.
  auto c = compile(R"(dataset corpus = synthetic()
pipeline prep = resample() >> crop(32^3) >> clip() >> zscore() >> flip() >> noise() >> gamma()
pretrain base {
  data = corpus |> prep
  encoder = unet()
  objective = mae() + simclr()
  optimizer = adamw()
}
pretrain other {
  data = corpus |> prep
  encoder = vit(patch = 16)
  objective = mae()
  optimizer = sgd()
}
evaluate base on corpus.lesion (protocol = finetune)
evaluate other on corpus.lesion ()
)");
  INFO(renderHuman(c->sources, c->diags.sorted()));
  REQUIRE(c->check.experiment.has_value());
  const ir::Experiment& ex = *c->check.experiment;
  REQUIRE(ex.stages.size() == 4);
  const ir::PretrainStage& p = ex.stages[0].pretrain;
  ir::PretrainStage defaults;
  CHECK(p.data.synthetic.subjects == ir::SyntheticData{}.subjects);
  CHECK(p.data.synthetic.size == ir::SyntheticData{}.size);
  CHECK(p.data.synthetic.seed == ir::SyntheticData{}.seed);
  CHECK(p.data.synthetic.lesionRate == ir::SyntheticData{}.lesionRate);
  CHECK(p.data.synthetic.noise == ir::SyntheticData{}.noise);
  CHECK(p.epochs == defaults.epochs);
  CHECK(p.batch == defaults.batch);
  CHECK(p.seed == defaults.seed);
  CHECK((p.encoder == ir::Encoder{}));
  for (const ir::Optimizer& o : {p.optimizer, ex.stages[1].pretrain.optimizer}) {
    ir::Optimizer d;
    CHECK(o.lr == d.lr);
    CHECK(o.weightDecay == d.weightDecay);
    CHECK(o.momentum == d.momentum);
    CHECK(o.warmupEpochs == d.warmupEpochs);
    CHECK((o.schedule == d.schedule));
    CHECK(o.gradClip == d.gradClip);
  }
  CHECK((ex.stages[1].pretrain.optimizer.kind == ir::OptimizerKind::Sgd));
  ir::Encoder vit;
  vit.kind = ir::EncoderKind::Vit;
  CHECK((ex.stages[1].pretrain.encoder == vit));
  REQUIRE(p.objective.terms.size() == 2);
  CHECK(p.objective.terms[0].mae.maskRatio == ir::MaeObjective{}.maskRatio);
  CHECK(p.objective.terms[0].mae.cube == ir::MaeObjective{}.cube);
  CHECK(p.objective.terms[0].mae.maskedOnly == ir::MaeObjective{}.maskedOnly);
  CHECK(p.objective.terms[1].simclr.temperature == ir::SimClrObjective{}.temperature);
  CHECK(p.objective.terms[1].simclr.projection == ir::SimClrObjective{}.projection);
  const std::vector<ir::PipelineOp>& ops = p.pipeline.ops;
  REQUIRE(ops.size() == 7);
  for (const ir::PipelineOp& op : ops) {
    INFO(op.name);
    if (op.name != "crop") CHECK(ir::print(op) == ir::print(ir::makeOp(op.name)));  // crop's size is required
  }
  CHECK(ops[2].number("lo") == 0.005);
  CHECK(ops[2].number("hi") == 0.995);
  CHECK(ops[5].number("sigma") == 0.05);
  CHECK((ops[6].interval("range") == ir::Interval{0.7, 1.5}));
  ir::EvaluateStage ev;
  for (const ir::Stage* s : {&ex.stages[2], &ex.stages[3]}) {
    const ir::EvaluateStage& e = s->evaluate;
    CHECK(e.shots == ev.shots);
    CHECK(e.repeats == ev.repeats);
    CHECK(e.testFraction == ev.testFraction);
    CHECK(e.seed == ev.seed);
    CHECK(e.epochs == ev.epochs);
    CHECK(e.lr == ev.lr);
    CHECK(e.gradClip == ev.gradClip);
    CHECK(e.nsdToleranceMm == ev.nsdToleranceMm);
    CHECK(e.batch == ev.batch);
    CHECK(e.batches == ev.batches);
  }
}

TEST_CASE("signatures: one binder words each site's mistakes") {
  auto c = compile(std::string(kValid) + "evaluate other = base on clinic.lesion (shots = 8, shots = 9, shot = 2)\n");
  std::string out = renderHuman(c->sources, c->diags.sorted());
  CHECK(out.find("argument 'shots' is given twice") != std::string::npos);
  CHECK(out.find("evaluate has no argument 'shot'; did you mean 'shots'?") != std::string::npos);
  CHECK(out.find("evaluate takes: shots, repeats, test, seed, probe, protocol, epochs, lr, batch, batches, clip, stem, head, "
                 "pipeline, tolerance, alpha, metrics") != std::string::npos);
}

TEST_CASE("signatures: docs/language.md embeds the generated reference") {
  namespace fs = std::filesystem;
  fs::path path = fs::path(GYRUS_SOURCE_DIR) / "docs" / "language.md";
  std::string text = slurp(path);
  const std::string begin = "<!-- BEGIN signatures (generated) -->\n", end = "<!-- END signatures -->";
  size_t b = text.find(begin), e = text.find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  std::string expected = "\n" + check::signaturesMarkdown();
  std::string actual = text.substr(b + begin.size(), e - b - begin.size());
  if (actual != expected && std::getenv("GYRUS_UPDATE_GOLDEN") != nullptr) {
    text = text.substr(0, b + begin.size()) + expected + text.substr(e);
    std::ofstream(path) << text;
    actual = expected;
  }
  CHECK_MESSAGE(actual == expected, "docs/language.md's signature reference is out of date: run the unit tests "
                                    "with GYRUS_UPDATE_GOLDEN=1");
}
