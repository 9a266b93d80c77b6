// An on-disk cache of preprocessed volumes, keyed by content.
//
// A folder data set's files go through the deterministic prefix of a pipeline (read,
// reorient to RAS, resample, crop, z-score, ...) before training sees them. That work
// is the same every time the same file meets the same prefix, so its result is stored
// under a key that hashes exactly those inputs:
//   SHA-256( format version, the file's bytes, the prefix's operations with every
//            parameter, whether the file is an image or a mask )
// The file's path, name and modification time are not part of the key: a renamed or
// copied file hits, an edited one misses. Entries are raw float32 with a small header
// (shape and voxel size after the prefix, and as read), written to a temporary file and
// renamed into place, so a killed writer never leaves a torn entry and concurrent
// writers of one key are harmless. An entry that fails validation (wrong magic, version
// or size, or a CRC-32 of its voxels that does not match) is a miss and gets rewritten;
// one that goes bad while a streamed run reads it is an error naming it.
//
// Layout: <dir>/<first two hex digits>/<key>.vol. Nothing is ever evicted: remove the
// directory to reclaim the space (docs/data.md says how much an entry takes).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include "gyrus/clinic/Synth.h"
#include "gyrus/Ir.h"

namespace gyrus::rt {

/// A preprocessed volume and the shape and voxel size its file had as read (RAS order),
/// which the loader needs to check a sample's channels and mask against each other.
struct CachedVolume {
  Volume volume;
  ir::Shape3 rawShape{0, 0, 0};
  std::array<double, 3> rawSpacing{0.0, 0.0, 0.0};
};

class VolumeCache {
 public:
  /// A cache in `dir` (created when missing). Throws UserError when it cannot be created.
  explicit VolumeCache(std::filesystem::path dir);

  /// The key of `file` after `prefix` (see the file comment). Reads the whole file.
  /// Throws UserError when the file cannot be read.
  static std::string key(const std::string& file, const ir::Pipeline& prefix, bool mask);

  /// The entry's path (it may not exist).
  std::filesystem::path pathOf(const std::string& key) const;

  /// Reads the entry `key` into `out`. False on a miss or an invalid entry. With
  /// `voxels = false` only the header is read (and checked against the file's size):
  /// `out.volume` gets its shape and spacing but no data (for streaming).
  bool load(const std::string& key, CachedVolume& out, bool voxels = true) const;

  /// Writes `v` as the entry `key` (atomically). Throws UserError when the disk refuses.
  void store(const std::string& key, const CachedVolume& v) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

/// Reads the voxels of the cache entry at `path`, which must hold `voxels` values, into
/// `dst`. Throws UserError (naming the entry) when it is missing, short or invalid.
void readCachedVoxels(const std::filesystem::path& path, int64_t voxels, float* dst);

/// Bytes of an entry of `voxels` voxels on disk.
int64_t cacheEntryBytes(int64_t voxels);

}  // namespace gyrus::rt
