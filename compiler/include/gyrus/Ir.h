// The experiment IR: a typed DAG of stages, canonical and printable.
//
// The checker lowers a checked file to an `ir::Experiment`. Every stage is plain data
// (no pointers into the AST, no LibTorch types), so the runtime can consume it from a
// separately loaded module. Each struct's fields are listed once, with their JSON names
// and whether they are part of the stage's identity, in compiler/src/IrFields.h; the
// JSON form and the stage hashes (gyrus/IrJson.h) are computed from those tables, the
// text print here is for people.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "gyrus/PipelineOps.h"
#include "gyrus/Sha256.h"

namespace gyrus::ir {

/// The embedded synthetic brain generator's parameters (`synthetic(...)` in a file).
struct SyntheticData {
  int64_t subjects = 64;
  Shape3 size{40, 40, 40};
  uint64_t seed = 1;
  double lesionRate = 0.5;  ///< fraction of subjects with a lesion (binary label)
  double noise = 0.03;      ///< Rician-like noise level relative to white matter
  // Difficulty knobs (docs/language.md "synthetic"; defaults calibrated in
  // docs/performance.md so that a random encoder's probe sits near chance).
  double lesionContrast = 1.0;  ///< lesion brightness above white matter (1: +100 %), mean
  double lesionSize = 2.0;      ///< mean lesion radius in mm (= voxels), not scaled with size
  double lesionShape = 0.5;     ///< elongation: axes vary by ±lesionShape around the radius
  double siteEffect = 0.5;      ///< per-subject scanner variability (gamma, bias, noise)
  double ageEffect = 0.5;       ///< strength of the atrophy with age (1: the clinic's)
};

/// Binary: one 0/1 number per sample (AUROC). Continuous: one number (MAE, Pearson r).
/// Mask: a {0,1} segmentation volume per sample, on the grid of its images (Dice, NSD).
enum class LabelKind { Binary, Continuous, Mask };

/// One sample of a NIfTI folder data set: its files (one per channel) and label.
struct FolderSample {
  std::string subject;             ///< e.g. "sub_1"
  std::string session;             ///< e.g. "ses_1" ("" when the layout has none)
  std::vector<std::string> files;  ///< absolute paths, one per channel, in channel order
  double label = 0.0;              ///< the task label, when the data set has one
  std::string mask;                ///< LabelKind::Mask: absolute path of the mask (seg.nii.gz)
  std::string site;                ///< acquisition site ("" when unknown)
};

/// A sample a data set declared with `skip_unreadable = true` leaves out.
struct SkippedSample {
  std::string name;    ///< e.g. "sub_3/ses_1"
  std::string reason;  ///< what is wrong with it, naming the file
};

/// A NIfTI folder in a FOMO layout, resolved by the checker: every sample's files are
/// listed (and their labels read) at check time, so the runtime reads exactly what was
/// checked, and the fingerprint (relative paths, sizes and content digests of the files,
/// labels, sites) makes stage hashes change when the data change, and only then: the
/// same data copied to another machine or folder hash the same.
///   Fomo60k: `<root>/<subject>/<session>/<sequence>.nii.gz`; every scan (optionally
///            only the listed sequences) is one single-channel sample.
///   Fomo25:  `<root>/preprocessed/<subject>/<session>/<channel>.nii.gz` with
///            `<root>/labels/<subject>/<session>/label.txt` (one number), or `seg.nii.gz`
///            (a mask, LabelKind::Mask); one sample per
///            session, one channel per entry of `channels` (`"swi|t2s"`: the first
///            that exists).
///   Glob:    every file under <root> whose relative path matches `glob` is one
///            single-channel sample; its subject is the first path component (or the
///            file name without extension at the top level); labels come from a table.
/// Sites come from a table (`sites.tsv` in the root by default: columns subject, site).
struct FolderData {
  enum class Layout { Fomo60k, Fomo25, Glob };
  Layout layout = Layout::Fomo60k;
  std::string root;                   ///< absolute path (not part of the stage hash)
  std::vector<std::string> channels;  ///< Fomo25: channel names; Fomo60k: sequence filter
  std::string glob;                   ///< Glob: the pattern
  std::string labelName = "label";    ///< Fomo25: "label"; Glob: the table column
  bool hasLabel = false;
  LabelKind labelKind = LabelKind::Binary;
  std::vector<FolderSample> samples;  ///< sorted by subject, session, file
  std::string fingerprint;            ///< hex SHA-256 of the listing and labels
  /// `skip_unreadable = true`: a sample whose files cannot be read, or whose channels or
  /// mask do not lie on one grid, is left out of the run (counted and reported) instead
  /// of failing it.
  bool skipUnreadable = false;
  /// With skipUnreadable: the samples left out at check time (a missing channel, label
  /// or mask, a malformed label), in listing order. Not part of the stage's print (the
  /// fingerprint covers them).
  std::vector<SkippedSample> skipped;
};

/// Where a stage's volumes come from.
enum class DataKind { Synthetic, Folder };
struct DataSource {
  DataKind kind = DataKind::Synthetic;
  SyntheticData synthetic;  ///< when kind == Synthetic
  FolderData folder;        ///< when kind == Folder
  /// Number of samples.
  int64_t count() const {
    return kind == DataKind::Synthetic ? synthetic.subjects : static_cast<int64_t>(folder.samples.size());
  }
  /// Channels per sample.
  int64_t channelCount() const {
    return kind == DataKind::Folder && folder.layout == FolderData::Layout::Fomo25
               ? static_cast<int64_t>(folder.channels.size())
               : 1;
  }
};

/// A pipeline: its operations (PipelineOp, gyrus/PipelineOps.h) in application order.
/// Random operations (flip, noise, gamma) are augmentations: during pretraining they are
/// drawn anew for every view of every sample (a pipeline with one of them yields
/// stochastic views); the deterministic prefix before the first random operation may be
/// computed once and cached. Evaluation pipelines never contain random operations.
/// Resample changes the voxel size (isotropic, trilinear; labels and masks
/// nearest-neighbour), so the shape after it depends on each volume's spacing: a crop
/// must follow it before the encoder sees the data.
struct Pipeline {
  std::vector<PipelineOp> ops;
};
/// The spatial shape `pipeline` gives an input of shape `in` and voxel size `spacing`
/// (mm): each operation's registry shape effect in turn (applyShape).
Shape3 outputShape(const Pipeline& pipeline, Shape3 in, std::array<double, 3> spacing = {1.0, 1.0, 1.0});

/// A 3-D convolutional U-Net encoder: `stages` resolution levels, the first at full
/// resolution, each later one downsampling by 2 with a strided convolution; each
/// stage has `convsPerStage` conv-norm-activation blocks. Widths double per stage up
/// to `maxWidth`.
struct UNetEncoder {
  int64_t inChannels = 1;     ///< input channels (one in pretraining)
  int64_t width = 32;         ///< channels of the first stage
  int64_t stages = 5;         ///< resolution levels
  int64_t convsPerStage = 2;  ///< conv-norm-activation blocks per stage
  int64_t maxWidth = 320;     ///< the widest stage
  /// Total downsampling factor: 2^(stages - 1).
  int64_t totalStride() const { return int64_t{1} << (stages - 1); }
  /// Width (channels) of stage `s` (0-based).
  int64_t widthOf(int64_t s) const {
    int64_t w = width << s;
    return w < maxWidth ? w : maxWidth;
  }
};

/// A 3-D Vision Transformer encoder (Primus/UNETR style): the input is cut into
/// non-overlapping cubes of `patch` voxels, each embedded linearly to `dim` features
/// (a Conv3d with kernel and stride `patch`), fixed 3-D sine-cosine position
/// embeddings are added, then `depth` pre-norm transformer blocks (multi-head
/// self-attention with `heads` heads, an MLP of `mlpRatio` x dim with GELU), and a final
/// LayerNorm. Its one feature map is the token grid, [dim, z/patch, y/patch, x/patch].
struct VitEncoder {
  int64_t inChannels = 1;  ///< input channels (one in pretraining)
  int64_t patch = 16;      ///< side of a patch cube, in voxels
  int64_t dim = 384;       ///< features per token
  int64_t depth = 12;      ///< transformer blocks
  int64_t heads = 6;       ///< attention heads
  int64_t mlpRatio = 4;    ///< MLP width over dim
};

/// The encoder of a stage: a convolutional U-Net or a ViT.
enum class EncoderKind { UNet, Vit };
struct Encoder {
  Encoder() = default;
  /// A U-Net encoder (implicit: a U-Net is the default kind of encoder).
  Encoder(const UNetEncoder& u) : kind(EncoderKind::UNet), unet(u) {}  // NOLINT(google-explicit-constructor)
  explicit Encoder(const VitEncoder& v) : kind(EncoderKind::Vit), vit(v) {}

  EncoderKind kind = EncoderKind::UNet;
  UNetEncoder unet;  ///< when kind == UNet
  VitEncoder vit;    ///< when kind == Vit
  /// Input sizes must be multiples of this: the U-Net's downsampling, the ViT's patch.
  int64_t totalStride() const { return kind == EncoderKind::UNet ? unet.totalStride() : vit.patch; }
  int64_t inChannels() const { return kind == EncoderKind::UNet ? unet.inChannels : vit.inChannels; }
  void setInChannels(int64_t c) { (kind == EncoderKind::UNet ? unet.inChannels : vit.inChannels) = c; }
  /// Width of the deepest feature map (the pooled features are twice this).
  int64_t bottleneckWidth() const { return kind == EncoderKind::UNet ? unet.widthOf(unet.stages - 1) : vit.dim; }
  bool operator==(const Encoder& o) const;
};

/// Masked-autoencoder objective (AMAES style): cubes of `cube` voxels on a regular
/// grid are masked with probability `maskRatio` (set to 0) and the whole input is
/// reconstructed by a light decoder; the loss is MSE over all voxels, or over masked
/// voxels only when `maskedOnly`.
struct MaeObjective {
  double maskRatio = 0.6;
  int64_t cube = 4;
  bool maskedOnly = false;
};
/// SimCLR contrastive objective: two stochastic views of each sample go through the
/// encoder, its bottleneck is pooled (global average and global maximum, concatenated:
/// 2w features) and passed through a projection head (Linear(2w, 2w) -> ReLU ->
/// Linear(2w, projection)); the loss is NT-Xent with `temperature` over the 2B views
/// of a batch of B samples.
struct SimClrObjective {
  double temperature = 0.1;
  int64_t projection = 128;
};
enum class ObjectiveKind { Mae, SimClr };
struct ObjectiveTerm {
  ObjectiveKind kind = ObjectiveKind::Mae;
  double weight = 1.0;
  MaeObjective mae;        ///< when kind == Mae
  SimClrObjective simclr;  ///< when kind == SimClr
};
struct Objective {
  std::vector<ObjectiveTerm> terms;  ///< the loss is the weighted sum of the terms
};

enum class Schedule { Constant, Cosine };
/// Arithmetic of a training loop: fp32, or bf16 mixed precision (autocast for the
/// forward pass and the loss's inputs; fp32 master weights, gradients, optimiser state
/// and loss). The FOMO25 baseline pretrained in bf16-mixed.
enum class Precision { Fp32, Bf16 };
/// How fine-tuning starts the stem (first convolution, or a ViT's patch embedding) of a
/// task whose channels differ from the pretraining's: `Reinit` draws it afresh (the
/// FOMO25 baseline's rule); `Repeat` tiles the pretrained filters over the task's
/// channels and rescales them, so the same image on every channel gives the pretrained
/// stem's response (timm's adapt_input_conv).
enum class StemInit { Reinit, Repeat };
/// AdamW (decoupled weight decay), or SGD with Nesterov momentum (nnssl's choice).
enum class OptimizerKind { AdamW, Sgd };
struct Optimizer {
  OptimizerKind kind = OptimizerKind::AdamW;
  double lr = 1e-4;
  double weightDecay = 3e-5;
  double momentum = 0.99;    ///< Sgd only (Nesterov)
  int64_t warmupEpochs = 0;  ///< linear warm-up from lr/1000
  Schedule schedule = Schedule::Cosine;
  /// Gradients are rescaled to this global L2 norm when larger (0: never). The FOMO25
  /// baseline configured 1.0 but never applied it; gyrus applies it.
  double gradClip = 1.0;
};

/// Encoder weights from a file (`weights("encoder.safetensors")`): a safetensors file
/// whose tensors are the encoder's parameters by name (see encoderParameters), optionally
/// all under one `encoder.` prefix. Its identity is its content (`sha256`), not where it
/// lies, so the same file elsewhere gives the same stage hashes.
struct WeightsFile {
  std::string path;    ///< absolute path
  std::string sha256;  ///< hex SHA-256 of the file's bytes
  bool empty() const { return sha256.empty(); }
  bool operator==(const WeightsFile& o) const { return sha256 == o.sha256; }
};

/// Self-supervised pretraining of an encoder.
struct PretrainStage {
  std::string name;
  DataSource data;
  Pipeline pipeline;
  Encoder encoder;
  Objective objective;
  Optimizer optimizer;
  int64_t epochs = 10;
  int64_t batch = 4;
  uint64_t seed = 0;
  Precision precision = Precision::Fp32;
  /// Multi-stage recipes: the name of the pretrain stage whose finished encoder this
  /// one starts from (its only dependency; same encoder architecture), or empty to
  /// start from random weights (seeded). Decoder and heads always start fresh.
  std::string init;
  /// Or the encoder starts from the weights in a file (`init = weights(...)`).
  WeightsFile initWeights;
};

/// How an evaluation uses the pretrained encoder.
///   Probe:    frozen encoder, pooled features, a linear model (logistic / ridge).
///   Finetune: the encoder and a head (global average and maximum of the bottleneck,
///             concatenated, then one linear layer) are trained together on the shots
///             for `epochs` epochs with AdamW (`lr`, weight decay 3e-5, cosine), batch
///             min(shots, 4); binary labels with cross-entropy on one logit, continuous
///             ones with MSE on standardised targets. Masks (segmentation, Finetune
///             only) use a dense decoder instead of the pooled head: a U-Net decoder
///             with skip connections (per level: trilinear upsampling x2, concatenation
///             with the encoder's feature map, two conv-norm-activation blocks), a 1x1x1
///             conv to one logit; loss soft Dice + cross-entropy; metrics Dice of the
///             mask thresholded at 0.5 and NSD at `nsdToleranceMm`, averaged over test
///             samples, computed on the preprocessed grid. `encoder` is the pretrained
///             architecture (single-channel); when the task has more channels
///             (`data.channelCount()`), the fine-tuned encoder takes them all and its
///             first convolution is re-initialised (the FOMO25 baseline's rule:
///             weights whose shapes differ are dropped). The same protocol from a
///             randomly initialised encoder is the from-scratch reference.
enum class Protocol { Probe, Finetune };
enum class Probe { Linear };

/// Few-shot evaluation of a pretrained encoder on a labelled data set (with the probe
/// or the fine-tuning protocol, see `Protocol`): `shots`
/// labelled training subjects are drawn `repeats` times from the training pool; a
/// probe (frozen encoder, pooled features, linear head) is fitted on them and scored
/// on the held-out test subjects (`testFraction` of the data set, disjoint from every
/// training draw). Labels: synthetic data sets have `lesion` (binary) and `age`
/// (continuous); folder data sets have `label` (FolderSample::label, of `labelKind`).
/// With the probe, a sample with several channels is encoded channel by channel by the
/// (single-channel) encoder and the per-channel features are concatenated; fine-tuning
/// feeds all channels to an encoder with a re-initialised first convolution.
struct EvaluateStage {
  std::string name;
  std::string pretrain;  ///< name of the pretrain stage whose encoder is judged
  DataSource data;
  Pipeline pipeline;  ///< the pretraining pipeline, applied to the task data
  Encoder encoder;
  std::string label;  ///< label column, e.g. "lesion" or "age"
  LabelKind labelKind = LabelKind::Binary;
  Probe probe = Probe::Linear;
  Protocol protocol = Protocol::Probe;
  int64_t epochs = 50;  ///< Finetune only
  double lr = 1e-4;     ///< Finetune only
  /// Finetune only: samples per step, 0 for min(shots, 4).
  int64_t batch = 0;
  /// Finetune only: steps per epoch, 0 for one pass over the shots. More steps than a
  /// pass draw the batches from successive shuffles of the shots (the FOMO25 baseline
  /// trains 100 batches of 2 per epoch, whatever the number of cases).
  int64_t batches = 0;
  /// Finetune only: the global gradient norm clip (0: never), as Optimizer::gradClip.
  double gradClip = 1.0;
  /// Finetune only: the stem of a task with other channels than the pretraining's.
  StemInit stem = StemInit::Reinit;
  /// LabelKind::Mask: the tolerance of the normalised surface Dice, in millimetres.
  double nsdToleranceMm = 2.0;
  /// Probe of a LabelKind::Continuous label: the ridge's L2 strength; 0 (the default)
  /// chooses it per draw by exact leave-one-out on the shots (rt::fitRidgeLoo). Stages
  /// written before the choice existed used 1.0 and read back as 1.0.
  double ridgeAlpha = 0.0;
  int64_t shots = 16;
  int64_t repeats = 3;
  double testFraction = 0.5;
  /// Out-of-domain protocol: when not empty, the test set is every sample of this site
  /// and the shots are drawn from the other sites (`testFraction` is unused).
  std::string testSite;
  uint64_t seed = 0;
  /// Fine-tuning's training loop and the encoder's forward passes (features, predictions).
  Precision precision = Precision::Fp32;
  /// The metrics to report, in order ("auroc"; "mae", "pearson_r"; "dice", "nsd"): the
  /// evaluation's `metrics`, its data set's task's, or the label kind's. The runtime
  /// computes every metric of the label kind; this list only selects and orders what is
  /// reported, so it is not part of the stage's hash.
  std::vector<std::string> metrics;
  /// `init = weights(...)`: judge the encoder weights of this file instead of the trained
  /// encoder of `pretrain` (which then only supplies the architecture and the pipeline,
  /// and is not a dependency).
  WeightsFile initWeights;
};

enum class StageKind { Pretrain, Evaluate };

/// One node of the experiment DAG. Exactly one of `pretrain` / `evaluate` is used,
/// according to `kind`. `deps` are indices of earlier stages.
struct Stage {
  StageKind kind = StageKind::Pretrain;
  std::string name;
  PretrainStage pretrain;
  EvaluateStage evaluate;
  std::vector<size_t> deps;
  std::string hash;  ///< hex SHA-256 of the hash material (gyrus/IrJson.h)
};

/// A checked experiment: stages in a topological order.
struct Experiment {
  std::vector<Stage> stages;
};

/// Checks the invariants of an experiment the checker accepted (positive sizes,
/// fractions and percentiles in range, dependencies before their users and matching
/// the stages they name, hashes present): an empty string, or the first violation.
/// A violation is an internal error (IrVerify.cpp).
std::string verify(const Experiment& experiment);
/// The invariants of one pretraining or evaluation on its own (what the runtime relies
/// on; verify(Experiment) adds the dependencies'): an empty string, or the violation.
std::string verify(const PretrainStage& stage);
std::string verify(const EvaluateStage& stage);

/// The fewest shots a few-shot evaluation can fit: two for a binary label (one of each
/// class), three for a regression, one volume for a segmentation.
int64_t minimumShots(LabelKind kind);

std::string_view toString(StageKind k);
std::string_view toString(LabelKind k);
std::string_view toString(Schedule s);
std::string_view toString(Precision p);
std::string_view toString(StemInit s);
std::string_view toString(Protocol p);
std::string_view toString(OptimizerKind k);
std::string_view toString(ObjectiveKind k);

/// Deterministic print of one stage for people (without its hash).
std::string printStage(const Stage& stage, const Experiment& experiment);
/// Print of the whole experiment, hashes included (`gyrus emit --stage=ir`).
std::string printExperiment(const Experiment& experiment);
/// Formats a shape as `AxBxC`, or `A^3` when all sides are equal.
std::string formatShape(const Shape3& s);
/// Shortest text that reads back as the same double (`0.6`, `1e-04` -> `0.0001`).
std::string formatNumber(double v);

/// Canonical prints of IR fragments, in gyrus syntax with every parameter spelled out.
std::string print(const SyntheticData& d);
std::string print(const DataSource& d);
std::string print(const Pipeline& p);
std::string print(const UNetEncoder& e);
std::string print(const VitEncoder& e);
std::string print(const Encoder& e);
std::string print(const Objective& o);
std::string print(const Optimizer& o);


/// One named parameter tensor of an encoder, as the runtime names it (the keys of
/// encoder.pt and of exported safetensors files).
struct ParameterShape {
  std::string name;            ///< e.g. "stage1.conv0.conv.weight"
  std::vector<int64_t> shape;  ///< e.g. {16, 8, 3, 3, 3}
};
/// Every trainable parameter of the encoder, in the runtime's registration order.
std::vector<ParameterShape> encoderParameters(const Encoder& e);

/// Trainable parameters of the encoder.
int64_t parameterCount(const UNetEncoder& e);
int64_t parameterCount(const VitEncoder& e);
int64_t parameterCount(const Encoder& e);

}  // namespace gyrus::ir
