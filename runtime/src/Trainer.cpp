// The one training loop (see Trainer.h).
#include "Trainer.h"

#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numbers>
#include <sstream>

#include "Distributed.h"
#include "Errors.h"
#include "Models.h"

namespace gyrus::rt {

namespace {

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const std::vector<torch::Tensor>& parameters,
                                                       const ir::Optimizer& o) {
  if (o.kind == ir::OptimizerKind::Sgd)
    return std::make_unique<torch::optim::SGD>(
        parameters, torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(true).weight_decay(o.weightDecay));
  return std::make_unique<torch::optim::AdamW>(parameters,
                                               torch::optim::AdamWOptions(o.lr).weight_decay(o.weightDecay));
}

// "1.2 s", "3 min 20 s", "2 h 05 min".
std::string duration(double seconds) {
  char text[48];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof text, "%d min %02d s", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(text, sizeof text, "%d h %02d min", static_cast<int>(seconds / 3600),
                  static_cast<int>(seconds / 60) % 60);
  }
  return text;
}

// The L2 norm of all gradients together (what clipping measures) and, with maxNorm > 0,
// the gradients rescaled to at most maxNorm: the arithmetic of torch's clip_grad_norm_,
// kept on the gradients' device (no read back to the host inside a step).
torch::Tensor clipGradients(const std::vector<torch::Tensor>& parameters, double maxNorm) {
  std::vector<torch::Tensor> grads, norms;
  for (const torch::Tensor& p : parameters) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm());
  }
  if (norms.empty()) return torch::zeros({}, torch::kFloat64);
  torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm();
  if (maxNorm > 0.0) {
    torch::Tensor scale = torch::clamp(maxNorm / (total + 1e-6), std::nullopt, 1.0);
    for (torch::Tensor& g : grads) g.mul_(scale);
  }
  return total;
}

}  // namespace

Trainer::Trainer(std::vector<torch::Tensor> parameters, TrainerOptions options)
    : parameters_(std::move(parameters)), options_(std::move(options)) {
  if (options_.warmupSteps_ < 0)
    options_.warmupSteps_ = options_.stepsPerEpoch_ * std::min(options_.optimizer_.warmupEpochs, options_.epochs_);
  optimizer_ = makeOptimizer(parameters_, options_.optimizer_);
}

Trainer::~Trainer() = default;

AutocastScope::AutocastScope(ir::Precision precision, c10::DeviceType deviceType)
    : on_(precision == ir::Precision::Bf16), type_(deviceType) {
  if (!on_) return;
  wasEnabled_ = at::autocast::is_autocast_enabled(type_);
  oldType_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  // The cast weights are cached while autocast is on; leaving the outermost scope frees them.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, wasEnabled_);
  at::autocast::set_autocast_dtype(type_, oldType_);
}

double Trainer::learningRate(int64_t step) const {
  const ir::Optimizer& o = options_.optimizer_;
  const int64_t warmup = options_.warmupSteps_;
  if (step < warmup) {
    double start = o.lr / 1000.0;
    return start + (o.lr - start) * static_cast<double>(step) / static_cast<double>(warmup);
  }
  if (o.schedule == ir::Schedule::Constant) return o.lr;
  int64_t span = std::max<int64_t>(1, options_.stepsPerEpoch_ * options_.epochs_ - warmup);
  double t = static_cast<double>(step - warmup) / static_cast<double>(span);
  return o.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

void Trainer::save(torch::serialize::OutputArchive& archive) const { optimizer_->save(archive); }
void Trainer::load(torch::serialize::InputArchive& archive) { optimizer_->load(archive); }

void Trainer::resetHistory(const std::filesystem::path& path, int64_t firstEpoch) {
  std::string kept;
  if (firstEpoch > 0) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A line of an epoch the checkpoint does not cover (killed in between) is dropped.
      if (!j.is_discarded() && j.is_object() && j["epoch"].is_number_integer() && j["epoch"].get<int64_t>() <= firstEpoch)
        kept += line + "\n";
    }
  }
  std::error_code ec;
  if (kept.empty()) {
    std::filesystem::remove(path, ec);
    return;
  }
  writeAtomically(path, [&](const std::string& temp) {
    std::ofstream out(temp);
    out << kept;
    if (!out) throw std::runtime_error("cannot write " + temp);
  });
}

void Trainer::run(int64_t firstEpoch, const std::function<StepLoss(int64_t epoch, int64_t step)>& step,
                  const std::function<void(int64_t epoch, double loss)>& endEpoch) {
  using Clock = std::chrono::steady_clock;
  const ir::Optimizer& o = options_.optimizer_;
  const int64_t steps = options_.stepsPerEpoch_, epochs = options_.epochs_;
  const auto started = Clock::now();
  auto lastLine = started;
  for (int64_t epoch = firstEpoch; epoch < epochs; ++epoch) {
    const auto epochStart = Clock::now();
    double weightSum = 0.0, lr = o.lr;
    // Summed on the device; read back once per epoch (and when a progress line needs it).
    torch::Tensor lossSum, normSum;
    int64_t samples = 0;
    // Term losses stay on the stage's device until the epoch ends (no read back per step).
    std::vector<std::pair<std::string, torch::Tensor>> terms;
    for (int64_t s = 0; s < steps; ++s) {
      lr = learningRate(epoch * steps + s);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
      optimizer_->zero_grad();
      StepLoss loss;
      {
        AutocastScope autocast(options_.precision_, options_.deviceType_);
        loss = step(epoch, s);
      }
      // The loss in fp32; backward runs outside autocast (each op's backward follows
      // its forward's precision).
      if (loss.total.scalar_type() != torch::kFloat) loss.total = loss.total.to(torch::kFloat);
      // A rank with no samples in this step contributes zero gradients.
      if (loss.total.requires_grad()) loss.total.backward();
      if (options_.dataParallel_ != nullptr) options_.dataParallel_->sumGradients(parameters_);
      torch::Tensor norm = clipGradients(parameters_, o.gradClip).detach().to(torch::kFloat64);
      normSum = normSum.defined() ? normSum + norm : norm;
      optimizer_->step();
      torch::Tensor weighted = loss.total.detach().to(torch::kFloat64) * loss.weight;
      lossSum = lossSum.defined() ? lossSum + weighted : weighted;
      weightSum += loss.weight;
      samples += loss.samples;
      for (size_t t = 0; t < loss.terms.size(); ++t) {
        torch::Tensor term = loss.terms[t].second.detach().to(torch::kFloat64) * loss.weight;
        if (terms.size() <= t) {
          terms.emplace_back(loss.terms[t].first, term);
        } else {
          terms[t].second = terms[t].second + term;
        }
      }
      auto now = Clock::now();
      if (!options_.everyEpoch_ && options_.progress_ &&
          std::chrono::duration<double>(now - lastLine).count() >= options_.interval_) {
        lastLine = now;
        double done = static_cast<double>((epoch - firstEpoch) * steps + s + 1);
        double left = static_cast<double>((epochs - epoch) * steps - s - 1);
        double elapsed = std::chrono::duration<double>(now - started).count();
        char line[160];
        std::snprintf(line, sizeof line, "%sepoch %lld/%lld  step %lld/%lld  loss %.5f  eta %s", options_.label_.c_str(),
                      static_cast<long long>(epoch + 1), static_cast<long long>(epochs), static_cast<long long>(s + 1),
                      static_cast<long long>(steps), lossSum.item<double>() / weightSum,
                      duration(elapsed / done * left).c_str());
        options_.progress_(line);
      }
    }
    if (options_.dataParallel_ != nullptr && lossSum.defined()) {
      // The global figures: the ranks' shares of each step's loss (and terms) sum to it.
      std::vector<torch::Tensor> sums{lossSum, torch::full({1}, static_cast<double>(samples), lossSum.options())};
      for (auto& term : terms) sums.push_back(term.second);
      options_.dataParallel_->sum(sums);
      samples = static_cast<int64_t>(std::llround(sums[1].item<double>()));
    }
    const double loss = lossSum.defined() ? lossSum.item<double>() / weightSum : std::nan("");
    if (!std::isfinite(loss)) {
      std::ostringstream msg;
      msg << "the loss diverged (" << loss << ") in epoch " << epoch + 1 << ": lower the learning rate (now " << o.lr
          << ")";
      throw UserError(msg.str());
    }
    losses_.push_back(loss);
    if (endEpoch) endEpoch(epoch, loss);
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - epochStart).count();
    if (!options_.history_.empty()) {
      nlohmann::json line = options_.historyKeys_;
      line["epoch"] = epoch + 1;
      line["loss"] = loss;
      nlohmann::json byTerm = nlohmann::json::object();
      for (const auto& [name, sum] : terms) byTerm[name] = sum.item<double>() / weightSum;
      line["terms"] = byTerm;
      line["lr"] = lr;
      line["seconds"] = seconds;
      line["samples_per_second"] = seconds > 0.0 ? static_cast<double>(samples) / seconds : 0.0;
      line["grad_norm"] = normSum.defined() ? normSum.item<double>() / static_cast<double>(steps) : 0.0;
      std::ofstream out(options_.history_, std::ios::app);
      out << line.dump() << '\n';
    }
    if (options_.everyEpoch_ && options_.progress_) {
      lastLine = now;
      double elapsed = std::chrono::duration<double>(now - started).count();
      double eta = elapsed / static_cast<double>(epoch + 1 - firstEpoch) * static_cast<double>(epochs - epoch - 1);
      char line[160];
      std::snprintf(line, sizeof line, "%sepoch %lld/%lld  loss %.5f  %.1f s  eta %s", options_.label_.c_str(),
                    static_cast<long long>(epoch + 1), static_cast<long long>(epochs), loss, seconds,
                    duration(eta).c_str());
      options_.progress_(line);
    }
  }
}

}  // namespace gyrus::rt
