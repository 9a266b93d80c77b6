// Helpers the LibTorch runtime tests share: scratch directories, the runtime module's
// entry point, and metric look-up. Include it after <doctest/doctest.h> (which must come
// after the torch headers: glog's CHECK would otherwise replace doctest's).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "Stages.h"
#include "gyrus/runtime/Runtime.h"

namespace gyrus::rt::test {

/// A fresh, empty directory `<tmp>/gyrus_<suite>_tests_<pid>/<name>`.
inline std::filesystem::path freshDir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("gyrus_" + suite + "_tests_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

/// The runtime, created through the module's exported entry point (ABI checked).
inline std::unique_ptr<Runtime> makeRuntime() {
  std::unique_ptr<Runtime> rt(gyrus_runtime_create(kRuntimeAbiVersion));
  REQUIRE(rt);
  return rt;
}

/// The value of metric `name` of `r`; fails the test when there is none.
inline double metricOf(const StageResult& r, const std::string& name) {
  for (const Metric& m : r.metrics)
    if (m.name == name) return m.value;
  FAIL("missing metric " << name);
  return 0.0;
}

/// One evaluation run: its result, its predictions.json (when it succeeded) and its
/// progress lines.
struct EvaluateRun {
  StageResult result;
  nlohmann::json predictions;
  std::vector<std::string> lines;  ///< progress lines, less the timed ones (see below)
};

/// A fine-tuning loop's "epoch …  eta …" lines come at most every 10 s, so how many
/// there are depends on the machine's speed; tests look at the other lines.
inline bool isTimedProgress(std::string_view line) { return line.find("  eta ") != std::string_view::npos; }

/// Runs `ev` with 2 threads in `dir`, against the encoder in `pretrainDir`.
inline EvaluateRun runEvaluateIn(const ir::EvaluateStage& ev, const std::filesystem::path& pretrainDir,
                                 const std::filesystem::path& dir) {
  EvaluateRun run;
  StageContext ctx;
  ctx.threads = 2;
  ctx.dir = dir;
  ctx.pretrainDir = pretrainDir;
  ctx.progress = [&run](std::string_view l) {
    if (!isTimedProgress(l)) run.lines.emplace_back(l);
  };
  run.result = makeRuntime()->runEvaluate(ev, ctx);
  if (run.result.status == StageResult::Status::Ok) {
    std::ifstream f(ctx.dir / kPredictionsFile);
    run.predictions = nlohmann::json::parse(f);
  }
  return run;
}

/// `r` is a user error whose message contains every one of `needles`.
inline void expectUserError(const StageResult& r, const std::vector<std::string>& needles) {
  CHECK(r.status == StageResult::Status::UserError);
  for (const std::string& n : needles) CHECK_MESSAGE(r.message.find(n) != std::string::npos, r.message << " lacks " << n);
}

}  // namespace gyrus::rt::test
