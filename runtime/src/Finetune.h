// Fine-tuning a pretrained encoder on a labelled few-shot draw (ir::Protocol::Finetune):
// the network (encoder + pooled linear head) and the loading of a pretrained encoder
// into an encoder that may take more input channels. The stage itself is `finetune`
// in Stages.h (see Finetune.cpp for the protocol).
#pragma once

#include <string>
#include <vector>

#include "Models.h"

namespace gyrus::rt {

/// The fine-tuning network: the U-Net encoder (`encoder.*`) and a head on its
/// bottleneck: global average and global maximum, concatenated (2w features), then
/// Linear(2w, 1) (`head`, with bias). forward gives one score per sample, [N].
class FinetuneNetImpl : public torch::nn::Module {
 public:
  explicit FinetuneNetImpl(const ir::UNetEncoder& config);
  torch::Tensor forward(const torch::Tensor& x);

  UNetEncoder encoder{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(FinetuneNet);

/// Copies the parameters of `pretrained` into `target` wherever the name and shape
/// match; the others keep their current (random) values. Returns the names of the
/// parameters left out (FOMO25 baseline rule: weights whose shapes differ are dropped).
/// The two encoders may differ only in their input channels, so at most the first
/// convolution (`stage0.conv0.conv.weight`) is left out; any other difference throws
/// std::invalid_argument (an internal error: the caller builds both from one config).
std::vector<std::string> copyMatchingParameters(UNetEncoder& target, UNetEncoder& pretrained);

}  // namespace gyrus::rt
