// The on-disk cache of preprocessed volumes (see VolumeCache.h).
#include "VolumeCache.h"

#include "Kernels.h"

#include <zlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>

#include "Errors.h"
#include "gyrus/Sha256.h"

namespace gyrus::rt {

namespace {

namespace fs = std::filesystem;

/// Bumped whenever the entry format or the meaning of a prefix's operations changes
/// (e.g. a different resampling kernel): old entries then miss instead of lying.
constexpr uint32_t kFormatVersion = 2;
constexpr char kMagic[8] = {'G', 'Y', 'R', 'U', 'S', 'V', 'O', 'L'};

/// The fixed-size part of an entry, followed by `voxels` float32 values.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t crc;  ///< CRC-32 of the voxels' bytes
  int64_t shape[3];
  double spacing[3];
  int64_t rawShape[3];
  double rawSpacing[3];
  int64_t voxels;
};
static_assert(sizeof(Header) == 120, "the entry header must not depend on the compiler's padding");

/// Every parameter of every operation, in order, in a text that changes whenever one does
/// (the IR's print: numbers in their shortest exact form).
std::string describe(const ir::Pipeline& prefix) { return ir::print(prefix); }

bool readAll(std::ifstream& in, void* dst, size_t bytes) {
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes));
  return static_cast<size_t>(in.gcount()) == bytes;
}

/// A header that describes an entry of exactly `fileBytes` bytes, with sane values (a
/// damaged header must not make the reader allocate what it claims).
bool validHeader(const Header& h, uintmax_t fileBytes) {
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.version != kFormatVersion) return false;
  for (int i = 0; i < 3; ++i) {
    if (h.shape[i] <= 0 || h.shape[i] > 4096 || h.rawShape[i] <= 0 || h.rawShape[i] > 4096) return false;
    if (!(std::isfinite(h.spacing[i]) && h.spacing[i] > 0) || !(std::isfinite(h.rawSpacing[i]) && h.rawSpacing[i] > 0))
      return false;
  }
  return h.voxels == h.shape[0] * h.shape[1] * h.shape[2] &&
         fileBytes == sizeof(Header) + static_cast<uintmax_t>(h.voxels) * sizeof(float);
}

uint32_t crcOf(const float* data, size_t count) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* bytes = reinterpret_cast<const Bytef*>(data);
  size_t left = count * sizeof(float);
  while (left > 0) {  // zlib takes uInt lengths
    auto chunk = static_cast<uInt>(std::min<size_t>(left, size_t{1} << 30));
    crc = crc32(crc, bytes, chunk);
    bytes += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

uintmax_t sizeOf(const fs::path& path) {
  std::error_code ec;
  uintmax_t size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace

VolumeCache::VolumeCache(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw UserError("cannot create the volume cache '" + dir_.string() + "': " +
                    (ec ? ec.message() : std::string("not a directory")) + "; choose another with --volume-cache");
}

std::string VolumeCache::key(const std::string& file, const ir::Pipeline& prefix, bool mask) {
  ir::Sha256 hash;
  // The digest of the reading and preprocessing code (set by the build), so that a
  // changed resampler or reader never serves volumes the old code made.
  // And the back end that runs the kernels (the JIT's vectorised maths may differ from
  // the interpreter's in the last bits).
  hash.update("gyrus-volume " + std::to_string(kFormatVersion) + " " + GYRUS_PREPROCESS_DIGEST +
              (mask ? " mask\n" : " image\n") + describe(prefix) + "\n" + kernelBackend() + "\n");
  std::string error;
  if (!hash.updateFromFile(file, error)) throw UserError(file + ": cannot read the file: " + error);
  return hash.hex();
}

fs::path VolumeCache::pathOf(const std::string& key) const { return dir_ / key.substr(0, 2) / (key + ".vol"); }

bool VolumeCache::load(const std::string& key, CachedVolume& out, bool voxels) const {
  const fs::path path = pathOf(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  Header h{};
  if (!readAll(in, &h, sizeof h) || !validHeader(h, sizeOf(path))) return false;
  CachedVolume v;
  for (int i = 0; i < 3; ++i) {
    v.volume.shape[static_cast<size_t>(i)] = h.shape[i];
    v.volume.spacing[static_cast<size_t>(i)] = h.spacing[i];
    v.rawShape[static_cast<size_t>(i)] = h.rawShape[i];
    v.rawSpacing[static_cast<size_t>(i)] = h.rawSpacing[i];
  }
  if (voxels) {
    v.volume.data.resize(static_cast<size_t>(h.voxels));
    if (!readAll(in, v.volume.data.data(), v.volume.data.size() * sizeof(float))) return false;
    if (crcOf(v.volume.data.data(), v.volume.data.size()) != h.crc) return false;  // damaged voxels
  }
  out = std::move(v);
  return true;
}

void VolumeCache::store(const std::string& key, const CachedVolume& v) const {
  fs::path path = pathOf(key);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.crc = crcOf(v.volume.data.data(), v.volume.data.size());
  for (int i = 0; i < 3; ++i) {
    h.shape[i] = v.volume.shape[static_cast<size_t>(i)];
    h.spacing[i] = v.volume.spacing[static_cast<size_t>(i)];
    h.rawShape[i] = v.rawShape[static_cast<size_t>(i)];
    h.rawSpacing[i] = v.rawSpacing[static_cast<size_t>(i)];
  }
  h.voxels = v.volume.numel();
  if (static_cast<size_t>(h.voxels) != v.volume.data.size())
    throw std::logic_error("VolumeCache::store: the volume's data do not match its shape");
  // A name no other writer (thread, process, or host sharing the directory) uses;
  // rename() replaces atomically.
  static std::atomic<uint64_t> counter{0};
  static const std::string unique = [] {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    std::random_device random;
    return std::string(host) + "." + std::to_string(::getpid()) + "." + std::to_string(random());
  }();
  fs::path temp = path;
  temp += ".tmp." + unique + "." + std::to_string(counter.fetch_add(1));
  {
    std::ofstream f(temp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&h), sizeof h);
    f.write(reinterpret_cast<const char*>(v.volume.data.data()),
            static_cast<std::streamsize>(v.volume.data.size() * sizeof(float)));
    f.close();
    if (!f) {
      fs::remove(temp, ec);
      throw UserError("cannot write to the volume cache '" + dir_.string() +
                      "' (disk full or not writable): free space, or choose another with --volume-cache");
    }
  }
  fs::rename(temp, path, ec);
  if (ec) {
    std::string why = ec.message();
    fs::remove(temp, ec);
    throw UserError("cannot write to the volume cache '" + dir_.string() + "': " + why +
                    "; check its permissions, or choose another with --volume-cache");
  }
}

void readCachedVoxels(const fs::path& path, int64_t voxels, float* dst) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("the cached volume " + path.string() + " has disappeared: do not remove the volume cache "
                           "while a run uses it; rerun to rebuild it");
  Header h{};
  if (!readAll(in, &h, sizeof h) || !validHeader(h, sizeOf(path)) || h.voxels != voxels ||
      !readAll(in, dst, static_cast<size_t>(voxels) * sizeof(float)) || crcOf(dst, static_cast<size_t>(voxels)) != h.crc)
    throw UserError("the cached volume " + path.string() + " is damaged: remove it and rerun");
}

int64_t cacheEntryBytes(int64_t voxels) { return static_cast<int64_t>(sizeof(Header)) + voxels * 4; }

}  // namespace gyrus::rt
