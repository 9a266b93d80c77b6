// The run store: a directory holding each stage's work under its content hash.
//
//   <store>/stages/<hash>/stage.json    the stage's serialised IR (gyrus/IrJson.h):
//                                       `gyrus run-stage` runs a stage from it alone
//   <store>/stages/<hash>/result.json   written last, atomically: the stage is done
//   <store>/stages/<hash>/lock          held (flock) while a process works on the stage
//   <store>/stages/<hash>/...           the runtime's checkpoints and artefacts
//
// A stage whose result.json exists is reused; one without it is (re)started, and the
// runtime resumes from whatever checkpoint it left.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::exec {

/// A finished stage's result.json: the one results schema of a stage, read by `gyrus
/// run`'s table and `--json`, `gyrus run-stage` and reports.
///   {"hash", "name", "kind", "seconds", "resumed", "runtime", "device", "host", "metrics": [{"name", "value"}]}
/// A metric that was NaN (e.g. AUROC of a single-class test set) is stored as null.
struct StageRecord {
  std::string name;
  std::string kind;  ///< "pretrain" or "evaluate"
  std::vector<rt::Metric> metrics;
  double seconds = 0.0;
  bool resumed = false;
  std::string runtime;  ///< the runtime that computed it (LibTorch version, threads, BLAS)
  std::string device;   ///< the device it ran on ("cpu", "cuda:0"; not part of its identity)
  std::string host;     ///< the machine it ran on
  std::string deviceName;  ///< the GPU's name; empty on a CPU
  std::string precision;   ///< "fp32" or "bf16" (part of the identity, recorded for reports)
};

/// What a store holds of one stage (`gyrus runs`).
struct StageEntry {
  enum class Status { Done, Running, Incomplete, Damaged };
  std::string hash;
  std::string name;  ///< from stage.json ("" when it cannot be read)
  std::string kind;
  Status status = Status::Incomplete;
  std::optional<StageRecord> record;  ///< when done
  int64_t bytes = 0;                  ///< every file of its directory
  std::filesystem::file_time_type when;  ///< result.json's modification time, else the directory's
};

/// "done", "running", "incomplete", "damaged".
std::string_view toString(StageEntry::Status status);

/// An exclusive advisory lock on a stage directory, released on destruction.
class StageLock {
 public:
  StageLock() = default;
  StageLock(StageLock&& o) noexcept : fd_(o.fd_), error_(std::move(o.error_)) { o.fd_ = -1; }
  StageLock& operator=(StageLock&& o) noexcept;
  StageLock(const StageLock&) = delete;
  StageLock& operator=(const StageLock&) = delete;
  ~StageLock();
  bool held() const { return fd_ >= 0; }
  /// When not held: why the lock file could not be opened (empty: another process
  /// holds the lock).
  const std::string& error() const { return error_; }

 private:
  friend class Store;
  int fd_ = -1;
  std::string error_;
};

class Store {
 public:
  explicit Store(std::filesystem::path root) : root_(std::move(root)) {}
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path stageDir(const std::string& hash) const { return root_ / "stages" / hash; }
  /// Creates the stage's directory and writes its stage.json (once; again when the one
  /// there cannot be read back as this stage). Throws
  /// std::runtime_error / filesystem_error when the store is not writable.
  std::filesystem::path prepare(const ir::Stage& stage, const std::vector<std::string>& depHashes) const;
  /// Reads a stage's stage.json; false with `error` set when it is missing or invalid.
  bool readStage(const std::string& hash, ir::Stage& stage, std::vector<std::string>& depHashes,
                 std::string& error) const;
  /// The stages whose hash starts with `prefix` (at most a few).
  std::vector<std::string> findStages(const std::string& prefix) const;
  /// Every stage directory of the store, sorted by hash.
  std::vector<std::string> stageHashes() const;
  /// What the store holds of a stage: done (result.json), running (another process
  /// holds its lock), incomplete (started, or planned, not finished), or damaged (no
  /// readable stage.json and no result).
  StageEntry inspect(const std::string& hash) const;
  /// Removes a stage's directory; false with `error` when a process is running it or it
  /// cannot be removed.
  bool remove(const std::string& hash, std::string& error) const;
  /// Takes the stage's lock without waiting; `held()` is false when another process has it.
  StageLock tryLock(const std::string& hash) const;
  /// The finished result of a stage, if it has one.
  std::optional<StageRecord> load(const std::string& hash) const;
  /// Records a finished stage (atomically: temp file + rename).
  void save(const std::string& hash, const StageRecord& record) const;

 private:
  std::filesystem::path root_;
};

/// Writes `text` to `path` atomically (temp file in the same directory, fsync, rename).
void writeFileAtomic(const std::filesystem::path& path, const std::string& text);

}  // namespace gyrus::exec
