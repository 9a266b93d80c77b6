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
#include <atomic>
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

/// Reads one file and applies `prefix`. Stores the shape as read (RAS order) in `raw`.
Volume loadOne(const std::string& path, const ir::Pipeline& prefix, ir::Shape3& raw) {
  io::Image image;
  std::string error;
  if (!io::readNifti(path, io::ReadOptions{}, image, error)) throw UserError(path + ": " + error);
  Volume v;
  v.shape = image.shape;
  v.spacing = image.spacing;
  v.data = std::move(image.data);
  raw = v.shape;
  for (size_t i = 0; i < 3; ++i)
    if (!(v.spacing[i] > 0.0))
      throw UserError(path + ": the voxel size (pixdim) of axis " + std::to_string(i) +
                      " is 0: corrupt header, or not an image in mm");
  return applyPipeline(prefix, std::move(v));
}

}  // namespace

std::vector<Volume> loadFolder(const ir::DataSource& source, const ir::Pipeline& prefix, const LoadOptions& options) {
  if (source.kind != ir::DataKind::Folder) throw std::invalid_argument("loadFolder: not a folder data source");
  const std::vector<ir::FolderSample>& samples = source.folder.samples;
  const auto channels = static_cast<size_t>(source.channelCount());
  if (channels == 0) throw UserError("the data set declares no channels");
  for (const ir::FolderSample& s : samples)
    if (s.files.size() != channels)
      throw UserError("sample " + sampleName(s) + " has " + std::to_string(s.files.size()) + " file(s) but the data set has " +
                      std::to_string(channels) + " channel(s)");
  const size_t total = samples.size() * channels;
  std::vector<Volume> out(total);
  std::vector<ir::Shape3> raw(total);
  std::vector<std::exception_ptr> errors(total);

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
        out[k] = loadOne(samples[k / channels].files[k % channels], prefix, raw[k]);
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

  for (size_t s = 0; s < samples.size(); ++s)
    for (size_t c = 1; c < channels; ++c) {
      const ir::Shape3& a = raw[s * channels];
      const ir::Shape3& b = raw[s * channels + c];
      if (a == b) continue;
      std::ostringstream msg;
      msg << "the channels of sample " << sampleName(samples[s])
          << " differ in shape after reorientation to RAS: " << samples[s].files[0] << " is " << shapeText(a) << ", "
          << samples[s].files[c] << " is " << shapeText(b)
          << "; the channels of a sample must lie on one voxel grid (co-registered and resampled alike)";
      throw UserError(msg.str());
    }
  return out;
}

}  // namespace gyrus::rt
