// NIfTI-1 without ITK: the header reader that checks a file and keeps the bytes of one
// volume as they pass (a .nii.gz is decompressed once), their decoder, the
// geometry (qform/sform/fallback affine, orientation codes, reorientation to RAS), and
// the writer. See gyrus/io/Nifti.h for the conventions.
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <unistd.h>

#include "NiftiFormat.h"
#include "gyrus/io/Nifti.h"

namespace gyrus::io {
namespace detail {
namespace {

static_assert(std::endian::native == std::endian::little, "the NIfTI writer assumes a little-endian host");

// Largest volume we agree to decode: 2^31 voxels (8 GiB as float). Anything larger is
// far beyond a brain MRI and most likely a corrupt header.
constexpr int64_t kMaxVoxelsPerVolume = int64_t{1} << 31;

template <typename T>
T load(const unsigned char* raw, size_t offset, bool swapped) {
  unsigned char bytes[sizeof(T)];
  std::memcpy(bytes, raw + offset, sizeof(T));
  if (swapped) std::reverse(bytes, bytes + sizeof(T));
  T v;
  std::memcpy(&v, bytes, sizeof(T));
  return v;
}

struct TypeInfo {
  int16_t code;
  const char* name;
  int bytes;
};

constexpr TypeInfo kTypes[] = {
    {2, "uint8", 1},    {4, "int16", 2},    {8, "int32", 4},     {16, "float32", 4},  {64, "float64", 8},
    {256, "int8", 1},   {512, "uint16", 2}, {768, "uint32", 4},  {1024, "int64", 8},  {1280, "uint64", 8},
};

const char* unsupportedTypeName(int16_t code) {
  switch (code) {
    case 1: return "binary (1 bit)";
    case 32: return "complex64";
    case 128: return "RGB24";
    case 1536: return "float128";
    case 1792: return "complex128";
    case 2048: return "complex256";
    case 2304: return "RGBA32";
    default: return nullptr;
  }
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Sequential reading of a plain or gzip-compressed file. gzip streams are only ever read
// to the end (no seeking), which also verifies their CRC.
class Stream {
 public:
  Stream(const std::string& path, bool gzip) : gzip_(gzip), path_(path) {
    if (gzip) {
      gz_ = gzopen(path.c_str(), "rb");
      if (gz_ != nullptr) gzbuffer(gz_, 1 << 18);
    } else {
      in_.open(path, std::ios::binary);
    }
  }
  ~Stream() {
    if (gz_ != nullptr) gzclose(gz_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  bool opened() const { return gzip_ ? gz_ != nullptr : static_cast<bool>(in_); }

  // Reads up to n bytes; 0 at the end; -1 on a read or decompression error.
  int64_t read(unsigned char* buffer, size_t n) {
    if (gzip_) {
      int got = gzread(gz_, buffer, static_cast<unsigned>(std::min(n, size_t{1} << 30)));
      if (got < 0) return -1;
      position_ += got;
      return got;
    }
    in_.read(reinterpret_cast<char*>(buffer), static_cast<std::streamsize>(n));
    int64_t got = in_.gcount();
    if (in_.bad()) return -1;
    position_ += got;
    return got;
  }

  // Reads exactly n bytes unless the file ends first; returns the count read.
  int64_t readFully(unsigned char* buffer, size_t n) {
    size_t done = 0;
    while (done < n) {
      int64_t got = read(buffer + done, n - done);
      if (got <= 0) break;
      done += static_cast<size_t>(got);
    }
    return static_cast<int64_t>(done);
  }

  // Plain files only: moves to an absolute offset.
  void seek(int64_t offset) {
    in_.clear();
    in_.seekg(offset);
    position_ = offset;
  }

  int64_t position() const { return position_; }

  // The zlib error, if the gzip stream is damaged or truncated.
  std::string gzipError() {
    if (!gzip_ || gz_ == nullptr) return {};
    int errnum = Z_OK;
    const char* message = gzerror(gz_, &errnum);
    if (errnum == Z_OK) return {};
    std::string text = message != nullptr && *message != '\0' ? message : "zlib error " + std::to_string(errnum);
    // zlib prefixes its messages with the path, which the caller prints already.
    if (text.rfind(path_ + ": ", 0) == 0) text.erase(0, path_.size() + 2);
    return "corrupt gzip stream after " + std::to_string(position_) + " decompressed bytes: " + text;
  }

 private:
  bool gzip_;
  std::string path_;
  gzFile gz_ = nullptr;
  std::ifstream in_;
  int64_t position_ = 0;
};

// Counts NaN/Inf values among the float voxels that pass through, in [begin, end) of
// the (decompressed) file; values may straddle chunk boundaries.
class FiniteScan {
 public:
  FiniteScan(int64_t begin, int64_t end, int bytes, bool swapped)
      : begin_(begin), end_(end), bytes_(bytes), swapped_(swapped) {}

  void feed(int64_t offset, const unsigned char* data, int64_t n) {
    int64_t from = std::max(offset, begin_), to = std::min(offset + n, end_);
    for (int64_t p = from; p < to; ++p) {
      value_[fill_++] = data[p - offset];
      if (fill_ == bytes_) {
        fill_ = 0;
        if (swapped_) std::reverse(value_, value_ + bytes_);
        bool finite;
        if (bytes_ == 4) {
          float f;
          std::memcpy(&f, value_, 4);
          finite = std::isfinite(f);
        } else {
          double d;
          std::memcpy(&d, value_, 8);
          finite = std::isfinite(d);
        }
        if (!finite) {
          if (bad_ == 0) first_ = (p + 1 - begin_) / bytes_ - 1;
          ++bad_;
        }
      }
    }
  }
  int64_t bad() const { return bad_; }
  int64_t first() const { return first_; }

 private:
  int64_t begin_, end_;
  int bytes_;
  bool swapped_;
  unsigned char value_[8] = {};
  int fill_ = 0;
  int64_t bad_ = 0, first_ = -1;
};

}  // namespace

bool readHeader(const std::string& path, int64_t volume, Header& h, std::string& error,
                std::vector<unsigned char>* keptBytes) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    error = "no such file";
    return false;
  }
  if (std::filesystem::is_directory(path, ec)) {
    error = "is a directory, not a NIfTI file";
    return false;
  }
  if (!endsWith(path, ".nii") && !endsWith(path, ".nii.gz")) {
    error = "not a NIfTI file name (expected .nii or .nii.gz)";
    return false;
  }
  // gzip or not is decided by the content (the first two bytes), not the name.
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      error = "cannot open the file";
      return false;
    }
    unsigned char magic[2] = {0, 0};
    in.read(reinterpret_cast<char*>(magic), 2);
    if (in.gcount() < 2) {
      error = "the file is shorter than a NIfTI-1 header (" + std::to_string(in.gcount()) + " of 348 bytes)";
      return false;
    }
    h.gzip = magic[0] == 0x1f && magic[1] == 0x8b;
  }

  Stream stream(path, h.gzip);
  if (!stream.opened()) {
    error = "cannot open the file";
    return false;
  }
  unsigned char raw[kHeaderSize] = {};
  const int64_t got = stream.readFully(raw, sizeof raw);
  if (got < kHeaderSize) {
    error = stream.gzipError();
    if (error.empty()) error = "the file is shorter than a NIfTI-1 header (" + std::to_string(got) + " of 348 bytes)";
    return false;
  }

  int32_t sizeofHdr = load<int32_t>(raw, 0, false);
  if (sizeofHdr == kHeaderSize) {
    h.swapped = false;
  } else if (load<int32_t>(raw, 0, true) == kHeaderSize) {
    h.swapped = true;
  } else if (sizeofHdr == 540 || load<int32_t>(raw, 0, true) == 540) {
    error = "this is a NIfTI-2 file (sizeof_hdr 540); only NIfTI-1 is supported";
    return false;
  } else {
    // Show the byte order in which the value looks like a size.
    int32_t shown = sizeofHdr, swappedValue = load<int32_t>(raw, 0, true);
    if ((shown < 0 || shown > 65535) && swappedValue >= 0 && swappedValue <= 65535) shown = swappedValue;
    error = "sizeof_hdr is " + std::to_string(shown) + ", expected 348: not a NIfTI-1 file, or a corrupt header";
    return false;
  }
  const bool sw = h.swapped;
  if (std::memcmp(raw + 344, "n+1\0", 4) != 0) {
    if (std::memcmp(raw + 344, "ni1\0", 4) == 0)
      error = "two-file NIfTI (.hdr + .img) is not supported; convert it to a single .nii file";
    else
      error = "no NIfTI-1 magic 'n+1' at byte 344 (an Analyze 7.5 file, or a corrupt header)";
    return false;
  }
  for (int i = 0; i < 8; ++i) {
    h.dim[i] = load<int16_t>(raw, 40 + 2 * i, sw);
    h.pixdim[i] = load<float>(raw, 76 + 4 * i, sw);
  }
  h.datatype = load<int16_t>(raw, 70, sw);
  h.bitpix = load<int16_t>(raw, 72, sw);
  h.voxOffset = load<float>(raw, 108, sw);
  h.sclSlope = load<float>(raw, 112, sw);
  h.sclInter = load<float>(raw, 116, sw);
  h.xyztUnits = raw[123];
  h.qformCode = load<int16_t>(raw, 252, sw);
  h.sformCode = load<int16_t>(raw, 254, sw);
  for (int i = 0; i < 6; ++i) h.quatern[i] = load<float>(raw, 256 + 4 * i, sw);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) h.srow[r][c] = load<float>(raw, 280 + 16 * r + 4 * c, sw);

  // Dimensions.
  const int ndim = h.dim[0];
  if (ndim < 1 || ndim > 7) {
    error = "dim[0] is " + std::to_string(ndim) + ", expected 1 to 7: corrupt header";
    return false;
  }
  for (int i = 1; i <= ndim; ++i) {
    if (h.dim[i] < 1) {
      error = "dim[" + std::to_string(i) + "] is " + std::to_string(h.dim[i]) + ": sizes must be positive";
      return false;
    }
  }
  for (int i = 5; i <= ndim; ++i) {
    if (h.dim[i] != 1) {
      error = "a " + std::to_string(ndim) + "-D file with dim[" + std::to_string(i) + "] = " + std::to_string(h.dim[i]) +
              " (vector, tensor or multi-echo data) is not supported; gyrus reads 3-D volumes and 4-D series";
      return false;
    }
  }
  for (int i = 0; i < 3; ++i) h.shape[i] = i + 1 <= ndim ? h.dim[i + 1] : 1;
  h.volumes = ndim >= 4 ? h.dim[4] : 1;
  // int16 sizes cannot overflow int64 for 4 axes (32767^4 < 2^63), but the byte count
  // of a volume can be absurd: refuse before anything allocates it.
  h.voxelsPerVolume = h.shape[0] * h.shape[1] * h.shape[2];
  if (h.voxelsPerVolume > kMaxVoxelsPerVolume) {
    error = "the header announces " + std::to_string(h.shape[0]) + "x" + std::to_string(h.shape[1]) + "x" +
            std::to_string(h.shape[2]) + " voxels per volume, more than the 2^31 gyrus accepts: corrupt header?";
    return false;
  }

  // Datatype.
  const TypeInfo* type = nullptr;
  for (const TypeInfo& t : kTypes)
    if (t.code == h.datatype) type = &t;
  if (type == nullptr) {
    const char* name = unsupportedTypeName(h.datatype);
    error = name != nullptr ? "datatype " + std::to_string(h.datatype) + " (" + name +
                                  ") is not supported; gyrus reads scalar integer and float images"
                            : "unknown datatype code " + std::to_string(h.datatype) + ": corrupt header";
    return false;
  }
  h.typeName = type->name;
  h.bytesPerVoxel = type->bytes;

  // Voxel sizes of the spatial axes.
  for (int i = 1; i <= 3; ++i) {
    if (!std::isfinite(h.pixdim[i])) {
      error = "pixdim[" + std::to_string(i) + "] is not finite: corrupt header";
      return false;
    }
    if (h.pixdim[i] == 0.0f && h.shape[i - 1] > 1) {
      error = "pixdim[" + std::to_string(i) + "] (voxel size) is 0";
      return false;
    }
  }

  // Where the data starts and whether it is all there.
  if (!std::isfinite(h.voxOffset) || h.voxOffset < 352.0f || h.voxOffset > 1e12f) {
    error = "vox_offset is " + std::to_string(h.voxOffset) + "; a single-file NIfTI-1 needs at least 352";
    return false;
  }
  h.dataOffset = static_cast<int64_t>(h.voxOffset);
  const int64_t dataBytes = h.voxelsPerVolume * h.volumes * h.bytesPerVoxel;

  // Read the rest: for gzip the whole stream (its length is unknown until then), for a
  // plain file only the selected volume (when it is kept, or float). Float volumes are
  // scanned for NaN/Inf here when their bytes are not kept (ITK's NIfTI library, the
  // other decoder, silently replaces them by 0).
  const bool isFloat = h.typeName == "float32" || h.typeName == "float64";
  const int64_t volumeBytes = h.voxelsPerVolume * h.bytesPerVoxel;
  // (With the bytes kept, the caller checks the decoded values instead.)
  const bool scan = isFloat && volume >= 0 && volume < h.volumes && keptBytes == nullptr;
  const int64_t scanBegin = scan ? h.dataOffset + volume * volumeBytes : 0;
  FiniteScan finite(scanBegin, scan ? scanBegin + volumeBytes : 0, h.bytesPerVoxel, h.swapped);
  int64_t total = 0;
  // The selected volume's bytes, kept as they pass when the caller asks for them.
  const bool keep = keptBytes != nullptr && volume >= 0 && volume < h.volumes;
  const int64_t keepBegin = keep ? h.dataOffset + volume * volumeBytes : 0;
  const int64_t keepEnd = keep ? keepBegin + volumeBytes : 0;
  // The buffer grows with the bytes that really arrive (in order): a header that claims a
  // huge volume in a short file allocates nothing before the length check below.
  if (keep) {
    keptBytes->clear();
    keptBytes->reserve(static_cast<size_t>(std::min<int64_t>(volumeBytes, int64_t{256} << 20)));  // untouched pages
  }
  auto kept = [&](int64_t at, const unsigned char* data, int64_t n) {
    const int64_t from = std::max(at, keepBegin), to = std::min(at + n, keepEnd);
    if (from < to) keptBytes->insert(keptBytes->end(), data + (from - at), data + (to - at));
  };
  std::vector<unsigned char> chunk;
  if (h.gzip || scan) chunk.resize(1 << 20);
  if (h.gzip) {
    // The header's bytes were read already; the chunk is the whole rest of the stream.
    for (;;) {
      const int64_t at = stream.position();
      const int64_t n = stream.read(chunk.data(), chunk.size());
      if (n <= 0) break;
      if (scan) finite.feed(at, chunk.data(), n);
      if (keep) kept(at, chunk.data(), n);
    }
    error = stream.gzipError();
    if (!error.empty()) return false;
    total = stream.position();
  } else {
    std::error_code sizeError;
    total = static_cast<int64_t>(std::filesystem::file_size(path, sizeError));
    if (sizeError) {
      error = "cannot determine the file size: " + sizeError.message();
      return false;
    }
    if (scan && total >= scanBegin + volumeBytes) {
      stream.seek(scanBegin);
      for (int64_t left = volumeBytes; left > 0;) {
        const int64_t at = stream.position();
        const int64_t n = stream.read(chunk.data(), static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(chunk.size()))));
        if (n <= 0) break;
        finite.feed(at, chunk.data(), n);
        if (keep) kept(at, chunk.data(), n);
        left -= n;
      }
    } else if (keep && total >= keepEnd) {  // the file is long enough: one read
      keptBytes->resize(static_cast<size_t>(volumeBytes));
      stream.seek(keepBegin);
      if (stream.readFully(keptBytes->data(), keptBytes->size()) != volumeBytes) {
        error = "cannot read the voxel data";
        return false;
      }
    }
  }
  if (total < h.dataOffset + dataBytes) {
    error = "the data is shorter than the header says: " + std::to_string(h.shape[0]) + "x" +
            std::to_string(h.shape[1]) + "x" + std::to_string(h.shape[2]) +
            (h.volumes > 1 ? "x" + std::to_string(h.volumes) : std::string()) + " " + h.typeName + " needs " +
            std::to_string(dataBytes) + " bytes from offset " + std::to_string(h.dataOffset) + ", the " +
            (h.gzip ? "decompressed " : "") + "file has " + std::to_string(total) + " bytes";
    return false;
  }

  if (finite.bad() > 0) {
    const int64_t f = finite.first();
    error = std::to_string(finite.bad()) + " voxel value" + (finite.bad() == 1 ? " is" : "s are") +
            " NaN or infinite (the first at voxel (" + std::to_string(f % h.shape[0]) + ", " +
            std::to_string((f / h.shape[0]) % h.shape[1]) + ", " + std::to_string(f / (h.shape[0] * h.shape[1])) +
            ") in file order); gyrus does not accept non-finite intensities";
    return false;
  }
  return true;
}

namespace {

template <typename T>
void convertStored(const unsigned char* bytes, size_t count, bool swapped, double slope, double inter,
                   std::vector<float>& out) {
  out.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const T v = load<T>(bytes, i * sizeof(T), swapped);
    out[i] = static_cast<float>(static_cast<double>(v) * slope + inter);
  }
}

}  // namespace

void decodeBytes(const Header& h, const std::vector<unsigned char>& bytes, double slope, double inter,
                 std::vector<float>& out) {
  const auto count = static_cast<size_t>(h.voxelsPerVolume);
  const unsigned char* b = bytes.data();
  const std::string& type = h.typeName;
  if (type == "uint8") convertStored<uint8_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "int8") convertStored<int8_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "int16") convertStored<int16_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "uint16") convertStored<uint16_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "int32") convertStored<int32_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "uint32") convertStored<uint32_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "int64") convertStored<int64_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "uint64") convertStored<uint64_t>(b, count, h.swapped, slope, inter, out);
  else if (type == "float32") convertStored<float>(b, count, h.swapped, slope, inter, out);
  else convertStored<double>(b, count, h.swapped, slope, inter, out);
}

}  // namespace detail

namespace {

using detail::Header;

using Mat3 = std::array<std::array<double, 3>, 3>;

Affine identity() {
  Affine a{};
  for (int i = 0; i < 4; ++i) a[i][i] = 1.0;
  return a;
}

// The qform affine, as the NIfTI-1 standard defines it (qfac = pixdim[0], 0 read as 1).
Affine qformAffine(const Header& h) {
  double b = h.quatern[0], c = h.quatern[1], d = h.quatern[2];
  double a = 1.0 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // A 180-degree rotation: normalise (b, c, d) and take a = 0.
    double n = std::sqrt(b * b + c * c + d * d);
    b /= n;
    c /= n;
    d /= n;
    a = 0.0;
  } else {
    a = std::sqrt(a);
  }
  const double qfac = h.pixdim[0] < 0 ? -1.0 : 1.0;
  const double dx = std::fabs(h.pixdim[1]), dy = std::fabs(h.pixdim[2]), dz = std::fabs(h.pixdim[3]) * qfac;
  Mat3 r = {{{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
             {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
             {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}}};
  Affine m = identity();
  const double scale[3] = {dx, dy, dz};
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) m[i][j] = r[i][j] * scale[j];
    m[i][3] = h.quatern[3 + i];
  }
  return m;
}

bool fileAffine(const Header& h, Affine& m, std::string& error) {
  if (h.sformCode > 0) {
    m = identity();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) m[r][c] = h.srow[r][c];
  } else if (h.qformCode > 0) {
    m = qformAffine(h);
  } else {
    // No transform: voxel sizes about the centre, x flipped (nibabel's base affine).
    m = identity();
    for (int i = 0; i < 3; ++i) {
      double z = std::fabs(h.pixdim[i + 1]);
      if (z == 0.0) z = 1.0;
      m[i][i] = i == 0 ? -z : z;
      m[i][3] = (i == 0 ? 1.0 : -1.0) * static_cast<double>(h.shape[i] - 1) / 2.0 * z;
    }
  }
  const char* which = h.sformCode > 0 ? "sform" : "qform";
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      if (!std::isfinite(m[r][c])) {
        error = std::string("the ") + which + " is not finite: corrupt header";
        return false;
      }
  double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
               m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (det == 0.0 || !std::isfinite(det)) {
    error = std::string("the ") + which + " is singular (its 3x3 part has determinant 0)";
    return false;
  }
  return true;
}

Mat3 inverseTranspose(const Mat3& m) {
  double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
               m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  Mat3 cof{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
      cof[i][j] = (m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]) / det;
    }
  return cof;  // cofactor / det == inverse transposed
}

struct Orientation {
  std::array<int, 3> axis{};    // file axis i runs along world axis axis[i]
  std::array<int, 3> sign{};    // +1 towards R/A/S, -1 towards L/P/I
};

// nibabel's io_orientation: normalise the columns, take the closest rotation (the
// orthogonal polar factor, here by Newton iteration), then give each voxel axis in
// turn the world axis of its largest component, removing that world axis.
Orientation orientationOf(const Affine& a) {
  Mat3 r{};
  for (int j = 0; j < 3; ++j) {
    double norm = std::sqrt(a[0][j] * a[0][j] + a[1][j] * a[1][j] + a[2][j] * a[2][j]);
    if (norm == 0.0) norm = 1.0;
    for (int i = 0; i < 3; ++i) r[i][j] = a[i][j] / norm;
  }
  for (int iter = 0; iter < 100; ++iter) {
    Mat3 it = inverseTranspose(r);
    double change = 0.0;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double next = 0.5 * (r[i][j] + it[i][j]);
        change = std::max(change, std::fabs(next - r[i][j]));
        r[i][j] = next;
      }
    if (!std::isfinite(change) || change < 1e-15) break;
  }
  Orientation o;
  for (int in = 0; in < 3; ++in) {
    int best = 0;
    for (int out = 1; out < 3; ++out)
      if (std::fabs(r[out][in]) > std::fabs(r[best][in])) best = out;
    o.axis[in] = best;
    o.sign[in] = r[best][in] < 0 ? -1 : 1;
    for (int j = 0; j < 3; ++j) r[best][j] = 0.0;
  }
  return o;
}

std::string codeOf(const Orientation& o) {
  static const char labels[3][2] = {{'L', 'R'}, {'P', 'A'}, {'I', 'S'}};
  std::string code(3, '?');
  for (int i = 0; i < 3; ++i) code[static_cast<size_t>(i)] = labels[o.axis[i]][o.sign[i] > 0 ? 1 : 0];
  return code;
}

bool isPermutation(const Orientation& o) {
  std::array<bool, 3> seen{};
  for (int a : o.axis) seen[static_cast<size_t>(a)] = true;
  return seen[0] && seen[1] && seen[2];
}

// Strides of a shape, x fastest.
std::array<int64_t, 3> strides(const std::array<int64_t, 3>& shape) { return {1, shape[0], shape[0] * shape[1]}; }

// For every file voxel (x fastest) calls f(fileIndex, rasIndex).
template <typename F>
void forEachVoxel(const std::array<int64_t, 3>& fileShape, const std::array<int, 3>& rasAxis,
                  const std::array<bool, 3>& flipped, F&& f) {
  std::array<int64_t, 3> rasShape{};
  for (int i = 0; i < 3; ++i) rasShape[static_cast<size_t>(rasAxis[i])] = fileShape[static_cast<size_t>(i)];
  const std::array<int64_t, 3> rs = strides(rasShape);
  // Offset and step in the RAS array of a unit step along each file axis.
  int64_t base = 0;
  std::array<int64_t, 3> step{};
  for (size_t i = 0; i < 3; ++i) {
    int64_t s = rs[static_cast<size_t>(rasAxis[i])];
    if (flipped[i]) {
      base += (fileShape[i] - 1) * s;
      step[i] = -s;
    } else {
      step[i] = s;
    }
  }
  int64_t fileIndex = 0;
  for (int64_t k = 0; k < fileShape[2]; ++k)
    for (int64_t j = 0; j < fileShape[1]; ++j) {
      int64_t ras = base + k * step[2] + j * step[1];
      for (int64_t i = 0; i < fileShape[0]; ++i, ++fileIndex, ras += step[0]) f(fileIndex, ras);
    }
}

bool allFinite(const std::vector<float>& data, const std::array<int64_t, 3>& shape, std::string& error) {
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < data.size(); ++i)
    if (!std::isfinite(data[i])) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  if (bad == 0) return true;
  int64_t x = first % shape[0], y = (first / shape[0]) % shape[1], z = first / (shape[0] * shape[1]);
  error = std::to_string(bad) + " voxel value" + (bad == 1 ? " is" : "s are") + " NaN or infinite (the first at voxel (" +
          std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) +
          ") in file order); gyrus does not accept non-finite intensities";
  return false;
}

/// Runs `body`, which reports its own failures in `error`; running out of memory and
/// internal errors become messages too, so that no exception leaves the library.
template <class Body>
bool reported(std::string& error, Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    error = "out of memory";
    return false;
  } catch (const std::exception& e) {
    error = std::string("internal: ") + e.what();
    return false;
  }
}

}  // namespace

std::string orientationCode(const Affine& affine) { return codeOf(orientationOf(affine)); }

bool readNifti(const std::string& path, const ReadOptions& options, Image& image, std::string& error) {
  return reported(error, [&]() -> bool {
    Header h;
    std::vector<unsigned char> stored;  // the volume's bytes: a .nii.gz is decompressed once
    if (!detail::readHeader(path, options.volume, h, error, &stored)) return false;
    if (options.volume < 0 || options.volume >= h.volumes) {
      error = "volume " + std::to_string(options.volume) + " does not exist: the file has " + std::to_string(h.volumes) +
              " volume" + (h.volumes == 1 ? "" : "s") + " (0 to " + std::to_string(h.volumes - 1) + ")";
      return false;
    }
    Affine affine{};
    if (!fileAffine(h, affine, error)) return false;
    double slope = h.sclSlope, inter = h.sclInter;
    if (slope == 0.0 || !std::isfinite(slope)) {
      slope = 1.0;
      inter = 0.0;
    } else if (!std::isfinite(inter)) {
      error = "scl_slope is valid but scl_inter is not finite: corrupt header";
      return false;
    }

    std::vector<float> fileData;
    if (static_cast<int64_t>(stored.size()) != h.voxelsPerVolume * h.bytesPerVoxel) {
      error = "internal: kept " + std::to_string(stored.size()) + " bytes of the volume, expected " +
              std::to_string(h.voxelsPerVolume * h.bytesPerVoxel);
      return false;
    }
    detail::decodeBytes(h, stored, slope, inter, fileData);
    stored = {};
    if (static_cast<int64_t>(fileData.size()) != h.voxelsPerVolume) {
      error = "internal: decoded " + std::to_string(fileData.size()) + " voxels, expected " +
              std::to_string(h.voxelsPerVolume);
      return false;
    }
    if (!allFinite(fileData, h.shape, error)) return false;

    Orientation o = orientationOf(affine);
    if (!isPermutation(o)) {
      error = "the affine does not determine an orientation";
      return false;
    }
    Image out;
    out.orientation = codeOf(o);
    out.datatype = h.typeName;
    out.slope = slope;
    out.inter = inter;
    out.volumes = h.volumes;
    out.source.present = true;
    out.source.shape = h.shape;
    out.source.affine = affine;
    out.source.qformCode = h.qformCode;
    out.source.sformCode = h.sformCode;
    out.source.pixdim = h.pixdim;
    out.source.quatern = h.quatern;
    out.source.srow = h.srow;
    out.source.xyztUnits = h.xyztUnits;

    if (!options.reorientToRas) {
      out.shape = h.shape;
      for (int i = 0; i < 3; ++i) out.spacing[static_cast<size_t>(i)] = std::fabs(h.pixdim[i + 1]);
      out.affine = affine;
      out.data = std::move(fileData);
      image = std::move(out);
      return true;
    }

    // Reorient: file axis i becomes RAS axis o.axis[i], reversed where it runs towards
    // L, P or I. The new affine is affine * T, where T maps a RAS index to a file index.
    for (size_t i = 0; i < 3; ++i) {
      out.source.rasAxis[i] = o.axis[i];
      out.source.flipped[i] = o.sign[i] < 0;
      out.shape[static_cast<size_t>(o.axis[i])] = h.shape[i];
      out.spacing[static_cast<size_t>(o.axis[i])] = std::fabs(h.pixdim[i + 1]);
    }
    Affine t{};
    t[3][3] = 1.0;
    for (size_t i = 0; i < 3; ++i) {
      size_t w = static_cast<size_t>(o.axis[i]);
      if (o.sign[i] > 0) {
        t[i][w] = 1.0;
      } else {
        t[i][w] = -1.0;
        t[i][3] = static_cast<double>(h.shape[i] - 1);
      }
    }
    for (size_t r = 0; r < 4; ++r)
      for (size_t c = 0; c < 4; ++c) {
        double v = 0.0;
        for (size_t k = 0; k < 4; ++k) v += affine[r][k] * t[k][c];
        out.affine[r][c] = v;
      }
    out.data.resize(fileData.size());
    forEachVoxel(h.shape, out.source.rasAxis, out.source.flipped,
                 [&](int64_t f, int64_t r) { out.data[static_cast<size_t>(r)] = fileData[static_cast<size_t>(f)]; });
    image = std::move(out);
    return true;
  });
}

namespace {

template <typename T>
bool packInteger(const std::vector<float>& values, std::vector<char>& bytes, const char* name, std::string& error) {
  bytes.resize(values.size() * sizeof(T));
  const double lo = static_cast<double>(std::numeric_limits<T>::min());
  const double hi = static_cast<double>(std::numeric_limits<T>::max());
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    if (!(v >= lo && v <= hi) || std::nearbyint(v) != v) {
      error = "voxel " + std::to_string(i) + " has the value " + std::to_string(v) + ", which " + name +
              " cannot hold exactly; write float32";
      return false;
    }
    T t = static_cast<T>(v);
    std::memcpy(bytes.data() + i * sizeof(T), &t, sizeof(T));
  }
  return true;
}

template <typename T>
void store(unsigned char* raw, size_t offset, T v) {
  std::memcpy(raw + offset, &v, sizeof(T));
}

}  // namespace

bool writeNifti(const std::string& path, const Image& image, const WriteOptions& options, std::string& error) {
  return reported(error, [&]() -> bool {
    const int64_t n = image.shape[0] * image.shape[1] * image.shape[2];
    if (image.shape[0] < 1 || image.shape[1] < 1 || image.shape[2] < 1 || static_cast<int64_t>(image.data.size()) != n) {
      error = "the image's data does not match its shape";
      return false;
    }
    for (int64_t s : image.shape)
      if (s > 32767) {
        error = "an axis longer than 32767 voxels does not fit NIfTI-1";
        return false;
      }
    const bool useSource = options.sourceGeometry && image.source.present;
    std::array<int64_t, 3> shape = image.shape;
    const std::vector<float>* values = &image.data;
    std::vector<float> fileOrder;
    if (useSource) {
      std::array<int64_t, 3> expected{};
      for (size_t i = 0; i < 3; ++i) expected[static_cast<size_t>(image.source.rasAxis[i])] = image.source.shape[i];
      if (expected != image.shape) {
        error = "the image's shape no longer matches the file it was read from; write it with sourceGeometry = false";
        return false;
      }
      shape = image.source.shape;
      fileOrder.resize(image.data.size());
      forEachVoxel(shape, image.source.rasAxis, image.source.flipped,
                   [&](int64_t f, int64_t r) { fileOrder[static_cast<size_t>(f)] = image.data[static_cast<size_t>(r)]; });
      values = &fileOrder;
    }

    int16_t datatype = 0, bitpix = 0;
    std::vector<char> bytes;
    if (options.datatype == "float32") {
      datatype = 16;
      bitpix = 32;
      bytes.resize(values->size() * sizeof(float));
      std::memcpy(bytes.data(), values->data(), bytes.size());
    } else if (options.datatype == "uint8") {
      datatype = 2;
      bitpix = 8;
      if (!packInteger<uint8_t>(*values, bytes, "uint8", error)) return false;
    } else if (options.datatype == "int16") {
      datatype = 4;
      bitpix = 16;
      if (!packInteger<int16_t>(*values, bytes, "int16", error)) return false;
    } else if (options.datatype == "int32") {
      datatype = 8;
      bitpix = 32;
      if (!packInteger<int32_t>(*values, bytes, "int32", error)) return false;
    } else {
      error = "cannot write datatype '" + options.datatype + "' (float32, uint8, int16 or int32)";
      return false;
    }

    unsigned char raw[detail::kHeaderSize + 4] = {};
    store<int32_t>(raw, 0, detail::kHeaderSize);
    store<char>(raw, 38, 'r');  // "regular", as the standard suggests
    store<int16_t>(raw, 40, 3);
    for (size_t i = 0; i < 3; ++i) store<int16_t>(raw, 42 + 2 * i, static_cast<int16_t>(shape[i]));
    for (int i = 4; i < 8; ++i) store<int16_t>(raw, 40 + 2 * static_cast<size_t>(i), 1);
    store<int16_t>(raw, 70, datatype);
    store<int16_t>(raw, 72, bitpix);
    store<float>(raw, 108, 352.0f);
    store<float>(raw, 112, 1.0f);  // the values are written unscaled
    store<float>(raw, 116, 0.0f);
    std::array<float, 8> pixdim{};
    if (useSource) {
      const Source& s = image.source;
      pixdim = s.pixdim;
      for (int i = 4; i < 8; ++i) pixdim[static_cast<size_t>(i)] = 1.0f;  // single volume now
      raw[123] = s.xyztUnits;
      store<int16_t>(raw, 252, s.qformCode);
      store<int16_t>(raw, 254, s.sformCode);
      for (size_t i = 0; i < 6; ++i) store<float>(raw, 256 + 4 * i, s.quatern[i]);
      for (size_t r = 0; r < 3; ++r)
        for (size_t c = 0; c < 4; ++c) store<float>(raw, 280 + 16 * r + 4 * c, s.srow[r][c]);
    } else {
      pixdim = {1.0f, 0, 0, 0, 1.0f, 1.0f, 1.0f, 1.0f};
      for (size_t i = 0; i < 3; ++i) pixdim[i + 1] = static_cast<float>(image.spacing[i]);
      raw[123] = 2;            // NIFTI_UNITS_MM
      store<int16_t>(raw, 252, 0);
      store<int16_t>(raw, 254, 1);  // NIFTI_XFORM_SCANNER_ANAT: the affine as given
      for (size_t r = 0; r < 3; ++r)
        for (size_t c = 0; c < 4; ++c) store<float>(raw, 280 + 16 * r + 4 * c, static_cast<float>(image.affine[r][c]));
    }
    for (size_t i = 0; i < 8; ++i) store<float>(raw, 76 + 4 * i, pixdim[i]);
    std::memcpy(raw + 148, "gyrus", 5);  // descrip
    std::memcpy(raw + 344, "n+1\0", 4);

    // Write to a temporary file next to the target, then rename: a reader never sees
    // half a file.
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    const bool gzip = detail::endsWith(path, ".gz");
    bool ok = true;
    if (gzip) {
      gzFile gz = gzopen(tmp.c_str(), "wb6");
      if (gz == nullptr) {
        error = "cannot create the file";
        return false;
      }
      ok = gzwrite(gz, raw, sizeof raw) == static_cast<int>(sizeof raw);
      for (size_t off = 0; ok && off < bytes.size(); off += size_t{1} << 26) {
        unsigned len = static_cast<unsigned>(std::min(bytes.size() - off, size_t{1} << 26));
        ok = gzwrite(gz, bytes.data() + off, len) == static_cast<int>(len);
      }
      ok = (gzclose(gz) == Z_OK) && ok;
    } else {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(raw), sizeof raw);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      out.close();
      ok = static_cast<bool>(out);
    }
    std::error_code ec;
    if (ok) std::filesystem::rename(tmp, path, ec);
    if (!ok || ec) {
      std::filesystem::remove(tmp, ec);
      error = "cannot write the file (disk full or no permission?)";
      return false;
    }
    return true;
  });
}

}  // namespace gyrus::io
