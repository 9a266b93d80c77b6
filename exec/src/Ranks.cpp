// Data-parallel pretraining's launcher (see Ranks.h).
#include "gyrus/exec/Ranks.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

extern char** environ;

namespace gyrus::exec {

namespace fs = std::filesystem;

int removeStaleRendezvous(const fs::path& tmp) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path dir = it->path();
    if (dir.filename().string().rfind("gyrus-ranks-", 0) != 0 || !it->is_directory(ec)) continue;
    std::ifstream in(dir / "owner");
    long pid = 0;
    if (!(in >> pid) || pid <= 0) continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code e;
    if (fs::remove_all(dir, e) > 0 && !e) ++removed;
  }
  return removed;
}

std::string checkRanks(const ir::PretrainStage& stage, int ranks) {
  if (ranks <= 1) return {};
  if (stage.batch % ranks != 0 || stage.batch < ranks) {
    int64_t lower = stage.batch / ranks * ranks, higher = (stage.batch / ranks + 1) * ranks;
    std::string fix = lower > 0 ? "batch = " + std::to_string(lower) + " or " + std::to_string(higher)
                                : "batch = " + std::to_string(higher);
    return "pretrain '" + stage.name + "': its batch of " + std::to_string(stage.batch) +
           " cannot be split evenly over " + std::to_string(ranks) + " ranks: set " + fix + ", or use --ranks " +
           "that divides " + std::to_string(stage.batch);
  }
  return {};
}

std::vector<std::vector<std::string>> rankCommands(const RankSettings& ranks, const std::string& hash,
                                                   const RunSettings& run, int threads, const fs::path& rendezvous,
                                                   const fs::path& resultDir) {
  auto command = [&](const std::string& rank) {
    std::vector<std::string> argv = {ranks.executable, "run-stage", hash, "--store", ranks.store.string(),
                                     "--rank", rank, "--ranks", std::to_string(ranks.ranks),
                                     "--rendezvous", rendezvous.string(), "--result", resultDir.string(),
                                     "--threads", std::to_string(threads), "--device", run.device};
    if (!run.volumeCache.empty()) argv.insert(argv.end(), {"--volume-cache", run.volumeCache.string()});
    if (run.loaderMemory > 0) argv.insert(argv.end(), {"--loader-memory", std::to_string(run.loaderMemory)});
    return argv;
  };
  std::vector<std::vector<std::string>> out;
  if (ranks.launcher == "srun") {
    // One task per rank in the job's allocation; one rank failing ends the step.
    std::vector<std::string> argv = {ranks.srun, "--ntasks=" + std::to_string(ranks.ranks), "--kill-on-bad-exit=1"};
    std::vector<std::string> rank = command("slurm");
    argv.insert(argv.end(), rank.begin(), rank.end());
    out.push_back(std::move(argv));
    return out;
  }
  for (int r = 0; r < ranks.ranks; ++r) out.push_back(command(std::to_string(r)));
  return out;
}

std::string stageResultJson(const rt::StageResult& r) {
  nlohmann::json j;
  j["status"] = r.status == rt::StageResult::Status::Ok          ? "ok"
                : r.status == rt::StageResult::Status::UserError ? "user_error"
                                                                 : "internal_error";
  j["message"] = r.message;
  j["resumed"] = r.resumed;
  j["device"] = r.device;
  j["device_name"] = r.deviceName;
  j["precision"] = r.precision;
  j["metrics"] = nlohmann::json::array();
  for (const rt::Metric& m : r.metrics) j["metrics"].push_back({{"name", m.name}, {"value", m.value}});
  return j.dump();
}

bool parseStageResult(const std::string& text, rt::StageResult& r) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  try {
    std::string status = j.at("status").get<std::string>();
    r.status = status == "ok"           ? rt::StageResult::Status::Ok
               : status == "user_error" ? rt::StageResult::Status::UserError
                                        : rt::StageResult::Status::InternalError;
    r.message = j.at("message").get<std::string>();
    r.resumed = j.at("resumed").get<bool>();
    r.device = j.at("device").get<std::string>();
    r.deviceName = j.at("device_name").get<std::string>();
    r.precision = j.at("precision").get<std::string>();
    r.metrics.clear();
    for (const auto& m : j.at("metrics")) r.metrics.push_back({m.at("name").get<std::string>(), m.at("value").get<double>()});
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

RankExecutor::RankExecutor(Executor& inner, RankSettings settings, RunSettings run)
    : inner_(inner), settings_(std::move(settings)), run_(std::move(run)) {}

namespace {

rt::StageResult failure(rt::StageResult::Status status, std::string message) {
  rt::StageResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

std::string readText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

rt::StageResult RankExecutor::execute(const ir::Stage& stage, const rt::StageContext& ctx) {
  if (stage.kind != ir::StageKind::Pretrain || settings_.ranks <= 1) return inner_.execute(stage, ctx);
  if (std::string problem = checkRanks(stage.pretrain, settings_.ranks); !problem.empty())
    return failure(rt::StageResult::Status::UserError, problem);
  const int n = settings_.ranks;
  // Local ranks share this machine's threads; a Slurm task's are its own CPUs.
  const int threads = settings_.launcher == "srun" ? std::max(1, ctx.threads) : std::max(1, ctx.threads / n);
  // The rendezvous and the ranks' results: a fresh temporary directory locally, one in
  // the stage directory under Slurm (every node sees the store).
  fs::path work;
  std::error_code ec;
  if (settings_.launcher == "srun") {
    const char* job = std::getenv("SLURM_JOB_ID");
    work = ctx.dir / ("ranks-" + std::string(job != nullptr ? job : std::to_string(getpid())));
    fs::remove_all(work, ec);
    fs::create_directories(work, ec);
    if (ec) return failure(rt::StageResult::Status::UserError, "cannot create " + work.string() + ": " + ec.message());
  } else {
    fs::path tmp = fs::temp_directory_path(ec);
    removeStaleRendezvous(tmp);
    std::string pattern = (tmp / "gyrus-ranks-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr)
      return failure(rt::StageResult::Status::UserError,
                     "cannot create a temporary directory for the ranks' rendezvous (" + pattern + "): set TMPDIR");
    work = buffer.data();
    std::ofstream(work / "owner") << getpid() << "\n";
  }
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{work};

  std::vector<std::vector<std::string>> commands =
      rankCommands(settings_, stage.hash, run_, threads, work / "rendezvous", work);
  if (ctx.progress)
    ctx.progress("data-parallel: " + std::to_string(n) + " ranks (" +
                 (settings_.launcher == "srun" ? std::string("srun") : std::to_string(threads) + " thread" +
                                                                           (threads == 1 ? "" : "s") + " each") +
                 "), batch " + std::to_string(stage.pretrain.batch) + " = " + std::to_string(n) + " x " +
                 std::to_string(stage.pretrain.batch / n));
  std::vector<pid_t> pids;
  auto stopAll = [&](int signal) {
    for (pid_t p : pids)
      if (p > 0) kill(p, signal);
  };
  for (const auto& argv : commands) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
    if (rc != 0) {
      stopAll(SIGTERM);
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      return failure(rt::StageResult::Status::UserError,
                     "cannot start '" + argv[0] + "' for the ranks: " + std::strerror(rc));
    }
    pids.push_back(pid);
  }
  // Wait for all; the first to fail stops the others.
  std::vector<int> status(pids.size(), 0);
  std::vector<bool> done(pids.size(), false);
  size_t left = pids.size();
  int firstFailed = -1;
  while (left > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int st = 0;
      pid_t p = waitpid(pids[i], &st, WNOHANG);
      if (p == 0 || (p < 0 && errno == EINTR)) continue;
      done[i] = true;
      status[i] = p < 0 ? 0 : st;
      --left;
      bool ok = p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
      if (!ok && firstFailed < 0) {
        firstFailed = static_cast<int>(i);
        for (size_t k = 0; k < pids.size(); ++k)
          if (!done[k]) kill(pids[k], SIGTERM);
      }
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto resultOf = [&](int rank, rt::StageResult& r) {
    return parseStageResult(readText(work / ("result-" + std::to_string(rank) + ".json")), r);
  };
  if (firstFailed >= 0) {
    // The failing rank's own message, when it wrote one: the first rank to stop (under
    // srun: any), preferring a cause over a rank that only lost its peers.
    std::vector<int> order;
    if (settings_.launcher != "srun") order.push_back(firstFailed);
    for (int rank = 0; rank < n; ++rank) order.push_back(rank);
    std::optional<rt::StageResult> best;
    int bestRank = -1;
    for (int rank : order) {
      rt::StageResult r;
      if (!resultOf(rank, r) || r.status == rt::StageResult::Status::Ok) continue;
      bool lostPeers = r.message.find("another rank stopped") != std::string::npos;
      if (!best || (!lostPeers && best->message.find("another rank stopped") != std::string::npos)) {
        best = r;
        bestRank = rank;
      }
    }
    if (best) {
      best->message = "rank " + std::to_string(bestRank) + " of " + std::to_string(n) + ": " + best->message;
      return *best;
    }
    int st = status[static_cast<size_t>(firstFailed)];
    std::string how = WIFSIGNALED(st) ? "was killed by signal " + std::to_string(WTERMSIG(st))
                                      : "exited with code " + std::to_string(WEXITSTATUS(st)) +
                                            " (its messages, if any, are above)";
    std::string who = settings_.launcher == "srun" ? "srun" : "rank " + std::to_string(firstFailed);
    return failure(rt::StageResult::Status::UserError,
                   who + " of the data-parallel stage " + how + "; the other ranks were stopped. Run again to resume "
                   "from the last checkpoint");
  }
  rt::StageResult r;
  if (!resultOf(0, r))
    return failure(rt::StageResult::Status::InternalError, "rank 0 finished without writing " +
                                                               (work / "result-0.json").string());
  return r;
}

}  // namespace gyrus::exec
