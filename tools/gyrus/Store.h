// The run store: a directory holding each stage's work under its content hash.
//
//   <store>/stages/<hash>/stage.ir      the stage's canonical IR (what the hash covers)
//   <store>/stages/<hash>/result.json   written last, atomically: the stage is done
//   <store>/stages/<hash>/lock          held (flock) while a process works on the stage
//   <store>/stages/<hash>/...           the runtime's checkpoints and artefacts
//
// A stage whose result.json exists is reused; one without it is (re)started, and the
// runtime resumes from whatever checkpoint it left.
#pragma once

#include <filesystem>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::driver {

struct StageRecord {
  std::vector<rt::Metric> metrics;
  double seconds = 0.0;
  bool resumed = false;
};

/// An exclusive advisory lock on a stage directory, released on destruction.
class StageLock {
 public:
  StageLock() = default;
  StageLock(StageLock&& o) noexcept : fd_(o.fd_), error_(std::move(o.error_)) { o.fd_ = -1; }
  StageLock& operator=(StageLock&& o) noexcept;
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
  /// The stage's directory (created with its stage.ir on first use).
  std::filesystem::path prepare(const ir::Stage& stage, const ir::Experiment& ex);
  std::filesystem::path stageDir(const ir::Stage& stage) const { return root_ / "stages" / stage.hash; }
  /// Takes the stage's lock without waiting; `held()` is false when another process has it.
  StageLock tryLock(const ir::Stage& stage) const;
  /// The finished result of a stage, if it has one.
  std::optional<StageRecord> load(const ir::Stage& stage) const;
  /// Records a finished stage (atomically: temp file + rename).
  void save(const ir::Stage& stage, const StageRecord& record) const;

 private:
  std::filesystem::path root_;
};

/// Writes `text` to `path` atomically (temp file in the same directory, fsync, rename).
void writeFileAtomic(const std::filesystem::path& path, const std::string& text);

}  // namespace gyrus::driver
