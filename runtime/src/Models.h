// LibTorch models and tensor helpers of the runtime: the 3-D U-Net encoder, the light
// masked-autoencoder decoder, the SimCLR projection head and NT-Xent loss, MAE masking,
// data set tensors, augmented views and checkpoint I/O.
#pragma once

#include <ATen/Parallel.h>
#include <torch/nn.h>
#include <torch/serialize.h>

#include <array>
#include <filesystem>
#include <optional>
#include <functional>
#include <vector>

#include "Folder.h"
#include "Kernels.h"
#include "gyrus/clinic/Random.h"
#include "gyrus/clinic/Synth.h"
#include "gyrus/Ir.h"

namespace gyrus::rt {

/// Conv3d(3x3x3, no bias) -> InstanceNorm3d(affine) -> LeakyReLU(0.01). Parameters:
/// `conv.weight`, `norm.weight`, `norm.bias`. On the CPU (fp32) the convolution runs
/// channels-last and the norm and activation as one fused operation (NormAct.h); the
/// parameters keep their usual layout either way.
class ConvBlockImpl : public torch::nn::Module {
 public:
  ConvBlockImpl(int64_t inChannels, int64_t outChannels, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv3d conv{nullptr};
  torch::nn::InstanceNorm3d norm{nullptr};

 private:
  int64_t stride_;
};
TORCH_MODULE(ConvBlock);

/// An encoder network: a U-Net (UNetEncoderImpl) or a ViT (VitEncoderImpl), behind
/// one interface so that pretraining, probing and fine-tuning take either.
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(const ir::Encoder& cfg, std::string stem) : config(cfg), stemWeight(std::move(stem)) {}
  /// Feature maps [N, width, z, y, x], finest first, deepest last: one per U-Net stage,
  /// one (the token grid) for a ViT.
  virtual std::vector<torch::Tensor> forward(torch::Tensor x) = 0;

  ir::Encoder config;
  /// The parameter that reads the input channels (re-initialised when fine-tuning on
  /// more channels than the pretraining had).
  const std::string stemWeight;
};
using EncoderModule = std::shared_ptr<EncoderImpl>;

/// The encoder network of `config`, with fresh random weights (torch's current seed).
EncoderModule makeEncoder(const ir::Encoder& config);

/// The U-Net encoder of `ir::UNetEncoder`: stage s has `convsPerStage` ConvBlocks
/// (`stage<s>.conv<i>`); the first block of every stage s >= 1 has stride 2.
///
/// Example:
///   UNetEncoder enc(ir::UNetEncoder{.width = 8, .stages = 4});
///   auto features = enc->forward(torch::zeros({2, 1, 32, 32, 32}));  // 4 maps, 4^3 last
class UNetEncoderImpl : public EncoderImpl {
 public:
  explicit UNetEncoderImpl(const ir::UNetEncoder& config);
  /// Per-stage feature maps, full resolution first, deepest last.
  std::vector<torch::Tensor> forward(torch::Tensor x) override;

 private:
  std::vector<std::vector<ConvBlock>> blocks_;
};
TORCH_MODULE(UNetEncoder);

/// One pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); the
/// attention has `heads` heads over `dim` features (`attn.qkv`, `attn.proj`), the MLP
/// is Linear(dim, hidden) -> GELU -> Linear(hidden, dim) (`mlp.fc1`, `mlp.fc2`).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  ///< [N, tokens, dim]

 private:
  int64_t heads_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(TransformerBlock);

/// The ViT encoder of `ir::VitEncoder` (see there): `patch_embed` (Conv3d, kernel and
/// stride `patch`, with bias), `block<i>`, `norm`. Position embeddings are fixed 3-D
/// sine-cosine codes (no parameters), so any input whose sides are multiples of the
/// patch works. forward returns one map: the normalised tokens as a grid
/// [N, dim, z/patch, y/patch, x/patch].
class VitEncoderImpl : public EncoderImpl {
 public:
  explicit VitEncoderImpl(const ir::VitEncoder& config);
  std::vector<torch::Tensor> forward(torch::Tensor x) override;

 private:
  torch::nn::Conv3d patchEmbed_{nullptr};
  std::vector<TransformerBlock> blocks_;
  torch::nn::LayerNorm norm_{nullptr};
};

/// The fixed 3-D sine-cosine position code of a (z, y, x) token grid: [z*y*x, dim]
/// (token order z-major, as flatten gives it). A third of the features (rounded down to
/// an even count) per axis, half sines and half cosines of the position at geometric
/// frequencies; the remaining features are zero.
torch::Tensor sincosPositions(int64_t z, int64_t y, int64_t x, int64_t dim);

/// A decoder from the deepest feature map back to voxels.
class VoxelDecoderImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor deepest) = 0;
};
using VoxelDecoder = std::shared_ptr<VoxelDecoderImpl>;

/// The light MAE decoder (no skips): from the deepest features, per level a trilinear
/// x2 upsample and one ConvBlock (`up<s>` produces stage s's width), then a 1x1x1
/// convolution (`head`, with bias) to the input channels. Upsample + conv instead of
/// ConvTranspose3d, which runs through a slow BLAS path in CPU LibTorch 1.13.
class MaeDecoderImpl : public VoxelDecoderImpl {
 public:
  explicit MaeDecoderImpl(const ir::UNetEncoder& config);
  torch::Tensor forward(torch::Tensor deepest) override;

 private:
  std::vector<ConvBlock> up_;  // up_[s] maps stage s+1's width to stage s's
  torch::nn::Conv3d head_{nullptr};
};
TORCH_MODULE(MaeDecoder);

/// The ViT's light decoder: one linear layer per token (`head`, with bias) to the
/// `out` x patch^3 voxels of its patch, put back in place ("unpatchify"): the MAE
/// reconstruction (out = input channels) or the segmentation logits (out = 1).
class PatchDecoderImpl : public VoxelDecoderImpl {
 public:
  PatchDecoderImpl(int64_t dim, int64_t patch, int64_t out);
  torch::Tensor forward(torch::Tensor grid) override;  ///< [N, dim, z, y, x] -> [N, out, z*p, y*p, x*p]

 private:
  int64_t patch_, out_;
  torch::nn::Linear head_{nullptr};
};

/// The MAE decoder of an encoder: MaeDecoder (U-Net) or PatchDecoder (ViT).
VoxelDecoder makeMaeDecoder(const ir::Encoder& config);

/// Encoder + decoder for masked-autoencoder pretraining (`encoder.*`, `decoder.*`).
class MaeNetImpl : public torch::nn::Module {
 public:
  explicit MaeNetImpl(const ir::Encoder& config);
  torch::Tensor forward(const torch::Tensor& x);

  EncoderModule encoder;
  VoxelDecoder decoder;
};
TORCH_MODULE(MaeNet);

/// The SimCLR projection head: Linear(width, width) -> ReLU -> Linear(width,
/// projection) (`fc1`, `fc2`, both with bias), applied to pooled bottleneck features.
class ProjectionHeadImpl : public torch::nn::Module {
 public:
  ProjectionHeadImpl(int64_t width, int64_t projection);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ProjectionHead);

/// Stochastic views of some samples of a data set, each [B, 1, z, y, x] at viewShape.
struct Views {
  std::vector<torch::Tensor> inputs;  ///< one per view: every op of `augment` applied
  torch::Tensor target;  ///< view 0's clean target (no Noise/Gamma), when requested
};

class PretrainNetImpl;
class DataParallel;

/// What an objective term sees of one pretraining step.
struct ObjectiveBatch {
  const Views& views;           ///< the augmented inputs (one per view) and view 0's clean target
  int64_t size = 0;             ///< samples in the batch
  const ir::Shape3& viewShape;  ///< spatial shape of a view
  Rng& rng;                     ///< the epoch's random stream (MAE masks)
  PretrainNetImpl& net;
  /// Both views' pooled bottlenecks [2B, 2 x width], computed once per step for all
  /// contrastive terms.
  torch::Tensor pooledViews();
  torch::Tensor pooled;  ///< pooledViews()'s cache (undefined until first asked)
  /// Data-parallel training: the whole step's batch across ranks (0: `size`, one
  /// process) and where this rank's shard starts in it. Random draws (MAE masks) are
  /// made for the whole batch, so that a shard gets the rows one process would. Each
  /// term's loss is then this rank's share of the whole batch's: its value times the
  /// shares sums to the batch's loss over the ranks, and so do the gradients.
  int64_t total = 0;
  int64_t offset = 0;
  /// The ranks' process group (null: one process); contrastive terms gather the other
  /// ranks' embeddings through it.
  DataParallel* group = nullptr;
  /// This rank's share of the batch, size / total (1 in one process).
  double share() const { return total > 0 ? static_cast<double>(size) / static_cast<double>(total) : 1.0; }
};

/// One objective term at run time, beside EncoderImpl: how many views of a sample it
/// needs, whether it reconstructs voxels (and so needs the shared decoder and a clean
/// target), the fewest samples a step may have, and its (unweighted) loss. Made from an
/// ir::ObjectiveTerm by makeObjective, the one place that switches on the kind; a new
/// objective is a new ObjectiveImpl and a case there.
class ObjectiveImpl {
 public:
  virtual ~ObjectiveImpl() = default;
  virtual int64_t views() const = 0;
  virtual bool reconstructs() const = 0;
  virtual int64_t minBatch() const = 0;
  virtual torch::Tensor loss(ObjectiveBatch& batch) = 0;
};

/// The runtime objective of `term`; its parameters (a projection head) are registered
/// in `net` under `name`.
std::shared_ptr<ObjectiveImpl> makeObjective(const ir::ObjectiveTerm& term, PretrainNetImpl& net,
                                             const std::string& name);

/// The pretraining network of an objective: one shared encoder (`encoder.*`), one
/// ObjectiveImpl per term, a projection head per SimCLR term (`projector<k>.*`, k
/// counting SimCLR terms only) of the bottleneck width, and the MAE decoder
/// (`decoder.*`) when some term reconstructs. Only the encoder goes to encoder.pt; the
/// heads live in checkpoint.pt.
class PretrainNetImpl : public torch::nn::Module {
 public:
  PretrainNetImpl(const ir::Encoder& config, const ir::Objective& objective);
  /// Global average and global maximum of the bottleneck, concatenated: [N, 2 x width].
  torch::Tensor pooledBottleneck(const torch::Tensor& x);

  EncoderModule encoder;
  VoxelDecoder decoder;                    ///< null without reconstructing terms
  std::vector<ProjectionHead> projectors;  ///< one per SimCLR term, in term order
  std::vector<std::shared_ptr<ObjectiveImpl>> objectives;  ///< one per term, in term order
};
TORCH_MODULE(PretrainNet);

/// NT-Xent (SimCLR) loss of two views' embeddings z1, z2 [B, d] (row i of both is the
/// same sample): cosine similarities over the 2B embeddings divided by `temperature`,
/// self-similarity excluded, cross-entropy towards the other view of the same sample,
/// averaged over all 2B anchors.
torch::Tensor ntXentLoss(const torch::Tensor& z1, const torch::Tensor& z2, double temperature);

/// A MAE mask for `batch` volumes of spatial `shape` (x, y, z): a float tensor
/// [batch, 1, z, y, x], 1 where masked. The volume is tiled by cubes of `mae.cube`
/// voxels (partial cubes at the high ends); in each sample exactly
/// round(maskRatio * cells) cells, chosen at random, are masked.
torch::Tensor maeMask(int64_t batch, const ir::Shape3& shape, const ir::MaeObjective& mae, Rng& rng);

/// The reconstruction loss of one MAE term: MSE over all voxels, or over masked voxels.
torch::Tensor maeLoss(const torch::Tensor& reconstruction, const torch::Tensor& target,
                      const torch::Tensor& mask, bool maskedOnly);

/// A preprocessed data set: images [N x channels, 1, z, y, x] after the deterministic
/// prefix of the pipeline (row k is channel k % channels of sample k / channels), the
/// random suffix still to apply per view, and the labels. A streamed data set (one that
/// exceeded LoadOptions::memoryBudget) keeps its rows on disk: `images` is undefined and
/// `rows` reads them.
struct Dataset {
  torch::Tensor images;
  int64_t samples = 0;
  int64_t channels = 1;
  std::vector<int> lesion;   ///< synthetic data: the binary label, per sample
  std::vector<double> age;   ///< synthetic data: the continuous label, per sample
  std::vector<double> label; ///< folder data with labels: FolderSample::label, per sample
  /// With LoadOptions::masks: the segmentation masks, [N, 1, z, y, x], float {0, 1}, on
  /// the grid of `images` (see loadFolder); undefined otherwise.
  torch::Tensor masks;
  ir::Shape3 shape{0, 0, 0};      ///< spatial shape of `images`, (x, y, z)
  std::vector<std::array<double, 3>> spacing;  ///< voxel size in mm of every row of `images`
  ir::Pipeline augment;           ///< the pipeline from its first random op on (may be empty)
  CompiledPipeline views;           ///< `augment` as kernels (Kernels.h)
  CompiledPipeline viewsWithTarget; ///< and with the reconstruction target
  ir::Shape3 viewShape{0, 0, 0};  ///< spatial shape after `augment`
  /// Streamed: the volume cache entry of every row (VolumeCache.h).
  std::vector<std::filesystem::path> entries;
  /// Samples left out (skip_unreadable): at check time, then by the loader.
  std::vector<ir::SkippedSample> skipped;
  /// Volumes found in / written to the volume cache while building, and why it could
  /// not be written (FolderLoad::cacheWarning).
  int64_t cacheHits = 0, cacheWrites = 0;
  std::string cacheWarning;

  bool streamed() const { return !images.defined(); }
  /// Rows `rows` of `images` as a new [rows.size(), 1, z, y, x] tensor, read from the
  /// cache when streamed (sequentially, on the calling thread). Throws UserError when a
  /// cache entry has gone or is damaged.
  torch::Tensor rows(const std::vector<int64_t>& rows) const;
};

/// Builds the data set of `data` and applies the pipeline up to its first random
/// operation; the rest is kept in `augment`. Synthetic subjects are generated in
/// parallel with at::parallel_for (deterministic); folder data are read with
/// `load.threads` reader threads (see Folder.h; `load.progress` reports long loads),
/// through `load.cache` when set, streamed when larger than `load.memoryBudget` (see
/// LoadOptions). With `load.masks` (folder data only), every sample's mask goes to
/// `masks`. The samples the loader skips (FolderData::skipUnreadable) are removed from
/// `data.folder.samples`, so that the caller's labels, sites and sample indices keep
/// matching the rows; they are listed in `skipped` with those skipped at check time.
/// Throws UserError when the preprocessed volumes differ in shape (naming two shapes,
/// and their files for folder data) or when the final shape is not divisible by
/// `totalStride`.
///
/// Example:
///   ir::DataSource src;  // synthetic(), 64 subjects of 40^3
///   Dataset ds = buildDataset(src, pipeline, encoder.totalStride());
Dataset buildDataset(ir::DataSource& data, const ir::Pipeline& pipeline, int64_t totalStride,
                     const LoadOptions& load = {});

/// Applies `data.augment` to samples `samples` of `data`, `views` times each. The
/// draws are one `rng.bits()` per (view, sample), view-major, seeding that view's own
/// Rng, so the result depends only on `rng`'s state, not on the thread count; the
/// work runs in parallel with at::parallel_for.
/// `rows`, when defined, holds those samples' rows in order (e.g. read ahead from a
/// streamed data set); otherwise they are taken from `data` (Dataset::rows).
///
/// With a `shard` (data-parallel training), `samples` is the step's whole batch: the
/// draws are made for all of it, and only samples [shard.begin, shard.begin + shard.size)
/// are made into views (`rows`, when defined, holds those alone), so a shard's views are
/// the rows one process would make for the whole batch.
struct Shard {
  int64_t begin = 0;
  int64_t size = -1;  ///< -1: all of `samples`
};
Views makeViews(const Dataset& data, const std::vector<int64_t>& samples, int64_t views, bool withTarget, Rng& rng,
                torch::Tensor rows = {}, Shard shard = {});

/// makeViews on a CUDA device: the same draws (one `rng.bits()` per (view, sample),
/// view-major) and the same kernels, run by the CUDA back end (CudaKernels.h) on each
/// sample's row copied to `device` once; the views (and target) come back on `device`,
/// equal to makeViews's up to the last bits of the device's maths. Throws
/// std::runtime_error when the CUDA back end cannot run (no NVRTC, a driver error).
Views makeViewsOnDevice(const Dataset& data, const std::vector<int64_t>& samples, int64_t views, bool withTarget,
                        Rng& rng, const torch::Device& device, torch::Tensor rows = {}, Shard shard = {});

/// Sets LibTorch's intra-op threads and, when present, OpenBLAS's threads to `threads`
/// (0: the hardware concurrency). Returns the number used.
int setThreads(int threads);

/// Writes a file through `write(tempPath)`, then renames it over `path`, so a killed
/// process never leaves a torn file behind.
void writeAtomically(const std::filesystem::path& path,
                     const std::function<void(const std::string&)>& write);

/// Opens a file written by torch::serialize::OutputArchive (a checkpoint, encoder.pt),
/// mapping its tensors onto `device` when given. A file that cannot be read (truncated,
/// corrupt: a disk filled up, a copy cut short) throws UserError naming it, with `fix`.
void loadArchive(torch::serialize::InputArchive& archive, const std::filesystem::path& file, const std::string& fix,
                 std::optional<torch::Device> device = std::nullopt);

/// How to get rid of a stored stage whose file is unusable: "remove the stage with
/// `gyrus runs rm --store STORE HASH` and run again", from a path inside its directory
/// (STORE/stages/HASH/...).
std::string removeStageFix(const std::filesystem::path& fileInStage);

/// Loads `module`'s parameters and buffers from `archive` (as written by
/// Module::save) and checks every shape. Throws UserError naming the first mismatch.
void loadStrict(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                const std::string& what);

}  // namespace gyrus::rt
