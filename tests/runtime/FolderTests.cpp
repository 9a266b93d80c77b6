// NIfTI folder data sets in the runtime: small FOMO60K- and FOMO25-like trees written at
// test time with the gyrus_nifti writer, loaded, pretrained on and evaluated through the
// Runtime interface; the user errors of bad files, shapes and labels; loading gives the
// same tensors for any number of reader threads.
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "Errors.h"
#include "Folder.h"
#include "Models.h"
#include "Preprocess.h"
#include "Stages.h"
#include "VolumeCache.h"
#include "gyrus/io/Nifti.h"
#include "gyrus/runtime/Runtime.h"

#include <doctest/doctest.h>

#include "TestSupport.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

using namespace gyrus;
using namespace gyrus::rt;
using gyrus::rt::test::freshDir;
using gyrus::rt::test::makeRuntime;
using gyrus::rt::test::metricOf;
using gyrus::rt::test::expectUserError;
namespace fs = std::filesystem;

namespace {

/// Writes `v` as a float32 NIfTI file with voxel size `spacing`, centred on the origin.
/// With `lps`, the file's x and y axes run to the Left and Posterior (stored mirrored),
/// so reading it back exercises the reorientation to RAS.
void writeVolume(const fs::path& path, const Volume& v, const std::array<double, 3>& spacing, bool lps = false) {
  io::Image image;
  image.shape = v.shape;
  image.spacing = spacing;
  image.data = v.data;
  for (size_t i = 0; i < 3; ++i) {
    double sign = lps && i < 2 ? -1.0 : 1.0;
    image.affine[i][i] = sign * spacing[i];
    image.affine[i][3] = -sign * spacing[i] * 0.5 * static_cast<double>(v.shape[i] - 1);
  }
  image.affine[3][3] = 1.0;
  if (lps) {  // store the mirrored data, so that the RAS volume read back is `v` again
    image.data.assign(v.data.size(), 0.0f);
    for (int64_t z = 0; z < v.shape[2]; ++z)
      for (int64_t y = 0; y < v.shape[1]; ++y)
        for (int64_t x = 0; x < v.shape[0]; ++x)
          image.data[v.index(v.shape[0] - 1 - x, v.shape[1] - 1 - y, z)] = v.at(x, y, z);
  }
  fs::create_directories(path.parent_path());
  std::string error;
  REQUIRE_MESSAGE(io::writeNifti(path.string(), image, io::WriteOptions{}, error), error);
}

Volume brain(int64_t side, uint64_t seed, int64_t index) {
  ir::SyntheticData d;
  d.size = {side, side, side};
  d.seed = seed;
  return synthesize(d, index).image;
}

/// FOMO60K-like: <root>/sub_<i>/ses_1/t1.nii.gz, three scans of 24^3 at 1 mm and three
/// of 14^3 at 1.5 mm (21^3 after resampling to 1 mm); one of them stored LPS.
ir::DataSource fomo60k(const fs::path& root) {
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.layout = ir::FolderData::Layout::Fomo60k;
  src.folder.root = root.string();
  for (int64_t i = 0; i < 6; ++i) {
    bool fine = i < 3;
    ir::FolderSample s;
    s.subject = "sub_" + std::to_string(i + 1);
    s.session = "ses_1";
    fs::path file = root / s.subject / s.session / "t1.nii.gz";
    double mm = fine ? 1.0 : 1.5;
    writeVolume(file, brain(fine ? 24 : 14, 11, i), {mm, mm, mm}, i == 4);
    s.files = {file.string()};
    src.folder.samples.push_back(s);
  }
  return src;
}

/// FOMO25-like task: <root>/preprocessed/sub_<i>/ses_1/{flair,dwi}.nii.gz, 16 samples
/// (8 with a lesion, 8 without) of 16^3 at 1.25 mm, label = the lesion.
ir::DataSource fomo25(const fs::path& root) {
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.layout = ir::FolderData::Layout::Fomo25;
  src.folder.root = root.string();
  src.folder.channels = {"flair", "dwi"};
  src.folder.hasLabel = true;
  ir::SyntheticData d;
  d.size = {16, 16, 16};
  d.seed = 77;
  int count[2] = {0, 0};
  for (int64_t i = 0; count[0] < 8 || count[1] < 8; ++i) {
    Subject subject = synthesize(d, i);
    if (count[subject.lesion] >= 8) continue;
    ++count[subject.lesion];
    ir::FolderSample s;
    s.subject = "sub_" + std::to_string(src.folder.samples.size() + 1);
    s.session = "ses_1";
    s.label = subject.lesion;
    fs::path dir = root / "preprocessed" / s.subject / s.session;
    Volume dwi = subject.image;  // another contrast of the same anatomy
    for (float& f : dwi.data) f = std::sqrt(std::max(0.0f, f));
    writeVolume(dir / "flair.nii.gz", subject.image, {1.25, 1.25, 1.25});
    writeVolume(dir / "dwi.nii.gz", dwi, {1.25, 1.25, 1.25});
    s.files = {(dir / "flair.nii.gz").string(), (dir / "dwi.nii.gz").string()};
    src.folder.samples.push_back(s);
  }
  return src;
}

ir::PipelineOp resampleOp(double mm) { return ir::makeOp("resample", {{"spacing", mm}}); }

ir::PipelineOp cropOp(int64_t side) { return ir::makeOp("crop", {{"size", ir::Shape3{side, side, side}}}); }

ir::UNetEncoder smallEncoder() {
  ir::UNetEncoder e;
  e.width = 4;
  e.stages = 3;
  e.convsPerStage = 2;
  return e;
}

ir::PretrainStage folderPretrain(const ir::DataSource& data) {
  ir::PretrainStage s;
  s.name = "pre";
  s.data = data;
  s.pipeline.ops = {resampleOp(1.0), cropOp(16), ir::makeOp("zscore")};  // resample(1mm) >> crop(16^3) >> zscore()
  s.encoder = smallEncoder();
  s.objective.terms = {ir::ObjectiveTerm{}};
  s.optimizer.lr = 3e-3;
  s.epochs = 2;
  s.batch = 3;
  s.seed = 5;
  return s;
}

ir::EvaluateStage folderEvaluate(const ir::DataSource& data, const ir::Pipeline& pipeline) {
  ir::EvaluateStage ev;
  ev.name = "eval";
  ev.pretrain = "pre";
  ev.data = data;
  ev.pipeline = pipeline;
  ev.encoder = smallEncoder();
  ev.label = "label";
  ev.labelKind = ir::LabelKind::Binary;
  ev.shots = 4;
  ev.repeats = 2;
  ev.seed = 3;
  return ev;
}

StageResult pretrainIn(const fs::path& dir, const ir::PretrainStage& stage, std::vector<std::string>* lines = nullptr) {
  StageContext ctx;
  ctx.threads = 2;
  ctx.dir = dir;
  if (lines) ctx.progress = [lines](std::string_view l) { lines->emplace_back(l); };
  return makeRuntime()->runPretrain(stage, ctx);
}

}  // namespace

TEST_CASE("folder data: pretraining on a FOMO60K-like tree, evaluation on a two-channel FOMO25-like task") {
  fs::path root = freshDir("folder", "trees");
  ir::DataSource scans = fomo60k(root / "fomo60k");
  ir::DataSource task = fomo25(root / "task1");
  ir::PretrainStage pre = folderPretrain(scans);
  fs::path preDir = freshDir("folder", "pre");
  std::vector<std::string> lines;
  StageResult p = pretrainIn(preDir, pre, &lines);
  REQUIRE_MESSAGE(p.status == StageResult::Status::Ok, p.message);
  CHECK(std::isfinite(metricOf(p, "final_loss")));
  CHECK(lines.size() == 2);  // two epochs; six volumes are too few for load progress
  CHECK(fs::exists(preDir / kEncoderFile));

  StageContext ectx;
  ectx.threads = 2;
  ectx.dir = freshDir("folder", "eval");
  ectx.pretrainDir = preDir;
  ir::EvaluateStage ev = folderEvaluate(task, pre.pipeline);
  StageResult e = makeRuntime()->runEvaluate(ev, ectx);
  REQUIRE_MESSAGE(e.status == StageResult::Status::Ok, e.message);
  for (const char* m : {"auroc", "auroc_random_encoder"}) {
    CHECK(metricOf(e, m) >= 0.0);
    CHECK(metricOf(e, m) <= 1.0);
  }
  // A probe too large for the loader memory streams its samples: the same figures.
  StageContext streamCtx = ectx;
  streamCtx.dir = freshDir("folder", "eval-streamed");
  streamCtx.loaderMemory = 1;
  StageResult es = makeRuntime()->runEvaluate(folderEvaluate(task, pre.pipeline), streamCtx);
  REQUIRE_MESSAGE(es.status == StageResult::Status::Ok, es.message);
  CHECK(metricOf(es, "auroc") == metricOf(e, "auroc"));
  CHECK(metricOf(es, "auroc_random_encoder") == metricOf(e, "auroc_random_encoder"));
  CHECK_FALSE(fs::exists(streamCtx.dir / kSpillDir));

  std::ifstream f(ectx.dir / kPredictionsFile);
  auto j = nlohmann::json::parse(f);
  // Per channel: mean and max of every stage (widths 4 + 8 + 16); two channels.
  CHECK(j.at("features") == 2 * 2 * (4 + 8 + 16));
  CHECK(j.at("label") == "label");
  // Sample names as the data set lists them, indexed by `train` and `test`.
  REQUIRE(j.at("samples").size() == ev.data.folder.samples.size());
  CHECK(j.at("samples")[0] == ev.data.folder.samples[0].subject + "/" + ev.data.folder.samples[0].session);
  REQUIRE(j.at("repeats").size() == 2);
  CHECK(j["repeats"][0]["train"].size() == 4);
  CHECK(j["repeats"][0]["test"].size() == 8);  // half of each class
  int positives = 0;
  for (const auto& l : j["repeats"][0]["labels"]) positives += l.get<int>();
  CHECK(positives == 4);

  // One run with its variations in turn (not SUBCASEs, which would pretrain again each).
  ev.labelKind = ir::LabelKind::Continuous;  // the same labels as a continuous target
  StageResult c = makeRuntime()->runEvaluate(ev, ectx);
  REQUIRE_MESSAGE(c.status == StageResult::Status::Ok, c.message);
  CHECK(std::isfinite(metricOf(c, "mae")));
  ev.labelKind = ir::LabelKind::Binary;

  ev.data.folder.samples[5].label = 2.0;  // a binary label other than 0/1 names the sample
  expectUserError(makeRuntime()->runEvaluate(ev, ectx), {"sample sub_6/ses_1 has the label 2", "must be 0 or 1"});
  ev.data.folder.samples[5].label = 1.0;

  ev.label = "lesion";  // folder data sets have the label 'label' only
  expectUserError(makeRuntime()->runEvaluate(ev, ectx), {"unknown label 'lesion'", "'label'"});
  ev.label = "label";

  // Multi-channel data cannot be pretrained on: the checker rejects it, the runtime
  // asserts it.
  {
    StageResult multi = pretrainIn(freshDir("folder", "multi"), folderPretrain(task));
    CHECK(multi.status == StageResult::Status::InternalError);
    CHECK_MESSAGE(multi.message.find("pretraining data have more than one channel") != std::string::npos, multi.message);
  }

  // The channels of one sample on different grids: both files and shapes are named.
  const ir::FolderSample& s = ev.data.folder.samples[2];
  writeVolume(s.files[1], brain(12, 1, 0), {1.25, 1.25, 1.25});
  expectUserError(makeRuntime()->runEvaluate(ev, ectx),
                  {"sample sub_3/ses_1", s.files[0] + " is 16x16x16", s.files[1] + " is 12x12x12"});
}

TEST_CASE("folder data: volumes that differ in shape need a crop after resample") {
  fs::path root = freshDir("folder", "shapes");
  ir::DataSource scans = fomo60k(root);
  ir::PretrainStage stage = folderPretrain(scans);
  stage.pipeline.ops = {resampleOp(1.0), ir::makeOp("zscore")};  // no crop: 24^3 and 21^3
  expectUserError(pretrainIn(freshDir("folder", "nocrop"), stage),
                  {"differ in shape", scans.folder.samples[0].files[0] + " is 24x24x24",
                   scans.folder.samples[3].files[0] + " is 21x21x21", "add crop(...) after resample(...)"});
  ir::PipelineOp flip = ir::makeOp("flip");
  stage.pipeline.ops = {resampleOp(1.0), flip, cropOp(16)};  // the crop comes after the cache
  expectUserError(pretrainIn(freshDir("folder", "latecrop"), stage), {"move crop(...) before the first random augmentation"});
  stage.pipeline.ops = {resampleOp(1.0), cropOp(16), flip};
  StageResult ok = pretrainIn(freshDir("folder", "flipped"), stage);
  CHECK_MESSAGE(ok.status == StageResult::Status::Ok, ok.message);
}

TEST_CASE("folder data: missing and corrupt files are the user's error, naming the file") {
  fs::path root = freshDir("folder", "corrupt");
  ir::DataSource scans = fomo60k(root);
  ir::PretrainStage stage = folderPretrain(scans);
  const std::string victim = scans.folder.samples[4].files[0];
  {  // keep the first half of the compressed stream
    std::ifstream in(victim, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(victim, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  expectUserError(pretrainIn(freshDir("folder", "c1"), stage), {victim + ": ", "corrupt gzip stream"});
  fs::remove(scans.folder.samples[1].files[0]);
  // The first bad file in sample order is reported, whatever the threads did.
  expectUserError(pretrainIn(freshDir("folder", "c2"), stage), {scans.folder.samples[1].files[0] + ": no such file"});
}

TEST_CASE("folder data: loading gives identical tensors with 1, 2 and 5 threads, in sample order") {
  fs::path root = freshDir("folder", "threads");
  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.root = root.string();
  std::vector<Volume> originals;
  for (int64_t i = 0; i < 60; ++i) {  // enough volumes for progress lines
    ir::FolderSample s;
    s.subject = "sub_" + std::to_string(i);
    fs::path file = root / s.subject / "t2.nii.gz";
    double mm = i % 3 == 0 ? 1.5 : 1.0;
    originals.push_back(brain(i % 2 == 0 ? 12 : 10, 5, i));
    originals.back().spacing = {mm, mm, mm};
    writeVolume(file, originals.back(), originals.back().spacing);
    s.files = {file.string()};
    src.folder.samples.push_back(s);
  }
  ir::Pipeline pipeline{{resampleOp(1.0), cropOp(12), ir::makeOp("zscore")}};
  std::vector<std::string> lines;
  LoadOptions one = LoadOptions::reading(1, [&](std::string_view l) { lines.emplace_back(l); });
  Dataset a = buildDataset(src, pipeline, 4, one);
  Dataset b = buildDataset(src, pipeline, 4, LoadOptions::reading(2));
  Dataset c = buildDataset(src, pipeline, 4, LoadOptions::reading(5));
  REQUIRE(a.images.sizes().vec() == std::vector<int64_t>{60, 1, 12, 12, 12});
  CHECK(torch::equal(a.images, b.images));
  CHECK(torch::equal(a.images, c.images));
  CHECK(a.samples == 60);
  CHECK(a.channels == 1);
  CHECK(a.label.empty());
  // Row k is sample k, preprocessed exactly as the torch-free kernels do it, and as the
  // op-by-op reference does to the last bits (positions are composed in single precision).
  for (int64_t k : {0, 1, 3, 59}) {
    Volume expected = runPipeline(compilePipeline(pipeline), originals[static_cast<size_t>(k)]);
    auto row = a.images[k].contiguous();
    CHECK(std::equal(expected.data.begin(), expected.data.end(), row.data_ptr<float>()));
    Volume reference = applyPipeline(pipeline, originals[static_cast<size_t>(k)]);
    for (size_t i = 0; i < reference.data.size(); ++i) CHECK(std::abs(reference.data[i] - expected.data[i]) < 1e-4f);
  }
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.size() <= 10);
  CHECK(lines.back() == "loading 60/60 volumes");
  CHECK(lines.front().rfind("loading ", 0) == 0);
}

TEST_CASE("folder data: fine-tuning a single-channel encoder on a two-channel task re-initialises the stem") {
  fs::path root = freshDir("folder", "finetune");
  ir::DataSource task = fomo25(root / "task1");
  fs::path preDir = freshDir("folder", "finetune_pre");
  {  // a single-channel encoder.pt, as a pretrain stage writes it
    torch::manual_seed(8);
    UNetEncoder single(smallEncoder());
    torch::serialize::OutputArchive archive;
    single->save(archive);
    archive.save_to((preDir / kEncoderFile).string());
  }
  ir::Pipeline pipeline{{resampleOp(1.0), cropOp(16), ir::makeOp("zscore")}};
  ir::EvaluateStage ev = folderEvaluate(task, pipeline);
  ev.protocol = ir::Protocol::Finetune;
  ev.epochs = 3;
  ev.lr = 1e-3;
  StageContext ectx;
  ectx.threads = 2;
  ectx.dir = freshDir("folder", "finetune_eval");
  ectx.pretrainDir = preDir;
  std::vector<std::string> lines;
  ectx.progress = [&lines](std::string_view l) { lines.emplace_back(l); };
  StageResult e = makeRuntime()->runEvaluate(ev, ectx);
  REQUIRE_MESSAGE(e.status == StageResult::Status::Ok, e.message);
  for (const char* m : {"auroc", "auroc_scratch"}) {
    CHECK(metricOf(e, m) >= 0.0);
    CHECK(metricOf(e, m) <= 1.0);
  }
  REQUIRE(lines.size() == 3);  // the stem message, then one line per repeat
  CHECK(lines[0].find("the task has 2 channels, the pretrained encoder takes 1") != std::string::npos);
  CHECK(lines[0].find("first convolution re-initialised (stage0.conv0.conv.weight)") != std::string::npos);
  CHECK(lines[1].rfind("repeat 1/2  auroc ", 0) == 0);
  std::ifstream f(ectx.dir / kPredictionsFile);
  auto j = nlohmann::json::parse(f);
  CHECK(j.at("protocol") == "finetune");
  CHECK(j.at("channels") == 2);
  CHECK(j.at("reinitialised") == nlohmann::json::array({"stage0.conv0.conv.weight"}));
  REQUIRE(j.at("repeats").size() == 2);
  CHECK(j["repeats"][0]["train"].size() == 4);
  CHECK(j["repeats"][0]["scores"].size() == 8);
  CHECK(j["repeats"][0]["loss"].size() == 3);

  // Streamed (the two channels of a sample are consecutive cache entries): the same run.
  StageContext streamed = ectx;
  streamed.dir = freshDir("folder", "finetune_streamed");
  streamed.loaderMemory = 1;
  std::vector<std::string> streamedLines;
  streamed.progress = [&streamedLines](std::string_view l) { streamedLines.emplace_back(l); };
  StageResult es = makeRuntime()->runEvaluate(ev, streamed);
  REQUIRE_MESSAGE(es.status == StageResult::Status::Ok, es.message);
  for (const Metric& m : e.metrics) CHECK_MESSAGE(metricOf(es, m.name) == m.value, m.name);
  CHECK(std::any_of(streamedLines.begin(), streamedLines.end(), [](const std::string& l) {
    return l.rfind("streaming 32 preprocessed volumes from ", 0) == 0;
  }));
  CHECK_FALSE(fs::exists(streamed.dir / kSpillDir));
}

namespace {

/// Keeps the first half of a file's bytes (a truncated gzip stream).
void truncateHalf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
}

std::vector<fs::path> cacheEntries(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("volume cache: a second load reuses every volume, keyed by content, and rebuilds a damaged entry") {
  fs::path root = freshDir("folder", "cache");
  ir::DataSource scans = fomo60k(root / "tree");
  ir::Pipeline pipeline{{resampleOp(1.0), cropOp(16), ir::makeOp("zscore")}};
  LoadOptions load = LoadOptions::reading(2);
  Dataset plain = buildDataset(scans, pipeline, 4, load);
  load.cache = root / "volumes";
  Dataset first = buildDataset(scans, pipeline, 4, load);
  CHECK(first.cacheWrites == 6);
  CHECK(first.cacheHits == 0);
  CHECK(torch::equal(first.images, plain.images));
  std::vector<fs::path> entries = cacheEntries(load.cache);
  REQUIRE(entries.size() == 6);
  CHECK(fs::file_size(entries[0]) == static_cast<uintmax_t>(cacheEntryBytes(16 * 16 * 16)));

  Dataset second = buildDataset(scans, pipeline, 4, load);
  CHECK(second.cacheHits == 6);
  CHECK(second.cacheWrites == 0);
  CHECK(torch::equal(second.images, plain.images));
  CHECK((second.spacing == plain.spacing));

  // The key is the file's content, not its name: a moved tree still hits.
  fs::rename(root / "tree", root / "moved");
  ir::DataSource moved = fomo60k(root / "unused");  // same samples, new paths below
  for (size_t i = 0; i < moved.folder.samples.size(); ++i)
    moved.folder.samples[i].files[0] = (root / "moved" / scans.folder.samples[i].subject / "ses_1" / "t1.nii.gz").string();
  Dataset third = buildDataset(moved, pipeline, 4, load);
  CHECK(third.cacheHits == 6);
  CHECK(torch::equal(third.images, plain.images));

  // A damaged entry is a miss, rewritten; the result does not change.
  fs::resize_file(entries[2], 100);
  Dataset fourth = buildDataset(moved, pipeline, 4, load);
  CHECK(fourth.cacheHits == 5);
  CHECK(fourth.cacheWrites == 1);
  CHECK(torch::equal(fourth.images, plain.images));
  CHECK(fs::file_size(entries[2]) == static_cast<uintmax_t>(cacheEntryBytes(16 * 16 * 16)));

  // Damaged voxels behind an intact header (a flipped byte) are caught by the CRC.
  {
    std::fstream f(entries[3], std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(cacheEntryBytes(16 * 16 * 16) / 2));
    f.put('\x5a');
  }
  Dataset flipped = buildDataset(moved, pipeline, 4, load);
  CHECK(flipped.cacheWrites == 1);
  CHECK(torch::equal(flipped.images, plain.images));

  // Another prefix is another key.
  ir::Pipeline smaller{{resampleOp(1.0), cropOp(8), ir::makeOp("zscore")}};
  Dataset fifth = buildDataset(moved, smaller, 4, load);
  CHECK(fifth.cacheWrites == 6);
  CHECK(cacheEntries(load.cache).size() == 12);

  // A cache that cannot be written (every entry's folder is taken by a file; root would
  // ignore permissions): an in-memory load goes on without it and says why; a streamed
  // one, which lives in the cache, stops.
  LoadOptions blocked = LoadOptions::reading(2);
  blocked.cache = root / "blocked";
  fs::create_directories(blocked.cache);
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) std::ofstream(blocked.cache / std::string{hex[i / 16], hex[i % 16]}) << "x";
  Dataset unstored = buildDataset(moved, pipeline, 4, blocked);
  CHECK(unstored.cacheWrites == 0);
  CHECK(unstored.cacheWarning.find("cannot write to the volume cache") != std::string::npos);
  CHECK(torch::equal(unstored.images, plain.images));
  blocked.memoryBudget = 1;
  CHECK_THROWS_WITH_AS(buildDataset(moved, pipeline, 4, blocked), doctest::Contains("cannot write to the volume cache"),
                       UserError);
  // A cache directory that cannot even be created (a file is in the way): the same.
  LoadOptions nowhere = LoadOptions::reading(2);
  nowhere.cache = blocked.cache / "00" / "cache";
  Dataset uncached = buildDataset(moved, pipeline, 4, nowhere);
  CHECK(uncached.cacheWarning.find("cannot create the volume cache") != std::string::npos);
  CHECK(torch::equal(uncached.images, plain.images));
  nowhere.memoryBudget = 1;
  CHECK_THROWS_WITH_AS(buildDataset(moved, pipeline, 4, nowhere), doctest::Contains("cannot create the volume cache"),
                       UserError);
}

TEST_CASE("streaming: a pretraining larger than the loader memory reads its volumes from disk and trains identically") {
  fs::path root = freshDir("folder", "stream");
  ir::DataSource scans = fomo60k(root / "tree");
  for (bool augmented : {false, true}) {
    CAPTURE(augmented);
    ir::PretrainStage stage = folderPretrain(scans);
    if (augmented) {
      stage.pipeline.ops.push_back(ir::makeOp("flip"));
    }
    std::string tag = augmented ? "a" : "p";
    fs::path memDir = freshDir("folder", "mem" + tag);
    StageResult inMemory = pretrainIn(memDir, stage);
    REQUIRE_MESSAGE(inMemory.status == StageResult::Status::Ok, inMemory.message);

    StageContext ctx;
    ctx.threads = 2;
    ctx.dir = freshDir("folder", "disk" + tag);
    ctx.loaderMemory = 1;  // nothing fits: stream
    std::vector<std::string> lines;
    ctx.progress = [&lines](std::string_view l) { lines.emplace_back(l); };
    StageResult streamed = makeRuntime()->runPretrain(stage, ctx);
    REQUIRE_MESSAGE(streamed.status == StageResult::Status::Ok, streamed.message);
    CHECK(metricOf(streamed, "final_loss") == metricOf(inMemory, "final_loss"));  // bit for bit
    const std::string expected = "streaming 6 preprocessed volumes from " + (ctx.dir / kSpillDir).string();
    CHECK(std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(expected, 0) == 0; }));
    CHECK_FALSE(fs::exists(ctx.dir / kSpillDir));  // the private copy is gone once the stage is done

    // Streamed through a shared volume cache, twice: the second run finds every entry
    // (and reads only its header until a batch needs it).
    for (int round = 0; round < 2; ++round) {
      StageContext shared = ctx;
      shared.dir = freshDir("folder", "shared" + tag + std::to_string(round));
      shared.volumeCache = root / ("vc" + tag);
      std::vector<std::string> sharedLines;
      shared.progress = [&sharedLines](std::string_view l) { sharedLines.emplace_back(l); };
      StageResult again = makeRuntime()->runPretrain(stage, shared);
      REQUIRE_MESSAGE(again.status == StageResult::Status::Ok, again.message);
      CHECK(metricOf(again, "final_loss") == metricOf(inMemory, "final_loss"));
      const std::string cacheLine = round == 0 ? "volume cache: 0 volumes reused, 6 written" : "volume cache: 6 volumes reused, 0 written";
      CHECK(std::find(sharedLines.begin(), sharedLines.end(), cacheLine) != sharedLines.end());
    }

    EncoderModule a = makeEncoder(stage.encoder), b = makeEncoder(stage.encoder);
    torch::serialize::InputArchive ia, ib;
    ia.load_from((memDir / kEncoderFile).string());
    ib.load_from((ctx.dir / kEncoderFile).string());
    a->load(ia);
    b->load(ib);
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const auto& p : pa) CHECK_MESSAGE(torch::equal(p.value(), pb[p.key()]), p.key());
  }
}

TEST_CASE("skip_unreadable: broken samples are left out, counted and listed; labels and sites stay aligned") {
  fs::path root = freshDir("folder", "skip");
  ir::DataSource task = fomo25(root / "task");
  ir::DataSource scans = fomo60k(root / "scans");
  ir::PretrainStage pre = folderPretrain(scans);
  fs::path preDir = freshDir("folder", "skip-pre");
  REQUIRE(pretrainIn(preDir, pre).status == StageResult::Status::Ok);

  // The reference: the same task without samples 3 and 6.
  ir::DataSource reduced = task;
  reduced.folder.samples.erase(reduced.folder.samples.begin() + 5);
  reduced.folder.samples.erase(reduced.folder.samples.begin() + 2);
  StageContext ctx;
  ctx.threads = 2;
  ctx.pretrainDir = preDir;
  ctx.dir = freshDir("folder", "skip-ref");
  StageResult reference = makeRuntime()->runEvaluate(folderEvaluate(reduced, pre.pipeline), ctx);
  REQUIRE_MESSAGE(reference.status == StageResult::Status::Ok, reference.message);

  // Sample 3: a truncated channel; sample 6: channels on different grids.
  truncateHalf(task.folder.samples[2].files[1]);
  writeVolume(task.folder.samples[5].files[1], brain(12, 1, 0), {1.25, 1.25, 1.25});
  ir::EvaluateStage ev = folderEvaluate(task, pre.pipeline);
  ctx.dir = freshDir("folder", "skip-strict");
  expectUserError(makeRuntime()->runEvaluate(ev, ctx), {task.folder.samples[2].files[1] + ": "});

  ev.data.folder.skipUnreadable = true;
  ctx.dir = freshDir("folder", "skip-lenient");
  std::vector<std::string> lines;
  ctx.progress = [&lines](std::string_view l) { lines.emplace_back(l); };
  StageResult skipped = makeRuntime()->runEvaluate(ev, ctx);
  REQUIRE_MESSAGE(skipped.status == StageResult::Status::Ok, skipped.message);
  CHECK(metricOf(skipped, "skipped_samples") == 2.0);
  // Leaving samples out is exactly the same as never having had them.
  CHECK(metricOf(skipped, "auroc") == metricOf(reference, "auroc"));
  CHECK(metricOf(skipped, "auroc_random_encoder") == metricOf(reference, "auroc_random_encoder"));
  std::ifstream f(ctx.dir / kSkippedFile);
  std::string header, first, second, extra;
  std::getline(f, header);
  std::getline(f, first);
  std::getline(f, second);
  CHECK(header == "sample\treason");
  CHECK(first.rfind("sub_3/ses_1\t" + task.folder.samples[2].files[1] + ": ", 0) == 0);
  CHECK(second.rfind("sub_6/ses_1\tthe channels of sample sub_6/ses_1 differ in shape", 0) == 0);
  CHECK_FALSE(std::getline(f, extra));
  bool reported = false;
  for (const std::string& l : lines) reported = reported || l.rfind("skipped 2 of 16 samples (skip_unreadable)", 0) == 0;
  CHECK(reported);

  // Pretraining skips too; a data set with nothing left is still an error.
  truncateHalf(scans.folder.samples[1].files[0]);
  pre.data.folder.skipUnreadable = true;
  StageResult p = pretrainIn(freshDir("folder", "skip-pre2"), pre);
  REQUIRE_MESSAGE(p.status == StageResult::Status::Ok, p.message);
  CHECK(metricOf(p, "skipped_samples") == 1.0);
  for (const ir::FolderSample& s : pre.data.folder.samples) truncateHalf(s.files[0]);
  expectUserError(pretrainIn(freshDir("folder", "skip-pre3"), pre), {"every sample of the data set", "was skipped"});
}

TEST_CASE("gyrus preview of a deterministic pipeline gives the voxels training loads, on the affine of its grid") {
  fs::path root = freshDir("folder", "preview");
  // An LPS file of anisotropic voxels: reorientation, resampling and cropping all act.
  Volume v = brain(14, 7, 3);
  fs::path input = root / "sub_1" / "t1.nii.gz";
  writeVolume(input, v, {1.5, 1.25, 2.0}, true);
  {
    std::ofstream gy(root / "prev.gy");
    gy << "pipeline prep = resample(1mm) >> crop(16^3) >> zscore()\n";
  }
  std::string command = std::string(GYRUS_EXECUTABLE) + " preview " + (root / "prev.gy").string() +
                        " --pipeline prep --input " + input.string() + " --out " + (root / "out").string() +
                        " > " + (root / "log.txt").string() + " 2>&1";
  REQUIRE_MESSAGE(std::system(command.c_str()) == 0, command);
  CHECK(fs::exists(root / "out" / "sample_000.png"));
  CHECK_FALSE(fs::exists(root / "out" / "sample_001.nii.gz"));  // deterministic: one sample
  io::Image shown;
  std::string error;
  REQUIRE_MESSAGE(io::readNifti((root / "out" / "sample_000.nii.gz").string(), io::ReadOptions{}, shown, error), error);

  ir::DataSource src;
  src.kind = ir::DataKind::Folder;
  src.folder.root = root.string();
  ir::FolderSample s;
  s.subject = "sub_1";
  s.files = {input.string()};
  src.folder.samples.push_back(s);
  ir::Pipeline pipeline{{resampleOp(1.0), cropOp(16), ir::makeOp("zscore")}};
  Dataset ds = buildDataset(src, pipeline, 4, LoadOptions::reading(1));
  torch::Tensor row = ds.images[0].contiguous();
  REQUIRE(shown.shape == ds.shape);
  CHECK(std::equal(shown.data.begin(), shown.data.end(), row.data_ptr<float>()));
  // The affine: 1 mm voxels, RAS, and the grid's centre where the input's centre was
  // (resample and a centre crop keep the centre of the field of view).
  for (size_t i = 0; i < 3; ++i) {
    CHECK(std::abs(shown.affine[i][i] - 1.0) < 1e-5);
    double centre = shown.affine[i][3] + shown.affine[i][i] * 0.5 * static_cast<double>(shown.shape[i] - 1);
    CHECK(std::abs(centre) < 0.51);  // the input is centred on the origin; half a voxel from rounding
  }
}

TEST_CASE("gyrus preview of random patches: each sample on the affine of its own patch") {
  fs::path root = freshDir("folder", "preview_patch");
  Volume v = brain(14, 7, 3);
  fs::path input = root / "sub_1" / "t1.nii.gz";
  writeVolume(input, v, {1.5, 1.25, 2.0}, true);
  {
    std::ofstream gy(root / "prev.gy");
    gy << "pipeline views = resample(1mm) >> crop(9^3, random = true)\n";
  }
  std::string command = std::string(GYRUS_EXECUTABLE) + " preview " + (root / "prev.gy").string() +
                        " --pipeline views --input " + input.string() + " --out " + (root / "out").string() +
                        " --samples 6 --seed 4 > " + (root / "log.txt").string() + " 2>&1";
  REQUIRE_MESSAGE(std::system(command.c_str()) == 0, command);
  std::vector<io::Image> shown(6);
  for (size_t i = 0; i < shown.size(); ++i) {
    std::string error;
    std::string name = "sample_00" + std::to_string(i) + ".nii.gz";
    REQUIRE_MESSAGE(io::readNifti((root / "out" / name).string(), io::ReadOptions{}, shown[i], error), error);
    REQUIRE(shown[i].shape == ir::Shape3{9, 9, 9});
    for (size_t a = 0; a < 3; ++a) CHECK(std::abs(shown[i].affine[a][a] - 1.0) < 1e-5);
  }
  // The same world point holds the same value in every sample: the patches are whole-
  // voxel windows of one resampled volume, each placed by its own affine.
  int moved = 0, compared = 0;
  for (size_t i = 1; i < shown.size(); ++i) {
    std::array<int64_t, 3> d{};
    for (size_t a = 0; a < 3; ++a) {
      double shift = shown[i].affine[a][3] - shown[0].affine[a][3];
      d[a] = std::llround(shift);
      CHECK(std::abs(shift - static_cast<double>(d[a])) < 1e-4);
    }
    moved += d != std::array<int64_t, 3>{0, 0, 0} ? 1 : 0;
    for (int64_t z = 0; z < 9; ++z)
      for (int64_t y = 0; y < 9; ++y)
        for (int64_t x = 0; x < 9; ++x) {
          int64_t x0 = x + d[0], y0 = y + d[1], z0 = z + d[2];
          if (x0 < 0 || y0 < 0 || z0 < 0 || x0 >= 9 || y0 >= 9 || z0 >= 9) continue;
          ++compared;
          CHECK(shown[i].data[static_cast<size_t>(x + 9 * (y + 9 * z))] ==
                shown[0].data[static_cast<size_t>(x0 + 9 * (y0 + 9 * z0))]);
        }
  }
  CHECK(moved >= 3);  // the patches are drawn, not one fixed window
  CHECK(compared > 0);
}
