// The serialised IR: JSON round trips (every example, the fuzz corpus), the reader's
// strictness, stage identity (what the hash covers and what it leaves out), and folder
// fingerprints from content.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "TestUtil.h"
#include "gyrus/IrJson.h"

using namespace gyrus;
using gyrus::test::compile;

namespace {
namespace fs = std::filesystem;

// Writes, reads back and writes again: the two JSON texts and all hashes agree.
void roundTrip(const std::string& what, const ir::Experiment& ex) {
  INFO(what);
  std::string text = ir::toJson(ex);
  ir::Experiment back;
  std::string error;
  REQUIRE_MESSAGE(ir::experimentFromJson(text, back, error), error);
  CHECK(ir::toJson(back) == text);
  REQUIRE(back.stages.size() == ex.stages.size());
  for (size_t i = 0; i < ex.stages.size(); ++i) {
    CHECK(back.stages[i].hash == ex.stages[i].hash);
    CHECK(back.stages[i].deps == ex.stages[i].deps);
    CHECK(ir::printStage(back.stages[i], back) == ir::printStage(ex.stages[i], ex));
    // Each stage alone, as the run store holds it.
    ir::Stage one;
    std::vector<std::string> deps;
    REQUIRE_MESSAGE(ir::stageFromJson(ir::stageToJson(ex.stages[i], ir::depHashes(ex.stages[i], ex)), one, deps, error),
                    error);
    CHECK(one.hash == ex.stages[i].hash);
    CHECK(deps == ir::depHashes(ex.stages[i], ex));
  }
}

const char* kSmall = R"(dataset corpus = synthetic(subjects = 16, size = 32^3)
dataset clinic = synthetic(subjects = 40, size = 32^3, seed = 2)
pretrain base {
  data      = corpus |> zscore()
  encoder   = unet(width = 4, stages = 3)
  objective = mae()
  epochs    = 3
}
evaluate base on clinic.age (shots = 8, metrics = [pearson_r, mae])
)";

std::string hashOf(const std::string& source, size_t stage, const std::vector<Override>& sets = {}) {
  auto c = compile(source, sets);
  REQUIRE(c->ok());
  return c->check.experiment->stages.at(stage).hash;
}

}  // namespace

TEST_CASE("every example and every checkable fuzz seed round-trips through the IR's JSON") {
  size_t examples = 0;
  for (const char* dir : {"examples", "fuzz/corpus", "tests/e2e"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(GYRUS_SOURCE_DIR) / dir)) {
      if (entry.path().extension() != ".gy") continue;
      std::string text = test::slurp(entry.path());
      auto c = compileFile(entry.path().string(), {}, StopAfter::Check, &text);
      if (!c->ok() || !c->check.experiment) continue;  // folders not generated, or a seed with errors
      roundTrip(entry.path().string(), *c->check.experiment);
      ++examples;
    }
  }
  CHECK(examples >= 5);
}

TEST_CASE("the IR reader accepts exactly what the writer writes") {
  auto c = compile(kSmall);
  REQUIRE(c->ok());
  nlohmann::json j = nlohmann::json::parse(ir::toJson(*c->check.experiment));
  std::string error;
  ir::Experiment back;

  SUBCASE("an unknown key is named with its path") {
    j["stages"][0]["pretrain"]["encoder"]["unet"]["dropout"] = 0.1;
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error == "stages[0].pretrain.encoder.unet: unknown key 'dropout'");
  }
  SUBCASE("a missing key is named with its path") {
    j["stages"][1]["evaluate"].erase("shots");
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error == "stages[1].evaluate: missing key 'shots'");
  }
  SUBCASE("a value of the wrong type") {
    j["stages"][0]["pretrain"]["epochs"] = "three";
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error == "stages[0].pretrain.epochs: expected an integer, found string");
  }
  SUBCASE("an unknown enumeration value") {
    j["stages"][0]["pretrain"]["optimizer"]["schedule"] = "step";
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error == "stages[0].pretrain.optimizer.schedule: unknown value 'step'");
  }
  SUBCASE("an edited value no longer matches the stored hash") {
    j["stages"][0]["pretrain"]["epochs"] = 4;
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error.find("stages[0]: stage 'base' has hash ") == 0);
    CHECK(error.find("written by another gyrus version, or edited") != std::string::npos);
  }
  SUBCASE("a dependency that is not an earlier stage") {
    std::swap(j["stages"][0], j["stages"][1]);
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error.find("is not an earlier stage") != std::string::npos);
  }
  SUBCASE("another layout version, or not JSON at all") {
    j["version"] = 99;
    CHECK_FALSE(ir::experimentFromJson(j.dump(), back, error));
    CHECK(error.find("this gyrus reads version 2") != std::string::npos);
    CHECK_FALSE(ir::experimentFromJson("{ stages", back, error));
    CHECK(error == "not valid JSON");
  }
}

TEST_CASE("a stage's identity: its work, not its name, its data's location or what it reports") {
  std::string base = hashOf(kSmall, 0);
  std::string eval = hashOf(kSmall, 1);
  // Renaming the pretraining and choosing other metrics keep both hashes.
  std::string renamed = kSmall;
  renamed.replace(renamed.find("pretrain base"), 13, "pretrain other");
  renamed.replace(renamed.find("evaluate base"), 13, "evaluate other");
  renamed.replace(renamed.find("metrics = [pearson_r, mae]"), 26, "metrics = [mae]");
  CHECK(hashOf(renamed, 0) == base);
  CHECK(hashOf(renamed, 1) == eval);
  // The work changes: the hash changes, and the evaluation's with it (its dependency).
  CHECK(hashOf(kSmall, 0, {{"base.epochs", "4"}}) != base);
  CHECK(hashOf(kSmall, 1, {{"base.epochs", "4"}}) != eval);
  CHECK(hashOf(kSmall, 1, {{"base_age.shots", "6"}}) != eval);
  CHECK(hashOf(kSmall, 0, {{"base_age.shots", "6"}}) == base);
}

TEST_CASE("synthetic(...)'s difficulty knobs are part of the data: they change the stages that read it") {
  std::string base = hashOf(kSmall, 0), eval = hashOf(kSmall, 1);
  // The defaults written out are the defaults: nothing changes.
  CHECK(hashOf(kSmall, 1, {{"clinic.lesion_contrast", "100%"}, {"clinic.lesion_size", "2mm"},
                           {"clinic.lesion_shape", "50%"}, {"clinic.site_effect", "50%"},
                           {"clinic.age_effect", "50%"}}) == eval);
  for (const auto& [path, value] : std::vector<std::pair<std::string, std::string>>{
           {"clinic.lesion_contrast", "30%"}, {"clinic.lesion_size", "3.5mm"}, {"clinic.lesion_shape", "0%"},
           {"clinic.site_effect", "0%"}, {"clinic.age_effect", "100%"}}) {
    CAPTURE(path);
    CHECK(hashOf(kSmall, 1, {{path, value}}) != eval);  // the evaluation on that data set
    CHECK(hashOf(kSmall, 0, {{path, value}}) == base);  // not the pretraining on another
  }
  CHECK(hashOf(kSmall, 0, {{"corpus.site_effect", "0%"}}) != base);
}

TEST_CASE("a probe's hash material leaves out the fine-tuning schedule; a fine-tuning's has it") {
  auto c = compile(kSmall);
  REQUIRE(c->ok());
  const ir::Stage& probe = c->check.experiment->stages[1];
  std::string material = ir::hashMaterial(probe, ir::depHashes(probe, *c->check.experiment));
  CHECK(material.find("\"epochs\"") == std::string::npos);
  CHECK(material.find("\"name\"") == std::string::npos);
  CHECK(material.find("\"metrics\"") == std::string::npos);
  CHECK(material.find(c->check.experiment->stages[0].hash) != std::string::npos);

  std::string finetune = kSmall;
  finetune.replace(finetune.find("(shots = 8,"), 11, "(shots = 8, protocol = finetune, epochs = 2,");
  auto f = compile(finetune);
  REQUIRE_MESSAGE(f->ok(), renderHuman(f->sources, f->diags.sorted()));
  const ir::Stage& tuned = f->check.experiment->stages[1];
  CHECK(ir::hashMaterial(tuned, ir::depHashes(tuned, *f->check.experiment)).find("\"epochs\":2") != std::string::npos);
}

TEST_CASE("a regression probe's alpha: leave-one-out by default, a fixed value hashed, 1 keeps the old probe's hash") {
  auto c = compile(kSmall);
  REQUIRE(c->ok());
  const ir::Stage& probe = c->check.experiment->stages[1];
  CHECK(probe.evaluate.ridgeAlpha == 0.0);
  std::string material = ir::hashMaterial(probe, ir::depHashes(probe, *c->check.experiment));
  CHECK(material.find("\"ridge_alpha\":0") != std::string::npos);
  std::string loo = probe.hash;
  CHECK(hashOf(kSmall, 1, {{"base_age.alpha", "10"}}) != loo);
  CHECK(hashOf(kSmall, 1, {{"base_age.alpha", "10"}}) != hashOf(kSmall, 1, {{"base_age.alpha", "100"}}));
  // alpha = 1 is the fixed strength stages had before the choice: their material has no
  // key, so their hashes and stored results stay valid.
  auto fixed = compile(kSmall, {{"base_age.alpha", "1"}});
  REQUIRE(fixed->ok());
  const ir::Stage& one = fixed->check.experiment->stages[1];
  CHECK(ir::hashMaterial(one, ir::depHashes(one, *fixed->check.experiment)).find("ridge_alpha") == std::string::npos);
  // Every value round-trips through stage.json.
  for (const char* value : {"0.5", "1", "1e4"}) {
    auto v = compile(kSmall, {{"base_age.alpha", value}});
    REQUIRE(v->ok());
    const ir::Stage& s = v->check.experiment->stages[1];
    ir::Stage back;
    std::vector<std::string> deps;
    std::string error;
    REQUIRE_MESSAGE(ir::stageFromJson(ir::stageToJson(s, ir::depHashes(s, *v->check.experiment)), back, deps, error), error);
    CHECK(back.evaluate.ridgeAlpha == doctest::Approx(std::stod(value)));
    CHECK(back.hash == s.hash);
  }
}

TEST_CASE("precision: bf16 is part of a stage's identity and round-trips; fp32 stages keep their JSON and hashes") {
  auto c = compile(kSmall);
  REQUIRE(c->ok());
  const std::string fp32Json = ir::toJson(*c->check.experiment);
  CHECK(fp32Json.find("precision") == std::string::npos);  // the default is not written
  std::string pre = hashOf(kSmall, 0), eval = hashOf(kSmall, 1);
  auto bf16 = compile(kSmall, {{"base.precision", "bf16"}});
  REQUIRE(bf16->ok());
  const ir::Experiment& ex = *bf16->check.experiment;
  CHECK((ex.stages[0].pretrain.precision == ir::Precision::Bf16));
  CHECK(ex.stages[0].hash != pre);
  CHECK(ex.stages[1].hash != eval);  // through its dependency's hash
  CHECK((ex.stages[1].evaluate.precision == ir::Precision::Fp32));
  roundTrip("bf16", ex);
  // Written explicitly as fp32, a stage is the default one.
  CHECK(hashOf(kSmall, 0, {{"base.precision", "fp32"}}) == pre);
  // A name that is not a precision is a diagnostic, not a silent default.
  auto bad = compile(kSmall, {{"base.precision", "fp16"}});
  CHECK_FALSE(bad->ok());
}

TEST_CASE("a folder's fingerprint is its content: copied elsewhere it hashes the same, edited it does not") {
  fs::path root = fs::temp_directory_path() / ("gyrus-irjson-test-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto write = [&](const fs::path& dir, const std::string& rel, const std::string& text) {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel, std::ios::binary) << text;
  };
  fs::path a = root / "a", b = root / "b";
  for (int i = 1; i <= 4; ++i) write(a, "sub_" + std::to_string(i) + "/ses_1/t1.nii.gz", "scan " + std::to_string(i));
  auto source = [](const fs::path& dir) {
    return "dataset corpus = fomo60k(\"" + dir.string() +
           "\")\npipeline prep = resample(1mm) >> crop(32^3) >> zscore()\n"
           "pretrain base {\n  data = corpus |> prep\n  encoder = unet(width = 4, stages = 3)\n  objective = mae()\n"
           "  batch = 2\n}\n";
  };
  std::string original = hashOf(source(a), 0);
  // A copy made later (other modification times, other inodes, another root).
  fs::copy(a, b, fs::copy_options::recursive);
  for (const auto& e : fs::recursive_directory_iterator(b))
    if (e.is_regular_file()) fs::last_write_time(e.path(), fs::file_time_type::clock::now() + std::chrono::hours(1));
  CHECK(hashOf(source(b), 0) == original);
  // The same size, other bytes.
  write(b, "sub_2/ses_1/t1.nii.gz", "scan 9");
  CHECK(hashOf(source(b), 0) != original);
  fs::remove_all(root);
}

TEST_CASE("ir::verify of one stage: what the runtime asserts, with the checker's shot minimums") {
  ir::EvaluateStage e;
  e.protocol = ir::Protocol::Finetune;
  e.labelKind = ir::LabelKind::Mask;
  e.shots = 1;
  e.batch = 1;
  CHECK(ir::verify(e).empty());  // one volume can be fine-tuned on
  e.labelKind = ir::LabelKind::Binary;
  CHECK(ir::verify(e) == "too few shots or repeats for its label");
  CHECK(ir::minimumShots(ir::LabelKind::Continuous) == 3);
  ir::PretrainStage p;
  p.batch = 4;
  p.objective.terms.push_back({});
  p.objective.terms.back().kind = ir::ObjectiveKind::SimClr;
  CHECK(ir::verify(p) == "a contrastive pipeline has no random augmentation");
}
