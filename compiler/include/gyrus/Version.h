// Versions of gyrus and of the things that make stage results reusable.
#pragma once

namespace gyrus {

/// The gyrus release.
inline constexpr const char* kVersion = "0.1.0";
/// Bumped whenever a stage's meaning changes for the same IR (a runtime change that
/// alters results): it is part of every stage hash, so old results are not reused.
inline constexpr const char* kIrVersion = "2";

}  // namespace gyrus
