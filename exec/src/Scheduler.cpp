// Running stages (see Scheduler.h).
#include "gyrus/exec/Scheduler.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "gyrus/exec/Module.h"

namespace gyrus::exec {

namespace fs = std::filesystem;

std::string_view toString(StageOutcome::Status status) {
  switch (status) {
    case StageOutcome::Status::Ran: return "ran";
    case StageOutcome::Status::Resumed: return "resumed";
    case StageOutcome::Status::Cached: return "cached";
    case StageOutcome::Status::Failed: return "failed";
    case StageOutcome::Status::Skipped: return "skipped";
  }
  return "?";
}

InProcessExecutor::InProcessExecutor() = default;
InProcessExecutor::~InProcessExecutor() = default;

std::unique_ptr<rt::Runtime> loadRuntime(std::string& error) {
  static const ModuleSpec spec{"libgyrus_runtime.so", "GYRUS_RUNTIME", "gyrus_runtime_create",
                               "runtime module",      "gyrus_runtime", rt::kRuntimeAbiVersion};
  return loadModule<rt::Runtime>(spec, error);
}

bool InProcessExecutor::start(std::string& error) {
  if (runtime_) return true;
  runtime_ = loadRuntime(error);
  return runtime_ != nullptr;
}

rt::StageResult InProcessExecutor::execute(const ir::Stage& stage, const rt::StageContext& ctx) {
  return stage.kind == ir::StageKind::Pretrain ? runtime_->runPretrain(stage.pretrain, ctx)
                                               : runtime_->runEvaluate(stage.evaluate, ctx);
}

std::string InProcessExecutor::describe() const { return runtime_ ? runtime_->describe() : std::string(); }

namespace {

StageOutcome outcomeFor(const ir::Stage& stage) {
  StageOutcome o;
  o.hash = stage.hash;
  o.name = stage.name;
  o.kind = stage.kind;
  return o;
}

StageOutcome failed(StageOutcome o, std::string message, int code, bool stopsRun = false) {
  o.status = StageOutcome::Status::Failed;
  o.message = std::move(message);
  o.exitCode = code;
  o.stopsRun = stopsRun;
  return o;
}

}  // namespace

StageOutcome runStage(const Store& store, const ir::Stage& stage, const std::vector<std::string>& depHashes,
                      Executor& executor, const RunSettings& settings) {
  StageOutcome outcome = outcomeFor(stage);
  auto log = [&](const std::string& line) {
    if (settings.log) settings.log(line);
  };
  // A finished stage is reused without taking its lock (result.json is written
  // atomically), so a read-only store still serves its results.
  std::optional<StageRecord> done = store.load(stage.hash);
  fs::path dir = store.stageDir(stage.hash);
  StageLock lock;
  if (!done) {
    try {
      dir = store.prepare(stage, depHashes);
    } catch (const std::exception& e) {
      return failed(outcome, "cannot use the run store '" + store.root().string() + "': " + e.what(), 1, true);
    }
    lock = store.tryLock(stage.hash);
    if (!lock.held()) {
      if (!lock.error().empty())
        return failed(outcome,
                      "cannot use the run store '" + store.root().string() + "': " + lock.error() +
                          "; choose a writable --store",
                      1, true);
      return failed(outcome,
                    "stage '" + stage.name + "' is being run by another gyrus process (store " +
                        store.root().string() + "); wait for it or use another --store",
                    1);
    }
    done = store.load(stage.hash);  // another process may have finished it meanwhile
  }
  std::string kind(ir::toString(stage.kind));
  if (done) {
    outcome.status = StageOutcome::Status::Cached;
    outcome.metrics = done->metrics;
    outcome.device = done->device;
    log("[" + stage.name + "] " + kind + " " + stage.name + ": cached (" + stage.hash.substr(0, 12) + ")");
    return outcome;
  }
  for (const std::string& dep : depHashes) {
    if (!store.load(dep)) {
      outcome.status = StageOutcome::Status::Skipped;
      outcome.message = "its dependency " + dep.substr(0, 12) + " has not finished";
      return outcome;
    }
  }
  std::string error;
  if (!executor.start(error)) return failed(outcome, error, 2, true);

  log("[" + stage.name + "] " + kind + " " + stage.name + " (" + stage.hash.substr(0, 12) + ")");
  rt::StageContext ctx;
  ctx.dir = dir;
  ctx.threads = settings.threads > 0 ? settings.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ctx.volumeCache = settings.volumeCache;
  ctx.device = settings.device;
  ctx.loaderMemory = settings.loaderMemory;
  ctx.progress = [&](std::string_view line) {
    if (settings.progress) settings.progress(stage.name, line);
  };
  // An evaluation's dependency is the pretraining it judges; a pretraining's (with
  // `init`) is the one it starts from.
  if (!depHashes.empty()) ctx.pretrainDir = store.stageDir(depHashes.front());
  auto start = std::chrono::steady_clock::now();
  rt::StageResult result = executor.execute(stage, ctx);
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.status != rt::StageResult::Status::Ok) {
    bool user = result.status == rt::StageResult::Status::UserError;
    return failed(outcome, result.message, user ? 1 : 2);
  }
  outcome.status = result.resumed ? StageOutcome::Status::Resumed : StageOutcome::Status::Ran;
  outcome.metrics = result.metrics;
  outcome.device = result.device;
  try {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    store.save(stage.hash, {stage.name, kind, result.metrics, outcome.seconds, result.resumed, executor.describe(),
                            result.device, host, result.deviceName, result.precision});
  } catch (const std::exception& e) {
    return failed(outcome, "cannot record stage '" + stage.name + "' in the run store: " + e.what(), 1, true);
  }
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", outcome.seconds);
  log("[" + stage.name + "] done in " + seconds + " s");
  return outcome;
}

std::vector<StageOutcome> runExperiment(const ir::Experiment& experiment, const Store& store, Executor& executor,
                                        const RunSettings& settings) {
  std::vector<StageOutcome> outcomes;
  std::vector<bool> finished(experiment.stages.size(), false);
  for (size_t i = 0; i < experiment.stages.size(); ++i) {
    const ir::Stage& stage = experiment.stages[i];
    std::vector<std::string> deps;
    std::string missing;
    for (size_t d : stage.deps) {
      deps.push_back(experiment.stages[d].hash);
      if (!finished[d] && missing.empty()) missing = experiment.stages[d].name;
    }
    if (!missing.empty()) {
      StageOutcome o = outcomeFor(stage);
      o.message = "it needs '" + missing + "', which did not finish";
      outcomes.push_back(std::move(o));
      continue;
    }
    StageOutcome o = runStage(store, stage, deps, executor, settings);
    finished[i] = o.status != StageOutcome::Status::Failed && o.status != StageOutcome::Status::Skipped;
    bool stop = o.stopsRun;
    outcomes.push_back(std::move(o));
    if (stop) break;
  }
  return outcomes;
}

int exitCodeOf(const std::vector<StageOutcome>& outcomes) {
  for (const StageOutcome& o : outcomes)
    if (o.status == StageOutcome::Status::Failed) return o.exitCode;
  return 0;
}

}  // namespace gyrus::exec
