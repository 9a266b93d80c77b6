// `gyrus synth --out DIR --layout L`: writes the synthetic clinic (multi-sequence brain
// MRI with findings, from several scanner sites) as NIfTI in the FOMO60K / FOMO25
// layouts. The generating and writing happen in the I/O module (libgyrus_io.so).
#pragma once

#include <cstdint>
#include <string>

namespace gyrus::driver {

struct SynthArgs {
  std::string out;
  std::string layout;          ///< fomo60k | fomo25-task1 | fomo25-task2 | fomo25-task3
  int64_t subjects = 16;
  int64_t size = 96;           ///< voxels per axis, 1 mm
  uint64_t seed = 1;
  std::string sites = "a,b";   ///< comma-separated site names
  double lesionContrast = 100.0;  ///< percent of a finding's contrast the images show
  double lesionSize = 100.0;      ///< percent: scale of infarcts and meningiomas
  double ageEffect = 100.0;       ///< percent: scale of every effect of age
  bool force = false;
  int threads = 0;             ///< 0: one per core (at most 8)
};

/// Returns the exit code: 0 ok (a one-line summary on stdout), 1 user error (bad
/// arguments, non-empty directory without --force, a file that cannot be written;
/// `error: ...` on stderr), 2 internal error (e.g. the I/O module cannot be loaded).
int runSynth(const SynthArgs& args);

}  // namespace gyrus::driver
