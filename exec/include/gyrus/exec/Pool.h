// `gyrus run --jobs N`: independent stages run at once, each in its own worker process
// (`gyrus run-stage HASH --store DIR --json`), dependents after their inputs.
//
// Every stage's stage.json is written to the store first; stages already finished there
// are reused without a worker. Each worker takes the stage's lock in the store (so two
// `gyrus run` processes on one store never run a stage twice: the second reports it as
// run by another process), gets `threads / jobs` threads (at least one), and writes its
// outcome as JSON on stdout; its progress lines (`[stage] ...`) go to our stderr as they
// come. On SIGINT (Ctrl-C) no new worker starts, the running ones (which get the signal
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
};

/// Runs every stage of `experiment` with up to `pool.jobs` workers. Outcomes in the
/// experiment's order (every stage has one); `settings.log` receives the pool's lines.
/// A stage whose dependency did not finish is skipped, as in runExperiment.
std::vector<StageOutcome> runExperimentInPool(const ir::Experiment& experiment, const Store& store,
                                              const RunSettings& settings, const PoolSettings& pool);

}  // namespace gyrus::exec
