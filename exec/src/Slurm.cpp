// The Slurm executor of `gyrus run` (see Slurm.h).
#include "gyrus/exec/Slurm.h"
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
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace gyrus::exec {

namespace fs = std::filesystem;

namespace {

// Ctrl-C: while we wait on Slurm (the jobs are Slurm's: Ctrl-C never reaches them).
using detail::InterruptGuard;
using detail::interrupted;

/// Runs `argv` (found on PATH, no shell) with its stdout and stderr captured; its exit
/// code, or -1 (with `err` saying why) when it cannot start or is killed.
int runCommand(const std::vector<std::string>& argv, std::string& out, std::string& err) {
  out.clear();
  err.clear();
  int o[2], e[2];
  if (pipe2(o, O_CLOEXEC) != 0) {
    err = std::strerror(errno);
    return -1;
  }
  if (pipe2(e, O_CLOEXEC) != 0) {
    err = std::strerror(errno);
    close(o[0]);
    close(o[1]);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, o[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, e[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // In a process group of its own: Ctrl-C on the terminal is ours to answer, and must
  // not kill an sbatch half-way through a submission.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(o[1]);
  close(e[1]);
  if (rc != 0) {
    close(o[0]);
    close(e[0]);
    err = "cannot run '" + argv[0] + "': " + std::strerror(rc);
    return -1;
  }
  pollfd fds[2] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (pollfd& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buffer[4096];
      ssize_t got = read(p.fd, buffer, sizeof buffer);
      if (got > 0) {
        (p.fd == o[0] ? out : err).append(buffer, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(p.fd);
        p.fd = -1;
        --open;
      }
    }
  }
  for (pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  err += "'" + argv[0] + "' was killed by signal " + std::to_string(WTERMSIG(status));
  return -1;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

/// A command's messages on one line: "sbatch: error: " prefixes dropped, lines joined.
std::string oneLine(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    for (const char* prefix : {"sbatch: error: ", "squeue: error: ", "scancel: error: "})
      if (line.rfind(prefix, 0) == 0) line.erase(0, std::strlen(prefix));
    line = trimmed(line);
    if (!line.empty()) out += (out.empty() ? "" : "; ") + line;
  }
  return out;
}

bool isHash(const std::string& h) {
  return !h.empty() && h.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// The array job of a task id ("123" of "123_4").
std::string arrayOf(const std::string& task) { return task.substr(0, task.find('_')); }

/// The last `n` lines of a file (a failed task's log), indented.
std::string tailOf(const std::string& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += "\n    " + lines[i];
  return out;
}

/// How a task that is no longer in flight ended, in words.
std::string endOf(const SlurmTask& t) {
  std::string s = t.state;
  int code = (t.exitStatus >> 8) & 0xff, signal = t.exitStatus & 0x7f;
  if (signal != 0)
    s += ", signal " + std::to_string(signal);
  else if (code != 0)
    s += ", exit code " + std::to_string(code);
  if (!t.reason.empty() && t.reason != "None" && t.reason != "NonZeroExitCode") s += ", " + t.reason;
  return s;
}

void writeRecord(const Store& store, const std::string& hash, const SlurmRecord& r) {
  nlohmann::json j = {{"job", r.job}, {"attempt", r.attempt}, {"log", r.log}};
  writeFileAtomic(store.stageDir(hash) / "slurm.json", j.dump(2) + "\n");
}

}  // namespace

std::string checkSlurmSettings(const SlurmSettings& s) {
  for (const std::string& line : s.extraSbatchLines) {
    if (line.rfind("#SBATCH", 0) != 0)
      return "the extra batch line '" + line + "' does not start with #SBATCH: write it as `#SBATCH --option=value`";
    if (line.find_first_of(std::string("\n\r\0", 3)) != std::string::npos)
      return "an extra #SBATCH line holds a line break: give one option per line";
  }
  if (s.executable.empty() || s.executable.front() != '/')
    return "the gyrus executable the tasks run must be an absolute path, not '" + s.executable + "'";
  if (s.gpusPerTask < 0 || s.cpusPerTask < 0 || s.maxRunning < 0 || s.retries < 0)
    return "--gpus-per-task, --threads, --max-running and --retries cannot be negative";
  return {};
}

std::string shellQuote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::optional<std::string> slurmPathPattern(const std::string& path) {
  if (path.find('\\') != std::string::npos) return std::nullopt;
  std::string out;
  for (char c : path) {
    if (c == '%') out += '%';
    out += c;
  }
  return out;
}

std::string batchScript(const std::vector<std::string>& hashes, const fs::path& store, const SlurmSettings& slurm,
                        const RunSettings& run, bool logRedirect) {
  std::string s = "#!/bin/bash\n";
  s += "# Generated by `gyrus run --executor slurm` (docs/cluster.md): array task i runs stage i below.\n";
  for (const std::string& line : slurm.extraSbatchLines) s += line + "\n";
  s += "set -u\n";
  const std::string slurmDir = (store / "slurm").string() + "/";
  if (logRedirect)
    s += "exec >>" + shellQuote(slurmDir) + "\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log\" 2>&1\n";
  s += "case \"${SLURM_ARRAY_TASK_ID:-}\" in\n";
  for (size_t i = 0; i < hashes.size(); ++i) {
    // Hashes are hex digits; anything else would be a bug, and is not written.
    if (!isHash(hashes[i])) throw std::invalid_argument("not a stage hash: " + hashes[i]);
    s += "  " + std::to_string(i) + ") hash=" + hashes[i] + " ;;\n";
  }
  s += "  *) echo \"gyrus: this script has no stage for array task ${SLURM_ARRAY_TASK_ID:-(none)}\" >&2; exit 1 ;;\n";
  s += "esac\n";
  s += "echo \"gyrus: stage $hash, Slurm task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)\"\n";
  // One thread per CPU Slurm gave the task; OpenBLAS reads its own count as it loads.
  s += "threads=\"${SLURM_CPUS_PER_TASK:-1}\"\n";
  s += "export OPENBLAS_NUM_THREADS=\"$threads\"\n";
  s += "exec " + shellQuote(slurm.executable) + " run-stage \"$hash\" --store " + shellQuote(store.string()) +
       " --threads \"$threads\" --device " + shellQuote(run.device);
  if (!run.volumeCache.empty()) s += " --volume-cache " + shellQuote(run.volumeCache.string());
  if (run.loaderMemory > 0) s += " --loader-memory " + std::to_string(run.loaderMemory);
  // Data-parallel: a pretraining's ranks are this task's Slurm tasks, started by srun.
  if (slurm.ranks > 1) s += " --ranks " + std::to_string(slurm.ranks) + " --launcher srun";
  s += "\n";
  return s;
}

std::vector<std::string> sbatchArguments(const SlurmSettings& slurm, size_t tasks, const std::vector<std::string>& after,
                                         const std::string& jobName, const std::string& output, const fs::path& script) {
  // Every option as one `--name=value` argument: a value that starts with '-' stays a value.
  std::vector<std::string> a = {"--parsable"};
  std::string array = "--array=0-" + std::to_string(tasks == 0 ? 0 : tasks - 1);
  if (slurm.maxRunning > 0) array += "%" + std::to_string(slurm.maxRunning);
  a.push_back(array);
  a.push_back("--job-name=" + jobName);
  a.push_back("--output=" + output);
  a.push_back("--open-mode=append");
  if (!slurm.partition.empty()) a.push_back("--partition=" + slurm.partition);
  if (!slurm.account.empty()) a.push_back("--account=" + slurm.account);
  if (!slurm.time.empty()) a.push_back("--time=" + slurm.time);
  if (slurm.gpusPerTask > 0) a.push_back("--gpus-per-task=" + std::to_string(slurm.gpusPerTask));
  if (slurm.cpusPerTask > 0) a.push_back("--cpus-per-task=" + std::to_string(slurm.cpusPerTask));
  if (slurm.ranks > 1) a.push_back("--ntasks=" + std::to_string(slurm.ranks));
  if (!after.empty()) {
    // On each task, not on the arrays: once any task of an array fails, `afterok:ARRAY`
    // is never satisfied, even by a resubmission (docs/cluster.md).
    std::string dep = "--dependency=afterok";
    for (const std::string& t : after) dep += ":" + t;
    a.push_back(dep);
  }
  a.push_back(script.string());
  return a;
}

bool querySlurm(const SlurmSettings& slurm, const std::vector<std::string>& jobs, std::map<std::string, SlurmTask>& tasks,
                std::string& error) {
  tasks.clear();
  if (jobs.empty()) return true;
  std::string list;
  for (const std::string& j : jobs) list += (list.empty() ? "" : ",") + j;
  std::string out, err;
  int rc = runCommand({slurm.squeue, "--noheader", "--array", "--states=all", "--jobs=" + list,
                       "--Format=JobArrayID:|,State:|,exit_code:|,Reason:|"},
                      out, err);
  if (rc != 0) {
    // Every job purged from the controller's memory: nothing to report.
    if (rc > 0 && err.find("Invalid job id") != std::string::npos) return true;
    error = rc < 0 ? "cannot run squeue (is Slurm's client installed and on PATH?): " + trimmed(err)
                   : "squeue failed: " + oneLine(err.empty() ? out : err);
    return false;
  }
  tasks = parseSqueue(out);
  return true;
}

std::map<std::string, SlurmTask> parseSqueue(const std::string& text) {
  std::map<std::string, SlurmTask> tasks;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    size_t start = 0;
    for (size_t bar = line.find('|'); bar != std::string::npos; bar = line.find('|', start)) {
      f.push_back(line.substr(start, bar - start));
      start = bar + 1;
    }
    // JOB_TASK: a task of an array (a pending array not broken into tasks would be
    // JOB_[0-3]; --array asks for one line per task).
    if (f.size() < 4 || f[0].find('_') == std::string::npos || f[0].find('[') != std::string::npos) continue;
    SlurmTask t;
    t.id = f[0];
    // States can carry a suffix ("CANCELLED by 0").
    t.state = f[1].substr(0, f[1].find(' '));
    t.exitStatus = std::atoi(f[2].c_str());
    t.reason = f[3];
    tasks[t.id] = t;
  }
  return tasks;
}

bool slurmInFlight(const SlurmTask& t) {
  static const std::set<std::string> flight = {"PENDING",   "RUNNING",  "CONFIGURING", "COMPLETING", "SUSPENDED",
                                               "REQUEUED",  "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                                               "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"};
  return flight.count(t.state) > 0;
}

std::optional<SlurmRecord> readSlurmRecord(const Store& store, const std::string& hash) {
  std::ifstream in(store.stageDir(hash) / "slurm.json");
  if (!in) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j["job"].is_string()) return std::nullopt;
  SlurmRecord r;
  r.job = j["job"].get<std::string>();
  if (j["attempt"].is_number_integer()) r.attempt = j["attempt"].get<int>();
  if (j["log"].is_string()) r.log = j["log"].get<std::string>();
  return r;
}

std::map<std::string, SlurmTask> slurmTasksInFlight(const Store& store, const std::vector<std::string>& hashes,
                                                    const SlurmSettings& slurm) {
  std::map<std::string, std::string> taskOf;  // hash -> JOB_TASK
  std::set<std::string> jobs;
  for (const std::string& h : hashes) {
    if (store.load(h)) continue;
    if (std::optional<SlurmRecord> r = readSlurmRecord(store, h)) {
      taskOf[h] = r->job;
      jobs.insert(arrayOf(r->job));
    }
  }
  std::map<std::string, SlurmTask> found, out;
  std::string error;
  if (jobs.empty() || !querySlurm(slurm, {jobs.begin(), jobs.end()}, found, error)) return out;
  for (const auto& [h, task] : taskOf) {
    auto it = found.find(task);
    if (it != found.end() && slurmInFlight(it->second)) out[h] = it->second;
  }
  return out;
}

SlurmRun runExperimentOnSlurm(const ir::Experiment& experiment, const Store& store, const RunSettings& settings,
                              const SlurmSettings& given) {
  SlurmSettings slurm = given;
  {
    // The cluster's largest array (array task ids run from 0 to MaxArraySize - 1).
    std::string out, err;
    if (runCommand({slurm.scontrol, "show", "config"}, out, err) == 0) {
      std::istringstream lines(out);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("MaxArraySize", 0) != 0) continue;
        size_t eq = line.find('=');
        if (eq == std::string::npos) break;
        try {
          int value = std::stoi(line.substr(eq + 1));
          if (value >= 1) slurm.maxArraySize = value;
        } catch (const std::exception&) {
        }
        break;
      }
    }
  }
  auto log = [&](const std::string& line) {
    if (settings.log) settings.log(line);
  };
  const size_t n = experiment.stages.size();
  SlurmRun run;
  std::vector<StageOutcome>& outcomes = run.outcomes;
  outcomes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    outcomes[i].hash = experiment.stages[i].hash;
    outcomes[i].name = experiment.stages[i].name;
    outcomes[i].kind = experiment.stages[i].kind;
    outcomes[i].status = StageOutcome::Status::Skipped;
  }
  auto stopAll = [&](const std::string& message, int code) {
    StageOutcome& o = outcomes.front();
    o.status = StageOutcome::Status::Failed;
    o.message = message;
    o.exitCode = code;
    o.stopsRun = true;
    return run;
  };
  if (n == 0) return run;
  // Every stage's stage.json first (as `gyrus plan --store`): the tasks read them.
  const fs::path slurmDir = store.root() / "slurm";
  try {
    for (const ir::Stage& stage : experiment.stages) store.prepare(stage, ir::depHashes(stage, experiment));
    fs::create_directories(slurmDir);
  } catch (const std::exception& e) {
    return stopAll("cannot use the run store '" + store.root().string() + "': " + e.what(), 1);
  }
  // Slurm writes each task's output under the store; a path its file name patterns
  // cannot say (a backslash) is written by the script itself instead.
  std::optional<std::string> pattern = slurmPathPattern(slurmDir.string());
  const std::string output = pattern ? *pattern + "/%A_%a.log" : std::string("/dev/null");

  enum class State { Waiting, InFlight, Done };
  std::vector<State> state(n, State::Waiting);
  std::vector<std::string> task(n);     // the stage's current JOB_TASK
  std::vector<int> attempt(n, 0);       // submissions so far
  std::vector<bool> running(n, false);  // announced as running
  // The tasks a stage's array waits on: the union over its level, so a failed task
  // holds back every stage of the next level, not only its own dependents.
  std::vector<std::vector<std::string>> waitsOn(n);
  auto label = [&](size_t i) { return "[" + experiment.stages[i].name + "] "; };
  auto logPath = [&](const std::string& t) { return (slurmDir / (t + ".log")).string(); };

  // Finished stages are reused as by a local run.
  for (size_t i = 0; i < n; ++i) {
    const ir::Stage& stage = experiment.stages[i];
    if (std::optional<StageRecord> done = store.load(stage.hash)) {
      state[i] = State::Done;
      outcomes[i].status = StageOutcome::Status::Cached;
      outcomes[i].metrics = done->metrics;
      outcomes[i].device = done->device;
      log(label(i) + std::string(ir::toString(stage.kind)) + " " + stage.name + ": cached (" +
          stage.hash.substr(0, 12) + ")");
    }
  }
  // Stages a previous run left queued or running are followed, not submitted again.
  {
    std::vector<std::string> open;
    for (size_t i = 0; i < n; ++i)
      if (state[i] == State::Waiting) open.push_back(experiment.stages[i].hash);
    std::map<std::string, SlurmTask> flying = slurmTasksInFlight(store, open, slurm);
    for (size_t i = 0; i < n; ++i) {
      auto it = flying.find(experiment.stages[i].hash);
      if (it == flying.end()) continue;
      std::optional<SlurmRecord> r = readSlurmRecord(store, experiment.stages[i].hash);
      state[i] = State::InFlight;
      task[i] = it->second.id;
      attempt[i] = r ? r->attempt : 1;
      log(label(i) + "already in Slurm as task " + task[i] + " (" + it->second.state + "): following it");
    }
  }

  // A stage whose dependency will not finish is skipped; its queued task is cancelled.
  std::vector<std::string> toCancel;
  auto skipDependents = [&](size_t failed) {
    bool changed = true;
    std::vector<bool> dead(n, false);
    dead[failed] = true;
    while (changed) {
      changed = false;
      for (size_t i = 0; i < n; ++i) {
        if (dead[i] || state[i] == State::Done) continue;
        for (size_t d : experiment.stages[i].deps) {
          if (!dead[d]) continue;
          dead[i] = changed = true;
          if (state[i] == State::InFlight) toCancel.push_back(task[i]);
          state[i] = State::Done;
          outcomes[i].status = StageOutcome::Status::Skipped;
          outcomes[i].message = "it needs '" + experiment.stages[d].name + "', which did not finish";
          break;
        }
      }
    }
  };
  auto cancel = [&]() {
    if (toCancel.empty()) return;
    std::vector<std::string> argv = {slurm.scancel};
    argv.insert(argv.end(), toCancel.begin(), toCancel.end());
    std::string out, err;
    if (runCommand(argv, out, err) != 0) log("warning: scancel " + toCancel.front() + " ...: " + oneLine(err));
    toCancel.clear();
  };

  // Submits the stages `set` (all Waiting): one array per level of the DAG among them,
  // each task after the tasks of its dependencies that are not finished.
  int scripts = 0;
  // `counted`: the stages whose submission is a new attempt (not a mere resubmission of
  // a task that waited on a failed one).
  auto submit = [&](const std::vector<size_t>& set, const std::vector<bool>& counted) {
    // Levels over every stage not finished, the queued and running ones included, so
    // that an array waits only on the level before it.
    std::vector<int> level(n, 0);
    int top = -1;
    for (size_t i = 0; i < n; ++i) {  // the experiment's order is topological
      for (size_t d : experiment.stages[i].deps)
        if (state[d] != State::Done) level[i] = std::max(level[i], level[d] + 1);
    }
    for (size_t i : set) top = std::max(top, level[i]);
    for (int l = 0; l <= top; ++l) {
      // With --ranks, a level's pretrainings (N Slurm tasks each, started by srun) and its
      // evaluations (one process: one Slurm task) go out as separate arrays.
      for (int group = 0; group < 2; ++group) {
        const bool pretrains = group == 0;
        if (!pretrains && slurm.ranks <= 1) break;
        SlurmSettings groupSlurm = slurm;
        if (!pretrains) groupSlurm.ranks = 1;
        std::vector<size_t> all;
        for (size_t i : set) {
          if (level[i] != l || state[i] != State::Waiting) continue;
          const bool isPretrain = experiment.stages[i].kind == ir::StageKind::Pretrain;
          if (slurm.ranks <= 1 || isPretrain == pretrains) all.push_back(i);
        }
        // A level larger than the cluster's MaxArraySize goes out as several arrays.
        const size_t chunk = static_cast<size_t>(std::max(1, slurm.maxArraySize));
        for (size_t first = 0; first < all.size(); first += chunk) {
          std::vector<size_t> members(all.begin() + static_cast<std::ptrdiff_t>(first),
                                      all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), first + chunk)));
          std::vector<std::string> hashes, after;
          for (size_t i : members) {
            hashes.push_back(experiment.stages[i].hash);
            for (size_t d : experiment.stages[i].deps)
              if (state[d] == State::InFlight && std::find(after.begin(), after.end(), task[d]) == after.end())
                after.push_back(task[d]);
          }
          std::string name = members.size() == 1 ? experiment.stages[members[0]].name : "level" + std::to_string(l);
          for (char& c : name)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '_';
          fs::path script = slurmDir / ("gyrus-" + std::to_string(getpid()) + "-" + std::to_string(++scripts) + ".sh");
          std::string out, err, failure;
          std::string hint;  // what to check, when the cause is known to be the job's options
          try {
            writeFileAtomic(script, batchScript(hashes, store.root(), groupSlurm, settings, !pattern));
          } catch (const std::exception& e) {
            failure = std::string("cannot write its batch script: ") + e.what();
          }
          int rc = 0;
          if (failure.empty()) {
            std::vector<std::string> argv = {slurm.sbatch};
            for (std::string& a : sbatchArguments(groupSlurm, members.size(), after, "gyrus-" + name, output, script))
              argv.push_back(std::move(a));
            rc = runCommand(argv, out, err);
            if (rc < 0) failure = "cannot run sbatch (is Slurm's client installed and on PATH?): " + trimmed(err);
            if (rc > 0) {
              failure = "sbatch refused it: " + oneLine(err.empty() ? out : err);
              // No Slurm configuration or controller: not the job's options.
              const bool noCluster = err.find("configuration source") != std::string::npos ||
                                     err.find("slurm controller") != std::string::npos ||
                                     err.find("slurm_load_") != std::string::npos;
              hint = noCluster ? " (sbatch reaches no Slurm cluster from this machine: run gyrus on a login node of one)"
                               : " (check --partition, --account, --time, --gpus-per-task and the cluster's limits)";
            }
          }
          std::string job = trimmed(out.substr(0, out.find(';')));
          if (failure.empty() && (job.empty() || job.find_first_not_of("0123456789") != std::string::npos))
            failure = "sbatch printed no job id ('" + trimmed(out) + "')";
          if (!failure.empty()) {
            for (size_t i : members) {
              state[i] = State::Done;
              outcomes[i].status = StageOutcome::Status::Failed;
              outcomes[i].exitCode = 1;
              outcomes[i].message = "not submitted: " + failure + hint;
              skipDependents(i);
            }
            continue;
          }
          for (size_t k = 0; k < members.size(); ++k) {
            size_t i = members[k];
            state[i] = State::InFlight;
            task[i] = job + "_" + std::to_string(k);
            running[i] = false;
            waitsOn[i] = after;
            if (counted[i] || attempt[i] == 0) ++attempt[i];
            try {
              writeRecord(store, experiment.stages[i].hash, {task[i], attempt[i], logPath(task[i])});
            } catch (const std::exception& e) {
              log("warning: cannot record Slurm task " + task[i] + " in the store: " + e.what());
            }
            const ir::Stage& stage = experiment.stages[i];
            log(label(i) + std::string(ir::toString(stage.kind)) + " " + stage.name + " (" + stage.hash.substr(0, 12) +
                ") queued as Slurm task " + task[i] + (attempt[i] > 1 ? ", attempt " + std::to_string(attempt[i]) : ""));
          }
        }
      }
    }
  };

  {
    std::vector<size_t> first;
    for (size_t i = 0; i < n; ++i)
      if (state[i] == State::Waiting) first.push_back(i);
    submit(first, std::vector<bool>(n, true));
  }
  cancel();

  InterruptGuard guard;
  std::string lastError;
  for (;;) {
    std::vector<size_t> flying;
    for (size_t i = 0; i < n; ++i)
      if (state[i] == State::InFlight) flying.push_back(i);
    if (flying.empty()) break;
    // Sleep in short steps so that Ctrl-C is answered at once.
    for (double slept = 0.0; slept < slurm.pollSeconds && !interrupted; slept += 0.1)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (interrupted) {
      run.interrupted = true;
      for (size_t i : flying) {
        outcomes[i].status = StageOutcome::Status::Skipped;
        outcomes[i].message = "left to Slurm as task " + task[i] + " (Ctrl-C)";
      }
      break;
    }
    std::set<std::string> jobs;
    for (size_t i : flying) jobs.insert(arrayOf(task[i]));
    std::map<std::string, SlurmTask> tasks;
    std::string error;
    if (!querySlurm(slurm, {jobs.begin(), jobs.end()}, tasks, error)) {
      // A controller that is busy or restarting: say so once, keep asking.
      if (error != lastError) log("warning: " + error + "; asking again");
      lastError = error;
      continue;
    }
    lastError.clear();
    std::vector<size_t> retry, stuck;
    for (size_t i : flying) {
      if (state[i] != State::InFlight) continue;  // skipped meanwhile
      const ir::Stage& stage = experiment.stages[i];
      auto it = tasks.find(task[i]);
      const bool known = it != tasks.end();
      if (known && slurmInFlight(it->second) && it->second.reason == "DependencyNeverSatisfied") {
        stuck.push_back(i);
        continue;
      }
      if (known && slurmInFlight(it->second)) {
        if (!running[i] && it->second.state == "RUNNING") {
          running[i] = true;
          log(label(i) + "running as Slurm task " + task[i]);
        }
        continue;
      }
      // Finished in some way (or gone from Slurm's memory): the store says whether it worked.
      if (std::optional<StageRecord> done = store.load(stage.hash)) {
        state[i] = State::Done;
        outcomes[i].status = done->resumed ? StageOutcome::Status::Resumed : StageOutcome::Status::Ran;
        outcomes[i].seconds = done->seconds;
        outcomes[i].metrics = done->metrics;
        outcomes[i].device = done->device;
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.1f", done->seconds);
        log(label(i) + "done in " + seconds + " s (Slurm task " + task[i] +
            (done->host.empty() ? "" : " on " + done->host) + ")");
        continue;
      }
      std::string how = known ? endOf(it->second) : "gone from Slurm without a result";
      if (known && it->second.state == "COMPLETED") how = "COMPLETED without a result";
      const bool cancelled = known && it->second.state == "CANCELLED";
      if (!cancelled && attempt[i] <= slurm.retries) {
        log(label(i) + "Slurm task " + task[i] + " ended " + how + "; resubmitting (retry " + std::to_string(attempt[i]) +
            " of " + std::to_string(slurm.retries) + "), log: " + logPath(task[i]));
        retry.push_back(i);
        continue;
      }
      state[i] = State::Done;
      outcomes[i].status = StageOutcome::Status::Failed;
      // run-stage's own code: 2 for ours (e.g. no runtime module), else 1 (the data,
      // the store, the cluster: killed, out of memory, out of time).
      outcomes[i].exitCode = known && it->second.state == "FAILED" && ((it->second.exitStatus >> 8) & 0xff) == 2 ? 2 : 1;
      outcomes[i].message = "Slurm task " + task[i] + " ended " + how +
                            (cancelled ? " (scancel or `gyrus run --cancel`); run again to resubmit it"
                                       : " after " + std::to_string(attempt[i]) + " attempt" +
                                             (attempt[i] == 1 ? "" : "s")) +
                            "; its log, " + logPath(task[i]) + ", ends:" + tailOf(logPath(task[i]), 8);
      skipDependents(i);
    }
    if (!retry.empty() || !stuck.empty()) {
      // The failed stages go again, with the queued stages that wait on them: those
      // wait on tasks that will never succeed, so they are cancelled and resubmitted
      // after the new ones.
      std::vector<bool> again(n, false);
      std::set<std::string> stale;  // tasks that will never succeed
      for (size_t i : retry) {
        again[i] = true;
        stale.insert(task[i]);
      }
      for (size_t i = 0; i < n; ++i) {  // in order: the dependents' dependents too
        if (again[i] || state[i] != State::InFlight) continue;
        for (const std::string& t : waitsOn[i])
          if (stale.count(t)) {
            again[i] = true;
            stale.insert(task[i]);
            toCancel.push_back(task[i]);
            break;
          }
      }
      // A task that waits on one that failed unseen (ended and purged between two looks)
      // can never start either: resubmitted after what it needs now.
      for (size_t i : stuck)
        if (!again[i] && state[i] == State::InFlight) {
          log(label(i) + "Slurm task " + task[i] + " can never start (DependencyNeverSatisfied); resubmitting it");
          again[i] = true;
          toCancel.push_back(task[i]);
        }
      cancel();
      std::vector<size_t> set;
      for (size_t i = 0; i < n; ++i)
        if (again[i]) {
          state[i] = State::Waiting;
          set.push_back(i);
        }
      std::vector<bool> counted(n, false);
      for (size_t i : retry) counted[i] = true;
      submit(set, counted);
    }
    cancel();
  }
  return run;
}

int cancelSlurmRun(const ir::Experiment& experiment, const Store& store, const SlurmSettings& slurm,
                   const std::function<void(const std::string&)>& log) {
  std::vector<std::string> hashes;
  for (const ir::Stage& s : experiment.stages) hashes.push_back(s.hash);
  std::map<std::string, SlurmTask> flying = slurmTasksInFlight(store, hashes, slurm);
  if (flying.empty()) {
    log("nothing of this experiment is queued or running in Slurm (store " + store.root().string() + ")");
    return 0;
  }
  std::vector<std::string> argv = {slurm.scancel};
  for (const ir::Stage& s : experiment.stages) {
    auto it = flying.find(s.hash);
    if (it == flying.end()) continue;
    argv.push_back(it->second.id);
    log("[" + s.name + "] cancelling Slurm task " + it->second.id + " (" + it->second.state + ")");
  }
  std::string out, err;
  if (runCommand(argv, out, err) != 0) {
    log("error: scancel failed: " + oneLine(err.empty() ? out : err));
    return 1;
  }
  log("cancelled " + std::to_string(argv.size() - 1) + " Slurm task" + (argv.size() == 2 ? "" : "s"));
  return 0;
}

}  // namespace gyrus::exec
