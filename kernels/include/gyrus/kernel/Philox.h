// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011). A draw is a pure function of a 64-bit key and a 128-bit
// counter, so the reference interpreter, the CPU JIT and the GPU kernels draw the same
// value for the same (seed, sample, operation, voxel) whatever the thread that asks.
// The CUDA source generator (CudaSource.cpp) and the LLVM back end emit this same
// algorithm; the constants and the round structure below are the specification.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace gyrus::kir {

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

using PhiloxBlock = std::array<uint32_t, 4>;

/// Philox4x32 with 10 rounds of `counter` under `key` (lo, hi words of the seed).
inline PhiloxBlock philox(uint64_t key, PhiloxBlock ctr) {
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * ctr[0];
    uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * ctr[2];
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = {hi1 ^ ctr[1] ^ k0, lo1, hi0 ^ ctr[3] ^ k1, lo0};
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return ctr;
}

/// A uniform float in (0, 1]: the top 24 bits of `bits`, plus one, over 2^24 (never 0,
/// so its logarithm is finite).
inline float uniformOpen01(uint32_t bits) { return static_cast<float>((bits >> 8) + 1u) * 0x1.0p-24f; }

/// A standard normal from two words (Box-Muller, the cosine branch), in single
/// precision as every back end computes it: sqrt(-2 ln u1) * cos(2 pi u2).
inline float normalFromBits(uint32_t a, uint32_t b) {
  float u1 = uniformOpen01(a), u2 = uniformOpen01(b);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

/// The counter of a per-voxel draw: (voxel, stream, sample, 0). Streams number the
/// random operations of a kernel; per-sample scalar draws use word 3 = 1 (see Draws).
inline PhiloxBlock voxelCounter(uint32_t voxel, uint32_t stream, uint32_t sample) { return {voxel, stream, sample, 0u}; }

/// The standard normal of voxel `voxel` of stream `stream` for `sample` under `seed`.
inline float voxelNormal(uint64_t seed, uint32_t sample, uint32_t stream, uint32_t voxel) {
  PhiloxBlock r = philox(seed, voxelCounter(voxel, stream, sample));
  return normalFromBits(r[0], r[1]);
}

/// Scalar draws of one operation of one sample: a sequence of uniforms in [0, 1) from
/// counters (k, op, sample, 1), four per block, in double precision (53 bits from two
/// words). The host makes these, for every back end alike.
class Draws {
 public:
  Draws(uint64_t seed, uint32_t sample, uint32_t op) : seed_(seed), sample_(sample), op_(op) {}
  /// Uniform in [0, 1).
  double uniform() {
    if (used_ == 2) refill();
    uint64_t hi = block_[2 * used_], lo = block_[2 * used_ + 1];
    ++used_;
    return static_cast<double>(((hi << 32) | lo) >> 11) * 0x1.0p-53;
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  bool bernoulli(double p) { return uniform() < p; }
  /// An integer in [lo, hi].
  int64_t integer(int64_t lo, int64_t hi) {
    auto span = static_cast<double>(hi - lo + 1);
    auto k = static_cast<int64_t>(uniform() * span);
    return lo + (k > hi - lo ? hi - lo : k);
  }
  /// A standard normal (Box-Muller, double precision).
  double normal() {
    double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  void refill() {
    block_ = philox(seed_, {next_++, op_, sample_, 1u});
    used_ = 0;
  }
  uint64_t seed_;
  uint32_t sample_, op_, next_ = 0;
  PhiloxBlock block_{};
  int used_ = 2;
};

}  // namespace gyrus::kir
