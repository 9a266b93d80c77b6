// Micro-benchmark of the runtime (not a test): synthetic-brain generation per subject
// at 40^3 and 96^3, one MAE training step of the quickstart configuration (40^3
// synthetic cropped to 32^3, U-Net width 8, 4 stages, batch 8), the augmentation of a
// step's views (flip + noise + gamma) and a SimCLR step on them. Usage:
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

  // Augmentation: 1 view per sample (MAE, with its clean target) or 2 (SimCLR).
  ir::Pipeline augmented = pipeline;
  for (ir::OpKind kind : {ir::OpKind::Flip, ir::OpKind::Noise, ir::OpKind::Gamma}) {
    ir::PipelineOp op;
    op.kind = kind;
    op.sigma = 0.1;
    if (kind == ir::OpKind::Gamma) op.lo = 0.7, op.hi = 1.5;
    augmented.ops.push_back(op);
  }
  Dataset aug = buildDataset(data, augmented, enc.totalStride());
  std::vector<int64_t> samples{0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t views : {1, 2}) {
    constexpr int kReps = 20;
    auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < kReps; ++i) makeViews(aug, samples, views, views == 1, rng);
    std::printf("augment flip+noise+gamma, batch 8 x %lld view(s) of 32^3: %.2f ms (%d threads)\n",
                static_cast<long long>(views), msSince(t2) / kReps, used);
  }
  ir::Objective simclr{{ir::ObjectiveTerm{}}};
  simclr.terms[0].kind = ir::ObjectiveKind::SimClr;
  PretrainNet cnet(enc, simclr);
  torch::optim::AdamW copt(cnet->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(3e-5));
  auto simclrStep = [&] {
    Views v = makeViews(aug, samples, 2, false, rng);
    copt.zero_grad();
    auto z = cnet->projectors[0]->forward(cnet->pooledBottleneck(torch::cat({v.inputs[0], v.inputs[1]}, 0)));
    auto loss = ntXentLoss(z.slice(0, 0, 8), z.slice(0, 8), 0.1);
    loss.backward();
    copt.step();
    return loss.item<double>();
  };
  for (int i = 0; i < 2; ++i) simclrStep();
  auto t3 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) simclrStep();
  std::printf("SimCLR step incl. augmentation, batch 8 x 2 views: %.1f ms (%d threads)\n", msSince(t3) / kSteps,
              used);
  return 0;
}
