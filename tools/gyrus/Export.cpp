#include "Export.h"

#include <fmt/core.h>

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "gyrus/IrJson.h"
#include "gyrus/Safetensors.h"
#include "gyrus/Version.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"
#include "gyrus/runtime/Runtime.h"
#include "Runs.h"

namespace gyrus::driver {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;


namespace {

/// Writes `json` to `path` atomically (exec::writeFileAtomic); false (with a message)
/// when it cannot.
bool writeJsonFile(const fs::path& path, const Json& json) {
  try {
    exec::writeFileAtomic(path, json.dump(2) + "\n");
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: cannot write '{}': {}\n", path.string(), e.what());
    return false;
  }
  return true;
}

/// The spacing and normalisation a user of the weights must reproduce.
void describePipeline(Json& sidecar, const ir::Pipeline& pipeline, const Json& irPart) {
  sidecar["pipeline"] = irPart.contains("pipeline") ? irPart["pipeline"] : Json(ir::print(pipeline));
  sidecar["pipeline_text"] = ir::print(pipeline);
  Json spacing = nullptr;
  Json normalisation = Json::array();
  for (const ir::PipelineOp& op : pipeline.ops) {
    if (op.name == "resample") spacing = op.number("spacing");
    if (op.name == "zscore" || op.name == "clip") normalisation.push_back(ir::print(ir::Pipeline{{op}}));
  }
  sidecar["spacing_mm"] = spacing;
  sidecar["normalisation"] = normalisation;
}

/// A fine-tuning evaluation's kept model of `repeat` (encoder and head or decoder), copied
/// with a sidecar.
int exportFinetuned(const fs::path& dir, const ir::Stage& stage, const std::vector<std::string>& deps,
                    const std::string& hash, int64_t repeat, const fs::path& out) {
  std::ifstream modelIn(dir / "model.json");
  Json model = Json::parse(modelIn, nullptr, /*allow_exceptions=*/false);
  if (!modelIn || model.is_discarded() || !model.contains("files")) {
    fmt::print(stderr,
               "error: '{}' keeps no fine-tuned models: it ran before gyrus kept them; remove it (`gyrus runs rm`) and "
               "run the experiment again\n",
               stage.name);
    return 1;
  }
  const auto repeats = static_cast<int64_t>(model["files"].size());
  if (repeat >= repeats) {
    fmt::print(stderr, "error: --repeat {} is out of range: '{}' kept {} model(s), repeats 0 to {}\n", repeat,
               stage.name, repeats, repeats - 1);
    return 1;
  }
  const fs::path source = dir / model["files"][static_cast<size_t>(repeat)].get<std::string>();
  st::Header header;
  std::string error;
  if (!st::readHeader(source, header, error)) {
    fmt::print(stderr, "error: the kept model '{}' cannot be read: {}\n", source.string(), error);
    return 1;
  }
  std::error_code ec, ignored;
  fs::path tmp = out;
  tmp += ".tmp." + std::to_string(::getpid());
  fs::copy_file(source, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ignored);
    fmt::print(stderr, "error: cannot write '{}': {}\n", out.string(), ec.message());
    return 1;
  }
  const ir::EvaluateStage& e = stage.evaluate;
  Json stageJson = Json::parse(ir::stageToJson(stage, deps));
  const Json& irPart = stageJson.contains("evaluate") ? stageJson["evaluate"] : stageJson;
  ir::Encoder encoder = e.encoder;
  encoder.setInChannels(model.value("in_channels", int64_t{1}));
  Json sidecar;
  sidecar["format"] = "gyrus-finetuned";
  sidecar["version"] = 1;
  sidecar["gyrus_version"] = std::string(kVersion);
  sidecar["weights"] = out.filename().string();
  sidecar["stage"] = stage.name;
  sidecar["stage_hash"] = hash;
  sidecar["repeat"] = repeat;
  sidecar["kind"] = model.value("kind", "");
  sidecar["label"] = e.label;
  sidecar["channels"] = model.value("channels", Json::array());
  sidecar["in_channels"] = encoder.inChannels();
  sidecar["patch"] = model.value("patch", Json::array());
  // The fine-tuned encoder takes the task's channels (its stem was re-initialised or tiled
  // for them), not the pretraining's that the stage's IR records.
  Json encoderJson = irPart.contains("encoder") ? irPart["encoder"] : Json(ir::print(encoder));
  if (encoderJson.is_object())
    for (auto& [kind, fields] : encoderJson.items())
      if (fields.is_object() && fields.contains("in_channels")) fields["in_channels"] = encoder.inChannels();
  sidecar["encoder"] = encoderJson;
  sidecar["encoder_text"] = ir::print(encoder);
  sidecar["head"] = sidecar["kind"] == "mask"
                        ? "decoder.*: the U-Net decoder (per level: trilinear x2 upsampling, concatenation with the "
                          "skip, two conv-norm-activation blocks; then a 1x1x1 convolution to one logit per voxel), "
                          "or a ViT's per-token linear patch head"
                        : "head.*: Linear(2w, 1) on the deepest feature map's global average and global maximum, "
                          "concatenated";
  sidecar["output"] = model.value("output", "");
  for (const auto& t : model.value("targets", Json::array()))
    if (t.value("repeat", int64_t{-1}) == repeat) sidecar["target"] = {{"mean", t["mean"]}, {"scale", t["scale"]}};
  describePipeline(sidecar, e.pipeline, irPart);
  Json tensors = Json::array();
  int64_t parameters = 0;
  for (const st::TensorInfo& t : header.tensors) {
    tensors.push_back(t.name);
    parameters += t.elements();
  }
  sidecar["parameters"] = parameters;
  sidecar["tensors"] = tensors;
  fs::path side = out;
  side.replace_extension(".json");
  if (!writeJsonFile(side, sidecar)) return 1;
  fmt::print("exported '{}' ({}), the model of repeat {}: {} tensors, {} parameters\n  {}\n  {}\n", stage.name,
             hash.substr(0, 12), repeat, tensors.size(), parameters, out.string(), side.string());
  return 0;
}

}  // namespace

int exportStage(const fs::path& storeDir, const std::string& wanted, const std::string& format, const fs::path& out,
                int64_t repeat) {
  if (format != "safetensors") {
    fmt::print(stderr, "error: --format {} is not supported: gyrus exports safetensors\n", format);
    return 1;
  }
  StoredStage found;
  if (!readStoredStage(storeDir, wanted, found)) return 1;
  const exec::Store store(storeDir);
  const std::string& hash = found.hash;
  const ir::Stage& stage = found.stage;
  const std::vector<std::string>& deps = found.deps;
  const exec::StageEntry entry = store.inspect(hash);
  std::error_code ec;
  std::string error;
  if (entry.status != exec::StageEntry::Status::Done) {
    fmt::print(stderr, "error: stage '{}' ({}) has not finished: run it first (`gyrus run`)\n", stage.name,
               hash.substr(0, 12));
    return 1;
  }
  if (stage.kind != ir::StageKind::Pretrain && stage.evaluate.protocol != ir::Protocol::Finetune) {
    fmt::print(stderr, "error: '{}' is a linear probe, which keeps no network weights\n", stage.name);
    if (!stage.evaluate.initWeights.empty())
      fmt::print(stderr, "note: it judges the weights file {}, which is already a safetensors file\n",
                 stage.evaluate.initWeights.path);
    else
      fmt::print(stderr,
                 "note: export the pretraining it judges: gyrus export --store {} {} --format safetensors --out {}\n",
                 storeDir.string(), stage.evaluate.pretrain, out.string());
    return 1;
  }
  if (stage.kind == ir::StageKind::Pretrain && repeat >= 0) {
    fmt::print(stderr, "error: --repeat picks one of a fine-tuning's models; '{}' is a pretraining\n", stage.name);
    return 1;
  }
  if (out.extension() != ".safetensors") {
    fmt::print(stderr, "error: --out '{}' must end in .safetensors (the sidecar is the same name with .json)\n",
               out.string());
    return 1;
  }
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  if (stage.kind == ir::StageKind::Evaluate)
    return exportFinetuned(store.stageDir(hash), stage, deps, hash, repeat < 0 ? 0 : repeat, out);
  const ir::PretrainStage& p = stage.pretrain;
  Json stageJson = Json::parse(ir::stageToJson(stage, deps));
  const Json& irPart = stageJson.contains("pretrain") ? stageJson["pretrain"] : stageJson;

  std::vector<std::pair<std::string, std::string>> metadata = {
      {"format", "gyrus-encoder"},
      {"gyrus_version", std::string(kVersion)},
      {"stage", stage.name},
      {"stage_hash", hash},
      {"encoder", ir::print(p.encoder)},
      {"pipeline", ir::print(p.pipeline)},
  };
  std::unique_ptr<rt::Runtime> runtime = exec::loadRuntime(error);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", error);
    return 2;
  }
  rt::ExportResult r = runtime->exportEncoder(p.encoder, store.stageDir(hash) / "encoder.pt", out, metadata);
  if (!r.ok) {
    fmt::print(stderr, "error: cannot export '{}': {}\n", stage.name, r.message);
    return 1;
  }

  Json sidecar;
  sidecar["format"] = "gyrus-encoder";
  sidecar["version"] = 1;
  sidecar["gyrus_version"] = std::string(kVersion);
  sidecar["weights"] = out.filename().string();
  sidecar["stage"] = stage.name;
  sidecar["stage_hash"] = hash;
  sidecar["encoder"] = irPart.contains("encoder") ? irPart["encoder"] : Json(ir::print(p.encoder));
  sidecar["encoder_text"] = ir::print(p.encoder);
  sidecar["in_channels"] = p.encoder.inChannels();
  sidecar["parameters"] = r.parameters;
  describePipeline(sidecar, p.pipeline, irPart);
  sidecar["tensors"] = r.tensors;
  sidecar["reference"] = {
      {"input", "[1, in_channels, E, E, E], x[c, z, y, x] = sin(0.31 x + 0.17 y + 0.07 z + 0.5 c), fp32"},
      {"edge", r.referenceEdge},
      {"output", "global average, then global maximum, of the deepest feature map, per channel"},
      {"pooled", r.referencePooled},
  };
  fs::path side = out;
  side.replace_extension(".json");
  if (!writeJsonFile(side, sidecar)) return 1;
  fmt::print("exported '{}' ({}): {} tensors, {} parameters\n  {}\n  {}\n", stage.name, hash.substr(0, 12),
             r.tensors.size(), r.parameters, out.string(), side.string());
  return 0;
}

}  // namespace gyrus::driver
