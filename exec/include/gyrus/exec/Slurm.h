// `gyrus run --executor slurm`: the stages of an experiment as Slurm job arrays, one per
// level of the stage DAG, each task running `gyrus run-stage` on the shared store.
//
// The store gets, besides every stage's stage.json (as `gyrus plan --store` writes it):
//   <store>/slurm/<tag>.sh                 the generated batch script of one array
//   <store>/slurm/<JOB>_<TASK>.log         a task's output (Slurm's and run-stage's lines)
//   <store>/stages/<hash>/slurm.json       the stage's latest task: {"job", "attempt", "log"}
// The waiting `gyrus run` polls squeue, reports stages as they finish, resubmits failed
// tasks (with their pending dependents) up to SlurmSettings::retries times, and leaves
// the jobs to Slurm when interrupted; `gyrus run --cancel` and `gyrus runs ls` read the
// slurm.json records. docs/cluster.md tells the whole story.
//
// Nothing a user writes reaches a shell unquoted: sbatch gets its options as separate
// arguments (no shell), the batch script holds only single-quoted values and validated
// hashes, and the extra `#SBATCH` lines are single comment lines.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"

namespace gyrus::exec {

/// How stages are submitted: filled from `gyrus run`'s flags (and, later, a site file).
struct SlurmSettings {
  std::string partition;  ///< --partition (empty: the cluster's default)
  std::string account;    ///< --account (empty: the user's default)
  std::string time;       ///< --time per task, e.g. 2:00:00 (empty: the partition's default)
  int gpusPerTask = 0;    ///< --gpus-per-task (0: none asked for)
  int cpusPerTask = 0;    ///< --cpus-per-task, and run-stage's threads (0: Slurm's default, 1)
  int maxRunning = 0;     ///< the arrays' %K throttle (0: none)
  /// Tasks per array: a level of the DAG with more stages goes out as several arrays.
  /// Read from the cluster (`scontrol show config`, MaxArraySize) when the run starts;
  /// 1000 when it cannot be read.
  int maxArraySize = 1000;
  int retries = 2;        ///< resubmissions of a failed task
  /// Processes per pretraining stage (`--ranks`, Ranks.h): every task asks for
  /// `--ntasks=ranks`, and a pretraining task starts its ranks with `srun` inside it.
  int ranks = 1;
  /// Lines copied into every batch script's header, each `#SBATCH ...` on one line.
  std::vector<std::string> extraSbatchLines;
  std::string executable;    ///< the gyrus executable the tasks run (absolute)
  double pollSeconds = 2.0;  ///< how often squeue is asked
  /// The commands, found on PATH (tests may point them elsewhere).
  std::string sbatch = "sbatch", squeue = "squeue", scancel = "scancel", scontrol = "scontrol";
};

/// An error message when `settings` cannot be used (an extra line that is not one
/// `#SBATCH` line, a relative executable, a negative count); empty when they can.
std::string checkSlurmSettings(const SlurmSettings& settings);

/// `text` as one shell word: single-quoted, each `'` written as `'\''`.
std::string shellQuote(std::string_view text);

/// `path` as a Slurm file name pattern that means exactly it (`%` doubled); nullopt
/// when Slurm cannot express it (a backslash turns pattern processing off).
std::optional<std::string> slurmPathPattern(const std::string& path);

/// The batch script of one array: task i runs `gyrus run-stage` on `hashes[i]` in the
/// store. `logRedirect`: the script sends its own output to the task's log (used when
/// Slurm's --output cannot name the store, see slurmPathPattern).
std::string batchScript(const std::vector<std::string>& hashes, const std::filesystem::path& store,
                        const SlurmSettings& slurm, const RunSettings& run, bool logRedirect);

/// sbatch's arguments (after the program name) for an array of `tasks` tasks running
/// `script`, after the tasks `after` (ids such as 123_4); `output`: the --output pattern.
std::vector<std::string> sbatchArguments(const SlurmSettings& slurm, size_t tasks, const std::vector<std::string>& after,
                                         const std::string& jobName, const std::string& output,
                                         const std::filesystem::path& script);

/// One array task as squeue reports it.
struct SlurmTask {
  std::string id;      ///< JOB_TASK, e.g. "123_4"
  std::string state;   ///< PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
  std::string reason;  ///< why it waits or ended (Dependency, NonZeroExitCode, ...)
  int exitStatus = 0;  ///< the raw wait status (exit code << 8 | signal)
};

/// squeue's view of every task of the arrays `jobs` (array job ids), finished ones
/// included while Slurm keeps them; a job Slurm no longer knows is simply absent.
/// False with `error` when squeue cannot be run or fails.
bool querySlurm(const SlurmSettings& slurm, const std::vector<std::string>& jobs, std::map<std::string, SlurmTask>& tasks,
                std::string& error);

/// The tasks in squeue's output (`JobArrayID|State|exit_code|Reason|` lines).
std::map<std::string, SlurmTask> parseSqueue(const std::string& text);

/// Whether a task is still queued or running (not finished in any way).
bool slurmInFlight(const SlurmTask& task);

/// A stage's latest Slurm task (stages/<hash>/slurm.json).
struct SlurmRecord {
  std::string job;  ///< JOB_TASK
  int attempt = 1;
  std::string log;
};
std::optional<SlurmRecord> readSlurmRecord(const Store& store, const std::string& hash);

/// The stages among `hashes` whose recorded task Slurm reports queued or running, with
/// that task (for `gyrus runs ls` and --cancel). Empty when squeue is not there.
std::map<std::string, SlurmTask> slurmTasksInFlight(const Store& store, const std::vector<std::string>& hashes,
                                                    const SlurmSettings& slurm);

struct SlurmRun {
  std::vector<StageOutcome> outcomes;  ///< in the experiment's order
  bool interrupted = false;            ///< Ctrl-C: the jobs were left to Slurm
};

/// Submits the stages of `experiment` not finished in `store` and follows them to the
/// end (see the file comment); `settings.log` receives the progress lines. Stages
/// already queued or running in Slurm (a previous, interrupted run) are followed, not
/// submitted again.
SlurmRun runExperimentOnSlurm(const ir::Experiment& experiment, const Store& store, const RunSettings& settings,
                              const SlurmSettings& slurm);

/// `gyrus run --executor slurm --cancel`: cancels the queued and running tasks of the
/// experiment's stages. Exit code 0, or 1 when scancel fails.
int cancelSlurmRun(const ir::Experiment& experiment, const Store& store, const SlurmSettings& slurm,
                   const std::function<void(const std::string&)>& log);

}  // namespace gyrus::exec
