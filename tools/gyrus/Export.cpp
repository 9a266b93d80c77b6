#include "Export.h"

#include <fmt/core.h>

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "gyrus/IrJson.h"
#include "gyrus/Version.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/exec/Store.h"
#include "gyrus/runtime/Runtime.h"
#include "Runs.h"

namespace gyrus::driver {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;


int exportStage(const fs::path& storeDir, const std::string& wanted, const std::string& format, const fs::path& out) {
  if (format != "safetensors") {
    fmt::print(stderr, "error: --format {} is not supported: gyrus exports safetensors\n", format);
    return 1;
  }
  std::error_code ec;
  if (!fs::is_directory(storeDir / "stages", ec)) {
    fmt::print(stderr, "error: '{}' is not a run store (it has no stages/ directory)\n", storeDir.string());
    return 1;
  }
  exec::Store store(storeDir);
  const std::string hash = findStage(store, wanted);
  if (hash.empty()) return 1;
  exec::StageEntry entry = store.inspect(hash);
  ir::Stage stage;
  std::vector<std::string> deps;
  std::string error;
  if (!store.readStage(hash, stage, deps, error)) {
    fmt::print(stderr, "error: cannot read stage {}: {}\n", hash.substr(0, 12), error);
    return 1;
  }
  if (stage.kind != ir::StageKind::Pretrain) {
    fmt::print(stderr,
               "error: '{}' is an evaluation; gyrus keeps no fine-tuned weights yet, so only a pretraining's encoder "
               "can be exported\n",
               stage.name);
    if (!stage.evaluate.initWeights.empty())
      fmt::print(stderr, "note: it judges the weights file {}, which is already a safetensors file\n",
                 stage.evaluate.initWeights.path);
    else
      fmt::print(stderr,
                 "note: export the pretraining it judges: gyrus export --store {} {} --format safetensors --out {}\n",
                 storeDir.string(), stage.evaluate.pretrain, out.string());
    return 1;
  }
  if (entry.status != exec::StageEntry::Status::Done) {
    fmt::print(stderr, "error: stage '{}' ({}) has not finished: run it first (`gyrus run`)\n", stage.name,
               hash.substr(0, 12));
    return 1;
  }
  if (out.extension() != ".safetensors") {
    fmt::print(stderr, "error: --out '{}' must end in .safetensors (the sidecar is the same name with .json)\n",
               out.string());
    return 1;
  }
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
  sidecar["pipeline"] = irPart.contains("pipeline") ? irPart["pipeline"] : Json(ir::print(p.pipeline));
  sidecar["pipeline_text"] = ir::print(p.pipeline);
  // What a user of the weights must reproduce: the voxel size and the normalisation.
  Json spacing = nullptr;
  Json normalisation = Json::array();
  for (const ir::PipelineOp& op : p.pipeline.ops) {
    if (op.name == "resample") spacing = op.number("spacing");
    if (op.name == "zscore" || op.name == "clip") normalisation.push_back(ir::print(ir::Pipeline{{op}}));
  }
  sidecar["spacing_mm"] = spacing;
  sidecar["normalisation"] = normalisation;
  sidecar["tensors"] = r.tensors;
  sidecar["reference"] = {
      {"input", "[1, in_channels, E, E, E], x[c, z, y, x] = sin(0.31 x + 0.17 y + 0.07 z + 0.5 c), fp32"},
      {"edge", r.referenceEdge},
      {"output", "global average, then global maximum, of the deepest feature map, per channel"},
      {"pooled", r.referencePooled},
  };
  fs::path side = out;
  side.replace_extension(".json");
  fs::path tmp = side;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    f << sidecar.dump(2) << "\n";
    if (!f) {
      fmt::print(stderr, "error: cannot write '{}'\n", tmp.string());
      fs::remove(tmp, ec);
      return 1;
    }
  }
  fs::rename(tmp, side, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fmt::print(stderr, "error: cannot write '{}': {}\n", side.string(), ec.message());
    return 1;
  }
  fmt::print("exported '{}' ({}): {} tensors, {} parameters\n  {}\n  {}\n", stage.name, hash.substr(0, 12),
             r.tensors.size(), r.parameters, out.string(), side.string());
  return 0;
}

}  // namespace gyrus::driver
