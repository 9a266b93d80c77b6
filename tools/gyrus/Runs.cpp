// `gyrus runs` (see Runs.h).
#include "Runs.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <fmt/core.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "gyrus/IrJson.h"
#include "gyrus/exec/Slurm.h"
#include "gyrus/exec/Store.h"

namespace gyrus::driver {
namespace {

namespace fs = std::filesystem;

// "2026-12-03 20:41" in local time.
std::string whenText(fs::file_time_type t) {
  auto system = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      t - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
  std::time_t c = std::chrono::system_clock::to_time_t(system);
  std::tm local{};
  localtime_r(&c, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &local);
  return text;
}

std::string sizeText(int64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < 1024 * 1024) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024.0);
  if (bytes < int64_t{1024} * 1024 * 1024) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / 1048576.0);
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / 1073741824.0);
}


}  // namespace

int runsList(const fs::path& storeDir, bool json) {
  if (!storeExists(storeDir)) return 1;
  exec::Store store(storeDir);
  std::vector<exec::StageEntry> entries;
  for (const std::string& h : store.stageHashes()) entries.push_back(store.inspect(h));
  // Stages submitted with `gyrus run --executor slurm`: queued or running there (squeue
  // on the recorded tasks; nothing when Slurm is not installed).
  std::vector<std::string> open;
  for (const exec::StageEntry& e : entries)
    if (e.status != exec::StageEntry::Status::Done) open.push_back(e.hash);
  std::map<std::string, exec::SlurmTask> slurm = exec::slurmTasksInFlight(store, open, exec::SlurmSettings{});
  auto statusOf = [&](const exec::StageEntry& e) {
    auto it = slurm.find(e.hash);
    if (it == slurm.end()) return std::string(exec::toString(e.status));
    const std::string& state = it->second.state;
    if (state == "PENDING") return std::string("queued");
    if (state == "RUNNING" || state == "COMPLETING" || state == "CONFIGURING") return std::string("running");
    std::string lower = state;  // SUSPENDED, REQUEUE_HOLD, STOPPED, ... as Slurm says
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return lower;
  };
  auto slurmWhere = [&](const exec::StageEntry& e) {
    auto it = slurm.find(e.hash);
    return it == slurm.end() ? std::string() : "slurm:" + it->second.id;
  };
  if (json) {
    nlohmann::json j;
    j["store"] = storeDir.string();
    j["stages"] = nlohmann::json::array();
    for (const exec::StageEntry& e : entries) {
      nlohmann::json s = {{"hash", e.hash},    {"name", e.name},   {"kind", e.kind},
                          {"status", statusOf(e)}, {"bytes", e.bytes}, {"when", whenText(e.when)}};
      if (!slurmWhere(e).empty()) s["where"] = slurmWhere(e);
      if (e.record) {
        s["metrics"] = nlohmann::json::array();
        for (const rt::Metric& m : e.record->metrics) s["metrics"].push_back({{"name", m.name}, {"value", m.value}});
        s["seconds"] = e.record->seconds;
        s["device"] = e.record->device;
        s["host"] = e.record->host;
      }
      j["stages"].push_back(std::move(s));
    }
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{:<12}  {:<22} {:<9} {:<10} {:<28} {:>10}  {:<16}  {}\n", "stage", "name", "kind", "status", "metric",
             "size", "when", "where");
  for (const exec::StageEntry& e : entries) {
    std::string metric, where;
    if (e.record && !e.record->metrics.empty())
      metric = fmt::format("{} {:.4f}", e.record->metrics.front().name, e.record->metrics.front().value);
    if (e.record) where = e.record->host.empty() ? e.record->device : e.record->host + " " + e.record->device;
    if (where.empty()) where = slurmWhere(e);
    fmt::print("{:<12}  {:<22} {:<9} {:<10} {:<28} {:>10}  {:<16}  {}\n", e.hash.substr(0, 12), e.name, e.kind,
               statusOf(e), metric, sizeText(e.bytes), whenText(e.when), where);
  }
  return 0;
}

int runsShow(const fs::path& storeDir, const std::string& prefix) {
  if (!storeExists(storeDir)) return 1;
  exec::Store store(storeDir);
  std::string hash = findStage(store, prefix);
  if (hash.empty()) return 1;
  exec::StageEntry e = store.inspect(hash);
  fmt::print("stage   {}\nname    {}\nkind    {}\nstatus  {}\nsize    {}\n", hash, e.name, e.kind,
             exec::toString(e.status), sizeText(e.bytes));
  ir::Stage stage;
  std::vector<std::string> deps;
  std::string error;
  if (store.readStage(hash, stage, deps, error)) {
    for (const std::string& d : deps) fmt::print("after   {}\n", d);
  } else {
    fmt::print("ir      {}\n", error);
  }
  if (e.record) {
    fmt::print("ran     {:.1f} s{}{} on {}\n", e.record->seconds, e.record->resumed ? " (resumed)" : "",
               e.record->host.empty() ? "" : " at " + e.record->host, e.record->device.empty() ? "?" : e.record->device);
    for (const rt::Metric& m : e.record->metrics) fmt::print("  {:<28} {:.6g}\n", m.name, m.value);
  }
  fmt::print("files\n");
  std::vector<std::pair<std::string, int64_t>> files;
  std::error_code ec;
  for (fs::directory_iterator it(store.stageDir(hash), ec), end; !ec && it != end; it.increment(ec))
    files.emplace_back(it->path().filename().string(), it->is_regular_file(ec) ? static_cast<int64_t>(it->file_size(ec)) : 0);
  std::sort(files.begin(), files.end());
  for (const auto& [name, bytes] : files) fmt::print("  {:<28} {:>10}\n", name, sizeText(bytes));
  std::ifstream history(store.stageDir(hash) / "history.jsonl");
  std::string line, last;
  while (std::getline(history, line))
    if (!line.empty()) last = line;
  if (!last.empty()) fmt::print("last epoch  {}\n", last);
  return 0;
}

int runsRemove(const fs::path& storeDir, const std::vector<std::string>& prefixes) {
  if (!storeExists(storeDir)) return 1;
  exec::Store store(storeDir);
  // Every prefix is resolved before anything is removed: a mistyped one removes nothing.
  std::vector<std::string> hashes;
  for (const std::string& prefix : prefixes) hashes.push_back(findStage(store, prefix));
  if (std::find(hashes.begin(), hashes.end(), std::string()) != hashes.end()) {
    fmt::print(stderr, "note: nothing was removed; fix the stage names or hashes above and run it again\n");
    return 1;
  }
  int code = 0;
  for (const std::string& hash : hashes) {
    std::string error;
    if (!store.remove(hash, error)) {
      fmt::print(stderr, "error: cannot remove stage {}: {}\n", hash.substr(0, 12), error);
      code = 1;
    } else {
      fmt::print("removed {}\n", hash.substr(0, 12));
    }
  }
  return code;
}

int runsCollect(const fs::path& storeDir, const std::vector<std::string>& keep, bool dryRun) {
  if (!storeExists(storeDir)) return 1;
  exec::Store store(storeDir);
  std::set<std::string> kept(keep.begin(), keep.end());
  int64_t freed = 0;
  size_t removed = 0;
  int code = 0;
  for (const std::string& hash : store.stageHashes()) {
    if (kept.count(hash)) continue;
    exec::StageEntry e = store.inspect(hash);
    std::string error;
    if (dryRun) {
      fmt::print("would remove {}  {} ({})\n", hash.substr(0, 12), e.name, sizeText(e.bytes));
    } else if (!store.remove(hash, error)) {
      fmt::print(stderr, "error: cannot remove stage {}: {}\n", hash.substr(0, 12), error);
      code = 1;
      continue;
    } else {
      fmt::print("removed {}  {} ({})\n", hash.substr(0, 12), e.name, sizeText(e.bytes));
    }
    freed += e.bytes;
    ++removed;
  }
  fmt::print("{} {} stage{}, {}; {} kept\n", dryRun ? "would remove" : "removed", removed, removed == 1 ? "" : "s",
             sizeText(freed), store.stageHashes().size() - (dryRun ? removed : 0));
  return code;
}

// The stage's hash from its name or a hash prefix; "" after printing why not.
std::string findStage(const exec::Store& store, const std::string& wanted) {
  std::vector<std::string> byName, byHash;
  const bool hexy = wanted.size() >= 6 && wanted.find_first_not_of("0123456789abcdef") == std::string::npos;
  for (const std::string& h : store.stageHashes()) {
    if (hexy && h.rfind(wanted, 0) == 0) byHash.push_back(h);
    if (store.inspect(h).name == wanted) byName.push_back(h);
  }
  const std::vector<std::string>& found = byName.empty() ? byHash : byName;
  if (found.size() == 1) return found.front();
  if (found.empty()) {
    fmt::print(stderr, "error: the store '{}' has no stage named or hashed '{}'\n", store.root().string(), wanted);
    fmt::print(stderr, "note: `gyrus runs ls --store {}` lists its stages\n", store.root().string());
  } else {
    fmt::print(stderr, "error: {} stages of the store '{}' match '{}':\n", found.size(), store.root().string(), wanted);
    for (const std::string& h : found) fmt::print(stderr, "  {}  {}\n", h.substr(0, 12), store.inspect(h).name);
    fmt::print(stderr, "note: give the hash (at least 6 of its digits) of the one you mean\n");
  }
  return {};
}


bool storeExists(const fs::path& store) {
  std::error_code ec;
  if (fs::is_directory(store / "stages", ec)) return true;
  fmt::print(stderr, "error: '{}' is not a run store (it has no stages/ directory)\n", store.string());
  return false;
}

bool readStoredStage(const fs::path& storeDir, const std::string& nameOrHash, StoredStage& out) {
  if (!storeExists(storeDir)) return false;
  exec::Store store(storeDir);
  out.hash = findStage(store, nameOrHash);
  if (out.hash.empty()) return false;
  std::string error;
  if (!store.readStage(out.hash, out.stage, out.deps, error)) {
    fmt::print(stderr, "error: cannot read stage {}: {}\n", out.hash.substr(0, 12), error);
    return false;
  }
  return true;
}

}  // namespace gyrus::driver
