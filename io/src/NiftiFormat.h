// Internal to gyrus_nifti: the NIfTI-1 header as read from disk and checked, the voxel
// decoder, and ITK's voxel decoder (NiftiItk.cpp, the only translation unit that includes
// ITK), which the tests compare it with.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace gyrus::io::detail {

inline constexpr int kHeaderSize = 348;

struct Header {
  bool swapped = false;     ///< the file is in the other byte order than this machine
  bool gzip = false;        ///< the file is gzip-compressed
  std::array<int16_t, 8> dim{};
  std::array<float, 8> pixdim{};
  int16_t datatype = 0;
  int16_t bitpix = 0;
  float voxOffset = 0;
  float sclSlope = 0, sclInter = 0;
  uint8_t xyztUnits = 0;
  int16_t qformCode = 0, sformCode = 0;
  std::array<float, 6> quatern{};  ///< quatern_b, c, d, qoffset_x, y, z
  std::array<std::array<float, 4>, 3> srow{};

  // Derived and checked by readHeader.
  std::string typeName;     ///< "int16", ...
  int bytesPerVoxel = 0;
  std::array<int64_t, 3> shape{};
  int64_t volumes = 1;
  int64_t voxelsPerVolume = 0;
  int64_t dataOffset = 0;
};

/// Reads and checks the header, and that the file holds all the data it announces (for
/// .nii.gz this decompresses the whole stream once, which also verifies its CRC). With
/// `volumeBytes`, the stored bytes of volume `volume` (when it exists) are kept there, as
/// they pass: a .nii.gz is decompressed once in all. Without, for a float file, volume
/// `volume` (when it exists) is checked for NaN/Inf values here.
bool readHeader(const std::string& path, int64_t volume, Header& header, std::string& error,
                std::vector<unsigned char>* volumeBytes = nullptr);

/// Decodes one volume's stored bytes (as readHeader keeps them) into scaled float values
/// in file voxel order (x fastest): stored value * slope + inter, computed in double,
/// byte order and datatype as the header says. The reader's decoder.
void decodeBytes(const Header& header, const std::vector<unsigned char>& bytes, double slope, double inter,
                 std::vector<float>& out);

/// Decodes volume `volume` with ITK's NiftiImageIO into scaled float values in file
/// voxel order (x fastest): stored value * slope + inter, computed in double (ITK's own
/// scaling is switched off). An independent decoder: the tests hold decodeBytes to it.
bool decodeVolume(const std::string& path, const Header& header, int64_t volume, double slope, double inter,
                  std::vector<float>& out, std::string& error);

/// "ITK 5.2.1" for describe().
std::string itkVersion();

}  // namespace gyrus::io::detail
