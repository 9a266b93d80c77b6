// Fine-tuning a pretrained encoder on a labelled few-shot draw (ir::Protocol::Finetune):
// the networks (encoder + pooled linear head for one number per sample; encoder + dense
// decoder for segmentation masks: U-Net decoder or ViT patch head), the segmentation
// loss, and the loading of a
// pretrained encoder into an encoder that may take more input channels. The stage
// itself is `finetune` in Stages.h (see Finetune.cpp for the protocol).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "Models.h"

namespace gyrus::rt {

/// The fine-tuning network: the encoder (`encoder.*`) and a head on its bottleneck
/// (the U-Net's deepest map, the ViT's token grid): global average and global maximum,
/// concatenated (2w features), then Linear(2w, 1) (`head`, with bias). forward gives
/// one score per sample, [N].
class FinetuneNetImpl : public torch::nn::Module {
 public:
  explicit FinetuneNetImpl(const ir::Encoder& config);
  torch::Tensor forward(const torch::Tensor& x);

  EncoderModule encoder;
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(FinetuneNet);

/// The dense decoder of segmentation fine-tuning: a U-Net decoder with skip
/// connections. Level s, from stages - 2 down to 0 (`up<s>`), upsamples the deeper
/// features x2 (trilinear, to the exact size of the encoder's stage-s map), concatenates
/// them with that map (deeper features first) and applies two ConvBlocks
/// (`up<s>.conv0`: width(s + 1) + width(s) -> width(s); `up<s>.conv1`: width(s) ->
/// width(s)); then a 1x1x1 convolution with bias (`head`) gives one logit per voxel.
/// Upsampling + convolution rather than ConvTranspose3d, as in MaeDecoder.
class SegDecoderImpl : public torch::nn::Module {
 public:
  explicit SegDecoderImpl(const ir::UNetEncoder& config);
  /// `features`: the encoder's per-stage maps (full resolution first); returns
  /// [N, 1, z, y, x] logits at full resolution.
  torch::Tensor forward(const std::vector<torch::Tensor>& features);

 private:
  std::vector<std::array<ConvBlock, 2>> up_;  // up_[s]: level s
  torch::nn::Conv3d head_{nullptr};
};
TORCH_MODULE(SegDecoder);

/// The segmentation network: encoder (`encoder.*`) + dense decoder (`decoder.*`): the
/// SegDecoder of a U-Net, or for a ViT the PatchDecoder (one linear layer per token to
/// its patch's logits, SETR-naive style). forward gives one logit per voxel,
/// [N, 1, z, y, x].
class SegNetImpl : public torch::nn::Module {
 public:
  explicit SegNetImpl(const ir::Encoder& config);
  torch::Tensor forward(const torch::Tensor& x);
  EncoderModule encoder;
  SegDecoder decoder{nullptr};          ///< U-Net
  std::shared_ptr<PatchDecoderImpl> patchDecoder;  ///< ViT
};
TORCH_MODULE(SegNet);
/// The segmentation loss: soft Dice + binary cross-entropy, both on `logits` [N, ...]
/// against `target` {0, 1} of the same shape. BCE with logits is averaged over every
/// voxel; soft Dice is 1 - mean over samples of (2 sum(p y) + 1) / (sum(p) + sum(y) + 1),
/// p = sigmoid(logits), with a smoothing of one voxel so that an empty target asks for
/// an empty prediction (nnU-Net's Dice + CE, for one foreground class).
torch::Tensor segmentationLoss(const torch::Tensor& logits, const torch::Tensor& target);

/// Copies the parameters of `pretrained` into `target` wherever the name and shape
/// match. The two encoders may differ only in their input channels, so only the stem
/// (EncoderImpl::stemWeight: the first convolution, or the ViT's patch embedding) can
/// differ; any other difference throws std::invalid_argument (an internal error: the
/// caller builds both from one config). With StemInit::Reinit a differing stem keeps its
/// current (random) values and its name is returned (the FOMO25 baseline's rule: weights
/// whose shapes differ are dropped); with StemInit::Repeat it becomes inflateStem of the
/// pretrained one and nothing is returned.
std::vector<std::string> copyMatchingParameters(EncoderModule& target, EncoderModule& pretrained,
                                                ir::StemInit stem = ir::StemInit::Reinit);

/// A stem weight [out, C, k...] adapted to `channels` inputs: with more channels, the C
/// pretrained filters tiled over them and scaled by C / channels; with fewer, input
/// channel c the sum of the pretrained channels c, c + channels, ... Either way the same
/// image on every input channel gives the pretrained stem's response exactly (when
/// `channels` is a multiple of C, or smaller).
torch::Tensor inflateStem(const torch::Tensor& weight, int64_t channels);

}  // namespace gyrus::rt
