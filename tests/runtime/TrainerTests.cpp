// The one training loop (Trainer.h): gradient clipping is applied (and off with clip =
// 0), both optimisers step, the schedule, the divergence check, and the history file
// (one line per epoch, trimmed on resume); the stage's device.
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "Errors.h"
#include "Stages.h"
#include "Trainer.h"
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>

#include <doctest/doctest.h>

#include "TestSupport.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace gyrus;
using namespace gyrus::rt;
using gyrus::rt::test::freshDir;

namespace {

std::vector<nlohmann::json> historyLines(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// One step on a loss whose gradient is 1000 for each of 16 weights (norm 4000).
double gradientNormAfterOneStep(const ir::Optimizer& optimizer) {
  torch::Tensor w = torch::zeros({16}, torch::requires_grad());
  Trainer trainer({w}, TrainerOptions(optimizer).steps(1, 1));
  trainer.run(0, [&](int64_t, int64_t) { return StepLoss{(w * 1000.0).sum(), {}, 1.0, 1}; });
  return w.grad().norm().item<double>();
}

}  // namespace

TEST_CASE("trainer: gradients are clipped to their global norm, and not with clip = 0") {
  ir::Optimizer o;
  o.gradClip = 1.0;
  CHECK(gradientNormAfterOneStep(o) == doctest::Approx(1.0).epsilon(1e-4));
  o.gradClip = 0.0;
  CHECK(gradientNormAfterOneStep(o) == doctest::Approx(4000.0));
  o.kind = ir::OptimizerKind::Sgd;
  o.gradClip = 2.5;
  CHECK(gradientNormAfterOneStep(o) == doctest::Approx(2.5).epsilon(1e-4));
}

TEST_CASE("trainer: SGD with Nesterov momentum and AdamW both minimise, with warm-up and cosine per step") {
  for (ir::OptimizerKind kind : {ir::OptimizerKind::AdamW, ir::OptimizerKind::Sgd}) {
    ir::Optimizer o;
    o.kind = kind;
    o.lr = kind == ir::OptimizerKind::Sgd ? 0.01 : 0.1;
    o.warmupEpochs = 1;
    o.gradClip = 0.0;
    torch::Tensor w = torch::full({4}, 3.0).requires_grad_();
    Trainer trainer({w}, TrainerOptions(o).steps(5, 10));
    CHECK(trainer.learningRate(0) == doctest::Approx(o.lr / 1000.0));
    CHECK(trainer.learningRate(5) == doctest::Approx(o.lr));  // warm-up over, cosine starts at lr
    CHECK(trainer.learningRate(49) < o.lr * 0.01);
    trainer.run(0, [&](int64_t, int64_t) { return StepLoss{(w * w).sum(), {}, 1.0, 1}; });
    REQUIRE(trainer.epochLosses().size() == 10);
    CHECK(trainer.epochLosses().back() < trainer.epochLosses().front() * 0.5);
  }
}

TEST_CASE("trainer: a diverging loss is the user's error, naming the epoch and the learning rate") {
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  ir::Optimizer o;
  Trainer trainer({w}, TrainerOptions(o).steps(2, 3));
  try {
    trainer.run(0, [&](int64_t epoch, int64_t) {
      return StepLoss{epoch == 1 ? (w * std::nan("")).sum() : w.sum(), {}, 1.0, 1};
    });
    FAIL("no error");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("diverged (nan) in epoch 2: lower the learning rate (now 0.0001)") !=
          std::string::npos);
  }
}

TEST_CASE("trainer: one history line per epoch with the terms; a resume keeps the covered epochs only") {
  std::filesystem::path dir = freshDir("trainer", "history");
  std::filesystem::path history = dir / kHistoryFile;
  torch::Tensor w = torch::ones({3}, torch::requires_grad());
  ir::Optimizer o;
  std::vector<std::string> progress;
  Trainer trainer({w}, TrainerOptions(o)
                           .steps(2, 4)
                           .progress([&](std::string_view line) { progress.emplace_back(line); })
                           .history(history, {{"phase", "pretrain"}}));
  trainer.run(0, [&](int64_t, int64_t) {
    torch::Tensor a = (w * w).sum(), b = w.sum();
    return StepLoss{a + 0.5 * b, {{"mae", a.detach()}, {"simclr", b.detach()}}, 1.0, 2};
  });
  std::vector<nlohmann::json> lines = historyLines(history);
  REQUIRE(lines.size() == 4);
  CHECK(lines[2]["epoch"] == 3);
  CHECK(lines[2]["phase"] == "pretrain");
  CHECK(lines[2]["loss"].get<double>() == doctest::Approx(trainer.epochLosses()[2]));
  CHECK(lines[2]["terms"]["mae"].get<double>() + 0.5 * lines[2]["terms"]["simclr"].get<double>() ==
        doctest::Approx(lines[2]["loss"].get<double>()));
  CHECK(lines[3]["lr"].get<double>() < lines[0]["lr"].get<double>());
  REQUIRE(progress.size() == 4);
  CHECK(progress[1].rfind("epoch 2/4  loss ", 0) == 0);
  CHECK(progress[1].find("  eta ") != std::string::npos);

  // A checkpoint after epoch 2: the lines of epochs 3 and 4 go.
  Trainer::resetHistory(history, 2);
  lines = historyLines(history);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1]["epoch"] == 2);
  Trainer::resetHistory(history, 0);
  CHECK_FALSE(std::filesystem::exists(history));
}

TEST_CASE("stage device: auto picks the first usable GPU, else the CPU; unknown or unusable devices are user errors") {
  StageContext ctx;
  CHECK(ctx.device == "auto");
  torch::Device automatic = stageDevice(ctx);
  CHECK(automatic.is_cuda() == torch::cuda::is_available());
  CHECK(describeDevice(automatic) == (torch::cuda::is_available() ? "cuda:0" : "cpu"));
  ctx.device = "cpu";
  CHECK(stageDevice(ctx).is_cpu());
  ctx.device = "cuda:99";
  CHECK_THROWS_AS(stageDevice(ctx), UserError);
  ctx.device = "gpu";
  try {
    stageDevice(ctx);
    FAIL("no error");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()) == "'gpu' is not a device: use cpu, cuda or cuda:N");
  }
}

TEST_CASE("trainer: bf16 runs the step under autocast (bf16 products), keeps fp32 weights and loss, and minimises") {
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({64, 16});
  torch::Tensor target = x.matmul(torch::randn({16, 1}));
  for (ir::Precision precision : {ir::Precision::Fp32, ir::Precision::Bf16}) {
    torch::manual_seed(4);
    torch::Tensor w = torch::zeros({16, 1}, torch::requires_grad());
    ir::Optimizer o;
    o.lr = 0.05;
    o.schedule = ir::Schedule::Constant;
    o.gradClip = 0.0;
    Trainer trainer({w}, TrainerOptions(o).steps(1, 200).precision(precision, torch::Device(torch::kCPU)));
    torch::ScalarType productType = torch::kFloat;
    trainer.run(0, [&](int64_t, int64_t) {
      torch::Tensor y = x.matmul(w);  // autocast: bf16 with Bf16
      productType = y.scalar_type();
      return StepLoss{(y.to(torch::kFloat) - target).pow(2).mean(), {}, 1.0, 64};
    });
    CHECK((productType == (precision == ir::Precision::Bf16 ? torch::kBFloat16 : torch::kFloat)));
    CHECK((w.scalar_type() == torch::kFloat));  // master weights stay fp32
    CHECK((w.grad().scalar_type() == torch::kFloat));
    CHECK(trainer.epochLosses().back() < 0.05 * trainer.epochLosses().front());
    CHECK_FALSE(at::autocast::is_autocast_enabled(torch::kCPU));  // the scope ended with the step
  }
}
