// Reading NIfTI folder data sets (see Folder.h).
//
// Threads: `threads` workers take files by an atomic counter, in sample order, and
// write each result into its own slot, so the result never depends on the thread
// count or on timing. The calling thread only waits and reports progress. After a
// failure workers take no new files; since files are handed out in order, every file
// before the failing one has been taken and finishes, so the error reported (the first
// failing file in sample order) is the same for every thread count.
#include "Folder.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "Errors.h"
#include "Preprocess.h"
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
/// binarising (a mask). Stores the shape and spacing as read (RAS order) in `raw`,
/// `rawSpacing`.
Volume loadOne(const std::string& path, const ir::Pipeline& prefix, FileRole role, ir::Shape3& raw,
               std::array<double, 3>& rawSpacing) {
  io::Image image;
  std::string error;
  if (!io::readNifti(path, io::ReadOptions{}, image, error)) throw UserError(path + ": " + error);
  Volume v;
  v.shape = image.shape;
  v.spacing = image.spacing;
  v.data = std::move(image.data);
  raw = v.shape;
  rawSpacing = v.spacing;
  for (size_t i = 0; i < 3; ++i)
    if (!(v.spacing[i] > 0.0))
      throw UserError(path + ": the voxel size (pixdim) of axis " + std::to_string(i) +
                      " is 0: corrupt header, or not an image in mm");
  if (role == FileRole::Mask) {
    binarize(v);
    return applySpatialOps(prefix, std::move(v));
  }
  return applyPipeline(prefix, std::move(v));
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

std::vector<Volume> loadFolder(const ir::DataSource& source, const ir::Pipeline& prefix, const LoadOptions& options,
                               std::vector<Volume>* masks) {
  if (source.kind != ir::DataKind::Folder) throw std::invalid_argument("loadFolder: not a folder data source");
  if (options.masks && masks == nullptr) throw std::invalid_argument("loadFolder: masks requested without a place for them");
  const std::vector<ir::FolderSample>& samples = source.folder.samples;
  const auto channels = static_cast<size_t>(source.channelCount());
  if (channels == 0) throw UserError("the data set declares no channels");
  for (const ir::FolderSample& s : samples) {
    if (s.files.size() != channels)
      throw UserError("sample " + sampleName(s) + " has " + std::to_string(s.files.size()) + " file(s) but the data set has " +
                      std::to_string(channels) + " channel(s)");
    if (options.masks && s.mask.empty())
      throw UserError("sample " + sampleName(s) + " has no segmentation mask: segmentation needs labels/" + sampleName(s) +
                      "/seg.nii.gz for every sample");
  }
  // Files are read per sample in the order: channels, then the mask (when read).
  const size_t perSample = channels + (options.masks ? 1 : 0);
  const size_t total = samples.size() * perSample;
  std::vector<Volume> out(total);
  std::vector<ir::Shape3> raw(total);
  std::vector<std::array<double, 3>> rawSpacing(total);
  std::vector<std::exception_ptr> errors(total);
  auto fileOf = [&](size_t k) -> const std::string& {
    const ir::FolderSample& s = samples[k / perSample];
    size_t c = k % perSample;
    return c < channels ? s.files[c] : s.mask;
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
      try {
        FileRole role = k % perSample < channels ? FileRole::Channel : FileRole::Mask;
        out[k] = loadOne(fileOf(k), prefix, role, raw[k], rawSpacing[k]);
      } catch (...) {
        errors[k] = std::current_exception();
        stop.store(true);
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
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  for (size_t s = 0; s < samples.size(); ++s) {
    const size_t first = s * perSample;
    for (size_t c = 1; c < channels; ++c) {
      const ir::Shape3& a = raw[first];
      const ir::Shape3& b = raw[first + c];
      if (a == b) continue;
      std::ostringstream msg;
      msg << "the channels of sample " << sampleName(samples[s])
          << " differ in shape after reorientation to RAS: " << samples[s].files[0] << " is " << shapeText(a) << ", "
          << samples[s].files[c] << " is " << shapeText(b)
          << "; the channels of a sample must lie on one voxel grid (co-registered and resampled alike)";
      throw UserError(msg.str());
    }
    if (!options.masks) continue;
    const size_t m = first + channels;
    if (raw[m] != raw[first]) {
      std::ostringstream msg;
      msg << "the mask of sample " << sampleName(samples[s]) << " does not match its images: " << samples[s].mask
          << " is " << shapeText(raw[m]) << ", " << samples[s].files[0] << " is " << shapeText(raw[first])
          << " (after reorientation to RAS); a mask must have exactly the shape of its sample's images";
      throw UserError(msg.str());
    }
    if (!sameSpacing(rawSpacing[m], rawSpacing[first])) {
      std::ostringstream msg;
      msg << "the mask of sample " << sampleName(samples[s]) << " does not match its images: " << samples[s].mask
          << " has voxels of " << spacingText(rawSpacing[m]) << ", " << samples[s].files[0] << " of "
          << spacingText(rawSpacing[first]) << "; a mask must lie on its sample's voxel grid";
      throw UserError(msg.str());
    }
  }
  if (!options.masks) return out;
  std::vector<Volume> images;
  images.reserve(samples.size() * channels);
  masks->clear();
  masks->reserve(samples.size());
  for (size_t k = 0; k < total; ++k) (k % perSample < channels ? images : *masks).push_back(std::move(out[k]));
  return images;
}

}  // namespace gyrus::rt
