// Reading a NIfTI folder data set (`ir::FolderData`, resolved by the checker) into
// memory: every file of every sample through gyrus_nifti (scaling, reorientation to
// RAS, spacing), then the deterministic pipeline prefix per channel. Torch-free; the
// runtime module links it (and with it ITK) statically.
//
// Memory: the whole preprocessed data set is held in memory (and then copied, volume by
// volume, into one tensor; see buildDataset): samples x channels x voxels x 4 bytes,
// plus one raw volume per reader thread. At 96^3 that is 3.5 MB a volume: 1,000 scans
// take 3.5 GB, all of FOMO60K (60,529 scans) would take 214 GB. Crop early in the
// pipeline; data sets larger than memory need a streaming loader (not yet there).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "Synth.h"
#include "gyrus/Ir.h"

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
};

/// Loads of fewer volumes than this report no progress.
inline constexpr int64_t kProgressMinVolumes = 50;

/// A sample's name for messages: "sub_1/ses_1", or "sub_1" without a session.
std::string sampleName(const ir::FolderSample& sample);

/// Reads every file of `source` (kind Folder) and applies `prefix` (deterministic
/// operations only) to each: the result holds count() x channelCount() volumes, sample
/// after sample, a sample's channels in channel order (volume k is channel
/// k % channels of sample k / channels). Each volume keeps the spacing it has after
/// `prefix` (the file's voxel size, or the resample target).
///
/// With `options.masks`, every sample's mask (FolderSample::mask) is read too, into
/// `*masks` (one per sample, in sample order): reoriented to RAS like the images,
/// binarised (1 where the value is above 0.5), then given the spatial operations of
/// `prefix` only (applySpatialOps: crop with zero padding, nearest-neighbour resampling;
/// z-score and clip skip it), so that it stays on its images' grid. A sample's files
/// are read in the order channels, then mask; the loader's guarantees (sample order,
/// independence of the thread count) cover masks as well.
///
/// Throws UserError, naming the file and the reader's reason, for a missing, unreadable
/// or corrupt file (the first such file in sample order, whatever the thread count); for
/// a sample whose number of files is not channelCount(), or without a mask when masks
/// are read; for a sample whose channels differ in shape after reorientation (naming its
/// files and both shapes); and for a mask whose shape (after reorientation) or voxel
/// size differs from its sample's images (naming the mask, the first channel's file and
/// both shapes or voxel sizes). Throws std::invalid_argument when `options.masks` is set
/// and `masks` is null.
///
/// Example:
///   ir::DataSource src;  src.kind = ir::DataKind::Folder;  src.folder = ...;
///   std::vector<Volume> v = loadFolder(src, prefix, LoadOptions{.threads = 4});
std::vector<Volume> loadFolder(const ir::DataSource& source, const ir::Pipeline& prefix, const LoadOptions& options,
                               std::vector<Volume>* masks = nullptr);

}  // namespace gyrus::rt
