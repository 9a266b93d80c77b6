// Micro-benchmark of the runtime (not a test): synthetic-brain generation per subject
// at 40^3 and 96^3, one MAE training step of the quickstart configuration (40^3
// synthetic cropped to 32^3, U-Net width 8, 4 stages, batch 8), the augmentation of a
// step's views (flip + noise + gamma) and a SimCLR step on them. Usage:
//   gyrus_runtime_bench [threads=2]
// With `load`, it measures folder loading instead: writes `volumes` synthetic brains of
// side^3 as .nii.gz (half at 1 mm, half at 1.25 mm) into a temp dir, loads them with
// resample(1mm) >> crop(64^3) >> zscore() with 1 and with `threads` reader threads, and
// compares with the volumes per second a MAE step at 64^3 consumes:
//   gyrus_runtime_bench load [threads=2] [volumes=64] [side=96]
#include "Folder.h"
#include "Models.h"
#include "Preprocess.h"
#include "gyrus/io/Nifti.h"

#include <unistd.h>

#include <filesystem>
#include <string>

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

/// Writes the data set of the load benchmark; returns it as a folder data source.
ir::DataSource writeBrains(const std::filesystem::path& root, int64_t volumes, int64_t side) {
  ir::SyntheticData d;
  d.size = {side, side, side};
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.root = root.string();
  for (int64_t i = 0; i < volumes; ++i) {
    double mm = i % 2 == 0 ? 1.0 : 1.25;
    io::Image image;
    image.shape = d.size;
    image.spacing = {mm, mm, mm};
    image.data = synthesize(d, i).image.data;
    for (size_t a = 0; a < 3; ++a) {
      image.affine[a][a] = mm;
      image.affine[a][3] = -mm * 0.5 * static_cast<double>(side - 1);
    }
    image.affine[3][3] = 1.0;
    ir::FolderSample sample;
    sample.subject = "sub_" + std::to_string(i);
    std::filesystem::path file = root / sample.subject / "t1.nii.gz";
    std::filesystem::create_directories(file.parent_path());
    std::string error;
    if (!io::writeNifti(file.string(), image, io::WriteOptions{}, error)) {
      std::fprintf(stderr, "%s: %s\n", file.c_str(), error.c_str());
      std::exit(1);
    }
    sample.files = {file.string()};
    src.folder.samples.push_back(sample);
  }
  return src;
}

int loadBenchmark(int threads, int64_t volumes, int64_t side) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("gyrus_load_bench_" + std::to_string(::getpid()));
  auto t0 = std::chrono::steady_clock::now();
  ir::DataSource src = writeBrains(root, volumes, side);
  uintmax_t bytes = 0;
  for (const auto& s : src.folder.samples) bytes += fs::file_size(s.files[0]);
  std::printf("wrote %lld volumes of %lld^3 (.nii.gz, %.1f MB on disk) in %.1f s\n", static_cast<long long>(volumes),
              static_cast<long long>(side), static_cast<double>(bytes) / 1e6, msSince(t0) / 1000.0);
  ir::PipelineOp resample, crop;
  resample.kind = ir::OpKind::Resample;
  resample.mm = 1.0;
  crop.kind = ir::OpKind::Crop;
  crop.size = {64, 64, 64};
  ir::Pipeline pipeline{{resample, crop, ir::PipelineOp{}}};
  for (int t : {1, threads}) {
    setThreads(t);
    auto t1 = std::chrono::steady_clock::now();
    Dataset ds = buildDataset(src, pipeline, 8, LoadOptions{t, nullptr});
    double s = msSince(t1) / 1000.0;
    std::printf("load resample(1mm) >> crop(64^3) >> zscore(): %lld volumes in %.2f s = %.1f volumes/s (%d thread%s)\n",
                static_cast<long long>(ds.samples), s, static_cast<double>(ds.samples) / s, t, t == 1 ? "" : "s");
  }
  // Per-volume cost of the pieces, one thread: read, resample, crop + zscore.
  {
    constexpr int kReps = 8;
    double readMs = 0, resampleMs = 0, restMs = 0;
    for (int i = 0; i < kReps; ++i) {
      auto t2 = std::chrono::steady_clock::now();
      io::Image image;
      std::string error;
      io::readNifti(src.folder.samples[static_cast<size_t>(i)].files[0], io::ReadOptions{}, image, error);
      readMs += msSince(t2);
      Volume v;
      v.shape = image.shape;
      v.spacing = image.spacing;
      v.data = std::move(image.data);
      auto t3 = std::chrono::steady_clock::now();
      v = rt::resample(v, 1.0);
      resampleMs += msSince(t3);
      auto t4 = std::chrono::steady_clock::now();
      v = centerCropOrPad(v, crop.size);
      zscore(v, true);
      restMs += msSince(t4);
    }
    std::printf("per volume (1 thread, mean of %d, half 1 mm, half 1.25 mm): read %.1f ms, resample %.1f ms, "
                "crop+zscore %.1f ms\n", kReps, readMs / kReps, resampleMs / kReps, restMs / kReps);
  }
  fs::remove_all(root);

  // What training consumes: one MAE step at 64^3, batch 4, width 8, 4 stages.
  setThreads(threads);
  ir::UNetEncoder enc;
  enc.width = 8;
  enc.stages = 4;
  torch::manual_seed(0);
  MaeNet net(enc);
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(3e-5));
  Rng rng(1);
  ir::MaeObjective mae;
  auto batch = torch::randn({4, 1, 64, 64, 64});
  auto step = [&] {
    opt.zero_grad();
    auto mask = maeMask(4, {64, 64, 64}, mae, rng);
    auto loss = maeLoss(net->forward(batch * (1.0 - mask)), batch, mask, false);
    loss.backward();
    opt.step();
  };
  step();
  constexpr int kSteps = 3;
  auto t5 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) step();
  double ms = msSince(t5) / kSteps;
  std::printf("MAE step 64^3, batch 4, width 8, 4 stages: %.0f ms = %.1f volumes/s consumed (%d threads)\n", ms,
              4000.0 / ms, threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "load")
    return loadBenchmark(argc > 2 ? std::atoi(argv[2]) : 2, argc > 3 ? std::atoll(argv[3]) : 64,
                         argc > 4 ? std::atoll(argv[4]) : 96);
  int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  std::printf("synthesize 40^3: %.1f ms/subject (1 thread)\n", synthMs(40, 20));
  std::printf("synthesize 96^3: %.1f ms/subject (1 thread)\n", synthMs(96, 3));

  int used = setThreads(threads);
  ir::DataSource data;
  data.synthetic.subjects = 16;
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
