// Few-shot evaluation (see Stages.h): the linear probe, and the split and draws that
// fine-tuning (Finetune.cpp) shares with it (FewShot.h). A stage with
// protocol = finetune goes to `finetune`.
//
// Features: the frozen encoder (eval mode, no grad) runs on each preprocessed subject;
// every stage's output is pooled over space by its global average and its global
// maximum, and the per-stage vectors are concatenated (2 x the sum of stage widths
// features). Pooling all stages, not just the bottleneck, keeps the fine-resolution
// evidence a small lesion leaves in the early stages; the maximum keeps a focal
// response that an average over the whole head dilutes. The same protocol runs on a randomly initialised encoder of the same
// architecture (torch::manual_seed(stage.seed)) as a reference point.
//
// Data: synthetic subjects (labels `lesion`, binary, and `age`, continuous) or a NIfTI
// folder data set (label `label`, FolderSample::label; binary labels must be 0 or 1).
// A sample with several channels (FOMO25 tasks) is encoded channel by channel by the
// single-channel encoder, and the per-channel features are concatenated in channel
// order (channels x 2 x the sum of stage widths features).
//
// Pipeline: the stage's pipeline without its random operations (Flip, Noise, Gamma):
// features come from the clean, deterministic images. The front end already strips
// them from evaluation pipelines; dropping them here too keeps evaluation
// deterministic whatever the IR holds.
//
// Splits: with EvaluateStage::testSite, the test set is every sample of that site and
// the pool every other sample (out-of-domain). Otherwise
// test = testFraction of the subjects (stratified by class for binary labels),
// drawn with Rng(deriveSeed(seed, tag("split"))); repeat r draws `shots` training
// subjects from the rest with Rng(deriveSeed(seed, tag("repeat") + r)), stratified by
// class with at least one of each for binary labels.
#include <ATen/cuda/CUDAContext.h>
#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include "Errors.h"
#include "FewShot.h"
#include "Metrics.h"
#include "Models.h"
#include "Preprocess.h"
#include "Probe.h"
#include "Scoring.h"
#include "Stages.h"
#include "Trainer.h"
#include "WeightsIo.h"

namespace gyrus::rt {

void checkLabel(const ir::EvaluateStage& stage, bool binary) {
  const bool mask = stage.labelKind == ir::LabelKind::Mask;
  if (mask && stage.protocol != ir::Protocol::Finetune)
    throw UserError("segmentation masks are evaluated by fine-tuning (protocol = finetune): the probe predicts one "
                    "number per sample");
  if (mask && stage.data.kind != ir::DataKind::Folder)
    throw UserError("the synthetic data set has no segmentation masks: segmentation needs a fomo25(..., label = "
                    "segmentation) folder");
  if (stage.data.kind == ir::DataKind::Synthetic) {
    if (binary && stage.label != "lesion")
      throw UserError("unknown binary label '" + stage.label + "': the synthetic data set has 'lesion'");
    if (!binary && stage.label != "age")
      throw UserError("unknown continuous label '" + stage.label + "': the synthetic data set has 'age'");
    return;
  }
  const ir::FolderData& folder = stage.data.folder;
  const std::string labelFile = mask ? "seg.nii.gz" : "label.txt";
  if (stage.label != folder.labelName)
    throw UserError("unknown label '" + stage.label + "': the data set has '" + folder.labelName + "'" +
                    (folder.layout == ir::FolderData::Layout::Glob
                         ? std::string(" (a column of its table)")
                         : " (labels/<subject>/<session>/" + labelFile + ")"));
  if (!folder.hasLabel)
    throw UserError("the data set at '" + folder.root + "' has no labels: evaluation needs labels/<subject>/<session>/" +
                    labelFile + " for every sample");
  if (mask) {
    if (folder.labelKind != ir::LabelKind::Mask)
      throw UserError("the data set at '" + folder.root + "' has one number per sample, not segmentation masks: "
                      "declare it with label = segmentation and labels/<subject>/<session>/seg.nii.gz");
    for (const ir::FolderSample& sample : folder.samples)
      if (sample.mask.empty())
        throw UserError("sample " + sampleName(sample) + " has no segmentation mask: segmentation needs labels/" +
                        sampleName(sample) + "/seg.nii.gz for every sample");
    return;
  }
  if (binary)
    for (const ir::FolderSample& sample : folder.samples)
      if (sample.label != 0.0 && sample.label != 1.0) {
        std::ostringstream msg;
        msg << "sample " << sampleName(sample) << " has the label " << sample.label
            << ", but a binary label must be 0 or 1: fix its label.txt, or evaluate a continuous label";
        throw UserError(msg.str());
      }
}

Labels labelsOf(const ir::EvaluateStage& stage, const Dataset& data, bool binary) {
  Labels l;
  l.column = stage.label;
  l.synthetic = stage.data.kind == ir::DataKind::Synthetic;
  if (l.synthetic) {
    if (binary) {
      l.classes = data.lesion;
      l.values.assign(data.lesion.begin(), data.lesion.end());
    } else {
      l.values = data.age;
    }
  } else {
    l.values = data.label;
    if (binary)
      for (double v : l.values) l.classes.push_back(v == 1.0 ? 1 : 0);
  }
  return l;
}

namespace {

/// Pooled features of every sample: [N, channels x 2 x sum of stage widths], in
/// double. The rows of `data` are the channels of each sample in turn; a sample's
/// per-channel features are concatenated in channel order. A streamed data set is read
/// a batch of rows at a time.
Matrix extractFeatures(EncoderModule& encoder, const Dataset& data, const torch::Device& device,
                       ir::Precision precision) {
  constexpr int64_t kBatch = 8;
  encoder->to(device);
  encoder->eval();
  torch::NoGradGuard noGrad;
  AutocastScope autocast(precision, device.type());
  const int64_t channels = data.channels;
  const int64_t n = data.samples * channels;
  std::vector<torch::Tensor> rows;
  for (int64_t begin = 0; begin < n; begin += kBatch) {
    const int64_t end = std::min(n, begin + kBatch);
    torch::Tensor batch;
    if (data.streamed()) {
      std::vector<int64_t> index(static_cast<size_t>(end - begin));
      std::iota(index.begin(), index.end(), begin);
      batch = data.rows(index);
    } else {
      batch = data.images.slice(0, begin, end);
    }
    auto maps = encoder->forward(toDevice(batch, device));
    std::vector<torch::Tensor> pooled;
    for (auto& m : maps) {
      pooled.push_back(m.mean({2, 3, 4}));
      pooled.push_back(m.amax({2, 3, 4}));
    }
    rows.push_back(torch::cat(pooled, 1).to(torch::kCPU, torch::kFloat));
  }
  torch::Tensor all = torch::cat(rows, 0).to(torch::kFloat64).reshape({n / channels, -1}).contiguous();
  Matrix x(all.size(0), all.size(1));
  std::copy(all.data_ptr<double>(), all.data_ptr<double>() + all.numel(), x.data.begin());
  return x;
}

/// Takes `count` random entries of `pool` (without replacement); returns them sorted.
std::vector<int64_t> drawFrom(std::vector<int64_t> pool, int64_t count, Rng& rng) {
  rng.shuffle(pool);
  pool.resize(static_cast<size_t>(count));
  std::sort(pool.begin(), pool.end());
  return pool;
}

}  // namespace

Split splitSubjects(const ir::EvaluateStage& stage, const Labels& labels, bool binary) {
  Rng rng(deriveSeed(stage.seed, tag("split")));
  Split split;
  if (!stage.testSite.empty()) {
    // Out-of-domain: every sample of the test site is held out; the rest is the pool.
    const auto& samples = stage.data.folder.samples;
    if (stage.data.kind != ir::DataKind::Folder || samples.size() != labels.values.size())
      throw UserError("test = site(\"" + stage.testSite + "\") needs a folder data set with sites");
    for (size_t i = 0; i < samples.size(); ++i)
      (samples[i].site == stage.testSite ? split.test : split.pool).push_back(static_cast<int64_t>(i));
    if (split.test.empty() || split.pool.empty())
      throw UserError("site '" + stage.testSite + "' leaves " + std::to_string(split.test.size()) + " test and " +
                      std::to_string(split.pool.size()) + " training samples; both must be non-empty");
    if (binary) {
      size_t positives = 0;
      for (int64_t i : split.test) positives += labels.classes[static_cast<size_t>(i)] == 1 ? 1 : 0;
      if (positives == 0 || positives == split.test.size())
        throw UserError("every test sample of site '" + stage.testSite + "' has " + labels.column + " = " +
                        (positives == 0 ? "0" : "1") + ": AUROC needs both classes");
    }
    return split;
  }
  auto take = [&](std::vector<int64_t> members, const std::string& what) {
    rng.shuffle(members);
    auto m = static_cast<int64_t>(members.size());
    if (m < 2) {
      std::ostringstream msg;
      if (labels.synthetic)
        msg << "the data set has " << m << " subject(s) " << what
            << "; need at least 2 (one for testing, one for training): increase subjects"
            << (binary ? " or move lesionRate away from 0/1" : "");
      else
        msg << "the data set has " << m << " sample(s) " << what
            << "; need at least 2 (one for testing, one for training): add labelled samples";
      throw UserError(msg.str());
    }
    auto nTest = static_cast<int64_t>(std::llround(stage.testFraction * static_cast<double>(m)));
    nTest = std::clamp<int64_t>(nTest, 1, m - 1);
    split.test.insert(split.test.end(), members.begin(), members.begin() + nTest);
    split.pool.insert(split.pool.end(), members.begin() + nTest, members.end());
  };
  auto n = static_cast<int64_t>(labels.values.size());
  if (binary) {
    std::vector<int64_t> cls[2];
    for (int64_t i = 0; i < n; ++i) cls[labels.classes[static_cast<size_t>(i)]].push_back(i);
    take(cls[0], "with " + labels.column + " = 0");
    take(cls[1], "with " + labels.column + " = 1");
  } else {
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    take(all, "in total");
  }
  std::sort(split.test.begin(), split.test.end());
  std::sort(split.pool.begin(), split.pool.end());
  return split;
}

std::vector<int64_t> drawShots(const ir::EvaluateStage& stage, const Labels& labels, const Split& split, bool binary,
                               int64_t repeat) {
  Rng rng(deriveSeed(stage.seed, tag("repeat") + static_cast<uint64_t>(repeat)));
  auto poolSize = static_cast<int64_t>(split.pool.size());
  if (stage.shots > poolSize) {
    std::ostringstream msg;
    msg << "shots = " << stage.shots << " but the training pool has only " << poolSize << " " << labels.units()
        << " (" << labels.values.size() << " " << labels.units() << ", testFraction " << stage.testFraction
        << "): lower shots, lower testFraction, or " << (labels.synthetic ? "increase subjects" : "add samples");
    throw UserError(msg.str());
  }
  if (!binary) return drawFrom(split.pool, stage.shots, rng);
  std::vector<int64_t> cls[2];
  for (int64_t i : split.pool) cls[labels.classes[static_cast<size_t>(i)]].push_back(i);
  auto pos = static_cast<int64_t>(cls[1].size()), neg = static_cast<int64_t>(cls[0].size());
  auto nPos = static_cast<int64_t>(
      std::llround(static_cast<double>(stage.shots) * static_cast<double>(pos) / static_cast<double>(poolSize)));
  nPos = std::clamp<int64_t>(nPos, 1, stage.shots - 1);
  int64_t nNeg = stage.shots - nPos;
  if (nPos > pos || nNeg > neg) {
    std::ostringstream msg;
    msg << "cannot draw " << stage.shots << " shots with " << nPos << " positive and " << nNeg
        << " negative " << labels.units() << ": the training pool has " << pos << " positive and " << neg
        << ": lower shots or " << (labels.synthetic ? "increase subjects" : "add samples");
    throw UserError(msg.str());
  }
  std::vector<int64_t> shots = drawFrom(cls[1], nPos, rng);
  std::vector<int64_t> negatives = drawFrom(cls[0], nNeg, rng);
  shots.insert(shots.end(), negatives.begin(), negatives.end());
  std::sort(shots.begin(), shots.end());
  return shots;
}

std::filesystem::path checkEvaluate(const ir::EvaluateStage& stage, const StageContext& ctx, bool binary) {
  checkLabel(stage, binary);
  expectIr(ir::verify(stage));  // what the checker guarantees is asserted, not re-validated
  if (!stage.initWeights.empty()) return {};  // the weights file is judged (WeightsIo.h)
  std::filesystem::path encoderPath = ctx.pretrainDir / kEncoderFile;
  if (ctx.pretrainDir.empty() || !std::filesystem::exists(encoderPath))
    throw UserError("no trained encoder at '" + encoderPath.string() + "': run the pretrain stage '" + stage.pretrain +
                    "' to completion first");
  return encoderPath;
}

RepeatFigures::RepeatFigures(const Labels& labels, const std::vector<int64_t>& test, bool binary,
                             std::string reference, std::string words)
    : binary_(binary), reference_(std::move(reference)), words_(std::move(words)) {
  for (int64_t i : test) {
    if (binary) classes_.push_back(labels.classes[static_cast<size_t>(i)]);
    values_.push_back(labels.values[static_cast<size_t>(i)]);
  }
}

std::string RepeatFigures::add(int64_t repeat, int64_t repeats, const std::vector<double>& scores,
                               const std::vector<double>& referenceScores, double seconds) {
  scores_.push_back(scores);
  char line[192];
  if (binary_) {
    primary_.push_back(auroc(scores, classes_));
    primaryReference_.push_back(auroc(referenceScores, classes_));
    std::snprintf(line, sizeof line, "repeat %lld/%lld  auroc %.4f  (%s %.4f)  %.2f s", static_cast<long long>(repeat + 1),
                  static_cast<long long>(repeats), primary_.back(), words_.c_str(), primaryReference_.back(), seconds);
  } else {
    primary_.push_back(meanAbsoluteError(scores, values_));
    primaryReference_.push_back(meanAbsoluteError(referenceScores, values_));
    pearson_.push_back(pearsonR(scores, values_));
    pearsonReference_.push_back(pearsonR(referenceScores, values_));
    std::snprintf(line, sizeof line, "repeat %lld/%lld  mae %.3f  r %.4f  (%s mae %.3f  r %.4f)  %.2f s",
                  static_cast<long long>(repeat + 1), static_cast<long long>(repeats), primary_.back(), pearson_.back(),
                  words_.c_str(), primaryReference_.back(), pearsonReference_.back(), seconds);
  }
  return line;
}

nlohmann::json RepeatFigures::labels() const { return binary_ ? nlohmann::json(classes_) : nlohmann::json(values_); }

Interval RepeatFigures::interval(const std::function<double(const std::vector<double>&, std::span<const size_t>)>& metric) const {
  return percentileBootstrap(values_.size(), kCiResamples, kCiSeed, [&](std::span<const size_t> idx) {
    double sum = 0;
    for (const std::vector<double>& s : scores_) sum += metric(s, idx);
    return sum / static_cast<double>(scores_.size());
  });
}

std::vector<Metric> RepeatFigures::metrics() const {
  MeanStd m = meanStd(primary_);
  auto pick = [](const auto& v, std::span<const size_t> idx) {
    std::vector<std::decay_t<decltype(v[0])>> out;
    for (size_t i : idx) out.push_back(v[i]);
    return out;
  };
  if (binary_) {
    Interval ci = interval([&](const std::vector<double>& s, std::span<const size_t> idx) {
      return auroc(pick(s, idx), pick(classes_, idx));
    });
    return {{"auroc", m.mean},         {"auroc_std", m.std},
            {"auroc_ci_low", ci.low},  {"auroc_ci_high", ci.high},
            {"auroc_" + reference_, meanStd(primaryReference_).mean}};
  }
  MeanStd r = meanStd(pearson_);
  Interval maeCi = interval([&](const std::vector<double>& s, std::span<const size_t> idx) {
    return meanAbsoluteError(pick(s, idx), pick(values_, idx));
  });
  Interval rCi = interval([&](const std::vector<double>& s, std::span<const size_t> idx) {
    return pearsonR(pick(s, idx), pick(values_, idx));
  });
  return {{"mae", m.mean},
          {"mae_std", m.std},
          {"mae_ci_low", maeCi.low},
          {"mae_ci_high", maeCi.high},
          {"pearson_r", r.mean},
          {"pearson_r_std", r.std},
          {"pearson_r_ci_low", rCi.low},
          {"pearson_r_ci_high", rCi.high},
          {"mae_" + reference_, meanStd(primaryReference_).mean},
          {"pearson_r_" + reference_, meanStd(pearsonReference_).mean}};
}

namespace {

/// Probe scores of the test subjects after fitting on the training draw; `alpha` is the
/// ridge's L2 strength for a continuous label (0: chosen by leave-one-out, and the
/// choice is written back).
std::vector<double> probeScores(const Matrix& features, const Labels& labels, const std::vector<int64_t>& train,
                                const std::vector<int64_t>& test, bool binary, double& alpha) {
  Matrix xTrain = features.selectRows(train);
  Standardizer standardizer = Standardizer::fit(xTrain);
  xTrain = standardizer.apply(xTrain);
  Matrix xTest = standardizer.apply(features.selectRows(test));
  LinearModel model;
  if (binary) {
    std::vector<int> y;
    for (int64_t i : train) y.push_back(labels.classes[static_cast<size_t>(i)]);
    model = fitLogistic(xTrain, y);
  } else {
    std::vector<double> y;
    for (int64_t i : train) y.push_back(labels.values[static_cast<size_t>(i)]);
    if (alpha > 0) {
      model = fitRidge(xTrain, y, alpha);
    } else {
      RidgeChoice choice = fitRidgeLoo(xTrain, y, ridgeAlphaGrid());
      model = std::move(choice.model);
      alpha = choice.alpha;
    }
  }
  return model.predict(xTest);
}

}  // namespace

StageResult evaluate(const ir::EvaluateStage& given, const StageContext& ctx) {
  if (given.protocol == ir::Protocol::Finetune) return finetune(given, ctx);
  ir::EvaluateStage stage = given;  // the loader drops skipped samples from its data
  bool binary = stage.labelKind == ir::LabelKind::Binary;
  std::filesystem::path encoderPath = checkEvaluate(stage, ctx, binary);
  int threads = setThreads(ctx.threads);

  EncoderModule trained = makeEncoder(stage.encoder);
  loadJudgedEncoder(*trained, encoderPath, stage.initWeights, "evaluation '" + stage.name + "'");
  torch::manual_seed(stage.seed);
  EncoderModule random = makeEncoder(stage.encoder);

  LoadOptions load = loadOptions(ctx, threads);
  Dataset data = buildDataset(stage.data, withoutRandomOps(stage.pipeline), stage.encoder.totalStride(), load);
  reportData(data, ctx);
  Labels labels = labelsOf(stage, data, binary);
  const torch::Device device = stageDevice(ctx);
  warnPrecision(stage.precision, device, ctx);
  Matrix features = extractFeatures(trained, data, device, stage.precision);
  Matrix randomFeatures = extractFeatures(random, data, device, stage.precision);
  Split split = splitSubjects(stage, labels, binary);

  nlohmann::json repeatsJson = nlohmann::json::array();
  RepeatFigures figures(labels, split.test, binary, "random_encoder", "random encoder");
  for (int64_t r = 0; r < stage.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    std::vector<int64_t> train = drawShots(stage, labels, split, binary, r);
    double alpha = stage.ridgeAlpha, alphaRandom = stage.ridgeAlpha;
    std::vector<double> scores = probeScores(features, labels, train, split.test, binary, alpha);
    std::vector<double> scoresRandom = probeScores(randomFeatures, labels, train, split.test, binary, alphaRandom);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string line = figures.add(r, stage.repeats, scores, scoresRandom, seconds);
    if (ctx.progress) ctx.progress(line);
    repeatsJson.push_back({{"repeat", r},
                           {"train", train},
                           {"test", split.test},
                           {"scores", scores},
                           {"scores_random_encoder", scoresRandom},
                           {"labels", figures.labels()}});
    if (!binary) {
      repeatsJson.back()["alpha"] = alpha;
      repeatsJson.back()["alpha_random_encoder"] = alphaRandom;
    }
  }

  StageResult result;
  result.metrics = figures.metrics();
  writePredictions(stage, ctx,
                   {{"protocol", "probe"}, {"label", stage.label}, {"kind", binary ? "binary" : "continuous"},
                    {"features", features.cols}},
                   "random_encoder", repeatsJson);
  finishData(data, ctx, result);
  return result;
}

torch::Device stageDevice(const StageContext& ctx) {
  torch::Device device(torch::kCPU);
  if (ctx.device == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : device;
  try {
    device = torch::Device(ctx.device);
  } catch (const c10::Error&) {
    throw UserError("'" + ctx.device + "' is not a device: use cpu, cuda or cuda:N");
  }
  if (device.is_cuda() && (!torch::cuda::is_available() || device.index() >= static_cast<int>(torch::cuda::device_count())))
    throw UserError("the device '" + ctx.device + "' is not usable here: this runtime sees " +
                    std::to_string(torch::cuda::is_available() ? torch::cuda::device_count() : 0) +
                    " CUDA device(s); use cpu");
  // "cuda" is the first GPU: every caller gets a device with an index (the allocator's
  // statistics, the device's name and result.json need one).
  if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, 0);
  return device;
}

std::string deviceName(const torch::Device& device) {
  if (!device.is_cuda() || !torch::cuda::is_available()) return {};
  return at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0)->name;
}

void warnPrecision(ir::Precision precision, const torch::Device& device, const StageContext& ctx) {
  if (precision != ir::Precision::Bf16 || device.is_cuda() || !ctx.progress) return;
  ctx.progress("warning: precision = bf16 on a CPU: autocast runs convolutions in bf16, which most CPUs emulate "
               "(slower than fp32 unless the CPU has AMX or AVX512-BF16); use fp32 on a CPU, bf16 on a GPU");
}

std::string describeDevice(const torch::Device& device) {
  if (!device.is_cuda()) return "cpu";
  return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
}

void writePredictions(const ir::EvaluateStage& stage, const StageContext& ctx, nlohmann::json header,
                      const char* reference, const nlohmann::json& repeats) {
  nlohmann::json names = nlohmann::json::array();
  if (stage.data.kind == ir::DataKind::Folder) {
    for (const ir::FolderSample& s : stage.data.folder.samples) names.push_back(sampleName(s));
  } else {
    for (int64_t i = 0; i < stage.data.synthetic.subjects; ++i) names.push_back("subject_" + std::to_string(i));
  }
  header["reference"] = reference;
  header["samples"] = std::move(names);
  header["repeats"] = repeats;
  writeAtomically(ctx.dir / kPredictionsFile, [&](const std::string& temp) {
    std::ofstream f(temp);
    f << header.dump(2) << '\n';
    if (!f) throw std::runtime_error("cannot write " + temp);
  });
}

}  // namespace gyrus::rt
