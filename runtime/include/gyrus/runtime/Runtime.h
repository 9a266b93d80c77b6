// The boundary between the driver (no LibTorch) and the runtime module (LibTorch).
//
// The driver loads `libgyrus_runtime.so` with dlopen only for commands that execute
// stages, so `gyrus check/emit/plan` never pay LibTorch's ~1 s start-up. Everything that
// crosses this boundary is plain data from `gyrus/Ir.h` and the standard library; no
// exception crosses it (the runtime reports failures in `StageResult`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gyrus/AbiVersions.h"
#include "gyrus/Ir.h"

namespace gyrus::rt {

/// The module ABI version, derived at build time from this header and gyrus/Ir.h
/// (cmake/AbiVersions.cmake).
using gyrus::kRuntimeAbiVersion;

struct Metric {
  std::string name;  ///< e.g. "auroc", "auroc_std", "mae", "pearson_r", "final_loss", "skipped_samples"
  double value = 0.0;
};

/// What one stage execution needs from the driver.
struct StageContext {
  /// The stage's own directory in the run store (exists). The runtime writes its
  /// checkpoints and artefacts here; a rerun finds them and resumes.
  std::filesystem::path dir;
  /// For an evaluate stage: the directory of the pretrain stage it depends on (its
  /// finished `encoder.pt` lives there). Empty for pretrain stages.
  std::filesystem::path pretrainDir;
  /// Threads for intra-op parallelism (0: the runtime chooses).
  int threads = 0;
  /// The device every tensor of the stage lives on: "auto" (the first CUDA device when
  /// one is usable, else the CPU), or as LibTorch names it ("cpu", "cuda", "cuda:1"). Not
  /// part of the stage's identity: a result computed on one device is reused on another.
  std::string device = "auto";
  /// Progress lines for the user (one line each, no trailing newline).
  std::function<void(std::string_view)> progress;
  /// The on-disk cache of preprocessed volumes shared by runs (`--volume-cache`);
  /// empty: none.
  std::filesystem::path volumeCache;
  /// Bytes a stage's preprocessed images may take in memory before they are streamed
  /// from disk (`--loader-memory`); 0: half of the machine's memory (or of the cgroup's
  /// limit).
  int64_t loaderMemory = 0;
  /// Data-parallel pretraining (`gyrus run --ranks N`, docs/cluster.md): this process's
  /// rank, the number of ranks, and the rendezvous file all ranks share (a c10d
  /// FileStore). With worldSize 1 the stage runs as one process; rank > 0 writes nothing
  /// into `dir`. Evaluations ignore these.
  int rank = 0;
  int worldSize = 1;
  std::string rendezvous;
};

struct StageResult {
  enum class Status { Ok, UserError, InternalError };
  Status status = Status::Ok;
  std::string message;  ///< on error: what went wrong and how to fix it
  bool resumed = false; ///< true when the stage continued from a checkpoint
  std::string device;   ///< the device it ran on ("cpu", "cuda:0")
  std::string deviceName;  ///< the GPU's name ("NVIDIA H200"); empty on a CPU
  std::string precision;   ///< "fp32" or "bf16"
  std::vector<Metric> metrics;
};

/// `gyrus bench train`: time the training steps of one pretraining network on random
/// batches (no data loading), after warm-up steps.
struct TrainBenchOptions {
  int64_t batch = 2;
  int64_t patch = 64;   ///< cubic patch edge in voxels
  int64_t warmup = 2;   ///< untimed steps first
  int64_t steps = 5;    ///< timed steps
  int threads = 0;      ///< 0: all cores
  std::string device = "auto";
  uint64_t seed = 0;
};

struct TrainBenchResult {
  bool ok = false;
  std::string message;             ///< when not ok: why
  std::vector<double> stepMs;      ///< each timed step, in order
  double peakMb = 0.0;             ///< CPU: the process's peak resident memory during the bench; GPU: peak allocated
  int64_t params = 0;              ///< trainable parameters (encoder, decoder, heads)
  std::string device;              ///< "cpu", "cuda:0"
  std::string deviceName;          ///< the GPU's name; empty on CPU
  int threads = 0;
};

/// `gyrus bench augment`: patches per second of one augmentation pipeline through the
/// runtime's back ends, on a synthetic brain of `source`^3 voxels at 1 mm (z-scored, as
/// the cached prefix of a training set), with the MAE target.
struct AugmentBenchOptions {
  /// The whole pipeline: its deterministic prefix is applied once to the source, its
  /// views (from the first random operation on) are timed.
  ir::Pipeline pipeline;
  ir::Pipeline pointwise;     ///< a pointwise-only pipeline, for the bandwidth figure
  int64_t patch = 96;
  int64_t source = 0;         ///< the source volume's edge (the cached field of view); 0: `patch`
  double seconds = 2.0;       ///< per back end, at least one patch
  int threads = 0;            ///< 0: all cores
  std::string device = "cpu";
  uint64_t seed = 0;
};

struct AugmentBenchResult {
  bool ok = false;
  std::string message;
  std::string backend;              ///< the fused back end's name
  double fusedPatchesPerS = 0;      ///< `threads` workers, one patch each at a time
  double fusedPatchesPerSOneThread = 0;
  double interpPatchesPerS = 0;     ///< the reference interpreter, one thread
  double eagerTorchPatchesPerS = 0; ///< eager LibTorch operations, `threads` intra-op threads
  double copyGbPerS = 0;            ///< memcpy of a patch, one thread (read + write bytes)
  double pointwiseGbPerS = 0;       ///< the pointwise pipeline through the fused back end, one thread
  double compileMsCold = 0, compileMsCached = 0;  ///< the fused back end's compile of the pipeline
  std::string device;
  int threads = 0;
};

/// `gyrus export`: a trained encoder written as a safetensors file.
struct ExportResult {
  bool ok = false;
  std::string message;               ///< when not ok: why
  std::vector<std::string> tensors;  ///< the parameter tensors written, in order
  int64_t parameters = 0;            ///< their elements
  /// The encoder's pooled features (global average, then global maximum, of the deepest
  /// feature map) of the reference input referenceInput(edge, channels) (Runtime.h), so
  /// that a port of the encoder can check itself against gyrus.
  int64_t referenceEdge = 0;
  std::vector<double> referencePooled;
};

/// `gyrus predict`: one subject through a finished fine-tuning stage (the FOMO25
/// submission interface).
struct PredictRequest {
  /// The stage's directory in the store: model.json and model_r<k>.safetensors, which a
  /// fine-tuning evaluation keeps for every repeat.
  std::filesystem::path stageDir;
  /// One NIfTI file per channel of the stage's data set, in its channel order.
  std::vector<std::filesystem::path> inputs;
  /// A `.txt` (a probability for a binary label, a value for a continuous one) or a
  /// `.nii`/`.nii.gz` {0, 1} mask on the grid of inputs[0] (its shape and affine).
  std::filesystem::path output;
  /// The repeat whose model predicts; -1: every kept repeat, averaged (probabilities,
  /// values; for masks the voxel probabilities, thresholded at 0.5 after averaging).
  int64_t repeat = -1;
  /// Sliding windows (masks): the share of a window's side its neighbour overlaps, in
  /// [0, 0.9].
  double overlap = 0.5;
  int threads = 0;
  std::string device = "auto";
};
struct PredictResult {
  enum class Status { Ok, UserError, InternalError };
  Status status = Status::Ok;
  std::string message;       ///< on error: what went wrong and how to fix it
  std::string kind;          ///< "binary", "continuous" or "mask"
  double value = 0.0;        ///< binary: the probability; continuous: the value
  std::vector<double> perRepeat;  ///< the value of each model used (binary, continuous)
  int64_t windows = 0;       ///< windows per model (masks)
  int64_t foreground = 0;    ///< voxels set in the written mask
  int64_t models = 0;        ///< models averaged
  std::string device;        ///< where it ran ("cpu", "cuda:0")
  double seconds = 0.0;      ///< reading, preprocessing, inference and writing
};
/// The runtime module's interface. One instance per process.
class Runtime {
 public:
  virtual ~Runtime() = default;
  /// A one-line description: LibTorch version, threads, BLAS.
  virtual std::string describe() const = 0;
  /// Runs (or resumes) a pretraining stage. On success the stage directory holds
  /// `encoder.pt` (the trained encoder's parameters) and the metrics hold at least
  /// `final_loss`.
  virtual StageResult runPretrain(const ir::PretrainStage& stage, const StageContext& ctx) = 0;
  /// Runs an evaluation stage against the encoder in `ctx.pretrainDir`, with the
  /// stage's protocol (linear probe or fine-tuning); the stage directory receives
  /// `predictions.json`.
  virtual StageResult runEvaluate(const ir::EvaluateStage& stage, const StageContext& ctx) = 0;
  /// Times `stage`'s training step (its network, objective and optimiser, through the
  /// same Trainer as runPretrain) on random batches; its data are not read.
  virtual TrainBenchResult benchTrain(const ir::PretrainStage& stage, const TrainBenchOptions& options) = 0;
  /// Times an augmentation pipeline through the fused kernels, the reference
  /// interpreter and eager LibTorch operations.
  virtual AugmentBenchResult benchAugment(const AugmentBenchOptions& options) = 0;
  /// Writes the encoder whose parameters are in `encoderPt` (a pretrain stage's
  /// encoder.pt) to `out` as safetensors, parameters named as ir::encoderParameters, with
  /// `metadata` in the header. The reference input is [1, C, E, E, E] with
  /// x[c, z, y, x] = sin(0.31 x + 0.17 y + 0.07 z + 0.5 c), E = max(16, 2 x totalStride).
  virtual ExportResult exportEncoder(const ir::Encoder& encoder, const std::filesystem::path& encoderPt,
                                     const std::filesystem::path& out,
                                     const std::vector<std::pair<std::string, std::string>>& metadata) = 0;
  /// Predicts one subject with the models a fine-tuning evaluation kept (see
  /// PredictRequest): the stage's own preprocessing (its pipeline without random
  /// operations), sliding windows of the pipeline's crop over the volume for masks, and
  /// the mask mapped back onto the input's grid.
  virtual PredictResult predict(const ir::EvaluateStage& stage, const PredictRequest& request) = 0;
};

}  // namespace gyrus::rt

/// The module's single exported entry point. Returns nullptr when `abiVersion` does
/// not match the module's `kRuntimeAbiVersion`. The caller owns the result.
extern "C" gyrus::rt::Runtime* gyrus_runtime_create(int abiVersion);
