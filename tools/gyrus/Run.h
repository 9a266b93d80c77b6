// `gyrus run`: executes a checked experiment's stages through the runtime module,
// reusing and resuming work in the run store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "gyrus/Ir.h"
#include "gyrus/Plan.h"

namespace gyrus::driver {

struct RunOptions {
  std::filesystem::path store;
  bool json = false;
  int threads = 0;
  /// `--volume-cache DIR`: the on-disk cache of preprocessed volumes; empty: none.
  std::filesystem::path volumeCache;
  /// `--loader-memory SIZE` in bytes: larger pretraining data sets are streamed; 0:
  /// half of the machine's memory.
  int64_t loaderMemory = 0;
  std::string experimentPath;
  /// The sweep points and which stages each uses (for the results' legend); may be null.
  const Plan* plan = nullptr;
};

/// Parses a size such as `8GiB`, `512MiB`, `2G` or `1000000` (bytes) into `bytes`.
/// Returns false for anything else (or a size of 0).
bool parseByteSize(const std::string& text, int64_t& bytes);

/// Returns the process exit code: 0 ok, 1 user error, 2 internal error.
int runExperiment(const ir::Experiment& experiment, const RunOptions& options);

}  // namespace gyrus::driver
