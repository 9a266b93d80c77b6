// The one training loop, shared by pretraining and fine-tuning: the optimiser (AdamW or
// SGD with Nesterov momentum), the learning-rate schedule (linear warm-up from lr/1000,
// then cosine or constant, set every step), global gradient-norm clipping, the
// divergence check, progress lines with loss and ETA, and the stage's training history.
//
// A caller supplies what differs: the batches (a step callback returning the batch's
// loss and its named terms) and what to do after an epoch (checkpoints). Devices, mixed
// precision and data parallelism are written here once.
//
// The history (`history.jsonl` in the stage directory) has one JSON object per epoch:
//   {"phase": "pretrain", "epoch": 3, "loss": 0.41, "terms": {"mae": 0.41}, "lr": 0.002,
//    "seconds": 1.2, "samples_per_second": 53.3, "grad_norm": 0.8}
// plus the caller's fixed keys (fine-tuning: "repeat", "run": "pretrained" | "scratch").
// `lr` is the last step's, `grad_norm` the epoch's mean norm before clipping.
//
// Example:
//   Trainer trainer(net->parameters(), TrainerOptions(stage.optimizer).steps(100, 8).progress(ctx.progress));
//   trainer.run(0, [&](int64_t epoch, int64_t step) { ... return StepLoss{loss, {{"mae", loss}}, batch}; },
//               [&](int64_t epoch, double loss) { saveCheckpoint(...); });
#pragma once

#include <torch/optim.h>
#include <torch/serialize.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::rt {

class DataParallel;

/// The history file's name in a stage directory.
inline constexpr const char* kHistoryFile = "history.jsonl";

/// How a Trainer trains; chainable setters, documented defaults.
struct TrainerOptions {
  explicit TrainerOptions(ir::Optimizer optimizer) : optimizer_(std::move(optimizer)) {}
  /// Steps per epoch and epochs (default 1 and 1).
  TrainerOptions& steps(int64_t perEpoch, int64_t epochs) {
    stepsPerEpoch_ = perEpoch;
    epochs_ = epochs;
    return *this;
  }
  /// Warm-up steps (default: the optimizer's warm-up epochs, at most all, times the steps per epoch).
  TrainerOptions& warmupSteps(int64_t steps) {
    warmupSteps_ = steps;
    return *this;
  }
  /// Progress lines; with `everyEpoch` one per epoch ("epoch 3/8  loss ...  eta ..."),
  /// else at most one every `intervalSeconds` (default: every epoch).
  TrainerOptions& progress(std::function<void(std::string_view)> sink, bool everyEpoch = true,
                           double intervalSeconds = 10.0) {
    progress_ = std::move(sink);
    everyEpoch_ = everyEpoch;
    interval_ = intervalSeconds;
    return *this;
  }
  /// Text before a progress line ("repeat 2/5 pretrained  "); default none.
  TrainerOptions& label(std::string text) {
    label_ = std::move(text);
    return *this;
  }
  /// The arithmetic of the forward passes on `device`'s type (default fp32): with bf16,
  /// each step's callback runs under autocast; weights, gradients and the loss stay fp32.
  TrainerOptions& precision(ir::Precision p, torch::Device device) {
    precision_ = p;
    deviceType_ = device.type();
    return *this;
  }
  /// Data-parallel training (default: none): each rank's step returns its share of the
  /// global loss (the shares sum to it); the gradients are summed over the ranks after
  /// back-propagation (before clipping), and the epoch's loss, terms and samples too, so
  /// every rank steps alike and reports the global figures.
  TrainerOptions& dataParallel(DataParallel* group) {
    dataParallel_ = group;
    return *this;
  }
  /// Appends one line per epoch to `path` with `keys` added (default: no history).
  TrainerOptions& history(std::filesystem::path path, nlohmann::json keys) {
    history_ = std::move(path);
    historyKeys_ = std::move(keys);
    return *this;
  }

  ir::Optimizer optimizer_;
  ir::Precision precision_ = ir::Precision::Fp32;
  c10::DeviceType deviceType_ = c10::DeviceType::CPU;
  int64_t stepsPerEpoch_ = 1;
  int64_t epochs_ = 1;
  int64_t warmupSteps_ = -1;
  std::function<void(std::string_view)> progress_;
  bool everyEpoch_ = true;
  double interval_ = 10.0;
  std::string label_;
  std::filesystem::path history_;
  nlohmann::json historyKeys_ = nlohmann::json::object();
  DataParallel* dataParallel_ = nullptr;
};

/// Mixed precision for a scope: with bf16, operations on `deviceType` run under autocast
/// (matrix products and convolutions in bf16, reductions and losses in fp32), as
/// `torch.autocast(device_type, dtype=torch.bfloat16)` does in Python. Nothing with fp32.
class AutocastScope {
 public:
  AutocastScope(ir::Precision precision, c10::DeviceType deviceType);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  c10::DeviceType type_;
  bool wasEnabled_ = false;
  at::ScalarType oldType_ = at::kFloat;
};

/// One step's loss: the total to minimise, its named terms (unweighted, for the
/// history), and the weight of the step in the epoch's mean loss.
struct StepLoss {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> terms;
  double weight = 1.0;
  int64_t samples = 0;  ///< for throughput
};

class Trainer {
 public:
  Trainer(std::vector<torch::Tensor> parameters, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains epochs [firstEpoch, epochs): `step(epoch, s)` computes step s's loss (the
  /// Trainer zeroes gradients, sets the learning rate, back-propagates, clips and steps);
  /// after each epoch `endEpoch(epoch, meanLoss)` runs (checkpoints), then the history
  /// line and the progress line are written. Throws UserError when the loss diverges.
  void run(int64_t firstEpoch, const std::function<StepLoss(int64_t epoch, int64_t step)>& step,
           const std::function<void(int64_t epoch, double loss)>& endEpoch = {});

  /// The learning rate at global step `step` (0-based).
  double learningRate(int64_t step) const;
  /// The mean loss of every epoch this Trainer ran, in order.
  const std::vector<double>& epochLosses() const { return losses_; }
  /// Optimiser state, for checkpoints.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

  /// Keeps only the history lines of epochs before `firstEpoch` (1-based epochs
  /// <= firstEpoch) in `path`, so a resumed run continues it without duplicates; with
  /// firstEpoch 0 the history starts empty.
  static void resetHistory(const std::filesystem::path& path, int64_t firstEpoch);

 private:
  std::vector<torch::Tensor> parameters_;
  TrainerOptions options_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<double> losses_;
};

}  // namespace gyrus::rt
