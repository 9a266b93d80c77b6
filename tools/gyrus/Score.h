// `gyrus score` and `gyrus rank`: FOMO25's scoring of one method's predictions on one
// task, and its ranking of several methods (docs/cli.md). The driver reads NIfTI masks
// through the I/O module (libgyrus_io.so, loaded with dlopen only for the meningioma
// task) and computes the metrics with the runtime's torch-free, ITK-free core
// (gyrus_runtime_core: Metrics.h, Scoring.h), linked statically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gyrus::driver {

struct ScoreArgs {
  std::string task;        ///< infarct | meningioma | brain_age
  std::string pred;        ///< the container's output folder: sub_N.txt or sub_N.nii.gz
  std::string truth;       ///< a FOMO25 task tree's root, or its labels/ folder
  std::string method;      ///< the method's name in the result; default: the pred folder's name
  bool json = false;
  double toleranceMm = 2.0;   ///< NSD tolerance
  int64_t bootstrap = 1000;   ///< resamples for the 95 % confidence intervals (0: none)
  uint64_t seed = 1;
};

/// Returns the exit code: 0 scored (a table, or one JSON object, on stdout), 1 a
/// user error (missing or malformed prediction, wrong geometry, a bad truth tree; each
/// `error: sub_N: ...` on stderr), 2 internal error.
int runScore(const ScoreArgs& args);

/// Returns 0 with the ranking on stdout, 1 for a file that is not a score result or a
/// duplicate (method, task).
int runRank(const std::vector<std::string>& files, bool json, bool rankHd95);

/// `gyrus rank --store DIR [EVALUATION...]`: the same ranking of the finished
/// evaluations of a run store (all, or those named: names or hash prefixes) on FOMO25
/// tasks (told by their metrics: auroc, dice + nsd, mae + pearson_r). Each evaluation
/// contributes two methods: its model (the pretrain stage's name) and its reference run
/// (`<model>_scratch` or `<model>_random_encoder`). First prints each method's figures
/// per task (with the 95 % intervals the evaluation reports). Exit 1 for an unreadable
/// store, no evaluation of a FOMO25 task, or two evaluations of one model on one task.
int runRankStore(const std::string& store, const std::vector<std::string>& evaluations, bool json, bool rankHd95);

}  // namespace gyrus::driver
