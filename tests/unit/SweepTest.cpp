// Sweeps: static expansion, deduplication of shared stages, paired axes, and plans.
#include <doctest/doctest.h>

#include <set>
#include <tuple>

#include "TestUtil.h"

using namespace gyrus;
using gyrus::test::compile;
using gyrus::test::kinds;

namespace {
const char* kBase = R"(dataset corpus = synthetic(subjects = 32, size = 32^3)
dataset clinic = synthetic(subjects = 40, size = 32^3, seed = 2)
pipeline views = zscore() >> flip() >> noise(sigma = 0.05)
let mask = 60%

pretrain base {
  data = corpus |> views
  encoder = unet(width = 4, stages = 3)
  objective = mae(mask = mask)
  epochs = 2
}

evaluate base on clinic.lesion (shots = 8)
)";

size_t count(const Plan& p, ir::StageKind kind) {
  size_t n = 0;
  for (const ir::Stage& s : p.experiment.stages) n += s.kind == kind ? 1 : 0;
  return n;
}
}  // namespace

TEST_CASE("without sweeps the plan has one point") {
  auto c = compile(kBase);
  REQUIRE(kinds(*c).empty());
  CHECK(c->plan.points.empty());
  CHECK(c->plan.experiment.stages.size() == 2);
  CHECK(c->plan.users == std::vector<std::vector<size_t>>{{0}, {0}});
}

TEST_CASE("a sweep over an evaluation argument shares the pretraining") {
  auto c = compile(std::string(kBase) + "sweep base_lesion.shots in [4, 8, 16]\n");
  REQUIRE(kinds(*c).empty());
  CHECK(c->plan.points.size() == 3);
  CHECK(count(c->plan, ir::StageKind::Pretrain) == 1);
  CHECK(count(c->plan, ir::StageKind::Evaluate) == 3);
  CHECK(c->plan.users[0] == std::vector<size_t>{0, 1, 2});
  // Every evaluation depends on the single pretraining.
  for (const ir::Stage& s : c->plan.experiment.stages)
    if (s.kind == ir::StageKind::Evaluate) CHECK(s.deps == std::vector<size_t>{0});
  CHECK(c->check.experiment->stages.size() == 4);
}

TEST_CASE("two sweeps form a grid, and identical points merge") {
  auto c = compile(std::string(kBase) +
                   "sweep base.objective in [mae(mask = mask), simclr(), mae(mask = mask) + 0.5 * simclr()]\n"
                   "sweep mask in [45%, 60%, 75%]\n");
  REQUIRE(kinds(*c).empty());
  CHECK(c->plan.points.size() == 9);
  // simclr ignores the mask: its three points share one pretraining.
  CHECK(count(c->plan, ir::StageKind::Pretrain) == 7);
  CHECK(count(c->plan, ir::StageKind::Evaluate) == 7);
  CHECK(c->plan.points[4] == "base.objective = simclr(), mask = 60%");
  std::string plan = printPlan(c->plan);
  CHECK(plan.find("9 sweep points -> 14 distinct stages: 7 pretrain, 7 evaluate") != std::string::npos);
  CHECK(plan.find("total: 18 stage runs without sharing, 14 with it") != std::string::npos);
  // Variants are named apart; evaluations follow their model.
  for (const ir::Stage& s : c->plan.experiment.stages) {
    CHECK(s.name.find('[') != std::string::npos);
    if (s.kind == ir::StageKind::Evaluate) CHECK(s.evaluate.pretrain == c->plan.experiment.stages[s.deps[0]].name);
  }
}

TEST_CASE("paired (zipped) sweeps vary paths together") {
  auto c = compile(std::string(kBase) + "sweep base.epochs, base.batch in [[2, 4], [4, 8]]\n");
  REQUIRE(kinds(*c).empty());
  REQUIRE(c->plan.points.size() == 2);
  CHECK(c->plan.points[1] == "base.epochs = 4, base.batch = 8");
  const ir::Experiment& ex = *c->check.experiment;
  CHECK(ex.stages[0].pretrain.epochs == 2);
  CHECK(ex.stages[0].pretrain.batch == 4);
}

TEST_CASE("every sweep point is checked; errors point at the bad value") {
  auto c = compile(std::string(kBase) + "sweep base.objective.mask in [45%, 150%]\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"value-range"});
  const Diagnostic* d = test::find(*c, "value-range");
  CHECK(std::string(c->sources.text(d->range)) == "150%");
  CHECK_FALSE(c->check.experiment.has_value());
}

TEST_CASE("malformed sweeps are [bad-sweep]") {
  CHECK(kinds(*compile(std::string(kBase) + "sweep base.epochs in 3\n")) == std::vector<std::string>{"bad-sweep"});
  CHECK(kinds(*compile(std::string(kBase) + "sweep base.epochs in []\n")) == std::vector<std::string>{"bad-sweep"});
  CHECK(kinds(*compile(std::string(kBase) + "sweep base.epochs, base.batch in [2, 4]\n")) ==
        std::vector<std::string>{"bad-sweep"});
  // A path that names nothing is the sweep's mistake, fixed in the path.
  auto typo = compile(std::string(kBase) + "sweep bsae.epochs in [2, 4]\n");
  CHECK(kinds(*typo) == std::vector<std::string>{"bad-sweep"});
  REQUIRE(test::find(*typo, "bad-sweep")->fixits.size() == 1);
  CHECK(typo->sources.text(test::find(*typo, "bad-sweep")->fixits[0].range) == "bsae");
}

TEST_CASE("augmentations: random ops make views, and evaluation drops them") {
  auto c = compile(kBase);
  REQUIRE(c->check.experiment);
  const ir::Experiment& ex = *c->check.experiment;
  REQUIRE(ex.stages[0].pretrain.pipeline.ops.size() == 3);
  CHECK(ex.stages[0].pretrain.pipeline.ops[1].isRandom());
  CHECK(ex.stages[1].evaluate.pipeline.ops.size() == 1);
  CHECK_FALSE(ex.stages[1].evaluate.pipeline.ops[0].isRandom());
  CHECK(kinds(*compile("pipeline p = gamma(1.5 .. 0.7)\nlet x = p")) == std::vector<std::string>{"value-range"});
  CHECK(kinds(*compile("pipeline p = gamma(0.7)\nlet x = p")) == std::vector<std::string>{"type-mismatch"});
  CHECK(kinds(*compile("pipeline p = flip(p = 150%)\nlet x = p")) == std::vector<std::string>{"value-range"});
}

TEST_CASE("contrastive objectives need stochastic views") {
  std::string det = kBase;
  det.replace(det.find("zscore() >> flip() >> noise(sigma = 0.05)"), 41, "zscore()");
  auto c = compile(det, {{"base.objective", "simclr()"}});
  REQUIRE(kinds(*c) == std::vector<std::string>{"contrastive-views"});
  const Diagnostic* d = test::find(*c, "contrastive-views");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "corpus |> views >> flip() >> noise(sigma = 0.05)");
  CHECK(kinds(*compile(kBase, {{"base.objective", "simclr()"}})).empty());
  CHECK(kinds(*compile(kBase, {{"base.objective", "mae() + 0.5 * simclr(temperature = 0.2)"}})).empty());
}

TEST_CASE("regression: identical work under two names in a sweep keeps both names") {
  auto c = compile(std::string(kBase) + "evaluate twin = base on clinic.lesion (shots = 8)\nsweep base.epochs in [2, 3]\n");
  REQUIRE(kinds(*c).empty());
  size_t twins = 0;
  for (const ir::Stage& s : c->plan.experiment.stages) twins += s.name.rfind("twin", 0) == 0 ? 1 : 0;
  CHECK(twins == 2);
  CHECK(c->plan.experiment.stages.size() == 6);
}

TEST_CASE("a declaration only a sweep's values mention is used, not reported once per point") {
  auto c = compile(std::string(kBase) +
                   "encoder small = unet(width = 2, stages = 3)\n"
                   "encoder token = vit(patch = 8, dim = 48, depth = 1, heads = 2)\n"
                   "sweep base.encoder in [small, token, unet(width = 8, stages = 3)]\n");
  CHECK(kinds(*c, Severity::Warning).empty());
  CHECK(c->plan.points.size() == 3);
  CHECK(count(c->plan, ir::StageKind::Pretrain) == 3);
  // A declaration nothing mentions is still reported, once.
  auto d = compile(std::string(kBase) + "encoder spare = unet(width = 2, stages = 3)\n"
                                        "sweep base_lesion.shots in [4, 8]\n");
  CHECK(kinds(*d, Severity::Warning) == std::vector<std::string>{"unused"});
}

TEST_CASE("regression: the plan prices fine-tuning as fine-tuning, not as probe fits") {
  std::string src = std::string(kBase) + "evaluate tuned = base on clinic.lesion (shots = 8, repeats = 2, "
                                         "protocol = finetune, epochs = 5, batch = 2)\n";
  auto c = compile(src);
  REQUIRE(c->check.experiment.has_value());
  std::string plan = printPlan(c->plan);
  CHECK(plan.find("4 fine-tunings (2 repeats, pretrained and from scratch), each 5 epochs x 4 steps at batch 2 = "
                  "20 steps") != std::string::npos);
  size_t tuned = plan.find("evaluate tuned");
  REQUIRE(tuned != std::string::npos);
  CHECK(plan.find("probe fits", tuned) == std::string::npos);
}

TEST_CASE("sweep points substitute into one parse and take their values out again") {
  // Values the file does not set are added (a field, an argument of a call) and must
  // be gone again for the next point: no point sees another's value, none is duplicated.
  auto c = compile(std::string(gyrus::test::kValid) +
                   "sweep base.seed in [1, 2, 3]\nsweep corpus.lesion_rate in [20%, 30%]\n"
                   "sweep prep.crop.size in [32^3, 24^3]\n");
  INFO(renderHuman(c->sources, c->diags.sorted()));
  CHECK(c->diags.errorCount() == 0);
  REQUIRE(c->check.experiment.has_value());
  CHECK(c->plan.points.size() == 12);
  std::set<std::tuple<uint64_t, double, int64_t>> seen;
  for (const ir::Stage& s : c->plan.experiment.stages)
    if (s.kind == ir::StageKind::Pretrain)
      seen.insert({s.pretrain.seed, s.pretrain.data.synthetic.lesionRate, s.pretrain.pipeline.ops.front().shape("size")[0]});
  CHECK(seen.size() == 12);
}

TEST_CASE("an evaluation of a weights file names its model's variant, though it depends on no stage") {
  const std::string weights = std::string(GYRUS_SOURCE_DIR) + "/tests/golden/data/weights/unet_w4_s2.safetensors";
  auto c = compile(R"(dataset corpus = synthetic(subjects = 16, size = 32^3)
dataset clinic = synthetic(subjects = 24, size = 32^3, seed = 2)
pretrain base {
  data = corpus |> flip()
  encoder = unet(width = 4, stages = 2)
  objective = mae()
}
evaluate base on clinic.lesion (shots = 4, init = weights(")" + weights + R"("))
sweep base.epochs in [1, 2]
)");
  REQUIRE(kinds(*c).empty());
  std::set<std::string> pretrains;
  for (const ir::Stage& s : c->plan.experiment.stages)
    if (s.kind == ir::StageKind::Pretrain) pretrains.insert(s.name);
  CHECK(pretrains == std::set<std::string>{"base[1]", "base[2]"});
  for (const ir::Stage& s : c->plan.experiment.stages) {
    if (s.kind != ir::StageKind::Evaluate) continue;
    CHECK(s.deps.empty());
    CHECK(pretrains.count(s.evaluate.pretrain) == 1);
  }
}

TEST_CASE("regression: a path is swept once, and a --set of a swept path is an error, not ignored") {
  auto twice = compile(std::string(kBase) + "sweep mask in [45%, 60%]\nsweep mask in [10%]\n");
  REQUIRE(kinds(*twice) == std::vector<std::string>{"bad-sweep"});
  const Diagnostic* d = test::find(*twice, "bad-sweep");
  CHECK(d->message == "'mask' is swept twice");
  CHECK(d->range.valid());
  REQUIRE(d->notes.size() == 2);
  CHECK(d->notes[0].message == "first swept here");
  // --set of the swept path, or of a part of its value: every point would drop it.
  const std::string swept = std::string(kBase) + "sweep base.objective in [mae(mask = 45%), mae(mask = 75%)]\n";
  for (const Override& set : {Override{"base.objective", "mae(mask = 90%)"}, Override{"base.objective.mask", "90%"}}) {
    auto c = compile(swept, {set});
    CAPTURE(set.path);
    REQUIRE(kinds(*c) == std::vector<std::string>{"bad-override"});
    CHECK(test::find(*c, "bad-override")->message ==
          "--set " + set.path + " has no effect: 'base.objective' is swept, and every point sets its own value");
  }
  // A --set beside the sweep still applies.
  auto beside = compile(swept, {{"base.epochs", "3"}});
  CHECK(kinds(*beside).empty());
}

TEST_CASE("regression: an error that only some sweep points raise names those points") {
  auto c = compile(std::string(kBase) + "sweep mask in [45%, 2mm]\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"type-mismatch"});
  const Diagnostic* d = test::find(*c, "type-mismatch");
  REQUIRE_FALSE(d->notes.empty());
  CHECK(d->notes.back().message == "in sweep point 2 (mask = 2mm) of 2");
  // An error every point raises is the file's, not the sweep's: no point note.
  auto all = compile(std::string(kBase) + "sweep mask in [2mm, 3mm]\n");
  for (const DiagNote& n : test::find(*all, "type-mismatch")->notes)
    CHECK(n.message.find("sweep point") == std::string::npos);
}
