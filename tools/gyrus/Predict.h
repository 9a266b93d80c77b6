// `gyrus predict --store DIR STAGE --<channel> FILE ... --output FILE`: the FOMO25
// submission interface for one subject, from a finished fine-tuning evaluation
// (docs/cli.md, "gyrus predict").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gyrus::driver {

struct PredictArgs {
  std::filesystem::path store;
  std::string stage;
  /// (channel name, file) as given: the container's flags (--flair, --t1, ...) and --channel NAME=FILE.
  std::vector<std::pair<std::string, std::string>> channels;
  std::string input;  ///< --input FILE: the one image of a stage whose data set names no channels
  std::filesystem::path output;
  int64_t repeat = -1;
  double overlap = 0.5;
  int threads = 0;
  std::string device = "auto";
};

/// Exit 0; 1 for the user's mistakes (no such stage, not a finished fine-tuning, a
/// missing or unknown channel, the wrong output extension, an unreadable image); 2
/// otherwise.
int predictSubject(const PredictArgs& args);

}  // namespace gyrus::driver
