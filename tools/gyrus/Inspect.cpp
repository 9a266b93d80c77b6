// `gyrus inspect` (see Inspect.h).
#include "Inspect.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/core.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "gyrus/io/IoModule.h"

namespace gyrus::driver {
namespace {

namespace fs = std::filesystem;

fs::path executableDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : exe.parent_path();
}

std::string joinInts(const std::array<int64_t, 3>& v, const char* sep) {
  return fmt::format("{}{}{}{}{}", v[0], sep, v[1], sep, v[2]);
}

}  // namespace

std::unique_ptr<io::IoModule> loadIoModule(std::string& error) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("GYRUS_IO"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  } else {
    candidates.push_back(executableDir() / "libgyrus_io.so");
    candidates.push_back(executableDir() / ".." / "lib" / "gyrus" / "libgyrus_io.so");
  }
  for (const fs::path& p : candidates) {
    if (!fs::exists(p)) continue;
    void* handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = std::string("cannot load the I/O module: ") + dlerror();
      return nullptr;
    }
    using Create = io::IoModule* (*)(int);
    auto create = reinterpret_cast<Create>(dlsym(handle, "gyrus_io_create"));
    if (create == nullptr) {
      error = "'" + p.string() + "' is not a gyrus I/O module";
      return nullptr;
    }
    io::IoModule* module = create(io::kIoAbiVersion);
    if (module == nullptr) {
      error = "'" + p.string() + "' was built for another version of gyrus; rebuild it";
      return nullptr;
    }
    return std::unique_ptr<io::IoModule>(module);
  }
  error = "the I/O module libgyrus_io.so was not found next to the gyrus executable; build the `gyrus_io` "
          "target or set GYRUS_IO to its path";
  return nullptr;
}

int runInspect(const std::string& path, bool json, int volume) {
  std::string error;
  std::unique_ptr<io::IoModule> module = loadIoModule(error);
  if (!module) {
    fmt::print(stderr, "error: {}\n", error);
    return 2;
  }
  io::ReadOptions options;
  options.volume = volume;
  io::Image image;
  io::IoResult result = module->readNifti(path, options, image);
  if (result.status == io::IoResult::Status::UserError) {
    fmt::print(stderr, "error: {}: {}\n", path, result.message);
    return 1;
  }
  if (result.status == io::IoResult::Status::InternalError) {
    fmt::print(stderr, "internal error: {}: {}\nthis is a bug in gyrus; please report it with the file\n", path,
               result.message);
    return 2;
  }
  const io::Stats s = io::computeStats(image.data);
  if (json) {
    nlohmann::json j;
    j["path"] = path;
    j["shape"] = image.shape;
    j["spacing"] = image.spacing;
    j["orientation"] = image.orientation;
    j["datatype"] = image.datatype;
    j["slope"] = image.slope;
    j["inter"] = image.inter;
    j["volume"] = volume;
    j["volumes"] = image.volumes;
    j["affine"] = image.affine;
    j["min"] = s.min;
    j["max"] = s.max;
    j["mean"] = s.mean;
    j["std"] = s.std;
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("{}\n", path);
  fmt::print("  shape        {} (RAS order; {} voxels)\n", joinInts(image.shape, " x "), s.count);
  fmt::print("  spacing      {:g} x {:g} x {:g} mm\n", image.spacing[0], image.spacing[1], image.spacing[2]);
  fmt::print("  orientation  {} (of the file; read as RAS)\n", image.orientation);
  fmt::print("  datatype     {}\n", image.datatype);
  if (image.slope != 1.0 || image.inter != 0.0)
    fmt::print("  scaling      value * {:.7g} + {:.7g}\n", image.slope, image.inter);
  else
    fmt::print("  scaling      none\n");
  if (image.volumes > 1) fmt::print("  volume       {} of {} (0-based)\n", volume, image.volumes);
  fmt::print("  values       min {:.6g}  max {:.6g}  mean {:.6g}  std {:.6g}\n", s.min, s.max, s.mean, s.std);
  return 0;
}

}  // namespace gyrus::driver
