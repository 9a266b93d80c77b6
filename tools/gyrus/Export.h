// `gyrus export --store DIR STAGE --format safetensors --out FILE`: a finished
// pretraining's encoder as a safetensors file with a JSON sidecar (docs/weights.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace gyrus::driver {

/// Writes the encoder of `stage` (its name in the store, or a unique prefix of its hash)
/// to `out` and the sidecar beside it (`out` with the extension `.json`); for a
/// fine-tuning evaluation, the kept model of `repeat` (default 0): encoder and head or
/// decoder. Exit 0, 1 for the user's mistakes (no such stage, not finished, a linear
/// probe), 2 otherwise.
int exportStage(const std::filesystem::path& store, const std::string& stage, const std::string& format,
                const std::filesystem::path& out, int64_t repeat = -1);

}  // namespace gyrus::driver
