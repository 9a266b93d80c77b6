// Scoring and ranking (see Scoring.h).
#include "Scoring.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

#include "Metrics.h"

namespace gyrus::rt {

std::optional<double> parseOneNumber(const std::string& text, std::string& why) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  if (begin == end) {
    why = "it is empty";
    return std::nullopt;
  }
  for (size_t i = begin; i < end; ++i)
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      why = "it holds more than one value";
      return std::nullopt;
    }
  const char* first = text.data() + begin;
  const char* last = text.data() + end;
  if (*first == '+') ++first;  // from_chars refuses a leading '+', strtod accepts it
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec == std::errc::result_out_of_range && ptr == last) {
    // A number, but beyond a double: too small is 0 (as Python reads it), too large is
    // not finite.
    const std::string number(first, last);
    const double nearest = std::strtod(number.c_str(), nullptr);
    if (std::fabs(nearest) < 1.0) return 0.0 * nearest;  // keeps the sign of -1e-400
    why = "'" + text.substr(begin, end - begin) + "' is beyond the range of a double (not finite)";
    return std::nullopt;
  }
  if (ec != std::errc() || ptr != last) {
    why = "'" + text.substr(begin, end - begin) + "' is not a number";
    return std::nullopt;
  }
  if (!std::isfinite(value)) {
    why = "'" + text.substr(begin, end - begin) + "' is not finite";
    return std::nullopt;
  }
  return value;
}

bool sameAffine(const std::array<std::array<double, 4>, 4>& a, const std::array<std::array<double, 4>, 4>& b,
                double toleranceMm) {
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 4; ++c)
      if (!(std::abs(a[r][c] - b[r][c]) <= toleranceMm)) return false;
  return true;
}

Interval percentileBootstrap(size_t n, int64_t resamples, uint64_t seed,
                             const std::function<double(std::span<const size_t>)>& statistic, double level) {
  Interval out;
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  out.low = out.high = kNaN;
  if (n == 0 || resamples <= 0) return out;
  std::mt19937_64 rng(seed);
  // The largest multiple of n representable: draws at or above it are rejected, so
  // every index is equally likely (std::uniform_int_distribution differs by library).
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  std::vector<size_t> indices(n);
  std::vector<double> stats;
  stats.reserve(static_cast<size_t>(resamples));
  for (int64_t b = 0; b < resamples; ++b) {
    for (size_t& index : indices) {
      uint64_t draw = rng();
      while (draw >= limit) draw = rng();
      index = static_cast<size_t>(draw % n);
    }
    const double s = statistic(indices);
    if (std::isfinite(s)) stats.push_back(s);
  }
  out.used = static_cast<int64_t>(stats.size());
  if (stats.empty()) return out;
  out.low = percentile(stats, 50.0 * (1.0 - level));
  out.high = percentile(std::move(stats), 50.0 * (1.0 + level));
  return out;
}

std::vector<double> averageRanks(std::span<const double> values, bool higherIsBetter) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // Best first; NaN last.
  auto before = [&](size_t a, size_t b) {
    const double x = values[a], y = values[b];
    if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
    return higherIsBetter ? x > y : x < y;
  };
  std::stable_sort(order.begin(), order.end(), before);
  std::vector<double> ranks(n);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && !before(order[i], order[j]) && !before(order[j], order[i])) ++j;
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k) ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

const std::vector<std::string>& fomoTasks() {
  static const std::vector<std::string> tasks{"infarct", "meningioma", "brain_age"};
  return tasks;
}

std::vector<RankedMetric> rankedMetrics(const std::string& task, bool rankHd95) {
  if (task == "infarct") return {{"auroc", true}};
  if (task == "meningioma") {
    std::vector<RankedMetric> m{{"dice", true}, {"nsd", true}};
    if (rankHd95) m.push_back({"hd95", false});
    return m;
  }
  if (task == "brain_age") return {{"mae", false}, {"pearson_r", true}};
  throw std::invalid_argument("unknown task '" + task + "' (infarct, meningioma or brain_age)");
}

std::vector<MethodRank> rankMethods(const std::vector<ScoreResult>& results, bool rankHd95) {
  std::set<std::string> methodSet;
  std::set<std::pair<std::string, std::string>> seen;
  for (const ScoreResult& r : results) {
    rankedMetrics(r.task, rankHd95);  // throws on an unknown task
    if (!seen.insert({r.method, r.task}).second)
      throw std::invalid_argument("two results of method '" + r.method + "' on task '" + r.task + "'");
    methodSet.insert(r.method);
  }
  const std::vector<std::string> methods(methodSet.begin(), methodSet.end());
  const double missing = static_cast<double>(methods.size()) + 1.0;
  const std::vector<std::string>& tasks = fomoTasks();
  std::vector<MethodRank> out(methods.size());
  for (size_t m = 0; m < methods.size(); ++m) {
    out[m].method = methods[m];
    out[m].taskRanks.assign(tasks.size(), missing);
    out[m].taskPresent.assign(tasks.size(), false);
    out[m].metricRanks.resize(tasks.size());
  }
  for (size_t t = 0; t < tasks.size(); ++t) {
    const std::vector<RankedMetric> metrics = rankedMetrics(tasks[t], rankHd95);
    std::vector<size_t> who;  // indices into `out`
    std::vector<const ScoreResult*> rows;
    for (const ScoreResult& r : results)
      if (r.task == tasks[t]) {
        const auto at = std::lower_bound(methods.begin(), methods.end(), r.method);
        who.push_back(static_cast<size_t>(at - methods.begin()));
        rows.push_back(&r);
      }
    for (size_t m = 0; m < out.size(); ++m)
      out[m].metricRanks[t].assign(metrics.size(), std::numeric_limits<double>::quiet_NaN());
    if (rows.empty()) continue;
    std::vector<double> sum(rows.size(), 0.0);
    for (size_t k = 0; k < metrics.size(); ++k) {
      std::vector<double> values;
      for (const ScoreResult* r : rows) {
        auto it = r->metrics.find(metrics[k].name);
        if (it == r->metrics.end())
          throw std::invalid_argument("the result of method '" + r->method + "' on task '" + r->task + "' has no '" +
                                      metrics[k].name + "'");
        values.push_back(it->second);
      }
      const std::vector<double> ranks = averageRanks(values, metrics[k].higherIsBetter);
      for (size_t i = 0; i < rows.size(); ++i) {
        sum[i] += ranks[i];
        out[who[i]].metricRanks[t][k] = ranks[i];
      }
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      out[who[i]].taskRanks[t] = sum[i] / static_cast<double>(metrics.size());
      out[who[i]].taskPresent[t] = true;
    }
  }
  for (MethodRank& r : out)
    r.overall = std::accumulate(r.taskRanks.begin(), r.taskRanks.end(), 0.0) / static_cast<double>(tasks.size());
  std::stable_sort(out.begin(), out.end(), [](const MethodRank& a, const MethodRank& b) {
    return a.overall != b.overall ? a.overall < b.overall : a.method < b.method;
  });
  for (size_t i = 0; i < out.size(); ++i)
    out[i].place = i > 0 && out[i].overall == out[i - 1].overall ? out[i - 1].place : static_cast<int64_t>(i + 1);
  return out;
}

}  // namespace gyrus::rt
