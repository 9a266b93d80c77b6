// `gyrus bench train` (see Runtime.h): the training step of a pretraining network,
// timed on random batches. The step is the real one: the stage's network, objectives
// and optimiser driven by the same Trainer as `pretrain` (zero the gradients, set the
// learning rate, forward, loss, backward, clip, step); only the data loading is left
// out, so what is measured is the model's compute, as the PyTorch twin
// (bench/train_twin.py) measures it.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>

#include "Errors.h"
#include "Models.h"
#include "Stages.h"
#include "Trainer.h"

namespace gyrus::rt {

namespace {

/// Resets the kernel's record of this process's peak resident memory (Linux ≥ 4.0).
void resetPeakResident() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

/// The process's peak resident memory (VmHWM) in MiB; 0 when unknown.
double peakResidentMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kb) == 1) return static_cast<double>(kb) / 1024.0;
  }
  return 0.0;
}

}  // namespace

TrainBenchResult benchTrain(const ir::PretrainStage& stage, const TrainBenchOptions& options) {
  expectIr(ir::verify(stage));
  TrainBenchResult result;
  result.threads = setThreads(options.threads);
  StageContext ctx;
  ctx.device = options.device;
  const torch::Device device = stageDevice(ctx);
  result.device = describeDevice(device);
  if (device.is_cuda()) {
    result.deviceName = torch::cuda::is_available() ? at::cuda::getDeviceProperties(device.index())->name : "";
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
  }
  resetPeakResident();

  torch::manual_seed(static_cast<uint64_t>(options.seed));
  PretrainNet net(stage.encoder, stage.objective);
  net->to(device);
  for (const torch::Tensor& p : net->parameters())
    if (p.requires_grad()) result.params += p.numel();
  int64_t views = 1;
  for (const auto& objective : net->objectives) views = std::max(views, objective->views());

  // Random z-scored volumes, made once on the device: the bench times the step alone.
  const int64_t b = options.batch, n = options.patch;
  const ir::Shape3 shape{n, n, n};
  Views batch;
  batch.target = torch::randn({b, stage.encoder.inChannels(), n, n, n}, torch::TensorOptions().device(device));
  for (int64_t v = 0; v < views; ++v)
    batch.inputs.push_back(v == 0 ? batch.target : torch::randn_like(batch.target));

  const int64_t total = options.warmup + options.steps;
  Trainer trainer(net->parameters(), TrainerOptions(stage.optimizer).steps(total, 1).precision(stage.precision, device));
  Rng rng(options.seed);
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> starts;
  auto mark = [&] {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    starts.push_back(Clock::now());
  };
  net->train();
  trainer.run(
      0,
      [&](int64_t, int64_t) {
        mark();  // the previous step (its backward and optimiser step included) has ended
        StepLoss out{torch::zeros({}, torch::TensorOptions().device(device)), {}, 1.0, b};
        ObjectiveBatch objectiveBatch{batch, b, shape, rng, *net, {}};
        for (size_t t = 0; t < stage.objective.terms.size(); ++t) {
          torch::Tensor termLoss = net->objectives[t]->loss(objectiveBatch);
          out.total = out.total + stage.objective.terms[t].weight * termLoss;
          out.terms.emplace_back(std::string(ir::toString(stage.objective.terms[t].kind)), termLoss.detach());
        }
        return out;
      },
      [&](int64_t, double) { mark(); });
  for (size_t s = static_cast<size_t>(options.warmup) + 1; s < starts.size(); ++s)
    result.stepMs.push_back(std::chrono::duration<double, std::milli>(starts[s] - starts[s - 1]).count());
  result.peakMb = device.is_cuda()
                      ? static_cast<double>(
                            c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak) /
                            1048576.0
                      : peakResidentMb();
  result.ok = true;
  return result;
}

}  // namespace gyrus::rt
