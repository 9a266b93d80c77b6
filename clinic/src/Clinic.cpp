// The synthetic clinic (see Clinic.h). Geometry is in head-normalised coordinates (the
// head of Anatomy.h is the unit ball); every random choice comes from a named stream
// derived from (seed, index), so adding a finding never moves another one.
#include "gyrus/clinic/Clinic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <optional>
#include <tuple>

#include "Anatomy.h"
#include "gyrus/clinic/Random.h"

namespace gyrus::rt {
namespace {

using anatomy::Anatomy;
using anatomy::dot;
using anatomy::edge;
using anatomy::forBall;
using anatomy::Folding;
using anatomy::randomDirection;
using anatomy::Vec3;

// ---- Tissues and contrasts ----------------------------------------------------------

enum Tissue { kCsfT, kGmT, kWmT, kWmhT, kInfarctT, kTumourT, kTissues };
enum Seq { kT1, kT2, kFlair, kDwi, kAdc, kSwi, kT2s, kSeqs };

constexpr const char* kSeqName[kSeqs] = {"t1", "t2", "flair", "dwi_b1000", "adc", "swi", "t2s"};

// Tissue values per sequence (white matter about 0.4-0.9; ADC in 1e-3 mm²/s).
//                                      CSF   GM    WM    WMH   infarct tumour
constexpr double kContrast[kSeqs][kTissues] = {
    /* t1        */ {0.12, 0.55, 0.85, 0.55, 0.45, 0.55},
    /* t2        */ {1.00, 0.62, 0.42, 0.85, 0.85, 0.70},
    /* flair     */ {0.07, 0.62, 0.45, 1.00, 0.58, 0.80},  // acute infarct: barely visible
    /* dwi_b1000 */ {0.06, 0.48, 0.42, 0.50, 1.30, 0.62},
    /* adc       */ {3.00, 0.83, 0.73, 1.05, 0.38, 0.85},
    /* swi       */ {0.85, 0.62, 0.52, 0.65, 0.60, 0.58},
    /* t2s       */ {0.90, 0.60, 0.48, 0.70, 0.65, 0.58},
};
// Signal left in a microbleed (susceptibility sequences only).
constexpr double kBleedSignal[kSeqs] = {1, 1, 1, 1, 1, 0.12, 0.2};

// ---- Small helpers ------------------------------------------------------------------

int poisson(Rng& rng, double lambda) {
  double limit = std::exp(-lambda), p = 1.0;
  int k = 0;
  do {
    ++k;
    p *= rng.uniform();
  } while (p > limit && k < 1000);
  return k - 1;
}

Vec3 normalised(const Vec3& v) {
  double n = std::sqrt(dot(v, v));
  return {v[0] / n, v[1] / n, v[2] / n};
}

/// Voxel coordinates of head-frame point p (inverse of Anatomy::toHead).
Vec3 toVoxel(const Anatomy& a, const Vec3& p) {
  Vec3 h{p[0] * a.radius[0], p[1] * a.radius[1], p[2] * a.radius[2]};
  Vec3 v{};
  for (size_t i = 0; i < 3; ++i) v[i] = a.centre[i] + a.rot[0][i] * h[0] + a.rot[1][i] * h[1] + a.rot[2][i] * h[2];
  return v;
}

/// Paints a soft ball (partial-volume profile one voxel wide) into `map` with max().
void paintBall(std::vector<float>& map, const ir::Shape3& n, const Vec3& c, double radius) {
  forBall(n, c, radius, [&](int64_t x, int64_t y, int64_t z, double profile) {
    size_t i = static_cast<size_t>(x + n[0] * (y + n[1] * z));
    map[i] = std::max(map[i], static_cast<float>(profile));
  });
}

/// A random point of white matter (head frame), or nothing after many tries.
template <typename Propose>
std::optional<Vec3> whiteMatterPoint(const Anatomy& a, double margin, Propose propose) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    Vec3 q = propose();
    if (a.inWhiteMatter(q, margin)) return q;
  }
  return std::nullopt;
}

// ---- Findings -----------------------------------------------------------------------

/// A wedge of one hemisphere's cortex and white matter around direction `axis`, from
/// radius `inner` outwards, with an irregular border.
struct Infarct {
  double side = 1.0;  // +1 right hemisphere, -1 left
  Vec3 axis{};
  double halfAngle = 0.4, inner = 0.45, cosLimit = 0.0;
  std::string territory;
  Folding border;

  Infarct(Rng& rng, double sizeFactor) : border(rng) {
    side = rng.bernoulli(0.5) ? 1.0 : -1.0;
    double t = rng.uniform(), scale = rng.uniform(0.45, 1.0);  // small lacunar-ish to large
    Vec3 base;
    if (t < 0.6) {
      territory = "MCA";
      base = {0.95, 0.1, 0.25};
      halfAngle = rng.uniform(0.35, 0.55);
      inner = rng.uniform(0.35, 0.55);
    } else if (t < 0.8) {
      territory = "PCA";
      base = {0.45, -0.85, 0.05};
      halfAngle = rng.uniform(0.30, 0.45);
      inner = rng.uniform(0.40, 0.55);
    } else {
      territory = "ACA";
      base = {0.30, 0.55, 0.75};
      halfAngle = rng.uniform(0.25, 0.40);
      inner = rng.uniform(0.40, 0.55);
    }
    territory += side > 0 ? "-right" : "-left";
    for (double& b : base) b += rng.uniform(-0.1, 0.1);
    base[0] = std::abs(base[0]) * side;
    axis = normalised(base);
    halfAngle = std::min(halfAngle * scale * sizeFactor, 1.2);
    cosLimit = std::cos(std::min(halfAngle * 1.4 + 0.1, std::numbers::pi));
  }

  /// Weight in [0, 1] at head-frame point p (radius r, direction u); w: one voxel.
  double weight(const Vec3& p, const Vec3& u, double r, double w) const {
    double c = dot(u, axis);
    if (c < cosLimit || r < 0.2) return 0.0;
    double f = border(u);
    double angle = std::acos(std::clamp(c, -1.0, 1.0));
    double wa = edge(halfAngle * (1.0 + 0.25 * f) - angle, w / r);
    double wr = edge(r - inner * (1.0 + 0.1 * f), w);
    double gate = edge(side * p[0], w);  // stays in its hemisphere
    return wa * wr * gate;
  }
};

/// An extra-axial mass attached to the inner skull surface, lobulated, with optional
/// oedema in the neighbouring white matter.
struct Meningioma {
  Vec3 centre{};
  double radius = 0.2, oedema = 0.0;  // oedema: outer radius of the oedema band (0: none)
  Folding lobes;

  Meningioma(Rng& rng, const Anatomy& a, double sizeFactor) : lobes(rng) {
    Vec3 u;
    do u = randomDirection(rng);
    while (u[2] < -0.3);  // convexity, falx and high skull base; not the posterior fossa floor
    double rc = a.shellInner + rng.uniform(-0.08, 0.0);
    centre = {u[0] * rc, u[1] * rc, u[2] * rc};
    radius = rng.uniform(0.14, 0.30) * sizeFactor;
    if (rng.bernoulli(0.5)) oedema = radius * rng.uniform(1.25, 1.6);
  }

  /// (tumour weight, oedema weight) at head-frame point p.
  std::pair<double, double> weight(const Vec3& p, double w) const {
    Vec3 d{p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]};
    double dist = std::sqrt(dot(d, d));
    double reach = std::max(radius * 1.2, oedema) + 2.0 * w;
    if (dist > reach) return {0.0, 0.0};
    double f = dist > 1e-9 ? lobes(Vec3{d[0] / dist, d[1] / dist, d[2] / dist}) : 0.0;
    double m = edge(radius * (1.0 + 0.12 * f) - dist, w);
    double o = oedema > 0.0 ? edge(oedema * (1.0 + 0.2 * f) - dist, 3.0 * w) * (1.0 - m) : 0.0;
    return {m, o};
  }
};

// ---- Sequences of each task ---------------------------------------------------------

std::vector<Seq> chooseSequences(ClinicTask task, Rng& rng) {
  Seq susceptibility = rng.bernoulli(0.35) ? kT2s : kSwi;
  switch (task) {
    case ClinicTask::Infarct: return {kFlair, kDwi, kAdc, susceptibility};
    case ClinicTask::Meningioma: return {kFlair, kDwi, susceptibility};
    case ClinicTask::BrainAge: return {kT1, kT2};
    case ClinicTask::Pretrain: break;
  }
  std::vector<Seq> s;
  if (rng.bernoulli(0.9)) s.push_back(kT1);
  if (rng.bernoulli(0.75)) s.push_back(kT2);
  if (rng.bernoulli(0.7)) s.push_back(kFlair);
  if (rng.bernoulli(0.25)) {
    s.push_back(kDwi);
    s.push_back(kAdc);
  }
  if (rng.bernoulli(0.25)) s.push_back(susceptibility);
  if (s.empty()) s.push_back(kT1);
  return s;
}

// ---- Site rendering -----------------------------------------------------------------

/// Blurs along z with a Gaussian of the given FWHM (voxels): thick slices.
void blurZ(std::vector<float>& v, const ir::Shape3& n, double fwhm) {
  double sigma = fwhm / (2.0 * std::sqrt(2.0 * std::log(2.0)));
  int radius = static_cast<int>(std::ceil(3.0 * sigma));
  std::vector<double> k(static_cast<size_t>(2 * radius + 1));
  double sum = 0.0;
  for (int i = -radius; i <= radius; ++i) sum += k[static_cast<size_t>(i + radius)] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (double& x : k) x /= sum;
  const int64_t plane = n[0] * n[1];
  std::vector<double> column(static_cast<size_t>(n[2]));
  for (int64_t xy = 0; xy < plane; ++xy) {
    bool any = false;
    for (int64_t z = 0; z < n[2]; ++z) {
      column[static_cast<size_t>(z)] = v[static_cast<size_t>(xy + plane * z)];
      any = any || column[static_cast<size_t>(z)] != 0.0;
    }
    if (!any) continue;
    for (int64_t z = 0; z < n[2]; ++z) {
      double acc = 0.0;
      for (int i = -radius; i <= radius; ++i) {
        int64_t zz = std::clamp<int64_t>(z + i, 0, n[2] - 1);
        acc += k[static_cast<size_t>(i + radius)] * column[static_cast<size_t>(zz)];
      }
      v[static_cast<size_t>(xy + plane * z)] = static_cast<float>(acc);
    }
  }
}

/// Site effects on a clean image: contrast gamma, subject gain, bias field, thick
/// slices, Rician noise, intensity scale; integer values, at least 1 inside the brain.
void render(Volume& img, Seq seq, const std::vector<uint8_t>& inside, const Anatomy& a, const ClinicSite& site,
            Rng& rng) {
  const ir::Shape3& n = img.shape;
  const bool adc = seq == kAdc;
  std::array<double, 9> c{};
  for (size_t i = 0; i < 3; ++i) c[i] = site.biasStrength * rng.normal();
  for (size_t i = 3; i < 9; ++i) c[i] = 0.5 * site.biasStrength * rng.normal();
  for (int64_t z = 0; z < n[2]; ++z) {
    double pz = (static_cast<double>(z) - a.centre[2]) / a.radius[2];
    for (int64_t y = 0; y < n[1]; ++y) {
      double py = (static_cast<double>(y) - a.centre[1]) / a.radius[1];
      for (int64_t x = 0; x < n[0]; ++x) {
        size_t i = img.index(x, y, z);
        if (!inside[i]) continue;
        double v = img.data[i];
        if (adc) {
          v *= 1000.0;  // 1e-6 mm²/s, quantitative: no gain, gamma or bias
        } else {
          double px = (static_cast<double>(x) - a.centre[0]) / a.radius[0];
          double logBias = c[0] * px + c[1] * py + c[2] * pz + c[3] * px * px + c[4] * py * py + c[5] * pz * pz +
                           c[6] * px * py + c[7] * py * pz + c[8] * px * pz;
          v = std::pow(std::max(v, 0.0), site.gamma) * a.gain * std::exp(logBias);
        }
        img.data[i] = static_cast<float>(v);
      }
    }
  }
  if (site.sliceMm > 1.0) {
    blurZ(img.data, n, site.sliceMm);
    for (size_t i = 0; i < img.data.size(); ++i)
      if (!inside[i]) img.data[i] = 0.0f;
  }
  const double sigma = site.noise * (adc ? 1000.0 : 1.0);
  const double scale = adc ? 1.0 : site.scale;
  for (size_t i = 0; i < img.data.size(); ++i) {
    if (!inside[i]) continue;
    double re = img.data[i] + sigma * rng.normal(), im = sigma * rng.normal();
    double v = std::nearbyint(std::sqrt(re * re + im * im) * scale);
    img.data[i] = static_cast<float>(std::clamp(v, 1.0, 32767.0));
  }
}

}  // namespace

const char* toString(ClinicTask task) {
  switch (task) {
    case ClinicTask::Pretrain: return "fomo60k";
    case ClinicTask::Infarct: return "fomo25-task1";
    case ClinicTask::Meningioma: return "fomo25-task2";
    case ClinicTask::BrainAge: return "fomo25-task3";
  }
  return "?";
}

bool parseClinicTask(std::string_view name, ClinicTask& task) {
  for (ClinicTask t : {ClinicTask::Pretrain, ClinicTask::Infarct, ClinicTask::Meningioma, ClinicTask::BrainAge})
    if (name == toString(t)) {
      task = t;
      return true;
    }
  return false;
}

ClinicSite ClinicSite::fromName(const std::string& name) {
  Rng rng(deriveSeed(tag("gyrus clinic site"), tag(name)));
  ClinicSite s;
  s.name = name;
  s.scale = std::exp(rng.uniform(std::log(300.0), std::log(3000.0)));
  s.scale = std::round(s.scale);
  s.gamma = std::exp(rng.uniform(std::log(0.75), std::log(1.35)));
  s.biasStrength = rng.uniform(0.05, 0.35);
  s.noise = rng.uniform(0.01, 0.06);
  s.sliceMm = rng.bernoulli(0.35) ? rng.uniform(2.5, 5.0) : 1.0;
  return s;
}

const Volume* ClinicSubject::sequence(std::string_view name) const {
  for (const ClinicSequence& s : sequences)
    if (s.name == name) return &s.image;
  return nullptr;
}

ClinicSubject synthesizeClinic(const ClinicOptions& options, int64_t index) {
  if (options.sites.empty()) return synthesizeClinic(options, index, ClinicSite::fromName("a"));
  size_t k = static_cast<size_t>(index % static_cast<int64_t>(options.sites.size()));
  return synthesizeClinic(options, index, options.sites[k]);
}

ClinicSubject synthesizeClinic(const ClinicOptions& options, int64_t index, const ClinicSite& site) {
  const uint64_t subjectSeed = deriveSeed(deriveSeed(options.seed, tag("clinic")), static_cast<uint64_t>(index));
  auto stream = [&](std::string_view name) { return Rng(deriveSeed(subjectSeed, tag(name))); };
  const ir::Shape3& n = options.size;

  ClinicSubject s;
  s.index = index;
  s.site = site.name;

  // Anatomy (age first: it drives atrophy).
  Rng anatomyRng = stream("anatomy");
  s.age = std::round(anatomyRng.uniform(20.0, 85.0) * 10.0) / 10.0;
  Anatomy a(anatomyRng, n, s.age, options.ageEffect);
  const double w = 1.0 / std::min({a.radius[0], a.radius[1], a.radius[2]});  // one voxel
  const double vox = static_cast<double>(std::min({n[0], n[1], n[2]})) / 96.0;  // size scale
  const double ageFactor = options.ageEffect * std::clamp((s.age - 20.0) / 65.0, 0.0, 1.0);

  // Which findings (the task decides how likely each is).
  Rng findings = stream("findings");
  double uInfarct = findings.uniform(), uMeningioma = findings.uniform();
  double pInfarct = 0.0, pMeningioma = 0.0;
  switch (options.task) {
    case ClinicTask::Pretrain: pInfarct = 0.08, pMeningioma = 0.05; break;
    case ClinicTask::Infarct: pInfarct = 0.5; break;
    case ClinicTask::Meningioma: pMeningioma = 1.0; break;
    case ClinicTask::BrainAge: break;
  }
  s.infarct = uInfarct < pInfarct ? 1 : 0;
  s.meningioma = uMeningioma < pMeningioma ? 1 : 0;
  Rng infarctRng = stream("infarct"), meningiomaRng = stream("meningioma");
  std::optional<Infarct> infarct;
  std::optional<Meningioma> meningioma;
  if (s.infarct) {
    infarct.emplace(infarctRng, options.lesionSize);
    s.territory = infarct->territory;
  }
  if (s.meningioma) meningioma.emplace(meningiomaRng, a, options.lesionSize);

  // White-matter hyperintensities (periventricular and deep; more with age).
  const size_t numel = static_cast<size_t>(n[0] * n[1] * n[2]);
  std::vector<float> wmh(numel, 0.0f);
  Rng wmhRng = stream("wmh");
  int wmhCount = poisson(wmhRng, 0.3 + 10.0 * options.ageEffect * std::max(0.0, (s.age - 40.0) / 45.0));
  for (int b = 0; b < wmhCount; ++b) {
    double radius = wmhRng.uniform(1.2, 3.2) * vox;
    bool periventricular = wmhRng.bernoulli(0.6);
    const auto& v = a.ventricle[wmhRng.below(2)];
    auto at = whiteMatterPoint(a, 0.0, [&]() -> Vec3 {
      if (!periventricular) return {wmhRng.uniform(-0.7, 0.7), wmhRng.uniform(-0.7, 0.7), wmhRng.uniform(-0.5, 0.7)};
      Vec3 d = randomDirection(wmhRng);
      double k = wmhRng.uniform(1.05, 1.5);
      return {v.centre[0] + d[0] * v.radii[0] * k, v.centre[1] + d[1] * v.radii[1] * k, v.centre[2] + d[2] * v.radii[2] * k};
    });
    if (at) paintBall(wmh, n, toVoxel(a, *at), radius);
  }

  // Microbleeds: black dots on SWI (blooming: larger) and T2*.
  std::vector<float> bleedSwi(numel, 0.0f), bleedT2s(numel, 0.0f);
  Rng bleedRng = stream("bleeds");
  s.microbleeds = poisson(bleedRng, 0.2 + 2.5 * ageFactor);
  for (int b = 0; b < s.microbleeds; ++b) {
    double radius = bleedRng.uniform(0.7, 1.4) * vox;
    auto at = whiteMatterPoint(a, 0.0, [&]() -> Vec3 {
      return {bleedRng.uniform(-0.75, 0.75), bleedRng.uniform(-0.75, 0.75), bleedRng.uniform(-0.6, 0.75)};
    });
    if (!at) continue;
    Vec3 c = toVoxel(a, *at);
    paintBall(bleedSwi, n, c, radius * 1.4);
    paintBall(bleedT2s, n, c, radius);
  }

  Rng sequenceRng = stream("sequences");
  std::vector<Seq> seqs = chooseSequences(options.task, sequenceRng);
  std::vector<Volume> clean;
  for (size_t k = 0; k < seqs.size(); ++k) clean.push_back(Volume::zeros(n));
  s.meningiomaMask = Volume::zeros(n);
  s.infarctMask = Volume::zeros(n);
  std::vector<uint8_t> inside(numel, 0);

  // Tissue fractions per voxel, then every sequence's clean value.
  double brain = 0.0, ventricles = 0.0, infarcted = 0.0, tumour = 0.0, hyper = 0.0;
  for (int64_t z = 0; z < n[2]; ++z) {
    for (int64_t y = 0; y < n[1]; ++y) {
      for (int64_t x = 0; x < n[0]; ++x) {
        Vec3 p = a.toHead(static_cast<double>(x), static_cast<double>(y), static_cast<double>(z));
        double r = std::sqrt(dot(p, p));
        double icv = edge(a.shellInner - r, w);  // skull-stripped: intracranial space only
        if (icv <= 0.0) continue;
        Vec3 u = r > 1e-9 ? Vec3{p[0] / r, p[1] / r, p[2] / r} : Vec3{1.0, 0.0, 0.0};
        auto [outer, inner] = a.surfaces(u);
        std::array<double, kTissues> f{};
        f[kCsfT] = 1.0;
        auto mix = [&f](Tissue t, double weight) {
          for (double& x2 : f) x2 *= 1.0 - weight;
          f[t] += weight;
        };
        mix(kGmT, edge(outer - r, w));
        mix(kWmT, edge(inner - r, w));
        double vent = edge(std::max(a.ventricle[0].inside(p), a.ventricle[1].inside(p)), w);
        mix(kCsfT, vent);
        size_t i = static_cast<size_t>(x + n[0] * (y + n[1] * z));
        double m = 0.0, oedema = 0.0;
        if (meningioma) std::tie(m, oedema) = meningioma->weight(p, w);
        double h = std::max(static_cast<double>(wmh[i]), oedema);
        if (h > 0.0) {
          f[kWmhT] = h * f[kWmT];
          f[kWmT] *= 1.0 - h;
        }
        // f: the true fractions (masks, volumes); g: the rendered ones, where a finding
        // shows with `lesionContrast` of its contrast (the rest looks like the tissue it
        // replaced).
        std::array<double, kTissues> g = f;
        const double shown = options.lesionContrast;
        if (infarct) {
          double q = infarct->weight(p, u, r, w);
          if (q > 0.0) {
            auto addInfarct = [q](std::array<double, kTissues>& t, double k) {
              t[kInfarctT] = q * k * (t[kGmT] + t[kWmT] + t[kWmhT]);
              t[kGmT] *= 1.0 - q * k;
              t[kWmT] *= 1.0 - q * k;
              t[kWmhT] *= 1.0 - q * k;
            };
            addInfarct(f, 1.0);
            addInfarct(g, shown);
          }
        }
        if (m > 0.0) {
          mix(kTumourT, m);
          for (double& x2 : g) x2 *= 1.0 - m * shown;
          g[kTumourT] += m * shown;
        }
        inside[i] = 1;
        brain += icv * (f[kGmT] + f[kWmT] + f[kWmhT] + f[kInfarctT]);
        ventricles += icv * vent * (1.0 - m);
        infarcted += icv * f[kInfarctT];
        tumour += icv * f[kTumourT];
        hyper += icv * f[kWmhT];
        if (icv * f[kInfarctT] >= 0.5) s.infarctMask.data[i] = 1.0f;
        if (icv * f[kTumourT] >= 0.5) s.meningiomaMask.data[i] = 1.0f;
        for (size_t k = 0; k < seqs.size(); ++k) {
          const double* t = kContrast[seqs[k]];
          double v = 0.0;
          for (size_t j = 0; j < kTissues; ++j) v += g[j] * t[j];
          double bleed = seqs[k] == kSwi ? bleedSwi[i] : seqs[k] == kT2s ? bleedT2s[i] : 0.0;
          v *= 1.0 - bleed * (1.0 - kBleedSignal[seqs[k]]);
          clean[k].data[i] = static_cast<float>(v * icv);
        }
      }
    }
  }
  s.brainMl = brain / 1000.0;
  s.ventricleMl = ventricles / 1000.0;
  s.infarctMl = infarcted / 1000.0;
  s.meningiomaMl = tumour / 1000.0;
  s.wmhMl = hyper / 1000.0;

  // The site: one noise/bias stream per (subject, site, sequence).
  const uint64_t siteSeed = deriveSeed(subjectSeed, tag(site.name));
  for (size_t k = 0; k < seqs.size(); ++k) {
    Rng rng(deriveSeed(siteSeed, tag(kSeqName[seqs[k]])));
    render(clean[k], seqs[k], inside, a, site, rng);
    s.sequences.push_back({kSeqName[seqs[k]], std::move(clean[k])});
  }
  return s;
}

}  // namespace gyrus::rt
