// Synthetic brain generator (see Synth.h). All geometry is expressed in head-normalised
// coordinates p (the head is the unit ball), so the anatomy scales with the volume size.
#include "Synth.h"

#include <algorithm>
#include <cmath>

#include "Random.h"

namespace gyrus::rt {

Volume Volume::zeros(const ir::Shape3& shape) {
  Volume v;
  v.shape = shape;
  v.data.assign(static_cast<size_t>(v.numel()), 0.0f);
  return v;
}

namespace {

using Vec3 = std::array<double, 3>;

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

/// Random unit vector (uniform on the sphere).
Vec3 randomDirection(Rng& rng) {
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

  Anatomy(Rng& rng, const ir::Shape3& size, double age) : fold(rng) {
    double atrophy = (age - 20.0) / 65.0;  // 0 at 20 years, 1 at 85
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
double edge(double d, double w) { return std::clamp(0.5 + d / w, 0.0, 1.0); }

float lerp(double a, double b, double t) { return static_cast<float>(a + (b - a) * t); }

}  // namespace

Subject synthesize(const ir::SyntheticData& data, int64_t index) {
  Rng rng(deriveSeed(data.seed, static_cast<uint64_t>(index)));
  Subject s;
  s.age = rng.uniform(20.0, 85.0);
  s.lesion = rng.bernoulli(data.lesionRate) ? 1 : 0;
  Anatomy a(rng, data.size, s.age);

  const ir::Shape3& n = data.size;
  Volume v = Volume::zeros(n);
  std::vector<uint8_t> head(v.data.size(), 0);
  double w = 1.0 / std::min({a.radius[0], a.radius[1], a.radius[2]});  // one voxel

  // Tissue classes with partial-volume edges, outside in.
  for (int64_t z = 0; z < n[2]; ++z) {
    for (int64_t y = 0; y < n[1]; ++y) {
      for (int64_t x = 0; x < n[0]; ++x) {
        Vec3 p = a.toHead(static_cast<double>(x), static_cast<double>(y), static_cast<double>(z));
        double r = std::sqrt(dot(p, p));
        double inHead = edge(1.0 - r, w);
        if (inHead <= 0.0) continue;
        Vec3 u = r > 1e-9 ? Vec3{p[0] / r, p[1] / r, p[2] / r} : Vec3{1.0, 0.0, 0.0};
        auto [outer, inner] = a.surfaces(u);
        double val = kScalp;
        val = lerp(val, kCsf, edge(a.shellInner - r, w));
        val = lerp(val, kGreyMatter, edge(outer - r, w));
        val = lerp(val, kWhiteMatter, edge(inner - r, w));
        double vent = std::max(a.ventricle[0].inside(p), a.ventricle[1].inside(p));
        val = lerp(val, kCsf, edge(vent, w));
        size_t i = v.index(x, y, z);
        v.data[i] = static_cast<float>(val * inHead * a.gain);
        head[i] = 1;
      }
    }
  }

  // Lesions: 1-2 hyperintense blobs (+80-120 % of white matter) inside white matter.
  if (s.lesion) {
    int count = rng.bernoulli(0.3) ? 2 : 1;
    double scale = static_cast<double>(std::min({n[0], n[1], n[2]})) / 40.0;
    for (int b = 0; b < count; ++b) {
      double radiusVox = rng.uniform(2.5, 4.5) * scale;
      double amp = rng.uniform(0.8, 1.2);
      double margin = radiusVox * w;
      Vec3 c{0.0, 0.0, 0.0};
      for (int attempt = 0; attempt < 1000; ++attempt) {
        Vec3 q{rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7)};
        if (a.inWhiteMatter(q, margin)) {
          c = q;
          break;
        }
        if (attempt == 999) c = q;  // pathological geometry: place it anyway
      }
      // Centre in voxel coordinates: invert toHead (rotation rows are orthonormal).
      Vec3 h{c[0] * a.radius[0], c[1] * a.radius[1], c[2] * a.radius[2]};
      Vec3 cv{};
      for (int i = 0; i < 3; ++i)
        cv[i] = a.centre[i] + a.rot[0][i] * h[0] + a.rot[1][i] * h[1] + a.rot[2][i] * h[2];
      int64_t lo[3], hi[3];
      for (int i = 0; i < 3; ++i) {
        lo[i] = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cv[i] - radiusVox - 1)));
        hi[i] = std::min<int64_t>(n[i] - 1, static_cast<int64_t>(std::ceil(cv[i] + radiusVox + 1)));
      }
      for (int64_t z = lo[2]; z <= hi[2]; ++z)
        for (int64_t y = lo[1]; y <= hi[1]; ++y)
          for (int64_t x = lo[0]; x <= hi[0]; ++x) {
            double dx = static_cast<double>(x) - cv[0], dy = static_cast<double>(y) - cv[1],
                   dz = static_cast<double>(z) - cv[2];
            double d = std::sqrt(dx * dx + dy * dy + dz * dz);
            double profile = std::clamp(radiusVox + 0.5 - d, 0.0, 1.0);
            v.at(x, y, z) *= static_cast<float>(1.0 + amp * profile);
          }
    }
  }

  // Smooth multiplicative bias field and Rician noise, inside the head only: the
  // background stays exactly 0 (as in skull-stripped data), so non-zero statistics work.
  double sigma = data.noise * kWhiteMatter;
  for (int64_t z = 0; z < n[2]; ++z) {
    for (int64_t y = 0; y < n[1]; ++y) {
      for (int64_t x = 0; x < n[0]; ++x) {
        size_t i = v.index(x, y, z);
        if (!head[i]) continue;
        double px = (static_cast<double>(x) - a.centre[0]) / a.radius[0];
        double py = (static_cast<double>(y) - a.centre[1]) / a.radius[1];
        double pz = (static_cast<double>(z) - a.centre[2]) / a.radius[2];
        const auto& c = a.bias;
        double logBias = c[0] * px + c[1] * py + c[2] * pz + c[3] * px * px + c[4] * py * py +
                         c[5] * pz * pz + c[6] * px * py + c[7] * py * pz + c[8] * px * pz;
        double val = v.data[i] * std::exp(logBias);
        double re = val + sigma * rng.normal(), im = sigma * rng.normal();
        v.data[i] = std::max(static_cast<float>(std::sqrt(re * re + im * im)), 1e-6f);
      }
    }
  }
  s.image = std::move(v);
  return s;
}

}  // namespace gyrus::rt
