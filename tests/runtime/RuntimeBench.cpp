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
// With `segment`, it runs segmentation fine-tuning (shots 8, 2 repeats, 20 epochs, crop
// to `side`^3 >> zscore(), encoder width 16, 4 stages) on a `gyrus synth --layout
// fomo25-task2` tree, from an encoder MAE-pretrained for `pretrainEpochs` epochs on a
// `gyrus synth --layout fomo60k` tree (or randomly initialised when pretrainEpochs is 0),
// printing the progress lines and metrics:
//   gyrus_runtime_bench segment TASK2 FOMO60K [pretrainEpochs=5] [lr=1e-4] [side=32] [threads=2]
#include "Folder.h"
#include "Models.h"
#include "Preprocess.h"
#include "Stages.h"
#include "gyrus/io/Nifti.h"
#include "gyrus/runtime/Runtime.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/optim.h>

#include <chrono>
#include <numeric>
#include <cstdio>
#include <cstdlib>
#include <exception>

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

/// The entries of `dir` that are directories, in natural order (sub_2 before sub_10).
std::vector<std::filesystem::path> subdirs(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    std::string x = a.filename().string(), y = b.filename().string();
    return x.size() != y.size() ? x.size() < y.size() : x < y;
  });
  return out;
}

/// A `gyrus synth` fomo25-task2 tree as the checker would resolve it (channels flair,
/// dwi_b1000, swi|t2s; masks labels/<subject>/<session>/seg.nii.gz).
ir::DataSource listTask2(const std::filesystem::path& root) {
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.layout = ir::FolderData::Layout::Fomo25;
  src.folder.root = root.string();
  src.folder.channels = {"flair", "dwi_b1000", "swi|t2s"};
  src.folder.hasLabel = true;
  src.folder.labelKind = ir::LabelKind::Mask;
  for (const auto& subject : subdirs(root / "preprocessed"))
    for (const auto& session : subdirs(subject)) {
      ir::FolderSample s;
      s.subject = subject.filename().string();
      s.session = session.filename().string();
      for (const char* c : {"flair", "dwi_b1000"}) s.files.push_back((session / (std::string(c) + ".nii.gz")).string());
      bool swi = std::filesystem::exists(session / "swi.nii.gz");
      s.files.push_back((session / (swi ? "swi.nii.gz" : "t2s.nii.gz")).string());
      s.mask = (root / "labels" / s.subject / s.session / "seg.nii.gz").string();
      src.folder.samples.push_back(s);
    }
  return src;
}

/// A `gyrus synth` fomo60k tree: every scan one single-channel sample.
ir::DataSource listFomo60k(const std::filesystem::path& root) {
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.layout = ir::FolderData::Layout::Fomo60k;
  src.folder.root = root.string();
  for (const auto& subject : subdirs(root))
    for (const auto& session : subdirs(subject)) {
      std::vector<std::filesystem::path> scans;
      for (const auto& e : std::filesystem::directory_iterator(session)) scans.push_back(e.path());
      std::sort(scans.begin(), scans.end());
      for (const auto& scan : scans) {
        ir::FolderSample s;
        s.subject = subject.filename().string();
        s.session = session.filename().string();
        s.files = {scan.string()};
        src.folder.samples.push_back(s);
      }
    }
  return src;
}

int segmentBench(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s segment TASK2 FOMO60K [pretrainEpochs=5] [lr=1e-4] [side=32] [threads=2]\n", argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  const int pretrainEpochs = argc > 4 ? std::atoi(argv[4]) : 5;
  const double lr = argc > 5 ? std::atof(argv[5]) : 1e-4;
  const int64_t side = argc > 6 ? std::atoll(argv[6]) : 32;
  const int threads = argc > 7 ? std::atoi(argv[7]) : 2;
  ir::UNetEncoder enc;
  enc.width = 16;
  enc.stages = 4;
  ir::Pipeline pipeline{{ir::makeOp("crop", {{"size", ir::Shape3{side, side, side}}}), ir::makeOp("zscore")}};
  fs::path work = fs::temp_directory_path() / ("gyrus_segment_bench_" + std::to_string(::getpid()));
  fs::create_directories(work / "pre");
  fs::create_directories(work / "eval");
  auto print = [](std::string_view line) { std::printf("  %.*s\n", static_cast<int>(line.size()), line.data()); };
  StageContext pctx;
  pctx.threads = threads;
  pctx.dir = work / "pre";
  pctx.progress = print;
  if (pretrainEpochs > 0) {
    ir::PretrainStage pre;
    pre.name = "pre";
    pre.data = listFomo60k(argv[3]);
    pre.pipeline = pipeline;
    pre.encoder = enc;
    pre.objective.terms = {ir::ObjectiveTerm{}};
    pre.optimizer.lr = 1e-3;
    pre.epochs = pretrainEpochs;
    pre.batch = 4;
    pre.seed = 1;
    auto t = std::chrono::steady_clock::now();
    StageResult r = pretrain(pre, pctx);
    std::printf("MAE pretraining: %zu scans, %d epochs, final loss %.4f, %.1f s\n", pre.data.folder.samples.size(),
                pretrainEpochs, r.metrics.empty() ? 0.0 : r.metrics.front().value, msSince(t) / 1000.0);
  } else {
    torch::manual_seed(1);
    UNetEncoder random(enc);
    torch::serialize::OutputArchive archive;
    random->save(archive);
    archive.save_to((work / "pre" / kEncoderFile).string());
    std::printf("randomly initialised encoder (no pretraining)\n");
  }
  ir::EvaluateStage ev;
  ev.name = "seg";
  ev.pretrain = "pre";
  ev.data = listTask2(argv[2]);
  ev.pipeline = pipeline;
  ev.encoder = enc;
  ev.label = "label";
  ev.labelKind = ir::LabelKind::Mask;
  ev.protocol = ir::Protocol::Finetune;
  ev.epochs = 20;
  ev.lr = lr;
  ev.shots = 8;
  ev.repeats = 2;
  ev.seed = 1;
  StageContext ectx;
  ectx.threads = threads;
  ectx.dir = work / "eval";
  ectx.pretrainDir = work / "pre";
  ectx.progress = print;
  std::printf("segmentation fine-tuning: %zu samples of %lld^3, 3 channels, shots 8, 2 repeats, 20 epochs, lr %g, "
              "NSD at %g mm (%d threads)\n",
              ev.data.folder.samples.size(), static_cast<long long>(side), lr, ev.nsdToleranceMm, threads);
  auto t = std::chrono::steady_clock::now();
  StageResult r = evaluate(ev, ectx);
  for (const Metric& m : r.metrics) std::printf("  %s = %.4f\n", m.name.c_str(), m.value);
  std::printf("total %.1f s; predictions in %s\n", msSince(t) / 1000.0, (ectx.dir / kPredictionsFile).c_str());
  return 0;
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
  const ir::PipelineOp crop = ir::makeOp("crop", {{"size", ir::Shape3{64, 64, 64}}});
  ir::Pipeline pipeline{{ir::makeOp("resample", {{"spacing", 1.0}}), crop, ir::makeOp("zscore")}};
  for (int t : {1, threads}) {
    setThreads(t);
    auto t1 = std::chrono::steady_clock::now();
    Dataset ds = buildDataset(src, pipeline, 8, LoadOptions::reading(t));
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
      v = centerCropOrPad(v, crop.shape("size"));
      zscore(v, true);
      restMs += msSince(t4);
    }
    std::printf("per volume (1 thread, mean of %d, half 1 mm, half 1.25 mm): read %.1f ms, resample %.1f ms, "
                "crop+zscore %.1f ms\n", kReps, readMs / kReps, resampleMs / kReps, restMs / kReps);
  }
  // The same files through nibabel + scipy (bench/load_twin.py), one thread, side by side.
  {
    const char* venv = std::getenv("GYRUS_TORCH_VENV");
    std::string python = venv != nullptr && *venv != '\0' ? std::string(venv) + "/bin/python"
                                                          : std::string(GYRUS_TORCH_VENV_DEFAULT) + "/bin/python";
    std::string command = "'" + python + "' '" GYRUS_SOURCE_DIR "/bench/load_twin.py' '" + root.string() + "' 64";
    std::string out;
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buffer[512];
      while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
      if (pclose(pipe) == 0 && !out.empty()) {
        std::printf("nibabel + scipy (bench/load_twin.py, 1 thread): %s", out.c_str());
      } else {
        std::printf("nibabel + scipy: not measured (%s failed; the environment needs nibabel and scipy: "
                    "bash scripts/install-deps.sh)\n", command.c_str());
      }
    }
  }

  // The volume cache and streaming, with `threads` readers: the first load preprocesses
  // and writes every volume, the second reads them back; a streamed data set keeps only
  // shapes in memory and reads each batch from the cache.
  setThreads(threads);
  LoadOptions cached = LoadOptions::reading(threads);
  cached.cache = root / "cache";
  auto t6 = std::chrono::steady_clock::now();
  Dataset cold = buildDataset(src, pipeline, 8, cached);
  double coldS = msSince(t6) / 1000.0;
  auto t7 = std::chrono::steady_clock::now();
  Dataset warm = buildDataset(src, pipeline, 8, cached);
  double warmS = msSince(t7) / 1000.0;
  const double n = static_cast<double>(warm.samples);
  std::printf("volume cache: first load %.1f volumes/s (%lld written), second %.1f volumes/s (%lld reused): %.1fx\n",
              n / coldS, static_cast<long long>(cold.cacheWrites), n / warmS, static_cast<long long>(warm.cacheHits),
              coldS / warmS);
  cached.memoryBudget = 1;  // stream
  auto t8 = std::chrono::steady_clock::now();
  Dataset streamed = buildDataset(src, pipeline, 8, cached);
  double openS = msSince(t8) / 1000.0;
  std::vector<int64_t> order(static_cast<size_t>(streamed.samples));
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng shuffle(3);
  shuffle.shuffle(order);
  auto t9 = std::chrono::steady_clock::now();
  for (size_t b = 0; b + 4 <= order.size(); b += 4) {
    torch::Tensor rows = streamed.rows(std::vector<int64_t>(order.begin() + static_cast<long>(b), order.begin() + static_cast<long>(b + 4)));
    if (!torch::equal(rows[0], warm.images[order[b]])) {
      std::fprintf(stderr, "streamed rows differ from the in-memory data set\n");
      return 1;
    }
  }
  double readS = msSince(t9) / 1000.0;
  const double volumeMB = 64.0 * 64.0 * 64.0 * 4.0 / 1e6;
  std::printf("streamed: opened in %.2f s (every entry checked), then batches of 4 in random order at %.0f volumes/s "
              "(one reader thread); images in memory: %.1f MB in memory vs %.1f MB streamed (two batches)\n",
              openS, n / readS, n * volumeMB, 8.0 * volumeMB);
  fs::remove_all(root);

  // What training consumes: one MAE step at 64^3, batch 4, for a small U-Net (width 8,
  // 4 stages) and a small ViT (8^3 patches, 96 wide, 4 blocks).
  auto stepTime = [&](const ir::Encoder& enc, const char* what) {
    torch::manual_seed(0);
    MaeNet net(enc);
    torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(3e-5));
    Rng rng(1);
    ir::MaeObjective mae;
    mae.cube = 8;
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
    std::printf("MAE step 64^3, batch 4, %s: %.0f ms = %.1f volumes/s consumed (%d threads)\n", what, ms, 4000.0 / ms,
                threads);
  };
  ir::UNetEncoder unet;
  unet.width = 8;
  unet.stages = 4;
  stepTime(unet, "U-Net width 8, 4 stages");
  ir::VitEncoder vit;
  vit.patch = 8;
  vit.dim = 96;
  vit.depth = 4;
  vit.heads = 4;
  stepTime(ir::Encoder(vit), "ViT patch 8, dim 96, 4 blocks");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "segment") {
    try {
      return segmentBench(argc, argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
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
  pipeline.ops = {ir::makeOp("crop", {{"size", ir::Shape3{32, 32, 32}}}), ir::makeOp("zscore")};
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
  augmented.ops.push_back(ir::makeOp("flip", {{"p", 0.5}}));
  augmented.ops.push_back(ir::makeOp("noise", {{"sigma", 0.1}}));
  augmented.ops.push_back(ir::makeOp("gamma", {{"range", ir::Interval{0.7, 1.5}}}));
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
