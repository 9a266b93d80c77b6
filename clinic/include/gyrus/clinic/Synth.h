// Synthetic brain MRI volumes: the embedded data set behind `synthetic(...)`.
//
// Each subject is a structured 3-D head (scalp shell, CSF rim, folded cortical grey
// matter, white matter, two lateral ventricles that grow with age), under a smooth
// multiplicative bias field and Rician noise, with an optional hyperintense white-matter
// lesion (the binary label). A subject depends only on (seed, index): any subset of a
// data set can be generated in any order, on any thread, with identical bytes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::rt {

/// A single-channel 3-D image, x fastest: `data[x + nx * (y + ny * z)]`.
struct Volume {
  ir::Shape3 shape{0, 0, 0};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  ///< voxel size in mm, (x, y, z)
  std::vector<float> data;

  /// Number of voxels.
  int64_t numel() const { return shape[0] * shape[1] * shape[2]; }
  /// Linear index of voxel (x, y, z).
  size_t index(int64_t x, int64_t y, int64_t z) const {
    return static_cast<size_t>(x + shape[0] * (y + shape[1] * z));
  }
  float& at(int64_t x, int64_t y, int64_t z) { return data[index(x, y, z)]; }
  float at(int64_t x, int64_t y, int64_t z) const { return data[index(x, y, z)]; }
  /// A zero-filled volume of the given shape.
  static Volume zeros(const ir::Shape3& shape);
};

/// One synthetic subject: the image and its labels.
struct Subject {
  Volume image;
  int lesion = 0;    ///< 1 when the image holds a hyperintense white-matter lesion
  double age = 0.0;  ///< years, uniform in [20, 85)
};

/// Intensities of the tissue classes before bias and noise (white matter = 1).
inline constexpr float kWhiteMatter = 1.0f;
inline constexpr float kGreyMatter = 0.62f;
inline constexpr float kCsf = 0.18f;
inline constexpr float kScalp = 1.1f;

/// Generates subject `index` of the data set `data`. Deterministic in `data` (every
/// field but `subjects`) and `index`.
///
/// Example:
///   ir::SyntheticData d;  // 40^3, seed 1
///   Subject s = synthesize(d, 7);
Subject synthesize(const ir::SyntheticData& data, int64_t index);

}  // namespace gyrus::rt
