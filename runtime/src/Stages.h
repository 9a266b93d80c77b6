// The two stage executors behind the Runtime interface. They throw (UserError for the
// user's mistakes, anything else for internal errors); RuntimeModule.cpp turns
// exceptions into StageResults so none crosses the module boundary.
#pragma once

#include "gyrus/runtime/Runtime.h"

namespace gyrus::rt {

/// File names in a stage directory.
inline constexpr const char* kCheckpointFile = "checkpoint.pt";
inline constexpr const char* kEncoderFile = "encoder.pt";
inline constexpr const char* kPredictionsFile = "predictions.json";

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

}  // namespace gyrus::rt
