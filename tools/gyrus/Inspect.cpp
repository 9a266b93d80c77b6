// `gyrus inspect` (see Inspect.h).
#include "Inspect.h"

#include "gyrus/exec/Module.h"

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

std::string joinInts(const std::array<int64_t, 3>& v, const char* sep) {
  return fmt::format("{}{}{}{}{}", v[0], sep, v[1], sep, v[2]);
}

}  // namespace

std::unique_ptr<io::IoModule> loadIoModule() {
  static const exec::ModuleSpec spec{"libgyrus_io.so", "GYRUS_IO", "gyrus_io_create",
                                     "I/O module",     "gyrus_io", io::kIoAbiVersion};
  std::string error;
  std::unique_ptr<io::IoModule> module = exec::loadModule<io::IoModule>(spec, error);
  if (!module) fmt::print(stderr, "error: {}\n", error);
  return module;
}

int runInspect(const std::string& path, bool json, int volume) {
  std::unique_ptr<io::IoModule> module = loadIoModule();
  if (!module) return 2;
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
    // One object literal, its keys in the printed (sorted) order.
    nlohmann::json j = {{"affine", image.affine}, {"datatype", image.datatype}, {"inter", image.inter},
                        {"max", s.max}, {"mean", s.mean}, {"min", s.min}, {"orientation", image.orientation},
                        {"path", path}, {"shape", image.shape}, {"slope", image.slope}, {"spacing", image.spacing},
                        {"std", s.std}, {"volume", volume}, {"volumes", image.volumes}};
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
