// Content digests of data files, for folder fingerprints.
//
// A folder data set's identity is its content, so the same files hash the same on every
// machine. Hashing terabytes on every `gyrus check` would be slow, so digests are
// cached by (absolute path, size, modification time, inode): in memory for the process,
// and on disk in an SQLite database shared by gyrus processes
// (`$GYRUS_CACHE_DIR/digests.sqlite`, default `$XDG_CACHE_HOME/gyrus` or
// `~/.cache/gyrus`). A changed file changes size or modification time and is hashed
// again; a cache that cannot be opened or written only costs time.
#pragma once

#include <filesystem>
#include <string>

namespace gyrus {

/// Hex SHA-256 of the file's bytes, or "" with `error` set when it cannot be read.
std::string fileDigest(const std::filesystem::path& file, std::string& error);

/// Where the on-disk digest cache lives ("" when no cache directory can be found).
std::filesystem::path digestCachePath();

}  // namespace gyrus
