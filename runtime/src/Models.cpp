// LibTorch models and helpers (see Models.h).
#include "Models.h"

#include "Distributed.h"

#include "CudaKernels.h"

#include <malloc.h>

#include <cstdlib>
#include <limits>
#include <string>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "Errors.h"
#include "NormAct.h"
#include "Preprocess.h"
#include "Stages.h"
#include "VolumeCache.h"

namespace gyrus::rt {

namespace nn = torch::nn;

ConvBlockImpl::ConvBlockImpl(int64_t inChannels, int64_t outChannels, int64_t stride) : stride_(stride) {
  conv = register_module(
      "conv", nn::Conv3d(nn::Conv3dOptions(inChannels, outChannels, 3).stride(stride).padding(1).bias(false)));
  norm = register_module("norm", nn::InstanceNorm3d(nn::InstanceNorm3dOptions(outChannels).affine(true)));
}

torch::Tensor ConvBlockImpl::forward(const torch::Tensor& x) {
  constexpr double kSlope = 0.01;
  if (!x.is_cpu()) return torch::leaky_relu(norm->forward(conv->forward(x)), kSlope);
  // Channels-last weights make oneDNN's convolution read and write channels-last (no
  // reorders of the activations); the fused norm keeps that layout for the next one.
  const torch::Tensor y =
      cpuChannelsLast()
          ? torch::conv3d(x, conv->weight.contiguous(torch::MemoryFormat::ChannelsLast3d), {}, stride_, 1)
          : conv->forward(x);
  return instanceNormLeakyRelu(y, norm->weight, norm->bias, norm->options.eps(), kSlope);
}

UNetEncoderImpl::UNetEncoderImpl(const ir::UNetEncoder& cfg)
    : EncoderImpl(ir::Encoder(cfg), "stage0.conv0.conv.weight") {
  int64_t in = cfg.inChannels;
  for (int64_t s = 0; s < cfg.stages; ++s) {
    auto stage = register_module("stage" + std::to_string(s), std::make_shared<nn::Module>());
    std::vector<ConvBlock> convs;
    for (int64_t i = 0; i < cfg.convsPerStage; ++i) {
      int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      convs.push_back(stage->register_module("conv" + std::to_string(i),
                                             ConvBlock(in, cfg.widthOf(s), stride)));
      in = cfg.widthOf(s);
    }
    blocks_.push_back(std::move(convs));
  }
}

std::vector<torch::Tensor> UNetEncoderImpl::forward(torch::Tensor x) {
  std::vector<torch::Tensor> out;
  out.reserve(blocks_.size());
  for (auto& stage : blocks_) {
    for (auto& block : stage) x = block->forward(x);
    out.push_back(x);
  }
  return out;
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t hidden) : heads_(heads) {
  norm1_ = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim})));
  auto attn = register_module("attn", std::make_shared<nn::Module>());
  qkv_ = attn->register_module("qkv", nn::Linear(dim, 3 * dim));
  proj_ = attn->register_module("proj", nn::Linear(dim, dim));
  norm2_ = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim})));
  auto mlp = register_module("mlp", std::make_shared<nn::Module>());
  fc1_ = mlp->register_module("fc1", nn::Linear(dim, hidden));
  fc2_ = mlp->register_module("fc2", nn::Linear(hidden, dim));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2), dh = d / heads_;
  // [N, T, 3, heads, dh] -> three [N, heads, T, dh]
  auto qkv = qkv_->forward(norm1_->forward(x)).view({n, t, 3, heads_, dh}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto attention = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(dh)), -1);
  auto mixed = torch::matmul(attention, v).transpose(1, 2).reshape({n, t, d});
  auto h = x + proj_->forward(mixed);
  return h + fc2_->forward(torch::gelu(fc1_->forward(norm2_->forward(h))));
}

torch::Tensor sincosPositions(int64_t z, int64_t y, int64_t x, int64_t dim) {
  const int64_t per = dim / 3 / 2 * 2;  // features per axis, even
  torch::Tensor out = torch::zeros({z * y * x, dim}, torch::kFloat32);
  if (per == 0) return out;
  auto grid = torch::meshgrid({torch::arange(z, torch::kFloat32), torch::arange(y, torch::kFloat32),
                               torch::arange(x, torch::kFloat32)},
                              "ij");
  const int64_t half = per / 2;
  // Frequencies 1 / 10000^(i / half), as in the 2-D codes of ViT-MAE.
  auto omega = 1.0 / torch::pow(10000.0, torch::arange(half, torch::kFloat64).to(torch::kFloat32) / static_cast<double>(half));
  for (int64_t a = 0; a < 3; ++a) {
    auto pos = grid[static_cast<size_t>(a)].reshape({-1, 1}) * omega.reshape({1, -1});  // [T, half]
    out.slice(1, a * per, a * per + half).copy_(torch::sin(pos));
    out.slice(1, a * per + half, (a + 1) * per).copy_(torch::cos(pos));
  }
  return out;
}

VitEncoderImpl::VitEncoderImpl(const ir::VitEncoder& cfg) : EncoderImpl(ir::Encoder(cfg), "patch_embed.weight") {
  patchEmbed_ = register_module(
      "patch_embed", nn::Conv3d(nn::Conv3dOptions(cfg.inChannels, cfg.dim, cfg.patch).stride(cfg.patch).bias(true)));
  for (int64_t b = 0; b < cfg.depth; ++b)
    blocks_.push_back(
        register_module("block" + std::to_string(b), TransformerBlock(cfg.dim, cfg.heads, cfg.mlpRatio * cfg.dim)));
  norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({cfg.dim})));
}

std::vector<torch::Tensor> VitEncoderImpl::forward(torch::Tensor x) {
  auto grid = patchEmbed_->forward(x);  // [N, dim, z, y, x]
  const int64_t n = grid.size(0), d = grid.size(1), gz = grid.size(2), gy = grid.size(3), gx = grid.size(4);
  auto tokens = grid.flatten(2).transpose(1, 2) + sincosPositions(gz, gy, gx, d).to(grid.options()).unsqueeze(0);
  for (auto& block : blocks_) tokens = block->forward(tokens);
  tokens = norm_->forward(tokens);
  return {tokens.transpose(1, 2).reshape({n, d, gz, gy, gx})};
}

EncoderModule makeEncoder(const ir::Encoder& config) {
  if (config.kind == ir::EncoderKind::Vit) return std::make_shared<VitEncoderImpl>(config.vit);
  return std::make_shared<UNetEncoderImpl>(config.unet);
}

MaeDecoderImpl::MaeDecoderImpl(const ir::UNetEncoder& cfg) {
  for (int64_t s = 0; s + 1 < cfg.stages; ++s)
    up_.push_back(register_module("up" + std::to_string(s), ConvBlock(cfg.widthOf(s + 1), cfg.widthOf(s), 1)));
  head_ = register_module("head", nn::Conv3d(nn::Conv3dOptions(cfg.widthOf(0), cfg.inChannels, 1).bias(true)));
}

torch::Tensor MaeDecoderImpl::forward(torch::Tensor x) {
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions()
                     .scale_factor(std::vector<double>{2.0, 2.0, 2.0})
                     .mode(torch::kTrilinear)
                     .align_corners(false);
  for (auto it = up_.rbegin(); it != up_.rend(); ++it) x = (*it)->forward(F::interpolate(x, options));
  return pointwiseConv3d(x, head_->weight, head_->bias);
}

PatchDecoderImpl::PatchDecoderImpl(int64_t dim, int64_t patch, int64_t out) : patch_(patch), out_(out) {
  head_ = register_module("head", nn::Linear(dim, out * patch * patch * patch));
}

torch::Tensor PatchDecoderImpl::forward(torch::Tensor grid) {
  const int64_t n = grid.size(0), gz = grid.size(2), gy = grid.size(3), gx = grid.size(4), p = patch_;
  auto voxels = head_->forward(grid.flatten(2).transpose(1, 2));  // [N, T, out * p^3], (c, pz, py, px) order
  return voxels.view({n, gz, gy, gx, out_, p, p, p})
      .permute({0, 4, 1, 5, 2, 6, 3, 7})
      .reshape({n, out_, gz * p, gy * p, gx * p});
}

VoxelDecoder makeMaeDecoder(const ir::Encoder& config) {
  if (config.kind == ir::EncoderKind::Vit)
    return std::make_shared<PatchDecoderImpl>(config.vit.dim, config.vit.patch, config.vit.inChannels);
  return std::make_shared<MaeDecoderImpl>(config.unet);
}

MaeNetImpl::MaeNetImpl(const ir::Encoder& cfg) {
  encoder = register_module("encoder", makeEncoder(cfg));
  decoder = register_module("decoder", makeMaeDecoder(cfg));
}

torch::Tensor MaeNetImpl::forward(const torch::Tensor& x) { return decoder->forward(encoder->forward(x).back()); }

ProjectionHeadImpl::ProjectionHeadImpl(int64_t width, int64_t projection) {
  fc1_ = register_module("fc1", nn::Linear(width, width));
  fc2_ = register_module("fc2", nn::Linear(width, projection));
}

torch::Tensor ProjectionHeadImpl::forward(const torch::Tensor& x) { return fc2_->forward(torch::relu(fc1_->forward(x))); }

namespace {

// Masked-autoencoder term: the masked view 0 through the encoder and the shared decoder,
// reconstructing view 0's clean target.
class MaeObjective final : public ObjectiveImpl {
 public:
  explicit MaeObjective(const ir::MaeObjective& config) : config_(config) {}
  int64_t views() const override { return 1; }
  bool reconstructs() const override { return true; }
  int64_t minBatch() const override { return 1; }
  torch::Tensor loss(ObjectiveBatch& b) override {
    // Data-parallel: the whole batch's masks are drawn (the same stream as one process)
    // and this shard's rows kept.
    const int64_t total = b.total > 0 ? b.total : b.size;
    torch::Tensor mask = maeMask(total, b.viewShape, config_, b.rng);
    if (total != b.size) mask = mask.narrow(0, b.offset, b.size).contiguous();
    mask = mask.to(b.views.inputs[0].device());
    torch::Tensor reconstruction = b.net.decoder->forward(b.net.encoder->forward(b.views.inputs[0] * (1.0 - mask)).back());
    torch::Tensor loss = maeLoss(reconstruction, b.views.target, mask, config_.maskedOnly);
    // A shard's mean over samples of one size, weighted by its share, sums to the batch's.
    return total != b.size ? loss * b.share() : loss;
  }

 private:
  ir::MaeObjective config_;
};

// SimCLR term: both views' pooled bottlenecks through its own projection head, NT-Xent
// over the 2B embeddings.
class SimClrObjective final : public ObjectiveImpl {
 public:
  SimClrObjective(const ir::SimClrObjective& config, ProjectionHead head) : config_(config), head_(std::move(head)) {}
  int64_t views() const override { return 2; }
  bool reconstructs() const override { return false; }
  int64_t minBatch() const override { return 2; }  // the other samples are the negatives
  torch::Tensor loss(ObjectiveBatch& b) override {
    torch::Tensor z = head_->forward(b.pooledViews());
    torch::Tensor z1 = z.slice(0, 0, b.size), z2 = z.slice(0, b.size);
    if (b.group == nullptr) return ntXentLoss(z1, z2, config_.temperature);
    // Data-parallel: the loss of the whole batch, from every rank's embeddings in batch
    // order, this rank's own with their gradients. Each rank back-propagates through its
    // samples only, so the gradients summed over the ranks are the whole loss's; the
    // value is scaled to this rank's share so that the reported values sum to the loss.
    std::vector<torch::Tensor> all1 = b.group->allGather(z1.detach(), b.total);
    std::vector<torch::Tensor> all2 = b.group->allGather(z2.detach(), b.total);
    all1[static_cast<size_t>(b.group->rank())] = z1;
    all2[static_cast<size_t>(b.group->rank())] = z2;
    torch::Tensor whole = ntXentLoss(torch::cat(all1), torch::cat(all2), config_.temperature);
    return whole + (whole * (b.share() - 1.0)).detach();
  }

 private:
  ir::SimClrObjective config_;
  ProjectionHead head_;
};

}  // namespace

torch::Tensor ObjectiveBatch::pooledViews() {
  if (!pooled.defined()) pooled = net.pooledBottleneck(torch::cat({views.inputs[0], views.inputs[1]}, 0));
  return pooled;
}

std::shared_ptr<ObjectiveImpl> makeObjective(const ir::ObjectiveTerm& term, PretrainNetImpl& net,
                                             const std::string& name) {
  switch (term.kind) {
    case ir::ObjectiveKind::Mae: return std::make_shared<MaeObjective>(term.mae);
    case ir::ObjectiveKind::SimClr: {
      ProjectionHead head(2 * net.encoder->config.bottleneckWidth(), term.simclr.projection);
      net.projectors.push_back(net.register_module(name, head));
      return std::make_shared<SimClrObjective>(term.simclr, head);
    }
  }
  throw std::logic_error("makeObjective: unknown objective kind");
}

PretrainNetImpl::PretrainNetImpl(const ir::Encoder& cfg, const ir::Objective& objective) {
  encoder = register_module("encoder", makeEncoder(cfg));
  bool reconstructs = false;
  for (const ir::ObjectiveTerm& term : objective.terms) {
    objectives.push_back(makeObjective(term, *this, "projector" + std::to_string(projectors.size())));
    reconstructs = reconstructs || objectives.back()->reconstructs();
  }
  if (reconstructs) decoder = register_module("decoder", makeMaeDecoder(cfg));
}

torch::Tensor PretrainNetImpl::pooledBottleneck(const torch::Tensor& x) {
  // Mean and max: after instance normalisation every channel's spatial mean is nearly
  // the same for every volume, so a mean alone gives nearly identical embeddings.
  torch::Tensor deepest = encoder->forward(x).back();
  return torch::cat({deepest.mean({2, 3, 4}), deepest.amax({2, 3, 4})}, 1);
}

torch::Tensor ntXentLoss(const torch::Tensor& z1, const torch::Tensor& z2, double temperature) {
  namespace F = torch::nn::functional;
  int64_t b = z1.size(0);
  auto z = F::normalize(torch::cat({z1, z2}, 0), F::NormalizeFuncOptions().dim(1));
  auto logits = torch::matmul(z, z.t()) / temperature;
  auto self = torch::eye(2 * b, torch::TensorOptions().dtype(torch::kBool).device(z1.device()));
  logits = logits.masked_fill(self, -std::numeric_limits<double>::infinity());
  auto positive = torch::cat({torch::arange(b, 2 * b), torch::arange(0, b)}).to(z1.device());
  return F::cross_entropy(logits, positive);
}

torch::Tensor maeMask(int64_t batch, const ir::Shape3& shape, const ir::MaeObjective& mae, Rng& rng) {
  int64_t cube = std::max<int64_t>(1, mae.cube);
  int64_t cells[3];
  for (int i = 0; i < 3; ++i) cells[i] = (shape[i] + cube - 1) / cube;
  int64_t total = cells[0] * cells[1] * cells[2];
  auto masked = static_cast<int64_t>(std::llround(std::clamp(mae.maskRatio, 0.0, 1.0) * static_cast<double>(total)));
  auto mask = torch::zeros({batch, 1, shape[2], shape[1], shape[0]}, torch::kFloat32);
  float* m = mask.data_ptr<float>();
  std::vector<int64_t> ids(static_cast<size_t>(total));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < total; ++i) ids[static_cast<size_t>(i)] = i;
    // Partial Fisher-Yates: the first `masked` entries are a uniform random subset.
    for (int64_t i = 0; i < masked; ++i) {
      auto j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(total - i)));
      std::swap(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(j)]);
    }
    float* mb = m + b * shape[0] * shape[1] * shape[2];
    for (int64_t k = 0; k < masked; ++k) {
      int64_t id = ids[static_cast<size_t>(k)];
      int64_t cx = id % cells[0], cy = (id / cells[0]) % cells[1], cz = id / (cells[0] * cells[1]);
      for (int64_t z = cz * cube; z < std::min(shape[2], (cz + 1) * cube); ++z)
        for (int64_t y = cy * cube; y < std::min(shape[1], (cy + 1) * cube); ++y)
          for (int64_t x = cx * cube; x < std::min(shape[0], (cx + 1) * cube); ++x)
            mb[x + shape[0] * (y + shape[1] * z)] = 1.0f;
    }
  }
  return mask;
}

torch::Tensor maeLoss(const torch::Tensor& reconstruction, const torch::Tensor& target,
                      const torch::Tensor& mask, bool maskedOnly) {
  auto sq = (reconstruction - target).square();
  if (!maskedOnly) return sq.mean();
  auto weight = mask.expand_as(sq);
  return (sq * weight).sum() / weight.sum().clamp_min(1.0);
}

namespace {

std::string shapeText(const ir::Shape3& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

/// Where row `k` of a data set came from, for messages.
std::string rowName(const ir::DataSource& data, size_t k) {
  if (data.kind == ir::DataKind::Synthetic) return "subject " + std::to_string(k);
  auto channels = static_cast<size_t>(data.channelCount());
  return data.folder.samples[k / channels].files[k % channels];
}

/// The hint for volumes that differ in shape after `prefix`.
std::string shapeHint(const ir::Pipeline& prefix, const ir::Pipeline& suffix) {
  bool resampled = false, cropped = false;
  auto sets = [](const ir::PipelineOp& op) { return op.spec().shape == ir::OpShape::Sets; };
  for (const ir::PipelineOp& op : prefix.ops) {
    if (op.spec().shape == ir::OpShape::Resamples) {
      resampled = true;
      cropped = false;
    }
    if (sets(op)) cropped = true;
  }
  bool laterCrop = std::any_of(suffix.ops.begin(), suffix.ops.end(), sets);
  if (laterCrop && !cropped)
    return "move crop(...) before the first random augmentation (flip, noise, gamma): the preprocessed volumes are "
           "cached before it, and must share one shape";
  return resampled ? "add crop(...) after resample(...) so that every volume has the same shape"
                   : "add crop(...) to the pipeline so that every volume has the same shape";
}

/// Synthesizes every subject and applies `prefix` (in parallel, deterministic).
std::vector<Volume> synthesizeAll(const ir::SyntheticData& data, const ir::Pipeline& pipeline, Dataset& ds) {
  auto n = static_cast<size_t>(data.subjects);
  const CompiledPipeline prefix = compilePipeline(pipeline);
  std::vector<Volume> volumes(n);
  ds.lesion.resize(n);
  ds.age.resize(n);
  at::parallel_for(0, data.subjects, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Subject s = synthesize(data, i);
      auto k = static_cast<size_t>(i);
      ds.lesion[k] = s.lesion;
      ds.age[k] = s.age;
      volumes[k] = runPipeline(prefix, s.image);
    }
  });
  return volumes;
}

}  // namespace

Dataset buildDataset(ir::DataSource& data, const ir::Pipeline& pipeline, int64_t totalStride,
                     const LoadOptions& load) {
  SplitPipeline split = splitAtFirstRandom(pipeline);
  Dataset ds;
  std::vector<Volume> volumes, masks;
  if (data.kind == ir::DataKind::Synthetic) {
    if (load.masks) throw std::invalid_argument("buildDataset: synthetic data sets have no masks");
    if (data.synthetic.subjects <= 0) throw UserError("the data set has no subjects: set subjects >= 1");
    volumes = synthesizeAll(data.synthetic, split.prefix, ds);
  } else {
    FolderLoad read = loadFolder(data, split.prefix, load);
    volumes = std::move(read.images);
    masks = std::move(read.masks);
    ds.entries = std::move(read.entries);
    if (!read.streamed) ds.entries.clear();
    ds.cacheHits = read.cacheHits;
    ds.cacheWrites = read.cacheWrites;
    ds.cacheWarning = read.cacheWarning;
    ds.skipped = data.folder.skipped;
    ds.skipped.insert(ds.skipped.end(), read.skipped.begin(), read.skipped.end());
    if (!read.skipped.empty()) {
      std::vector<ir::FolderSample> kept;
      kept.reserve(read.kept.size());
      for (size_t i : read.kept) kept.push_back(std::move(data.folder.samples[i]));
      data.folder.samples = std::move(kept);
      data.folder.skipped = ds.skipped;
    }
    if (data.folder.hasLabel)
      for (const ir::FolderSample& s : data.folder.samples) ds.label.push_back(s.label);
  }
  ds.samples = data.count();
  ds.channels = data.channelCount();
  ds.shape = volumes[0].shape;
  for (size_t k = 1; k < volumes.size(); ++k)
    if (volumes[k].shape != ds.shape) {
      std::ostringstream msg;
      msg << "the preprocessed volumes differ in shape: " << rowName(data, 0) << " is " << shapeText(ds.shape)
          << ", " << rowName(data, k) << " is " << shapeText(volumes[k].shape) << ": "
          << shapeHint(split.prefix, split.suffix);
      throw UserError(msg.str());
    }
  ds.augment = split.suffix;
  ds.views = compilePipeline(ds.augment);
  kir::LowerOptions withTarget;
  withTarget.target = true;
  ds.viewsWithTarget = compilePipeline(ds.augment, withTarget);
  ds.spacing.reserve(volumes.size());
  for (size_t k = 0; k < volumes.size(); ++k) {
    ds.spacing.push_back(volumes[k].spacing);
    ir::Shape3 view = outputShape(ds.augment, ds.shape, volumes[k].spacing);
    if (k == 0) {
      ds.viewShape = view;
    } else if (view != ds.viewShape) {
      std::ostringstream msg;
      msg << "the augmented views differ in shape: " << rowName(data, 0) << " gives " << shapeText(ds.viewShape) << ", "
          << rowName(data, k) << " gives " << shapeText(view)
          << ": add crop(...) after resample(...) so that every view has the same shape";
      throw UserError(msg.str());
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (ds.viewShape[i] % totalStride != 0) {
      int64_t down = ds.viewShape[i] / totalStride * totalStride, up = down + totalStride;
      std::ostringstream msg;
      msg << "the preprocessed images are " << ds.viewShape[0] << "x" << ds.viewShape[1] << "x" << ds.viewShape[2]
          << ", not divisible by the encoder's total stride " << totalStride
          << ": crop to a multiple of " << totalStride << " (e.g. " << (down > 0 ? down : up) << " or " << up
          << " per side)";
      throw UserError(msg.str());
    }
  }
  int64_t voxels = ds.shape[0] * ds.shape[1] * ds.shape[2];
  auto rows = static_cast<int64_t>(volumes.size());
  if (ds.entries.empty()) {
    ds.images = torch::empty({rows, 1, ds.shape[2], ds.shape[1], ds.shape[0]}, torch::kFloat32);
    float* dst = ds.images.data_ptr<float>();
    // Each volume is freed once copied: the tensor's pages are touched one volume at a
    // time, so the peak stays near one copy of the data set.
    for (size_t k = 0; k < volumes.size(); ++k) {
      std::copy(volumes[k].data.begin(), volumes[k].data.end(), dst + static_cast<int64_t>(k) * voxels);
      volumes[k] = Volume{};
    }
  }
  if (load.masks) {
    ds.masks = torch::empty({ds.samples, 1, ds.shape[2], ds.shape[1], ds.shape[0]}, torch::kFloat32);
    float* m = ds.masks.data_ptr<float>();
    for (size_t k = 0; k < masks.size(); ++k) {
      // loadFolder checked raw shapes and voxel sizes (to 1e-4): only a resample whose
      // rounding the tiny difference of voxel sizes tips can make them differ here.
      if (masks[k].shape != ds.shape)
        throw UserError("the mask " + data.folder.samples[k].mask + " is " + shapeText(masks[k].shape) +
                        " after preprocessing, its images " + shapeText(ds.shape) +
                        ": their voxel sizes differ slightly; write the mask with its images' header");
      std::copy(masks[k].data.begin(), masks[k].data.end(), m + static_cast<int64_t>(k) * voxels);
      masks[k] = Volume{};
    }
  }
  return ds;
}

torch::Tensor Dataset::rows(const std::vector<int64_t>& index) const {
  if (!streamed()) {
    auto i = torch::from_blob(const_cast<int64_t*>(index.data()), {static_cast<int64_t>(index.size())}, torch::kInt64);
    return images.index_select(0, i);
  }
  const int64_t voxels = shape[0] * shape[1] * shape[2];
  torch::Tensor out = torch::empty({static_cast<int64_t>(index.size()), 1, shape[2], shape[1], shape[0]}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  for (size_t i = 0; i < index.size(); ++i)
    readCachedVoxels(entries.at(static_cast<size_t>(index[i])), voxels, dst + static_cast<int64_t>(i) * voxels);
  return out;
}

namespace {
/// The seeds of a batch's views: one rng.bits() per (view, sample), view-major, drawn
/// for the whole batch of `total` samples; those of the shard's samples are returned
/// (view-major over the shard).
std::vector<uint64_t> viewSeeds(int64_t views, int64_t total, Rng& rng, int64_t begin, int64_t b) {
  std::vector<uint64_t> all(static_cast<size_t>(views * total));
  for (uint64_t& s : all) s = rng.bits();
  if (b == total) return all;
  std::vector<uint64_t> seeds;
  for (int64_t v = 0; v < views; ++v)
    for (int64_t i = 0; i < b; ++i) seeds.push_back(all[static_cast<size_t>(v * total + begin + i)]);
  return seeds;
}

/// The samples of a shard of `samples`.
std::vector<int64_t> shardOf(const std::vector<int64_t>& samples, Shard shard) {
  if (shard.size < 0) return samples;
  return std::vector<int64_t>(samples.begin() + shard.begin, samples.begin() + shard.begin + shard.size);
}
}  // namespace

Views makeViewsOnDevice(const Dataset& data, const std::vector<int64_t>& batchSamples, int64_t views, bool withTarget,
                        Rng& rng, const torch::Device& device, torch::Tensor rows, Shard shard) {
  const std::vector<int64_t> samples = shardOf(batchSamples, shard);
  auto b = static_cast<int64_t>(samples.size());
  const std::vector<uint64_t> seeds =
      viewSeeds(views, static_cast<int64_t>(batchSamples.size()), rng, std::max<int64_t>(shard.begin, 0), b);
  const ir::Shape3 in = data.shape;
  const bool batchRows = rows.defined() || data.streamed();
  if (!rows.defined() && data.streamed()) rows = data.rows(samples);
  Views result;
  std::vector<std::vector<torch::Tensor>> perView(static_cast<size_t>(views));
  std::vector<torch::Tensor> targets;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t sample = samples[static_cast<size_t>(i)];
    // The sample's row, [z, y, x], on the device once for all its views.
    torch::Tensor row = (batchRows ? rows[i] : data.images[sample]).reshape({in[2], in[1], in[0]});
    row = row.to(device, /*non_blocking=*/false).contiguous();
    const kir::Grid grid{in, data.spacing[static_cast<size_t>(sample)]};
    for (int64_t v = 0; v < views; ++v) {
      const bool target = withTarget && v == 0;
      DeviceResult r = runPipelineCuda(target ? data.viewsWithTarget : data.views, row, grid, nullptr,
                                       seeds[static_cast<size_t>(v * b + i)], 0);
      perView[static_cast<size_t>(v)].push_back(r.image.unsqueeze(0));
      if (target) targets.push_back(r.target.unsqueeze(0));
    }
  }
  for (auto& list : perView) result.inputs.push_back(torch::stack(list));
  if (withTarget) result.target = torch::stack(targets);
  return result;
}

Views makeViews(const Dataset& data, const std::vector<int64_t>& batchSamples, int64_t views, bool withTarget, Rng& rng,
                torch::Tensor rows, Shard shard) {
  const std::vector<int64_t> samples = shardOf(batchSamples, shard);
  auto b = static_cast<int64_t>(samples.size());
  const std::vector<uint64_t> seeds =
      viewSeeds(views, static_cast<int64_t>(batchSamples.size()), rng, std::max<int64_t>(shard.begin, 0), b);
  const ir::Shape3 in = data.shape, out = data.viewShape;
  const int64_t inVoxels = in[0] * in[1] * in[2], outVoxels = out[0] * out[1] * out[2];
  Views result;
  std::vector<float*> dst;
  for (int64_t v = 0; v < views; ++v) {
    result.inputs.push_back(torch::empty({b, 1, out[2], out[1], out[0]}, torch::kFloat32));
    dst.push_back(result.inputs.back().data_ptr<float>());
  }
  float* targetDst = nullptr;
  if (withTarget) {
    result.target = torch::empty({b, 1, out[2], out[1], out[0]}, torch::kFloat32);
    targetDst = result.target.data_ptr<float>();
  }
  // In memory, sample s is row s of `images`; read ahead or streamed, sample i of the
  // batch is row i of `rows`.
  const bool batchRows = rows.defined() || data.streamed();
  if (!rows.defined() && data.streamed()) rows = data.rows(samples);
  const torch::Tensor& source = batchRows ? rows : data.images;
  TORCH_CHECK(source.is_contiguous() && source.size(0) > 0, "makeViews: bad data set tensor");
  const float* src = source.data_ptr<float>();
  at::parallel_for(0, views * b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      int64_t v = j / b, i = j % b, sample = samples[static_cast<size_t>(i)], row = batchRows ? i : sample;
      Volume input;
      input.shape = in;
      input.spacing = data.spacing[static_cast<size_t>(sample)];
      input.data.assign(src + row * inVoxels, src + (row + 1) * inVoxels);
      bool target = targetDst != nullptr && v == 0;
      Volume clean;
      // The draws are keyed by the view's seed (and the operation): the same with or
      // without the target.
      Volume view = runPipeline(target ? data.viewsWithTarget : data.views, input, seeds[static_cast<size_t>(j)], 0,
                                target ? &clean : nullptr);
      std::copy(view.data.begin(), view.data.end(), dst[static_cast<size_t>(v)] + i * outVoxels);
      if (target) std::copy(clean.data.begin(), clean.data.end(), targetDst + i * outVoxels);
    }
  });
  return result;
}

LoadOptions loadOptions(const StageContext& ctx, int threads) {
  LoadOptions load;
  load.threads = threads;
  load.progress = ctx.progress;
  load.cache = ctx.volumeCache;
  load.memoryBudget = ctx.loaderMemory > 0 ? ctx.loaderMemory : defaultLoaderMemory();
  load.spill = ctx.dir / kSpillDir;
  return load;
}

namespace {

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1), if any: what a
/// job under SLURM, Docker or Kubernetes may use, often far less than the machine has.
int64_t cgroupMemoryLimit() {
  for (const char* file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(file);
    std::string text;
    if (!(in >> text) || text == "max") continue;
    try {
      long long v = std::stoll(text);
      if (v > 0 && v < (int64_t{1} << 60)) return v;
    } catch (const std::exception&) {
    }
  }
  return 0;
}

}  // namespace

int64_t defaultLoaderMemory() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  int64_t memory = pages > 0 && size > 0 ? static_cast<int64_t>(pages) * size : int64_t{8} << 30;
  if (int64_t limit = cgroupMemoryLimit(); limit > 0) memory = std::min(memory, limit);
  return memory / 2;
}

void reportData(const Dataset& data, const StageContext& ctx) {
  if (ctx.progress && (data.cacheHits > 0 || data.cacheWrites > 0))
    ctx.progress("volume cache: " + std::to_string(data.cacheHits) + " volumes reused, " +
                 std::to_string(data.cacheWrites) + " written");
  if (ctx.progress && data.streamed())
    ctx.progress("streaming " + std::to_string(data.entries.size()) + " preprocessed volumes from " +
                 data.entries.front().parent_path().parent_path().string() + " (they exceed the loader memory)");
  if (ctx.progress && !data.cacheWarning.empty())
    ctx.progress("warning: the volume cache was not written (" + data.cacheWarning + "); the run goes on without it");
  std::error_code ec;
  if (data.skipped.empty()) {  // a list left by an earlier attempt no longer holds
    std::filesystem::remove(ctx.dir / kSkippedFile, ec);
    return;
  }
  writeAtomically(ctx.dir / kSkippedFile, [&](const std::string& temp) {
    std::ofstream f(temp);
    f << "sample\treason\n";
    for (const ir::SkippedSample& s : data.skipped) {
      std::string reason = s.reason;
      std::replace(reason.begin(), reason.end(), '\t', ' ');
      std::replace(reason.begin(), reason.end(), '\n', ' ');
      f << s.name << '\t' << reason << '\n';
    }
    if (!f) throw UserError("cannot write " + temp);
  });
  if (ctx.progress) {
    ctx.progress("skipped " + std::to_string(data.skipped.size()) + " of " +
                 std::to_string(data.skipped.size() + static_cast<size_t>(data.samples)) +
                 " samples (skip_unreadable); the first: " + data.skipped.front().reason);
    ctx.progress("the full list: " + (ctx.dir / kSkippedFile).string());
  }
}

void finishData(const Dataset& data, const StageContext& ctx, StageResult& result) {
  if (!data.skipped.empty())
    result.metrics.push_back({"skipped_samples", static_cast<double>(data.skipped.size())});
  std::error_code ec;
  std::filesystem::remove_all(ctx.dir / kSpillDir, ec);
}

namespace {
// LibTorch's CPU tensors come from malloc. glibc serves large blocks with mmap and gives
// them back at free, so every training step faults in its activations' pages anew
// (~20 % of a U-Net B step at 64^3 on 2 cores). A training loop allocates the same sizes
// step after step: keeping freed memory in the heap makes later steps reuse it (the
// process's peak stays resident until it exits). GYRUS_KEEP_MEMORY=0 turns it off.
void keepFreedMemory() {
  static const bool once = [] {
    const char* env = std::getenv("GYRUS_KEEP_MEMORY");
    if (env != nullptr && std::string(env) == "0") return false;
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
    return true;
  }();
  (void)once;
}
}  // namespace

int setThreads(int threads) {
  keepFreedMemory();
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  // torch's setting does not reach OpenBLAS; the driver also exports OPENBLAS_NUM_THREADS.
  using SetBlasThreads = void (*)(int);
  if (void* sym = dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))
    reinterpret_cast<SetBlasThreads>(sym)(n);
  return n;
}

void writeAtomically(const std::filesystem::path& path,
                     const std::function<void(const std::string&)>& write) {
  std::filesystem::path temp = path;
  temp += ".tmp";
  write(temp.string());
  std::filesystem::rename(temp, path);
}

void loadArchive(torch::serialize::InputArchive& archive, const std::filesystem::path& file, const std::string& fix,
                 std::optional<torch::Device> device) {
  try {
    archive.load_from(file.string(), device);
  } catch (const c10::Error& e) {
    std::string why = e.what_without_backtrace();
    if (size_t eol = why.find('\n'); eol != std::string::npos) why.resize(eol);
    throw UserError("cannot read '" + file.string() + "': the file is truncated or corrupt (" + why + "); " + fix);
  }
}

std::string removeStageFix(const std::filesystem::path& fileInStage) {
  std::filesystem::path dir = fileInStage.parent_path();
  std::filesystem::path store = dir.parent_path().parent_path();
  return "remove the stage with `gyrus runs rm --store " + store.string() + " " + dir.filename().string().substr(0, 12) +
         "` and run again";
}

void loadStrict(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& what) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (const auto& p : module.named_parameters()) expected.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers()) expected.emplace_back(b.key(), b.value().sizes().vec());
  try {
    module.load(archive);
  } catch (const c10::Error& e) {
    throw UserError(what + " does not match the declared encoder (" + e.what_without_backtrace() +
                    "): use the same encoder in the pretrain and evaluate stages");
  }
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  for (const auto& [name, sizes] : expected) {
    const torch::Tensor* t = params.find(name);
    if (!t) t = buffers.find(name);
    if (!t || t->sizes().vec() != sizes) {
      std::ostringstream msg;
      msg << what << " does not match the declared encoder: '" << name << "' has shape "
          << (t ? t->sizes() : c10::IntArrayRef{}) << ", expected " << c10::IntArrayRef(sizes)
          << ": use the same encoder in the pretrain and evaluate stages";
      throw UserError(msg.str());
    }
  }
}

}  // namespace gyrus::rt
