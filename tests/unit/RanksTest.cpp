// Data-parallel pretraining's launcher (`gyrus run --ranks N`, gyrus/exec/Ranks.h),
// without LibTorch: which stages can be split, the ranks' command lines (local and under
// srun), the Slurm batch script and sbatch arguments with ranks, and RankExecutor itself
// with stand-ins for gyrus and srun (shell scripts that write the ranks' results): rank
// 0's result is the stage's, a failing rank's message is reported and the others stopped.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gyrus/exec/Ranks.h"
#include "gyrus/exec/Slurm.h"

namespace fs = std::filesystem;
using namespace gyrus;
using namespace gyrus::exec;

namespace {

struct Scratch {
  fs::path dir;
  Scratch() {
    char tmpl[] = "/tmp/gyrus-ranks-test-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

ir::Stage pretrainStage(int64_t batch) {
  ir::Stage s;
  s.kind = ir::StageKind::Pretrain;
  s.name = "base";
  s.pretrain.name = "base";
  s.pretrain.batch = batch;
  s.pretrain.objective.terms.push_back(ir::ObjectiveTerm{});
  s.hash = std::string(64, 'a');
  return s;
}

// The inner executor: what runs evaluations (and must not run a split pretraining).
class Inner final : public Executor {
 public:
  bool start(std::string&) override { return true; }
  rt::StageResult execute(const ir::Stage&, const rt::StageContext&) override {
    ++calls;
    return {};
  }
  std::string describe() const override { return "inner"; }
  int calls = 0;
};

void writeScript(const fs::path& path, const std::string& text) {
  {
    std::ofstream f(path);
    f << text;
  }
  fs::permissions(path, fs::perms::owner_all);
}

// A stand-in for `gyrus run-stage ... --rank R ... --result DIR`: writes result-R.json
// (rank 1 fails when FAIL_RANK1 is set; rank 0 then waits to be stopped).
const char* kFakeGyrus = R"(#!/bin/bash
rank=""; ranks=""; result=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rank) rank="$2"; shift ;;
    --ranks) ranks="$2"; shift ;;
    --result) result="$2"; shift ;;
  esac
  shift
done
[ "$rank" = slurm ] && rank="$SLURM_PROCID"
if [ -n "${FAIL_RANK1:-}" ]; then
  if [ "$rank" = 1 ]; then
    printf '{"status":"user_error","message":"cannot read sample 3","resumed":false,"device":"","device_name":"","precision":"","metrics":[]}' > "$result/result-1.json"
    exit 1
  fi
  exec sleep 30
fi
printf '{"status":"ok","message":"","resumed":false,"device":"cpu","device_name":"","precision":"fp32","metrics":[{"name":"final_loss","value":0.%s5}]}' "$rank" > "$result/result-$rank.json"
)";

// A stand-in for srun: --ntasks=N tasks of the command, SLURM_PROCID 0..N-1.
const char* kFakeSrun = R"(#!/bin/bash
n=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) n="${1#--ntasks=}" ;;
    --*) ;;
    *) break ;;
  esac
  shift
done
pids=()
for ((i = 0; i < n; i++)); do SLURM_PROCID=$i "$@" & pids+=($!); done
# --kill-on-bad-exit: the first task to fail ends the others.
for ((i = 0; i < n; i++)); do
  if ! wait -n; then kill "${pids[@]}" 2>/dev/null; exit 1; fi
done
)";

}  // namespace

TEST_CASE("ranks: which pretrainings split, with the fix") {
  CHECK(checkRanks(pretrainStage(4).pretrain, 1).empty());
  CHECK(checkRanks(pretrainStage(4).pretrain, 2).empty());
  CHECK(checkRanks(pretrainStage(4).pretrain, 3) ==
        "pretrain 'base': its batch of 4 cannot be split evenly over 3 ranks: set batch = 3 or 6, or use --ranks "
        "that divides 4");
  CHECK(checkRanks(pretrainStage(2).pretrain, 4).find("set batch = 4,") != std::string::npos);
  ir::Stage simclr = pretrainStage(4);
  simclr.pretrain.objective.terms[0].kind = ir::ObjectiveKind::SimClr;
  CHECK(checkRanks(simclr.pretrain, 2).empty());  // its loss gathers the ranks' embeddings
}

TEST_CASE("ranks: command lines, local and under srun") {
  RankSettings s;
  s.ranks = 2;
  s.executable = "/opt/gyrus";
  s.store = "/st";
  RunSettings run;
  run.device = "cpu";
  auto local = rankCommands(s, "abc", run, 3, "/tmp/r/rendezvous", "/tmp/r");
  REQUIRE(local.size() == 2);
  CHECK(local[1] == std::vector<std::string>{"/opt/gyrus", "run-stage", "abc", "--store", "/st", "--rank", "1",
                                             "--ranks", "2", "--rendezvous", "/tmp/r/rendezvous", "--result",
                                             "/tmp/r", "--threads", "3", "--device", "cpu"});
  s.launcher = "srun";
  auto srun = rankCommands(s, "abc", run, 3, "/st/stages/abc/ranks-7/rendezvous", "/st/stages/abc/ranks-7");
  REQUIRE(srun.size() == 1);
  CHECK(std::vector<std::string>(srun[0].begin(), srun[0].begin() + 5) ==
        std::vector<std::string>{"srun", "--ntasks=2", "--kill-on-bad-exit=1", "/opt/gyrus", "run-stage"});
  CHECK(std::find(srun[0].begin(), srun[0].end(), "slurm") != srun[0].end());
}

TEST_CASE("ranks: the Slurm batch script and sbatch arguments") {
  SlurmSettings s;
  s.executable = "/opt/gyrus";
  s.ranks = 4;
  RunSettings run;
  run.device = "cuda";
  std::string script = batchScript({std::string(64, 'b')}, "/st", s, run, false);
  CHECK(script.find(" --ranks 4 --launcher srun\n") != std::string::npos);
  std::vector<std::string> a = sbatchArguments(s, 1, {}, "gyrus-a", "o", "job.sh");
  CHECK(std::find(a.begin(), a.end(), "--ntasks=4") != a.end());
  s.ranks = 1;
  CHECK(batchScript({std::string(64, 'b')}, "/st", s, run, false).find("--ranks") == std::string::npos);
}

TEST_CASE("ranks: a StageResult through its JSON") {
  rt::StageResult r;
  r.status = rt::StageResult::Status::UserError;
  r.message = "no \"data\"";
  r.resumed = true;
  r.device = "cuda:1";
  r.metrics = {{"final_loss", 0.25}};
  rt::StageResult back;
  REQUIRE(parseStageResult(stageResultJson(r), back));
  CHECK(back.status == r.status);
  CHECK(back.message == r.message);
  CHECK(back.resumed);
  CHECK(back.device == "cuda:1");
  REQUIRE(back.metrics.size() == 1);
  CHECK(back.metrics[0].value == 0.25);
  CHECK_FALSE(parseStageResult("{", back));
}

TEST_CASE("ranks: RankExecutor with stand-ins for gyrus and srun") {
  Scratch scratch;
  writeScript(scratch.dir / "gyrus", kFakeGyrus);
  writeScript(scratch.dir / "srun", kFakeSrun);
  fs::create_directories(scratch.dir / "stage");
  Inner inner;
  RankSettings s;
  s.ranks = 2;
  s.executable = (scratch.dir / "gyrus").string();
  s.store = scratch.dir;
  s.srun = (scratch.dir / "srun").string();
  RunSettings run;
  run.device = "cpu";
  rt::StageContext ctx;
  ctx.dir = scratch.dir / "stage";
  ctx.threads = 2;
  for (const char* launcher : {"local", "srun"}) {
    CAPTURE(launcher);
    s.launcher = launcher;
    RankExecutor ranks(inner, s, run);
    unsetenv("FAIL_RANK1");
    rt::StageResult r = ranks.execute(pretrainStage(4), ctx);
    CHECK(r.status == rt::StageResult::Status::Ok);
    REQUIRE(r.metrics.size() == 1);
    CHECK(r.metrics[0].value == 0.05);  // rank 0's
    // A failing rank: its message, and the other rank stopped long before its 30 s.
    setenv("FAIL_RANK1", "1", 1);
    auto start = std::chrono::steady_clock::now();
    r = ranks.execute(pretrainStage(4), ctx);
    unsetenv("FAIL_RANK1");
    CHECK(r.status == rt::StageResult::Status::UserError);
    CHECK(r.message == "rank 1 of 2: cannot read sample 3");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
    // Nothing left behind in the stage directory.
    CHECK(fs::is_empty(ctx.dir));
    // Batches that do not split never start a rank; evaluations are the inner executor's.
    r = ranks.execute(pretrainStage(3), ctx);
    CHECK(r.message.find("cannot be split evenly over 2 ranks") != std::string::npos);
    ir::Stage evaluation = pretrainStage(4);
    evaluation.kind = ir::StageKind::Evaluate;
    int before = inner.calls;
    ranks.execute(evaluation, ctx);
    CHECK(inner.calls == before + 1);
  }
}

TEST_CASE("ranks: a killed run's rendezvous directory is removed by the next; a live one's is kept") {
  Scratch scratch;
  // A pid that has exited: a child reaped at once.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  REQUIRE(dead > 0);
  waitpid(dead, nullptr, 0);
  auto make = [&](const std::string& name, const std::string& owner) {
    fs::create_directories(scratch.dir / name / "rendezvous");
    if (!owner.empty()) std::ofstream(scratch.dir / name / "owner") << owner << "\n";
  };
  make("gyrus-ranks-dead01", std::to_string(dead));
  make("gyrus-ranks-live01", std::to_string(getpid()));
  make("gyrus-ranks-noown1", "");
  make("other-dead01", std::to_string(dead));
  CHECK(removeStaleRendezvous(scratch.dir) == 1);
  CHECK(!fs::exists(scratch.dir / "gyrus-ranks-dead01"));
  CHECK(fs::exists(scratch.dir / "gyrus-ranks-live01"));
  CHECK(fs::exists(scratch.dir / "gyrus-ranks-noown1"));
  CHECK(fs::exists(scratch.dir / "other-dead01"));
  CHECK(removeStaleRendezvous(scratch.dir / "missing") == 0);
}
