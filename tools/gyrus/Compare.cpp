#include "Compare.h"

#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>

#include "Metrics.h"
#include "Runs.h"
#include "Scoring.h"
#include "gyrus/exec/Store.h"

namespace gyrus::driver {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

struct Side {
  std::string title;  ///< "base_lesion", "base_lesion (random_encoder)"
  std::string hash;
  std::vector<std::vector<double>> scores;  ///< per repeat, per test subject (or per-subject dice/nsd)
  std::vector<std::vector<double>> nsd;     ///< masks: per repeat, per test subject
};

struct Evaluation {
  Json predictions;
  std::string name, hash;
};

bool loadEvaluation(const exec::Store& store, const std::string& wanted, Evaluation& out) {
  out.hash = findStage(store, wanted);
  if (out.hash.empty()) return false;
  exec::StageEntry entry = store.inspect(out.hash);
  out.name = entry.name;
  if (entry.kind != "evaluate") {
    fmt::print(stderr, "error: '{}' is a {} stage; gyrus compare compares evaluations\n", entry.name, entry.kind);
    return false;
  }
  if (entry.status != exec::StageEntry::Status::Done) {
    fmt::print(stderr, "error: evaluation '{}' has not finished: run it first (`gyrus run`)\n", entry.name);
    return false;
  }
  std::ifstream in(store.stageDir(out.hash) / "predictions.json");
  out.predictions = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!out.predictions.is_object() || !out.predictions.contains("repeats") || !out.predictions.contains("samples")) {
    fmt::print(stderr, "error: evaluation '{}' has no readable predictions.json (run it again: `gyrus runs rm` it first)\n",
               entry.name);
    return false;
  }
  return true;
}

// The per-repeat figures of one side: `suffix` "" for the stage's own, "_random_encoder"
// or "_scratch" for its reference.
Side sideOf(const Evaluation& e, const std::string& suffix) {
  Side s;
  s.hash = e.hash;
  s.title = e.name + (suffix.empty() ? "" : " (" + suffix.substr(1) + ")");
  const bool mask = e.predictions.value("kind", "") == "mask";
  for (const Json& r : e.predictions["repeats"]) {
    s.scores.push_back(r.value(mask ? "dice" + suffix : "scores" + suffix, std::vector<double>{}));
    if (mask) s.nsd.push_back(r.value("nsd" + suffix, std::vector<double>{}));
  }
  return s;
}

std::vector<double> pick(const std::vector<double>& v, std::span<const size_t> idx) {
  std::vector<double> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(v[i]);
  return out;
}

std::vector<int> pickInt(const std::vector<int>& v, std::span<const size_t> idx) {
  std::vector<int> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(v[i]);
  return out;
}

double meanOf(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}

struct MetricDef {
  std::string name;
  bool higherIsBetter;
  // The metric of one repeat on the test positions `idx`: side, repeat, positions.
  std::function<double(const Side&, size_t, std::span<const size_t>)> of;
};

}  // namespace

int runCompare(const CompareArgs& args) {
  if (!storeExists(args.store)) return 1;
  exec::Store store(args.store);
  Evaluation ea, eb;
  if (!loadEvaluation(store, args.a, ea)) return 1;
  const Json& pa = ea.predictions;
  const std::string kind = pa.value("kind", "");
  Side a = sideOf(ea, ""), b;
  if (args.b.empty()) {
    const std::string reference = pa.value("reference", "");
    if (reference.empty()) {
      fmt::print(stderr, "error: evaluation '{}' has no reference run to compare with: name a second evaluation\n",
                 ea.name);
      return 1;
    }
    b = sideOf(ea, "_" + reference);
  } else {
    if (!loadEvaluation(store, args.b, eb)) return 1;
    const Json& pb = eb.predictions;
    // Paired: the same subjects, the same test set in every repeat, the same labels.
    std::string why;
    const std::string kindB = pb.value("kind", "");
    if (kindB != kind)
      why = "they judge different kinds of label ('" + pa.value("label", "") + "' is " + kind + ", '" +
            pb.value("label", "") + "' is " + kindB + ")";
    else if (pb.value("label", "") != pa.value("label", ""))
      why = "they judge different labels ('" + pa.value("label", "") + "' and '" + pb.value("label", "") + "')";
    else if (pb["samples"] != pa["samples"])
      why = "their data sets differ (other samples, or in another order)";
    else if (pb["repeats"].empty() || pa["repeats"].empty() || pb["repeats"][0]["test"] != pa["repeats"][0]["test"])
      why = "their test subjects differ (another test fraction, site or seed)";
    if (!why.empty()) {
      fmt::print(stderr, "error: '{}' and '{}' cannot be compared pairwise: {}\n", ea.name, eb.name, why);
      fmt::print(stderr, "note: compare evaluations of the same data set with the same test, seed and label\n");
      return 1;
    }
    b = sideOf(eb, "");
  }
  // Every repeat must test the same subjects (the split is fixed; the shots vary).
  const Json& test0 = pa["repeats"][0]["test"];
  for (const Json& r : pa["repeats"]) {
    if (r["test"] != test0) {
      fmt::print(stderr, "error: the repeats of '{}' test different subjects; a paired bootstrap needs one test set\n",
                 ea.name);
      return 1;
    }
  }
  const size_t n = test0.size();
  auto sizesOk = [&](const Side& s) {
    for (size_t r = 0; r < s.scores.size(); ++r)
      if (s.scores[r].size() != n || (!s.nsd.empty() && s.nsd[r].size() != n)) return false;
    return !s.scores.empty();
  };
  if (n == 0 || !sizesOk(a) || !sizesOk(b)) {
    fmt::print(stderr, "error: the predictions of '{}' or '{}' are incomplete (a figure per test subject is missing)\n",
               a.title, b.title);
    return 1;
  }
  std::vector<std::vector<int>> classes;
  std::vector<std::vector<double>> values;
  for (const Json& r : pa["repeats"]) {
    std::vector<double> labels = r.value("labels", std::vector<double>{});
    values.push_back(labels);
    std::vector<int> c;
    for (double v : labels) c.push_back(v > 0.5 ? 1 : 0);
    classes.push_back(c);
  }

  std::vector<MetricDef> metrics;
  if (kind == "binary") {
    metrics.push_back({"auroc", true, [&](const Side& s, size_t r, std::span<const size_t> idx) {
                         return rt::auroc(pick(s.scores[r], idx), pickInt(classes[r], idx));
                       }});
  } else if (kind == "continuous") {
    metrics.push_back({"mae", false, [&](const Side& s, size_t r, std::span<const size_t> idx) {
                         return rt::meanAbsoluteError(pick(s.scores[r], idx), pick(values[r], idx));
                       }});
    metrics.push_back({"pearson_r", true, [&](const Side& s, size_t r, std::span<const size_t> idx) {
                         return rt::pearsonR(pick(s.scores[r], idx), pick(values[r], idx));
                       }});
  } else if (kind == "mask") {
    metrics.push_back({"dice", true, [](const Side& s, size_t r, std::span<const size_t> idx) {
                         return meanOf(pick(s.scores[r], idx));
                       }});
    metrics.push_back({"nsd", true, [](const Side& s, size_t r, std::span<const size_t> idx) {
                         return meanOf(pick(s.nsd[r], idx));
                       }});
  } else {
    fmt::print(stderr, "error: evaluation '{}' has an unknown label kind '{}'\n", ea.name, kind);
    return 1;
  }

  // A side's metric averaged over its repeats, on the test positions `idx`.
  auto averaged = [&](const MetricDef& m, const Side& s, std::span<const size_t> idx) {
    double sum = 0;
    for (size_t r = 0; r < s.scores.size(); ++r) sum += m.of(s, r, idx);
    return sum / static_cast<double>(s.scores.size());
  };
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;

  Json out;
  out["a"] = {{"stage", a.title}, {"hash", a.hash}, {"repeats", a.scores.size()}};
  out["b"] = {{"stage", b.title}, {"hash", b.hash}, {"repeats", b.scores.size()}};
  out["test_subjects"] = n;
  out["bootstrap"] = {{"method", "paired percentile"}, {"level", 0.95}, {"resamples", args.bootstrap}, {"seed", args.seed}};
  out["metrics"] = Json::array();
  if (!args.json)
    fmt::print("{} vs {}: {} test subjects, {} and {} repeats; paired bootstrap over subjects, {} resamples (seed {})\n\n"
               "{:<10} {:>26} {:>26} {:>9}  {:<22} {}\n",
               a.title, b.title, n, a.scores.size(), b.scores.size(), args.bootstrap, args.seed, "metric",
               "A [95% CI]", "B [95% CI]", "A - B", "95% CI of A - B", "A better in");
  for (const MetricDef& m : metrics) {
    const double va = averaged(m, a, all), vb = averaged(m, b, all);
    int64_t better = 0, finite = 0;
    rt::Interval ci = rt::percentileBootstrap(n, args.bootstrap, args.seed, [&](std::span<const size_t> idx) {
      const double d = averaged(m, a, idx) - averaged(m, b, idx);
      if (std::isfinite(d)) {
        ++finite;
        better += (m.higherIsBetter ? d > 0 : d < 0) ? 1 : 0;
      }
      return d;
    });
    // Each side's own interval (the same resampling of subjects).
    rt::Interval ciA = rt::percentileBootstrap(n, args.bootstrap, args.seed,
                                               [&](std::span<const size_t> idx) { return averaged(m, a, idx); });
    rt::Interval ciB = rt::percentileBootstrap(n, args.bootstrap, args.seed,
                                               [&](std::span<const size_t> idx) { return averaged(m, b, idx); });
    const double share = finite > 0 ? static_cast<double>(better) / static_cast<double>(finite) : std::nan("");
    auto num = [](double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); };
    out["metrics"].push_back({{"name", m.name},
                              {"higher_is_better", m.higherIsBetter},
                              {"a", num(va)},
                              {"a_ci_low", num(ciA.low)},
                              {"a_ci_high", num(ciA.high)},
                              {"b", num(vb)},
                              {"b_ci_low", num(ciB.low)},
                              {"b_ci_high", num(ciB.high)},
                              {"difference", num(va - vb)},
                              {"ci_low", num(ci.low)},
                              {"ci_high", num(ci.high)},
                              {"a_better_share", num(share)},
                              {"resamples_used", ci.used}});
    if (!args.json) {
      std::string interval = args.bootstrap > 0 ? fmt::format("[{:+.4f}, {:+.4f}]", ci.low, ci.high) : "-";
      auto withCi = [&](double v, const rt::Interval& c) {
        return args.bootstrap > 0 ? fmt::format("{:.4f} [{:.4f}, {:.4f}]", v, c.low, c.high) : fmt::format("{:.4f}", v);
      };
      // An undefined metric (e.g. r of constant labels) shows as "n/a", not "nan".
      const double diff = va - vb;
      fmt::print("{:<10} {:>26} {:>26} {:>9}  {:<22} {}\n", m.name, withCi(va, ciA), withCi(vb, ciB),
                 std::isfinite(diff) ? fmt::format("{:+.4f}", diff) : std::string("n/a"), interval,
                 args.bootstrap > 0 && std::isfinite(share) ? fmt::format("{:.1f}% of resamples", 100.0 * share)
                                                            : std::string("-"));
    }
  }
  if (args.json) {
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("\n({}an interval that excludes 0 is a difference the test subjects support)\n",
               kind == "continuous" ? "lower is better for mae; " : "");
  }
  return 0;
}

}  // namespace gyrus::driver
