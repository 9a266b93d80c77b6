// The boundary between the driver (no ITK) and the I/O module (libgyrus_io.so, ITK).
//
// The driver loads the module with dlopen only for commands that read or write images
// (`gyrus inspect`, `gyrus synth`), so `gyrus check` never loads ITK. Only plain data from gyrus/io/Nifti.h and
// the standard library crosses this boundary, and no exception does: failures come
// back as an IoResult.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gyrus/AbiVersions.h"
#include "gyrus/io/Nifti.h"

namespace gyrus::io {

/// The module ABI version, derived at build time from this header and Nifti.h
/// (cmake/AbiVersions.cmake).
using gyrus::kIoAbiVersion;

struct IoResult {
  enum class Status { Ok, UserError, InternalError };
  Status status = Status::Ok;
  std::string message;  ///< on error: what is wrong with the file (without its path)
  bool ok() const { return status == Status::Ok; }
};

/// What `gyrus synth` writes: the synthetic clinic (runtime/src/Clinic.h) as NIfTI files
/// in one of the FOMO layouts (docs/data.md).
struct SynthRequest {
  std::string out;     ///< output directory: created; must be empty unless `force`
  std::string layout;  ///< fomo60k | fomo25-task1 | fomo25-task2 | fomo25-task3
  int64_t subjects = 16;
  int64_t size = 96;   ///< voxels per axis (1 mm isotropic)
  uint64_t seed = 1;
  std::vector<std::string> sites{"a", "b"};  ///< subject i is scanned at sites[i % size]
  double lesionContrast = 1.0;  ///< share of a finding's contrast the images show (ClinicOptions)
  double lesionSize = 1.0;      ///< scale of infarcts and meningiomas (ClinicOptions)
  double ageEffect = 1.0;       ///< scale of every effect of age (ClinicOptions)
  bool force = false;  ///< write into a non-empty directory (files of the same name are replaced)
  int threads = 0;     ///< subjects generated in parallel; 0: one per core (at most 8)
  std::string command;    ///< the command line, recorded in README.txt
  std::string generator;  ///< e.g. "gyrus 0.1.0", recorded in README.txt
  /// Called after each subject (from any worker, never concurrently); may be empty.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct SynthSummary {
  int64_t subjects = 0;
  int64_t files = 0;   ///< every file written, README.txt and sites.tsv included
  int64_t bytes = 0;   ///< their total size
  double seconds = 0;  ///< wall time
};

class IoModule {
 public:
  virtual ~IoModule() = default;
  /// One line: the library versions that decode images.
  virtual std::string describe() const = 0;
  virtual IoResult readNifti(const std::string& path, const ReadOptions& options, Image& image) = 0;
  virtual IoResult writeNifti(const std::string& path, const Image& image, const WriteOptions& options) = 0;
  /// Writes a synthetic clinic. UserError for a bad request (message without a path
  /// prefix) or a file that cannot be written (the message names it).
  virtual IoResult synthesize(const SynthRequest& request, SynthSummary& summary) = 0;
};

}  // namespace gyrus::io

/// The module's single exported entry point. Returns nullptr when `abiVersion` does not
/// match the module's kIoAbiVersion. The caller owns the result.
extern "C" gyrus::io::IoModule* gyrus_io_create(int abiVersion);
