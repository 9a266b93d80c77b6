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
// `batch` (default min(shots, 4); the last batch of an epoch may be smaller), shuffled
// every epoch; or, with `batches`, epochs of that many full batches drawn in turn from
// successive shuffles (the FOMO25 baseline's 100 batches of 2 per epoch);
// AdamW(lr, weight decay 3e-5) on encoder and head; the learning rate follows a cosine
// from lr towards 0 over all steps, set per step. Binary labels: BCE with logits;
// continuous labels: MSE on targets standardised with the training draw's mean and
// (population) std, predictions mapped back. The test scores are the head's outputs
// in eval mode: logits for binary labels (as the probe's), predicted values for
// continuous ones.
//
// Segmentation (LabelKind::Mask): the head is SegNet's dense decoder (a U-Net decoder, or
// a ViT's per-token patch head; see
// Finetune.h) and the loss soft Dice + BCE (segmentationLoss), with the same draws,
// optimiser, schedule, batches and shuffling. The split and draws are those of a
// continuous label (unstratified: a mask has no class). Test masks are the decoder's
// logits > 0 (probability > 0.5), scored per test sample against the preprocessed mask
// on the preprocessed grid (its voxel size after the pipeline): Dice and NSD at
// nsdToleranceMm (Metrics.h); a repeat's figure is the mean over test samples, the
// stage's `dice` / `nsd` the mean over repeats (`dice_std`, `nsd_std` across repeats).
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
// Models: the fine-tuned network of every repeat (not the from-scratch reference) is kept
// in the stage directory as model_r<k>.safetensors (parameters named as the network's
// modules: `encoder.*`, then `head.*` or `decoder.*`), with model.json saying what
// `gyrus predict` and `gyrus export` need: the kind of output, the channels, the patch
// shape, and for continuous labels each repeat's target standardisation (mean, scale).
//
// Resume: a repeat takes seconds to minutes; nothing is checkpointed, a rerun starts
// over. predictions.json (written atomically at the end) holds every repeat's draws,
// test scores, labels and per-epoch training losses; for segmentation, per test sample
// Dice, NSD and voxel counts instead of scores (never whole volumes).
#include "Finetune.h"

#include <nlohmann/json.hpp>
#include <torch/optim.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>

#include "Errors.h"
#include "FewShot.h"
#include "Metrics.h"
#include "NormAct.h"
#include "Preprocess.h"
#include "Stages.h"
#include "Trainer.h"
#include "WeightsIo.h"

namespace gyrus::rt {

namespace nn = torch::nn;

namespace {

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

/// The images of some samples, [k, channels, z, y, x], by sample index (int64): a view
/// of the data set in memory, or read from the volume cache when it is streamed (a
/// sample's channels are consecutive rows).
class SampleImages {
 public:
  SampleImages(const Dataset& data, torch::Device device) : data_(&data), device_(device) {
    if (!data.streamed())
      view_ = data.images.view({data.samples, data.channels, data.shape[2], data.shape[1], data.shape[0]});
  }
  /// The images on the stage's device (read and gathered on the host).
  torch::Tensor operator()(const torch::Tensor& index) const { return toDevice(onHost(index), device_); }
  const torch::Device& device() const { return device_; }

 private:
  torch::Tensor onHost(const torch::Tensor& index) const {
    if (!data_->streamed()) return view_.index_select(0, index);
    const int64_t k = index.numel(), channels = data_->channels;
    torch::Tensor samples = index.to(torch::kInt64).contiguous();
    std::vector<int64_t> rows;
    rows.reserve(static_cast<size_t>(k * channels));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < channels; ++c) rows.push_back(samples.data_ptr<int64_t>()[i] * channels + c);
    const ir::Shape3& s = data_->shape;
    return data_->rows(rows).view({k, channels, s[2], s[1], s[0]});
  }

  const Dataset* data_;
  torch::Device device_;
  torch::Tensor view_;
};

struct RunOutput {
  std::vector<double> scores;  ///< per test sample
  std::vector<double> losses;  ///< mean training loss per epoch
};

/// Samples per fine-tuning step: `batch`, or min(shots, 4).
int64_t batchSize(const ir::EvaluateStage& stage, int64_t n) {
  return stage.batch > 0 ? std::min(stage.batch, n) : std::min(n, kMaxBatch);
}

/// Which fine-tuning run a Trainer drives, for its progress lines and history.
struct RunTag {
  const StageContext* ctx;
  int64_t repeat;
  int64_t repeats;
  const char* run;  ///< "pretrained" or "scratch"
};

/// The optimisation both heads share (see the file comment), through the one Trainer:
/// `epochs` epochs of AdamW with a per-step cosine learning rate and gradient clipping.
/// Without `batches`, an epoch is one pass over `train`, shuffled, in batches of
/// batchSize (the last may be smaller); with it, an epoch is `batches` full batches taken
/// in turn from successive shuffles of `train`. `batchLoss(index)` gives the mean loss
/// of the samples `index` (int64 row indices). Returns the mean training loss of every
/// epoch; leaves `net` in train mode.
std::vector<double> trainEpochs(nn::Module& net, const std::vector<int64_t>& train, const ir::EvaluateStage& stage,
                                uint64_t orderSeed, const RunTag& tag,
                                const std::function<torch::Tensor(const torch::Tensor&)>& batchLoss) {
  auto n = static_cast<int64_t>(train.size());
  const int64_t batch = batchSize(stage, n);
  const int64_t stepsPerEpoch = stage.batches > 0 ? stage.batches : (n + batch - 1) / batch;
  ir::Optimizer optimizer;
  optimizer.lr = stage.lr;
  optimizer.weightDecay = kFinetuneWeightDecay;
  optimizer.gradClip = stage.gradClip;
  char label[64];
  std::snprintf(label, sizeof label, "repeat %lld/%lld %s  ", static_cast<long long>(tag.repeat + 1),
                static_cast<long long>(tag.repeats), tag.run);
  Trainer trainer(net.parameters(),
                  TrainerOptions(optimizer)
                      .steps(stepsPerEpoch, stage.epochs)
                      .precision(stage.precision, net.parameters().front().device())
                      .progress(tag.ctx->progress, /*everyEpoch=*/false)
                      .label(label)
                      .history(tag.ctx->dir / kHistoryFile, {{"phase", "finetune"}, {"repeat", tag.repeat}, {"run", tag.run}}));
  Rng rng(orderSeed);
  std::vector<int64_t> order = train;
  size_t next = order.size();  // the position in the current shuffle (`batches` only)
  net.train();
  trainer.run(0, [&](int64_t /*epoch*/, int64_t step) {
    if (step == 0 && stage.batches == 0) rng.shuffle(order);
    std::vector<int64_t> rows;
    if (stage.batches == 0) {
      int64_t begin = step * batch, end = std::min(n, begin + batch);
      rows.assign(order.begin() + begin, order.begin() + end);
    } else {
      while (static_cast<int64_t>(rows.size()) < batch) {
        if (next == order.size()) {
          rng.shuffle(order);
          next = 0;
        }
        rows.push_back(order[next++]);
      }
    }
    // Owned (not a view of `rows`): backward, after this returns, may read the index.
    torch::Tensor index = torch::tensor(rows, torch::kInt64);
    auto count = static_cast<int64_t>(rows.size());
    torch::Tensor loss = batchLoss(index);
    return StepLoss{loss, {}, static_cast<double>(count), count};
  });
  return trainer.epochLosses();
}

/// Trains `net` on `train` and scores `test` (see the file comment).
RunOutput trainAndScore(FinetuneNet& net, const SampleImages& images, const Targets& targets,
                        const std::vector<int64_t>& train, const std::vector<int64_t>& test,
                        const ir::EvaluateStage& stage, bool binary, uint64_t orderSeed, const RunTag& tag) {
  namespace F = torch::nn::functional;
  torch::Tensor targetValues = torch::tensor(targets.values, torch::kFloat32);
  RunOutput out;
  net->to(images.device());
  out.losses = trainEpochs(*net, train, stage, orderSeed, tag, [&](const torch::Tensor& index) {
    torch::Tensor output = net->forward(images(index));
    torch::Tensor target = toDevice(targetValues.index_select(0, index), images.device());
    return binary ? F::binary_cross_entropy_with_logits(output, target) : F::mse_loss(output, target);
  });

  net->eval();
  torch::NoGradGuard noGrad;
  AutocastScope autocast(stage.precision, images.device().type());
  std::vector<int64_t> rows = test;
  auto m = static_cast<int64_t>(rows.size());
  for (int64_t begin = 0; begin < m; begin += kEvalBatch) {
    int64_t end = std::min(m, begin + kEvalBatch);
    torch::Tensor index = torch::from_blob(rows.data() + begin, {end - begin}, torch::kInt64);
    torch::Tensor scores = net->forward(images(index)).to(torch::kCPU).to(torch::kFloat64).contiguous();
    const double* s = scores.data_ptr<double>();
    for (int64_t k = 0; k < end - begin; ++k) out.scores.push_back(s[k] * targets.scale + targets.mean);
  }
  return out;
}

/// One segmentation run's per-test-sample figures.
struct SegOutput {
  std::vector<double> dice, nsd;     ///< per test sample
  std::vector<int64_t> predicted;    ///< voxels of each predicted test mask
  std::vector<double> losses;        ///< mean training loss per epoch
};

/// The {0, 1} bytes of `n` floats thresholded at `threshold` (1 above it).
std::vector<uint8_t> maskBytes(const float* values, int64_t n, float threshold) {
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (size_t i = 0; i < out.size(); ++i) out[i] = values[i] > threshold ? 1 : 0;
  return out;
}

/// Trains the segmentation net on `train`, then segments `test` and scores every test
/// sample (see the file comment). `spacing[i]`: voxel size of sample i's grid.
SegOutput trainAndSegment(SegNet& net, const SampleImages& images, const torch::Tensor& masks,
                          const std::vector<int64_t>& train, const std::vector<int64_t>& test,
                          const std::vector<std::array<double, 3>>& spacing, const ir::Shape3& shape,
                          const ir::EvaluateStage& stage, uint64_t orderSeed, const RunTag& tag) {
  SegOutput out;
  net->to(images.device());
  out.losses = trainEpochs(*net, train, stage, orderSeed, tag, [&](const torch::Tensor& index) {
    return segmentationLoss(net->forward(images(index)),
                            toDevice(masks.index_select(0, index), images.device()));
  });

  net->eval();
  torch::NoGradGuard noGrad;
  AutocastScope autocast(stage.precision, images.device().type());
  std::vector<int64_t> rows = test;
  auto m = static_cast<int64_t>(rows.size());
  out.dice.resize(rows.size());
  out.nsd.resize(rows.size());
  out.predicted.resize(rows.size());
  const int64_t voxels = shape[0] * shape[1] * shape[2];
  torch::Tensor truthTensor = masks.contiguous();
  const float* truthData = truthTensor.data_ptr<float>();
  for (int64_t begin = 0; begin < m; begin += kEvalBatch) {
    int64_t end = std::min(m, begin + kEvalBatch);
    torch::Tensor index = torch::from_blob(rows.data() + begin, {end - begin}, torch::kInt64);
    torch::Tensor logits = net->forward(images(index)).to(torch::kCPU, torch::kFloat).contiguous();
    const float* logitData = logits.data_ptr<float>();
    // Scoring is torch-free and per sample: in parallel, each result in its own slot.
    at::parallel_for(begin, end, 1, [&](int64_t from, int64_t to) {
      for (int64_t k = from; k < to; ++k) {
        auto slot = static_cast<size_t>(k);
        int64_t row = rows[slot];
        std::vector<uint8_t> predicted = maskBytes(logitData + (k - begin) * voxels, voxels, 0.0f);
        std::vector<uint8_t> truth = maskBytes(truthData + row * voxels, voxels, 0.5f);
        out.dice[slot] = dice(predicted, truth);
        out.nsd[slot] = normalizedSurfaceDice(predicted, truth, shape, spacing[static_cast<size_t>(row)],
                                              stage.nsdToleranceMm);
        out.predicted[slot] = std::count(predicted.begin(), predicted.end(), uint8_t{1});
      }
    });
  }
  return out;
}

/// What both heads need before their repeats: the checked stage, the pretrained
/// encoder, the preprocessed data set (with masks for segmentation), labels and split.
struct Prepared {
  EncoderModule pretrained;
  Dataset data;
  Labels labels;
  Split split;
  ir::Encoder config;         ///< the fine-tuned encoder: every channel of the task
};

/// `stage`'s data lose the samples the loader skips.
Prepared prepare(ir::EvaluateStage& stage, const StageContext& ctx, bool binary, bool segmentation) {
  std::filesystem::path encoderPath = checkEvaluate(stage, ctx, binary);
  int threads = setThreads(ctx.threads);

  Prepared p;
  p.pretrained = makeEncoder(stage.encoder);
  loadJudgedEncoder(*p.pretrained, encoderPath, stage.initWeights, "evaluation '" + stage.name + "'");
  LoadOptions load = loadOptions(ctx, threads);
  load.masks = segmentation;  // masks stay in memory; the images stream when they must
  p.data = buildDataset(stage.data, withoutRandomOps(stage.pipeline), stage.encoder.totalStride(), load);
  reportData(p.data, ctx);
  p.labels = labelsOf(stage, p.data, binary);
  p.split = splitSubjects(stage, p.labels, binary);
  p.config = stage.encoder;
  p.config.setInChannels(p.data.channels);
  return p;
}

/// Loads the pretrained weights into `encoder` (all but a re-initialised stem); reports
/// the re-initialisation once (repeat 0).
std::vector<std::string> loadPretrained(EncoderModule& encoder, Prepared& p, const ir::EvaluateStage& stage,
                                        const StageContext& ctx, int64_t repeat) {
  std::vector<std::string> reinitialised = copyMatchingParameters(encoder, p.pretrained, stage.stem);
  const bool differs = p.data.channels != stage.encoder.inChannels();
  if (repeat == 0 && differs && ctx.progress) {
    auto channels = [](int64_t n) { return std::to_string(n) + (n == 1 ? " channel" : " channels"); };
    const char* stem = stage.encoder.kind == ir::EncoderKind::Vit ? "patch embedding" : "first convolution";
    ctx.progress("the task has " + channels(p.data.channels) + ", the pretrained encoder takes " +
                 channels(stage.encoder.inChannels()) + ": " +
                 (reinitialised.empty() ? std::string("its ") + stem + " tiled over the channels (stem = repeat)"
                                        : std::string(stem) + " re-initialised (" + reinitialised.front() + ")"));
  }
  return reinitialised;
}

/// What every fine-tuning's predictions.json starts with: the protocol and its settings.
nlohmann::json predictionsHeader(const ir::EvaluateStage& stage, const Prepared& p,
                                 const std::vector<std::string>& reinitialised, const char* kind) {
  return {{"protocol", "finetune"},
          {"label", stage.label},
          {"kind", kind},
          {"channels", p.data.channels},
          {"reinitialised", reinitialised},
          {"stem", std::string(ir::toString(stage.stem))},
          {"epochs", stage.epochs},
          {"lr", stage.lr},
          {"batch", batchSize(stage, stage.shots)},
          {"batches_per_epoch", stage.batches},
          {"clip", stage.gradClip}};
}

double mean(const std::vector<double>& v) { return meanStd(v).mean; }

/// Keeps repeat `repeat`'s fine-tuned network as modelFile(repeat) in the stage directory.
void keepModel(torch::nn::Module& net, const StageContext& ctx, int64_t repeat, const char* kind,
               const Targets* targets) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : net.named_parameters()) tensors.emplace_back(p.key(), p.value().detach().to(torch::kCPU, torch::kFloat));
  std::map<std::string, std::string> metadata = {{"format", "gyrus-finetuned"}, {"kind", kind},
                                                 {"repeat", std::to_string(repeat)}};
  if (targets != nullptr) {
    char number[64];
    std::snprintf(number, sizeof number, "%.17g", targets->mean);
    metadata["target_mean"] = number;
    std::snprintf(number, sizeof number, "%.17g", targets->scale);
    metadata["target_scale"] = number;
  }
  saveSafetensors(ctx.dir / modelFile(repeat), tensors, metadata);
}

/// Writes model.json: what the kept models of modelFile(0 .. repeats - 1) are.
void writeModelJson(const ir::EvaluateStage& stage, const StageContext& ctx, const Prepared& p, const char* kind,
                    const nlohmann::json& targets) {
  nlohmann::json files = nlohmann::json::array();
  for (int64_t r = 0; r < stage.repeats; ++r) files.push_back(modelFile(r));
  std::vector<std::string> channels;
  if (stage.data.kind == ir::DataKind::Folder && stage.data.folder.layout == ir::FolderData::Layout::Fomo25)
    channels = stage.data.folder.channels;
  nlohmann::json model = {{"format", "gyrus-finetuned"},
                          {"version", 1},
                          {"kind", kind},
                          {"label", stage.label},
                          {"channels", channels},
                          {"in_channels", p.data.channels},
                          {"patch", {p.data.shape[0], p.data.shape[1], p.data.shape[2]}},
                          {"output", kind == std::string("binary") ? "logit; the probability is its sigmoid"
                                     : kind == std::string("mask")  ? "one logit per voxel"
                                                                    : "standardised value; value = output * scale + mean"},
                          {"repeats", stage.repeats},
                          {"files", files}};
  if (!targets.is_null()) model["targets"] = targets;
  writeAtomically(ctx.dir / kModelFile, [&](const std::string& tmp) {
    std::ofstream f(tmp);
    f << model.dump(2) << "\n";
    if (!f) throw UserError("cannot write " + tmp);
  });
}

/// Segmentation fine-tuning (LabelKind::Mask; see the file comment).
StageResult finetuneSegmentation(const ir::EvaluateStage& given, const StageContext& ctx) {
  ir::EvaluateStage stage = given;
  Prepared p = prepare(stage, ctx, /*binary=*/false, /*segmentation=*/true);
  Trainer::resetHistory(ctx.dir / kHistoryFile, 0);  // nothing is resumed: a rerun starts over
  const SampleImages images(p.data, stageDevice(ctx));
  warnPrecision(stage.precision, images.device(), ctx);
  const std::vector<int64_t>& test = p.split.test;
  // The voxel size of each sample's grid: that of its first channel after the pipeline.
  std::vector<std::array<double, 3>> spacing;
  for (int64_t i = 0; i < p.data.samples; ++i) spacing.push_back(p.data.spacing[static_cast<size_t>(i * p.data.channels)]);
  std::vector<int64_t> maskVoxels;
  for (int64_t i : test) maskVoxels.push_back(p.data.masks[i].sum().item<int64_t>());

  std::vector<double> dices, nsds, dicesScratch, nsdsScratch;
  std::vector<std::vector<double>> subjectDice, subjectNsd;  // per repeat, per test subject
  std::vector<std::string> reinitialised;
  nlohmann::json repeatsJson = nlohmann::json::array();
  for (int64_t r = 0; r < stage.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> train = drawShots(stage, p.labels, p.split, /*binary=*/false, r);
    uint64_t initSeed = deriveSeed(stage.seed, tag("finetune init") + static_cast<uint64_t>(r));
    uint64_t orderSeed = deriveSeed(stage.seed, tag("finetune order") + static_cast<uint64_t>(r));

    torch::manual_seed(initSeed);
    SegNet net(p.config);
    reinitialised = loadPretrained(net->encoder, p, stage, ctx, r);
    SegOutput tuned = trainAndSegment(net, images, p.data.masks, train, test, spacing, p.data.shape, stage, orderSeed,
                                      {&ctx, r, stage.repeats, "pretrained"});
    keepModel(*net, ctx, r, "mask", nullptr);

    torch::manual_seed(initSeed);
    SegNet scratchNet(p.config);
    SegOutput scratch = trainAndSegment(scratchNet, images, p.data.masks, train, test, spacing, p.data.shape, stage,
                                        orderSeed, {&ctx, r, stage.repeats, "scratch"});

    subjectDice.push_back(tuned.dice);
    subjectNsd.push_back(tuned.nsd);
    dices.push_back(mean(tuned.dice));
    nsds.push_back(mean(tuned.nsd));
    dicesScratch.push_back(mean(scratch.dice));
    nsdsScratch.push_back(mean(scratch.nsd));
    repeatsJson.push_back({{"repeat", r},
                           {"train", train},
                           {"test", test},
                           {"dice", tuned.dice},
                           {"nsd", tuned.nsd},
                           {"dice_scratch", scratch.dice},
                           {"nsd_scratch", scratch.nsd},
                           {"mask_voxels", maskVoxels},
                           {"predicted_voxels", tuned.predicted},
                           {"predicted_voxels_scratch", scratch.predicted},
                           {"loss", tuned.losses},
                           {"loss_scratch", scratch.losses}});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char line[192];
    std::snprintf(line, sizeof line, "repeat %lld/%lld  dice %.4f  nsd %.4f  (from scratch dice %.4f  nsd %.4f)  %.1f s",
                  static_cast<long long>(r + 1), static_cast<long long>(stage.repeats), dices.back(), nsds.back(),
                  dicesScratch.back(), nsdsScratch.back(), seconds);
    if (ctx.progress) ctx.progress(line);
  }

  StageResult result;
  MeanStd d = meanStd(dices), n = meanStd(nsds);
  // 95 % intervals over the test subjects, as RepeatFigures: a percentile bootstrap of the
  // repeats' mean, the same draw of subjects for every repeat.
  auto interval = [&](const std::vector<std::vector<double>>& perRepeat) {
    return percentileBootstrap(test.size(), RepeatFigures::kCiResamples, RepeatFigures::kCiSeed,
                               [&](std::span<const size_t> idx) {
                                 double sum = 0;
                                 for (const std::vector<double>& v : perRepeat) {
                                   double s = 0;
                                   for (size_t i : idx) s += v[i];
                                   sum += s / static_cast<double>(idx.size());
                                 }
                                 return sum / static_cast<double>(perRepeat.size());
                               });
  };
  const Interval dCi = interval(subjectDice), nCi = interval(subjectNsd);
  result.metrics = {{"dice", d.mean},
                    {"dice_std", d.std},
                    {"dice_ci_low", dCi.low},
                    {"dice_ci_high", dCi.high},
                    {"nsd", n.mean},
                    {"nsd_std", n.std},
                    {"nsd_ci_low", nCi.low},
                    {"nsd_ci_high", nCi.high},
                    {"dice_scratch", mean(dicesScratch)},
                    {"nsd_scratch", mean(nsdsScratch)}};
  nlohmann::json header = predictionsHeader(stage, p, reinitialised, "mask");
  header["tolerance_mm"] = stage.nsdToleranceMm;
  writePredictions(stage, ctx, header, "scratch", repeatsJson);
  writeModelJson(stage, ctx, p, "mask", nullptr);
  finishData(p.data, ctx, result);
  return result;
}

}  // namespace

SegDecoderImpl::SegDecoderImpl(const ir::UNetEncoder& cfg) {
  up_.resize(static_cast<size_t>(std::max<int64_t>(0, cfg.stages - 1)), {ConvBlock(nullptr), ConvBlock(nullptr)});
  for (int64_t s = cfg.stages - 2; s >= 0; --s) {
    auto level = register_module("up" + std::to_string(s), std::make_shared<nn::Module>());
    int64_t w = cfg.widthOf(s);
    up_[static_cast<size_t>(s)] = {level->register_module("conv0", ConvBlock(cfg.widthOf(s + 1) + w, w, 1)),
                                   level->register_module("conv1", ConvBlock(w, w, 1))};
  }
  head_ = register_module("head", nn::Conv3d(nn::Conv3dOptions(cfg.widthOf(0), 1, 1).bias(true)));
}

torch::Tensor SegDecoderImpl::forward(const std::vector<torch::Tensor>& features) {
  namespace F = torch::nn::functional;
  torch::Tensor x = features.back();
  for (auto s = static_cast<int64_t>(up_.size()) - 1; s >= 0; --s) {
    const torch::Tensor& skip = features[static_cast<size_t>(s)];
    auto options = F::InterpolateFuncOptions()
                       .size(std::vector<int64_t>{skip.size(2), skip.size(3), skip.size(4)})
                       .mode(torch::kTrilinear)
                       .align_corners(false);
    x = torch::cat({F::interpolate(x, options), skip}, 1);
    auto& blocks = up_[static_cast<size_t>(s)];
    x = blocks[1]->forward(blocks[0]->forward(x));
  }
  return pointwiseConv3d(x, head_->weight, head_->bias);
}

SegNetImpl::SegNetImpl(const ir::Encoder& config) {
  encoder = register_module("encoder", makeEncoder(config));
  if (config.kind == ir::EncoderKind::Vit)
    patchDecoder = register_module("decoder", std::make_shared<PatchDecoderImpl>(config.vit.dim, config.vit.patch, 1));
  else
    decoder = register_module("decoder", SegDecoder(config.unet));
}

torch::Tensor SegNetImpl::forward(const torch::Tensor& x) {
  return patchDecoder ? patchDecoder->forward(encoder->forward(x).back()) : decoder->forward(encoder->forward(x));
}

torch::Tensor segmentationLoss(const torch::Tensor& logits, const torch::Tensor& target) {
  namespace F = torch::nn::functional;
  torch::Tensor bce = F::binary_cross_entropy_with_logits(logits, target);
  torch::Tensor p = torch::sigmoid(logits).flatten(1), y = target.flatten(1);
  torch::Tensor softDice = (2.0 * (p * y).sum(1) + 1.0) / (p.sum(1) + y.sum(1) + 1.0);
  return bce + (1.0 - softDice).mean();
}

FinetuneNetImpl::FinetuneNetImpl(const ir::Encoder& config) {
  encoder = register_module("encoder", makeEncoder(config));
  head = register_module("head", nn::Linear(2 * config.bottleneckWidth(), 1));
}

torch::Tensor FinetuneNetImpl::forward(const torch::Tensor& x) {
  torch::Tensor deepest = encoder->forward(x).back();
  return head->forward(torch::cat({deepest.mean({2, 3, 4}), deepest.amax({2, 3, 4})}, 1)).squeeze(1);
}

torch::Tensor inflateStem(const torch::Tensor& weight, int64_t channels) {
  const int64_t c = weight.size(1);
  if (channels >= c) {
    std::vector<int64_t> reps(static_cast<size_t>(weight.dim()), 1);
    reps[1] = (channels + c - 1) / c;
    return weight.repeat(reps).narrow(1, 0, channels) * (static_cast<double>(c) / static_cast<double>(channels));
  }
  torch::Tensor out = torch::zeros_like(weight.narrow(1, 0, channels));
  for (int64_t k = 0; k < c; ++k) out.select(1, k % channels).add_(weight.select(1, k));
  return out;
}

std::vector<std::string> copyMatchingParameters(EncoderModule& target, EncoderModule& pretrained, ir::StemInit stem) {
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
    } else if (s != nullptr && p.key() == target->stemWeight) {
      if (stem == ir::StemInit::Repeat)
        p.value().copy_(inflateStem(*s, p.value().size(1)));
      else
        dropped.push_back(p.key());
    } else {
      throw std::invalid_argument("copyMatchingParameters: '" + p.key() + "' differs beyond the input channels");
    }
  }
  return dropped;
}

StageResult finetune(const ir::EvaluateStage& given, const StageContext& ctx) {
  if (given.labelKind == ir::LabelKind::Mask) return finetuneSegmentation(given, ctx);
  ir::EvaluateStage stage = given;  // the loader drops skipped samples from its data
  bool binary = stage.labelKind == ir::LabelKind::Binary;
  Prepared p = prepare(stage, ctx, binary, /*segmentation=*/false);
  Trainer::resetHistory(ctx.dir / kHistoryFile, 0);  // nothing is resumed: a rerun starts over
  const SampleImages images(p.data, stageDevice(ctx));
  warnPrecision(stage.precision, images.device(), ctx);
  const Labels& labels = p.labels;
  const Split& split = p.split;

  RepeatFigures figures(labels, split.test, binary, "scratch", "from scratch");
  std::vector<std::string> reinitialised;
  nlohmann::json repeatsJson = nlohmann::json::array();
  nlohmann::json targetsJson = binary ? nlohmann::json() : nlohmann::json::array();
  for (int64_t r = 0; r < stage.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> train = drawShots(stage, labels, split, binary, r);
    Targets targets = targetsFor(labels, train, binary);
    uint64_t initSeed = deriveSeed(stage.seed, tag("finetune init") + static_cast<uint64_t>(r));
    uint64_t orderSeed = deriveSeed(stage.seed, tag("finetune order") + static_cast<uint64_t>(r));

    torch::manual_seed(initSeed);
    FinetuneNet net(p.config);
    reinitialised = loadPretrained(net->encoder, p, stage, ctx, r);
    RunOutput tuned =
        trainAndScore(net, images, targets, train, split.test, stage, binary, orderSeed, {&ctx, r, stage.repeats, "pretrained"});
    keepModel(*net, ctx, r, binary ? "binary" : "continuous", binary ? nullptr : &targets);
    if (!binary) targetsJson.push_back({{"repeat", r}, {"mean", targets.mean}, {"scale", targets.scale}});

    torch::manual_seed(initSeed);
    FinetuneNet scratchNet(p.config);
    RunOutput scratch = trainAndScore(scratchNet, images, targets, train, split.test, stage, binary, orderSeed,
                                      {&ctx, r, stage.repeats, "scratch"});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string line = figures.add(r, stage.repeats, tuned.scores, scratch.scores, seconds);
    if (ctx.progress) ctx.progress(line);
    repeatsJson.push_back({{"repeat", r},
                           {"train", train},
                           {"test", split.test},
                           {"scores", tuned.scores},
                           {"scores_scratch", scratch.scores},
                           {"loss", tuned.losses},
                           {"loss_scratch", scratch.losses},
                           {"labels", figures.labels()}});
  }

  StageResult result;
  result.metrics = figures.metrics();
  writePredictions(stage, ctx, predictionsHeader(stage, p, reinitialised, binary ? "binary" : "continuous"),
                   "scratch", repeatsJson);
  writeModelJson(stage, ctx, p, binary ? "binary" : "continuous", targetsJson);
  finishData(p.data, ctx, result);
  return result;
}

std::string modelFile(int64_t repeat) { return "model_r" + std::to_string(repeat) + ".safetensors"; }

}  // namespace gyrus::rt
