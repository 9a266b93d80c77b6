// The NIfTI reader and writer (gyrus_nifti) against values computed by nibabel
// (tests/io/fixtures/make_nifti_fixtures.py -> nifti.json) on real files in
// tests/data/real-mri/, and against corrupt files made from those at run time.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "NiftiFormat.h"  // the reader's decoder and ITK's (internal to gyrus_nifti)
#include "gyrus/io/Nifti.h"

namespace fs = std::filesystem;
using gyrus::io::Affine;
using gyrus::io::Image;
using gyrus::io::ReadOptions;
using gyrus::io::WriteOptions;

namespace {

const fs::path kData = fs::path(GYRUS_SOURCE_DIR) / "tests" / "data" / "real-mri";

const nlohmann::json& fixtures() {
  static const nlohmann::json j = [] {
    std::ifstream in(fs::path(GYRUS_SOURCE_DIR) / "tests" / "io" / "fixtures" / "nifti.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

const nlohmann::json& fixture(const std::string& file, int volume = 0) {
  for (const auto& c : fixtures()["cases"])
    if (c["file"] == file && c["volume"] == volume) return c;
  FAIL("no fixture for " << file);
  static nlohmann::json none;
  return none;
}

Image mustRead(const fs::path& path, ReadOptions options = {}) {
  Image image;
  std::string error;
  bool ok = gyrus::io::readNifti(path.string(), options, image, error);
  INFO(path.string() << ": " << error);
  REQUIRE(ok);
  return image;
}

// A fresh directory for the files a test makes; removed at exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("gyrus_io_tests_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::vector<char> readBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void writeBytes(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<char> gunzip(const fs::path& p) {
  gzFile gz = gzopen(p.c_str(), "rb");
  REQUIRE(gz != nullptr);
  std::vector<char> out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  gzclose(gz);
  return out;
}

// Expects readNifti to fail with a message containing `needle`.
void expectError(const fs::path& path, const std::string& needle, ReadOptions options = {}) {
  Image image;
  std::string error;
  bool ok = gyrus::io::readNifti(path.string(), options, image, error);
  INFO(path.filename().string() << ": " << error);
  CHECK_FALSE(ok);
  CHECK(error.find(needle) != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
}

double relTol(double expected, double rel) { return std::max(1e-6, std::fabs(expected) * rel); }

void checkAffine(const Affine& a, const nlohmann::json& expected, double tol) {
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 4; ++c) {
      INFO("affine[" << r << "][" << c << "]");
      CHECK(std::fabs(a[r][c] - expected[r][c].get<double>()) <= tol);
    }
}

}  // namespace

TEST_CASE("every fixture file reads as nibabel reads it (RAS, scaled)") {
  for (const auto& c : fixtures()["cases"]) {
    const std::string file = c["file"];
    const int volume = c["volume"];
    SUBCASE((file + " volume " + std::to_string(volume)).c_str()) {
      ReadOptions options;
      options.volume = volume;
      Image image = mustRead(kData / file, options);
      CHECK(image.orientation == c["orientation"].get<std::string>());
      CHECK(image.datatype == c["datatype"].get<std::string>());
      CHECK(std::fabs(image.slope - c["slope"].get<double>()) <= 1e-12);
      CHECK(std::fabs(image.inter - c["inter"].get<double>()) <= 1e-12);
      const auto& fileShape = c["file_shape"];
      CHECK(image.volumes == (fileShape.size() > 3 ? fileShape[3].get<int64_t>() : 1));
      for (size_t i = 0; i < 3; ++i) {
        CHECK(image.shape[i] == c["shape"][i].get<int64_t>());
        CHECK(std::fabs(image.spacing[i] - c["spacing"][i].get<double>()) <= 1e-9);
      }
      checkAffine(image.affine, c["affine"], 1e-9);
      gyrus::io::Stats s = gyrus::io::computeStats(image.data);
      CHECK(std::fabs(s.min - c["min"].get<double>()) <= relTol(c["min"], 1e-6));
      CHECK(std::fabs(s.max - c["max"].get<double>()) <= relTol(c["max"], 1e-6));
      CHECK(std::fabs(s.mean - c["mean"].get<double>()) <= relTol(c["mean"], 1e-6));
      CHECK(std::fabs(s.std - c["std"].get<double>()) <= relTol(c["std"], 1e-6));
      for (const auto& sample : c["samples"]) {
        int64_t i = sample["ijk"][0], j = sample["ijk"][1], k = sample["ijk"][2];
        double expected = sample["value"];
        double got = image.data[static_cast<size_t>(i + image.shape[0] * (j + image.shape[1] * k))];
        INFO("voxel (" << i << ", " << j << ", " << k << ")");
        CHECK(std::fabs(got - expected) <= relTol(expected, 1e-6));
      }
    }
  }
}

TEST_CASE("without reorientation the file's own shape and affine are kept") {
  for (const char* file : {"ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz", "stroke_cstar_T1_T2_FLAIR/T2.nii.gz"}) {
    const auto& c = fixture(file);
    ReadOptions options;
    options.reorientToRas = false;
    Image image = mustRead(kData / file, options);
    for (size_t i = 0; i < 3; ++i) CHECK(image.shape[i] == c["file_shape"][i].get<int64_t>());
    checkAffine(image.affine, c["file_affine"], 1e-9);
    CHECK(gyrus::io::orientationCode(image.affine) == c["orientation"].get<std::string>());
  }
}

TEST_CASE("orientation codes follow nibabel's aff2axcodes") {
  Affine a{};
  a[0][0] = -1;  // i runs to the left
  a[1][1] = -1;  // j posterior
  a[2][2] = 1;
  a[3][3] = 1;
  CHECK(gyrus::io::orientationCode(a) == "LPS");
  // The 256^3 conformed "LIA" layout (i left, j inferior, k anterior).
  Affine lia{};
  lia[0][0] = -1;
  lia[2][1] = -1;
  lia[1][2] = 1;
  lia[3][3] = 1;
  CHECK(gyrus::io::orientationCode(lia) == "LIA");
}

TEST_CASE("a 4-D file: each volume can be selected, and only existing ones") {
  const fs::path file = kData / "edge_cases/nibabel_example4d.nii.gz";
  ReadOptions second;
  second.volume = 1;
  Image v0 = mustRead(file);
  Image v1 = mustRead(file, second);
  CHECK(v0.volumes == 2);
  CHECK(v0.data != v1.data);
  ReadOptions third;
  third.volume = 2;
  expectError(file, "volume 2 does not exist: the file has 2 volumes", third);
  ReadOptions negative;
  negative.volume = -1;
  expectError(kData / "ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz", "volume -1 does not exist", negative);
}

TEST_CASE("write -> read keeps the input's shape and affine exactly (masks on the input grid)") {
  TempDir dir;
  for (const char* file : {"stroke_clinical_tutorial_T2_lesion/lesionT2.nii.gz", "ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz",
                           "edge_cases/nibabel_anatomical_bigendian.nii", "edge_cases/nibabel_example4d.nii.gz"}) {
    SUBCASE(file) {
      ReadOptions fileOrder;
      fileOrder.reorientToRas = false;
      Image original = mustRead(kData / file, fileOrder);
      Image ras = mustRead(kData / file);
      // A "prediction" on the RAS volume: threshold at the mean, as a mask.
      const double mean = gyrus::io::computeStats(ras.data).mean;
      Image mask = ras;
      for (float& v : mask.data) v = v > mean ? 1.0f : 0.0f;
      for (const char* name : {"mask.nii.gz", "mask.nii"}) {
        std::string error;
        WriteOptions w;
        w.datatype = "uint8";
        REQUIRE_MESSAGE(gyrus::io::writeNifti((dir / name).string(), mask, w, error), error);
        Image back = mustRead(dir / name, fileOrder);
        CHECK(back.shape == original.shape);
        CHECK(back.affine == original.affine);  // exactly
        CHECK(back.orientation == original.orientation);
        CHECK(back.datatype == "uint8");
        CHECK(back.volumes == 1);
        // Read again in RAS: the mask lines up with the RAS image voxel for voxel.
        Image backRas = mustRead(dir / name);
        CHECK(backRas.affine == ras.affine);
        CHECK(backRas.data == mask.data);
      }
      // float32 keeps the (scaled) intensities exactly.
      std::string error;
      REQUIRE_MESSAGE(gyrus::io::writeNifti((dir / "image.nii.gz").string(), ras, {}, error), error);
      Image back = mustRead(dir / "image.nii.gz");
      CHECK(back.data == ras.data);
      CHECK(back.affine == ras.affine);
      CHECK(back.datatype == "float32");
      CHECK(back.slope == 1.0);
    }
  }
}

TEST_CASE("an image without a source file is written with its affine as the sform") {
  TempDir dir;
  Image image;
  image.shape = {4, 3, 2};
  image.spacing = {1.5, 2.0, 2.5};
  image.affine = Affine{{{0.0, 0.0, 2.5, -10.25}, {-1.5, 0.0, 0.0, 20.5}, {0.0, 2.0, 0.0, -7.0}, {0.0, 0.0, 0.0, 1.0}}};
  image.data.resize(24);
  for (size_t i = 0; i < image.data.size(); ++i) image.data[i] = static_cast<float>(i) - 3.5f;
  std::string error;
  REQUIRE_MESSAGE(gyrus::io::writeNifti((dir / "synthetic.nii.gz").string(), image, {}, error), error);
  ReadOptions fileOrder;
  fileOrder.reorientToRas = false;
  Image back = mustRead(dir / "synthetic.nii.gz", fileOrder);
  CHECK(back.shape == image.shape);
  CHECK(back.affine == image.affine);  // every entry is exact in float32
  CHECK(back.spacing == image.spacing);
  CHECK(back.data == image.data);
  CHECK(back.orientation == "PSR");  // i runs posterior, j superior, k right
}

TEST_CASE("the writer refuses values its datatype cannot hold") {
  TempDir dir;
  Image image = mustRead(kData / "stroke_cstar_T1_T2_FLAIR/T2.nii.gz");  // slope 2.008: not integral
  std::string error;
  WriteOptions w;
  w.datatype = "uint8";
  CHECK_FALSE(gyrus::io::writeNifti((dir / "t2.nii.gz").string(), image, w, error));
  CHECK(error.find("cannot hold exactly; write float32") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "t2.nii.gz"));
  w.datatype = "complex64";
  CHECK_FALSE(gyrus::io::writeNifti((dir / "t2.nii.gz").string(), image, w, error));
  CHECK(error.find("cannot write datatype 'complex64'") != std::string::npos);
  image.data.pop_back();
  CHECK_FALSE(gyrus::io::writeNifti((dir / "t2.nii.gz").string(), image, {}, error));
  CHECK(error.find("does not match its shape") != std::string::npos);
}

// ---- corrupt inputs: each is a one-line error, never a crash or a huge allocation ----

namespace {

// The big-endian test file, uncompressed: patch header fields in its own byte order.
std::vector<char> bigEndianBytes() { return readBytes(kData / "edge_cases/nibabel_anatomical_bigendian.nii"); }

void putBigEndian16(std::vector<char>& b, size_t offset, int16_t v) {
  b[offset] = static_cast<char>((v >> 8) & 0xff);
  b[offset + 1] = static_cast<char>(v & 0xff);
}

void putBigEndian32(std::vector<char>& b, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[offset + static_cast<size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
}

}  // namespace

TEST_CASE("corrupt: missing, empty, misnamed files and directories") {
  TempDir dir;
  expectError(dir / "absent.nii.gz", "no such file");
  writeBytes(dir / "empty.nii", {});
  expectError(dir / "empty.nii", "shorter than a NIfTI-1 header (0 of 348 bytes)");
  fs::create_directories(dir / "folder.nii");
  expectError(dir / "folder.nii", "is a directory");
  fs::copy_file(kData / "edge_cases/nibabel_anatomical_bigendian.nii", dir / "image.img");
  expectError(dir / "image.img", "expected .nii or .nii.gz");
}

TEST_CASE("corrupt: truncated and damaged gzip streams") {
  TempDir dir;
  std::vector<char> gz = readBytes(kData / "ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz");
  std::vector<char> half(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  writeBytes(dir / "half.nii.gz", half);
  expectError(dir / "half.nii.gz", "corrupt gzip stream after");
  {
    Image image;
    std::string error;
    CHECK_FALSE(gyrus::io::readNifti((dir / "half.nii.gz").string(), {}, image, error));
    CHECK(error.find("unexpected end of file") != std::string::npos);
    CHECK(error.find("half.nii.gz") == std::string::npos);  // the caller names the file
  }
  std::vector<char> tiny(gz.begin(), gz.begin() + 40);  // not even a whole header
  writeBytes(dir / "tiny.nii.gz", tiny);
  expectError(dir / "tiny.nii.gz", "corrupt gzip stream");
  std::vector<char> damaged = gz;
  for (size_t i = damaged.size() / 2; i < damaged.size() / 2 + 64; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
  writeBytes(dir / "damaged.nii.gz", damaged);
  expectError(dir / "damaged.nii.gz", "corrupt gzip stream");
  std::vector<char> badCrc = gz;
  badCrc[badCrc.size() - 6] = static_cast<char>(badCrc[badCrc.size() - 6] ^ 0x01);  // CRC32 of the trailer
  writeBytes(dir / "crc.nii.gz", badCrc);
  expectError(dir / "crc.nii.gz", "corrupt gzip stream");
}

TEST_CASE("corrupt: header fields") {
  TempDir dir;
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian32(b, 0, 349);
    writeBytes(dir / "sizeof.nii", b);
    expectError(dir / "sizeof.nii", "sizeof_hdr is 349, expected 348");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian32(b, 0, 540);
    writeBytes(dir / "nifti2.nii", b);
    expectError(dir / "nifti2.nii", "NIfTI-2");
  }
  {
    std::vector<char> b = bigEndianBytes();
    std::memcpy(b.data() + 344, "ni1\0", 4);
    writeBytes(dir / "pair.nii", b);
    expectError(dir / "pair.nii", "two-file NIfTI");
    std::memcpy(b.data() + 344, "xyz\0", 4);
    writeBytes(dir / "magic.nii", b);
    expectError(dir / "magic.nii", "no NIfTI-1 magic");
  }
  {
    // 32767^3 voxels: must be refused before anything allocates them.
    std::vector<char> b = bigEndianBytes();
    for (size_t i = 0; i < 3; ++i) putBigEndian16(b, 42 + 2 * i, 32767);
    writeBytes(dir / "huge.nii", b);
    expectError(dir / "huge.nii", "more than the 2^31 gyrus accepts");
    // 1024^3 fits the limit but not the file: the data-length check catches it.
    for (size_t i = 0; i < 3; ++i) putBigEndian16(b, 42 + 2 * i, 1024);
    writeBytes(dir / "big.nii", b);
    expectError(dir / "big.nii", "the data is shorter than the header says");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian16(b, 42, -5);
    writeBytes(dir / "negative.nii", b);
    expectError(dir / "negative.nii", "dim[1] is -5");
    putBigEndian16(b, 40, 9);
    writeBytes(dir / "ndim.nii", b);
    expectError(dir / "ndim.nii", "dim[0] is 9");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian16(b, 70, 32);  // complex64
    writeBytes(dir / "complex.nii", b);
    expectError(dir / "complex.nii", "complex64) is not supported");
    putBigEndian16(b, 70, 3);
    writeBytes(dir / "unknown.nii", b);
    expectError(dir / "unknown.nii", "unknown datatype code 3");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian32(b, 108, 0x42c80000u);  // vox_offset 100.0f
    writeBytes(dir / "offset.nii", b);
    expectError(dir / "offset.nii", "vox_offset");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian32(b, 280, 0x7fc00000u);  // srow_x[0] = NaN, and sform_code is 2
    writeBytes(dir / "sform.nii", b);
    expectError(dir / "sform.nii", "the sform is not finite");
  }
  {
    std::vector<char> b = bigEndianBytes();
    putBigEndian32(b, 80, 0x7f800000u);  // pixdim[1] = inf
    writeBytes(dir / "pixdim.nii", b);
    expectError(dir / "pixdim.nii", "pixdim[1] is not finite");
  }
}

TEST_CASE("corrupt: data shorter than the header says") {
  TempDir dir;
  std::vector<char> b = bigEndianBytes();
  b.resize(b.size() - 1);
  writeBytes(dir / "short.nii", b);
  expectError(dir / "short.nii", "needs 67650 bytes from offset 352, the file has 68001 bytes");
  // The same inside a valid gzip stream.
  std::vector<char> raw = gunzip(kData / "ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz");
  raw.resize(raw.size() - 1000);
  gzFile gz = gzopen((dir / "short.nii.gz").c_str(), "wb1");
  REQUIRE(gz != nullptr);
  gzwrite(gz, raw.data(), static_cast<unsigned>(raw.size()));
  gzclose(gz);
  expectError(dir / "short.nii.gz", "the decompressed file has");
}

TEST_CASE("corrupt: NaN and infinite voxel values are an error naming the first voxel") {
  TempDir dir;
  ReadOptions fileOrder;
  fileOrder.reorientToRas = false;
  Image image = mustRead(kData / "edge_cases/nibabel_anatomical_bigendian.nii", fileOrder);
  image.data[5 + 33 * (2 + 41 * 1)] = std::nanf("");
  image.data[100] = INFINITY;
  std::string error;
  REQUIRE_MESSAGE(gyrus::io::writeNifti((dir / "nan.nii.gz").string(), image, {}, error), error);
  expectError(dir / "nan.nii.gz", "2 voxel values are NaN or infinite (the first at voxel (1, 3, 0)");
}

TEST_CASE("scl_slope/scl_inter are applied exactly once, for integer and float files") {
  TempDir dir;
  Image image;
  image.shape = {4, 3, 2};
  image.spacing = {1.0, 1.0, 1.0};
  image.affine = Affine{{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}};
  for (int i = 0; i < 24; ++i) image.data.push_back(static_cast<float>(i - 5));
  for (const char* type : {"float32", "int16", "int32", "uint8"}) {
    CAPTURE(type);
    Image source = image;
    if (std::string(type) == "uint8")
      for (float& v : source.data) v += 5.0f;
    WriteOptions w;
    w.datatype = type;
    std::string error;
    const fs::path path = dir / (std::string(type) + ".nii");
    REQUIRE_MESSAGE(gyrus::io::writeNifti(path.string(), source, w, error), error);
    // Patch scl_slope = 2.5, scl_inter = -1 into the (little-endian) header.
    std::vector<char> bytes = readBytes(path);
    const float slope = 2.5f, inter = -1.0f;
    std::memcpy(bytes.data() + 112, &slope, 4);
    std::memcpy(bytes.data() + 116, &inter, 4);
    writeBytes(path, bytes);
    ReadOptions fileOrder;
    fileOrder.reorientToRas = false;
    Image back = mustRead(path, fileOrder);
    CHECK(back.slope == 2.5);
    CHECK(back.inter == -1.0);
    CHECK(back.datatype == type);
    for (size_t i = 0; i < source.data.size(); ++i) CHECK(back.data[i] == source.data[i] * 2.5f - 1.0f);
    // scl_slope 0 means "no scaling" (the NIfTI rule; nibabel agrees).
    const float zero = 0.0f;
    std::memcpy(bytes.data() + 112, &zero, 4);
    writeBytes(path, bytes);
    Image unscaled = mustRead(path, fileOrder);
    CHECK(unscaled.slope == 1.0);
    CHECK(unscaled.inter == 0.0);
    CHECK(unscaled.data == source.data);
  }
}

TEST_CASE("the reader's decoder gives ITK's NiftiImageIO's values bit for bit (every fixture, every datatype written)") {
  namespace d = gyrus::io::detail;
  std::vector<std::pair<fs::path, int>> files;
  for (const auto& c : fixtures()["cases"]) files.emplace_back(kData / c["file"].get<std::string>(), c["volume"].get<int>());
  // Every datatype the writer stores, gzip and plain, from one real volume.
  const fs::path dir = fs::temp_directory_path() / ("gyrus_nifti_decoder_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Image source = mustRead(kData / "ixi_T1_brainage/IXI034-HH-1260-T1_ds.nii.gz", ReadOptions{});
  for (float& v : source.data) v = std::round(std::clamp(v, 0.0f, 255.0f));  // every type holds it exactly
  for (const std::string type : {"float32", "uint8", "int16", "int32"})
    for (const std::string ext : {".nii", ".nii.gz"}) {
      WriteOptions w;
      w.datatype = type;
      const fs::path path = dir / (type + ext);
      std::string error;
      REQUIRE_MESSAGE(gyrus::io::writeNifti(path.string(), source, w, error), error);
      files.emplace_back(path, 0);
    }
  for (const auto& [path, volume] : files) {
    CAPTURE(path.string());
    CAPTURE(volume);
    d::Header h;
    std::string error;
    std::vector<unsigned char> bytes;
    REQUIRE_MESSAGE(d::readHeader(path.string(), volume, h, error, &bytes), error);
    REQUIRE(static_cast<int64_t>(bytes.size()) == h.voxelsPerVolume * h.bytesPerVoxel);
    const double slope = 1.5, inter = -2.0;  // scaling in double, the same for both
    std::vector<float> ours, itk;
    d::decodeBytes(h, bytes, slope, inter, ours);
    REQUIRE_MESSAGE(d::decodeVolume(path.string(), h, volume, slope, inter, itk, error), error);
    REQUIRE(ours.size() == itk.size());
    CHECK(std::memcmp(ours.data(), itk.data(), ours.size() * sizeof(float)) == 0);
  }
  fs::remove_all(dir);
}
