// Data-parallel pretraining (`gyrus run --ranks N`, docs/cluster.md): a pretraining
// stage runs as N processes, ranks 0..N-1 of one c10d process group, each training on
// its shard of every batch.
//
// The process that runs the stage (gyrus run, or gyrus run-stage as a --jobs worker or
// a Slurm task) keeps the stage's lock and records its result, as for one process; the
// ranks are its child processes, `gyrus run-stage HASH --store DIR --rank R --ranks N
// --rendezvous FILE --result FILE`, which neither lock nor record. Locally the launcher
// starts N of them (rank r gets threads / N threads); under Slurm it starts one `srun
// --ntasks=N` whose tasks take their rank from SLURM_PROCID (`--rank slurm`). The ranks
// meet through a c10d FileStore: a file in a fresh temporary directory locally, in the
// stage directory under Slurm (the nodes share the store's file system); it is removed
// when the stage ends. Every rank writes its StageResult to its --result file; rank 0's
// is the stage's. When a rank fails, the launcher stops the others (SIGTERM) and
// reports the first failure.
//
// Evaluations are not split: they run in the launcher's process as usual.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/exec/Scheduler.h"

namespace gyrus::exec {

struct RankSettings {
  int ranks = 1;                    ///< processes per pretraining stage
  std::string executable;           ///< the gyrus executable the ranks run (absolute)
  std::filesystem::path store;      ///< the run store (the ranks read the stage from it)
  /// "local": N child processes; "srun": one `srun --ntasks=N` (inside a Slurm allocation).
  std::string launcher = "local";
  std::string srun = "srun";        ///< the srun command (tests point it elsewhere)
};

/// Why `stage` cannot be split over `ranks` processes (the batch is not a multiple of
/// the ranks), with the fix; empty when it can.
std::string checkRanks(const ir::PretrainStage& stage, int ranks);

/// The command lines that start the ranks of stage `hash` (one per rank locally, one
/// srun for all under Slurm). `resultDir` receives each rank's result-R.json,
/// `rendezvous` is the FileStore path. `threads`: each rank's.
std::vector<std::vector<std::string>> rankCommands(const RankSettings& ranks, const std::string& hash,
                                                   const RunSettings& run, int threads,
                                                   const std::filesystem::path& rendezvous,
                                                   const std::filesystem::path& resultDir);

/// Removes the local rendezvous directories (`gyrus-ranks-*` in `tmp`) whose gyrus is
/// gone: a killed run (SIGKILL, a lost shell) never runs its cleanup. Each directory
/// names its owner's pid in a file `owner`; one without it, or whose owner still runs,
/// is left alone. Returns how many were removed.
int removeStaleRendezvous(const std::filesystem::path& tmp);

/// An executor that runs pretraining stages as `settings.ranks` processes (above) and
/// every other stage through `inner`.
class RankExecutor final : public Executor {
 public:
  RankExecutor(Executor& inner, RankSettings settings, RunSettings run);
  bool start(std::string& error) override { return inner_.start(error); }
  rt::StageResult execute(const ir::Stage& stage, const rt::StageContext& ctx) override;
  std::string describe() const override { return inner_.describe(); }

 private:
  Executor& inner_;
  RankSettings settings_;
  RunSettings run_;
};

/// A StageResult as the ranks write it (--result) and the launcher reads it.
std::string stageResultJson(const rt::StageResult& result);
bool parseStageResult(const std::string& text, rt::StageResult& result);

}  // namespace gyrus::exec
