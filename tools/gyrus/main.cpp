// The gyrus command-line driver.
//
//   gyrus check FILE            diagnostics; exit 1 on error
//   gyrus emit FILE --stage=S   print one compiler stage (tokens, ast, typed, ir, plan, kernel, llvm, cuda, ptx)
//   gyrus plan FILE             the stage DAG after sweep expansion, with costs
//   gyrus fmt [--check] FILE... canonical layout, comments kept
//   gyrus run FILE              execute the experiment, reusing the run store
//   gyrus run-stage --store DIR HASH
//                               run one stage stored by `gyrus plan --store` (a worker)
//
// Exit codes: 0 ok, 1 user error (with diagnostics), 2 internal error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <fmt/core.h>
#include <iostream>

#include "Compare.h"
#include "Export.h"
#include "Predict.h"
#include "Inspect.h"
#include "Preview.h"
#include "Bench.h"
#include "Run.h"
#include "Runs.h"
#include "Score.h"
#include "Site.h"
#include "Synth.h"
#include "gyrus/Format.h"
#include "gyrus/Frontend.h"
#include "gyrus/IrJson.h"
#include "gyrus/Parse.h"
#include "gyrus/Verify.h"
#include "gyrus/Version.h"
#include "gyrus/kernel/Jit.h"
#include "gyrus/kernel/Nvrtc.h"
#include "gyrus/kernel/Stages.h"

namespace {

using namespace gyrus;

struct Common {
  std::string file;
  std::vector<std::string> sets;
  std::string diagnostics = "human";
  std::string config;  ///< --config: the site file (default: found, see Site.h)
};

void addCommon(CLI::App* cmd, Common& c) {
  cmd->add_option("FILE", c.file, "Experiment file (.gy)")->required();
  cmd->add_option("--set", c.sets, "Override a parameter for this invocation: PATH=VALUE (repeatable)")
      ->type_name("PATH=VALUE");
  cmd->add_option("--diagnostics", c.diagnostics, "Diagnostics format")
      ->check(CLI::IsMember({"human", "json"}));
  cmd->add_option("--config", c.config,
                  "Site configuration to read instead of the gyrus.toml found beside FILE or in ~/.config/gyrus/ "
                  "(docs/site-config.md)")
      ->type_name("FILE");
}

// Prints the compilation's diagnostics to stderr; returns true when there were errors.
// `quietUnused`: the command uses declarations by name itself (`gyrus preview --pipeline
// NAME` picks one of a file of pipelines), so none is reported as unused.
bool report(const Compilation& c, const Common& common, bool quietUnused = false) {
  std::vector<Diagnostic> diags = c.diags.sorted();
  if (quietUnused)
    std::erase_if(diags, [&](const Diagnostic& d) { return d.kind == DiagKind::UnusedDeclaration; });
  if (common.diagnostics == "json") {
    std::fputs(renderJson(c.sources, diags).c_str(), stderr);
  } else {
    RenderOptions ro;
    ro.color = isatty(STDERR_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
    std::string text = renderHuman(c.sources, diags, ro);
    std::fputs(text.c_str(), stderr);
    if (c.diags.hasErrors()) {
      size_t n = 0;
      for (const Diagnostic& d : diags) n += d.severity == Severity::Error ? 1 : 0;
      fmt::print(stderr, "{} error{} generated.\n", n, n == 1 ? "" : "s");
    }
  }
  return c.diags.hasErrors();
}

// Compiles the file with the --set overrides; a malformed --set is a [bad-override]
// diagnostic like any other (so --diagnostics=json stays JSON). The site configuration
// (gyrus.toml) is read first: its data roots are the checker's, and its settings are
// returned in `site`. A site file with errors stops there: its diagnostics are the
// compilation's.
std::unique_ptr<Compilation> compile(const Common& common, StopAfter stop, SiteConfig* site = nullptr,
                                     driver::SiteUse use = driver::SiteUse::Compile) {
  driver::SiteLoad loaded = driver::loadSite(common.config, common.file, use);
  if (!loaded.ok) return driver::siteFailure(loaded, common.file);
  if (site != nullptr) *site = loaded.config;
  std::vector<Override> overrides;
  std::vector<std::string> malformed;
  for (const std::string& s : common.sets) {
    Override o;
    if (parseOverride(s, o)) overrides.push_back(o);
    else malformed.push_back(s);
  }
  std::unique_ptr<Compilation> c = compileFile(common.file, overrides, stop, nullptr, nullptr, &loaded.roots);
  for (const std::string& s : malformed)
    c->diags.report(DiagKind::BadOverride, SourceRange{},
                    "--set '" + s + "' must have the form PATH=VALUE, e.g. --set base.epochs=2");
  return c;
}

// `gyrus fmt`: formats each file in place (atomically), or with --check reports the
// files that are not formatted. A file that does not parse is left alone (exit 1).
int formatFiles(const std::vector<std::string>& files, bool check) {
  int code = 0;
  for (const std::string& path : files) {
    std::string text, error;
    SourceManager sm;
    ast::Arena arena;
    DiagnosticEngine diags;
    if (!readFile(path, text, error)) {
      diags.report(DiagKind::IoError, SourceRange{}, error);
      std::fputs(renderHuman(sm, diags.sorted()).c_str(), stderr);
      code = 1;
      continue;
    }
    FileId id = sm.add(path, text);
    ast::File* file = parseFile(sm, id, arena, diags);
    if (file == nullptr) {
      std::fputs(renderHuman(sm, diags.sorted()).c_str(), stderr);
      code = 1;
      continue;
    }
    std::string formatted = formatFile(sm, id, *file);
    if (formatted == text) continue;
    if (check) {
      fmt::print(stderr, "{}: not formatted (run `gyrus fmt {}`)\n", path, path);
      code = 1;
      continue;
    }
    // Replace the file a symbolic link points to (not the link), keeping its permissions.
    std::error_code ec;
    std::filesystem::path target = std::filesystem::canonical(path, ec);
    if (ec) target = path;
    std::string tmp = target.string() + ".fmt.tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out << formatted;
      if (!out) {
        fmt::print(stderr, "error: cannot write '{}'\n", tmp);
        code = 1;
        continue;
      }
    }
    std::filesystem::perms mode = std::filesystem::status(target, ec).permissions();
    if (!ec) std::filesystem::permissions(tmp, mode, ec);
    ec.clear();
    std::filesystem::rename(tmp, target, ec);
    if (ec) {
      fmt::print(stderr, "error: cannot replace '{}': {}\n", path, ec.message());
      code = 1;
    }
  }
  return code;
}

int realMain(int argc, char** argv) {
  CLI::App app{"gyrus: a typed experiment language and compiler for brain-MRI foundation models"};
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");
  app.require_subcommand(0, 1);

  Common checkOpts;
  bool verify = false;
  CLI::App* check = app.add_subcommand("check", "Check an experiment file and report diagnostics");
  addCommon(check, checkOpts);
  check->add_flag("--verify", verify,
                  "Compare the diagnostics with the file's `// expect-error [kind]` comments instead of printing them");

  Common emitOpts;
  std::string stage = "ir";
  CLI::App* emit = app.add_subcommand("emit", "Print one compiler stage of an experiment file");
  addCommon(emit, emitOpts);
  emit->add_option("--stage", stage,
                   "tokens | ast | typed | ir | plan | kernel | llvm (the kernels' optimised LLVM IR, from the module "
                   "libgyrus_kernel_llvm.so) | cuda | ptx (the GPU kernels' CUDA C++ and PTX)")
      ->check(CLI::IsMember({"tokens", "ast", "typed", "ir", "plan", "kernel", "llvm", "cuda", "ptx"}));
  bool emitJson = false;
  emit->add_flag("--json", emitJson, "With --stage=ir or plan: the serialised form (JSON), which gyrus reads back");

  std::vector<std::string> fmtFiles;
  bool fmtCheck = false;
  CLI::App* fmtCmd = app.add_subcommand("fmt", "Rewrite files in the canonical layout (comments are kept)");
  fmtCmd->add_option("FILE", fmtFiles, "Experiment files (.gy)")->required();
  fmtCmd->add_flag("--check", fmtCheck, "Change nothing; exit 1 if a file is not formatted");

  Common planOpts;
  CLI::App* plan = app.add_subcommand("plan", "Print the expanded stage DAG: sweep points, shared stages, costs");
  addCommon(plan, planOpts);
  bool planJson = false;
  std::string planStore;
  plan->add_flag("--json", planJson, "Print the stages (name, kind, hash, dependencies' hashes) as JSON");
  plan->add_option("--store", planStore,
                   "Also write every stage's serialised IR (stage.json) into this run store, running nothing");

  Common runOpts;
  std::string storeDir;
  bool json = false;
  int threads = 0;
  CLI::App* run = app.add_subcommand("run", "Run an experiment: pretrain and evaluate, reusing finished stages");
  addCommon(run, runOpts);
  run->add_flag("--json", json, "Print one JSON object (stages and metrics) on stdout");
  run->add_option("--store", storeDir, "Run store directory (default: .gyrus/ next to the experiment file)");
  run->add_option("--threads", threads, "Threads for training (default: all cores)")->check(CLI::Range(0, 1024));
  int jobs = 1;
  run->add_option("--jobs", jobs,
                  "Stages run at once, each in a worker process (gyrus run-stage) with --threads / N threads "
                  "(default 1: one after another in this process)")
      ->check(CLI::Range(1, 256));
  int ranks = 1;
  run->add_option("--ranks", ranks,
                  "Processes per pretraining stage, each training on its shard of every batch (data-parallel, c10d: "
                  "Gloo on CPU, NCCL on GPU; default 1, or the site's `ranks`; docs/cluster.md)")
      ->check(CLI::Range(1, 1024));
  // auto | cpu | cuda | cuda:N; whether the device is usable is the runtime's to say.
  const CLI::Validator deviceName(
      [](std::string& v) {
        return isDeviceName(v) ? std::string() : "'" + v + "' is not a device: use auto, cpu, cuda or cuda:N";
      },
      "DEVICE");
  std::string device = "auto";
  run->add_option("--device", device, "auto (the first GPU when one is usable, else the CPU), cpu, cuda or cuda:N")
      ->check(deviceName);
  std::string volumeCache, loaderMemory;
  run->add_option("--volume-cache", volumeCache,
                  "Directory of preprocessed volumes, shared by runs and keyed by content (default: none)");
  run->add_option("--loader-memory", loaderMemory,
                  "Memory for a stage's preprocessed images, e.g. 8GiB; larger data sets are streamed from "
                  "disk (default: half of the machine's memory)")
      ->check(CLI::Validator(
          [](std::string& v) {
            int64_t bytes = 0;
            return driver::parseByteSize(v, bytes) ? std::string()
                                                   : "'" + v + "' is not a size: write e.g. 8GiB, 512MiB or 2G";
          },
          "SIZE"));

  // `--executor slurm` and its settings (docs/cluster.md).
  std::string executor = "local";
  exec::SlurmSettings slurm;
  bool slurmCancel = false;
  run->add_option("--executor", executor,
                  "local (default: this machine, see --jobs) or slurm (one job array per level of the stage DAG)")
      ->check(CLI::IsMember({"local", "slurm"}));
  std::vector<CLI::Option*> slurmFlags = {
      run->add_option("--partition", slurm.partition, "Slurm: the partition the tasks run in"),
      run->add_option("--account", slurm.account, "Slurm: the account charged"),
      run->add_option("--time", slurm.time, "Slurm: each task's time limit, e.g. 2:00:00"),
      run->add_option("--gpus-per-task", slurm.gpusPerTask, "Slurm: GPUs per task (default none)")
          ->check(CLI::Range(0, 64)),
      run->add_option("--max-running", slurm.maxRunning, "Slurm: tasks of an array running at once (%K; default: no limit)")
          ->check(CLI::Range(1, 100000)),
      run->add_option("--retries", slurm.retries, "Slurm: resubmissions of a failed task (default 2)")
          ->check(CLI::Range(0, 100)),
      run->add_flag("--cancel", slurmCancel, "Slurm: cancel this experiment's queued and running tasks, run nothing")};

  std::string runStageHash, runStageStore;
  bool runStageJson = false;
  int runStageThreads = 0;
  std::string runStageCache, runStageMemory;
  CLI::App* runStage =
      app.add_subcommand("run-stage", "Run one stage of a run store from its serialised IR (written by `gyrus plan "
                                      "--store` or `gyrus run`), after its dependencies");
  runStage->add_option("HASH", runStageHash, "The stage's hash, or a unique prefix of it (6 hex digits or more)")
      ->required();
  runStage->add_option("--store", runStageStore, "Run store directory")->required();
  runStage->add_flag("--json", runStageJson, "Print one JSON object (the stage and its metrics) on stdout");
  std::string runStageDevice = "auto";
  runStage->add_option("--device", runStageDevice, "auto, cpu, cuda or cuda:N (as for run)")->check(deviceName);
  runStage->add_option("--threads", runStageThreads, "Threads for training (default: all cores)")
      ->check(CLI::Range(0, 1024));
  runStage->add_option("--volume-cache", runStageCache, "Directory of preprocessed volumes shared by runs");
  runStage->add_option("--loader-memory", runStageMemory, "Memory for a stage's preprocessed images, e.g. 8GiB");
  // Data-parallel pretraining (docs/cluster.md): --ranks N launches N ranks (locally, or
  // with --launcher srun inside a Slurm job); --rank R is one of them, started by a launcher.
  int runStageRanks = 1;
  std::string runStageRank, runStageRendezvous, runStageResult, runStageLauncher = "local";
  runStage->add_option("--ranks", runStageRanks, "Processes for a pretraining stage (as for run)")
      ->check(CLI::Range(1, 1024));
  runStage->add_option("--launcher", runStageLauncher, "How --ranks are started: local (default) or srun")
      ->check(CLI::IsMember({"local", "srun"}));
  CLI::Option* rankFlag =
      runStage->add_option("--rank", runStageRank, "Run as this rank of --ranks (a number, or slurm: $SLURM_PROCID)");
  runStage->add_option("--rendezvous", runStageRendezvous, "With --rank: the ranks' c10d FileStore file")
      ->needs(rankFlag);
  runStage->add_option("--result", runStageResult, "With --rank: the directory for this rank's result-R.json")
      ->needs(rankFlag);

  Common previewOpts;
  driver::PreviewOptions preview;
  CLI::App* previewCmd = app.add_subcommand(
      "preview", "Apply a declared pipeline to a volume and write what the model would see (NIfTI and PNG per sample)");
  addCommon(previewCmd, previewOpts);
  previewCmd->add_option("--pipeline", preview.pipeline, "The pipeline's name")->required();
  previewCmd->add_option("--input", preview.input, "A NIfTI volume (.nii or .nii.gz)")->required();
  previewCmd->add_option("--out", preview.out, "Output directory (created)")->required();
  previewCmd->add_option("--samples", preview.samples, "Views to draw (default 4; one for a deterministic pipeline)")
      ->check(CLI::Range(1, 10000));
  previewCmd->add_option("--seed", preview.seed, "Seed of the draws (default 0)");

  driver::BenchTrainOptions benchOpts;
  driver::BenchAugmentOptions augmentOpts;
  bool noBaseline = false;
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: gyrus against the same work in PyTorch");
  bench->require_subcommand(1);
  CLI::App* benchTrainCmd = bench->add_subcommand(
      "train", "Time MAE training steps of the quickstart's U-Net and U-Net B, in gyrus and in eager PyTorch");
  benchTrainCmd->add_option("--model", benchOpts.models, "quickstart or unet_b (repeatable; default both)");
  benchTrainCmd->add_option("--batch", benchOpts.batch, "Batch size (default: the model's: 8 and 2)")
      ->check(CLI::Range(1, 4096));
  benchTrainCmd->add_option("--patch", benchOpts.patch, "Cubic patch edge (default: 32; U-Net B 64 on a CPU, 96 on a GPU)")
      ->check(CLI::Range(4, 1024));
  benchTrainCmd->add_option("--warmup", benchOpts.warmup, "Untimed steps first (default 2)")->check(CLI::Range(0, 1000));
  benchTrainCmd->add_option("--steps", benchOpts.steps, "Timed steps (default 5)")->check(CLI::Range(1, 100000));
  benchTrainCmd->add_option("--threads", benchOpts.threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  benchTrainCmd->add_option("--device", benchOpts.device, "cpu (default), cuda or cuda:N")->check(deviceName);
  benchTrainCmd->add_option("--precision", benchOpts.precision, "fp32 (default) or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  benchTrainCmd->add_flag("--json", benchOpts.json, "Print one JSON object on stdout");
  bool noTwin = false;
  benchTrainCmd->add_flag("--no-twin", noTwin, "Time gyrus only (no PyTorch twin)");
  benchTrainCmd->add_option("--python", benchOpts.python,
                            "Python with torch for the twin (default: the LibTorch environment's, see docs/building.md)");
  CLI::App* benchAugmentCmd = bench->add_subcommand(
      "augment", "An augmentation pipeline's views: fused kernels vs the reference interpreter, eager LibTorch and the "
                 "FOMO25 baseline's transforms");
  benchAugmentCmd->add_option("--file", augmentOpts.file, "An experiment file declaring the pipeline (default: std.fomo25)");
  benchAugmentCmd->add_option("--pipeline", augmentOpts.pipeline, "The pipeline's name (default: fomo_augment)");
  benchAugmentCmd->add_option("--patch", augmentOpts.patch, "Cubic patch edge (default 96)")->check(CLI::Range(8, 512));
  benchAugmentCmd->add_option("--source", augmentOpts.source,
                              "Edge of the field of view the views are cut from (default 1.5 x patch: 144)")
      ->check(CLI::Range(8, 1024));
  benchAugmentCmd->add_option("--seconds", augmentOpts.seconds, "Seconds per back end (default 2)")
      ->check(CLI::Range(0.1, 600.0));
  benchAugmentCmd->add_option("--threads", augmentOpts.threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  benchAugmentCmd->add_option("--device", augmentOpts.device, "cpu (default), cuda or cuda:N")->check(deviceName);
  benchAugmentCmd->add_flag("--json", augmentOpts.json, "Print one JSON object on stdout");
  benchAugmentCmd->add_flag("--no-baseline", noBaseline, "Leave out the baseline's transforms (Python)");
  benchAugmentCmd->add_option("--python", augmentOpts.python, "The baseline's Python (default: the LibTorch environment's)");

  std::string runsStore, runsConfig;
  bool runsJson = false, runsDryRun = false;
  // --store, or the site configuration's store (--config, or ~/.config/gyrus/gyrus.toml).
  auto addRunsStore = [&](CLI::App* cmd) {
    cmd->add_option("--store", runsStore, "Run store directory (default: the site configuration's store)");
    cmd->add_option("--config", runsConfig, "Site configuration whose store to use (docs/site-config.md)")
        ->type_name("FILE");
  };
  std::string runsHash;
  std::vector<std::string> runsHashes, runsFiles;
  CLI::App* runs = app.add_subcommand("runs", "What a run store holds: list, show, remove and collect stages");
  runs->require_subcommand(1);
  CLI::App* runsLs = runs->add_subcommand("ls", "One line per stage: name, kind, status, metric, size, when, where");
  addRunsStore(runsLs);
  runsLs->add_flag("--json", runsJson, "Print one JSON object on stdout");
  CLI::App* runsShowCmd = runs->add_subcommand("show", "One stage: its IR, result, files and last history line");
  addRunsStore(runsShowCmd);
  runsShowCmd->add_option("STAGE", runsHash, "The stage's name, hash or unique hash prefix (6 hex digits or more)")->required();
  CLI::App* runsRm = runs->add_subcommand("rm", "Remove stages (not while a process runs them)");
  addRunsStore(runsRm);
  runsRm->add_option("STAGE", runsHashes, "Stage names, hashes or unique hash prefixes")->required();
  CLI::App* runsGc = runs->add_subcommand("gc", "Remove every stage that none of the given experiment files plans");
  addRunsStore(runsGc);
  runsGc->add_option("FILE", runsFiles, "Experiment files whose stages are kept (.gy)")->required();
  runsGc->add_flag("--dry-run", runsDryRun, "Only list what would be removed");

  std::string inspectPath;
  bool inspectJson = false;
  int inspectVolume = 0;
  CLI::App* inspect = app.add_subcommand("inspect", "Show what gyrus reads from a NIfTI image (.nii, .nii.gz)");
  inspect->add_option("PATH", inspectPath, "NIfTI file")->required();
  inspect->add_flag("--json", inspectJson, "Print one JSON object on stdout");
  inspect->add_option("--volume", inspectVolume, "Volume of a 4-D file (0-based)")->check(CLI::Range(0, 32767));

  driver::SynthArgs synthArgs;
  CLI::App* synth = app.add_subcommand(
      "synth", "Write a synthetic clinic (brain MRI sequences, findings, sites) as NIfTI in a FOMO60K/FOMO25 layout");
  synth->add_option("--out", synthArgs.out, "Output directory (created; must be empty unless --force)")->required();
  synth->add_option("--layout", synthArgs.layout, "fomo60k | fomo25-task1 | fomo25-task2 | fomo25-task3")
      ->required()
      ->check(CLI::IsMember({"fomo60k", "fomo25-task1", "fomo25-task2", "fomo25-task3"}));
  synth->add_option("--subjects", synthArgs.subjects, "Number of subjects (default 16)")->check(CLI::Range(1, 100000));
  synth->add_option("--size", synthArgs.size, "Voxels per axis, 1 mm (default 96)")->check(CLI::Range(16, 512));
  synth->add_option("--seed", synthArgs.seed, "Random seed (default 1)");
  synth->add_option("--sites", synthArgs.sites, "Site names, comma-separated; subject i at site i mod count (default a,b)");
  synth->add_option("--lesion-contrast", synthArgs.lesionContrast,
                    "Percent of a finding's contrast the images show (default 100; 0-100)")
      ->check(CLI::Range(0.0, 100.0));
  synth->add_option("--lesion-size", synthArgs.lesionSize, "Percent scale of infarcts and meningiomas (default 100)")
      ->check(CLI::Range(25.0, 200.0));
  synth->add_option("--age-effect", synthArgs.ageEffect,
                    "Percent of the effects of age: atrophy, white-matter hyperintensities, microbleeds (default 100)")
      ->check(CLI::Range(0.0, 200.0));
  synth->add_flag("--force", synthArgs.force, "Write into a non-empty directory (same-named files are replaced)");
  synth->add_option("--threads", synthArgs.threads, "Subjects generated in parallel (default: cores, at most 8)")
      ->check(CLI::Range(0, 1024));

  driver::ScoreArgs scoreArgs;
  CLI::App* score = app.add_subcommand(
      "score", "Score a FOMO25 container's predictions against a task tree's labels (AUROC | Dice, NSD, HD95 | MAE, r)");
  score->add_option("--task", scoreArgs.task, "infarct | meningioma | brain_age")
      ->required()
      ->check(CLI::IsMember({"infarct", "meningioma", "brain_age"}));
  score->add_option("--pred", scoreArgs.pred, "Folder of predictions: sub_N.txt (infarct, brain_age) or sub_N.nii.gz")
      ->required();
  score->add_option("--truth", scoreArgs.truth, "A FOMO25 task tree (gyrus synth --layout fomo25-task1|2|3) or its labels/")
      ->required();
  score->add_flag("--json", scoreArgs.json, "Print one JSON object on stdout (the input of gyrus rank)");
  score->add_option("--tolerance", scoreArgs.toleranceMm, "NSD tolerance in mm (default 2)");
  score->add_option("--bootstrap", scoreArgs.bootstrap, "Bootstrap resamples for the 95% CIs (default 1000; 0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  score->add_option("--seed", scoreArgs.seed, "Bootstrap seed (default 1)");
  score->add_option("--method", scoreArgs.method, "The method's name in the result (default: the --pred folder's name)");

  std::vector<std::string> rankFiles;
  bool rankJson = false, rankHd95 = false;
  std::string rankStore;
  CLI::App* rank = app.add_subcommand(
      "rank", "The FOMO25 ranking of methods from `gyrus score --json` results, or of a store's evaluations");
  rank->add_option("RESULTS", rankFiles,
                   "JSON files written by gyrus score --json; with --store: evaluations (names or hashes; default all)");
  rank->add_option("--store", rankStore, "Rank the finished FOMO25-task evaluations of this run store");
  rank->add_flag("--json", rankJson, "Print one JSON object on stdout");
  rank->add_flag("--hd95", rankHd95, "Rank HD95 too on meningioma (FOMO25 ranks Dice and NSD only)");

  std::string exportStore, exportStageName, exportFormat = "safetensors", exportOut;
  CLI::App* exportCmd =
      app.add_subcommand("export", "Write a finished pretraining's encoder, or a fine-tuning's model, as safetensors with a JSON sidecar");
  exportCmd->add_option("--store", exportStore, "Run store directory")->required();
  exportCmd->add_option("STAGE", exportStageName, "The stage's name, or at least 6 digits of its hash")->required();
  exportCmd->add_option("--format", exportFormat, "Weights format (safetensors)");
  int64_t exportRepeat = -1;
  exportCmd->add_option("--repeat", exportRepeat,
                        "A fine-tuning evaluation: the repeat whose kept model to write (default 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  exportCmd->add_option("--out", exportOut, "The .safetensors file to write (the sidecar: the same name with .json)")
      ->required();

  driver::PredictArgs predictArgs;
  std::string predictStore, predictOutput;
  std::vector<std::string> predictNamed;
  // The FOMO25 container's flags, in its order, each one channel file.
  const std::vector<std::string> containerChannels = {"adc", "dwi_b1000", "flair", "swi", "t2s", "t1", "t2"};
  std::vector<std::string> predictContainer(containerChannels.size());
  CLI::App* predictCmd = app.add_subcommand(
      "predict", "Predict one subject with a finished fine-tuning evaluation (the FOMO25 submission interface)");
  predictCmd->add_option("--store", predictStore, "Run store directory")->required();
  predictCmd->add_option("STAGE", predictArgs.stage, "The evaluation's name, or at least 6 digits of its hash")
      ->required();
  for (size_t i = 0; i < containerChannels.size(); ++i)
    predictCmd->add_option("--" + containerChannels[i], predictContainer[i],
                           "The subject's " + containerChannels[i] + " image (NIfTI)");
  predictCmd->add_option("--channel", predictNamed, "Another channel of the stage's data set, as NAME=FILE (repeatable)");
  predictCmd->add_option("--input", predictArgs.input, "The image of a stage whose data set names no channels");
  predictCmd->add_option("--output", predictOutput,
                         "The file to write: sub_N.txt (a probability or a value) or sub_N.nii.gz (a {0, 1} mask on "
                         "the input's grid)")
      ->required();
  predictCmd->add_option("--repeat", predictArgs.repeat,
                         "Predict with the model of this repeat (default: every repeat's model, averaged)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  predictCmd->add_option("--overlap", predictArgs.overlap,
                         "Masks: the share of a sliding window's side its neighbour overlaps (default 0.5, at most 0.9)")
      ->check(
          [](const std::string& text) -> std::string {
            // One wording for every bad value, NaN included (CLI11's Range lets NaN through).
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (end != text.c_str() && *end == '\0' && v >= 0.0 && v <= 0.9) return {};
            return "must be between 0 and 0.9 (a share of the window's side), not " + text;
          },
          "0 to 0.9");
  predictCmd->add_option("--threads", predictArgs.threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 4096));
  predictCmd->add_option("--device", predictArgs.device, "auto, cpu, cuda or cuda:N (default auto)");

  driver::CompareArgs compareArgs;
  std::string compareStore;
  CLI::App* compare = app.add_subcommand(
      "compare", "Paired bootstrap difference of two evaluations on the same test subjects (or one and its reference)");
  compare->add_option("--store", compareStore, "Run store directory")->required();
  compare->add_option("A", compareArgs.a, "An evaluation: its name, or at least 6 digits of its hash")->required();
  compare->add_option("B", compareArgs.b,
                      "Another evaluation of the same data and test set (default: A's own reference run, the random "
                      "encoder or training from scratch)");
  compare->add_option("--bootstrap", compareArgs.bootstrap, "Bootstrap resamples (default 1000; 0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  compare->add_option("--seed", compareArgs.seed, "Bootstrap seed (default 1)");
  compare->add_flag("--json", compareArgs.json, "Print one JSON object on stdout");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 1;
  }

  if (version) {
    fmt::print("gyrus {}\n", kVersion);
    return 0;
  }
  if (*check && verify) {
    auto c = compile(checkOpts, StopAfter::Check);
    if (c->mainFile == kNoFile) return report(*c, checkOpts) ? 1 : 0;
    std::vector<std::string> problems = verifyDiagnostics(c->sources, c->mainFile, c->diags.sorted());
    for (const std::string& p : problems) fmt::print(stderr, "{}\n", p);
    return problems.empty() ? 0 : 1;
  }
  if (*check) {
    auto c = compile(checkOpts, StopAfter::Check);
    return report(*c, checkOpts) ? 1 : 0;
  }
  if (*emit) {
    if (emitJson && stage != "ir" && stage != "plan") {
      fmt::print(stderr, "error: --json is the serialised form of --stage=ir or --stage=plan, not of --stage={}\n",
                 stage);
      return 1;
    }
    if (stage == "tokens") {
      std::string text, error;
      if (!readFile(emitOpts.file, text, error)) {
        Compilation unread;
        unread.diags.report(DiagKind::IoError, SourceRange{}, error);
        return report(unread, emitOpts) ? 1 : 0;
      }
      SourceManager sm;
      FileId id = sm.add(emitOpts.file, text);
      std::fputs(dumpTokens(sm, id).c_str(), stdout);
      return 0;
    }
    auto c = compile(emitOpts, stage == "ast" ? StopAfter::Parse : StopAfter::Check);
    if (report(*c, emitOpts)) return 1;
    if (stage == "ast") std::fputs(ast::printAst(c->sources, *c->main).c_str(), stdout);
    if (stage == "typed") std::fputs(c->check.typed().c_str(), stdout);
    if (stage == "ir")
      std::fputs((emitJson ? ir::toJson(*c->check.experiment) : ir::printExperiment(*c->check.experiment)).c_str(), stdout);
    if (stage == "plan") std::fputs((emitJson ? planToJson(c->plan) : printPlan(c->plan)).c_str(), stdout);
    if (stage == "kernel") std::fputs(kir::printKernels(*c->check.experiment).c_str(), stdout);
    if (stage == "cuda") std::fputs(kir::cuda::printCuda(*c->check.experiment).c_str(), stdout);
    if (stage == "ptx") {
      // The GPU kernels through NVRTC (loaded with dlopen): a missing NVRTC is the
      // machine's, not a bug.
      std::string ptx;
      try {
        ptx = kir::cuda::printPtx(*c->check.experiment);
      } catch (const kir::cuda::NvrtcNotFound& e) {
        fmt::print(stderr, "error: --stage=ptx needs NVRTC: {}\n", e.what());
        return 1;
      }
      std::fputs(ptx.c_str(), stdout);
    }
    if (stage == "llvm") {
      // The LLVM back end is a module loaded only here: the driver never links LLVM.
      std::string error;
      std::unique_ptr<kir::Jit> jit = kir::loadJit(error, kir::JitOptions().withDiskCache(false));
      if (!jit) {
        fmt::print(stderr, "error: {}\n", error);
        return 1;
      }
      kir::KernelPrinter printer;
      printer.comment = ";";
      printer.program = [&](const kir::Program& p) { return jit->llvmIr(p); };
      std::fputs(kir::printKernels(*c->check.experiment, printer).c_str(), stdout);
    }
    return 0;
  }
  if (*fmtCmd) return formatFiles(fmtFiles, fmtCheck);
  if (*previewCmd) {
    auto c = compile(previewOpts, StopAfter::Check);
    if (report(*c, previewOpts, /*quietUnused=*/true)) return 1;
    return driver::runPreview(preview, c->check.pipelines);
  }
  if (*plan) {
    auto c = compile(planOpts, StopAfter::Check);
    if (report(*c, planOpts)) return 1;
    if (!planStore.empty() && driver::writePlan(c->plan.experiment, planStore) != 0) return 1;
    std::fputs((planJson ? planToJson(c->plan) : printPlan(c->plan)).c_str(), stdout);
    if (!planJson) {
      // How the pipelines compile: every operation should be part of a fused kernel.
      kir::FusionSummary fusion = kir::summarizeFusion(c->plan.experiment);
      std::string unfused;
      for (const std::string& u : fusion.unfused) unfused += (unfused.empty() ? "" : ", ") + u;
      fmt::print("\nkernels: {} fused program{} (`gyrus emit --stage=kernel` prints them); not fused: {}\n",
                 fusion.programs, fusion.programs == 1 ? "" : "s", unfused.empty() ? "none" : unfused);
    }
    return 0;
  }
  if (*run) {
    SiteConfig site;
    auto c = compile(runOpts, StopAfter::Check, &site, driver::SiteUse::Run);
    if (report(*c, runOpts)) return 1;
    driver::RunOptions ro;
    ro.json = json;
    ro.threads = threads;
    ro.jobs = jobs;
    ro.device = device;
    ro.volumeCache = volumeCache.empty() ? std::filesystem::path() : std::filesystem::absolute(volumeCache);
    if (!loaderMemory.empty()) driver::parseByteSize(loaderMemory, ro.loaderMemory);
    ro.executor = executor;
    if (executor != "slurm") {
      for (CLI::Option* flag : slurmFlags)
        if (flag->count() > 0) {
          fmt::print(stderr, "error: {} is a setting of the Slurm executor: add --executor slurm\n", flag->get_name());
          return 1;
        }
    } else if (jobs != 1) {
      fmt::print(stderr, "error: --jobs is for the local executor; with --executor slurm, limit the tasks running at "
                         "once with --max-running\n");
      return 1;
    }
    ro.slurm = slurm;
    // The site configuration's [slurm] table gives the defaults of the flags not given.
    const SlurmSite& siteSlurm = site.slurm;
    if (siteSlurm.partition && slurmFlags[0]->count() == 0) ro.slurm.partition = *siteSlurm.partition;
    if (siteSlurm.account && slurmFlags[1]->count() == 0) ro.slurm.account = *siteSlurm.account;
    if (siteSlurm.time && slurmFlags[2]->count() == 0) ro.slurm.time = *siteSlurm.time;
    if (siteSlurm.gpusPerTask && slurmFlags[3]->count() == 0) ro.slurm.gpusPerTask = static_cast<int>(*siteSlurm.gpusPerTask);
    if (siteSlurm.maxRunning && slurmFlags[4]->count() == 0) ro.slurm.maxRunning = static_cast<int>(*siteSlurm.maxRunning);
    if (siteSlurm.retries && slurmFlags[5]->count() == 0) ro.slurm.retries = static_cast<int>(*siteSlurm.retries);
    ro.slurm.extraSbatchLines = siteSlurm.extraSbatch;
    // Each task gets --threads CPUs from Slurm, and as many threads.
    ro.slurm.cpusPerTask = threads;
    ro.cancel = slurmCancel;
    ro.experimentPath = runOpts.file;
    ro.store = storeDir.empty() ? std::filesystem::absolute(runOpts.file).parent_path() / ".gyrus"
                                : std::filesystem::absolute(storeDir);
    ro.plan = &c->plan;
    driver::applySiteDefaults(site, !storeDir.empty(), run->count("--jobs") > 0, run->count("--device") > 0,
                              !volumeCache.empty(), !loaderMemory.empty(), ro);
    ro.ranks = run->count("--ranks") > 0 || !site.ranks ? ranks : static_cast<int>(*site.ranks);
    return driver::runExperiment(*c->check.experiment, ro);
  }
  if (*runStage) {
    driver::RunOptions ro;
    ro.json = runStageJson;
    ro.threads = runStageThreads;
    ro.device = runStageDevice;
    ro.store = runStageStore;
    ro.volumeCache = runStageCache.empty() ? std::filesystem::path() : std::filesystem::absolute(runStageCache);
    if (!runStageMemory.empty() && !driver::parseByteSize(runStageMemory, ro.loaderMemory)) {
      fmt::print(stderr, "error: --loader-memory '{}' is not a size: write e.g. 8GiB, 512MiB or 2G\n", runStageMemory);
      return 1;
    }
    ro.ranks = runStageRanks;
    ro.launcher = runStageLauncher;
    if (!runStageRank.empty()) {
      if (runStageRendezvous.empty() || runStageResult.empty() || runStageRanks < 2) {
        fmt::print(stderr, "error: --rank is for the ranks a launcher starts: it needs --ranks N (N >= 2), "
                           "--rendezvous FILE and --result DIR; to run a stage data-parallel, give --ranks alone\n");
        return 1;
      }
      ro.rank = runStageRank;
      ro.rendezvous = std::filesystem::absolute(runStageRendezvous).string();
      ro.rankResults = std::filesystem::absolute(runStageResult);
      return driver::runRank(runStageHash, ro);
    }
    return driver::runStoredStage(runStageHash, ro);
  }
  if (*runs) {
    if (runsStore.empty()) {
      Common site;
      site.config = runsConfig;
      driver::SiteLoad loaded = driver::loadSite(runsConfig, *runsGc ? runsFiles.front() : std::string());
      if (!loaded.ok) return report(*loaded.diagnostics, site) ? 1 : 0;
      if (!loaded.config.store) {
        fmt::print(stderr, "error: no run store: give --store DIR, or set `store` in the site configuration ({})\n",
                   loaded.config.path.empty() ? "none was found; see docs/site-config.md" : loaded.config.path);
        return 1;
      }
      runsStore = *loaded.config.store;
    }
    if (*runsLs) return driver::runsList(runsStore, runsJson);
    if (*runsShowCmd) return driver::runsShow(runsStore, runsHash);
    if (*runsRm) return driver::runsRemove(runsStore, runsHashes);
    // gc keeps every stage the files plan; a file that does not check removes nothing.
    std::vector<std::string> keep;
    for (const std::string& file : runsFiles) {
      Common c;
      c.file = file;
      c.config = runsConfig;
      auto compiled = compile(c, StopAfter::Check);
      if (report(*compiled, c)) {
        fmt::print(stderr, "error: '{}' does not check; gyrus runs gc removed nothing\n", file);
        return 1;
      }
      for (const ir::Stage& st : compiled->plan.experiment.stages) keep.push_back(st.hash);
    }
    return driver::runsCollect(runsStore, keep, runsDryRun);
  }
  if (*benchAugmentCmd) {
    augmentOpts.baseline = !noBaseline;
    if (augmentOpts.device == "auto") augmentOpts.device = "cpu";
    return driver::benchAugment(augmentOpts);
  }
  if (*bench) {
    benchOpts.twin = !noTwin;
    if (benchOpts.device == "auto") benchOpts.device = "cpu";
    return driver::benchTrain(benchOpts);
  }
  if (*inspect) return driver::runInspect(inspectPath, inspectJson, inspectVolume);
  if (*synth) return driver::runSynth(synthArgs);
  if (*score) return driver::runScore(scoreArgs);
  if (*rank) {
    if (!rankStore.empty()) return driver::runRankStore(rankStore, rankFiles, rankJson, rankHd95);
    if (rankFiles.empty()) {
      fmt::print(stderr, "error: gyrus rank needs RESULTS (files of `gyrus score --json`) or --store DIR\n");
      return 1;
    }
    return driver::runRank(rankFiles, rankJson, rankHd95);
  }
  if (*compare) {
    compareArgs.store = compareStore;
    return driver::runCompare(compareArgs);
  }
  if (*exportCmd) return driver::exportStage(exportStore, exportStageName, exportFormat, exportOut, exportRepeat);
  if (*predictCmd) {
    predictArgs.store = predictStore;
    predictArgs.output = predictOutput;
    for (size_t i = 0; i < containerChannels.size(); ++i)
      if (!predictContainer[i].empty()) predictArgs.channels.emplace_back(containerChannels[i], predictContainer[i]);
    for (const std::string& named : predictNamed) {
      const size_t eq = named.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == named.size()) {
        fmt::print(stderr, "error: --channel '{}' is not NAME=FILE (e.g. --channel pd=sub_1/pd.nii.gz)\n", named);
        return 1;
      }
      predictArgs.channels.emplace_back(named.substr(0, eq), named.substr(eq + 1));
    }
    return driver::predictSubject(predictArgs);
  }
  fmt::print(stderr, "{}", app.help());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return realMain(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "internal error: {}\nthis is a bug in gyrus; please report it with the command you ran\n", e.what());
    return 2;
  } catch (...) {
    fmt::print(stderr, "internal error: unknown exception\n");
    return 2;
  }
}
