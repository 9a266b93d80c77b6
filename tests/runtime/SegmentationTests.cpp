// Segmentation (LabelKind::Mask) in the runtime: a tiny FOMO25 task-2-like tree with
// masks written at test time (bright blobs in a synthetic head, one sample stored LPS),
// loaded with its masks (spatial pipeline only, any thread count), fine-tuned through
// the Runtime interface (metrics, predictions.json, determinism), and the user errors of
// masks that do not fit; the dense decoder's parameter names and the loss.
// Torch headers come before doctest: glog's CHECK would otherwise replace doctest's.
#include "Finetune.h"
#include "Models.h"
#include "Preprocess.h"
#include "Stages.h"
#include "gyrus/io/Nifti.h"
#include "gyrus/runtime/Runtime.h"

#include <doctest/doctest.h>

#include "TestSupport.h"

#include <unistd.h>

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
using gyrus::rt::test::EvaluateRun;
using gyrus::rt::test::expectUserError;
using gyrus::rt::test::runEvaluateIn;
namespace fs = std::filesystem;

namespace {

/// Writes `v` (RAS voxel order) as NIfTI with voxel size `mm`; with `lps` the file's x
/// and y axes run Left and Posterior (data stored mirrored), so that reading it back
/// exercises the reorientation.
void writeNii(const fs::path& path, const Volume& v, double mm, bool lps, const char* datatype) {
  io::Image image;
  image.shape = v.shape;
  image.spacing = {mm, mm, mm};
  image.data = v.data;
  for (size_t i = 0; i < 3; ++i) {
    double sign = lps && i < 2 ? -1.0 : 1.0;
    image.affine[i][i] = sign * mm;
    image.affine[i][3] = -sign * mm * 0.5 * static_cast<double>(v.shape[i] - 1);
  }
  image.affine[3][3] = 1.0;
  if (lps)
    for (int64_t z = 0; z < v.shape[2]; ++z)
      for (int64_t y = 0; y < v.shape[1]; ++y)
        for (int64_t x = 0; x < v.shape[0]; ++x)
          image.data[v.index(v.shape[0] - 1 - x, v.shape[1] - 1 - y, z)] = v.at(x, y, z);
  fs::create_directories(path.parent_path());
  io::WriteOptions options;
  options.datatype = datatype;
  std::string error;
  REQUIRE_MESSAGE(io::writeNifti(path.string(), image, options, error), error);
}

struct Task {
  ir::DataSource source;
  std::vector<Volume> masks;  ///< as written (RAS order, before the pipeline)
};

/// FOMO25 task-2-like: preprocessed/sub_<i>/ses_1/{flair,dwi}.nii.gz and
/// labels/sub_<i>/ses_1/seg.nii.gz (uint8), `count` samples of 16^3 at 1.25 mm: a
/// synthetic head with a bright ball (radius 2.5 to 3.5 voxels) whose voxels are the
/// mask. Sample 2 is stored LPS.
Task task2(const fs::path& root, int count = 12) {
  Task t;
  t.source.kind = ir::DataKind::Folder;
  t.source.folder.layout = ir::FolderData::Layout::Fomo25;
  t.source.folder.root = root.string();
  t.source.folder.channels = {"flair", "dwi"};
  t.source.folder.hasLabel = true;
  t.source.folder.labelKind = ir::LabelKind::Mask;
  ir::SyntheticData d;
  d.size = {16, 16, 16};
  d.seed = 31;
  d.lesionRate = 0.0;
  Rng rng(7);
  for (int i = 0; i < count; ++i) {
    Volume head = synthesize(d, i).image;
    Volume mask = Volume::zeros(head.shape);
    double cx = rng.uniform(5.5, 10.5), cy = rng.uniform(5.5, 10.5), cz = rng.uniform(5.5, 10.5);
    double r = rng.uniform(2.5, 3.5);
    for (int64_t z = 0; z < 16; ++z)
      for (int64_t y = 0; y < 16; ++y)
        for (int64_t x = 0; x < 16; ++x) {
          double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy, dz = static_cast<double>(z) - cz;
          if (dx * dx + dy * dy + dz * dz <= r * r) {
            mask.at(x, y, z) = 1.0f;
            head.at(x, y, z) += 2.5f;
          }
        }
    Volume dwi = head;
    for (float& f : dwi.data) f = std::sqrt(std::max(0.0f, f));
    ir::FolderSample s;
    s.subject = "sub_" + std::to_string(i + 1);
    s.session = "ses_1";
    fs::path dir = root / "preprocessed" / s.subject / s.session;
    bool lps = i == 2;
    writeNii(dir / "flair.nii.gz", head, 1.25, lps, "float32");
    writeNii(dir / "dwi.nii.gz", dwi, 1.25, lps, "float32");
    fs::path seg = root / "labels" / s.subject / s.session / "seg.nii.gz";
    writeNii(seg, mask, 1.25, lps, "uint8");
    s.files = {(dir / "flair.nii.gz").string(), (dir / "dwi.nii.gz").string()};
    s.mask = seg.string();
    t.source.folder.samples.push_back(s);
    t.masks.push_back(mask);
  }
  return t;
}

/// resample(1mm) >> crop(16^3) >> zscore(): 16^3 at 1.25 mm is 20^3 at 1 mm.
ir::Pipeline pipeline() {
  return {{ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", ir::Shape3{16, 16, 16}}}),
           ir::makeOp("zscore")}};
}

ir::UNetEncoder tinyEncoder() {
  ir::UNetEncoder e;
  e.width = 4;
  e.stages = 3;
  e.convsPerStage = 2;
  return e;
}

/// A randomly initialised single-channel encoder.pt, as a pretrain stage writes it.
fs::path encoderDir() {
  fs::path dir = freshDir("segmentation", "pre");
  torch::manual_seed(8);
  UNetEncoder single(tinyEncoder());
  torch::serialize::OutputArchive archive;
  single->save(archive);
  archive.save_to((dir / kEncoderFile).string());
  return dir;
}

ir::EvaluateStage segStage(const ir::DataSource& data) {
  ir::EvaluateStage ev;
  ev.name = "seg";
  ev.pretrain = "pre";
  ev.data = data;
  ev.pipeline = pipeline();
  ev.encoder = tinyEncoder();
  ev.label = "label";
  ev.labelKind = ir::LabelKind::Mask;
  ev.protocol = ir::Protocol::Finetune;
  ev.epochs = 20;
  ev.lr = 1e-2;
  ev.shots = 6;
  ev.repeats = 2;
  ev.nsdToleranceMm = 2.0;
  ev.seed = 3;
  return ev;
}

EvaluateRun runSeg(const ir::EvaluateStage& ev, const fs::path& pre, const std::string& name) {
  return runEvaluateIn(ev, pre, freshDir("segmentation", name));
}

}  // namespace

TEST_CASE("segmentation: masks load with their images, spatial operations only, for any thread count") {
  Task t = task2(freshDir("segmentation", "load") / "task2", 6);
  LoadOptions one = LoadOptions::reading(1);
  one.masks = true;
  LoadOptions three = LoadOptions::reading(3);
  three.masks = true;
  Dataset a = buildDataset(t.source, pipeline(), 4, one);
  Dataset b = buildDataset(t.source, pipeline(), 4, three);
  REQUIRE(a.masks.defined());
  CHECK(a.masks.sizes().vec() == std::vector<int64_t>{6, 1, 16, 16, 16});
  CHECK(a.images.sizes().vec() == std::vector<int64_t>{12, 1, 16, 16, 16});
  CHECK(torch::equal(a.images, b.images));
  CHECK(torch::equal(a.masks, b.masks));
  CHECK(torch::equal(a.masks, (a.masks > 0.5).to(torch::kFloat32)));  // {0, 1}
  for (size_t k = 0; k < 6; ++k) {  // sample 2 was stored LPS: reoriented like its images
    Volume original = t.masks[k];
    original.spacing = {1.25, 1.25, 1.25};
    Volume expected = applySpatialOps(pipeline(), original);
    torch::Tensor row = a.masks[static_cast<int64_t>(k)].contiguous();
    CHECK_MESSAGE(std::equal(expected.data.begin(), expected.data.end(), row.data_ptr<float>()), "sample " << k);
  }
  // The blob is where the image is bright: the mask selects the highest flair values.
  torch::Tensor flair = a.images.index({torch::indexing::Slice(0, torch::indexing::None, 2)});
  CHECK(flair.masked_select(a.masks > 0.5).mean().item<double>() >
        flair.masked_select(a.masks < 0.5).mean().item<double>() + 1.0);
  Dataset noMasks = buildDataset(t.source, pipeline(), 4, LoadOptions::reading(1));
  CHECK_FALSE(noMasks.masks.defined());
  CHECK(torch::equal(noMasks.images, a.images));
}

TEST_CASE("segmentation: fine-tuning a dense decoder; Dice and NSD per test sample, deterministic") {
  Task t = task2(freshDir("segmentation", "tune") / "task2");
  fs::path pre = encoderDir();
  ir::EvaluateStage ev = segStage(t.source);
  EvaluateRun a = runSeg(ev, pre, "seg_a");
  REQUIRE_MESSAGE(a.result.status == StageResult::Status::Ok, a.result.message);
  REQUIRE(a.result.metrics.size() == 10);
  for (const char* m : {"dice", "nsd", "dice_scratch", "nsd_scratch"}) {
    CHECK(metricOf(a.result, m) >= 0.0);
    CHECK(metricOf(a.result, m) <= 1.0);
  }
  CHECK(metricOf(a.result, "dice_std") >= 0.0);
  CHECK(metricOf(a.result, "nsd_std") >= 0.0);
  // 95 % intervals over the test subjects bracket the mean over them.
  for (const char* m : {"dice", "nsd"}) {
    const std::string name = m;
    CHECK(metricOf(a.result, name + "_ci_low") <= metricOf(a.result, name) + 1e-12);
    CHECK(metricOf(a.result, name + "_ci_high") >= metricOf(a.result, name) - 1e-12);
    CHECK(metricOf(a.result, name + "_ci_high") > metricOf(a.result, name + "_ci_low"));
  }
  MESSAGE("dice " << metricOf(a.result, "dice") << " nsd " << metricOf(a.result, "nsd") << " (from scratch dice "
                  << metricOf(a.result, "dice_scratch") << " nsd " << metricOf(a.result, "nsd_scratch") << ")");
  CHECK(metricOf(a.result, "dice") > 0.2);  // easy blobs: well above an empty prediction
  CHECK(metricOf(a.result, "nsd") > 0.2);
  REQUIRE(a.lines.size() == 3);  // two channels: the stem message, then one line per repeat
  CHECK(a.lines[0].find("first convolution re-initialised") != std::string::npos);
  CHECK(a.lines[1].rfind("repeat 1/2  dice ", 0) == 0);
  CHECK(a.lines[1].find("  nsd ") != std::string::npos);
  CHECK(a.lines[1].find("(from scratch dice ") != std::string::npos);

  const nlohmann::json& j = a.predictions;
  CHECK(j.at("kind") == "mask");
  CHECK(j.at("channels") == 2);
  CHECK(j.at("tolerance_mm") == 2.0);
  CHECK(j.at("batch") == 4);
  REQUIRE(j.at("repeats").size() == 2);
  for (const auto& rep : j["repeats"]) {
    CHECK(rep.at("train").size() == 6);
    size_t n = rep.at("test").size();
    CHECK(n == 6);  // unstratified half of 12
    for (const char* key : {"dice", "nsd", "dice_scratch", "nsd_scratch", "mask_voxels", "predicted_voxels",
                            "predicted_voxels_scratch"})
      CHECK_MESSAGE(rep.at(key).size() == n, key);
    for (double v : rep.at("dice").get<std::vector<double>>()) CHECK((v >= 0.0 && v <= 1.0));
    std::vector<double> loss = rep.at("loss"), lossScratch = rep.at("loss_scratch");
    REQUIRE(loss.size() == 20);
    CHECK(loss.back() < loss.front());
    CHECK(lossScratch.back() < lossScratch.front());
    CHECK(rep.at("dice") != rep.at("dice_scratch"));
  }

  EvaluateRun b = runSeg(ev, pre, "seg_b");
  REQUIRE_MESSAGE(b.result.status == StageResult::Status::Ok, b.result.message);
  for (const Metric& m : a.result.metrics) CHECK_MESSAGE(metricOf(b.result, m.name) == m.value, m.name);
  CHECK(b.predictions == a.predictions);

  // The probe cannot segment; a mask off its images' grid names both files and shapes.
  ir::EvaluateStage probe = ev;
  probe.protocol = ir::Protocol::Probe;
  expectUserError(runSeg(probe, pre, "seg_probe").result, {"protocol = finetune"});
  ir::EvaluateStage noMask = ev;
  noMask.data.folder.samples[4].mask.clear();
  expectUserError(runSeg(noMask, pre, "seg_nomask").result, {"sample sub_5/ses_1 has no segmentation mask"});
  const ir::FolderSample& s = ev.data.folder.samples[5];
  writeNii(s.mask, Volume::zeros({16, 16, 12}), 1.25, false, "uint8");
  expectUserError(runSeg(ev, pre, "seg_shape").result,
                  {"the mask of sample sub_6/ses_1 does not match its images", s.mask + " is 16x16x12",
                   s.files[0] + " is 16x16x16"});
  writeNii(s.mask, Volume::zeros({16, 16, 16}), 1.5, false, "uint8");
  expectUserError(runSeg(ev, pre, "seg_spacing").result, {s.mask + " has voxels of 1.5x1.5x1.5 mm"});
}

TEST_CASE("segmentation: the dense decoder's names and shapes; the loss is small for a confident right answer") {
  ir::UNetEncoder cfg = tinyEncoder();
  cfg.inChannels = 3;
  SegNet net(cfg);
  auto params = net->named_parameters();
  for (const char* name : {"encoder.stage0.conv0.conv.weight", "decoder.up1.conv0.conv.weight",
                           "decoder.up1.conv1.norm.weight", "decoder.up0.conv0.conv.weight", "decoder.head.weight",
                           "decoder.head.bias"})
    CHECK_MESSAGE(params.contains(name), name);
  // up1 takes the bottleneck (16) upsampled and stage 1's map (8); up0 takes 8 + 4.
  CHECK(params["decoder.up1.conv0.conv.weight"].sizes().vec() == std::vector<int64_t>{8, 24, 3, 3, 3});
  CHECK(params["decoder.up0.conv0.conv.weight"].sizes().vec() == std::vector<int64_t>{4, 12, 3, 3, 3});
  CHECK(params["decoder.head.weight"].sizes().vec() == std::vector<int64_t>{1, 4, 1, 1, 1});
  CHECK(net->forward(torch::randn({2, 3, 16, 8, 12})).sizes().vec() == std::vector<int64_t>{2, 1, 16, 8, 12});

  torch::Tensor target = (torch::rand({2, 1, 8, 8, 8}) > 0.7).to(torch::kFloat32);
  torch::Tensor confident = (target * 2.0 - 1.0) * 30.0;
  CHECK(segmentationLoss(confident, target).item<double>() < 1e-3);
  CHECK(segmentationLoss(-confident, target).item<double>() > 1.0);
  // An empty target asks for an empty prediction.
  torch::Tensor empty = torch::zeros({1, 1, 8, 8, 8});
  CHECK(segmentationLoss(torch::full({1, 1, 8, 8, 8}, -30.0), empty).item<double>() < 1e-3);
}

TEST_CASE("segmentation: a ViT's dense head gives one logit per voxel from its tokens") {
  ir::VitEncoder vit;
  vit.inChannels = 2;
  vit.patch = 4;
  vit.dim = 12;
  vit.depth = 1;
  vit.heads = 2;
  SegNet net{ir::Encoder(vit)};
  auto params = net->named_parameters();
  CHECK(params["decoder.head.weight"].sizes().vec() == std::vector<int64_t>{64, 12});  // 4^3 logits per token
  CHECK(params["encoder.patch_embed.weight"].sizes().vec() == std::vector<int64_t>{12, 2, 4, 4, 4});
  CHECK(net->forward(torch::randn({2, 2, 16, 8, 12})).sizes().vec() == std::vector<int64_t>{2, 1, 16, 8, 12});
}
