// Synthetic brain generator (see Synth.h). All geometry is expressed in head-normalised
// coordinates p (the head is the unit ball), so the anatomy scales with the volume size.
#include "gyrus/clinic/Synth.h"

#include <algorithm>
#include <cmath>

#include "Anatomy.h"
#include "gyrus/clinic/Random.h"

namespace gyrus::rt {

Volume Volume::zeros(const ir::Shape3& shape) {
  Volume v;
  v.shape = shape;
  v.data.assign(static_cast<size_t>(v.numel()), 0.0f);
  return v;
}

namespace {

using anatomy::Anatomy;
using anatomy::dot;
using anatomy::edge;
using anatomy::forBall;
using anatomy::lerp;
using anatomy::randomDirection;
using anatomy::Vec3;

}  // namespace

Subject synthesize(const ir::SyntheticData& data, int64_t index) {
  Rng rng(deriveSeed(data.seed, static_cast<uint64_t>(index)));
  Subject s;
  s.age = rng.uniform(20.0, 85.0);
  s.lesion = rng.bernoulli(data.lesionRate) ? 1 : 0;
  Anatomy a(rng, data.size, s.age, data.ageEffect);

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

  // Lesions: 1-2 hyperintense ellipsoids inside white matter. Brightness (relative to
  // white matter), mean radius and elongation are the data set's difficulty knobs.
  if (s.lesion) {
    int count = rng.bernoulli(0.3) ? 2 : 1;
    for (int b = 0; b < count; ++b) {
      double radiusVox = data.lesionSize * rng.uniform(0.7, 1.3);
      double amp = data.lesionContrast * rng.uniform(0.75, 1.25);
      Vec3 axes{};
      for (double& ax : axes) ax = std::max(0.5, radiusVox * (1.0 + data.lesionShape * rng.uniform(-1.0, 1.0)));
      // An orthonormal frame around a random direction: the ellipsoid's orientation.
      Vec3 e0 = randomDirection(rng);
      Vec3 helper = std::abs(e0[0]) < 0.9 ? Vec3{1.0, 0.0, 0.0} : Vec3{0.0, 1.0, 0.0};
      Vec3 e1{e0[1] * helper[2] - e0[2] * helper[1], e0[2] * helper[0] - e0[0] * helper[2],
              e0[0] * helper[1] - e0[1] * helper[0]};
      double n1 = std::sqrt(dot(e1, e1));
      for (double& c1 : e1) c1 /= n1;
      Vec3 e2{e0[1] * e1[2] - e0[2] * e1[1], e0[2] * e1[0] - e0[0] * e1[2], e0[0] * e1[1] - e0[1] * e1[0]};
      double reach = std::max({axes[0], axes[1], axes[2]});
      double margin = reach * w;
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
      double shortest = std::min({axes[0], axes[1], axes[2]});
      // forBall's box of the longest axis; the profile is the ellipsoid's, with a
      // partial-volume edge about one voxel wide (as forBall's ball).
      forBall(n, cv, reach, [&](int64_t x, int64_t y, int64_t z, double) {
        Vec3 d{static_cast<double>(x) - cv[0], static_cast<double>(y) - cv[1], static_cast<double>(z) - cv[2]};
        double u0 = dot(d, e0) / axes[0], u1 = dot(d, e1) / axes[1], u2 = dot(d, e2) / axes[2];
        double rho = std::sqrt(u0 * u0 + u1 * u1 + u2 * u2);
        double profile = std::clamp((1.0 - rho) * shortest + 0.5, 0.0, 1.0);
        if (profile > 0.0) v.at(x, y, z) *= static_cast<float>(1.0 + amp * profile);
      });
    }
  }

  // The subject's scanner (its own random stream, so this knob moves nothing else): a
  // contrast gamma, a stronger or weaker bias field and more or less noise.
  Rng scanner(deriveSeed(deriveSeed(data.seed, static_cast<uint64_t>(index)), tag("scanner")));
  const double effect = data.siteEffect;
  const double gamma = std::exp(0.35 * effect * scanner.uniform(-1.0, 1.0));
  const double biasScale = 1.0 + 2.0 * effect * scanner.uniform();
  const double noiseScale = std::exp(0.7 * effect * scanner.uniform(-1.0, 1.0));

  // Smooth multiplicative bias field and Rician noise, inside the head only: the
  // background stays exactly 0 (as in skull-stripped data), so non-zero statistics work.
  double sigma = data.noise * noiseScale * kWhiteMatter;
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
        double val = std::pow(static_cast<double>(v.data[i]), gamma) * std::exp(biasScale * logBias);
        double re = val + sigma * rng.normal(), im = sigma * rng.normal();
        v.data[i] = std::max(static_cast<float>(std::sqrt(re * re + im * im)), 1e-6f);
      }
    }
  }
  s.image = std::move(v);
  return s;
}

}  // namespace gyrus::rt
