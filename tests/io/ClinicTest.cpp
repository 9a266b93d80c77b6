// The synthetic clinic behind `gyrus synth` (runtime/src/Clinic.h): determinism, the
// findings and their sizes, label balance, age effects, site differences, contrasts.
// Also pins the bytes of `synthesize` (Synth.h), whose anatomy code the clinic shares.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "gyrus/clinic/Clinic.h"
#include "gyrus/clinic/Synth.h"

using namespace gyrus::rt;

namespace {

uint64_t fnv(const void* p, size_t n, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

bool sameBytes(const Volume& a, const Volume& b) {
  return a.shape == b.shape && a.data.size() == b.data.size() &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

ClinicOptions optionsOf(ClinicTask task, int64_t side, uint64_t seed = 5) {
  ClinicOptions o;
  o.task = task;
  o.size = {side, side, side};
  o.seed = seed;
  o.sites = {ClinicSite::fromName("a"), ClinicSite::fromName("b")};
  return o;
}

int64_t count(const Volume& mask) {
  return std::count_if(mask.data.begin(), mask.data.end(), [](float v) { return v > 0.5f; });
}

double meanWhere(const Volume& v, const std::vector<uint8_t>& where) {
  double sum = 0.0;
  int64_t n = 0;
  for (size_t i = 0; i < v.data.size(); ++i)
    if (where[i]) sum += v.data[i], ++n;
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

/// Noise estimate: median |v(x+1) - v(x)| over pairs inside the brain (edges are rare).
double neighbourNoise(const Volume& v) {
  std::vector<double> d;
  for (int64_t z = 0; z < v.shape[2]; ++z)
    for (int64_t y = 0; y < v.shape[1]; ++y)
      for (int64_t x = 0; x + 1 < v.shape[0]; ++x)
        if (v.at(x, y, z) > 0 && v.at(x + 1, y, z) > 0) d.push_back(std::abs(v.at(x + 1, y, z) - v.at(x, y, z)));
  return median(d);
}

/// Median |v(z+1) - v(z)| inside the brain.
double zNeighbourDifference(const Volume& v) {
  std::vector<double> d;
  for (int64_t z = 0; z + 1 < v.shape[2]; ++z)
    for (int64_t y = 0; y < v.shape[1]; ++y)
      for (int64_t x = 0; x < v.shape[0]; ++x)
        if (v.at(x, y, z) > 0 && v.at(x, y, z + 1) > 0) d.push_back(std::abs(v.at(x, y, z + 1) - v.at(x, y, z)));
  return median(d);
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(a.size());
  mb /= static_cast<double>(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

std::vector<std::string> names(const ClinicSubject& s) {
  std::vector<std::string> n;
  for (const ClinicSequence& q : s.sequences) n.push_back(q.name);
  return n;
}

}  // namespace

// Synth.cpp and Clinic.cpp share the anatomy code (Anatomy.h); `synthesize` must keep
// producing the same bytes (stage hashes and the IR version rely on it). The checksums
// were computed from the generator before the anatomy moved to Anatomy.h, and again when
// the difficulty knobs came (at their calibrated defaults, docs/performance.md).
TEST_CASE("synthesize is byte-identical to the pinned checksums") {
  struct Case {
    int64_t side;
    uint64_t seed;
    double rate, noise;
    uint64_t checksum;
  };
  const Case cases[] = {{40, 1, 0.5, 0.05, 0xd4c16644b94be200ULL},
                        {24, 7, 1.0, 0.0, 0xdb567d5abdfbc75bULL},
                        {33, 3, 0.5, 0.1, 0x4226e1652a4bb87dULL}};
  for (const Case& c : cases) {
    gyrus::ir::SyntheticData d;
    d.size = gyrus::ir::Shape3{c.side, c.side + 2, c.side - 1};
    d.seed = c.seed;
    d.lesionRate = c.rate;
    d.noise = c.noise;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 6; ++i) {
      Subject s = synthesize(d, i);
      h = fnv(s.image.data.data(), s.image.data.size() * sizeof(float), h);
      h = fnv(&s.age, sizeof s.age, h);
      h = fnv(&s.lesion, sizeof s.lesion, h);
    }
    CAPTURE(c.side);
    CHECK(h == c.checksum);
  }
}

TEST_CASE("synthesize's difficulty knobs: contrast and size act on the lesions only; shape and scanner on the image") {
  gyrus::ir::SyntheticData d;
  d.size = gyrus::ir::Shape3{40, 40, 40};
  d.lesionRate = 1.0;
  // Lesion contrast 0 paints nothing and draws the same random numbers: the difference
  // to any other contrast is exactly the lesions, brighter by at most 1.25 x contrast.
  auto changed = [&](double contrast, double radius, int64_t index, double& maxRatio) {
    gyrus::ir::SyntheticData flat = d, lit = d;
    flat.lesionContrast = 0.0;
    lit.lesionContrast = contrast;
    flat.lesionSize = lit.lesionSize = radius;
    flat.noise = lit.noise = 0.0;
    Subject a = synthesize(flat, index), b = synthesize(lit, index);
    int64_t n = 0;
    maxRatio = 1.0;
    for (size_t i = 0; i < a.image.data.size(); ++i) {
      if (a.image.data[i] == b.image.data[i]) continue;
      ++n;
      maxRatio = std::max(maxRatio, static_cast<double>(b.image.data[i]) / a.image.data[i]);
    }
    return n;
  };
  for (int64_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    double ratioSmall = 1, ratioLarge = 1, ratioBright = 1;
    int64_t small = changed(0.3, 1.5, i, ratioSmall), large = changed(0.3, 4.0, i, ratioLarge);
    changed(1.0, 4.0, i, ratioBright);
    CHECK(small > 0);
    CHECK(large > 3 * small);  // about (4 / 1.5)^3 = 19 times the volume
    CHECK(small < 2 * 300);    // at most two lesions of radius <= 1.5 x 1.3 (+ the edge)
    // Brightness: contrast x 0.75-1.25 above the tissue (twice where two lesions
    // overlap), through the scanner's gamma (exp(±0.175) at the default site effect).
    CHECK(ratioLarge < std::pow(1.0 + 0.3 * 1.25, 2 * 1.2));
    CHECK(ratioBright > ratioLarge);
  }
  // Shape and scanner change the bytes; 0 % of either is a valid setting.
  gyrus::ir::SyntheticData balls = d, clean = d;
  balls.lesionShape = 0.0;
  clean.siteEffect = 0.0;
  Subject s0 = synthesize(d, 0), s1 = synthesize(balls, 0), s2 = synthesize(clean, 0);
  CHECK(s0.image.data != s1.image.data);
  CHECK(s0.image.data != s2.image.data);
  CHECK(s0.age == s2.age);  // the scanner's stream leaves the subject alone
  CHECK(s0.lesion == s2.lesion);
}

TEST_CASE("the clinic's knobs: a finding's contrast scales its difference on every sequence; masks stay") {
  ClinicOptions full = optionsOf(ClinicTask::Infarct, 32), half = full, none = full;
  half.lesionContrast = 0.5;
  none.lesionContrast = 0.0;  // the same subject without the infarct's contrast (same noise)
  int checked = 0;
  for (int64_t i = 0; i < 16 && checked < 3; ++i) {
    ClinicSubject a = synthesizeClinic(full, i), b = synthesizeClinic(half, i), z = synthesizeClinic(none, i);
    if (!a.infarct || count(a.infarctMask) < 20) continue;
    ++checked;
    CAPTURE(i);
    CHECK(a.infarctMask.data == b.infarctMask.data);
    CHECK(a.infarctMask.data == z.infarctMask.data);
    CHECK(a.infarctMl == b.infarctMl);
    std::vector<uint8_t> lesion(a.infarctMask.data.size());
    for (size_t k = 0; k < lesion.size(); ++k) lesion[k] = a.infarctMask.data[k] > 0.5f;
    // How much the infarct changes a sequence, relative to the same voxels without it.
    auto excess = [&](const ClinicSubject& s, const char* seq) {
      return meanWhere(*s.sequence(seq), lesion) / meanWhere(*z.sequence(seq), lesion) - 1.0;
    };
    double dwi = excess(a, "dwi_b1000");
    CHECK(dwi > 0.8);                   // bright on DWI
    CHECK(excess(a, "adc") < -0.3);     // dark on ADC
    CHECK(std::abs(excess(a, "flair")) < 0.25 * dwi);  // barely visible on FLAIR
    CHECK(excess(b, "dwi_b1000") > 0.3 * dwi);
    CHECK(excess(b, "dwi_b1000") < 0.7 * dwi);
  }
  CHECK(checked == 3);
  // Size scales the infarcts of the same subjects.
  ClinicOptions larger = full;
  larger.lesionSize = 1.5;
  double sumFull = 0, sumLarger = 0;
  for (int64_t i = 0; i < 16; ++i) {
    sumFull += synthesizeClinic(full, i).infarctMl;
    sumLarger += synthesizeClinic(larger, i).infarctMl;
  }
  CHECK(sumLarger > 1.5 * sumFull);
}

TEST_CASE("the same seed gives identical bytes, in any order; another seed does not") {
  ClinicOptions o = optionsOf(ClinicTask::Infarct, 32);
  ClinicSubject later = synthesizeClinic(o, 3);
  ClinicSubject first = synthesizeClinic(o, 0);
  ClinicSubject again = synthesizeClinic(o, 3);
  REQUIRE(names(later) == names(again));
  for (size_t k = 0; k < later.sequences.size(); ++k)
    CHECK(sameBytes(later.sequences[k].image, again.sequences[k].image));
  CHECK(sameBytes(later.infarctMask, again.infarctMask));
  CHECK(later.age == again.age);
  CHECK(later.site == "b");
  CHECK(first.site == "a");

  ClinicSubject reseeded = synthesizeClinic(optionsOf(ClinicTask::Infarct, 32, 6), 3);
  CHECK_FALSE(sameBytes(reseeded.sequences[0].image, later.sequences[0].image));
}

TEST_CASE("images are skull-stripped integers with a non-zero brain") {
  ClinicSubject s = synthesizeClinic(optionsOf(ClinicTask::Pretrain, 32), 1);
  REQUIRE_FALSE(s.sequences.empty());
  const Volume& v = s.sequences[0].image;
  CHECK(v.at(0, 0, 0) == 0.0f);
  CHECK(v.at(31, 31, 31) == 0.0f);
  int64_t nonzero = 0, bad = 0;
  for (float x : v.data) {
    bad += x != std::nearbyint(x) || x < 0.0f || x > 32767.0f ? 1 : 0;
    nonzero += x > 0 ? 1 : 0;
  }
  CHECK(bad == 0);  // int16-representable integers
  CHECK(nonzero > v.numel() / 5);
}

TEST_CASE("each layout has its sequences; swi and t2s alternate") {
  std::set<std::string> susceptibility;
  for (int i = 0; i < 24; ++i) {
    ClinicSubject t1 = synthesizeClinic(optionsOf(ClinicTask::Infarct, 16), i);
    auto n = names(t1);
    REQUIRE(n.size() == 4);
    CHECK(n[0] == "flair");
    CHECK(n[1] == "dwi_b1000");
    CHECK(n[2] == "adc");
    CHECK((n[3] == "swi" || n[3] == "t2s"));
    susceptibility.insert(n[3]);
    auto m = names(synthesizeClinic(optionsOf(ClinicTask::Meningioma, 16), i));
    REQUIRE(m.size() == 3);
    CHECK(m[2] == n[3]);  // the same subject keeps its susceptibility sequence
    CHECK(names(synthesizeClinic(optionsOf(ClinicTask::BrainAge, 16), i)) == std::vector<std::string>{"t1", "t2"});
  }
  CHECK(susceptibility.size() == 2);

  std::set<std::vector<std::string>> pretrainSets;
  for (int i = 0; i < 24; ++i) {
    auto n = names(synthesizeClinic(optionsOf(ClinicTask::Pretrain, 16), i));
    CHECK_FALSE(n.empty());
    pretrainSets.insert(n);
  }
  CHECK(pretrainSets.size() >= 3);  // subjects have different subsets
}

TEST_CASE("task 1 labels are balanced; task 2 always has a meningioma; task 3 none") {
  int positives = 0;
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    ClinicSubject s = synthesizeClinic(optionsOf(ClinicTask::Infarct, 16), i);
    positives += s.infarct;
    CHECK(s.meningioma == 0);
    CHECK(s.territory.empty() == (s.infarct == 0));
  }
  CHECK(positives > 70);
  CHECK(positives < 130);
  for (int i = 0; i < 20; ++i) {
    ClinicSubject m = synthesizeClinic(optionsOf(ClinicTask::Meningioma, 16), i);
    CHECK(m.meningioma == 1);
    CHECK(m.infarct == 0);
    ClinicSubject a = synthesizeClinic(optionsOf(ClinicTask::BrainAge, 16), i);
    CHECK(a.infarct + a.meningioma == 0);
    CHECK(a.age >= 20.0);
    CHECK(a.age < 85.0);
  }
}

TEST_CASE("infarcts: territory-sized, DWI bright and ADC dark inside") {
  ClinicOptions o = optionsOf(ClinicTask::Infarct, 64);
  int checked = 0;
  for (int i = 0; i < 16 && checked < 4; ++i) {
    ClinicSubject s = synthesizeClinic(o, i);
    CAPTURE(i);
    if (!s.infarct) {
      CHECK(count(s.infarctMask) == 0);
      CHECK(s.infarctMl == 0.0);
      continue;
    }
    ++checked;
    double fraction = s.infarctMl / s.brainMl;
    CAPTURE(fraction);
    CHECK(fraction > 0.002);
    CHECK(fraction < 0.12);
    CHECK(std::abs(static_cast<double>(count(s.infarctMask)) / 1000.0 - s.infarctMl) < 0.2 * s.infarctMl + 0.05);

    std::vector<uint8_t> lesion(s.infarctMask.data.size()), rest(lesion.size());
    const Volume* dwi = s.sequence("dwi_b1000");
    const Volume* adc = s.sequence("adc");
    REQUIRE(dwi != nullptr);
    REQUIRE(adc != nullptr);
    for (size_t k = 0; k < lesion.size(); ++k) {
      lesion[k] = s.infarctMask.data[k] > 0.5f;
      rest[k] = !lesion[k] && dwi->data[k] > 0;
    }
    CHECK(meanWhere(*dwi, lesion) > 1.8 * meanWhere(*dwi, rest));
    std::vector<double> restAdc;
    for (size_t k = 0; k < lesion.size(); ++k)
      if (rest[k]) restAdc.push_back(adc->data[k]);
    CHECK(meanWhere(*adc, lesion) < 0.7 * median(restAdc));
    // FLAIR: faint (acute), see "the clinic's knobs" below.
  }
  CHECK(checked == 4);
}

TEST_CASE("meningiomas: extra-axial masses of plausible size touching the inner skull") {
  ClinicOptions o = optionsOf(ClinicTask::Meningioma, 64);
  for (int i = 0; i < 4; ++i) {
    ClinicSubject s = synthesizeClinic(o, i);
    CAPTURE(i);
    const Volume& mask = s.meningiomaMask;
    REQUIRE(mask.shape == s.sequences[0].image.shape);
    double fraction = s.meningiomaMl / s.brainMl;
    CAPTURE(fraction);
    CHECK(fraction > 0.001);
    CHECK(fraction < 0.08);
    CHECK(std::abs(static_cast<double>(count(mask)) / 1000.0 - s.meningiomaMl) < 0.2 * s.meningiomaMl + 0.05);
    // Dural-based: some tumour voxel has a background (outside the skull) neighbour.
    const Volume& img = s.sequences[0].image;
    bool touches = false;
    for (int64_t z = 1; z + 1 < mask.shape[2] && !touches; ++z)
      for (int64_t y = 1; y + 1 < mask.shape[1] && !touches; ++y)
        for (int64_t x = 1; x + 1 < mask.shape[0] && !touches; ++x) {
          if (mask.at(x, y, z) < 0.5f) continue;
          touches = img.at(x - 1, y, z) == 0 || img.at(x + 1, y, z) == 0 || img.at(x, y - 1, z) == 0 ||
                    img.at(x, y + 1, z) == 0 || img.at(x, y, z - 1) == 0 || img.at(x, y, z + 1) == 0;
        }
    CHECK(touches);
    for (size_t k = 0; k < mask.data.size(); ++k)
      if (mask.data[k] > 0.5f) REQUIRE(img.data[k] > 0);  // the mask lies inside the image
  }
}

TEST_CASE("ventricles enlarge with age") {
  std::vector<double> age, ventricles, brain;
  for (int i = 0; i < 40; ++i) {
    ClinicSubject s = synthesizeClinic(optionsOf(ClinicTask::BrainAge, 40), i);
    age.push_back(s.age);
    ventricles.push_back(s.ventricleMl / (s.brainMl + s.ventricleMl));
    brain.push_back(s.brainMl);
  }
  CHECK(pearson(age, ventricles) > 0.6);
  CHECK(pearson(age, brain) < -0.3);
}

TEST_CASE("the age knob scales atrophy, hyperintensities and microbleeds; at 0 the anatomy ignores age") {
  struct Figures {
    double ventricleR, wmhR, bleedR, wmhMean;
  };
  auto figures = [](double effect) {
    std::vector<double> age, ventricles, wmh, bleeds;
    for (int i = 0; i < 40; ++i) {
      ClinicOptions o = optionsOf(ClinicTask::BrainAge, 40);
      o.ageEffect = effect;
      ClinicSubject s = synthesizeClinic(o, i);
      age.push_back(s.age);
      ventricles.push_back(s.ventricleMl / (s.brainMl + s.ventricleMl));
      wmh.push_back(s.wmhMl);
      bleeds.push_back(s.microbleeds);
    }
    double mean = 0;
    for (double v : wmh) mean += v / static_cast<double>(wmh.size());
    return Figures{pearson(age, ventricles), pearson(age, wmh), pearson(age, bleeds), mean};
  };
  Figures full = figures(1.0), half = figures(0.5), none = figures(0.0);
  CHECK(full.ventricleR > 0.6);
  CHECK(full.wmhR > 0.4);
  CHECK(full.bleedR > 0.3);
  CHECK(half.ventricleR < full.ventricleR);
  CHECK(half.wmhMean < full.wmhMean);
  CHECK(std::abs(none.ventricleR) < 0.35);
  CHECK(std::abs(none.wmhR) < 0.35);
  CHECK(std::abs(none.bleedR) < 0.35);
  // The ages themselves do not depend on the knob.
  ClinicOptions o = optionsOf(ClinicTask::BrainAge, 40);
  o.ageEffect = 0.0;
  CHECK(synthesizeClinic(o, 7).age == synthesizeClinic(optionsOf(ClinicTask::BrainAge, 40), 7).age);
}

TEST_CASE("sites differ measurably on the same anatomy") {
  ClinicOptions o = optionsOf(ClinicTask::Infarct, 48);
  ClinicSite a = ClinicSite::fromName("a"), b = ClinicSite::fromName("b");
  CHECK(ClinicSite::fromName("a").scale == a.scale);  // a site is its name
  ClinicSubject sa = synthesizeClinic(o, 2, a), sb = synthesizeClinic(o, 2, b);
  // Same subject: same anatomy and findings.
  CHECK(sa.age == sb.age);
  CHECK(sa.infarct == sb.infarct);
  CHECK(sameBytes(sa.infarctMask, sb.infarctMask));
  REQUIRE(names(sa) == names(sb));
  // Different scanner: intensity scale and noise.
  const Volume& fa = *sa.sequence("flair");
  const Volume& fb = *sb.sequence("flair");
  std::vector<uint8_t> brainA(fa.data.size()), brainB(fb.data.size());
  for (size_t k = 0; k < fa.data.size(); ++k) brainA[k] = fa.data[k] > 0, brainB[k] = fb.data[k] > 0;
  CHECK(brainA == brainB);  // the same (skull-stripped) brain
  double ratio = meanWhere(fb, brainB) / meanWhere(fa, brainA);
  CHECK(ratio > 1.5);  // site b's scale is 2790, site a's 738
  // ADC is quantitative (no scale or gamma), so its noise compares directly: a 0.052, b 0.015.
  double noiseA = neighbourNoise(*sa.sequence("adc")), noiseB = neighbourNoise(*sb.sequence("adc"));
  CAPTURE(noiseA);
  CAPTURE(noiseB);
  CHECK(noiseA > 2.0 * noiseB);
}

TEST_CASE("thick slices blur along z only") {
  ClinicOptions o = optionsOf(ClinicTask::BrainAge, 40);
  ClinicSite thin = ClinicSite::fromName("a"), thick = thin;
  thick.sliceMm = 4.0;
  ClinicSubject sThin = synthesizeClinic(o, 1, thin), sThick = synthesizeClinic(o, 1, thick);
  const Volume& t = *sThin.sequence("t1");
  const Volume& k = *sThick.sequence("t1");
  // Noise is added after the blur: x differences stay, z differences drop below them.
  CHECK(zNeighbourDifference(t) > 0.8 * neighbourNoise(t));
  CHECK(zNeighbourDifference(k) < zNeighbourDifference(t));
  CHECK(std::abs(neighbourNoise(k) - neighbourNoise(t)) < 0.25 * neighbourNoise(t));
}

TEST_CASE("layout names round-trip") {
  for (ClinicTask t : {ClinicTask::Pretrain, ClinicTask::Infarct, ClinicTask::Meningioma, ClinicTask::BrainAge}) {
    ClinicTask parsed{};
    REQUIRE(parseClinicTask(toString(t), parsed));
    CHECK((parsed == t));
  }
  ClinicTask ignored{};
  CHECK_FALSE(parseClinicTask("fomo25-task4", ignored));
}
