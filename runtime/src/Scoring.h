// Scoring and ranking as FOMO25 does it (`gyrus score`, `gyrus rank`; docs/cli.md):
// the pieces that need no file system, so that they are tested on their own. The
// per-case metrics are Metrics.h's; this adds the percentile bootstrap over subjects,
// the parsing of a one-number prediction, the affine comparison of a mask with its
// label, and the published ranking (per metric, averaged per task, then over tasks).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace gyrus::rt {

/// The value of a `.txt` prediction or label: exactly one finite number (decimal or
/// scientific notation), optionally surrounded by white space. std::nullopt otherwise,
/// with the reason in `why` ("it is empty", "it holds more than one value", ...).
std::optional<double> parseOneNumber(const std::string& text, std::string& why);

/// Whether two voxel-to-world affines agree within `toleranceMm` in every entry (the
/// float32 storage of a NIfTI sform rounds at about 1e-5 mm).
bool sameAffine(const std::array<std::array<double, 4>, 4>& a, const std::array<std::array<double, 4>, 4>& b,
                double toleranceMm = 1e-3);

/// A 95 % (or `level`) confidence interval from a percentile bootstrap over subjects.
struct Interval {
  double low = 0.0, high = 0.0;
  int64_t used = 0;  ///< resamples whose statistic was finite (AUROC on a resample of one class is not)
};

/// Percentile bootstrap: `resamples` times, draws n subject indices uniformly with
/// replacement (std::mt19937_64 seeded with `seed`, an unbiased draw by rejection, so
/// the same seed gives the same interval on every platform), evaluates `statistic` on
/// them, and returns the (1 - level) / 2 and (1 + level) / 2 percentiles of the finite
/// results (percentile(), linear interpolation). NaN bounds when none is finite or n
/// or `resamples` is 0.
Interval percentileBootstrap(size_t n, int64_t resamples, uint64_t seed,
                             const std::function<double(std::span<const size_t>)>& statistic, double level = 0.95);

/// Ranks of `values` (1 = best), ties given the average of the ranks they span
/// (scipy.stats.rankdata's "average"). `higherIsBetter` orders them; a NaN ranks below
/// every number, NaNs tied among themselves.
std::vector<double> averageRanks(std::span<const double> values, bool higherIsBetter);

/// One score result (what `gyrus score --json` writes): a method's metrics on a task.
struct ScoreResult {
  std::string method;
  std::string task;                       ///< infarct | meningioma | brain_age
  std::map<std::string, double> metrics;  ///< auroc | dice, nsd, hd95 | mae, pearson_r
};

/// The FOMO25 tasks in their order, and the metrics ranked on each with their
/// direction: infarct auroc (higher better); meningioma dice, nsd (higher better) and,
/// with `rankHd95`, hd95 (lower better); brain_age mae (lower better), pearson_r
/// (higher better).
struct RankedMetric {
  std::string name;
  bool higherIsBetter = true;
};
const std::vector<std::string>& fomoTasks();
std::vector<RankedMetric> rankedMetrics(const std::string& task, bool rankHd95);

struct MethodRank {
  std::string method;
  /// Per task (fomoTasks order): the mean of the method's per-metric ranks among the
  /// methods that have the task, or n + 1 (n: every method) when it has none.
  std::vector<double> taskRanks;
  std::vector<bool> taskPresent;
  /// Per task, per ranked metric: the rank (NaN for a missing task).
  std::vector<std::vector<double>> metricRanks;
  double overall = 0.0;  ///< the mean of the task ranks
  int64_t place = 0;     ///< 1-based position after sorting by overall (ties share the lower place)
};

/// The FOMO25 ranking: within each task, every metric ranked separately among the
/// methods that submitted it (averageRanks), the task rank the mean of those; the
/// overall rank the mean of the three task ranks, a missing task counting n + 1. Sorted
/// by overall rank, then method name. Throws std::invalid_argument for an unknown task,
/// a ranked metric a result lacks, or two results of one method on one task.
std::vector<MethodRank> rankMethods(const std::vector<ScoreResult>& results, bool rankHd95 = false);

}  // namespace gyrus::rt
