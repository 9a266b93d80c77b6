// `gyrus bench augment` (see Runtime.h): one augmentation pipeline, the views of a
// training step, through the fused kernels (the runtime's kernel back end), the
// reference interpreter and eager LibTorch operations, on a synthetic 1 mm brain.
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include <torch/cuda.h>

#include "CudaKernels.h"
#include "EagerKernels.h"
#include "gyrus/kernel/Jit.h"
#include "Kernels.h"
#include "Models.h"
#include "Preprocess.h"
#include "Stages.h"

namespace gyrus::rt {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

/// Runs `one(i)` for i = 0, 1, ... until `budget` seconds have passed (at least once);
/// returns the calls per second.
template <class F>
double rate(double budget, F&& one) {
  auto start = Clock::now();
  int64_t n = 0;
  do one(n++);
  while (seconds(start) < budget);
  return static_cast<double>(n) / seconds(start);
}

/// `workers` threads each calling `one(i)` until `budget` seconds have passed: the total
/// calls per second.
template <class F>
double parallelRate(int workers, double budget, F&& one) {
  std::atomic<int64_t> next{0};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      do one(next++);
      while (seconds(start) < budget);
    });
  for (std::thread& t : pool) t.join();
  return static_cast<double>(next.load()) / seconds(start);
}

/// The pipeline through eager LibTorch on `device`, segment after segment.
void eagerOnce(const CompiledPipeline& c, const Volume& source, const torch::Device& device, uint64_t seed,
               uint32_t sample) {
  kir::Grid grid{source.shape, source.spacing};
  EagerBuffers buffers;
  buffers.image = torch::from_blob(const_cast<float*>(source.data.data()),
                                   {source.shape[2], source.shape[1], source.shape[0]}, torch::kFloat32)
                      .to(device);
  for (size_t i = 0; i < c.segments.size(); ++i) {
    kir::Binding b = kir::bind(c.segments[i], grid, seed, sample);
    if (i > 0) {
      buffers.image = buffers.outImage;
      buffers.target = buffers.outTarget;
    }
    runEager(c.segments[i], b, buffers);
    grid = b.out;
  }
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace

AugmentBenchResult benchAugment(const AugmentBenchOptions& options) {
  AugmentBenchResult r;
  r.threads = setThreads(options.threads);
  StageContext ctx;
  ctx.device = options.device;
  const torch::Device device = stageDevice(ctx);
  r.device = describeDevice(device);
  r.backend = kernelBackend();

  ir::SyntheticData data;
  data.subjects = 1;
  const int64_t edge = options.source > 0 ? options.source : options.patch;
  data.size = {edge, edge, edge};
  const SplitPipeline split = splitAtFirstRandom(options.pipeline);
  // The cached prefix of a training set, once.
  const Volume source = runPipeline(compilePipeline(split.prefix), synthesize(data, 0).image);

  kir::LowerOptions withTarget;
  withTarget.target = true;
  CompiledPipeline views = compilePipeline(split.suffix, withTarget);
  // Compile times of the fused back end: lowering plus code generation with no cache
  // (cold), and lowering plus loading the object files from a disk cache (cached).
  {
    auto timeCompile = [&](kir::Jit& jit) {
      auto start = Clock::now();
      CompiledPipeline c = compilePipeline(split.suffix, withTarget);
      for (const kir::Kernel& k : c.segments) jit.compile(k);
      return 1e3 * seconds(start);
    };
    std::string error;
    std::unique_ptr<kir::Jit> cold = kir::loadJit(error, kir::JitOptions().withDiskCache(false));
    if (cold) {
      r.compileMsCold = timeCompile(*cold);
      std::error_code ec;
      const std::filesystem::path dir =
          std::filesystem::temp_directory_path(ec) / ("gyrus-bench-kernels-" + std::to_string(::getpid()));
      std::unique_ptr<kir::Jit> writer = kir::loadJit(error, kir::JitOptions().withCacheDir(dir.string()));
      std::unique_ptr<kir::Jit> reader = kir::loadJit(error, kir::JitOptions().withCacheDir(dir.string()));
      if (writer && reader) {
        timeCompile(*writer);
        r.compileMsCached = timeCompile(*reader);
      }
      std::filesystem::remove_all(dir, ec);
    }
  }

  const double budget = options.seconds;
  const uint64_t seed = options.seed;
  auto fused = [&](int64_t i) {
    Volume target;
    runPipeline(views, source, seed, static_cast<uint32_t>(i), &target);
  };
  if (device.is_cuda()) {
    // On a GPU: the CUDA kernels on the device's stream, the source there once; patches
    // are counted when the device has finished them.
    torch::Tensor onDevice = torch::from_blob(const_cast<float*>(source.data.data()),
                                              {source.shape[2], source.shape[1], source.shape[0]}, torch::kFloat32)
                                 .to(device)
                                 .contiguous();
    const kir::Grid grid{source.shape, source.spacing};
    runPipelineCuda(views, onDevice, grid, nullptr, seed, 0);  // compile and load first
    torch::cuda::synchronize(device.index());
    r.backend = cudaKernelBackend();
    auto start = Clock::now();
    int64_t made = 0;
    do {
      runPipelineCuda(views, onDevice, grid, nullptr, seed, static_cast<uint32_t>(made++));
      if (made % 16 == 0) torch::cuda::synchronize(device.index());
    } while (seconds(start) < budget);
    torch::cuda::synchronize(device.index());  // the last ones finished too
    r.fusedPatchesPerS = static_cast<double>(made) / seconds(start);
    r.fusedPatchesPerSOneThread = r.fusedPatchesPerS;
  } else {
    r.fusedPatchesPerSOneThread = rate(budget, fused);
    r.fusedPatchesPerS = r.threads > 1 ? parallelRate(r.threads, budget, fused) : r.fusedPatchesPerSOneThread;
  }
  r.interpPatchesPerS = rate(budget, [&](int64_t i) {
    kir::apply(views.segments, {source.shape, source.spacing}, source.data.data(), nullptr, seed,
               static_cast<uint32_t>(i), kir::interpretKernel);
  });
  torch::NoGradGuard noGrad;
  r.eagerTorchPatchesPerS = rate(budget, [&](int64_t i) { eagerOnce(views, source, device, seed, static_cast<uint32_t>(i)); });

  // Bandwidth: a plain copy of a patch, and a pointwise-only pipeline (read the patch
  // once, write it once), one thread each.
  const auto bytes = static_cast<double>(source.data.size() * sizeof(float));
  std::vector<float> copy(source.data.size());
  double copies = rate(budget / 2, [&](int64_t i) {
    std::memcpy(copy.data(), source.data.data(), source.data.size() * sizeof(float));
    copy[static_cast<size_t>(i) % copy.size()] += 1.0f;  // not optimised away
  });
  r.copyGbPerS = copies * 2 * bytes / 1e9;
  if (!options.pointwise.ops.empty()) {
    CompiledPipeline pointwise = compilePipeline(options.pointwise);
    // The kernel's own bandwidth, as the copy's: bound per sample and run into an output
    // allocated once (kir::apply's allocation and zero fill of a fresh result left out).
    // A pipeline of several segments (not pointwise) goes through runPipeline.
    std::vector<float> out(source.data.size());
    const kir::Runner& run = kernelRunner();
    double passes = rate(budget / 2, [&](int64_t i) {
      if (pointwise.segments.size() != 1) {
        runPipeline(pointwise, source, seed, static_cast<uint32_t>(i));
        return;
      }
      const kir::Kernel& k = pointwise.segments[0];
      kir::Binding b = kir::bind(k, {source.shape, source.spacing}, seed, static_cast<uint32_t>(i));
      kir::Buffers buffers;
      buffers.image = source.data.data();
      buffers.outImage = out.data();
      run(k, b, buffers);
    });
    r.pointwiseGbPerS = passes * 2 * bytes / 1e9;
  }
  r.ok = true;
  return r;
}

}  // namespace gyrus::rt
