// `gyrus preview FILE --pipeline NAME --input X.nii.gz --out DIR`: what the model would see.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "gyrus/Ir.h"

namespace gyrus::driver {

struct PreviewOptions {
  std::string pipeline;  ///< the declared pipeline's name
  std::string input;     ///< a NIfTI volume
  std::string out;       ///< the output directory (created)
  int64_t samples = 4;
  uint64_t seed = 0;
};

/// Applies `pipelines[options.pipeline]` to the input as training does (its deterministic
/// prefix, then the views' draws keyed by (seed, sample)) and writes per sample
/// `sample_NNN.nii.gz` (on the pipeline's output grid, its affine the input's composed
/// with the deterministic spatial operations) and `sample_NNN.png` (the three central
/// slices). Returns the exit code (0; 1 for the user's mistake).
int runPreview(const PreviewOptions& options, const std::map<std::string, ir::Pipeline>& pipelines);

}  // namespace gyrus::driver
