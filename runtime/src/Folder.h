// Reading a NIfTI folder data set (`ir::FolderData`, resolved by the checker) into
// memory: every file of every sample through gyrus_nifti (scaling, reorientation to
// RAS, spacing), then the deterministic pipeline prefix per channel. Torch-free; the
// runtime module links it (and with it ITK) statically.
//
// Memory: by default the preprocessed data set is held in memory (and then copied,
// volume by volume, into one tensor; see buildDataset): samples x channels x voxels x 4
// bytes, plus one raw volume per reader thread. At 96^3 that is 3.5 MB a volume: 1,000
// scans take 3.5 GB, all of FOMO60K (60,529 scans) would take 214 GB. When the data set
// would exceed `LoadOptions::memoryBudget`, the volumes are written to a volume cache
// (VolumeCache.h) instead and only their shapes are kept: training then streams them
// from disk a batch at a time (Dataset::rows).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gyrus/clinic/Synth.h"
#include "gyrus/Ir.h"
#include "gyrus/io/Nifti.h"

namespace gyrus::rt {

struct LoadOptions {
  /// Reader threads (values below 1 mean 1). Files are handed out in sample order; the
  /// result does not depend on the thread count.
  int threads = 1;
  /// Progress lines ("loading 1200/12000 volumes", every ~10 % of a load of at least
  /// kProgressMinVolumes volumes), always called on the calling thread. May be empty.
  std::function<void(std::string_view)> progress;
  /// Also read every sample's segmentation mask (FolderSample::mask; see loadFolder).
  bool masks = false;
  /// The volume cache shared by runs (`gyrus run --volume-cache DIR`); empty: none.
  std::filesystem::path cache;
  /// Bytes the preprocessed images may take in memory; 0: no limit. A larger data set
  /// is streamed: its volumes go to `cache`, or to `spill` when no cache is set, and
  /// only their shapes and voxel sizes stay in memory. Masks are never streamed.
  int64_t memoryBudget = 0;
  /// Where a streamed data set goes when `cache` is empty (e.g. a directory of the
  /// stage; the caller removes it). Empty: the data set is never streamed.
  std::filesystem::path spill;

  /// `threads` readers and `progress`, nothing else.
  static LoadOptions reading(int threads, std::function<void(std::string_view)> progress = {}) {
    LoadOptions o;
    o.threads = threads;
    o.progress = std::move(progress);
    return o;
  }
};

/// Loads of fewer volumes than this report no progress.
inline constexpr int64_t kProgressMinVolumes = 50;

/// A sample's name for messages: "sub_1/ses_1", or "sub_1" without a session.
std::string sampleName(const ir::FolderSample& sample);

/// Reads one NIfTI file as the loader reads it: oriented to RAS (io::readNifti), its
/// voxel sizes checked. With `header`, the file's header and geometry are kept there (its
/// data moved into the result). Throws UserError naming the file.
Volume readVolumeFile(const std::string& path, io::Image* header = nullptr);

/// What loadFolder read.
struct FolderLoad {
  /// kept.size() x channelCount() volumes, sample after sample, a sample's channels in
  /// channel order (volume k is channel k % channels of kept sample k / channels). When
  /// `streamed`, their `data` are empty and `entries` says where they are.
  std::vector<Volume> images;
  /// With LoadOptions::masks: one per kept sample.
  std::vector<Volume> masks;
  /// The cache entry of every image (empty when no cache was used).
  std::vector<std::filesystem::path> entries;
  /// Indices (into FolderData::samples) of the samples read, ascending: every sample,
  /// unless the data set skips unreadable ones.
  std::vector<size_t> kept;
  /// The samples skipped, in sample order, each with the error it would have raised
  /// (only with FolderData::skipUnreadable).
  std::vector<ir::SkippedSample> skipped;
  /// The images exceeded LoadOptions::memoryBudget and were left on disk.
  bool streamed = false;
  /// Volumes found in the cache / written to it.
  int64_t cacheHits = 0, cacheWrites = 0;
  /// Why the cache could not be written (the first failure), when the load went on
  /// without it; empty otherwise.
  std::string cacheWarning;
};

/// Reads every file of `source` (kind Folder) and applies `prefix` (deterministic
/// operations only) to each. Each volume keeps the spacing it has after `prefix` (the
/// file's voxel size, or the resample target). With a cache (LoadOptions::cache), every
/// volume is looked up there first and written there after a miss.
///
/// With `options.masks`, every sample's mask (FolderSample::mask) is read too:
/// reoriented to RAS like the images, binarised (1 where the value is above 0.5), then
/// given the spatial operations of `prefix` only (applySpatialOps: crop with zero
/// padding, nearest-neighbour resampling; z-score and clip skip it), so that it stays on
/// its images' grid. A sample's files are read in the order channels, then mask; the
/// loader's guarantees (sample order, independence of the thread count) cover masks.
///
/// Errors: a missing, unreadable or corrupt file (naming the file and the reader's
/// reason; the first such file in sample order, whatever the thread count); a sample
/// whose number of files is not channelCount(), or without a mask when masks are read; a
/// sample whose channels differ in shape after reorientation (naming its files and both
/// shapes); a mask whose shape (after reorientation) or voxel size differs from its
/// sample's images. Each throws UserError, unless the data set was declared with
/// `skip_unreadable = true` (FolderData::skipUnreadable): then the sample is left out
/// and listed in `skipped` with the message, and only a data set with no sample left
/// throws. A cache that cannot be written is an error when the data set is streamed
/// (it is where the volumes go); otherwise the load goes on without storing and says why
/// in `cacheWarning`.
///
/// Example:
///   ir::DataSource src;  src.kind = ir::DataKind::Folder;  src.folder = ...;
///   FolderLoad l = loadFolder(src, prefix, LoadOptions::reading(4));
FolderLoad loadFolder(const ir::DataSource& source, const ir::Pipeline& prefix, const LoadOptions& options);

}  // namespace gyrus::rt
