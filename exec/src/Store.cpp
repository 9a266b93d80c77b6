// The run store (see Store.h).
#include "gyrus/exec/Store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gyrus/IrJson.h"
#include <stdexcept>

namespace gyrus::exec {

namespace fs = std::filesystem;

StageLock::~StageLock() {
  if (fd_ >= 0) {
    flock(fd_, LOCK_UN);
    close(fd_);
  }
}

StageLock& StageLock::operator=(StageLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) {
      flock(fd_, LOCK_UN);
      close(fd_);
    }
    fd_ = o.fd_;
    error_ = std::move(o.error_);
    o.fd_ = -1;
  }
  return *this;
}

void writeFileAtomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write '" + tmp.string() + "'");
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      close(fd);
      unlink(tmp.c_str());
      throw std::runtime_error("cannot write '" + tmp.string() + "'");
    }
    done += static_cast<size_t>(n);
  }
  bool ok = fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok) {
    unlink(tmp.c_str());
    throw std::runtime_error("cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, path);
  // Make the rename itself durable.
  int dir = open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

fs::path Store::prepare(const ir::Stage& stage, const std::vector<std::string>& depHashes) const {
  fs::path dir = stageDir(stage.hash);
  fs::create_directories(dir);
  fs::path file = dir / "stage.json";
  // Written once; a damaged one (a crash of another tool, a hand edit) is replaced.
  ir::Stage stored;
  std::vector<std::string> storedDeps;
  std::string error;
  if (!fs::exists(file) || !readStage(stage.hash, stored, storedDeps, error))
    writeFileAtomic(file, ir::stageToJson(stage, depHashes));
  return dir;
}

bool Store::readStage(const std::string& hash, ir::Stage& stage, std::vector<std::string>& depHashes,
                      std::string& error) const {
  fs::path file = stageDir(hash) / "stage.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = "the store '" + root_.string() + "' has no stage " + hash;
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string why;
  if (!ir::stageFromJson(text.str(), stage, depHashes, why)) {
    error = "'" + file.string() + "' cannot be read: " + why +
            "; `gyrus plan FILE --store " + root_.string() + "` writes it again";
    return false;
  }
  if (stage.hash != hash) {
    error = "'" + file.string() + "' holds stage " + stage.hash + ", not " + hash;
    return false;
  }
  return true;
}

std::vector<std::string> Store::findStages(const std::string& prefix) const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "stages", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) == 0 && fs::exists(it->path() / "stage.json")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

StageLock Store::tryLock(const std::string& hash) const {
  StageLock lock;
  fs::path path = stageDir(hash) / "lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    lock.error_ = "cannot open '" + path.string() + "': " + std::strerror(errno);
    return lock;
  }
  // `gyrus runs ls` probes locks by taking them for an instant: a few short retries keep
  // such a probe from passing for another run.
  for (int attempt = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; ++attempt) {
    if (attempt == 4) {
      close(fd);
      return lock;
    }
    usleep(20000);
  }
  lock.fd_ = fd;
  return lock;
}

std::optional<StageRecord> Store::load(const std::string& hash) const {
  std::ifstream in(stageDir(hash) / "result.json");
  if (!in) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j["hash"].is_string() || j["hash"] != hash || !j["metrics"].is_array()) {
    return std::nullopt;  // torn or foreign: recompute
  }
  StageRecord r;
  r.name = j["name"].is_string() ? j["name"].get<std::string>() : std::string();
  r.kind = j["kind"].is_string() ? j["kind"].get<std::string>() : std::string();
  r.seconds = j["seconds"].is_number() ? j["seconds"].get<double>() : 0.0;
  r.resumed = j["resumed"].is_boolean() && j["resumed"].get<bool>();
  r.runtime = j["runtime"].is_string() ? j["runtime"].get<std::string>() : std::string();
  r.device = j["device"].is_string() ? j["device"].get<std::string>() : std::string();
  r.host = j["host"].is_string() ? j["host"].get<std::string>() : std::string();
  r.deviceName = j["device_name"].is_string() ? j["device_name"].get<std::string>() : std::string();
  r.precision = j["precision"].is_string() ? j["precision"].get<std::string>() : std::string();
  for (const auto& m : j["metrics"]) {
    if (!m.is_object() || !m["name"].is_string()) return std::nullopt;
    double value = m["value"].is_number() ? m["value"].get<double>() : std::nan("");
    r.metrics.push_back({m["name"].get<std::string>(), value});
  }
  return r;
}

void Store::save(const std::string& hash, const StageRecord& record) const {
  nlohmann::json metrics = nlohmann::json::array();
  for (const rt::Metric& m : record.metrics) metrics.push_back({{"name", m.name}, {"value", m.value}});
  // One object literal (nlohmann::json writes its keys sorted).
  nlohmann::json j = {{"device", record.device},       {"device_name", record.deviceName},
                      {"hash", hash},                  {"host", record.host},
                      {"kind", record.kind},           {"metrics", metrics},
                      {"name", record.name},           {"precision", record.precision},
                      {"resumed", record.resumed},     {"runtime", record.runtime},
                      {"seconds", record.seconds}};
  writeFileAtomic(stageDir(hash) / "result.json", j.dump(2) + "\n");
}

std::string_view toString(StageEntry::Status status) {
  switch (status) {
    case StageEntry::Status::Done: return "done";
    case StageEntry::Status::Running: return "running";
    case StageEntry::Status::Incomplete: return "incomplete";
    case StageEntry::Status::Damaged: return "damaged";
  }
  return "?";
}

std::vector<std::string> Store::stageHashes() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "stages", ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

StageEntry Store::inspect(const std::string& hash) const {
  StageEntry e;
  e.hash = hash;
  fs::path dir = stageDir(hash);
  std::error_code ec;
  e.when = fs::last_write_time(dir, ec);
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) e.bytes += static_cast<int64_t>(it->file_size(ec));
  ir::Stage stage;
  std::vector<std::string> deps;
  std::string error;
  bool readable = readStage(hash, stage, deps, error);
  if (readable) {
    e.name = stage.name;
    e.kind = std::string(ir::toString(stage.kind));
  }
  e.record = load(hash);
  if (e.record) {
    e.status = StageEntry::Status::Done;
    if (e.name.empty()) e.name = e.record->name;
    if (e.kind.empty()) e.kind = e.record->kind;
    e.when = fs::last_write_time(dir / "result.json", ec);
    return e;
  }
  // Running: another process holds the lock (the lock file is not created here).
  int fd = open((dir / "lock").c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) e.status = StageEntry::Status::Running;
    close(fd);  // releases the lock if this call took it
  }
  if (e.status != StageEntry::Status::Running && !readable) e.status = StageEntry::Status::Damaged;
  return e;
}

bool Store::remove(const std::string& hash, std::string& error) const {
  fs::path dir = stageDir(hash);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    error = "the store has no stage " + hash;
    return false;
  }
  StageLock lock = tryLock(hash);
  if (!lock.held()) {
    error = lock.error().empty() ? "a gyrus process is running it" : lock.error();
    return false;
  }
  fs::remove_all(dir, ec);
  if (ec) {
    error = ec.message();
    return false;
  }
  return true;
}

}  // namespace gyrus::exec
