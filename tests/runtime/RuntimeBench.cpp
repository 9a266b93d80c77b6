// Micro-benchmark of the runtime (not a test): synthetic-brain generation per subject
// at 40^3 and 96^3, and one MAE training step of the quickstart configuration (40^3
// synthetic cropped to 32^3, U-Net width 8, 4 stages, batch 8). Usage:
//   gyrus_runtime_bench [threads=2]
#include "Models.h"
#include "Preprocess.h"

#include <torch/optim.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace gyrus;
using namespace gyrus::rt;

namespace {

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

double synthMs(int64_t side, int reps) {
  ir::SyntheticData d;
  d.size = {side, side, side};
  auto t = std::chrono::steady_clock::now();
  double sink = 0.0;
  for (int i = 0; i < reps; ++i) sink += synthesize(d, i).image.data[0];
  double ms = msSince(t) / reps;
  return sink >= 0.0 ? ms : -ms;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  std::printf("synthesize 40^3: %.1f ms/subject (1 thread)\n", synthMs(40, 20));
  std::printf("synthesize 96^3: %.1f ms/subject (1 thread)\n", synthMs(96, 3));

  int used = setThreads(threads);
  ir::SyntheticData data;
  data.subjects = 16;
  ir::Pipeline pipeline;
  ir::PipelineOp crop;
  crop.kind = ir::OpKind::Crop;
  crop.size = {32, 32, 32};
  pipeline.ops = {crop, ir::PipelineOp{}};
  ir::UNetEncoder enc;
  enc.width = 8;
  enc.stages = 4;
  auto t0 = std::chrono::steady_clock::now();
  Dataset ds = buildDataset(data, pipeline, enc.totalStride());
  std::printf("buildDataset 16 x 40^3 -> 32^3: %.1f ms (%d threads)\n", msSince(t0), used);

  torch::manual_seed(0);
  MaeNet net(enc);
  int64_t params = 0;
  for (const auto& p : net->parameters()) params += p.numel();
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(3e-5));
  Rng rng(1);
  ir::MaeObjective mae;
  auto batch = ds.images.slice(0, 0, 8);
  auto step = [&] {
    opt.zero_grad();
    auto mask = maeMask(8, ds.shape, mae, rng);
    auto loss = maeLoss(net->forward(batch * (1.0 - mask)), batch, mask, false);
    loss.backward();
    opt.step();
    return loss.item<double>();
  };
  for (int i = 0; i < 2; ++i) step();
  constexpr int kSteps = 10;
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) step();
  std::printf("MAE step, 32^3 batch 8, width 8, 4 stages (%lld parameters): %.1f ms (%d threads)\n",
              static_cast<long long>(params), msSince(t1) / kSteps, used);
  return 0;
}
