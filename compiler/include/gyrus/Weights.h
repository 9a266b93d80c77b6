// Matching a weights file's tensors to an encoder's parameters, for the checker
// (`init = weights(...)`) and the runtime (loading them).
#pragma once

#include <string>

#include "gyrus/Ir.h"
#include "gyrus/Safetensors.h"

namespace gyrus::ir {

/// How the tensors of a file map onto an encoder's parameters (encoderParameters).
struct WeightsMatch {
  /// "" when the file holds the parameters under their own names (as `gyrus export`
  /// writes them), "encoder." when under that prefix (a whole model's state dict: its
  /// other tensors, such as a decoder's, are ignored).
  std::string prefix;
  std::string problem;  ///< empty when every parameter is there with its shape
  std::string note;     ///< what the file holds instead, when there is a problem
  bool ok() const { return problem.empty(); }
};

/// Every parameter of `encoder` must be a tensor of the file (under the prefix) with the
/// same shape, and the file must hold no other tensor under the prefix.
WeightsMatch matchEncoderWeights(const st::Header& header, const Encoder& encoder);

}  // namespace gyrus::ir
