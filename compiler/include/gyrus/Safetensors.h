// The safetensors file format (https://github.com/huggingface/safetensors), read and
// written without LibTorch: the checker reads a file's header to check `weights(...)`
// against an encoder, the runtime reads and writes the tensors.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON (one entry per tensor:
// "dtype", "shape", "data_offsets" [begin, end) relative to the data that follows, and
// an optional "__metadata__" object of strings), then the tensors' bytes, little-endian,
// row-major, without gaps or overlaps.
//
// Example:
//   st::Header h;
//   std::string error;
//   if (!st::readHeader("encoder.safetensors", h, error)) ...;
//   for (const st::TensorInfo& t : h.tensors) ...;  // in file order
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace gyrus::st {

/// The element types gyrus reads (others are reported as unsupported).
enum class DType { F64, F32, F16, BF16 };

/// "F32", ...; `dtypeFromName` returns false for a type gyrus does not read.
const char* dtypeName(DType t);
bool dtypeFromName(const std::string& name, DType& out);
size_t dtypeSize(DType t);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte offsets into the data section
  int64_t elements() const;
};

struct Header {
  std::vector<TensorInfo> tensors;  ///< in the order of their data
  std::map<std::string, std::string> metadata;
  uint64_t dataStart = 0;  ///< file offset of the data section (8 + header length)
  const TensorInfo* find(const std::string& name) const;
};

/// Reads and validates the header of `path`: a readable file, a sane header length, valid
/// JSON, every tensor with a known dtype, a shape whose size matches its byte range, ranges
/// that tile the data section exactly (which must end where the file does). On failure
/// returns false and sets `error` to one sentence naming what is wrong.
bool readHeader(const std::filesystem::path& path, Header& out, std::string& error);

/// Reads the raw little-endian bytes of one tensor of a file whose header is `header`.
bool readTensorBytes(const std::filesystem::path& path, const Header& header, const TensorInfo& tensor,
                     std::vector<char>& bytes, std::string& error);

/// A tensor to write: its name, type, shape and bytes (little-endian, row-major).
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

/// Writes a safetensors file atomically (a temporary file renamed over `path`): tensors in
/// the given order, the header padded with spaces to a multiple of 8 bytes.
bool write(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata, std::string& error);

}  // namespace gyrus::st
