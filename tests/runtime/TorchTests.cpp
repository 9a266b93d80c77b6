// LibTorch side of the runtime: models, masking, and whole stages through the Runtime
// interface (pretrain, exact resume after a kill, evaluation and its user errors).
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "Models.h"
#include "Stages.h"
#include "gyrus/runtime/Runtime.h"

#include <doctest/doctest.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

using namespace gyrus;
using namespace gyrus::rt;
namespace fs = std::filesystem;

namespace {

ir::UNetEncoder tinyEncoder() {
  ir::UNetEncoder e;
  e.width = 4;
  e.stages = 3;
  e.convsPerStage = 2;
  return e;
}

ir::PretrainStage tinyPretrain(int64_t epochs) {
  ir::PretrainStage s;
  s.name = "pre";
  s.data.subjects = 8;
  s.data.size = {16, 16, 16};
  s.data.seed = 21;
  s.pipeline.ops = {ir::PipelineOp{}};  // z-score over non-zero voxels
  s.encoder = tinyEncoder();
  s.objective.terms = {ir::ObjectiveTerm{}};
  s.objective.terms[0].mae.cube = 4;
  s.optimizer.lr = 3e-3;
  s.optimizer.weightDecay = 1e-4;
  s.optimizer.warmupEpochs = 1;
  s.epochs = epochs;
  s.batch = 4;
  s.seed = 5;
  return s;
}

/// A fresh, empty directory under the system temp dir.
fs::path freshDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("gyrus_runtime_tests_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::unique_ptr<Runtime> makeRuntime() {
  std::unique_ptr<Runtime> rt(gyrus_runtime_create(kRuntimeAbiVersion));
  REQUIRE(rt);
  return rt;
}

double metric(const StageResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return m.value;
  FAIL("missing metric " << name);
  return 0.0;
}

/// Encoder parameters as written to encoder.pt.
UNetEncoder loadEncoder(const fs::path& file) {
  UNetEncoder e(tinyEncoder());
  torch::serialize::InputArchive a;
  a.load_from(file.string());
  loadStrict(*e, a, file.string());
  return e;
}

}  // namespace

TEST_CASE("encoder: per-stage shapes, strides, width cap and parameter names") {
  ir::UNetEncoder cfg = tinyEncoder();
  cfg.maxWidth = 6;
  UNetEncoder enc(cfg);
  auto maps = enc->forward(torch::randn({2, 1, 16, 16, 16}));
  REQUIRE(maps.size() == 3);
  CHECK(maps[0].sizes().vec() == std::vector<int64_t>{2, 4, 16, 16, 16});
  CHECK(maps[1].sizes().vec() == std::vector<int64_t>{2, 6, 8, 8, 8});
  CHECK(maps[2].sizes().vec() == std::vector<int64_t>{2, 6, 4, 4, 4});
  auto params = enc->named_parameters();
  CHECK(params.size() == 3 * 2 * 3);  // stages x convs x (conv.weight, norm.weight, norm.bias)
  for (const char* name : {"stage0.conv0.conv.weight", "stage0.conv1.norm.weight", "stage1.conv0.norm.bias",
                           "stage2.conv1.conv.weight"})
    CHECK_MESSAGE(params.find(name) != nullptr, name);
  CHECK(params["stage1.conv0.conv.weight"].sizes().vec() == std::vector<int64_t>{6, 4, 3, 3, 3});
}

TEST_CASE("MAE network reconstructs at the input's shape") {
  MaeNet net(tinyEncoder());
  auto x = torch::randn({3, 1, 16, 16, 16});
  CHECK(net->forward(x).sizes() == x.sizes());
  auto names = net->named_parameters();
  CHECK(names.find("decoder.head.weight") != nullptr);
  CHECK(names.find("decoder.up0.conv.weight") != nullptr);
  CHECK(names.find("encoder.stage0.conv0.conv.weight") != nullptr);
}

TEST_CASE("MAE mask: exactly round(ratio x cells) cubes per sample, different per sample") {
  Rng rng(1);
  ir::MaeObjective mae;
  mae.maskRatio = 0.6;
  mae.cube = 4;
  auto mask = maeMask(4, {32, 16, 24}, mae, rng);
  CHECK(mask.sizes().vec() == std::vector<int64_t>{4, 1, 24, 16, 32});
  int64_t cells = 8 * 4 * 6;
  double expected = static_cast<double>(std::llround(0.6 * static_cast<double>(cells))) / static_cast<double>(cells);
  for (int64_t b = 0; b < 4; ++b) CHECK(mask[b].mean().item<double>() == doctest::Approx(expected));
  CHECK_FALSE(torch::equal(mask[0], mask[1]));
  // Cubes are aligned to the grid: a 4x4x4 cell is all masked or all clear.
  auto cellsMean = torch::avg_pool3d(mask, 4);
  CHECK(torch::logical_or(cellsMean == 0, cellsMean == 1).all().item<bool>());
  // Partial cubes at the high ends (10 = 4 + 4 + 2) still count as cells.
  auto partial = maeMask(1, {10, 10, 10}, mae, rng);
  auto cellMask = torch::nn::functional::max_pool3d(partial, torch::nn::functional::MaxPool3dFuncOptions(4).ceil_mode(true));
  CHECK(cellMask.sum().item<double>() == static_cast<double>(std::llround(0.6 * 27)));
}

TEST_CASE("runtime: ABI check and description") {
  CHECK(gyrus_runtime_create(kRuntimeAbiVersion + 1) == nullptr);
  auto rt = makeRuntime();
  std::string d = rt->describe();
  MESSAGE(d);
  CHECK(d.find("LibTorch 1.") != std::string::npos);
}

TEST_CASE("the built module exports gyrus_runtime_create and nothing else is needed") {
  void* handle = dlopen(GYRUS_RUNTIME_MODULE, RTLD_NOW | RTLD_LOCAL);
  REQUIRE_MESSAGE(handle != nullptr, dlerror());
  using Create = Runtime* (*)(int);
  void* sym = dlsym(handle, "gyrus_runtime_create");
  REQUIRE(sym != nullptr);
  CHECK(dlsym(handle, "_ZN5gyrus2rt10synthesizeERKNS_2ir13SyntheticDataEl") == nullptr);  // hidden
  std::unique_ptr<Runtime> rt(reinterpret_cast<Create>(sym)(kRuntimeAbiVersion));
  REQUIRE(rt);
  CHECK(rt->describe().find("LibTorch") != std::string::npos);
  rt.reset();
  dlclose(handle);
}

TEST_CASE("pretrain lowers the loss, resumes exactly after a kill, and evaluation works") {
  auto rt = makeRuntime();
  std::vector<double> losses;
  StageContext ctx;
  ctx.threads = 2;
  ctx.dir = freshDir("full");
  ctx.progress = [&](std::string_view line) {
    auto at = line.find("loss ");
    if (at != std::string_view::npos) losses.push_back(std::stod(std::string(line.substr(at + 5))));
  };
  ir::PretrainStage stage = tinyPretrain(6);
  StageResult full = rt->runPretrain(stage, ctx);
  REQUIRE_MESSAGE(full.status == StageResult::Status::Ok, full.message);
  CHECK_FALSE(full.resumed);
  REQUIRE(losses.size() == 6);
  MESSAGE("losses: " << losses.front() << " -> " << losses.back());
  CHECK(losses.back() < 0.8 * losses.front());
  CHECK(metric(full, "final_loss") == doctest::Approx(losses.back()).epsilon(1e-4));
  CHECK(fs::exists(ctx.dir / kEncoderFile));
  CHECK(fs::exists(ctx.dir / kCheckpointFile));

  SUBCASE("a run killed after epoch 2 resumes to the same weights") {
    StageContext killed = ctx;
    killed.dir = freshDir("killed");
    int epochsSeen = 0;
    killed.progress = [&](std::string_view line) {
      if (line.rfind("epoch ", 0) == 0 && ++epochsSeen == 2) throw std::runtime_error("simulated kill");
    };
    StageResult first = rt->runPretrain(stage, killed);
    CHECK(first.status == StageResult::Status::InternalError);
    CHECK(first.message == "simulated kill");
    CHECK_FALSE(fs::exists(killed.dir / kEncoderFile));
    killed.progress = nullptr;
    StageResult second = rt->runPretrain(stage, killed);
    REQUIRE_MESSAGE(second.status == StageResult::Status::Ok, second.message);
    CHECK(second.resumed);
    CHECK(metric(second, "final_loss") == metric(full, "final_loss"));
    auto a = loadEncoder(ctx.dir / kEncoderFile)->named_parameters();
    auto b = loadEncoder(killed.dir / kEncoderFile)->named_parameters();
    REQUIRE(a.size() == b.size());
    for (const auto& p : a) CHECK_MESSAGE(torch::equal(p.value(), b[p.key()]), p.key());
  }

  SUBCASE("evaluation: binary and continuous probes give finite metrics in range") {
    ir::EvaluateStage ev;
    ev.name = "eval";
    ev.pretrain = "pre";
    ev.data.subjects = 24;
    ev.data.size = {16, 16, 16};
    ev.data.seed = 99;
    ev.pipeline = stage.pipeline;
    ev.encoder = tinyEncoder();
    ev.shots = 6;
    ev.repeats = 2;
    ev.seed = 4;
    StageContext ectx;
    ectx.threads = 2;
    ectx.dir = freshDir("eval");
    ectx.pretrainDir = ctx.dir;
    int lines = 0;
    ectx.progress = [&](std::string_view) { ++lines; };
    ev.label = "lesion";
    StageResult bin = rt->runEvaluate(ev, ectx);
    REQUIRE_MESSAGE(bin.status == StageResult::Status::Ok, bin.message);
    CHECK(lines == 2);
    for (const char* m : {"auroc", "auroc_random_encoder"}) {
      CHECK(metric(bin, m) >= 0.0);
      CHECK(metric(bin, m) <= 1.0);
    }
    CHECK(metric(bin, "auroc_std") >= 0.0);
    std::ifstream f(ectx.dir / kPredictionsFile);
    auto j = nlohmann::json::parse(f);
    REQUIRE(j.at("repeats").size() == 2);
    CHECK(j["repeats"][0]["scores"].size() == j["repeats"][0]["test"].size());
    CHECK(j["repeats"][0]["train"].size() == 6);

    ev.label = "age";
    ev.labelKind = ir::LabelKind::Continuous;
    StageResult reg = rt->runEvaluate(ev, ectx);
    REQUIRE_MESSAGE(reg.status == StageResult::Status::Ok, reg.message);
    for (const char* m : {"mae", "mae_random_encoder"}) {
      CHECK(std::isfinite(metric(reg, m)));
      CHECK(metric(reg, m) > 0.0);
      CHECK(metric(reg, m) < 200.0);
    }
    for (const char* m : {"pearson_r", "pearson_r_random_encoder"}) {
      CHECK(metric(reg, m) >= -1.0);
      CHECK(metric(reg, m) <= 1.0);
    }

    SUBCASE("too many shots is the user's error, with the numbers") {
      ev.shots = 20;
      StageResult r = rt->runEvaluate(ev, ectx);
      CHECK(r.status == StageResult::Status::UserError);
      CHECK(r.message.find("shots = 20") != std::string::npos);
      CHECK(r.message.find("12 subjects") != std::string::npos);
    }
    SUBCASE("a missing encoder.pt is the user's error") {
      ectx.pretrainDir = freshDir("empty");
      StageResult r = rt->runEvaluate(ev, ectx);
      CHECK(r.status == StageResult::Status::UserError);
      CHECK(r.message.find("encoder.pt") != std::string::npos);
      CHECK(r.message.find("run the pretrain stage 'pre'") != std::string::npos);
    }
    SUBCASE("an encoder of another architecture is the user's error") {
      ev.encoder.width = 8;
      StageResult r = rt->runEvaluate(ev, ectx);
      CHECK(r.status == StageResult::Status::UserError);
      CHECK(r.message.find("does not match the declared encoder") != std::string::npos);
    }
  }
}

TEST_CASE("pretrain: images not divisible by the total stride are the user's error") {
  auto rt = makeRuntime();
  ir::PretrainStage stage = tinyPretrain(1);
  stage.data.size = {18, 18, 18};  // stride 4
  StageContext ctx;
  ctx.dir = freshDir("indivisible");
  StageResult r = rt->runPretrain(stage, ctx);
  CHECK(r.status == StageResult::Status::UserError);
  CHECK(r.message.find("not divisible by the encoder's total stride 4") != std::string::npos);
  CHECK(r.message.find("16 or 20") != std::string::npos);
}
