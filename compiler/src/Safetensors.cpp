#include "gyrus/Safetensors.h"

#include "gyrus/Printable.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace gyrus::st {
namespace {

using Json = nlohmann::json;

// A header longer than this is not a weights file (the format's own limit is 100 MB).
constexpr uint64_t kMaxHeader = 100u << 20;
// Far more tensors than any encoder has (a U-Net B has 60, a ViT-L about 300).
constexpr size_t kMaxTensors = 100000;

constexpr struct {
  DType type;
  const char* name;
  size_t size;
} kTypes[] = {{DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}};

uint64_t readLe64(const unsigned char* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

}  // namespace

const char* dtypeName(DType t) {
  for (const auto& k : kTypes)
    if (k.type == t) return k.name;
  return "?";
}

bool dtypeFromName(const std::string& name, DType& out) {
  for (const auto& k : kTypes) {
    if (name == k.name) {
      out = k.type;
      return true;
    }
  }
  return false;
}

size_t dtypeSize(DType t) {
  for (const auto& k : kTypes)
    if (k.type == t) return k.size;
  return 0;
}

int64_t TensorInfo::elements() const {
  uint64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(s), &n) || n > (uint64_t{1} << 62)) return -1;
  return static_cast<int64_t>(n);
}

const TensorInfo* Header::find(const std::string& name) const {
  for (const TensorInfo& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

bool readHeader(const std::filesystem::path& path, Header& out, std::string& error) {
  out = Header{};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path.string() + "': " + std::strerror(errno);
    return false;
  }
  std::error_code ec;
  const uint64_t fileSize = std::filesystem::file_size(path, ec);
  if (ec) {
    error = "cannot read '" + path.string() + "': " + ec.message();
    return false;
  }
  unsigned char lenBytes[8];
  if (fileSize < 8 || !in.read(reinterpret_cast<char*>(lenBytes), 8)) {
    error = "'" + path.string() + "' is not a safetensors file: it is shorter than its 8-byte header length";
    return false;
  }
  const uint64_t n = readLe64(lenBytes);
  if (n < 2 || n > kMaxHeader || n > fileSize - 8) {
    error = "'" + path.string() + "' is not a safetensors file: its header length (" + std::to_string(n) +
            " bytes) does not fit the file (" + std::to_string(fileSize) + " bytes)";
    return false;
  }
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) {
    error = "cannot read the header of '" + path.string() + "'";
    return false;
  }
  Json header = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) {
    error = "'" + path.string() + "' is not a safetensors file: its header is not a JSON object";
    return false;
  }
  if (header.size() > kMaxTensors) {
    error = "'" + path.string() + "' holds " + std::to_string(header.size()) + " entries; an encoder has at most " +
            std::to_string(kMaxTensors) + " tensors";
    return false;
  }
  out.dataStart = 8 + n;
  const uint64_t dataSize = fileSize - out.dataStart;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) {
        error = "'" + path.string() + "': __metadata__ must be an object of strings";
        return false;
      }
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          error = "'" + path.string() + "': __metadata__ entry '" + m.key() + "' is not a string";
          return false;
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "'" + path.string() + "': tensor '" + printable(key) + "'";
    if (printable(key) != key) {
      error = where + " has control characters in its name";
      return false;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets") ||
        !v["dtype"].is_string() || !v["shape"].is_array() || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2) {
      error = where + " needs \"dtype\", \"shape\" and \"data_offsets\" [begin, end]";
      return false;
    }
    TensorInfo t;
    t.name = key;
    const std::string dtype = v["dtype"].get<std::string>();
    if (!dtypeFromName(dtype, t.dtype)) {
      error = where + " has element type " + dtype + "; gyrus reads F32, F64, F16 and BF16";
      return false;
    }
    for (const Json& s : v["shape"]) {
      if (!s.is_number_unsigned() || s.get<uint64_t>() > (1ull << 40)) {
        error = where + " has an invalid shape";
        return false;
      }
      t.shape.push_back(static_cast<int64_t>(s.get<uint64_t>()));
    }
    const Json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      error = where + " has invalid data_offsets";
      return false;
    }
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    uint64_t bytes = 0;
    if (t.elements() < 0 ||
        __builtin_mul_overflow(static_cast<uint64_t>(t.elements()), dtypeSize(t.dtype), &bytes) || t.end < t.begin ||
        t.end > dataSize || t.end - t.begin != bytes) {
      error = where + " has data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
              ") that do not match its shape and type, or lie outside the file (truncated?)";
      return false;
    }
    out.tensors.push_back(std::move(t));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t at = 0;
  for (const TensorInfo& t : out.tensors) {
    if (t.begin != at) {
      error = "'" + path.string() + "': the tensors' data do not tile the data section (tensor '" + t.name +
              "' starts at byte " + std::to_string(t.begin) + ", expected " + std::to_string(at) + ")";
      return false;
    }
    at = t.end;
  }
  if (at != dataSize) {
    error = "'" + path.string() + "': " + std::to_string(dataSize - at) +
            " bytes after the last tensor's data (not a safetensors file, or damaged)";
    return false;
  }
  return true;
}

bool readTensorBytes(const std::filesystem::path& path, const Header& header, const TensorInfo& tensor,
                     std::vector<char>& bytes, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  bytes.assign(tensor.end - tensor.begin, 0);
  if (!in || !in.seekg(static_cast<std::streamoff>(header.dataStart + tensor.begin)) ||
      !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    error = "cannot read tensor '" + tensor.name + "' of '" + path.string() + "'";
    return false;
  }
  return true;
}

bool write(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
           const std::map<std::string, std::string>& metadata, std::string& error) {
  Json header = Json::object();
  uint64_t at = 0;
  std::set<std::string> names;
  for (const TensorData& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second) {
      error = "tensor name '" + t.name + "' is reserved or repeated";
      return false;
    }
    TensorInfo info;
    info.shape = t.shape;
    if (info.elements() < 0 || static_cast<uint64_t>(info.elements()) * dtypeSize(t.dtype) != t.bytes) {
      error = "tensor '" + t.name + "': its bytes do not match its shape";
      return false;
    }
    header[t.name] = {{"dtype", dtypeName(t.dtype)}, {"shape", t.shape}, {"data_offsets", {at, at + t.bytes}}};
    at += t.bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    unsigned char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorData& t : tensors) out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.bytes));
    out.flush();
    if (!out) {
      error = "cannot write '" + tmp.string() + "': " + std::strerror(errno);
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    error = "cannot write '" + path.string() + "': " + ec.message();
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

}  // namespace gyrus::st
