// `gyrus bench train`: gyrus's training step against the same model in eager PyTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gyrus::driver {

struct BenchTrainOptions {
  std::vector<std::string> models;  ///< "quickstart", "unet_b"; empty: both
  int64_t batch = 0;                ///< 0: the model's default
  int64_t patch = 0;                ///< 0: the model's default for the device
  int64_t warmup = 2;
  int64_t steps = 5;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  bool json = false;
  bool twin = true;      ///< also run bench/train_twin.py
  std::string python;    ///< the twin's Python; empty: the LibTorch environment's
};

/// Returns the exit code: 0, 1 (the user's mistake, e.g. no Python with torch), 2 (a bug,
/// e.g. the twin's network is not gyrus's).
int benchTrain(const BenchTrainOptions& options);

struct BenchAugmentOptions {
  std::string file;              ///< an experiment file declaring `pipeline`; empty: std.fomo25
  std::string pipeline;          ///< the pipeline's name; empty: std.fomo25's FOMO25 preset
  int64_t patch = 96;
  double seconds = 2.0;          ///< per back end
  int threads = 0;
  std::string device = "cpu";
  bool json = false;
  bool baseline = true;          ///< also run bench/augment_twin.py (Yucca 2.2.6)
  std::string python;
};

/// `gyrus bench augment`: the views' pipeline through the fused kernels, the reference
/// interpreter, eager LibTorch and the FOMO25 baseline's Yucca transforms. Exit codes as
/// benchTrain.
int benchAugment(const BenchAugmentOptions& options);

}  // namespace gyrus::driver
