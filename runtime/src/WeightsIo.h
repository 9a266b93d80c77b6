// Encoder weights in and out of safetensors files: `init = weights(...)` and
// `gyrus export --format safetensors`.
#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "Models.h"
#include "gyrus/Ir.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::rt {

/// Loads the weights of `file` into `encoder`. The file must still be the one the stage
/// was checked with (its SHA-256 is compared) and hold exactly the encoder's parameters
/// (ir::matchEncoderWeights); F64, F16 and BF16 tensors are converted to fp32. Throws
/// UserError naming `who` otherwise.
void loadEncoderWeights(EncoderImpl& encoder, const ir::WeightsFile& file, const std::string& who);

/// The trained encoder an evaluation judges: `weights` when set, else `encoderPt` (a
/// pretrain stage's encoder.pt).
void loadJudgedEncoder(EncoderImpl& encoder, const std::filesystem::path& encoderPt, const ir::WeightsFile& weights,
                       const std::string& who);

/// Loads every parameter of `module` from the safetensors file `path`, which must hold
/// exactly those names and shapes (any float type, converted to fp32). Returns the file's
/// metadata. Throws UserError naming `who` otherwise.
std::map<std::string, std::string> loadModuleWeights(torch::nn::Module& module, const std::filesystem::path& path,
                                                     const std::string& who);
/// Writes named fp32 tensors (made contiguous, on the CPU) to a safetensors file,
/// atomically, with `metadata` in its header.
void saveSafetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::map<std::string, std::string>& metadata);

/// Runtime::exportEncoder (Runtime.h).
ExportResult exportEncoder(const ir::Encoder& encoder, const std::filesystem::path& encoderPt,
                           const std::filesystem::path& out,
                           const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace gyrus::rt
