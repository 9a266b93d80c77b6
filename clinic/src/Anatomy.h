// The anatomy of a synthetic head, shared by `synthesize` (Synth.cpp) and the synthetic
// clinic (Clinic.cpp): geometry in head-normalised coordinates (the head is the unit
// ball), every random parameter drawn in a fixed order. Internal to the runtime core.
//
// Changing anything here changes the bytes `synthesize` produces, which the IR version
// and stage hashes rely on: tests/io/ClinicTest.cpp pins them with a checksum.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <utility>

#include "gyrus/clinic/Random.h"
#include "gyrus/Ir.h"

namespace gyrus::rt::anatomy {

using Vec3 = std::array<double, 3>;

inline double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

/// Random unit vector (uniform on the sphere).
inline Vec3 randomDirection(Rng& rng) {
  Vec3 v{rng.normal(), rng.normal(), rng.normal()};
  double n = std::sqrt(dot(v, v));
  if (n < 1e-12) return {1.0, 0.0, 0.0};
  return {v[0] / n, v[1] / n, v[2] / n};
}

/// A smooth random function on the unit sphere in [-1, 1]: a few low-frequency plane
/// waves. Used to fold the cortex (the grey/white boundary and the outer brain surface).
struct Folding {
  static constexpr int kWaves = 5;
  std::array<Vec3, kWaves> dir;
  std::array<double, kWaves> freq;
  std::array<double, kWaves> phase;

  explicit Folding(Rng& rng) {
    for (int k = 0; k < kWaves; ++k) {
      dir[k] = randomDirection(rng);
      freq[k] = rng.uniform(4.0, 9.0);
      phase[k] = rng.uniform(0.0, 2.0 * std::numbers::pi);
    }
  }
  double operator()(const Vec3& u) const {
    double s = 0.0;
    for (int k = 0; k < kWaves; ++k) s += std::sin(freq[k] * dot(dir[k], u) + phase[k]);
    return s / kWaves * 1.6;  // ~unit amplitude: the sum of 5 waves rarely exceeds 3
  }
};

/// An axis-aligned ellipsoid in normalised coordinates.
struct Ellipsoid {
  Vec3 centre;
  Vec3 radii;
  /// Signed distance-like measure: positive inside, in units of the smallest radius.
  double inside(const Vec3& p) const {
    double q = 0.0;
    for (int i = 0; i < 3; ++i) {
      double d = (p[i] - centre[i]) / radii[i];
      q += d * d;
    }
    return (1.0 - std::sqrt(q)) * std::min({radii[0], radii[1], radii[2]});
  }
};

/// Every random parameter of one subject's anatomy, drawn in a fixed order.
struct Anatomy {
  Vec3 centre;          // voxels
  Vec3 radius;          // head radii, voxels
  std::array<Vec3, 3> rot;  // rows of a rotation matrix (voxel offsets -> head frame)
  double shellInner;    // inner radius of the scalp shell
  double brainOuter;    // outer brain surface (before folding)
  double cortex;        // cortical thickness (before folding)
  Ellipsoid ventricle[2];
  double gain;          // global intensity scale
  std::array<double, 9> bias;  // linear + quadratic coefficients of log bias

  Folding fold;

  /// `ageEffect` scales the atrophy (1: the full effect; synthetic(age_effect = ...)).
  Anatomy(Rng& rng, const ir::Shape3& size, double age, double ageEffect = 1.0) : fold(rng) {
    double atrophy = ageEffect * (age - 20.0) / 65.0;  // 0 at 20 years, ageEffect at 85
    for (int i = 0; i < 3; ++i) {
      double n = static_cast<double>(size[i]);
      centre[i] = 0.5 * (n - 1.0) + rng.uniform(-0.03, 0.03) * n;
      radius[i] = n * rng.uniform(0.38, 0.43);
    }
    // A slight rotation: yaw about z, then pitch about x.
    double yaw = rng.uniform(-0.15, 0.15), pitch = rng.uniform(-0.10, 0.10);
    double cy = std::cos(yaw), sy = std::sin(yaw), cp = std::cos(pitch), sp = std::sin(pitch);
    rot[0] = {cy, sy, 0.0};
    rot[1] = {-sy * cp, cy * cp, sp};
    rot[2] = {sy * sp, -cy * sp, cp};
    shellInner = rng.uniform(0.93, 0.95);
    brainOuter = 0.90 - 0.05 * atrophy + rng.uniform(-0.01, 0.01);
    cortex = (0.15 - 0.03 * atrophy) * rng.uniform(0.9, 1.1);
    double grow = (0.7 + 0.9 * atrophy) * rng.uniform(0.88, 1.12);
    double lateral = rng.uniform(0.12, 0.16);
    for (int side = 0; side < 2; ++side) {
      double sign = side == 0 ? -1.0 : 1.0;
      ventricle[side].centre = {sign * lateral * (0.9 + 0.25 * grow / 1.6),
                                rng.uniform(0.0, 0.08), rng.uniform(0.04, 0.12)};
      ventricle[side].radii = {0.065 * grow * rng.uniform(0.9, 1.1),
                               0.21 * std::sqrt(grow) * rng.uniform(0.9, 1.1),
                               0.085 * grow * rng.uniform(0.9, 1.1)};
    }
    gain = rng.uniform(0.9, 1.1);
    for (int i = 0; i < 3; ++i) bias[i] = 0.12 * rng.normal();
    for (int i = 3; i < 9; ++i) bias[i] = 0.06 * rng.normal();
  }

  /// Head-frame coordinates of a voxel.
  Vec3 toHead(double x, double y, double z) const {
    Vec3 d{x - centre[0], y - centre[1], z - centre[2]};
    Vec3 r{dot(rot[0], d), dot(rot[1], d), dot(rot[2], d)};
    return {r[0] / radius[0], r[1] / radius[1], r[2] / radius[2]};
  }

  /// Radii of the folded outer brain surface and grey/white boundary in direction u.
  std::pair<double, double> surfaces(const Vec3& u) const {
    double f = fold(u);
    double outer = brainOuter + 0.015 * f;
    double inner = outer - cortex * (1.0 + 0.45 * f);
    return {outer, inner};
  }

  /// True when p lies in white matter, `margin` (normalised units) away from other tissue.
  bool inWhiteMatter(const Vec3& p, double margin) const {
    double r = std::sqrt(dot(p, p));
    if (r < 1e-9) return ventricle[0].inside(p) < -margin && ventricle[1].inside(p) < -margin;
    Vec3 u{p[0] / r, p[1] / r, p[2] / r};
    auto [outer, inner] = surfaces(u);
    (void)outer;
    return r < inner - margin && ventricle[0].inside(p) < -margin &&
           ventricle[1].inside(p) < -margin;
  }
};

/// Partial-volume blend weight for a signed distance d (positive: inside) with an edge
/// of width w, both in normalised units.
/// Calls f(x, y, z, profile) for every voxel of a grid of size `n` in the bounding box of
/// a ball at `c` (voxel coordinates) of `radius` voxels, with the ball's partial-volume
/// profile there: 1 inside, falling linearly to 0 over one voxel at the surface.
template <class F>
void forBall(const ir::Shape3& n, const Vec3& c, double radius, F f) {
  int64_t lo[3], hi[3];
  for (size_t i = 0; i < 3; ++i) {
    lo[i] = std::max<int64_t>(0, static_cast<int64_t>(std::floor(c[i] - radius - 1)));
    hi[i] = std::min<int64_t>(n[i] - 1, static_cast<int64_t>(std::ceil(c[i] + radius + 1)));
  }
  for (int64_t z = lo[2]; z <= hi[2]; ++z)
    for (int64_t y = lo[1]; y <= hi[1]; ++y)
      for (int64_t x = lo[0]; x <= hi[0]; ++x) {
        double dx = static_cast<double>(x) - c[0], dy = static_cast<double>(y) - c[1], dz = static_cast<double>(z) - c[2];
        f(x, y, z, std::clamp(radius + 0.5 - std::sqrt(dx * dx + dy * dy + dz * dz), 0.0, 1.0));
      }
}

inline double edge(double d, double w) { return std::clamp(0.5 + d / w, 0.0, 1.0); }

inline float lerp(double a, double b, double t) { return static_cast<float>(a + (b - a) * t); }

}  // namespace gyrus::rt::anatomy
