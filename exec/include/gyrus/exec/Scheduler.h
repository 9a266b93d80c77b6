// Running stages: an executor interface and the DAG scheduler over a run store.
//
// `gyrus run` schedules a whole experiment (`runExperiment`); `gyrus run-stage` runs one
// stored stage (`runStage`). Both go through the same steps: reuse a finished result,
// take the stage's lock, check its dependencies, execute it, record result.json.
// Executors decide where a stage runs: in this process through the runtime module now;
// a process pool and Slurm are further executors behind the same interface.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/exec/Store.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::exec {

/// Runs one stage somewhere.
class Executor {
 public:
  virtual ~Executor() = default;
  /// Prepares to run stages (e.g. loads the runtime); false with `error` when it cannot.
  virtual bool start(std::string& error) = 0;
  /// Runs (or resumes) `stage`: `ctx.dir` is its store directory, `ctx.pretrainDir` its
  /// dependency's. Never throws.
  virtual rt::StageResult execute(const ir::Stage& stage, const rt::StageContext& ctx) = 0;
  /// One line on what runs the stages (LibTorch version, threads, BLAS); after start().
  virtual std::string describe() const = 0;
};

/// Loads the runtime module (libgyrus_runtime.so, or $GYRUS_RUNTIME); null with `error`
/// when it is missing or built for another version. For its executor and `gyrus bench`.
std::unique_ptr<rt::Runtime> loadRuntime(std::string& error);

/// Runs stages in this process through the runtime module (libgyrus_runtime.so, or
/// $GYRUS_RUNTIME), loaded on start().
class InProcessExecutor final : public Executor {
 public:
  InProcessExecutor();
  ~InProcessExecutor() override;
  bool start(std::string& error) override;
  rt::StageResult execute(const ir::Stage& stage, const rt::StageContext& ctx) override;
  std::string describe() const override;

 private:
  std::unique_ptr<rt::Runtime> runtime_;
};

/// What happened to one stage in a run.
struct StageOutcome {
  enum class Status { Ran, Resumed, Cached, Failed, Skipped };
  std::string hash;
  std::string name;
  ir::StageKind kind = ir::StageKind::Pretrain;
  Status status = Status::Skipped;
  double seconds = 0.0;
  std::vector<rt::Metric> metrics;
  /// Failed: what went wrong and how to fix it. Skipped: which dependency is missing.
  std::string message;
  /// Ran or resumed: the device it ran on; cached: the device that computed it.
  std::string device;
  /// Failed: 1 for the user's mistake (bad data, a busy or unwritable store), 2 for ours.
  int exitCode = 0;
  /// Failed in a way no later stage escapes (the executor cannot start, the store
  /// cannot be written): the scheduler stops.
  bool stopsRun = false;
};

/// "ran", "resumed", "cached", "failed", "skipped".
std::string_view toString(StageOutcome::Status status);

struct RunSettings {
  /// Threads for intra-op parallelism (0: all cores).
  int threads = 0;
  /// `--volume-cache DIR`: the on-disk cache of preprocessed volumes; empty: none.
  std::filesystem::path volumeCache;
  /// `--loader-memory` in bytes; 0: half of the machine's memory.
  int64_t loaderMemory = 0;
  /// The device stages run on (`--device`; StageContext::device): auto, cpu, cuda, cuda:N.
  std::string device = "auto";
  /// The scheduler's own lines and each stage's progress lines (stage name first).
  std::function<void(const std::string& line)> log;
  std::function<void(const std::string& stage, std::string_view line)> progress;
};

/// Runs one stage whose dependencies are the stages `depHashes` of the store: a finished
/// stage is reused (without its lock, so read-only stores serve results); otherwise its
/// directory is prepared, its lock taken, its dependencies checked, and it is executed
/// and recorded.
StageOutcome runStage(const Store& store, const ir::Stage& stage, const std::vector<std::string>& depHashes,
                      Executor& executor, const RunSettings& settings);

/// Runs every stage of an experiment in dependency order. A stage whose dependency did
/// not finish is skipped; a failed stage does not stop the stages that do not need it,
/// unless the failure is one no later stage can escape (the executor cannot start, the
/// store cannot be written). Returns one outcome per stage that was reached, in order.
std::vector<StageOutcome> runExperiment(const ir::Experiment& experiment, const Store& store, Executor& executor,
                                        const RunSettings& settings);

/// The process exit code for a set of outcomes: 0, or the first failure's code.
int exitCodeOf(const std::vector<StageOutcome>& outcomes);

}  // namespace gyrus::exec
