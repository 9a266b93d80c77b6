// SHA-256, the one hash gyrus uses for identities: stage hashes, data fingerprints, file
// content digests and volume cache keys. OpenSSL underneath; no OpenSSL type here.
//
// Example:
//   ir::Sha256 h;
//   h.update("gyrus-volume 2\n");
//   std::string error;
//   if (!h.updateFromFile(path, error)) ...;
//   std::string hex = h.hex();  // 64 lowercase hex digits
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace gyrus::ir {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(const void* data, size_t size);
  Sha256& update(std::string_view text) { return update(text.data(), text.size()); }
  /// Adds the bytes of a file, read 1 MiB at a time; false with `error` (the system's
  /// reason) when it cannot be opened or read.
  bool updateFromFile(const std::filesystem::path& path, std::string& error);
  /// The digest as hex; the object is finished afterwards.
  std::string hex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Hex SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

}  // namespace gyrus::ir
