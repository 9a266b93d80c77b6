// `gyrus run`: executes a checked experiment's stages through the runtime module,
// reusing and resuming work in the run store.
#pragma once

#include <filesystem>
#include <string>

#include "gyrus/Ir.h"
#include "gyrus/Plan.h"

namespace gyrus::driver {

struct RunOptions {
  std::filesystem::path store;
  bool json = false;
  int threads = 0;
  std::string experimentPath;
  /// The sweep points and which stages each uses (for the results' legend); may be null.
  const Plan* plan = nullptr;
};

/// Returns the process exit code: 0 ok, 1 user error, 2 internal error.
int runExperiment(const ir::Experiment& experiment, const RunOptions& options);

}  // namespace gyrus::driver
