// The runtime module's entry point: the LibTorch implementation of gyrus::rt::Runtime.
// Every exception is caught here; none crosses the module boundary.
#include <dlfcn.h>

#include <sstream>

#include "Errors.h"
#include "Kernels.h"
#include "Stages.h"
#include "WeightsIo.h"
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace gyrus::rt {
namespace {

template <typename Fn>
StageResult guarded(Fn&& fn) {
  StageResult result;
  try {
    return fn();
  } catch (const UserError& e) {
    result.status = StageResult::Status::UserError;
    result.message = e.what();
  } catch (const c10::Error& e) {
    result.status = StageResult::Status::InternalError;
    result.message = std::string("LibTorch error: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    result.status = StageResult::Status::InternalError;
    result.message = e.what();
  } catch (...) {
    result.status = StageResult::Status::InternalError;
    result.message = "unknown exception";
  }
  result.metrics.clear();
  return result;
}

class TorchRuntime final : public Runtime {
 public:
  std::string describe() const override {
    std::ostringstream s;
    s << "LibTorch " << TORCH_VERSION;
    using GetConfig = char* (*)();
    if (at::hasMKL())
      s << ", BLAS MKL";
    else if (void* sym = dlsym(RTLD_DEFAULT, "openblas_get_config"))
      s << ", BLAS " << reinterpret_cast<GetConfig>(sym)();
    else
      s << ", reference BLAS (slow)";
    if (torch::cuda::is_available())
      s << ", " << torch::cuda::device_count() << " CUDA device(s)";
    else
      s << ", no usable CUDA device";
    try {
      s << ", pipelines on the " << kernelBackend();
    } catch (const std::exception& e) {
      s << ", no pipeline back end (" << e.what() << ")";
    }
    return s.str();
  }
  StageResult runPretrain(const ir::PretrainStage& stage, const StageContext& ctx) override {
    return guarded([&] { return withDevice(pretrain(stage, ctx), ctx, stage.precision); });
  }
  StageResult runEvaluate(const ir::EvaluateStage& stage, const StageContext& ctx) override {
    return guarded([&] { return withDevice(evaluate(stage, ctx), ctx, stage.precision); });
  }
  TrainBenchResult benchTrain(const ir::PretrainStage& stage, const TrainBenchOptions& options) override {
    TrainBenchResult result;
    StageResult failure = guarded([&] {
      result = rt::benchTrain(stage, options);
      return StageResult{};
    });
    if (failure.status != StageResult::Status::Ok) {
      result = TrainBenchResult{};
      result.message = failure.message;
    }
    return result;
  }
  AugmentBenchResult benchAugment(const AugmentBenchOptions& options) override {
    AugmentBenchResult result;
    StageResult failure = guarded([&] {
      result = rt::benchAugment(options);
      return StageResult{};
    });
    if (failure.status != StageResult::Status::Ok) {
      result = AugmentBenchResult{};
      result.message = failure.message;
    }
    return result;
  }
  ExportResult exportEncoder(const ir::Encoder& encoder, const std::filesystem::path& encoderPt,
                             const std::filesystem::path& out,
                             const std::vector<std::pair<std::string, std::string>>& metadata) override {
    ExportResult result;
    StageResult failure = guarded([&] {
      result = rt::exportEncoder(encoder, encoderPt, out, metadata);
      return StageResult{};
    });
    if (failure.status != StageResult::Status::Ok) {
      result = ExportResult{};
      result.message = failure.message;
    }
    return result;
  }

  PredictResult predict(const ir::EvaluateStage& stage, const PredictRequest& request) override {
    PredictResult result;
    StageResult failure = guarded([&] {
      result = rt::predict(stage, request);
      return StageResult{};
    });
    if (failure.status != StageResult::Status::Ok) {
      result = PredictResult{};
      result.status = failure.status == StageResult::Status::UserError ? PredictResult::Status::UserError
                                                                       : PredictResult::Status::InternalError;
      result.message = failure.message;
    }
    return result;
  }

 private:
  static StageResult withDevice(StageResult result, const StageContext& ctx, ir::Precision precision) {
    torch::Device device = stageDevice(ctx);
    result.device = describeDevice(device);
    result.deviceName = deviceName(device);
    result.precision = std::string(ir::toString(precision));
    return result;
  }
};

}  // namespace
}  // namespace gyrus::rt

extern "C" __attribute__((visibility("default"))) gyrus::rt::Runtime* gyrus_runtime_create(int abiVersion) {
  if (abiVersion != gyrus::rt::kRuntimeAbiVersion) return nullptr;
  return new gyrus::rt::TorchRuntime();
}
