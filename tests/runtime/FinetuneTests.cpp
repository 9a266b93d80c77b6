// Fine-tuning evaluation (ir::Protocol::Finetune) on small synthetic data sets through
// the Runtime interface: the training loss falls, metrics are in range and
// deterministic for a seed, continuous labels, the probe's draws, user errors; and the
// copying of a single-channel pretrained encoder into a multi-channel one. The
// two-channel folder case is in FolderTests.cpp.
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "Finetune.h"
#include "Models.h"
#include "Stages.h"
#include "gyrus/runtime/Runtime.h"

#include <doctest/doctest.h>

#include "TestSupport.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

using namespace gyrus;
using namespace gyrus::rt;
using gyrus::rt::test::freshDir;
using gyrus::rt::test::makeRuntime;
using gyrus::rt::test::metricOf;
using gyrus::rt::test::EvaluateRun;
using gyrus::rt::test::runEvaluateIn;
namespace fs = std::filesystem;

namespace {

ir::UNetEncoder tiny() {
  ir::UNetEncoder e;
  e.width = 4;
  e.stages = 3;
  e.convsPerStage = 2;
  return e;
}

/// A briefly MAE-pretrained tiny encoder (8 synthetic subjects of 16^3, 2 epochs);
/// returns its stage directory.
fs::path pretrainTiny() {
  ir::PretrainStage s;
  s.name = "pre";
  s.data.synthetic.subjects = 8;
  s.data.synthetic.size = {16, 16, 16};
  s.data.synthetic.seed = 21;
  s.pipeline.ops = {ir::makeOp("zscore")};  // z-score over non-zero voxels
  s.encoder = tiny();
  s.objective.terms = {ir::ObjectiveTerm{}};
  s.optimizer.lr = 3e-3;
  s.epochs = 2;
  s.batch = 4;
  s.seed = 5;
  StageContext ctx;
  ctx.threads = 2;
  ctx.dir = freshDir("finetune", "pre");
  StageResult r = makeRuntime()->runPretrain(s, ctx);
  REQUIRE_MESSAGE(r.status == StageResult::Status::Ok, r.message);
  return ctx.dir;
}

ir::EvaluateStage finetuneStage() {
  ir::EvaluateStage ev;
  ev.name = "tune";
  ev.pretrain = "pre";
  ev.data.synthetic.subjects = 24;
  ev.data.synthetic.size = {16, 16, 16};
  ev.data.synthetic.seed = 99;
  ev.pipeline.ops = {ir::makeOp("zscore")};
  ev.encoder = tiny();
  ev.label = "lesion";
  ev.protocol = ir::Protocol::Finetune;
  ev.epochs = 6;
  ev.lr = 3e-3;
  ev.shots = 8;
  ev.repeats = 2;
  ev.seed = 4;
  return ev;
}

EvaluateRun runFinetune(const ir::EvaluateStage& ev, const fs::path& pretrainDir, const std::string& name) {
  return runEvaluateIn(ev, pretrainDir, freshDir("finetune", name));
}

}  // namespace

TEST_CASE("finetune: the loss falls, metrics are in range and identical for the same seed") {
  fs::path pre = pretrainTiny();
  ir::EvaluateStage ev = finetuneStage();
  EvaluateRun a = runFinetune(ev, pre, "tune_a");
  REQUIRE_MESSAGE(a.result.status == StageResult::Status::Ok, a.result.message);
  for (const char* m : {"auroc", "auroc_scratch"}) {
    CHECK(metricOf(a.result, m) >= 0.0);
    CHECK(metricOf(a.result, m) <= 1.0);
  }
  CHECK(metricOf(a.result, "auroc_std") >= 0.0);
  CHECK(a.result.metrics.size() == 5);
  // The 95 % interval over test subjects: ordered, within AUROC's range.
  CHECK(metricOf(a.result, "auroc_ci_low") <= metricOf(a.result, "auroc_ci_high"));
  CHECK(metricOf(a.result, "auroc_ci_low") >= 0.0);
  CHECK(metricOf(a.result, "auroc_ci_high") <= 1.0);
  REQUIRE(a.lines.size() == 2);  // one line per repeat; one channel: no stem message
  CHECK(a.lines[0].rfind("repeat 1/2  auroc ", 0) == 0);
  CHECK(a.lines[0].find("(from scratch ") != std::string::npos);

  const nlohmann::json& j = a.predictions;
  CHECK(j.at("protocol") == "finetune");
  CHECK(j.at("reference") == "scratch");
  CHECK(j.at("clip") == 1.0);
  CHECK(j.at("samples").size() == static_cast<size_t>(ev.data.synthetic.subjects));
  CHECK(j.at("samples")[3] == "subject_3");
  CHECK(j.at("channels") == 1);
  CHECK(j.at("reinitialised").empty());
  CHECK(j.at("batch") == 4);
  REQUIRE(j.at("repeats").size() == 2);
  for (const auto& rep : j["repeats"]) {
    CHECK(rep.at("train").size() == 8);
    CHECK(rep.at("scores").size() == rep.at("test").size());
    CHECK(rep.at("scores_scratch").size() == rep.at("test").size());
    CHECK(rep.at("labels").size() == rep.at("test").size());
    std::vector<double> loss = rep.at("loss"), lossScratch = rep.at("loss_scratch");
    REQUIRE(loss.size() == 6);
    REQUIRE(lossScratch.size() == 6);
    MESSAGE("fine-tuning loss " << loss.front() << " -> " << loss.back() << ", from scratch " << lossScratch.front()
                                << " -> " << lossScratch.back());
    CHECK(loss.back() < loss.front());
    CHECK(lossScratch.back() < lossScratch.front());
    // The pretrained weights make a difference: the two runs share seed and order only.
    CHECK(rep.at("scores") != rep.at("scores_scratch"));
  }

  // The probe draws the same subjects for the same seed.
  ir::EvaluateStage probe = ev;
  probe.protocol = ir::Protocol::Probe;
  EvaluateRun p = runFinetune(probe, pre, "probe");
  REQUIRE_MESSAGE(p.result.status == StageResult::Status::Ok, p.result.message);
  // One predictions format for every protocol.
  CHECK(p.predictions.at("protocol") == "probe");
  CHECK(p.predictions.at("reference") == "random_encoder");
  CHECK(p.predictions.at("samples") == j.at("samples"));
  for (size_t r = 0; r < 2; ++r) {
    CHECK(p.predictions["repeats"][r].at("scores_random_encoder").size() == p.predictions["repeats"][r]["test"].size());
    CHECK(p.predictions["repeats"][r]["train"] == j["repeats"][r]["train"]);
    CHECK(p.predictions["repeats"][r]["test"] == j["repeats"][r]["test"]);
  }

  EvaluateRun b = runFinetune(ev, pre, "tune_b");
  REQUIRE_MESSAGE(b.result.status == StageResult::Status::Ok, b.result.message);
  for (const Metric& m : a.result.metrics) CHECK_MESSAGE(metricOf(b.result, m.name) == m.value, m.name);
  CHECK(b.predictions == a.predictions);

  ev.seed = 5;  // another seed: other draws, other metrics
  EvaluateRun c = runFinetune(ev, pre, "tune_c");
  REQUIRE_MESSAGE(c.result.status == StageResult::Status::Ok, c.result.message);
  CHECK(c.predictions["repeats"][0]["scores"] != a.predictions["repeats"][0]["scores"]);
}

TEST_CASE("finetune: batch and batches per epoch (the baseline's schedule) are deterministic") {
  fs::path pre = pretrainTiny();
  ir::EvaluateStage ev = finetuneStage();
  ev.epochs = 3;
  ev.repeats = 1;
  ev.batch = 2;
  ev.batches = 10;  // 20 samples an epoch from shuffles of 8 shots
  EvaluateRun a = runFinetune(ev, pre, "batches_a");
  REQUIRE_MESSAGE(a.result.status == StageResult::Status::Ok, a.result.message);
  CHECK(a.predictions.at("batch") == 2);
  CHECK(a.predictions.at("batches_per_epoch") == 10);
  std::vector<double> loss = a.predictions["repeats"][0].at("loss");
  REQUIRE(loss.size() == 3);
  CHECK(loss.back() < loss.front());
  EvaluateRun b = runFinetune(ev, pre, "batches_b");
  REQUIRE_MESSAGE(b.result.status == StageResult::Status::Ok, b.result.message);
  CHECK(b.predictions == a.predictions);
  // Another schedule trains another model.
  ev.batches = 0;
  EvaluateRun c = runFinetune(ev, pre, "batches_c");
  REQUIRE_MESSAGE(c.result.status == StageResult::Status::Ok, c.result.message);
  CHECK(c.predictions.at("batches_per_epoch") == 0);
  CHECK(c.predictions["repeats"][0]["scores"] != a.predictions["repeats"][0]["scores"]);
}

TEST_CASE("finetune: continuous labels are fitted on standardised targets and predicted in their units") {
  fs::path pre = pretrainTiny();
  ir::EvaluateStage ev = finetuneStage();
  ev.label = "age";
  ev.labelKind = ir::LabelKind::Continuous;
  EvaluateRun r = runFinetune(ev, pre, "tune_age");
  REQUIRE_MESSAGE(r.result.status == StageResult::Status::Ok, r.result.message);
  CHECK(r.result.metrics.size() == 10);
  CHECK(metricOf(r.result, "mae_ci_low") <= metricOf(r.result, "mae_ci_high"));
  CHECK(metricOf(r.result, "mae_ci_low") > 0.0);
  for (const char* m : {"mae", "mae_scratch"}) {
    CHECK(std::isfinite(metricOf(r.result, m)));
    CHECK(metricOf(r.result, m) > 0.0);
    CHECK(metricOf(r.result, m) < 40.0);
  }
  CHECK(metricOf(r.result, "mae_std") >= 0.0);
  CHECK(metricOf(r.result, "pearson_r_std") >= 0.0);
  for (const char* m : {"pearson_r", "pearson_r_scratch"}) {
    CHECK(metricOf(r.result, m) >= -1.0);
    CHECK(metricOf(r.result, m) <= 1.0);
  }
  REQUIRE(r.lines.size() == 2);
  CHECK(r.lines[1].find("(from scratch mae ") != std::string::npos);
  // Predictions are ages (years), not standardised values.
  std::vector<double> scores = r.predictions["repeats"][0]["scores"];
  double mean = 0.0;
  for (double s : scores) mean += s / static_cast<double>(scores.size());
  CHECK(mean > 20.0);
  CHECK(mean < 90.0);
  std::vector<double> loss = r.predictions["repeats"][0]["loss"];
  CHECK(loss.back() < loss.front());
}

TEST_CASE("finetune: user errors") {
  ir::EvaluateStage ev = finetuneStage();
  EvaluateRun missing = runFinetune(ev, freshDir("finetune", "empty"), "tune_missing");
  CHECK(missing.result.status == StageResult::Status::UserError);
  CHECK(missing.result.message.find("encoder.pt") != std::string::npos);
  CHECK(missing.result.message.find("run the pretrain stage 'pre'") != std::string::npos);

  fs::path pre = pretrainTiny();
  // What the checker guarantees is asserted, not re-validated: a violation is gyrus's
  // bug (an internal error), not the user's.
  ev.epochs = 0;
  EvaluateRun noEpochs = runFinetune(ev, pre, "tune_epochs");
  CHECK(noEpochs.result.status == StageResult::Status::InternalError);
  CHECK(noEpochs.result.message.find("fine-tuning epochs below 1 or lr not positive") != std::string::npos);
  CHECK(noEpochs.result.message.find("this is a bug in gyrus") != std::string::npos);
  ev.epochs = 1;
  ev.lr = 0.0;
  EvaluateRun noLr = runFinetune(ev, pre, "tune_lr");
  CHECK(noLr.result.status == StageResult::Status::InternalError);
  ev.lr = 1e-3;
  ev.encoder.unet.width = 8;  // not the pretrained architecture
  EvaluateRun other = runFinetune(ev, pre, "tune_arch");
  CHECK(other.result.status == StageResult::Status::UserError);
  CHECK(other.result.message.find("does not match the declared encoder") != std::string::npos);
  ev.encoder.unet.width = 4;
  ev.shots = 20;
  EvaluateRun shots = runFinetune(ev, pre, "tune_shots");
  CHECK(shots.result.status == StageResult::Status::UserError);
  CHECK(shots.result.message.find("shots = 20") != std::string::npos);
}

TEST_CASE("finetune: a single-channel encoder goes into a two-channel one, all but the first convolution") {
  torch::manual_seed(3);
  EncoderModule single = makeEncoder(tiny());
  ir::UNetEncoder cfg = tiny();
  cfg.inChannels = 2;
  EncoderModule multi = makeEncoder(cfg);
  torch::Tensor stemBefore = multi->named_parameters()["stage0.conv0.conv.weight"].clone();
  std::vector<std::string> dropped = copyMatchingParameters(multi, single);
  REQUIRE(dropped.size() == 1);
  CHECK(dropped[0] == "stage0.conv0.conv.weight");
  auto source = single->named_parameters(), target = multi->named_parameters();
  CHECK(target["stage0.conv0.conv.weight"].sizes().vec() == std::vector<int64_t>{4, 2, 3, 3, 3});
  CHECK(torch::equal(target["stage0.conv0.conv.weight"], stemBefore));
  for (const auto& p : target)
    if (p.key() != "stage0.conv0.conv.weight") CHECK_MESSAGE(torch::equal(p.value(), source[p.key()]), p.key());

  EncoderModule same = makeEncoder(tiny());
  CHECK(copyMatchingParameters(same, single).empty());
  for (const auto& p : same->named_parameters()) CHECK(torch::equal(p.value(), source[p.key()]));

  ir::UNetEncoder wider = tiny();
  wider.width = 8;
  EncoderModule other = makeEncoder(wider);
  CHECK_THROWS_AS(copyMatchingParameters(other, single), std::invalid_argument);

  FinetuneNet net(cfg);
  CHECK(net->forward(torch::randn({3, 2, 16, 16, 16})).sizes().vec() == std::vector<int64_t>{3});
  CHECK(net->named_parameters()["head.weight"].sizes().vec() == std::vector<int64_t>{1, 32});
}

TEST_CASE("finetune: stem = repeat tiles the pretrained stem over the channels; one image on every channel gives its response") {
  torch::manual_seed(4);
  EncoderModule single = makeEncoder(tiny());
  torch::Tensor image = torch::randn({1, 1, 16, 16, 16});
  for (int64_t channels : {2, 3, 4}) {
    CAPTURE(channels);
    ir::UNetEncoder cfg = tiny();
    cfg.inChannels = channels;
    EncoderModule multi = makeEncoder(cfg);
    CHECK(copyMatchingParameters(multi, single, ir::StemInit::Repeat).empty());
    torch::Tensor w = multi->named_parameters()["stage0.conv0.conv.weight"];
    torch::Tensor w0 = single->named_parameters()["stage0.conv0.conv.weight"];
    for (int64_t c = 0; c < channels; ++c)
      CHECK(torch::allclose(w.select(1, c), w0.select(1, 0) / static_cast<double>(channels)));
    // The whole encoder answers the tiled image as the pretrained one answers the image.
    torch::NoGradGuard noGrad;
    std::vector<torch::Tensor> a = single->forward(image), b = multi->forward(image.expand({1, channels, 16, 16, 16}));
    REQUIRE(a.size() == b.size());
    for (size_t k = 0; k < a.size(); ++k) CHECK(torch::allclose(a[k], b[k], 1e-4, 1e-5));
  }
  // Fewer channels than the pretraining: each input channel sums the pretrained ones it stands for.
  torch::Tensor four = torch::randn({8, 4, 3, 3, 3});
  torch::Tensor two = inflateStem(four, 2);
  CHECK(torch::allclose(two.select(1, 0), four.select(1, 0) + four.select(1, 2)));
  CHECK(torch::allclose(two.select(1, 1), four.select(1, 1) + four.select(1, 3)));
  CHECK(torch::allclose(inflateStem(four, 4), four));
  // Three channels from two: tiled (0, 1, 0) and scaled by 2/3.
  torch::Tensor three = inflateStem(four.narrow(1, 0, 2), 3);
  CHECK(torch::allclose(three.select(1, 2), four.select(1, 0) * (2.0 / 3.0)));
}
