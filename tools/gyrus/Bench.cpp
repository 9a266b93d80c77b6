// `gyrus bench train` (see Bench.h and docs/performance.md).
//
// Each model is written as a small experiment file and compiled by the front end, so the
// benchmarked stage is exactly what a user's file with that encoder and objective would
// run (defaults included). The runtime times its training step on random batches
// (Runtime::benchTrain); bench/train_twin.py then times the same network in eager
// PyTorch with the Python of the same LibTorch environment, in its own process.
#include "Bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "Run.h"
#include "gyrus/Frontend.h"
#include "gyrus/exec/Scheduler.h"
#include "gyrus/kernel/Stages.h"
#include "gyrus/runtime/Runtime.h"

extern char** environ;

namespace gyrus::driver {

namespace fs = std::filesystem;

namespace {

struct Model {
  const char* name;
  const char* encoder;    ///< a gyrus expression
  const char* optimizer;  ///< a gyrus expression, or empty for the default
  int64_t batch;
  int64_t patchCpu, patchGpu;
};

// The quickstart's network, and the FOMO25 baseline's U-Net B (the prelude's unet_b) at
// its 96^3 patches and batch 2; on a CPU U-Net B defaults to 64^3 (a 96^3 step takes
// tens of seconds there).
constexpr Model kModels[] = {
    {"quickstart", "unet(width = 8, stages = 4)", "adamw(lr = 2e-3, warmup = 1)", 8, 32, 32},
    {"unet_b", "unet_b", "", 2, 64, 96},
};

const Model* findModel(const std::string& name) {
  for (const Model& m : kModels)
    if (name == m.name) return &m;
  return nullptr;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Runs argv, returns its exit status and stdout (stderr passes through). -1: it could
/// not start.
int runCapture(const std::vector<std::string>& argv, std::string& out) {
  int pipeFds[2];
  if (pipe(pipeFds) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipeFds[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipeFds[1]);
  if (rc != 0) {
    close(pipeFds[0]);
    return -1;
  }
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(pipeFds[0], buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
  close(pipeFds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string defaultPython() {
  if (const char* venv = std::getenv("GYRUS_TORCH_VENV"); venv != nullptr && *venv != '\0')
    return (fs::path(venv) / "bin" / "python").string();
#ifdef GYRUS_TORCH_VENV_DEFAULT
  if (*GYRUS_TORCH_VENV_DEFAULT != '\0') return (fs::path(GYRUS_TORCH_VENV_DEFAULT) / "bin" / "python").string();
#endif
  const char* home = std::getenv("HOME");
  return (fs::path(home != nullptr ? home : "") / ".cache/gyrus/torch-2.11.0/bin/python").string();
}

/// The benchmarked stage: the model written as an experiment file and checked.
bool stageFor(const Model& model, int64_t batch, int64_t patch, ir::PretrainStage& out, std::string& error) {
  std::string text = fmt::format(
      "dataset bench_data = synthetic(subjects = {0}, size = {1}^3, seed = 1)\n"
      "pretrain bench {{\n"
      "  data      = bench_data\n"
      "  encoder   = {2}\n"
      "  objective = amaes\n"
      "{3}"
      "  epochs    = 1\n"
      "  batch     = {0}\n"
      "}}\n",
      std::max<int64_t>(batch, 2), patch, model.encoder,
      *model.optimizer != '\0' ? fmt::format("  optimizer = {}\n", model.optimizer) : std::string());
  std::string name = fmt::format("<bench {}>", model.name);
  auto c = compileFile(name, {}, StopAfter::Check, &text);
  if (!c->ok() || !c->check.experiment || c->check.experiment->stages.empty()) {
    error = fmt::format("{} at batch {} and patch {}^3 does not check:", model.name, batch, patch);
    for (const Diagnostic& d : c->diags.sorted()) error += "\n  " + d.message;
    return false;
  }
  out = c->check.experiment->stages.front().pretrain;
  return true;
}

/// The field of view views are cut from: --source, or 1.5 patches (144 for 96, as
/// std.fomo25's).
int64_t sourceEdge(const BenchAugmentOptions& o) { return o.source > 0 ? o.source : o.patch * 3 / 2; }

/// The views' part of pipeline `name` (from its first random operation on), declared in
/// `file` or in std.fomo25: compiled through a small pretraining that uses it.
bool augmentPipeline(const BenchAugmentOptions& o, ir::Pipeline& out, std::string& error) {
  const std::string name = o.pipeline.empty() ? "fomo_augment" : o.pipeline;
  std::string text;
  std::string where = "<bench augment>";
  if (!o.file.empty()) {
    std::ifstream in(o.file);
    if (!in) {
      error = "cannot read " + o.file;
      return false;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str() + "\n";
    where = o.file;
  } else {
    text = "use std.fomo25\n";
  }
  text += fmt::format(
      "dataset bench_augment_data = synthetic(subjects = 2, size = {2}^3, seed = 1)\n"
      "pretrain bench_augment {{\n"
      "  data      = bench_augment_data |> zscore() >> crop({2}^3) >> {1}\n"
      "  encoder   = unet(width = 8, stages = 4)\n"
      "  objective = mae(mask = 60%)\n"
      "  epochs    = 1\n"
      "  batch     = 2\n"
      "}}\n",
      o.patch, name, sourceEdge(o));
  auto c = compileFile(where, {}, StopAfter::Check, &text);
  if (!c->ok() || !c->check.experiment || c->check.experiment->stages.empty()) {
    error = fmt::format("the pipeline '{}' does not check at {}^3:", name, o.patch);
    for (const Diagnostic& d : c->diags.sorted()) error += "\n  " + d.message;
    return false;
  }
  for (const ir::Stage& stage : c->check.experiment->stages)
    if (stage.name == "bench_augment") out = stage.pretrain.pipeline;
  if (kir::splitAtFirstRandom(out).suffix.ops.empty()) {
    error = "the pipeline '" + name + "' has no random operation: nothing is drawn per view";
    return false;
  }
  return true;
}

}  // namespace

int benchAugment(const BenchAugmentOptions& options) {
  ir::Pipeline pipeline;
  std::string error;
  if (!augmentPipeline(options, pipeline, error)) {
    fmt::print(stderr, "error: {}\n", error);
    return 1;
  }
  chooseOmpWaitPolicy();
  std::unique_ptr<rt::Runtime> runtime = exec::loadRuntime(error);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", error);
    return 1;
  }
  if (!options.json) {
    fmt::print(stderr, "runtime: {}\n", runtime->describe());
    fmt::print(stderr, "bench: the views of {} on a {}^3 brain, {:g} s per back end...\n", ir::print(pipeline),
               sourceEdge(options), options.seconds);
  }
  rt::AugmentBenchOptions bo;
  bo.pipeline = pipeline;
  // A pointwise operation with no statistic: brightness, always applied (a noise draw
  // per voxel, Philox and log and cos, is compute-bound, not a bandwidth figure).
  bo.pointwise.ops = {ir::makeOp("brightness", {{"p", 1.0}})};
  bo.patch = options.patch;
  bo.source = sourceEdge(options);
  bo.seconds = options.seconds;
  bo.threads = options.threads;
  bo.device = options.device;
  rt::AugmentBenchResult g = runtime->benchAugment(bo);
  if (!g.ok) {
    fmt::print(stderr, "error: {}\n", g.message);
    return 1;
  }
  nlohmann::ordered_json r;
  r["pipeline"] = ir::print(kir::splitAtFirstRandom(pipeline).suffix);
  r["patch"] = options.patch;
  r["device"] = g.device;
  r["threads"] = g.threads;
  r["backend"] = g.backend;
  r["fused_patches_per_s"] = g.fusedPatchesPerS;
  r["fused_patches_per_s_one_thread"] = g.fusedPatchesPerSOneThread;
  r["interp_patches_per_s"] = g.interpPatchesPerS;
  r["eager_torch_patches_per_s"] = g.eagerTorchPatchesPerS;
  r["baseline_patches_per_s"] = nullptr;
  r["copy_gb_per_s"] = g.copyGbPerS;
  r["pointwise_gb_per_s"] = g.pointwiseGbPerS;
  r["compile_ms_cold"] = g.compileMsCold;
  r["compile_ms_cached"] = g.compileMsCached;
  int code = 0;
  if (options.baseline) {
    const std::string python = options.python.empty() ? defaultPython() : options.python;
    const std::string twin = (fs::path(GYRUS_SOURCE_DIR) / "bench" / "augment_twin.py").string();
    if (!options.json) fmt::print(stderr, "bench: the FOMO25 baseline's transforms (Yucca) in {}...\n", python);
    std::string out;
    int rc = runCapture({python, twin, "--patch", std::to_string(options.patch), "--seconds",
                         fmt::format("{}", std::max(2.0, 2 * options.seconds))},
                        out);
    nlohmann::json p;
    bool parsed = false;
    if (rc == 0) {
      try {
        p = nlohmann::json::parse(out);
        parsed = p.contains("baseline_patches_per_s");
      } catch (const nlohmann::json::exception&) {
      }
    }
    if (!parsed) {
      fmt::print(stderr,
                 "error: the baseline's transforms did not run ({} {}; exit {}): run `bash scripts/install-deps.sh`, "
                 "pass --python, or --no-baseline\n",
                 python, twin, rc);
      code = 1;
    } else {
      r["baseline_patches_per_s"] = p["baseline_patches_per_s"];
    }
  }
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  if (options.json) {
    nlohmann::ordered_json j;
    j["runtime"] = runtime->describe();
    j["benchmarks"] = nlohmann::ordered_json::array({r});
    fmt::print("{}\n", j.dump(2));
    return code;
  }
  double baseline = r["baseline_patches_per_s"].is_null() ? 0.0 : r["baseline_patches_per_s"].get<double>();
  fmt::print("{:<34} {:>12} {:>16}\n", "back end", "patches/s", "fused is x times");
  fmt::print("{:<34} {:>12.1f} {:>16}\n", fmt::format("fused ({}, {} threads)", g.backend, g.threads),
             g.fusedPatchesPerS, "-");
  fmt::print("{:<34} {:>12.1f} {:>16}\n", "fused, one thread", g.fusedPatchesPerSOneThread, "-");
  fmt::print("{:<34} {:>12.1f} {:>16.1f}\n", "reference interpreter, one thread", g.interpPatchesPerS,
             ratio(g.fusedPatchesPerSOneThread, g.interpPatchesPerS));
  fmt::print("{:<34} {:>12.1f} {:>16.1f}\n", fmt::format("eager LibTorch, {} threads", g.threads),
             g.eagerTorchPatchesPerS, ratio(g.fusedPatchesPerS, g.eagerTorchPatchesPerS));
  if (baseline > 0)
    fmt::print("{:<34} {:>12.2f} {:>16.1f}\n", "FOMO25 baseline (Yucca), one core", baseline,
               ratio(g.fusedPatchesPerSOneThread, baseline));
  fmt::print("copy {:.1f} GB/s, pointwise pipeline {:.1f} GB/s ({:.0f} %), compile {:.1f} ms cold, {:.1f} ms cached\n",
             g.copyGbPerS, g.pointwiseGbPerS, 100 * ratio(g.pointwiseGbPerS, g.copyGbPerS), g.compileMsCold,
             g.compileMsCached);
  return code;
}

int benchTrain(const BenchTrainOptions& options) {
  std::vector<const Model*> models;
  for (const std::string& name : options.models) {
    const Model* m = findModel(name);
    if (m == nullptr) {
      fmt::print(stderr, "error: no benchmark model '{}': use quickstart or unet_b\n", name);
      return 1;
    }
    models.push_back(m);
  }
  if (models.empty())
    for (const Model& m : kModels) models.push_back(&m);
  // As for `gyrus run` (Run.cpp). The twin runs with the user's own environment, as a
  // user would run it.
  const char* userWaitPolicy = std::getenv("OMP_WAIT_POLICY");
  std::string savedWaitPolicy = userWaitPolicy != nullptr ? userWaitPolicy : "";
  const std::string gyrusWaitPolicy = chooseOmpWaitPolicy();

  std::string error;
  std::unique_ptr<rt::Runtime> runtime = exec::loadRuntime(error);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", error);
    return 1;
  }
  if (userWaitPolicy == nullptr) unsetenv("OMP_WAIT_POLICY");
  else setenv("OMP_WAIT_POLICY", savedWaitPolicy.c_str(), 1);
  if (!options.json) fmt::print(stderr, "runtime: {}\n", runtime->describe());

  const bool gpu = options.device.rfind("cuda", 0) == 0;
  const std::string python = options.python.empty() ? defaultPython() : options.python;
  // The twin from the source tree gyrus was built from; $GYRUS_TWIN for a copied build.
  const char* twinEnv = std::getenv("GYRUS_TWIN");
  const std::string twin = twinEnv != nullptr && *twinEnv != '\0'
                               ? std::string(twinEnv)
                               : (fs::path(GYRUS_SOURCE_DIR) / "bench" / "train_twin.py").string();
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  int code = 0;
  for (const Model* model : models) {
    const int64_t batch = options.batch > 0 ? options.batch : model->batch;
    const int64_t patch = options.patch > 0 ? options.patch : (gpu ? model->patchGpu : model->patchCpu);
    ir::PretrainStage stage;
    if (!stageFor(*model, batch, patch, stage, error)) {
      fmt::print(stderr, "error: {}\n", error);
      return 1;
    }
    if (!options.json)
      fmt::print(stderr, "bench: {} (batch {}, {}^3): {} warm-up and {} timed steps in gyrus...\n", model->name, batch,
                 patch, options.warmup, options.steps);
    stage.precision = options.precision == "bf16" ? ir::Precision::Bf16 : ir::Precision::Fp32;
    rt::TrainBenchOptions bo;
    bo.batch = batch;
    bo.patch = patch;
    bo.warmup = options.warmup;
    bo.steps = options.steps;
    bo.threads = options.threads;
    bo.device = options.device;
    rt::TrainBenchResult g = runtime->benchTrain(stage, bo);
    if (!g.ok) {
      fmt::print(stderr, "error: {}: {}\n", model->name, g.message);
      return 1;
    }
    nlohmann::ordered_json r;
    r["model"] = model->name;
    r["params"] = g.params;
    r["batch"] = batch;
    r["patch"] = patch;
    r["device"] = g.device;
    if (!g.deviceName.empty()) r["device_name"] = g.deviceName;
    r["precision"] = options.precision;
    r["threads"] = g.threads;
    r["gyrus_step_ms"] = median(g.stepMs);
    r["pytorch_step_ms"] = nullptr;
    r["ratio"] = nullptr;
    r["gyrus_peak_mb"] = g.peakMb;
    r["pytorch_peak_mb"] = nullptr;
    r["gyrus_step_ms_all"] = g.stepMs;
    // The OpenMP wait policy of each side: gyrus's (PASSIVE unless the user set one) and
    // the twin's (the user's environment, as a user would run it; "" is libgomp's default).
    r["gyrus_omp_wait_policy"] = gyrusWaitPolicy;
    r["pytorch_omp_wait_policy"] = savedWaitPolicy;
    if (options.twin) {
      const ir::UNetEncoder& u = stage.encoder.unet;
      const ir::MaeObjective& mae = stage.objective.terms.front().mae;
      std::vector<std::string> argv = {python,
                                       twin,
                                       "--model", "unet",
                                       "--width", std::to_string(u.width),
                                       "--stages", std::to_string(u.stages),
                                       "--convs-per-stage", std::to_string(u.convsPerStage),
                                       "--max-width", std::to_string(u.maxWidth),
                                       "--in-channels", std::to_string(u.inChannels),
                                       "--batch", std::to_string(batch),
                                       "--patch", std::to_string(patch),
                                       "--mask", fmt::format("{}", mae.maskRatio),
                                       "--cube", std::to_string(mae.cube),
                                       "--precision", options.precision,
                                       "--threads", std::to_string(g.threads),
                                       "--warmup", std::to_string(options.warmup),
                                       "--steps", std::to_string(options.steps),
                                       "--device", gpu ? "cuda" : "cpu",
                                       "--lr", fmt::format("{}", stage.optimizer.lr),
                                       "--weight-decay", fmt::format("{}", stage.optimizer.weightDecay),
                                       "--clip", fmt::format("{}", stage.optimizer.gradClip),
                                       "--seed", "0",
                                       "--expect-params", std::to_string(g.params)};
      if (mae.maskedOnly) argv.push_back("--masked-only");
      if (!options.json) fmt::print(stderr, "bench: {}: the same steps in PyTorch ({})...\n", model->name, python);
      std::string out;
      int rc = runCapture(argv, out);
      nlohmann::json p;
      bool parsed = false;
      if (rc == 0) {
        try {
          p = nlohmann::json::parse(out);
          parsed = p.contains("pytorch_step_ms");
        } catch (const nlohmann::json::exception&) {
        }
      }
      if (rc == 3) {  // train_twin.py --expect-params: its network has another parameter count
        fmt::print(stderr, "error: the twin's {} is not gyrus's network (another parameter count; a bug)\n",
                   model->name);
        code = 2;
      } else if (!parsed) {
        fmt::print(stderr,
                   "error: the PyTorch twin did not run ({} {}; exit {}): run `bash scripts/install-deps.sh` for the "
                   "LibTorch environment, pass --python, or --no-twin\n",
                   python, twin, rc);
        code = std::max(code, 1);
      } else if (p.value("params", int64_t{-1}) != g.params) {
        fmt::print(stderr, "error: the twin's {} has {} parameters, gyrus's {}: not the same network (a bug)\n",
                   model->name, p.value("params", int64_t{-1}), g.params);
        code = 2;
      } else {
        double py = p["pytorch_step_ms"].get<double>();
        r["pytorch_step_ms"] = py;
        r["ratio"] = py > 0.0 ? median(g.stepMs) / py : 0.0;
        r["pytorch_peak_mb"] = p.value("pytorch_peak_mb", 0.0);
        if (p.contains("pytorch_step_ms_all")) r["pytorch_step_ms_all"] = p["pytorch_step_ms_all"];
        if (p.contains("torch_version")) r["torch_version"] = p["torch_version"];
      }
    }
    results.push_back(r);
  }
  if (options.json) {
    nlohmann::ordered_json j;
    j["runtime"] = runtime->describe();
    j["benchmarks"] = results;
    fmt::print("{}\n", j.dump(2));
    return code;
  }
  fmt::print("{:<12} {:>10} {:>6} {:>6} {:>8} {:>14} {:>14} {:>7} {:>12} {:>12}\n", "model", "params", "batch",
             "patch", "device", "gyrus ms/step", "torch ms/step", "ratio", "gyrus MiB", "torch MiB");
  for (const auto& r : results) {
    auto num = [](const nlohmann::ordered_json& v, const char* f) {
      return v.is_null() ? std::string("-") : fmt::format(fmt::runtime(f), v.get<double>());
    };
    fmt::print("{:<12} {:>10} {:>6} {:>5}³ {:>8} {:>14} {:>14} {:>7} {:>12} {:>12}\n", r["model"].get<std::string>(),
               r["params"].get<int64_t>(), r["batch"].get<int64_t>(), r["patch"].get<int64_t>(),
               r["device"].get<std::string>(), num(r["gyrus_step_ms"], "{:.1f}"), num(r["pytorch_step_ms"], "{:.1f}"),
               num(r["ratio"], "{:.2f}"), num(r["gyrus_peak_mb"], "{:.0f}"), num(r["pytorch_peak_mb"], "{:.0f}"));
  }
  return code;
}

}  // namespace gyrus::driver
