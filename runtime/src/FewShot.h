// The few-shot protocol shared by the linear probe (Evaluate.cpp) and fine-tuning
// (Finetune.cpp): label checks, the labels of a data set, the stratified test split and
// the per-repeat training draws, and the checks both make before loading anything.
// Implemented in Evaluate.cpp; both protocols draw exactly the same subjects for the
// same seed, so their results line up repeat by repeat.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "Models.h"
#include "Scoring.h"
#include "gyrus/Ir.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::rt {

/// The labels of a data set: one value per sample, the classes (0/1) for binary
/// labels, and the words for messages.
struct Labels {
  std::vector<double> values;
  std::vector<int> classes;  ///< binary labels only
  std::string column;        ///< "lesion", "age" or "label"
  bool synthetic = true;
  /// "subjects" (synthetic) or "samples" (folder data).
  const char* units() const { return synthetic ? "subjects" : "samples"; }
};

/// Checks the label of `stage` against its data set before anything is loaded; throws
/// UserError for an unknown label, a folder data set without labels, or a binary label
/// other than 0 / 1 (naming the sample).
void checkLabel(const ir::EvaluateStage& stage, bool binary);

/// The labels `stage.label` of the samples of `data`.
Labels labelsOf(const ir::EvaluateStage& stage, const Dataset& data, bool binary);

/// Held-out test samples and the pool the training draws come from (both sorted).
struct Split {
  std::vector<int64_t> test;
  std::vector<int64_t> pool;
};

/// test = testFraction of the samples (stratified by class for binary labels), drawn
/// with Rng(deriveSeed(seed, tag("split"))). Throws UserError when a class (or the
/// data set) has fewer than 2 samples.
Split splitSubjects(const ir::EvaluateStage& stage, const Labels& labels, bool binary);

/// The `shots` training samples of repeat `repeat` (sorted), drawn from the pool with
/// Rng(deriveSeed(seed, tag("repeat") + repeat)), stratified by class with at least
/// one of each for binary labels. Throws UserError when the pool is too small.
std::vector<int64_t> drawShots(const ir::EvaluateStage& stage, const Labels& labels, const Split& split, bool binary,
                               int64_t repeat);

/// The figures of a few-shot evaluation, repeat by repeat, next to its reference (the
/// same probe on a randomly initialised encoder, or the same fine-tuning from scratch):
/// AUROC for binary labels, MAE and Pearson r for continuous ones.
class RepeatFigures {
 public:
  /// `labels`: the test samples' labels; `reference`: the metric suffix
  /// ("random_encoder", "scratch"); `words`: how progress lines name it.
  RepeatFigures(const Labels& labels, const std::vector<int64_t>& test, bool binary, std::string reference,
                std::string words);
  /// Scores one repeat's test predictions and its reference's; returns the progress
  /// line ("repeat 2/5  auroc 0.8125  (random encoder 0.7500)  0.02 s").
  std::string add(int64_t repeat, int64_t repeats, const std::vector<double>& scores,
                  const std::vector<double>& referenceScores, double seconds);
  /// The test labels, for predictions.json.
  nlohmann::json labels() const;
  /// Means over the repeats, each primary metric with its standard deviation across
  /// repeats and its 95 % interval over the test subjects (a percentile bootstrap of the
  /// repeats' mean, kCiResamples resamples seeded with kCiSeed, the same draw of subjects
  /// for every repeat): auroc, auroc_std, auroc_ci_low, auroc_ci_high, auroc_<reference>;
  /// or mae, mae_std, mae_ci_low, mae_ci_high, pearson_r, pearson_r_std,
  /// pearson_r_ci_low, pearson_r_ci_high, mae_<reference>, pearson_r_<reference>.
  std::vector<Metric> metrics() const;
  static constexpr int64_t kCiResamples = 1000;
  static constexpr uint64_t kCiSeed = 1;

 private:
  bool binary_;
  std::string reference_, words_;
  std::vector<int> classes_;
  std::vector<double> values_;
  std::vector<double> primary_, primaryReference_, pearson_, pearsonReference_;
  std::vector<std::vector<double>> scores_;  ///< per repeat, the test subjects' scores
  Interval interval(const std::function<double(const std::vector<double>&, std::span<const size_t>)>& metric) const;
};

/// The checks both protocols make before loading anything (label, shots, repeats,
/// testFraction, resample sizes, the pretrained encoder file); returns the path of
/// encoder.pt in ctx.pretrainDir.
std::filesystem::path checkEvaluate(const ir::EvaluateStage& stage, const StageContext& ctx, bool binary);

}  // namespace gyrus::rt
