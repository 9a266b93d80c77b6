// Module loading (see Module.h).
#include "gyrus/exec/Module.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace gyrus::exec {

namespace fs = std::filesystem;

void* loadModule(const ModuleSpec& spec, std::string& error) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv(spec.envVar); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  } else {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    fs::path dir = ec ? fs::current_path() : exe.parent_path();
    candidates.push_back(dir / spec.file);
    candidates.push_back(dir / ".." / "lib" / "gyrus" / spec.file);
  }
  for (const fs::path& p : candidates) {
    if (!fs::exists(p)) continue;
    void* handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = std::string("cannot load the ") + spec.what + ": " + dlerror();
      return nullptr;
    }
    using Create = void* (*)(int);
    auto create = reinterpret_cast<Create>(dlsym(handle, spec.entry));
    if (create == nullptr) {
      error = "'" + p.string() + "' is not a gyrus " + spec.what;
      return nullptr;
    }
    void* module = create(spec.abiVersion);
    if (module == nullptr) {
      error = "'" + p.string() + "' was built for another version of gyrus; rebuild it";
      return nullptr;
    }
    return module;
  }
  if (const char* env = std::getenv(spec.envVar); env != nullptr && *env != '\0') {
    error = std::string("the ") + spec.what + " was not found at " + env + " (" + spec.envVar + ")";
    return nullptr;
  }
  error = std::string("the ") + spec.what + " " + spec.file + " was not found next to the gyrus executable; build the `" +
          spec.target + "` target or set " + spec.envVar + " to its path";
  return nullptr;
}

}  // namespace gyrus::exec
