// The run store (see Store.h).
#include "Store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace gyrus::driver {

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

fs::path Store::prepare(const ir::Stage& stage, const ir::Experiment& ex) {
  fs::path dir = stageDir(stage);
  fs::create_directories(dir);
  fs::path irFile = dir / "stage.ir";
  if (!fs::exists(irFile)) writeFileAtomic(irFile, ir::printStage(stage, ex));
  return dir;
}

StageLock Store::tryLock(const ir::Stage& stage) const {
  StageLock lock;
  fs::path path = stageDir(stage) / "lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    lock.error_ = "cannot open '" + path.string() + "': " + std::strerror(errno);
    return lock;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return lock;
  }
  lock.fd_ = fd;
  return lock;
}

std::optional<StageRecord> Store::load(const ir::Stage& stage) const {
  std::ifstream in(stageDir(stage) / "result.json");
  if (!in) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j["hash"].is_string() || j["hash"] != stage.hash ||
      !j["metrics"].is_array()) {
    return std::nullopt;  // torn or foreign: recompute
  }
  StageRecord r;
  r.seconds = j["seconds"].is_number() ? j["seconds"].get<double>() : 0.0;
  r.resumed = j["resumed"].is_boolean() && j["resumed"].get<bool>();
  for (const auto& m : j["metrics"]) {
    if (!m.is_object() || !m["name"].is_string()) return std::nullopt;
    // A metric that was NaN (e.g. AUROC of a single-class test set) is stored as null.
    double value = m["value"].is_number() ? m["value"].get<double>() : std::nan("");
    r.metrics.push_back({m["name"].get<std::string>(), value});
  }
  return r;
}

void Store::save(const ir::Stage& stage, const StageRecord& record) const {
  nlohmann::json j;
  j["hash"] = stage.hash;
  j["name"] = stage.name;
  j["kind"] = ir::toString(stage.kind);
  j["seconds"] = record.seconds;
  j["resumed"] = record.resumed;
  j["metrics"] = nlohmann::json::array();
  for (const rt::Metric& m : record.metrics) j["metrics"].push_back({{"name", m.name}, {"value", m.value}});
  writeFileAtomic(stageDir(stage) / "result.json", j.dump(2) + "\n");
}

}  // namespace gyrus::driver
