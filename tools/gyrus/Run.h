// `gyrus run` and `gyrus run-stage`: execute stages through gyrus_exec and report their
// results (one schema for the table and --json).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "gyrus/Ir.h"
#include "gyrus/Plan.h"
#include "gyrus/exec/Slurm.h"

namespace gyrus::driver {

struct RunOptions {
  std::filesystem::path store;
  bool json = false;
  int threads = 0;
  /// `--jobs N`: stages at once, in worker processes (1: in this process).
  int jobs = 1;
  /// `--device`: auto, cpu, cuda or cuda:N.
  std::string device = "auto";
  /// `--volume-cache DIR`: the on-disk cache of preprocessed volumes; empty: none.
  std::filesystem::path volumeCache;
  /// `--loader-memory SIZE` in bytes: larger pretraining data sets are streamed; 0:
  /// half of the machine's memory.
  int64_t loaderMemory = 0;
  /// `--executor`: local (this machine) or slurm (job arrays, docs/cluster.md).
  std::string executor = "local";
  /// The Slurm executor's settings (--partition, --time, ...); its executable is set by runExperiment.
  exec::SlurmSettings slurm;
  /// `--cancel` (with --executor slurm): cancel the experiment's queued and running tasks.
  bool cancel = false;
  /// `--ranks N` (or the site's `ranks`): processes per pretraining stage (Ranks.h).
  int ranks = 1;
  /// run-stage: how the ranks start, "local" or "srun" (`--launcher`).
  std::string launcher = "local";
  /// run-stage as one rank (`--rank R|slurm`, `--rendezvous`, `--result`).
  std::string rank;
  std::string rendezvous;
  std::filesystem::path rankResults;
  std::string experimentPath;
  /// The sweep points and which stages each uses (for the results' legend); may be null.
  const Plan* plan = nullptr;
};

/// Sets OMP_WAIT_POLICY for the runtime module, unless the user set it: PASSIVE (idle
/// threads sleep at once) when other processes keep more than a fifth of the cores
/// busy, else libgomp's default (they spin a while first). Returns the policy in effect
/// ("default" for libgomp's).
std::string chooseOmpWaitPolicy();

/// Parses a size such as `8GiB`, `512MiB`, `2G` or `1000000` (bytes) into `bytes`.
/// Returns false for anything else (or a size of 0).
bool parseByteSize(const std::string& text, int64_t& bytes);

/// `gyrus run`: every stage of a checked experiment. Returns the process exit code: 0
/// ok, 1 user error, 2 internal error.
int runExperiment(const ir::Experiment& experiment, const RunOptions& options);

/// `gyrus run-stage --store DIR HASH`: one stage from its stage.json in the store (HASH
/// may be a unique prefix), after its dependencies have finished there. Same exit codes.
int runStoredStage(const std::string& hash, const RunOptions& options);

/// `gyrus run-stage HASH --store DIR --rank R --ranks N --rendezvous FILE --result DIR`:
/// one rank of a data-parallel pretraining, started by the launcher (gyrus_exec's
/// RankExecutor) that holds the stage's lock; it neither locks nor records, and writes
/// its StageResult to DIR/result-R.json. Same exit codes.
int runRank(const std::string& hash, const RunOptions& options);

/// `gyrus plan --store DIR`: writes every stage's stage.json into the store, runs nothing.
int writePlan(const ir::Experiment& experiment, const std::filesystem::path& store);

}  // namespace gyrus::driver
