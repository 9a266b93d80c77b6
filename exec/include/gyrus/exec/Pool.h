// `gyrus run --jobs N`: independent stages run at once, each in its own worker process
// (`gyrus run-stage HASH --store DIR --json`), dependents after their inputs.
//
// Every stage's stage.json is written to the store first; stages already finished there
// are reused without a worker. Each worker takes the stage's lock in the store (so two
// `gyrus run` processes on one store never run a stage twice: the second reports it as
// run by another process), gets `threads / jobs` threads (at least one), and writes its
// outcome as JSON on stdout; its progress lines (`[stage] ...`) go to our stderr as they
// come. On a host with several GPUs each worker sees one (CUDA_VISIBLE_DEVICES), the
// least used. On SIGINT (Ctrl-C) no new worker starts, the running ones (which get the signal
// too) are waited for, and the stages not started are reported as skipped; a rerun
// finishes what is missing (a pretraining resumes from its last checkpoint).
#pragma once

#include <string>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"

namespace gyrus::exec {

struct PoolSettings {
  int jobs = 2;               ///< workers at once
  std::string executable;     ///< the gyrus executable the workers run
  /// The GPUs the workers share out, one each at a time, or one per rank for a
  /// data-parallel pretraining (CUDA_VISIBLE_DEVICES of each worker; see visibleGpus):
  /// empty leaves every worker the caller's environment.
  std::vector<std::string> gpus;
  /// A live view on stderr (a terminal): one line per running stage (its latest progress
  /// line), redrawn in place, with the pool's lines and each stage's warnings, errors and
  /// end printed above it. Off: every line as it comes (logs, pipes).
  bool live = false;
  int width = 100;  ///< the terminal's columns (live view lines are cut to fit)
  int ranks = 1;    ///< processes per pretraining stage (`--ranks`, Ranks.h): passed to each worker
};

/// The GPUs a pool hands out for stages on `device`: for `auto` or `cuda`, those of
/// $CUDA_VISIBLE_DEVICES when it is set (`visible`), else the driver's
/// (/proc/driver/nvidia/gpus, `driverCount` of them): "0", "1", ...; none for `cpu` or
/// `cuda:N` (every worker then uses what it was asked to), or with fewer than two.
std::vector<std::string> visibleGpus(const std::string& device, const char* visible, int driverCount);
/// The driver's GPU count (entries of /proc/driver/nvidia/gpus; 0 without the driver).
int driverGpuCount();

/// Which GPU the next worker gets: the index into `gpus` used by the fewest running
/// workers (`inUse[i]` counts them), the first such; -1 when `gpus` is empty.
int pickGpu(const std::vector<std::string>& gpus, const std::vector<int>& inUse);
/// The GPUs a data-parallel worker (`--ranks count`) gets, one per rank: the `count`
/// least used indexes into `gpus` (pickGpu's order: fewest workers, then the first),
/// ascending; all of them when there are fewer than `count` (the ranks then share); empty
/// when `gpus` is.
std::vector<int> pickGpus(const std::vector<std::string>& gpus, const std::vector<int>& inUse, int count);

/// Runs every stage of `experiment` with up to `pool.jobs` workers. Outcomes in the
/// experiment's order (every stage has one); `settings.log` receives the pool's lines.
/// A stage whose dependency did not finish is skipped, as in runExperiment.
std::vector<StageOutcome> runExperimentInPool(const ir::Experiment& experiment, const Store& store,
                                              const RunSettings& settings, const PoolSettings& pool);

}  // namespace gyrus::exec
