// MAE pretraining (see Stages.h).
//
// Randomness: torch::manual_seed(stage.seed) fixes the initial weights; the epoch's
// sample order and masks come from Rng(deriveSeed(stage.seed, epoch)). Since every
// epoch's random stream is derived from (seed, epoch) alone, the checkpoint needs no
// RNG state: model, optimizer state (AdamW moments and step counts), the number of
// finished epochs and the last epoch's loss are enough for a bit-exact resume.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <numeric>

#include "Errors.h"
#include "Models.h"
#include "Stages.h"
#include <torch/optim.h>

namespace gyrus::rt {

namespace {

/// Learning rate at global step `step`: linear warm-up from lr/1000, then the schedule.
double learningRate(const ir::Optimizer& opt, int64_t step, int64_t warmupSteps, int64_t totalSteps) {
  double base = opt.lr;
  if (step < warmupSteps) {
    double start = base / 1000.0;
    return start + (base - start) * static_cast<double>(step) / static_cast<double>(warmupSteps);
  }
  if (opt.schedule == ir::Schedule::Constant) return base;
  int64_t span = std::max<int64_t>(1, totalSteps - warmupSteps);
  double t = static_cast<double>(step - warmupSteps) / static_cast<double>(span);
  return base * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

void saveCheckpoint(const std::filesystem::path& path, MaeNet& net, torch::optim::AdamW& optimizer,
                    int64_t epochsDone, double lastLoss) {
  writeAtomically(path, [&](const std::string& temp) {
    torch::serialize::OutputArchive archive, model, optim;
    net->save(model);
    optimizer.save(optim);
    archive.write("model", model);
    archive.write("optimizer", optim);
    archive.write("epochs_done", torch::tensor(epochsDone, torch::kInt64));
    archive.write("last_loss", torch::tensor(lastLoss, torch::kFloat64));
    archive.save_to(temp);
  });
}

}  // namespace

StageResult pretrain(const ir::PretrainStage& stage, const StageContext& ctx) {
  StageResult result;
  if (stage.objective.terms.empty()) throw UserError("the objective has no terms: add mae(...)");
  if (stage.batch <= 0) throw UserError("batch must be at least 1");
  if (stage.epochs <= 0) throw UserError("epochs must be at least 1");
  setThreads(ctx.threads);
  torch::manual_seed(stage.seed);
  MaeNet net(stage.encoder);
  torch::optim::AdamW optimizer(
      net->parameters(), torch::optim::AdamWOptions(stage.optimizer.lr).weight_decay(stage.optimizer.weightDecay));

  std::filesystem::path checkpoint = ctx.dir / kCheckpointFile;
  int64_t startEpoch = 0;
  double lastLoss = std::nan("");
  if (std::filesystem::exists(checkpoint)) {
    torch::serialize::InputArchive archive, model, optim;
    archive.load_from(checkpoint.string());
    archive.read("model", model);
    loadStrict(*net, model, checkpoint.string());
    archive.read("optimizer", optim);
    optimizer.load(optim);
    torch::Tensor t;
    archive.read("epochs_done", t);
    startEpoch = t.item<int64_t>();
    archive.read("last_loss", t);
    lastLoss = t.item<double>();
    result.resumed = true;
    if (ctx.progress)
      ctx.progress("resuming from " + checkpoint.filename().string() + " after epoch " + std::to_string(startEpoch));
  }

  Dataset data = buildDataset(stage.data, stage.pipeline, stage.encoder.totalStride());
  int64_t n = stage.data.subjects;
  int64_t stepsPerEpoch = (n + stage.batch - 1) / stage.batch;
  int64_t totalSteps = stepsPerEpoch * stage.epochs;
  int64_t warmupSteps = stepsPerEpoch * std::min(stage.optimizer.warmupEpochs, stage.epochs);

  net->train();
  for (int64_t epoch = startEpoch; epoch < stage.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    Rng rng(deriveSeed(stage.seed, static_cast<uint64_t>(epoch)));
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    rng.shuffle(order);
    double lossSum = 0.0;
    for (int64_t step = 0; step < stepsPerEpoch; ++step) {
      int64_t begin = step * stage.batch, end = std::min(n, begin + stage.batch);
      auto index = torch::from_blob(order.data() + begin, {end - begin}, torch::kInt64);
      torch::Tensor clean = data.images.index_select(0, index);
      double lr = learningRate(stage.optimizer, epoch * stepsPerEpoch + step, warmupSteps, totalSteps);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.zero_grad();
      torch::Tensor loss = torch::zeros({}, torch::kFloat32);
      for (const ir::ObjectiveTerm& term : stage.objective.terms) {
        torch::Tensor mask = maeMask(end - begin, data.shape, term.mae, rng);
        torch::Tensor reconstruction = net->forward(clean * (1.0 - mask));
        loss = loss + term.weight * maeLoss(reconstruction, clean, mask, term.mae.maskedOnly);
      }
      loss.backward();
      optimizer.step();
      lossSum += loss.item<double>();
    }
    lastLoss = lossSum / static_cast<double>(stepsPerEpoch);
    if (!std::isfinite(lastLoss))
      throw UserError("the loss diverged (" + std::to_string(lastLoss) + ") in epoch " + std::to_string(epoch + 1) +
                      ": lower the learning rate");
    saveCheckpoint(checkpoint, net, optimizer, epoch + 1, lastLoss);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (ctx.progress) {
      char line[128];
      std::snprintf(line, sizeof line, "epoch %lld/%lld  loss %.5f  %.1f s", static_cast<long long>(epoch + 1),
                    static_cast<long long>(stage.epochs), lastLoss, seconds);
      ctx.progress(line);
    }
  }

  writeAtomically(ctx.dir / kEncoderFile, [&](const std::string& temp) {
    torch::serialize::OutputArchive archive;
    net->encoder->save(archive);
    archive.save_to(temp);
  });
  result.metrics.push_back({"final_loss", lastLoss});
  return result;
}

}  // namespace gyrus::rt
