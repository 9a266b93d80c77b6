// Content digests of data files (see FileDigest.h).
#include "FileDigest.h"

#include "gyrus/Sha256.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace gyrus {
namespace {

namespace fs = std::filesystem;

// What identifies one version of a file without reading it.
struct FileKey {
  std::string path;
  int64_t size = 0;
  int64_t mtimeNs = 0;
  int64_t inode = 0;
  bool operator<(const FileKey& o) const {
    return std::tie(path, size, mtimeNs, inode) < std::tie(o.path, o.size, o.mtimeNs, o.inode);
  }
};

// The on-disk cache. Opened on first use; every failure leaves it closed (digests are
// then computed every time).
class DiskCache {
 public:
  ~DiskCache() {
    if (get_ != nullptr) sqlite3_finalize(get_);
    if (put_ != nullptr) sqlite3_finalize(put_);
    if (db_ != nullptr) sqlite3_close(db_);
  }
  std::string lookup(const FileKey& key) {
    if (!open()) return {};
    sqlite3_reset(get_);
    sqlite3_bind_text(get_, 1, key.path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(get_, 2, key.size);
    sqlite3_bind_int64(get_, 3, key.mtimeNs);
    sqlite3_bind_int64(get_, 4, key.inode);
    if (sqlite3_step(get_) != SQLITE_ROW) return {};
    const unsigned char* text = sqlite3_column_text(get_, 0);
    return text != nullptr ? reinterpret_cast<const char*>(text) : std::string();
  }
  void store(const FileKey& key, const std::string& digest) {
    if (!open()) return;
    sqlite3_reset(put_);
    sqlite3_bind_text(put_, 1, key.path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(put_, 2, key.size);
    sqlite3_bind_int64(put_, 3, key.mtimeNs);
    sqlite3_bind_int64(put_, 4, key.inode);
    sqlite3_bind_text(put_, 5, digest.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(put_);  // a busy or read-only cache only costs time
  }

 private:
  bool open() {
    if (tried_) return db_ != nullptr;
    tried_ = true;
    fs::path path = digestCachePath();
    if (path.empty()) return false;
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      close();
      return false;
    }
    sqlite3_busy_timeout(db_, 2000);
    const char* schema =
        "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, "
        "sha256 TEXT)";
    if (sqlite3_exec(db_, schema, nullptr, nullptr, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "SELECT sha256 FROM digests WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
                           -1, &get_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO digests VALUES (?1, ?2, ?3, ?4, ?5)", -1, &put_, nullptr) !=
            SQLITE_OK) {
      close();
      return false;
    }
    return true;
  }
  void close() {
    if (get_ != nullptr) sqlite3_finalize(get_);
    if (put_ != nullptr) sqlite3_finalize(put_);
    if (db_ != nullptr) sqlite3_close(db_);
    get_ = put_ = nullptr;
    db_ = nullptr;
  }
  bool tried_ = false;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
};

struct Cache {
  std::mutex mutex;
  std::map<FileKey, std::string> memory;
  DiskCache disk;
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

fs::path digestCachePath() {
  if (const char* dir = std::getenv("GYRUS_CACHE_DIR"); dir != nullptr && *dir != '\0') return fs::path(dir) / "digests.sqlite";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0')
    return fs::path(xdg) / "gyrus" / "digests.sqlite";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return fs::path(home) / ".cache" / "gyrus" / "digests.sqlite";
  return {};
}

std::string fileDigest(const fs::path& file, std::string& error) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    error = std::strerror(errno);
    return {};
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  FileKey key{absolute.lexically_normal().string(), static_cast<int64_t>(st.st_size),
              static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, static_cast<int64_t>(st.st_ino)};
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (auto it = c.memory.find(key); it != c.memory.end()) return it->second;
    if (std::string digest = c.disk.lookup(key); !digest.empty()) {
      c.memory[key] = digest;
      return digest;
    }
  }
  ir::Sha256 hash;
  if (!hash.updateFromFile(file, error)) return {};
  std::string digest = hash.hex();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.memory[key] = digest;
  c.disk.store(key, digest);
  return digest;
}

}  // namespace gyrus
