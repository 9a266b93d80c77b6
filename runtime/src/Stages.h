// The two stage executors behind the Runtime interface. They throw (UserError for the
// user's mistakes, anything else for internal errors); RuntimeModule.cpp turns
// exceptions into StageResults so none crosses the module boundary.
#pragma once

#include <nlohmann/json.hpp>

#include "Models.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::rt {

/// File names in a stage directory.
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
inline constexpr const char* kEncoderFile = "encoder.pt";
inline constexpr const char* kPredictionsFile = "predictions.json";
/// A fine-tuning evaluation's kept models: model.json (what `gyrus predict` needs to use
/// them) and one safetensors file per repeat (modelFile(r)).
inline constexpr const char* kModelFile = "model.json";
std::string modelFile(int64_t repeat);
/// The samples a stage left out (skip_unreadable): one per line, name TAB reason.
inline constexpr const char* kSkippedFile = "skipped.tsv";
/// A pretraining's streamed volumes when no volume cache is set (removed at the end).
inline constexpr const char* kSpillDir = "volumes";

/// Loader options for a stage run with `ctx`: reader threads, progress, the volume
/// cache, and streaming beyond the loader memory (to `kSpillDir` without a cache).
LoadOptions loadOptions(const StageContext& ctx, int threads);

/// Half of the machine's physical memory, in bytes (the default loader memory).
int64_t defaultLoaderMemory();

/// Right after buildDataset: progress lines on the volume cache, streaming and skipped
/// samples, which are also listed in `kSkippedFile` in the stage directory (removed
/// when none are), so that the user learns of them even if the stage then fails.
void reportData(const Dataset& data, const StageContext& ctx);

/// When a stage has succeeded: appends the metric `skipped_samples` (when samples were
/// skipped) to `result` (call it after setting the stage's own metrics), and removes
/// the stage's private copy of a streamed data set (a killed run keeps it, so that its
/// resume reads it back instead of preprocessing again).
void finishData(const Dataset& data, const StageContext& ctx, StageResult& result);

/// The device of `ctx` (StageContext::device; "auto": the first CUDA device when one is
/// usable, else the CPU). Throws UserError for a name LibTorch does not know or a CUDA
/// device this process cannot use.
torch::Device stageDevice(const StageContext& ctx);

/// "cpu" or "cuda:N", as result.json records it.
std::string describeDevice(const torch::Device& device);

/// A tensor on `device`. A host tensor goes to a GPU from page-locked (pinned) memory
/// without waiting (the copy overlaps what the device is still computing); one on a GPU
/// already (views made there) stays, or moves between GPUs; unchanged on the CPU.
inline torch::Tensor toDevice(const torch::Tensor& host, const torch::Device& device) {
  if (host.is_cuda()) return host.to(device);
  if (!device.is_cuda()) return host.to(device);
  return (host.is_pinned() ? host : host.pin_memory()).to(device, /*non_blocking=*/true);
}

/// The GPU's name ("NVIDIA H200"); empty for the CPU.
std::string deviceName(const torch::Device& device);

/// A progress line warning that bf16 on a CPU is emulated where the CPU lacks bf16
/// arithmetic (slower than fp32 there) and changes the results; nothing otherwise.
void warnPrecision(ir::Precision precision, const torch::Device& device, const StageContext& ctx);

/// Writes an evaluation's predictions.json (atomically), in the one format every
/// protocol shares (docs/cli.md, "predictions.json"): `protocol`, `label`, `kind`,
/// `reference` (the companion run's suffix), `samples` (every sample's name, by the
/// indices `train` and `test` use), the protocol's settings, then `repeats`.
/// `header` holds the protocol's fields; `samples` and `reference` are added here.
void writePredictions(const ir::EvaluateStage& stage, const StageContext& ctx, nlohmann::json header,
                      const char* reference, const nlohmann::json& repeats);

/// Self-supervised pretraining (MAE, SimCLR, weighted sums) on augmented views, with
/// per-epoch checkpoints and exact resume (see Runtime.h and Pretrain.cpp).
StageResult pretrain(const ir::PretrainStage& stage, const StageContext& ctx);

/// Few-shot evaluation of a pretrained encoder (see Runtime.h): the linear probe, or
/// `finetune` when stage.protocol is Finetune. Random operations of the pipeline are
/// skipped.
StageResult evaluate(const ir::EvaluateStage& stage, const StageContext& ctx);

/// Few-shot fine-tuning of the pretrained encoder with a pooled linear head, and the
/// same from a random initialisation as the reference (see Finetune.cpp). Writes
/// predictions.json; no checkpoints (a rerun starts over).
StageResult finetune(const ir::EvaluateStage& stage, const StageContext& ctx);

/// `gyrus bench train`: times `stage`'s training step on random batches (Bench.cpp).
TrainBenchResult benchTrain(const ir::PretrainStage& stage, const TrainBenchOptions& options);
/// `gyrus bench augment`: an augmentation pipeline through every back end (BenchAugment.cpp).
AugmentBenchResult benchAugment(const AugmentBenchOptions& options);

/// Runtime::predict (Runtime.h; Predict.cpp): one subject through a fine-tuning stage's
/// kept models.
PredictResult predict(const ir::EvaluateStage& stage, const PredictRequest& request);

}  // namespace gyrus::rt
