// `gyrus compare --store DIR A [B]`: a paired bootstrap difference between two
// evaluations on the same test subjects, or between an evaluation and its own reference
// run (the random encoder, or fine-tuning from scratch): "did pretraining help?" answered
// with an interval.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace gyrus::driver {

struct CompareArgs {
  std::filesystem::path store;
  std::string a, b;         ///< stage names or hash prefixes; b empty: a's reference
  int64_t bootstrap = 1000;
  uint64_t seed = 1;
  bool json = false;
};

/// Prints the table (or JSON). Exit 0, 1 for the user's mistakes (no such stage, not an
/// evaluation, not finished, other test subjects or labels).
int runCompare(const CompareArgs& args);

}  // namespace gyrus::driver
