// `gyrus score` and `gyrus rank` (see Score.h; conventions in docs/cli.md).
#include "Score.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "Inspect.h"
#include "Runs.h"
#include "gyrus/exec/Store.h"
#include "Metrics.h"
#include "Scoring.h"
#include "gyrus/io/IoModule.h"

namespace fs = std::filesystem;

namespace gyrus::driver {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// "sub_12" -> 12 for a natural order (sub_2 before sub_10); names without a number last.
int64_t subjectNumber(const std::string& name) {
  const size_t at = name.find_last_of('_');
  if (at == std::string::npos) return std::numeric_limits<int64_t>::max();
  try {
    size_t used = 0;
    int64_t n = std::stoll(name.substr(at + 1), &used);
    return used == name.size() - at - 1 ? n : std::numeric_limits<int64_t>::max();
  } catch (const std::exception&) {
    return std::numeric_limits<int64_t>::max();
  }
}

bool readText(const fs::path& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  text = s.str();
  return true;
}

/// Errors are collected, then printed together (at most kMaxErrors) in subject order
/// (each line starts "sub_N: "), so one run names every subject to fix, the same way
/// whatever order the file system lists them in.
struct Errors {
  static constexpr size_t kMaxErrors = 20;
  std::vector<std::string> lines;
  void add(std::string line) { lines.push_back(std::move(line)); }
  int print() {
    std::stable_sort(lines.begin(), lines.end(), [](const std::string& a, const std::string& b) {
      const std::string x = a.substr(0, a.find(':')), y = b.substr(0, b.find(':'));
      const int64_t nx = subjectNumber(x), ny = subjectNumber(y);
      return nx != ny ? nx < ny : x < y;
    });
    for (size_t i = 0; i < lines.size() && i < kMaxErrors; ++i) fmt::print(stderr, "error: {}\n", lines[i]);
    if (lines.size() > kMaxErrors) fmt::print(stderr, "error: ... and {} more\n", lines.size() - kMaxErrors);
    return 1;
  }
};

struct Mask {
  std::vector<uint8_t> voxels;
  std::array<int64_t, 3> shape{};
  std::array<double, 3> spacing{};
  io::Affine affine{};             ///< the file's own (before reorientation)
  std::array<int64_t, 3> fileShape{};
};

/// Reads a {0, 1} mask; false with the reason in `why`.
bool readMask(io::IoModule& module, const fs::path& path, Mask& mask, std::string& why) {
  io::Image image;
  io::IoResult r = module.readNifti(path.string(), io::ReadOptions{}, image);
  if (!r.ok()) {
    why = r.message;
    return false;
  }
  if (image.volumes != 1) {
    why = fmt::format("it holds {} volumes; a mask has one", image.volumes);
    return false;
  }
  mask.shape = image.shape;
  mask.spacing = image.spacing;
  mask.affine = image.source.present ? image.source.affine : image.affine;
  mask.fileShape = image.source.present ? image.source.shape : image.shape;
  mask.voxels.resize(image.data.size());
  size_t bad = 0;
  float firstBad = 0.0f;
  for (size_t i = 0; i < image.data.size(); ++i) {
    const float v = image.data[i];
    if (v != 0.0f && v != 1.0f) {
      if (bad++ == 0) firstBad = v;
    }
    mask.voxels[i] = v == 1.0f ? 1 : 0;
  }
  if (bad > 0) {
    why = fmt::format("{} voxels hold values outside {{0, 1}} (the first: {:g}); write a binary mask "
                      "(e.g. threshold the probabilities at 0.5, or argmax)",
                      bad, firstBad);
    return false;
  }
  return true;
}

/// The values of a bootstrap draw: values[idx[0]], values[idx[1]], ...
template <typename T>
std::vector<T> pick(const std::vector<T>& values, std::span<const size_t> idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(values[i]);
  return out;
}

std::string shapeText(const std::array<int64_t, 3>& s) { return fmt::format("{} x {} x {}", s[0], s[1], s[2]); }

nlohmann::json metricJson(double value, const rt::Interval& ci, int64_t resamples) {
  nlohmann::json j = {{"value", value}};
  if (resamples > 0) {
    j["ci95"] = {ci.low, ci.high};
    j["resamples_used"] = ci.used;
  }
  return j;
}

}  // namespace

int runScore(const ScoreArgs& args) {
  const bool segmentation = args.task == "meningioma";
  const std::string labelName = segmentation ? "seg.nii.gz" : "label.txt";
  const std::string predSuffix = segmentation ? ".nii.gz" : ".txt";
  if (!(args.toleranceMm >= 0.0) || !std::isfinite(args.toleranceMm)) {
    fmt::print(stderr, "error: --tolerance must be a finite number of mm >= 0\n");
    return 1;
  }
  // The labels folder: --truth itself, or its labels/.
  fs::path labels = args.truth;
  std::error_code ec;
  if (fs::is_directory(labels / "labels", ec)) labels /= "labels";
  if (!fs::is_directory(labels, ec)) {
    fmt::print(stderr, "error: --truth {}: not a folder (give a FOMO25 task tree or its labels/ folder)\n", args.truth);
    return 1;
  }
  if (!fs::is_directory(args.pred, ec)) {
    fmt::print(stderr, "error: --pred {}: not a folder (give the folder the container wrote sub_N{} into)\n",
               args.pred, predSuffix);
    return 1;
  }
  Errors errors;
  std::vector<std::string> subjects;
  for (const fs::directory_entry& e : fs::directory_iterator(labels)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("sub_", 0) != 0) continue;
    if (!fs::is_regular_file(e.path() / "ses_1" / labelName))
      errors.add(fmt::format("{}: the truth has no {}; is --truth a {} tree?", name,
                             (e.path() / "ses_1" / labelName).string(),
                             args.task == "infarct" ? "fomo25-task1" : segmentation ? "fomo25-task2" : "fomo25-task3"));
    else
      subjects.push_back(name);
  }
  if (!errors.lines.empty()) return errors.print();
  if (subjects.empty()) {
    fmt::print(stderr, "error: --truth {}: no labels/sub_N/ses_1/{} in it\n", args.truth, labelName);
    return 1;
  }
  std::sort(subjects.begin(), subjects.end(), [](const std::string& a, const std::string& b) {
    const int64_t x = subjectNumber(a), y = subjectNumber(b);
    return x != y ? x < y : a < b;
  });
  const std::set<std::string> labelled(subjects.begin(), subjects.end());
  // Predictions: sub_N<suffix>. A prediction without a label is an error (a misnamed
  // file or the wrong truth tree, never silently dropped); other files are ignored.
  std::vector<std::string> ignored;
  for (const fs::directory_entry& e : fs::directory_iterator(args.pred)) {
    const std::string name = e.path().filename().string();
    const bool matches = name.size() > predSuffix.size() && name.rfind("sub_", 0) == 0 &&
                         name.compare(name.size() - predSuffix.size(), predSuffix.size(), predSuffix) == 0;
    if (!matches) {
      ignored.push_back(name);
      continue;
    }
    const std::string subject = name.substr(0, name.size() - predSuffix.size());
    if (!labelled.count(subject))
      errors.add(fmt::format("{}: {} has no label in {}; remove it, or score against the tree that holds "
                             "{}/ses_1/{}",
                             subject, (fs::path(args.pred) / name).string(), labels.string(), subject, labelName));
  }
  std::sort(ignored.begin(), ignored.end());
  for (const std::string& name : ignored)
    fmt::print(stderr, "warning: {}: ignored (not a sub_N{} prediction)\n", (fs::path(args.pred) / name).string(),
               predSuffix);
  // Subjects without a usable prediction file are reported here and skipped below, so
  // that the other files' problems are listed in the same run.
  std::set<std::string> absent;
  for (const std::string& s : subjects) {
    const fs::path pp = fs::path(args.pred) / (s + predSuffix);
    if (fs::is_regular_file(pp, ec)) continue;
    absent.insert(s);
    if (fs::exists(pp, ec))
      errors.add(fmt::format("{}: {} is not a regular file; the prediction must be a file", s, pp.string()));
    else
      errors.add(fmt::format("{}: no prediction {}; the container writes one file per subject: run it on {}", s,
                             pp.string(), s));
  }

  const size_t n = subjects.size();
  std::string method = args.method;
  if (method.empty()) method = fs::path(args.pred).lexically_normal().filename().string();
  if (method.empty()) method = fs::path(args.pred).lexically_normal().parent_path().filename().string();
  nlohmann::json result = {{"method", method}, {"task", args.task}, {"subjects", n}, {"pred", args.pred},
                           {"truth", labels.string()}};
  if (args.bootstrap > 0)
    result["bootstrap"] = {
        {"method", "percentile"}, {"level", 0.95}, {"resamples", args.bootstrap}, {"seed", args.seed}};
  nlohmann::json cases = nlohmann::json::array();
  nlohmann::json metrics = nlohmann::json::object();
  auto interval = [&](const std::function<double(std::span<const size_t>)>& statistic) {
    return rt::percentileBootstrap(n, args.bootstrap, args.seed, statistic);
  };
  auto meanOver = [](const std::vector<double>& values) {
    return [&values](std::span<const size_t> idx) {
      double sum = 0.0;
      for (size_t i : idx) sum += values[i];
      return sum / static_cast<double>(idx.size());
    };
  };
  std::vector<std::pair<std::string, std::string>> order;  // (metric, unit) for the table

  if (!segmentation) {
    std::vector<double> predicted(n), truth(n);
    for (size_t i = 0; i < n; ++i) {
      const fs::path lp = labels / subjects[i] / "ses_1" / labelName;
      const fs::path pp = fs::path(args.pred) / (subjects[i] + predSuffix);
      std::string text, why;
      if (!readText(lp, text)) {
        errors.add(fmt::format("{}: cannot read {}", subjects[i], lp.string()));
      } else if (auto v = rt::parseOneNumber(text, why)) {
        truth[i] = *v;
        if (args.task == "infarct" && *v != 0.0 && *v != 1.0)
          errors.add(fmt::format("{}: the label {} is {:g}, not 0 or 1; is --truth a fomo25-task1 tree?", subjects[i],
                                 lp.string(), *v));
      } else {
        errors.add(fmt::format("{}: the label {}: {}", subjects[i], lp.string(), why));
      }
      if (absent.count(subjects[i])) {
        continue;
      } else if (!readText(pp, text)) {
        errors.add(fmt::format("{}: cannot read {}", subjects[i], pp.string()));
      } else if (auto v = rt::parseOneNumber(text, why)) {
        predicted[i] = *v;
      } else {
        errors.add(fmt::format("{}: {} must hold exactly one finite number ({}); write e.g. '{}'", subjects[i],
                               pp.string(), why, args.task == "infarct" ? "0.73" : "54.2"));
      }
    }
    if (!errors.lines.empty()) return errors.print();
    for (size_t i = 0; i < n; ++i)
      cases.push_back({{"subject", subjects[i]}, {"prediction", predicted[i]}, {"truth", truth[i]}});
    if (args.task == "infarct") {
      std::vector<int> classes(n);
      for (size_t i = 0; i < n; ++i) classes[i] = truth[i] == 1.0 ? 1 : 0;
      const double value = rt::auroc(predicted, classes);
      if (std::isnan(value))
        fmt::print(stderr, "warning: every label is {}: AUROC is undefined (reported as null)\n", classes[0]);
      rt::Interval ci = interval(
          [&](std::span<const size_t> idx) { return rt::auroc(pick(predicted, idx), pick(classes, idx)); });
      metrics["auroc"] = metricJson(value, ci, args.bootstrap);
      order.push_back({"auroc", ""});
    } else {
      // Ages of only 0 and 1 are an infarct tree's labels: the wrong --truth, most likely.
      const bool binaryTruth =
          std::all_of(truth.begin(), truth.end(), [](double t) { return t == 0.0 || t == 1.0; });
      if (binaryTruth)
        fmt::print(stderr,
                   "warning: every age in {} is 0 or 1: is --truth a fomo25-task1 (infarct) tree instead of a "
                   "fomo25-task3 (brain age) one?\n",
                   labels.string());
      std::vector<double> errorsAbs(n);
      for (size_t i = 0; i < n; ++i) {
        errorsAbs[i] = std::abs(predicted[i] - truth[i]);
        cases[i]["absolute_error"] = errorsAbs[i];
      }
      metrics["mae"] =
          metricJson(rt::meanAbsoluteError(predicted, truth), interval(meanOver(errorsAbs)), args.bootstrap);
      const double r = n >= 2 ? rt::pearsonR(predicted, truth) : kNaN;
      if (std::isnan(r))
        fmt::print(stderr, "warning: Pearson r is undefined (constant predictions or ages, or one subject): null\n");
      rt::Interval ci = interval([&](std::span<const size_t> idx) {
        return idx.size() < 2 ? kNaN : rt::pearsonR(pick(predicted, idx), pick(truth, idx));
      });
      metrics["pearson_r"] = metricJson(r, ci, args.bootstrap);
      order.push_back({"mae", " years"});
      order.push_back({"pearson_r", ""});
    }
  } else {
    std::unique_ptr<io::IoModule> module = loadIoModule();
    if (!module) return 2;
    std::vector<double> dice(n), nsd(n), hd95(n);
    for (size_t i = 0; i < n; ++i) {
      const fs::path lp = labels / subjects[i] / "ses_1" / labelName;
      const fs::path pp = fs::path(args.pred) / (subjects[i] + predSuffix);
      Mask truth, pred;
      std::string why;
      if (!readMask(*module, lp, truth, why)) {
        errors.add(fmt::format("{}: the label {}: {}", subjects[i], lp.string(), why));
        continue;
      }
      if (absent.count(subjects[i])) continue;
      if (!readMask(*module, pp, pred, why)) {
        errors.add(fmt::format("{}: {}: {}", subjects[i], pp.string(), why));
        continue;
      }
      if (pred.fileShape != truth.fileShape) {
        errors.add(fmt::format("{}: {} is {} voxels but its reference image is {}; write the mask on the input's "
                               "grid (its exact shape and affine)",
                               subjects[i], pp.string(), shapeText(pred.fileShape), shapeText(truth.fileShape)));
        continue;
      }
      if (!rt::sameAffine(pred.affine, truth.affine)) {
        errors.add(fmt::format("{}: {}'s affine differs from its reference image's (by more than 1e-3 mm); write "
                               "the mask with the input's affine (e.g. copy the input's header)",
                               subjects[i], pp.string()));
        continue;
      }
      const ir::Shape3 shape{truth.shape[0], truth.shape[1], truth.shape[2]};
      dice[i] = rt::dice(pred.voxels, truth.voxels);
      nsd[i] = rt::normalizedSurfaceDice(pred.voxels, truth.voxels, shape, truth.spacing, args.toleranceMm);
      hd95[i] = rt::hausdorff95(pred.voxels, truth.voxels, shape, truth.spacing);
      const auto count = [](const std::vector<uint8_t>& m) { return std::count(m.begin(), m.end(), uint8_t{1}); };
      cases.push_back({{"subject", subjects[i]}, {"dice", dice[i]}, {"nsd", nsd[i]}, {"hd95", hd95[i]},
                       {"truth_voxels", count(truth.voxels)}, {"predicted_voxels", count(pred.voxels)}});
    }
    if (!errors.lines.empty()) return errors.print();
    auto mean = [](const std::vector<double>& v) { return rt::meanStd(v).mean; };
    result["tolerance_mm"] = args.toleranceMm;
    metrics["dice"] = metricJson(mean(dice), interval(meanOver(dice)), args.bootstrap);
    metrics["nsd"] = metricJson(mean(nsd), interval(meanOver(nsd)), args.bootstrap);
    metrics["hd95"] = metricJson(mean(hd95), interval(meanOver(hd95)), args.bootstrap);
    order = {{"dice", ""}, {"nsd", fmt::format(" (tolerance {:g} mm)", args.toleranceMm)}, {"hd95", " mm"}};
  }
  result["metrics"] = metrics;
  result["cases"] = cases;
  if (args.json) {
    fmt::print("{}\n", result.dump(2));
    return 0;
  }
  fmt::print("{}: {} on {} subjects\n", method, args.task, n);
  auto number = [](const nlohmann::json& v) {
    return v.is_null() || std::isnan(v.get<double>()) ? std::string("n/a") : fmt::format("{:.4f}", v.get<double>());
  };
  for (const auto& [name, unit] : order) {
    const nlohmann::json& m = metrics[name];
    std::string line = fmt::format("  {:<10} {}", name, number(m["value"]));
    if (m.contains("ci95")) line += fmt::format("  95% CI [{}, {}]", number(m["ci95"][0]), number(m["ci95"][1]));
    fmt::print("{}{}\n", line, unit);
  }
  if (args.bootstrap > 0)
    fmt::print("  (percentile bootstrap over subjects, {} resamples, seed {})\n", args.bootstrap, args.seed);
  return 0;
}

namespace {
int printRanking(const std::vector<rt::ScoreResult>& results, bool json, bool rankHd95);
}  // namespace

int runRank(const std::vector<std::string>& files, bool json, bool rankHd95) {
  std::vector<rt::ScoreResult> results;
  for (const std::string& file : files) {
    std::string text;
    if (!readText(file, text)) {
      fmt::print(stderr, "error: {}: cannot read it\n", file);
      return 1;
    }
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      rt::ScoreResult r;
      r.method = j.at("method").get<std::string>();
      r.task = j.at("task").get<std::string>();
      for (const auto& [name, m] : j.at("metrics").items()) {
        const nlohmann::json& v = m.at("value");
        r.metrics[name] = v.is_null() ? kNaN : v.get<double>();
      }
      results.push_back(std::move(r));
    } catch (const nlohmann::json::exception& e) {
      fmt::print(stderr, "error: {}: not a result of `gyrus score --json` ({})\n", file, e.what());
      return 1;
    }
  }
  return printRanking(results, json, rankHd95);
}

int runRankStore(const std::string& storeDir, const std::vector<std::string>& evaluations, bool json, bool rankHd95) {
  std::error_code ec;
  if (!fs::is_directory(fs::path(storeDir) / "stages", ec)) {
    fmt::print(stderr, "error: '{}' is not a run store (it has no stages/ directory)\n", storeDir);
    return 1;
  }
  exec::Store store{fs::path(storeDir)};
  std::vector<std::string> hashes;
  if (evaluations.empty()) {
    hashes = store.stageHashes();
  } else {
    for (const std::string& wanted : evaluations) {
      std::string h = findStage(store, wanted);
      if (h.empty()) return 1;
      hashes.push_back(h);
    }
  }
  struct Row {
    std::string method, task, stage;
    std::vector<rt::Metric> metrics;  // the evaluation's own names, with _ci_low/_ci_high
    std::string suffix;               // "" or "_scratch" / "_random_encoder"
  };
  std::vector<rt::ScoreResult> results;
  std::vector<Row> rows;
  std::map<std::pair<std::string, std::string>, std::string> seen;  // (method, task) -> evaluation
  for (const std::string& h : hashes) {
    exec::StageEntry entry = store.inspect(h);
    if (entry.kind != "evaluate") {
      if (!evaluations.empty()) {
        fmt::print(stderr, "error: '{}' is a {} stage; gyrus rank ranks evaluations\n", entry.name, entry.kind);
        return 1;
      }
      continue;
    }
    if (entry.status != exec::StageEntry::Status::Done || !entry.record) {
      if (!evaluations.empty()) {
        fmt::print(stderr, "error: evaluation '{}' has not finished: run it first (`gyrus run`)\n", entry.name);
        return 1;
      }
      continue;
    }
    std::map<std::string, double> m;
    for (const rt::Metric& x : entry.record->metrics) m[x.name] = x.value;
    std::string task = m.count("auroc")                      ? "infarct"
                       : m.count("dice") && m.count("nsd")   ? "meningioma"
                       : m.count("mae") && m.count("pearson_r") ? "brain_age"
                                                              : "";
    if (task.empty()) continue;
    std::string model = entry.name;
    std::ifstream in(store.stageDir(h) / "stage.json");
    nlohmann::json stage = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (stage.is_object() && stage.contains("evaluate") && stage["evaluate"].value("pretrain", "") != "")
      model = stage["evaluate"]["pretrain"].get<std::string>();
    std::string reference = m.count("auroc_scratch") || m.count("dice_scratch") || m.count("mae_scratch")
                                ? "_scratch"
                                : "_random_encoder";
    for (const std::string& suffix : {std::string(), reference}) {
      rt::ScoreResult r;
      r.method = model + suffix;
      r.task = task;
      for (const rt::RankedMetric& rm : rt::rankedMetrics(task, rankHd95)) {
        auto it = m.find(rm.name + suffix);
        r.metrics[rm.name] = it == m.end() ? kNaN : it->second;
      }
      auto key = std::make_pair(r.method, task);
      if (auto prior = seen.find(key); prior != seen.end()) {
        fmt::print(stderr, "error: two evaluations of '{}' on the {} task: '{}' and '{}' ({})\n", model, task,
                   prior->second, entry.name, h.substr(0, 12));
        fmt::print(stderr, "note: name the evaluations to rank: gyrus rank --store {} EVALUATION...\n", storeDir);
        return 1;
      }
      seen[key] = entry.name + " (" + h.substr(0, 12) + ")";
      rows.push_back({r.method, task, entry.name, entry.record->metrics, suffix});
      results.push_back(std::move(r));
    }
  }
  if (results.empty()) {
    fmt::print(stderr, "error: the store '{}' has no finished evaluation of a FOMO25 task (auroc, dice + nsd, or mae + "
                       "pearson_r)\n", storeDir);
    fmt::print(stderr, "note: run the experiment first (`gyrus run FILE --store {}`)\n", storeDir);
    return 1;
  }
  if (!json) {
    // The figures, per task and method, with the evaluation's 95 % intervals.
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      const auto& t = rt::fomoTasks();
      auto ia = std::find(t.begin(), t.end(), a.task) - t.begin(), ib = std::find(t.begin(), t.end(), b.task) - t.begin();
      return ia != ib ? ia < ib : a.method < b.method;
    });
    size_t width = 6;
    for (const Row& r : rows) width = std::max(width, r.method.size());
    fmt::print("{:<10}  {:<{}}  {:<9}  {:>8}  {}\n", "task", "method", width, "metric", "value", "95% CI");
    for (const Row& r : rows) {
      std::map<std::string, double> m;
      for (const rt::Metric& x : r.metrics) m[x.name] = x.value;
      for (const rt::RankedMetric& rm : rt::rankedMetrics(r.task, rankHd95)) {
        auto v = m.find(rm.name + r.suffix);
        auto lo = m.find(rm.name + r.suffix + "_ci_low"), hi = m.find(rm.name + r.suffix + "_ci_high");
        std::string ci = lo != m.end() && hi != m.end() ? fmt::format("[{:.4f}, {:.4f}]", lo->second, hi->second) : "";
        fmt::print("{:<10}  {:<{}}  {:<9}  {:>8}  {}\n", r.task, r.method, width, rm.name,
                   v == m.end() ? "-" : fmt::format("{:.4f}", v->second), ci);
      }
    }
    fmt::print("\n");
  }
  return printRanking(results, json, rankHd95);
}

namespace {
int printRanking(const std::vector<rt::ScoreResult>& results, bool json, bool rankHd95) {
  std::vector<rt::MethodRank> ranking;
  try {
    ranking = rt::rankMethods(results, rankHd95);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  const std::vector<std::string>& tasks = rt::fomoTasks();
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const rt::MethodRank& r : ranking) {
      nlohmann::json perTask = nlohmann::json::object();
      for (size_t t = 0; t < tasks.size(); ++t) {
        nlohmann::json metricRanks = nlohmann::json::object();
        const std::vector<rt::RankedMetric> metrics = rt::rankedMetrics(tasks[t], rankHd95);
        for (size_t k = 0; k < metrics.size(); ++k)
          if (r.taskPresent[t]) metricRanks[metrics[k].name] = r.metricRanks[t][k];
        perTask[tasks[t]] = {{"rank", r.taskRanks[t]}, {"present", static_cast<bool>(r.taskPresent[t])},
                             {"metric_ranks", metricRanks}};
      }
      rows.push_back({{"place", r.place}, {"method", r.method}, {"overall", r.overall}, {"tasks", perTask}});
    }
    nlohmann::json out = {{"methods", ranking.size()}, {"missing_task_rank", ranking.size() + 1},
                          {"ranking", rows}, {"hd95_ranked", rankHd95}};
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  size_t width = 6;
  for (const rt::MethodRank& r : ranking) width = std::max(width, r.method.size());
  fmt::print("{:<5}  {:<{}}  {:>7}", "place", "method", width, "overall");
  for (const std::string& t : tasks) fmt::print("  {:>10}", t);
  fmt::print("\n");
  for (const rt::MethodRank& r : ranking) {
    fmt::print("{:<5}  {:<{}}  {:>7.3f}", r.place, r.method, width, r.overall);
    for (size_t t = 0; t < tasks.size(); ++t)
      fmt::print("  {:>10}", r.taskPresent[t] ? fmt::format("{:.3f}", r.taskRanks[t])
                                               : fmt::format("{:g} (none)", r.taskRanks[t]));
    fmt::print("\n");
  }
  fmt::print("(task rank: mean of the per-metric ranks, ties averaged; a missing task counts n + 1 = {})\n",
             ranking.size() + 1);
  return 0;
}
}  // namespace

}  // namespace gyrus::driver
