// NIfTI-1 images as plain data: reading (ITK decodes the voxels), reorientation to RAS,
// and writing back in the voxel order and with the affine of the file an image came from.
//
// This header includes neither ITK nor LibTorch: the library that implements it
// (gyrus_nifti, static) is linked into the I/O module (libgyrus_io.so) and later the
// runtime module; the `gyrus` driver reaches it only through gyrus/io/IoModule.h.
//
// Conventions (the same as nibabel's):
//  - world coordinates are RAS+ millimetres (x to the Right, y Anterior, z Superior);
//    `affine` maps a voxel index (i, j, k, 1) to world (x, y, z, 1);
//  - the affine of a file is its sform when sform_code > 0, else its qform when
//    qform_code > 0, else a diagonal of the voxel sizes centred on the volume with x
//    flipped (nibabel's get_best_affine);
//  - orientation codes name, for each voxel axis, the world direction it increases
//    towards ("LPS": i runs to the Left, j Posterior, k Superior; nibabel's
//    aff2axcodes); the axis matched to each voxel axis is that of the closest
//    rotation (polar decomposition), chosen greedily in axis order;
//  - data holds the scaled values (raw * scl_slope + scl_inter; no scaling when
//    scl_slope is 0 or not finite), x fastest.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace gyrus::io {

using Affine = std::array<std::array<double, 4>, 4>;

/// Where an image's voxels came from: lets the writer put them back in the file's own
/// voxel order with the file's own qform/sform, bit for bit.
struct Source {
  bool present = false;               ///< false for images not read from a file
  std::array<int64_t, 3> shape{};     ///< the file's spatial shape (file axis order)
  Affine affine{};                    ///< the file's affine (before reorientation)
  std::array<int, 3> rasAxis{0, 1, 2}; ///< file axis i became axis rasAxis[i] of `data`
  std::array<bool, 3> flipped{};      ///< ... reversed when flipped[i]
  // The geometry fields of the header, copied unchanged to files written from this image.
  int16_t qformCode = 0, sformCode = 0;
  std::array<float, 8> pixdim{};
  std::array<float, 6> quatern{};     ///< quatern_b, c, d, qoffset_x, y, z
  std::array<std::array<float, 4>, 3> srow{};
  uint8_t xyztUnits = 0;
};

struct Image {
  std::array<int64_t, 3> shape{};       ///< voxels per axis (RAS order after reorientation)
  std::array<double, 3> spacing{};      ///< voxel size in mm per axis (header pixdim, same order)
  Affine affine{};                      ///< voxel index -> RAS world mm, for `data` as stored
  std::string orientation;              ///< orientation code of the file, e.g. "LPS"
  std::string datatype;                 ///< on-disk type: uint8 int8 int16 uint16 int32 uint32 int64 uint64 float32 float64
  double slope = 1.0, inter = 0.0;      ///< scaling applied to the stored values (1, 0: none)
  int64_t volumes = 1;                  ///< volumes in the file (dim[4]); one was read
  std::vector<float> data;              ///< shape[0] * shape[1] * shape[2] scaled values, x fastest
  Source source;
};

struct ReadOptions {
  int volume = 0;             ///< which volume of a 4-D file to read
  bool reorientToRas = true;  ///< permute/flip the voxel axes to the closest RAS+ order
};

/// Reads a .nii or .nii.gz file (NIfTI-1, single file, either byte order). Returns false
/// with a one-line reason in `error` (without the path) for anything it cannot read:
/// not NIfTI-1, corrupt or truncated data, unsupported datatype, a volume out of range,
/// non-finite voxel values (NaN/Inf are rejected rather than propagated). Never throws.
bool readNifti(const std::string& path, const ReadOptions& options, Image& image, std::string& error);

struct WriteOptions {
  /// Stored datatype: "float32", "uint8", "int16" or "int32". Integer types require
  /// integral values within range (an error otherwise, never silent rounding).
  std::string datatype = "float32";
  /// For an image read from a file: write it in that file's voxel order, shape and
  /// qform/sform (undoing the reorientation), so that a mask predicted on the RAS
  /// volume lands exactly on the input's grid. Otherwise `affine` is written as the
  /// sform (rounded to float32, as the format stores it).
  bool sourceGeometry = true;
};

/// Writes a single-volume NIfTI-1 file; ".gz" at the end of the path compresses it.
/// Returns false with a reason in `error`. Never throws.
bool writeNifti(const std::string& path, const Image& image, const WriteOptions& options, std::string& error);

/// Orientation code ("RAS", "LPS", ...) of an affine, as nibabel's aff2axcodes.
std::string orientationCode(const Affine& affine);

struct Stats {
  double min = 0, max = 0, mean = 0, std = 0;  ///< std: population (ddof 0), as numpy
  int64_t count = 0;
};

/// Statistics of the voxel values (computed in double, two passes).
inline Stats computeStats(const std::vector<float>& values) {
  Stats s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) return s;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0.0;
  for (float v : values) {
    double d = v;
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
    sum += d;
  }
  double mean = sum / static_cast<double>(values.size());
  double ss = 0.0;
  for (float v : values) ss += (v - mean) * (v - mean);
  s.min = lo;
  s.max = hi;
  s.mean = mean;
  s.std = std::sqrt(ss / static_cast<double>(values.size()));
  return s;
}

}  // namespace gyrus::io
