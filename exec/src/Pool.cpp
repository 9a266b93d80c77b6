// Worker processes for `gyrus run --jobs N` (see Pool.h).
#include "gyrus/exec/Pool.h"
#include "Interrupt.h"

#include "gyrus/IrJson.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>

extern char** environ;

namespace gyrus::exec {

namespace {

// Ctrl-C: while the pool runs (the workers, in our process group, receive it too and stop).
using detail::InterruptGuard;
using detail::interrupted;

struct Worker {
  pid_t pid = -1;
  int err = -1;         ///< live view: the read end of its stderr
  std::string errText;  ///< live view: what it wrote there, not yet a whole line
  std::string last;     ///< live view: its latest progress line
  std::vector<int> gpus;  ///< the indexes into PoolSettings::gpus it was given (one per rank)
  int out = -1;         ///< the read end of its stdout
  std::string json;     ///< what it wrote there
  size_t stage = 0;
  std::chrono::steady_clock::time_point start;
};

/// Starts `argv` with stdout to a pipe and `env` as its environment; -1 when it cannot
/// start.
pid_t spawn(const std::vector<std::string>& argv, char** env, int& readEnd, int* errEnd = nullptr) {
  int fds[2], errFds[2] = {-1, -1};
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  if (errEnd != nullptr && pipe2(errFds, O_CLOEXEC) != 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  if (errEnd != nullptr) posix_spawn_file_actions_adddup2(&actions, errFds[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (errEnd != nullptr) close(errFds[1]);
  if (rc != 0) {
    close(fds[0]);
    if (errEnd != nullptr) close(errFds[0]);
    return -1;
  }
  readEnd = fds[0];
  if (errEnd != nullptr) *errEnd = errFds[0];
  return pid;
}

/// The live view (PoolSettings::live): lines that stay, printed above a block of one
/// line per running stage, which is redrawn in place.
class LiveView {
 public:
  LiveView(bool on, int width) : on_(on), width_(std::max(20, width)) {}
  bool on() const { return on_; }
  /// A line that stays (the pool's, a stage's warning, error or end).
  void keep(const std::string& line) { kept_.push_back(line); }
  /// Redraws: the kept lines, then `running` (one line each), in place of the last block.
  void draw(const std::vector<std::string>& running) {
    if (kept_.empty() && running == shown_) return;  // nothing new
    shown_ = running;
    std::string out;
    if (drawn_ > 0) out += "\x1b[" + std::to_string(drawn_) + "F\x1b[J";
    for (const std::string& k : kept_) out += k + "\n";
    kept_.clear();
    for (const std::string& r : running) {
      std::string line = r.size() > static_cast<size_t>(width_ - 1) ? r.substr(0, static_cast<size_t>(width_ - 2)) + "…" : r;
      out += line + "\n";
    }
    drawn_ = static_cast<int>(running.size());
    if (!out.empty()) {
      std::fputs(out.c_str(), stderr);
      std::fflush(stderr);
    }
  }

 private:
  bool on_;
  int width_;
  int drawn_ = 0;
  std::vector<std::string> kept_, shown_;
};

/// A whole line of a worker's stderr in the live view: a progress line replaces the
/// stage's; its end, warnings and errors stay; the worker's runtime line is dropped (the
/// pool says what runs where).
void liveLine(Worker& w, const std::string& line, LiveView& view) {
  if (line.empty() || line.rfind("runtime: ", 0) == 0) return;
  bool stays = line.find("] done in ") != std::string::npos || line.find("warning") != std::string::npos ||
               line.find("error") != std::string::npos || line.find("cached") != std::string::npos;
  if (stays)
    view.keep(line);
  else
    w.last = line;
}

/// The worker's outcome from its JSON (`gyrus run-stage --json`) and exit status.
StageOutcome outcomeOf(const ir::Stage& stage, const Worker& w, int status) {
  StageOutcome o;
  o.hash = stage.hash;
  o.name = stage.name;
  o.kind = stage.kind;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w.start).count();
  nlohmann::json j = nlohmann::json::parse(w.json, nullptr, /*allow_exceptions=*/false);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (!j.is_discarded() && j.is_object() && j["stages"].is_array() && !j["stages"].empty()) {
    const nlohmann::json& s = j["stages"][0];
    std::string st = s.value("status", std::string());
    o.status = st == "ran"       ? StageOutcome::Status::Ran
               : st == "resumed" ? StageOutcome::Status::Resumed
               : st == "cached"  ? StageOutcome::Status::Cached
               : st == "skipped" ? StageOutcome::Status::Skipped
                                 : StageOutcome::Status::Failed;
    o.seconds = s.value("seconds", o.seconds);
    o.message = s.value("message", std::string());
    o.device = s.value("device", std::string());
    if (j["metrics"].is_array())
      for (const auto& m : j["metrics"])
        if (m.is_object() && m["name"].is_string())
          o.metrics.push_back({m["name"].get<std::string>(), m["value"].is_number() ? m["value"].get<double>() : 0.0});
    if (o.status == StageOutcome::Status::Failed) o.exitCode = code == 0 ? 2 : code;
    return o;
  }
  o.status = StageOutcome::Status::Failed;
  o.exitCode = code == 1 ? 1 : 2;
  o.message = WIFSIGNALED(status) ? "its worker was killed by signal " + std::to_string(WTERMSIG(status))
                                  : "its worker exited " + std::to_string(code) + " without a result (see its lines above)";
  return o;
}

/// This process's environment with CUDA_VISIBLE_DEVICES set to `gpu` (unchanged when
/// empty): the strings, and the pointer array posix_spawn takes.
struct Environment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  explicit Environment(const std::string& gpu) {
    for (char** e = environ; *e != nullptr; ++e)
      if (gpu.empty() || std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0) strings.emplace_back(*e);
    if (!gpu.empty()) strings.push_back("CUDA_VISIBLE_DEVICES=" + gpu);
    for (std::string& s : strings) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
};

}  // namespace

std::vector<std::string> visibleGpus(const std::string& device, const char* visible, int driverCount) {
  if (device != "auto" && device != "cuda") return {};
  std::vector<std::string> gpus;
  if (visible != nullptr) {
    std::string list = visible;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      std::string id = list.substr(start, end - start);
      id.erase(0, id.find_first_not_of(' '));
      id.erase(id.find_last_not_of(' ') + 1);
      if (!id.empty()) gpus.push_back(id);
      start = end + 1;
    }
  } else {
    for (int i = 0; i < driverCount; ++i) gpus.push_back(std::to_string(i));
  }
  if (gpus.size() < 2) gpus.clear();
  return gpus;
}

int driverGpuCount() {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

int pickGpu(const std::vector<std::string>& gpus, const std::vector<int>& inUse) {
  if (gpus.empty()) return -1;
  int best = 0;
  for (int i = 1; i < static_cast<int>(gpus.size()); ++i)
    if (inUse[static_cast<size_t>(i)] < inUse[static_cast<size_t>(best)]) best = i;
  return best;
}

std::vector<int> pickGpus(const std::vector<std::string>& gpus, const std::vector<int>& inUse, int count) {
  std::vector<int> order(gpus.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return inUse[static_cast<size_t>(a)] < inUse[static_cast<size_t>(b)];
  });
  order.resize(std::min(order.size(), static_cast<size_t>(std::max(count, 0))));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<StageOutcome> runExperimentInPool(const ir::Experiment& experiment, const Store& store,
                                              const RunSettings& settings, const PoolSettings& pool) {
  auto log = [&](const std::string& line) {
    if (settings.log) settings.log(line);
  };
  const size_t n = experiment.stages.size();
  std::vector<StageOutcome> outcomes(n);
  enum class State { Waiting, Running, Done };
  std::vector<State> state(n, State::Waiting);
  for (size_t i = 0; i < n; ++i) {
    outcomes[i].hash = experiment.stages[i].hash;
    outcomes[i].name = experiment.stages[i].name;
    outcomes[i].kind = experiment.stages[i].kind;
    outcomes[i].status = StageOutcome::Status::Skipped;
  }
  // Every stage's stage.json first: the workers read them.
  try {
    for (const ir::Stage& stage : experiment.stages) store.prepare(stage, ir::depHashes(stage, experiment));
  } catch (const std::exception& e) {
    StageOutcome& o = outcomes.front();
    o.status = StageOutcome::Status::Failed;
    o.message = "cannot use the run store '" + store.root().string() + "': " + e.what();
    o.exitCode = 1;
    o.stopsRun = true;
    return outcomes;
  }
  const int jobs = std::max(1, pool.jobs);
  const int threads = std::max(1, settings.threads / jobs);
  auto finished = [&](size_t i) {
    return state[i] == State::Done && (outcomes[i].status == StageOutcome::Status::Ran ||
                                       outcomes[i].status == StageOutcome::Status::Resumed ||
                                       outcomes[i].status == StageOutcome::Status::Cached);
  };
  InterruptGuard guard;
  LiveView view(pool.live, pool.width);
  auto say = [&](const std::string& line) {
    if (view.on())
      view.keep(line);
    else
      log(line);
  };
  std::map<pid_t, Worker> running;
  std::vector<int> gpuUse(pool.gpus.size(), 0);
  bool stop = false;
  for (;;) {
    // Settle what can be settled without a worker: cached stages, and stages whose
    // dependency failed.
    for (size_t i = 0; i < n; ++i) {
      if (state[i] != State::Waiting) continue;
      const ir::Stage& stage = experiment.stages[i];
      std::string failedDep;
      bool ready = true;
      for (size_t d : stage.deps) {
        if (state[d] == State::Done && !finished(d) && failedDep.empty()) failedDep = experiment.stages[d].name;
        if (state[d] != State::Done) ready = false;
      }
      if (!failedDep.empty()) {
        state[i] = State::Done;
        outcomes[i].message = "it needs '" + failedDep + "', which did not finish";
        continue;
      }
      if (!ready) continue;
      if (std::optional<StageRecord> done = store.load(stage.hash)) {
        state[i] = State::Done;
        outcomes[i].status = StageOutcome::Status::Cached;
        outcomes[i].metrics = done->metrics;
        outcomes[i].device = done->device;
        say("[" + stage.name + "] " + std::string(ir::toString(stage.kind)) + " " + stage.name + ": cached (" +
            stage.hash.substr(0, 12) + ")");
      }
    }
    if (interrupted) stop = true;
    // Start workers for ready stages, in the experiment's order.
    for (size_t i = 0; i < n && !stop && static_cast<int>(running.size()) < jobs; ++i) {
      if (state[i] != State::Waiting) continue;
      const ir::Stage& stage = experiment.stages[i];
      bool ready = std::all_of(stage.deps.begin(), stage.deps.end(), [&](size_t d) { return finished(d); });
      if (!ready) continue;
      std::vector<std::string> argv = {pool.executable, "run-stage", stage.hash,
                                       "--store",       store.root().string(), "--json",
                                       "--threads",     std::to_string(threads), "--device", settings.device};
      if (!settings.volumeCache.empty()) argv.insert(argv.end(), {"--volume-cache", settings.volumeCache.string()});
      if (settings.loaderMemory > 0) argv.insert(argv.end(), {"--loader-memory", std::to_string(settings.loaderMemory)});
      if (pool.ranks > 1) argv.insert(argv.end(), {"--ranks", std::to_string(pool.ranks)});
      Worker w;
      w.stage = i;
      w.start = std::chrono::steady_clock::now();
      // A data-parallel pretraining gets one GPU per rank (its ranks take them in order).
      const int wanted = pool.ranks > 1 && stage.kind == ir::StageKind::Pretrain ? pool.ranks : 1;
      w.gpus = pickGpus(pool.gpus, gpuUse, wanted);
      std::string visible;
      for (int g : w.gpus) visible += (visible.empty() ? "" : ",") + pool.gpus[static_cast<size_t>(g)];
      Environment env(visible);
      w.pid = spawn(argv, env.pointers.data(), w.out, view.on() ? &w.err : nullptr);
      w.last = "[" + stage.name + "] starting";
      if (w.pid < 0) {
        state[i] = State::Done;
        outcomes[i].status = StageOutcome::Status::Failed;
        outcomes[i].message = "cannot start a worker (" + pool.executable + "): " + std::strerror(errno);
        outcomes[i].exitCode = 2;
        outcomes[i].stopsRun = true;
        stop = true;
        break;
      }
      state[i] = State::Running;
      for (int g : w.gpus) ++gpuUse[static_cast<size_t>(g)];
      say("[" + stage.name + "] " + std::string(ir::toString(stage.kind)) + " " + stage.name + " (" +
          stage.hash.substr(0, 12) + ") in worker " + std::to_string(w.pid) + ", " + std::to_string(threads) +
          " thread" + (threads == 1 ? "" : "s") +
          (w.gpus.empty() ? std::string() : (w.gpus.size() == 1 ? ", GPU " : ", GPUs ") + visible));
      running.emplace(w.pid, std::move(w));
    }
    if (running.empty()) break;
    // Read the workers' outputs until one exits.
    std::vector<pollfd> fds;
    for (auto& [pid, w] : running) {
      if (w.out >= 0) fds.push_back({w.out, POLLIN, 0});
      if (w.err >= 0) fds.push_back({w.err, POLLIN, 0});
    }
    if (!fds.empty() && poll(fds.data(), fds.size(), 200) > 0) {
      for (const pollfd& p : fds) {
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        for (auto& [pid, w] : running) {
          if (w.out != p.fd && w.err != p.fd) continue;
          const bool isErr = w.err == p.fd;
          char buffer[4096];
          ssize_t got = read(p.fd, buffer, sizeof buffer);
          if (got > 0) {
            if (!isErr) {
              w.json.append(buffer, static_cast<size_t>(got));
              continue;
            }
            w.errText.append(buffer, static_cast<size_t>(got));
            for (size_t nl = w.errText.find('\n'); nl != std::string::npos; nl = w.errText.find('\n')) {
              liveLine(w, w.errText.substr(0, nl), view);
              w.errText.erase(0, nl + 1);
            }
          } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(p.fd);
            (isErr ? w.err : w.out) = -1;
            if (isErr && !w.errText.empty()) {
              liveLine(w, w.errText, view);
              w.errText.clear();
            }
          }
        }
      }
    }
    for (auto it = running.begin(); it != running.end();) {
      Worker& w = it->second;
      if (w.out >= 0 || w.err >= 0) {
        ++it;
        continue;
      }
      int status = 0;
      pid_t got = waitpid(w.pid, &status, 0);
      if (got != w.pid) {
        ++it;
        continue;
      }
      size_t i = w.stage;
      for (int g : w.gpus) --gpuUse[static_cast<size_t>(g)];
      outcomes[i] = outcomeOf(experiment.stages[i], w, status);
      state[i] = State::Done;
      if (outcomes[i].status == StageOutcome::Status::Failed && interrupted)
        outcomes[i].message = "interrupted (Ctrl-C); run again to finish it";
      it = running.erase(it);
    }
    if (view.on()) {
      std::vector<std::string> lines;
      for (size_t i = 0; i < n; ++i)
        for (const auto& [pid, w] : running)
          if (w.stage == i) lines.push_back(w.last);
      view.draw(lines);
    }
    if (fds.empty() && !running.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (view.on()) view.draw({});
  if (stop && interrupted)
    for (size_t i = 0; i < n; ++i)
      if (state[i] == State::Waiting) outcomes[i].message = "not started: interrupted (Ctrl-C)";
  return outcomes;
}

}  // namespace gyrus::exec
