// Loading the driver's on-demand modules (the LibTorch runtime, the ITK I/O module, the
// kernel compiler's LLVM back end) with dlopen, so commands that do not need them never
// pay their start-up. Its own target, gyrus_module, below every layer that loads one.
#pragma once

#include <memory>
#include <string>

namespace gyrus::exec {

/// What identifies one kind of module.
struct ModuleSpec {
  const char* file;      ///< e.g. "libgyrus_runtime.so"
  const char* envVar;    ///< overrides the location, e.g. "GYRUS_RUNTIME"
  const char* entry;     ///< the exported factory, e.g. "gyrus_runtime_create"
  const char* what;      ///< for messages, e.g. "runtime module"
  const char* target;    ///< the CMake target that builds it
  int abiVersion;
};

/// Finds the module ($envVar, else next to the executable, else ../lib/gyrus/), loads
/// it and calls its factory with the ABI version. Returns null with `error` set when it
/// is missing, not a gyrus module, or built for another version. The module stays
/// loaded until exit.
void* loadModule(const ModuleSpec& spec, std::string& error);

/// Typed wrapper: the factory returns a `T*` owned by the caller.
template <class T>
std::unique_ptr<T> loadModule(const ModuleSpec& spec, std::string& error) {
  return std::unique_ptr<T>(static_cast<T*>(loadModule(spec, error)));
}

}  // namespace gyrus::exec
