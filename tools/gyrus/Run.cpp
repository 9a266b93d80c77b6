// `gyrus run` (see Run.h).
#include "Run.h"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fmt/core.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "Module.h"
#include "Store.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::driver {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<rt::Runtime> loadRuntime(std::string& error) {
  static const ModuleSpec spec{"libgyrus_runtime.so", "GYRUS_RUNTIME", "gyrus_runtime_create",
                               "runtime module",      "gyrus_runtime", rt::kRuntimeAbiVersion};
  return loadModule<rt::Runtime>(spec, error);
}

struct StageReport {
  const ir::Stage* stage;
  std::string status;  // "ran", "resumed", "cached", "failed", "skipped"
  double seconds = 0.0;
  std::vector<rt::Metric> metrics;
};

// The figures of a stage as the summary shows them. An evaluation declares its metrics
// (`metrics = [...]`, its task's, or its label's): each is shown in that order with its
// companions (`mae_std`, `mae_random_encoder`, `dice_scratch`, ...); the runtime's other
// figures are left out, except `skipped_samples`. Other stages show all of theirs.
std::vector<rt::Metric> reported(const ir::Stage& stage, const std::vector<rt::Metric>& metrics) {
  if (stage.kind != ir::StageKind::Evaluate || stage.evaluate.metrics.empty()) return metrics;
  std::vector<rt::Metric> out;
  for (const std::string& name : stage.evaluate.metrics)
    for (const rt::Metric& m : metrics)
      if (m.name == name || m.name.rfind(name + "_", 0) == 0) out.push_back(m);
  // Samples a data set left out (skip_unreadable) are always shown.
  for (const rt::Metric& m : metrics)
    if (m.name == "skipped_samples") out.push_back(m);
  return out;
}

}  // namespace

bool parseByteSize(const std::string& text, int64_t& bytes) {
  size_t end = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    return false;
  }
  std::string unit = text.substr(end);
  static const std::pair<const char*, double> units[] = {
      {"", 1.0},          {"B", 1.0},         {"K", 1024.0},      {"KiB", 1024.0}, {"M", 1048576.0},
      {"MiB", 1048576.0}, {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"T", 1099511627776.0}, {"TiB", 1099511627776.0}};
  for (const auto& [name, scale] : units) {
    if (unit != name) continue;
    double b = value * scale;
    if (!(b >= 1.0) || b > 9.0e18) return false;
    bytes = static_cast<int64_t>(b);
    return true;
  }
  return false;
}

int runExperiment(const ir::Experiment& experiment, const RunOptions& options) {
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // OpenBLAS reads its thread count when it loads, i.e. when the runtime module does.
  setenv("OPENBLAS_NUM_THREADS", std::to_string(threads).c_str(), /*overwrite=*/0);

  Store store(options.store);
  std::unique_ptr<rt::Runtime> runtime;
  std::vector<StageReport> reports;
  int exitCode = 0;
  auto log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };

  for (const ir::Stage& stage : experiment.stages) {
    StageReport report{&stage, "", 0.0, {}};
    // A finished stage is reused without taking its lock (result.json is written
    // atomically), so a read-only store still serves its results.
    std::optional<StageRecord> done = store.load(stage);
    fs::path dir = store.stageDir(stage);
    StageLock lock;
    if (!done) {
      try {
        dir = store.prepare(stage, experiment);
      } catch (const std::exception& e) {
        log(fmt::format("error: cannot use the run store '{}': {}", options.store.string(), e.what()));
        return 1;
      }
      lock = store.tryLock(stage);
      if (!lock.held()) {
        if (!lock.error().empty()) {
          log(fmt::format("error: cannot use the run store '{}': {}; choose a writable --store", options.store.string(),
                          lock.error()));
        } else {
          log(fmt::format("error: stage '{}' is being run by another gyrus process (store {}); wait for it or use "
                          "another --store",
                          stage.name, options.store.string()));
        }
        return 1;
      }
      done = store.load(stage);  // another process may have finished it meanwhile
    }
    if (done) {
      report.status = "cached";
      report.metrics = done->metrics;
      log(fmt::format("[{}] {} {}: cached ({})", stage.name, ir::toString(stage.kind), stage.name, stage.hash.substr(0, 12)));
      reports.push_back(std::move(report));
      continue;
    }
    bool depsOk = true;
    for (size_t d : stage.deps) depsOk = depsOk && store.load(experiment.stages[d]).has_value();
    if (!depsOk) {
      report.status = "skipped";
      reports.push_back(std::move(report));
      continue;
    }
    if (!runtime) {
      std::string error;
      runtime = loadRuntime(error);
      if (!runtime) {
        log("error: " + error);
        return 2;
      }
      log(fmt::format("runtime: {}; {} thread{}", runtime->describe(), threads, threads == 1 ? "" : "s"));
    }
    log(fmt::format("[{}] {} {} ({})", stage.name, ir::toString(stage.kind), stage.name, stage.hash.substr(0, 12)));
    rt::StageContext ctx;
    ctx.dir = dir;
    ctx.threads = threads;
    ctx.volumeCache = options.volumeCache;
    ctx.loaderMemory = options.loaderMemory;
    ctx.progress = [&stage](std::string_view line) { fmt::print(stderr, "[{}] {}\n", stage.name, line); };
    if (!stage.deps.empty()) ctx.pretrainDir = store.stageDir(experiment.stages[stage.deps.front()]);
    auto start = std::chrono::steady_clock::now();
    rt::StageResult result = stage.kind == ir::StageKind::Pretrain ? runtime->runPretrain(stage.pretrain, ctx)
                                                                   : runtime->runEvaluate(stage.evaluate, ctx);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (result.status != rt::StageResult::Status::Ok) {
      bool user = result.status == rt::StageResult::Status::UserError;
      log(fmt::format("{}: stage '{}' failed: {}", user ? "error" : "internal error", stage.name, result.message));
      report.status = "failed";
      reports.push_back(std::move(report));
      exitCode = user ? 1 : 2;
      break;
    }
    report.status = result.resumed ? "resumed" : "ran";
    report.metrics = result.metrics;
    try {
      store.save(stage, {result.metrics, report.seconds, result.resumed});
    } catch (const std::exception& e) {
      log(fmt::format("error: cannot record stage '{}' in the run store: {}", stage.name, e.what()));
      return 1;
    }
    log(fmt::format("[{}] done in {:.1f} s", stage.name, report.seconds));
    reports.push_back(std::move(report));
  }

  if (options.json) {
    nlohmann::json j;
    j["experiment"] = options.experimentPath;
    j["store"] = options.store.string();
    j["stages"] = nlohmann::json::array();
    j["metrics"] = nlohmann::json::array();
    for (const StageReport& r : reports) {
      j["stages"].push_back({{"name", r.stage->name},
                             {"kind", ir::toString(r.stage->kind)},
                             {"hash", r.stage->hash},
                             {"status", r.status},
                             {"seconds", r.seconds}});
      // The metrics an evaluation reports, in their declared order.
      if (r.stage->kind == ir::StageKind::Evaluate) j["stages"].back()["metrics"] = r.stage->evaluate.metrics;
      for (const rt::Metric& m : r.metrics)
        j["metrics"].push_back({{"stage", r.stage->name}, {"name", m.name}, {"value", m.value}});
    }
    if (options.plan != nullptr && !options.plan->points.empty()) {
      j["points"] = options.plan->points;
      for (size_t i = 0; i < reports.size(); ++i) {
        nlohmann::json users = nlohmann::json::array();
        for (size_t p : options.plan->users.at(i)) users.push_back(p + 1);
        j["stages"][i]["points"] = users;
      }
    }
    j["ok"] = exitCode == 0;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("\n{:<24} {:<9} {:<8} {:>8}  {:<26} {:>10}\n", "stage", "kind", "status", "time", "metric", "value");
    for (const StageReport& r : reports) {
      std::string time = r.status == "cached" ? "-" : fmt::format("{:.1f} s", r.seconds);
      std::vector<rt::Metric> shown = reported(*r.stage, r.metrics);
      if (shown.empty()) {
        fmt::print("{:<24} {:<9} {:<8} {:>8}\n", r.stage->name, ir::toString(r.stage->kind), r.status, time);
      }
      for (size_t i = 0; i < shown.size(); ++i) {
        if (i == 0) {
          fmt::print("{:<24} {:<9} {:<8} {:>8}  {:<26} {:>10.4f}\n", r.stage->name, ir::toString(r.stage->kind),
                     r.status, time, shown[i].name, shown[i].value);
        } else {
          fmt::print("{:<24} {:<9} {:<8} {:>8}  {:<26} {:>10.4f}\n", "", "", "", "", shown[i].name, shown[i].value);
        }
      }
    }
    // With sweeps: which points each stage variant belongs to.
    if (options.plan != nullptr && !options.plan->points.empty()) {
      fmt::print("\nsweep points:\n");
      for (size_t p = 0; p < options.plan->points.size(); ++p) {
        std::string stages;
        for (size_t i = 0; i < options.plan->users.size() && i < experiment.stages.size(); ++i)
          for (size_t u : options.plan->users[i])
            if (u == p) stages += (stages.empty() ? "" : ", ") + experiment.stages[i].name;
        fmt::print("  {:>2}: {}  ->  {}\n", p + 1, options.plan->points[p], stages);
      }
    }
  }
  return exitCode;
}

}  // namespace gyrus::driver
