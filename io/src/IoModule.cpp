// libgyrus_io.so: the I/O module the driver loads with dlopen (see gyrus/io/IoModule.h).
// Exports only gyrus_io_create; everything else has hidden visibility.
#include "gyrus/io/IoModule.h"

#include <zlib.h>

#include <exception>
#include <new>

#include "ClinicWriter.h"
#include "NiftiFormat.h"

namespace gyrus::io {
namespace {

IoResult fail(IoResult::Status status, std::string message) {
  IoResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

// Messages of the library that start with "internal:" are our bugs, not the file's.
IoResult classify(bool ok, const std::string& error) {
  if (ok) return {};
  if (error.rfind("internal:", 0) == 0) return fail(IoResult::Status::InternalError, error);
  return fail(IoResult::Status::UserError, error);
}

// Runs `fn` with no exception escaping the module: whatever is thrown is our bug.
template <class Fn>
IoResult guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(IoResult::Status::InternalError, e.what());
  } catch (...) {
    return fail(IoResult::Status::InternalError, "unknown exception");
  }
}

class Module final : public IoModule {
 public:
  std::string describe() const override { return detail::itkVersion() + " NiftiImageIO, zlib " + zlibVersion(); }

  IoResult readNifti(const std::string& path, const ReadOptions& options, Image& image) override {
    return guarded([&] {
      std::string error;
      bool ok = io::readNifti(path, options, image, error);
      return classify(ok, error);
    });
  }

  IoResult writeNifti(const std::string& path, const Image& image, const WriteOptions& options) override {
    return guarded([&] {
      std::string error;
      bool ok = io::writeNifti(path, image, options, error);
      return classify(ok, error);
    });
  }

  IoResult synthesize(const SynthRequest& request, SynthSummary& summary) override {
    return guarded([&] { return writeClinic(request, summary); });
  }
};

}  // namespace
}  // namespace gyrus::io

extern "C" __attribute__((visibility("default"))) gyrus::io::IoModule* gyrus_io_create(int abiVersion) {
  if (abiVersion != gyrus::io::kIoAbiVersion) return nullptr;
  try {
    return new gyrus::io::Module();
  } catch (...) {
    return nullptr;
  }
}
