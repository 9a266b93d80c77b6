// Reading NIfTI folder data sets (see Folder.h).
//
// Threads: `threads` workers take files by an atomic counter, in sample order, and
// write each result into its own slot, so the result never depends on the thread
// count or on timing. The calling thread only waits and reports progress. After a
// failure workers take no new files; since files are handed out in order, every file
// before the failing one has been taken and finishes, so the error reported (the first
// failing file in sample order) is the same for every thread count. A data set that
// skips unreadable samples does not stop: every file is read, and a sample with any
// problem is left out (and listed) after all threads are done, in sample order.
#include "Folder.h"

#include "Kernels.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "Errors.h"
#include "Preprocess.h"
#include "VolumeCache.h"
#include "gyrus/io/Nifti.h"

namespace gyrus::rt {

std::string sampleName(const ir::FolderSample& sample) {
  return sample.session.empty() ? sample.subject : sample.subject + "/" + sample.session;
}

namespace {

std::string shapeText(const ir::Shape3& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

/// What a file read for a sample holds: one of its channels, or its mask.
enum class FileRole { Channel, Mask };

/// Reads one file and applies `prefix` (an image) or its spatial operations after
/// binarising (a mask: nearest neighbour), as kernels (Kernels.h). Keeps the shape and spacing as read (RAS order) in `rawShape`,
/// `rawSpacing`.
CachedVolume loadOne(const std::string& path, const ir::Pipeline& prefix, FileRole role) {
  CachedVolume out;
  Volume& v = out.volume;
  v = readVolumeFile(path);
  out.rawShape = v.shape;
  out.rawSpacing = v.spacing;
  if (role == FileRole::Mask) {
    binarize(v);
    kir::LowerOptions labels;
    labels.labels = true;
    v = runPipeline(compilePipeline(prefix, labels), v);
  } else {
    v = runPipeline(compilePipeline(prefix), v);
  }
  return out;
}

std::string spacingText(const std::array<double, 3>& s) {
  std::ostringstream out;
  out << s[0] << "x" << s[1] << "x" << s[2] << " mm";
  return out.str();
}

/// Voxel sizes that agree to float32 header precision (and then some).
bool sameSpacing(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  for (size_t i = 0; i < 3; ++i)
    if (std::abs(a[i] - b[i]) > 1e-4 * std::max(std::abs(a[i]), std::abs(b[i]))) return false;
  return true;
}

}  // namespace

Volume readVolumeFile(const std::string& path, io::Image* header) {
  io::Image image;
  std::string error;
  if (!io::readNifti(path, io::ReadOptions{}, image, error)) throw UserError(path + ": " + error);
  Volume v;
  v.shape = image.shape;
  v.spacing = image.spacing;
  v.data = std::move(image.data);
  image.data.clear();
  for (size_t i = 0; i < 3; ++i)
    if (!(v.spacing[i] > 0.0))
      throw UserError(path + ": the voxel size (pixdim) of axis " + std::to_string(i) +
                      " is 0: corrupt header, or not an image in mm");
  if (header != nullptr) *header = std::move(image);
  return v;
}

/// What a failed read says after its own message: the data set's way past a bad file.
constexpr const char* kSkipHint =
    "note: fix or remove the file, or add skip_unreadable = true to the data set's declaration to leave out the "
    "samples whose files cannot be read (gyrus counts and reports them)";

FolderLoad loadFolder(const ir::DataSource& source, const ir::Pipeline& prefix, const LoadOptions& options) {
  if (source.kind != ir::DataKind::Folder) throw std::invalid_argument("loadFolder: not a folder data source");
  const std::vector<ir::FolderSample>& samples = source.folder.samples;
  const bool skip = source.folder.skipUnreadable;
  const auto channels = static_cast<size_t>(source.channelCount());
  if (channels == 0) throw UserError("the data set declares no channels");
  if (samples.empty())
    throw UserError("the data set at '" + source.folder.root + "' has no samples: check its layout and filters");
  FolderLoad result;
  // Problems found before reading: a sample without all its files, or without a mask.
  std::vector<std::string> problem(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const ir::FolderSample& s = samples[i];
    if (s.files.size() != channels)
      problem[i] = "sample " + sampleName(s) + " has " + std::to_string(s.files.size()) +
                   " file(s) but the data set has " + std::to_string(channels) + " channel(s)";
    else if (options.masks && s.mask.empty())
      problem[i] = "sample " + sampleName(s) + " has no segmentation mask: segmentation needs labels/" +
                   sampleName(s) + "/seg.nii.gz for every sample";
    if (!problem[i].empty() && !skip) throw UserError(problem[i] + "\n" + kSkipHint);
  }
  // Files are read per sample in the order: channels, then the mask (when read).
  const size_t perSample = channels + (options.masks ? 1 : 0);
  const size_t total = samples.size() * perSample;
  auto fileOf = [&](size_t k) -> const std::string& {
    const ir::FolderSample& s = samples[k / perSample];
    size_t c = k % perSample;
    return c < channels ? s.files[c] : s.mask;
  };
  auto roleOf = [&](size_t k) { return k % perSample < channels ? FileRole::Channel : FileRole::Mask; };

  // Streaming: the first readable image tells the size of a preprocessed volume.
  std::filesystem::path cacheDir = options.cache;
  if (options.memoryBudget > 0 && !(options.cache.empty() && options.spill.empty())) {
    for (size_t i = 0; i < samples.size(); ++i) {
      if (!problem[i].empty()) continue;
      try {
        CachedVolume first = loadOne(samples[i].files[0], prefix, FileRole::Channel);
        int64_t bytes = first.volume.numel() * 4 * static_cast<int64_t>(samples.size() * channels);
        if (bytes > options.memoryBudget) {
          result.streamed = true;
          if (cacheDir.empty()) cacheDir = options.spill;
        }
        break;
      } catch (const UserError&) {
        if (!skip) break;  // the main pass reports it in order
      }
    }
  }
  std::optional<VolumeCache> cache;
  if (!cacheDir.empty()) {
    try {
      cache.emplace(cacheDir);
    } catch (const UserError& e) {
      if (result.streamed) throw;  // the cache is where a streamed data set lives
      result.cacheWarning = e.what();
    }
  }

  std::vector<CachedVolume> out(total);
  std::vector<std::filesystem::path> entries(cache ? total : 0);
  std::vector<std::exception_ptr> errors(total);
  std::vector<char> fatal(total, 0);  // an error skipping cannot excuse (the cache's)
  std::atomic<int64_t> hits{0}, writes{0};
  std::mutex warningMutex;
  auto readOne = [&](size_t k) {
    const FileRole role = roleOf(k);
    if (!cache) {
      out[k] = loadOne(fileOf(k), prefix, role);
      return;
    }
    std::string key = VolumeCache::key(fileOf(k), prefix, role == FileRole::Mask);
    entries[k] = cache->pathOf(key);
    // A streamed image stays on disk: its header says all the loader needs.
    const bool streamedImage = result.streamed && role == FileRole::Channel;
    if (cache->load(key, out[k], /*voxels=*/!streamedImage)) {
      ++hits;
    } else {
      out[k] = loadOne(fileOf(k), prefix, role);
      try {
        cache->store(key, out[k]);
        ++writes;
      } catch (const UserError& e) {
        if (result.streamed) {  // the cache is where a streamed data set lives
          fatal[k] = 1;
          throw;
        }
        std::lock_guard lock(warningMutex);
        if (result.cacheWarning.empty()) result.cacheWarning = e.what();
      }
    }
    // Streamed images live on disk only; masks always stay in memory.
    if (result.streamed && role == FileRole::Channel) std::vector<float>().swap(out[k].volume.data);
  };

  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable changed;
  size_t done = 0, finishedWorkers = 0;  // guarded by mutex

  auto work = [&] {
    for (;;) {
      if (stop.load()) break;
      size_t k = next.fetch_add(1);
      if (k >= total) break;
      if (problem[k / perSample].empty()) {
        try {
          readOne(k);
        } catch (...) {
          errors[k] = std::current_exception();
          if (!skip || fatal[k]) stop.store(true);
        }
      }
      {
        std::lock_guard lock(mutex);
        ++done;
      }
      changed.notify_one();
    }
    {
      std::lock_guard lock(mutex);
      ++finishedWorkers;
    }
    changed.notify_one();
  };

  const size_t workers = std::clamp<size_t>(static_cast<size_t>(std::max(1, options.threads)), 1, std::max<size_t>(total, 1));
  std::vector<std::thread> pool;
  pool.reserve(workers);
  std::exception_ptr progressError;
  try {
    for (size_t t = 0; t < workers; ++t) pool.emplace_back(work);
    const bool report = options.progress && static_cast<int64_t>(total) >= kProgressMinVolumes;
    size_t nextDecile = 1;
    std::unique_lock lock(mutex);
    while (finishedWorkers < pool.size()) {
      changed.wait(lock);
      if (!report) continue;
      size_t reached = done * 10 / total;  // deciles completed
      if (reached < nextDecile || stop.load()) continue;
      nextDecile = reached + 1;
      std::string line = "loading " + std::to_string(done) + "/" + std::to_string(total) + " volumes";
      if (result.streamed) line += " (streamed from " + cacheDir.string() + ")";
      lock.unlock();
      try {
        options.progress(line);
      } catch (...) {
        progressError = std::current_exception();
        stop.store(true);
      }
      lock.lock();
    }
  } catch (...) {  // a thread could not be started
    stop.store(true);
    for (std::thread& t : pool) t.join();
    throw;
  }
  for (std::thread& t : pool) t.join();
  if (progressError) std::rethrow_exception(progressError);
  for (size_t k = 0; k < total; ++k) {
    if (!errors[k] || (skip && !fatal[k])) continue;
    if (!fatal[k]) {
      try {
        std::rethrow_exception(errors[k]);
      } catch (const UserError& e) {
        throw UserError(std::string(e.what()) + "\n" + kSkipHint);
      }  // anything else is internal: it propagates
    }
    std::rethrow_exception(errors[k]);
  }

  for (size_t s = 0; s < samples.size(); ++s) {
    const size_t first = s * perSample;
    if (problem[s].empty())
      for (size_t k = first; k < first + perSample; ++k) {
        if (!errors[k]) continue;
        try {
          std::rethrow_exception(errors[k]);
        } catch (const UserError& e) {
          problem[s] = e.what();
        }  // anything else is internal: it propagates
        break;
      }
    if (problem[s].empty()) {
      for (size_t c = 1; c < channels && problem[s].empty(); ++c) {
        const ir::Shape3& a = out[first].rawShape;
        const ir::Shape3& b = out[first + c].rawShape;
        if (a == b) continue;
        std::ostringstream msg;
        msg << "the channels of sample " << sampleName(samples[s])
            << " differ in shape after reorientation to RAS: " << samples[s].files[0] << " is " << shapeText(a) << ", "
            << samples[s].files[c] << " is " << shapeText(b)
            << "; the channels of a sample must lie on one voxel grid (co-registered and resampled alike)";
        problem[s] = msg.str();
      }
    }
    if (problem[s].empty() && options.masks) {
      const CachedVolume& m = out[first + channels];
      const CachedVolume& image = out[first];
      if (m.rawShape != image.rawShape) {
        std::ostringstream msg;
        msg << "the mask of sample " << sampleName(samples[s]) << " does not match its images: " << samples[s].mask
            << " is " << shapeText(m.rawShape) << ", " << samples[s].files[0] << " is " << shapeText(image.rawShape)
            << " (after reorientation to RAS); a mask must have exactly the shape of its sample's images";
        problem[s] = msg.str();
      } else if (!sameSpacing(m.rawSpacing, image.rawSpacing)) {
        std::ostringstream msg;
        msg << "the mask of sample " << sampleName(samples[s]) << " does not match its images: " << samples[s].mask
            << " has voxels of " << spacingText(m.rawSpacing) << ", " << samples[s].files[0] << " of "
            << spacingText(image.rawSpacing) << "; a mask must lie on its sample's voxel grid";
        problem[s] = msg.str();
      }
    }
    if (!problem[s].empty()) {
      if (!skip) throw UserError(problem[s]);
      result.skipped.push_back({sampleName(samples[s]), problem[s]});
      continue;
    }
    result.kept.push_back(s);
    for (size_t k = first; k < first + perSample; ++k) {
      if (roleOf(k) == FileRole::Mask) {
        result.masks.push_back(std::move(out[k].volume));
        continue;
      }
      result.images.push_back(std::move(out[k].volume));
      if (cache) result.entries.push_back(std::move(entries[k]));
    }
  }
  if (result.kept.empty())
    throw UserError("every sample of the data set at '" + source.folder.root + "' was skipped as unreadable; the first: " +
                    result.skipped.front().reason);
  result.cacheHits = hits.load();
  result.cacheWrites = writes.load();
  return result;
}

}  // namespace gyrus::rt
