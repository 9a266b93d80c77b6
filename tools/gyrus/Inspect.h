// `gyrus inspect PATH`: what gyrus reads from a NIfTI file (shape in RAS order, spacing,
// the file's orientation code, datatype, scaling, statistics of the scaled values).
// The reading happens in the I/O module (libgyrus_io.so, ITK), loaded with dlopen.
#pragma once

#include <memory>
#include <string>

#include "gyrus/io/IoModule.h"

namespace gyrus::driver {

/// Loads libgyrus_io.so: $GYRUS_IO, else next to the executable, else ../lib/gyrus/
/// relative to it (the module stays loaded until exit). nullptr, with `error: <why>` on
/// stderr, when it is missing or was built for another version of gyrus.
std::unique_ptr<io::IoModule> loadIoModule();

/// Prints a human summary, or one JSON object with `json`, on stdout. Returns the exit
/// code: 0 ok, 1 the file cannot be read (`error: <path>: <reason>` on stderr),
/// 2 internal error (e.g. the I/O module cannot be loaded).
int runInspect(const std::string& path, bool json, int volume);

}  // namespace gyrus::driver
