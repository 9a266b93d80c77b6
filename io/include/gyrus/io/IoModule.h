// The boundary between the driver (no ITK) and the I/O module (libgyrus_io.so, ITK).
//
// The driver loads the module with dlopen only for commands that read images (`gyrus
// inspect`), so `gyrus check` never loads ITK. Only plain data from gyrus/io/Nifti.h and
// the standard library crosses this boundary, and no exception does: failures come
// back as an IoResult.
#pragma once

#include <string>

#include "gyrus/io/Nifti.h"

namespace gyrus::io {

/// Bumped whenever this header or Nifti.h changes in a way that breaks the module ABI.
inline constexpr int kIoAbiVersion = 1;

struct IoResult {
  enum class Status { Ok, UserError, InternalError };
  Status status = Status::Ok;
  std::string message;  ///< on error: what is wrong with the file (without its path)
  bool ok() const { return status == Status::Ok; }
};

class IoModule {
 public:
  virtual ~IoModule() = default;
  /// One line: the library versions that decode images.
  virtual std::string describe() const = 0;
  virtual IoResult readNifti(const std::string& path, const ReadOptions& options, Image& image) = 0;
  virtual IoResult writeNifti(const std::string& path, const Image& image, const WriteOptions& options) = 0;
};

}  // namespace gyrus::io

/// The module's single exported entry point. Returns nullptr when `abiVersion` does not
/// match the module's kIoAbiVersion. The caller owns the result.
extern "C" gyrus::io::IoModule* gyrus_io_create(int abiVersion);
