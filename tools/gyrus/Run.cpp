// `gyrus run` and `gyrus run-stage` (see Run.h).
#include "Run.h"

#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fmt/core.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "gyrus/IrJson.h"
#include "gyrus/exec/Pool.h"
#include "gyrus/exec/Ranks.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"
#include "gyrus/site/Site.h"

namespace gyrus::driver {
namespace {

namespace fs = std::filesystem;
using exec::StageOutcome;

// The figures of a stage as the summary shows them. An evaluation declares its metrics
// (`metrics = [...]`, its task's, or its label's): each is shown in that order with its
// companions (`mae_std`, `mae_random_encoder`, `dice_scratch`, ...); the runtime's other
// figures are left out, except `skipped_samples`. Other stages show all of theirs.
std::vector<rt::Metric> reported(const std::vector<std::string>& declared, const std::vector<rt::Metric>& metrics) {
  if (declared.empty()) return metrics;
  std::vector<rt::Metric> out;
  for (const std::string& name : declared)
    for (const rt::Metric& m : metrics)
      if (m.name == name || m.name.rfind(name + "_", 0) == 0) out.push_back(m);
  // Samples a data set left out (skip_unreadable) are always shown.
  for (const rt::Metric& m : metrics)
    if (m.name == "skipped_samples") out.push_back(m);
  return out;
}

// What a report shows of one stage besides its outcome.
struct Reported {
  const StageOutcome* outcome;
  std::vector<std::string> declared;  ///< an evaluation's declared metrics, in order
  std::vector<size_t> points;         ///< the sweep points that use it (0-based)
};

// The results: a table on stdout, or with --json one object (docs/cli.md, "Results").
void printReport(const std::vector<Reported>& rows, const RunOptions& options, int exitCode) {
  if (options.json) {
    nlohmann::json j;
    j["experiment"] = options.experimentPath;
    j["store"] = options.store.string();
    j["stages"] = nlohmann::json::array();
    j["metrics"] = nlohmann::json::array();
    bool sweep = options.plan != nullptr && !options.plan->points.empty();
    for (const Reported& r : rows) {
      const StageOutcome& o = *r.outcome;
      nlohmann::json stage = {{"name", o.name},
                              {"kind", ir::toString(o.kind)},
                              {"hash", o.hash},
                              {"status", exec::toString(o.status)},
                              {"seconds", o.seconds}};
      if (!o.message.empty()) stage["message"] = o.message;
      if (!o.device.empty()) stage["device"] = o.device;
      // The metrics an evaluation reports, in their declared order.
      if (o.kind == ir::StageKind::Evaluate) stage["metrics"] = r.declared;
      if (sweep) {
        nlohmann::json users = nlohmann::json::array();
        for (size_t p : r.points) users.push_back(p + 1);
        stage["points"] = users;
      }
      j["stages"].push_back(std::move(stage));
      for (const rt::Metric& m : o.metrics) j["metrics"].push_back({{"stage", o.name}, {"name", m.name}, {"value", m.value}});
    }
    if (sweep) j["points"] = options.plan->points;
    j["ok"] = exitCode == 0;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("\n{:<24} {:<9} {:<8} {:>8}  {:<26} {:>10}\n", "stage", "kind", "status", "time", "metric", "value");
  for (const Reported& r : rows) {
    const StageOutcome& o = *r.outcome;
    std::string status(exec::toString(o.status));
    std::string time = o.status == StageOutcome::Status::Cached ? "-" : fmt::format("{:.1f} s", o.seconds);
    std::vector<rt::Metric> shown = reported(r.declared, o.metrics);
    std::string kind(ir::toString(o.kind));
    if (shown.empty()) fmt::print("{:<24} {:<9} {:<8} {:>8}\n", o.name, kind, status, time);
    for (size_t i = 0; i < shown.size(); ++i) {
      if (i == 0) {
        fmt::print("{:<24} {:<9} {:<8} {:>8}  {:<26} {:>10.4f}\n", o.name, kind, status, time, shown[i].name,
                   shown[i].value);
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
      for (const Reported& r : rows)
        for (size_t u : r.points)
          if (u == p) stages += (stages.empty() ? "" : ", ") + r.outcome->name;
      fmt::print("  {:>2}: {}  ->  {}\n", p + 1, options.plan->points[p], stages);
    }
  }
}

exec::RunSettings settingsFor(const RunOptions& options) {
  exec::RunSettings settings;
  settings.threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // OpenBLAS reads its thread count when it loads, i.e. when the runtime module does.
  setenv("OPENBLAS_NUM_THREADS", std::to_string(settings.threads).c_str(), /*overwrite=*/0);
  settings.volumeCache = options.volumeCache;
  settings.loaderMemory = options.loaderMemory;
  settings.device = options.device;
  settings.log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  settings.progress = [](const std::string& stage, std::string_view line) {
    fmt::print(stderr, "[{}] {}\n", stage, line);
  };
  return settings;
}

// Reports failures on stderr as they are summarised (the table's status says which).
void logFailures(const std::vector<StageOutcome>& outcomes) {
  for (const StageOutcome& o : outcomes) {
    if (o.status != StageOutcome::Status::Failed) continue;
    fmt::print(stderr, "{}: stage '{}' failed: {}\n", o.exitCode == 1 ? "error" : "internal error", o.name, o.message);
  }
}

// Wraps the executor to print which runtime runs the stages, once.
class AnnouncingExecutor final : public exec::Executor {
 public:
  AnnouncingExecutor(exec::Executor& inner, int threads) : inner_(inner), threads_(threads) {}
  bool start(std::string& error) override {
    if (started_) return true;
    // Only when a stage must run: the runtime module reads it as it loads, and a run
    // whose stages are all cached never pays the 150 ms sample.
    chooseOmpWaitPolicy();
    if (!inner_.start(error)) return false;
    started_ = true;
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    fmt::print(stderr, "runtime: {}; {} thread{}{}\n", inner_.describe(), threads_, threads_ == 1 ? "" : "s",
               policy != nullptr && std::string_view(policy) == "PASSIVE" ? " (idle threads sleep: the machine is busy)"
                                                                          : "");
    return true;
  }
  rt::StageResult execute(const ir::Stage& stage, const rt::StageContext& ctx) override {
    return inner_.execute(stage, ctx);
  }
  std::string describe() const override { return inner_.describe(); }

 private:
  exec::Executor& inner_;
  int threads_;
  bool started_ = false;
};

// With --ranks N > 1: the executor that runs pretraining stages as N processes (this
// executable's `run-stage --rank`), around `inner`; null otherwise.
std::unique_ptr<exec::RankExecutor> rankExecutor(exec::Executor& inner, const RunOptions& options,
                                                 const exec::RunSettings& settings) {
  if (options.ranks <= 1) return nullptr;
  exec::RankSettings ranks;
  ranks.ranks = options.ranks;
  ranks.launcher = options.launcher;
  ranks.store = fs::absolute(options.store);
  std::error_code ec;
  ranks.executable = fs::read_symlink("/proc/self/exe", ec).string();
  return std::make_unique<exec::RankExecutor>(inner, ranks, settings);
}

}  // namespace

std::string chooseOmpWaitPolicy() {
  if (const char* user = std::getenv("OMP_WAIT_POLICY")) return user;
  // The share of all cores that were busy over 150 ms (/proc/stat), before gyrus itself
  // computes anything.
  auto sample = [](uint64_t& busy, uint64_t& total) {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    uint64_t v[8] = {};
    if (!(stat >> cpu) || cpu != "cpu") return false;
    for (uint64_t& x : v) stat >> x;
    total = 0;
    for (uint64_t x : v) total += x;
    busy = total - v[3] - v[4];  // idle and iowait
    return static_cast<bool>(stat);
  };
  uint64_t busy0 = 0, total0 = 0, busy1 = 0, total1 = 0;
  bool busyMachine = false;
  if (sample(busy0, total0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    if (sample(busy1, total1) && total1 > total0)
      busyMachine = static_cast<double>(busy1 - busy0) / static_cast<double>(total1 - total0) > 0.2;
  }
  // Idle OpenMP threads spin for a while by default (libgomp's GOMP_SPINCOUNT): on an
  // idle machine that is 25-30 % faster than sleeping at once, but beside any other
  // process that wants a core (a build, another run) a training step became up to 12x
  // slower (docs/performance.md). Read by libgomp when the runtime module loads.
  if (!busyMachine) return "default";
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  return "PASSIVE";
}

// One reading of sizes for the command line and the site file (gyrus.toml).
bool parseByteSize(const std::string& text, int64_t& bytes) { return gyrus::parseByteSize(text, bytes); }

int runExperiment(const ir::Experiment& experiment, const RunOptions& options) {
  exec::RunSettings settings = settingsFor(options);
  exec::Store store(options.store);
  std::vector<StageOutcome> outcomes;
  bool leftToSlurm = false;
  if (options.executor == "slurm") {
    // The tasks run this very executable on the cluster's nodes (a shared file system).
    exec::SlurmSettings slurm = options.slurm;
    slurm.ranks = options.ranks;
    std::error_code ec;
    slurm.executable = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) {
      fmt::print(stderr, "error: cannot find the gyrus executable for the Slurm tasks: {}\n", ec.message());
      return 2;
    }
    if (std::string problem = exec::checkSlurmSettings(slurm); !problem.empty()) {
      fmt::print(stderr, "error: {}\n", problem);
      return 1;
    }
    if (options.cancel) return exec::cancelSlurmRun(experiment, store, slurm, settings.log);
    exec::SlurmRun run = exec::runExperimentOnSlurm(experiment, store, settings, slurm);
    outcomes = std::move(run.outcomes);
    leftToSlurm = run.interrupted;
    if (leftToSlurm)
      fmt::print(stderr,
                 "interrupted: the queued and running stages stay in Slurm. Follow them with the same `gyrus run` "
                 "command, or cancel them with `gyrus run {} --executor slurm --store {} --cancel`\n",
                 exec::shellQuote(options.experimentPath), exec::shellQuote(options.store.string()));
  } else if (options.jobs > 1) {
    exec::PoolSettings pool;
    pool.jobs = options.jobs;
    std::error_code ec;
    pool.executable = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) {
      fmt::print(stderr, "error: cannot find the gyrus executable for the workers: {}\n", ec.message());
      return 2;
    }
    // A live view where stderr is a terminal; plain lines for logs and pipes.
    const char* term = std::getenv("TERM");
    pool.live = isatty(STDERR_FILENO) != 0 && !(term != nullptr && std::string_view(term) == "dumb");
    winsize ws{};
    if (pool.live && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) pool.width = ws.ws_col;
    pool.ranks = options.ranks;
    pool.gpus = exec::visibleGpus(settings.device, std::getenv("CUDA_VISIBLE_DEVICES"), exec::driverGpuCount());
    fmt::print(stderr, "run: up to {} stages at once, {} thread{} each{}\n", options.jobs,
               std::max(1, settings.threads / options.jobs), settings.threads / options.jobs > 1 ? "s" : "",
               pool.gpus.empty() ? std::string()
               : options.ranks > 1
                   ? fmt::format(", one of {} GPUs each (a pretraining: one per rank)", pool.gpus.size())
                   : fmt::format(", one of {} GPUs each", pool.gpus.size()));
    outcomes = exec::runExperimentInPool(experiment, store, settings, pool);
  } else {
    exec::InProcessExecutor runtime;
    AnnouncingExecutor announcing(runtime, settings.threads);
    std::unique_ptr<exec::RankExecutor> ranked = rankExecutor(announcing, options, settings);
    exec::Executor& executor = ranked ? static_cast<exec::Executor&>(*ranked) : announcing;
    outcomes = exec::runExperiment(experiment, store, executor, settings);
  }
  logFailures(outcomes);
  std::vector<Reported> rows;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const ir::Stage& stage = experiment.stages[i];
    Reported r{&outcomes[i], {}, {}};
    if (stage.kind == ir::StageKind::Evaluate) r.declared = stage.evaluate.metrics;
    if (options.plan != nullptr && i < options.plan->users.size()) r.points = options.plan->users[i];
    rows.push_back(std::move(r));
  }
  int code = exec::exitCodeOf(outcomes);
  if (code == 0 && leftToSlurm) code = 1;
  printReport(rows, options, code);
  return code;
}

int runStoredStage(const std::string& hash, const RunOptions& options) {
  exec::Store store(options.store);
  if (hash.size() < 6 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
    fmt::print(stderr, "error: '{}' is not a stage hash: give at least 6 of its hex digits (`gyrus plan FILE --json` "
               "lists them)\n", hash);
    return 1;
  }
  std::vector<std::string> found = store.findStages(hash);
  if (found.empty()) {
    fmt::print(stderr, "error: the store '{}' has no stage {}; write it with `gyrus plan FILE --store {}`\n",
               options.store.string(), hash, options.store.string());
    return 1;
  }
  if (found.size() > 1) {
    fmt::print(stderr, "error: '{}' is the start of {} stages' hashes ({}, {}, ...); give more digits\n", hash,
               found.size(), found[0].substr(0, 16), found[1].substr(0, 16));
    return 1;
  }
  ir::Stage stage;
  std::vector<std::string> deps;
  std::string error;
  if (!store.readStage(found.front(), stage, deps, error)) {
    fmt::print(stderr, "error: {}\n", error);
    return 1;
  }
  // The stage's dependencies enter its stage.json by hash; it needs them finished.
  for (const std::string& dep : deps) {
    if (!store.load(dep)) {
      fmt::print(stderr, "error: stage '{}' needs stage {} to finish first: run `gyrus run-stage --store {} {}`\n",
                 stage.name, dep.substr(0, 12), options.store.string(), dep.substr(0, 12));
      return 1;
    }
  }
  exec::RunSettings settings = settingsFor(options);
  exec::InProcessExecutor runtime;
  AnnouncingExecutor announcing(runtime, settings.threads);
  std::unique_ptr<exec::RankExecutor> ranked = rankExecutor(announcing, options, settings);
  exec::Executor& executor = ranked ? static_cast<exec::Executor&>(*ranked) : announcing;
  std::vector<StageOutcome> outcomes{exec::runStage(store, stage, deps, executor, settings)};
  logFailures(outcomes);
  Reported r{&outcomes.front(), {}, {}};
  if (stage.kind == ir::StageKind::Evaluate) r.declared = stage.evaluate.metrics;
  int code = exec::exitCodeOf(outcomes);
  printReport({r}, options, code);
  return code;
}

int runRank(const std::string& hash, const RunOptions& options) {
  // Started by a launcher on this machine: stop when it does (a kill, a crash).
  if (options.rank != "slurm") prctl(PR_SET_PDEATHSIG, SIGTERM);
  int rank = -1;
  std::string rankText = options.rank;
  if (rankText == "slurm") {
    const char* id = std::getenv("SLURM_PROCID");
    rankText = id != nullptr ? id : "";
  }
  try {
    size_t used = 0;
    rank = std::stoi(rankText, &used);
    if (used != rankText.size()) rank = -1;
  } catch (const std::exception&) {
    rank = -1;
  }
  if (rank < 0 || rank >= options.ranks) {
    fmt::print(stderr, "error: --rank '{}' is not a rank of --ranks {} (0 to {}{})\n", rankText, options.ranks,
               options.ranks - 1, options.rank == "slurm" ? "; SLURM_PROCID is not set: start it with srun" : "");
    return 1;
  }
  exec::Store store(options.store);
  ir::Stage stage;
  std::vector<std::string> deps;
  std::string error;
  if (!store.readStage(hash, stage, deps, error)) {
    fmt::print(stderr, "error: rank {}: {}\n", rank, error);
    return 1;
  }
  exec::RunSettings settings = settingsFor(options);
  rt::StageContext ctx;
  ctx.dir = store.stageDir(stage.hash);
  if (!deps.empty()) ctx.pretrainDir = store.stageDir(deps.front());
  ctx.threads = settings.threads;
  ctx.device = settings.device;
  ctx.volumeCache = settings.volumeCache;
  ctx.loaderMemory = settings.loaderMemory;
  ctx.rank = rank;
  ctx.worldSize = options.ranks;
  ctx.rendezvous = options.rendezvous;
  // Rank 0 speaks for the stage (the launcher prints its outcome); the others are quiet.
  if (rank == 0) ctx.progress = [&](std::string_view line) { fmt::print(stderr, "[{}] {}\n", stage.name, line); };
  rt::StageResult result;
  exec::InProcessExecutor runtime;
  if (stage.kind != ir::StageKind::Pretrain) {
    result.status = rt::StageResult::Status::UserError;
    result.message = "stage '" + stage.name + "' is an evaluation: only pretraining stages run as ranks";
  } else if (!runtime.start(error)) {
    result.status = rt::StageResult::Status::InternalError;
    result.message = error;
  } else {
    result = runtime.execute(stage, ctx);
  }
  // The launcher reads it (atomically: it may look as soon as the process ends).
  fs::path out = options.rankResults / ("result-" + std::to_string(rank) + ".json");
  {
    std::ofstream f(out.string() + ".tmp");
    f << exec::stageResultJson(result);
  }
  std::error_code ec;
  fs::rename(out.string() + ".tmp", out, ec);
  if (result.status == rt::StageResult::Status::Ok) return 0;
  return result.status == rt::StageResult::Status::UserError ? 1 : 2;
}

int writePlan(const ir::Experiment& experiment, const fs::path& storeDir) {
  exec::Store store(storeDir);
  try {
    for (const ir::Stage& stage : experiment.stages) store.prepare(stage, ir::depHashes(stage, experiment));
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: cannot use the run store '{}': {}; choose a writable --store\n", storeDir.string(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace gyrus::driver
