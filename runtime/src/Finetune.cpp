// Few-shot fine-tuning of a pretrained encoder (ir::Protocol::Finetune, see Ir.h).
//
// Draws: the probe's test split and per-repeat training draws (FewShot.h), so both
// protocols see the same subjects for the same seed.
//
// Network: the encoder takes every channel of a sample at once (inChannels =
// data.channelCount()); the pretrained encoder (encoder.pt, single-channel) is copied
// in wherever the shapes match, so with several channels the first convolution keeps
// its fresh random initialisation (the FOMO25 baseline's rule). The head pools the
// bottleneck (global average and maximum, concatenated) into Linear(2w, 1).
//
// Training, per repeat: `epochs` epochs over the `shots` training samples in batches of
// min(shots, 4) (the last batch of an epoch may be smaller), shuffled every epoch;
// AdamW(lr, weight decay 3e-5) on encoder and head; the learning rate follows a cosine
// from lr towards 0 over all steps, set per step. Binary labels: BCE with logits;
// continuous labels: MSE on targets standardised with the training draw's mean and
// (population) std, predictions mapped back. The test scores are the head's outputs
// in eval mode: logits for binary labels (as the probe's), predicted values for
// continuous ones.
//
// Reference: the same protocol from a randomly initialised encoder. Both runs of a
// repeat start from torch::manual_seed(deriveSeed(seed, tag("finetune init") + r)) and
// shuffle with Rng(deriveSeed(seed, tag("finetune order") + r)): they start from the
// same random weights (the pretrained run then overwrites what it loads) with the same
// head and see the batches in the same order, so they differ in the pretrained weights
// alone.
//
// Pipeline: without its random operations, like the probe (the front end strips them
// from evaluation pipelines already).
//
// Resume: a repeat takes seconds to minutes; nothing is checkpointed, a rerun starts
// over. predictions.json (written atomically at the end) holds every repeat's draws,
// test scores, labels and per-epoch training losses.
#include "Finetune.h"

#include <nlohmann/json.hpp>
#include <torch/optim.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "Errors.h"
#include "FewShot.h"
#include "Metrics.h"
#include "Preprocess.h"
#include "Stages.h"

namespace gyrus::rt {

namespace nn = torch::nn;

namespace {

constexpr const char* kStemWeight = "stage0.conv0.conv.weight";
constexpr double kFinetuneWeightDecay = 3e-5;
constexpr int64_t kMaxBatch = 4;
constexpr int64_t kEvalBatch = 8;

/// Targets of one run: what the loss compares the head's output with, and how to map
/// the output back to the label's units.
struct Targets {
  std::vector<float> values;  ///< per sample of the data set (standardised if continuous)
  double mean = 0.0;
  double scale = 1.0;
};

Targets targetsFor(const Labels& labels, const std::vector<int64_t>& train, bool binary) {
  Targets t;
  if (!binary) {
    double sum = 0.0, sq = 0.0;
    for (int64_t i : train) sum += labels.values[static_cast<size_t>(i)];
    t.mean = sum / static_cast<double>(train.size());
    for (int64_t i : train) {
      double d = labels.values[static_cast<size_t>(i)] - t.mean;
      sq += d * d;
    }
    double sd = std::sqrt(sq / static_cast<double>(train.size()));
    t.scale = sd > 1e-12 ? sd : 1.0;
  }
  t.values.reserve(labels.values.size());
  for (size_t i = 0; i < labels.values.size(); ++i)
    t.values.push_back(binary ? static_cast<float>(labels.classes[i])
                              : static_cast<float>((labels.values[i] - t.mean) / t.scale));
  return t;
}

struct RunOutput {
  std::vector<double> scores;  ///< per test sample
  std::vector<double> losses;  ///< mean training loss per epoch
};

/// Trains `net` on `train` and scores `test` (see the file comment).
RunOutput trainAndScore(FinetuneNet& net, const torch::Tensor& images, const Targets& targets,
                        const std::vector<int64_t>& train, const std::vector<int64_t>& test,
                        const ir::EvaluateStage& stage, bool binary, uint64_t orderSeed) {
  namespace F = torch::nn::functional;
  auto n = static_cast<int64_t>(train.size());
  int64_t batch = std::min(n, kMaxBatch);
  int64_t stepsPerEpoch = (n + batch - 1) / batch;
  int64_t totalSteps = stepsPerEpoch * stage.epochs;
  torch::optim::AdamW optimizer(net->parameters(),
                                torch::optim::AdamWOptions(stage.lr).weight_decay(kFinetuneWeightDecay));
  Rng rng(orderSeed);
  std::vector<int64_t> order = train;
  RunOutput out;
  net->train();
  for (int64_t epoch = 0; epoch < stage.epochs; ++epoch) {
    rng.shuffle(order);
    double lossSum = 0.0;
    for (int64_t step = 0; step < stepsPerEpoch; ++step) {
      int64_t begin = step * batch, end = std::min(n, begin + batch);
      std::vector<float> y;
      for (int64_t k = begin; k < end; ++k) y.push_back(targets.values[static_cast<size_t>(order[static_cast<size_t>(k)])]);
      torch::Tensor index = torch::from_blob(order.data() + begin, {end - begin}, torch::kInt64);
      torch::Tensor x = images.index_select(0, index);
      torch::Tensor target = torch::from_blob(y.data(), {end - begin}, torch::kFloat32);
      double t = static_cast<double>(epoch * stepsPerEpoch + step) / static_cast<double>(totalSteps);
      double lr = stage.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.zero_grad();
      torch::Tensor output = net->forward(x);
      torch::Tensor loss = binary ? F::binary_cross_entropy_with_logits(output, target) : F::mse_loss(output, target);
      loss.backward();
      optimizer.step();
      lossSum += loss.item<double>() * static_cast<double>(end - begin);
    }
    double epochLoss = lossSum / static_cast<double>(n);
    if (!std::isfinite(epochLoss)) {
      std::ostringstream msg;
      msg << "fine-tuning diverged (loss " << epochLoss << " in epoch " << epoch + 1 << "): lower lr (now "
          << stage.lr << ")";
      throw UserError(msg.str());
    }
    out.losses.push_back(epochLoss);
  }

  net->eval();
  torch::NoGradGuard noGrad;
  std::vector<int64_t> rows = test;
  auto m = static_cast<int64_t>(rows.size());
  for (int64_t begin = 0; begin < m; begin += kEvalBatch) {
    int64_t end = std::min(m, begin + kEvalBatch);
    torch::Tensor index = torch::from_blob(rows.data() + begin, {end - begin}, torch::kInt64);
    torch::Tensor scores = net->forward(images.index_select(0, index)).to(torch::kFloat64).contiguous();
    const double* s = scores.data_ptr<double>();
    for (int64_t k = 0; k < end - begin; ++k) out.scores.push_back(s[k] * targets.scale + targets.mean);
  }
  return out;
}

}  // namespace

FinetuneNetImpl::FinetuneNetImpl(const ir::UNetEncoder& config) {
  encoder = register_module("encoder", UNetEncoder(config));
  head = register_module("head", nn::Linear(2 * config.widthOf(config.stages - 1), 1));
}

torch::Tensor FinetuneNetImpl::forward(const torch::Tensor& x) {
  torch::Tensor deepest = encoder->forward(x).back();
  return head->forward(torch::cat({deepest.mean({2, 3, 4}), deepest.amax({2, 3, 4})}, 1)).squeeze(1);
}

std::vector<std::string> copyMatchingParameters(UNetEncoder& target, UNetEncoder& pretrained) {
  torch::NoGradGuard noGrad;
  auto source = pretrained->named_parameters();
  auto params = target->named_parameters();
  if (source.size() != params.size())
    throw std::invalid_argument("copyMatchingParameters: the encoders have different parameter lists");
  std::vector<std::string> dropped;
  for (auto& p : params) {
    const torch::Tensor* s = source.find(p.key());
    if (s != nullptr && s->sizes() == p.value().sizes()) {
      p.value().copy_(*s);
    } else if (s != nullptr && p.key() == kStemWeight) {
      dropped.push_back(p.key());
    } else {
      throw std::invalid_argument("copyMatchingParameters: '" + p.key() + "' differs beyond the input channels");
    }
  }
  return dropped;
}

StageResult finetune(const ir::EvaluateStage& stage, const StageContext& ctx) {
  bool binary = stage.labelKind == ir::LabelKind::Binary;
  std::filesystem::path encoderPath = checkEvaluate(stage, ctx, binary);
  if (stage.epochs < 1) throw UserError("epochs must be at least 1 to fine-tune");
  if (!(stage.lr > 0.0) || !std::isfinite(stage.lr))
    throw UserError("lr must be a positive learning rate (e.g. 1e-4) to fine-tune");
  int threads = setThreads(ctx.threads);

  UNetEncoder pretrained(stage.encoder);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(encoderPath.string());
    loadStrict(*pretrained, archive, encoderPath.string());
  }
  Dataset data = buildDataset(stage.data, withoutRandomOps(stage.pipeline), stage.encoder.totalStride(),
                              {threads, ctx.progress});
  Labels labels = labelsOf(stage, data, binary);
  Split split = splitSubjects(stage, labels, binary);
  // Rows of data.images are the channels of each sample in turn: one sample per row.
  torch::Tensor images =
      data.images.view({data.samples, data.channels, data.shape[2], data.shape[1], data.shape[0]});
  ir::UNetEncoder config = stage.encoder;
  config.inChannels = data.channels;

  std::vector<double> primary, primaryScratch, pearson, pearsonScratch;
  std::vector<int> testClasses;
  std::vector<double> testValues;
  for (int64_t i : split.test) {
    if (binary) testClasses.push_back(labels.classes[static_cast<size_t>(i)]);
    testValues.push_back(labels.values[static_cast<size_t>(i)]);
  }
  std::vector<std::string> reinitialised;
  nlohmann::json repeatsJson = nlohmann::json::array();
  for (int64_t r = 0; r < stage.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> train = drawShots(stage, labels, split, binary, r);
    Targets targets = targetsFor(labels, train, binary);
    uint64_t initSeed = deriveSeed(stage.seed, tag("finetune init") + static_cast<uint64_t>(r));
    uint64_t orderSeed = deriveSeed(stage.seed, tag("finetune order") + static_cast<uint64_t>(r));

    torch::manual_seed(initSeed);
    FinetuneNet net(config);
    reinitialised = copyMatchingParameters(net->encoder, pretrained);
    if (r == 0 && !reinitialised.empty() && ctx.progress) {
      auto channels = [](int64_t n) { return std::to_string(n) + (n == 1 ? " channel" : " channels"); };
      ctx.progress("the task has " + channels(data.channels) + ", the pretrained encoder takes " +
                   channels(stage.encoder.inChannels) + ": first convolution re-initialised (" +
                   reinitialised.front() + ")");
    }
    RunOutput tuned = trainAndScore(net, images, targets, train, split.test, stage, binary, orderSeed);

    torch::manual_seed(initSeed);
    FinetuneNet scratchNet(config);
    RunOutput scratch = trainAndScore(scratchNet, images, targets, train, split.test, stage, binary, orderSeed);

    nlohmann::json rep = {{"repeat", r},           {"train", train},          {"test", split.test},
                          {"scores", tuned.scores}, {"scores_scratch", scratch.scores}, {"loss", tuned.losses},
                          {"loss_scratch", scratch.losses}};
    char line[192];
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (binary) {
      primary.push_back(auroc(tuned.scores, testClasses));
      primaryScratch.push_back(auroc(scratch.scores, testClasses));
      rep["labels"] = testClasses;
      std::snprintf(line, sizeof line, "repeat %lld/%lld  auroc %.4f  (from scratch %.4f)  %.1f s",
                    static_cast<long long>(r + 1), static_cast<long long>(stage.repeats), primary.back(),
                    primaryScratch.back(), seconds);
    } else {
      primary.push_back(meanAbsoluteError(tuned.scores, testValues));
      primaryScratch.push_back(meanAbsoluteError(scratch.scores, testValues));
      pearson.push_back(pearsonR(tuned.scores, testValues));
      pearsonScratch.push_back(pearsonR(scratch.scores, testValues));
      rep["labels"] = testValues;
      std::snprintf(line, sizeof line, "repeat %lld/%lld  mae %.3f  r %.4f  (from scratch mae %.3f  r %.4f)  %.1f s",
                    static_cast<long long>(r + 1), static_cast<long long>(stage.repeats), primary.back(),
                    pearson.back(), primaryScratch.back(), pearsonScratch.back(), seconds);
    }
    if (ctx.progress) ctx.progress(line);
    repeatsJson.push_back(std::move(rep));
  }

  StageResult result;
  MeanStd m = meanStd(primary);
  if (binary) {
    result.metrics = {{"auroc", m.mean}, {"auroc_std", m.std}, {"auroc_scratch", meanStd(primaryScratch).mean}};
  } else {
    result.metrics = {{"mae", m.mean},
                      {"mae_std", m.std},
                      {"pearson_r", meanStd(pearson).mean},
                      {"mae_scratch", meanStd(primaryScratch).mean},
                      {"pearson_r_scratch", meanStd(pearsonScratch).mean}};
  }
  nlohmann::json out = {{"protocol", "finetune"},
                        {"label", stage.label},
                        {"kind", binary ? "binary" : "continuous"},
                        {"channels", data.channels},
                        {"reinitialised", reinitialised},
                        {"epochs", stage.epochs},
                        {"lr", stage.lr},
                        {"batch", std::min(stage.shots, kMaxBatch)},
                        {"repeats", repeatsJson}};
  writeAtomically(ctx.dir / kPredictionsFile, [&](const std::string& temp) {
    std::ofstream f(temp);
    f << out.dump(2) << '\n';
    if (!f) throw std::runtime_error("cannot write " + temp);
  });
  return result;
}

}  // namespace gyrus::rt
