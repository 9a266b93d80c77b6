// Deterministic random numbers for the runtime, independent of the standard library's
// distribution implementations (which differ between libstdc++ and libc++ and across
// versions): only std::mt19937_64's raw output, which the standard pins down exactly.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <string_view>
#include <utility>

namespace gyrus::rt {

/// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche behaviour.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Derives a child seed from a parent seed and a stream number, e.g. (data seed,
/// subject index) or (stage seed, epoch). Different streams give unrelated seeds.
inline uint64_t deriveSeed(uint64_t seed, uint64_t stream) {
  return mix64(mix64(seed) ^ mix64(stream + 0x632be59bd9b4e019ULL));
}

/// A 64-bit FNV-1a hash of a tag, to name random streams (`deriveSeed(s, tag("split"))`).
constexpr uint64_t tag(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

/// A seeded generator with portable uniform / normal / integer draws.
///
/// Example:
///   Rng rng(deriveSeed(seed, index));
///   double age = rng.uniform(20, 85);
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  /// 64 raw random bits, e.g. to seed a child generator (`Rng child(rng.bits())`).
  uint64_t bits() { return engine_(); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double normal() {
    if (hasSpare_) {
      hasSpare_ = false;
      return spare_;
    }
    double u1 = 0.0;
    do u1 = uniform();
    while (u1 <= 0.0);
    double u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    double t = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(t);
    hasSpare_ = true;
    return r * std::cos(t);
  }
  /// Uniform integer in [0, n) without modulo bias (n > 0).
  uint64_t below(uint64_t n) {
    uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % n);
    uint64_t x = 0;
    do x = engine_();
    while (x >= limit);
    return x % n;
  }
  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }
  /// Fisher-Yates shuffle of a random-access container.
  template <typename Container>
  void shuffle(Container& c) {
    for (size_t i = c.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(below(i));
      std::swap(c[i - 1], c[j]);
    }
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool hasSpare_ = false;
};

}  // namespace gyrus::rt
