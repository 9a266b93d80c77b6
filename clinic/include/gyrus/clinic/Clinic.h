// The synthetic clinic: multi-sequence brain MRI sessions with clinical findings, from
// several simulated scanner sites, behind `gyrus synth` (which writes them as NIfTI in
// the FOMO60K / FOMO25 layouts; see docs/data.md).
//
// One anatomy per subject (the head of Synth.h, skull-stripped: only the intracranial
// space is non-zero) is rendered in several contrasts from per-voxel tissue fractions:
//
//   | tissue            | t1   | t2   | flair | dwi_b1000 | adc (1e-6 mm²/s) | swi  | t2s  |
//   |-------------------|------|------|-------|-----------|------------------|------|------|
//   | CSF               | dark | bright | dark (suppressed) | dark | 3000   | bright | bright |
//   | grey matter       | mid  | mid  | mid   | mid       | 830              | mid  | mid  |
//   | white matter      | bright | dark | dark | mid      | 730              | mid  | mid  |
//   | WM hyperintensity | dark | bright | brightest | mid  | 1050             | mid  | mid  |
//   | acute infarct     | dark | bright | faint | brightest | 380 (dark)      | mid  | mid  |
//   | meningioma        | mid  | mid+ | bright | mid+     | 850              | mid  | mid  |
//   | microbleed        |      |      |       |           |                  | black (larger) | black |
//
// Age (uniform in [20, 85) years) enlarges the ventricles, thins the cortex, shrinks the
// brain and adds white-matter hyperintensities and microbleeds. An infarct is a wedge of
// one hemisphere's cortex and white matter in an arterial territory (MCA, ACA or PCA);
// a meningioma is an extra-axial, dural-based, lobulated mass on the inner skull surface
// (with peritumoural oedema in half of the cases), with a voxel mask.
//
// A site is a scanner protocol: intensity scale, contrast gamma, bias-field strength,
// noise level and slice thickness (simulated by blurring along z). Its parameters depend
// only on its name, so a protocol can fine-tune on site "a" and test on site "b".
//
// Everything is deterministic: the anatomy and findings of subject `index` depend only
// on (seed, index); the rendering also on the site. Any subject can be generated alone,
// in any order, on any thread, with identical bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gyrus/clinic/Synth.h"

namespace gyrus::rt {

/// Which data set the subjects belong to; decides the findings and the sequences.
enum class ClinicTask {
  Pretrain,    ///< FOMO60K-like: t1/t2/flair (+ dwi_b1000/adc, swi|t2s) subsets; any finding
  Infarct,     ///< FOMO25 task 1: flair, dwi_b1000, adc, swi|t2s; label: infarct 0/1 (half positive)
  Meningioma,  ///< FOMO25 task 2: flair, dwi_b1000, swi|t2s; every subject has a meningioma (mask)
  BrainAge,    ///< FOMO25 task 3: t1, t2; label: age in years
};

/// The layout name: "fomo60k", "fomo25-task1", "fomo25-task2", "fomo25-task3".
const char* toString(ClinicTask task);
/// Parses a layout name; false when unknown.
bool parseClinicTask(std::string_view name, ClinicTask& task);

/// One simulated scanner protocol.
struct ClinicSite {
  std::string name;
  double scale = 1000.0;      ///< stored intensity of a unit tissue value (ADC excepted)
  double gamma = 1.0;         ///< contrast exponent on tissue values (ADC excepted)
  double biasStrength = 0.2;  ///< std of the log bias field's linear coefficients
  double noise = 0.03;        ///< Rician noise sigma, relative to a unit tissue value
  double sliceMm = 1.0;       ///< simulated slice thickness (FWHM of a z blur); 1 = none

  /// The site called `name`: parameters drawn from a generator seeded by the name only.
  /// Example: ClinicSite::fromName("a").
  static ClinicSite fromName(const std::string& name);
};

struct ClinicOptions {
  ClinicTask task = ClinicTask::Pretrain;
  ir::Shape3 size{96, 96, 96};  ///< voxels (1 mm isotropic)
  uint64_t seed = 1;
  std::vector<ClinicSite> sites;  ///< subject i is scanned at sites[i % sites.size()]
  /// Difficulty knobs (gyrus synth --lesion-contrast, --lesion-size). The share of a
  /// finding's contrast that the images show (1: the table above; 0.3: an infarct or a
  /// meningioma only 30 % of the way from the tissue it replaces to its own contrast);
  /// its masks and volumes are unchanged.
  double lesionContrast = 1.0;
  /// Scales the size of infarcts (the wedge's angle) and meningiomas (the radius).
  double lesionSize = 1.0;
  /// Scales every effect of age (gyrus synth --age-effect): the atrophy (ventricles,
  /// cortex, brain size) and the age-driven rise of white-matter hyperintensities and
  /// microbleeds. 1: the table above; 0: ages are drawn but the anatomy ignores them.
  double ageEffect = 1.0;
};

struct ClinicSequence {
  std::string name;  ///< file stem: t1, t2, flair, dwi_b1000, adc, swi, t2s
  Volume image;      ///< integer-valued (as scanners store them), 0 outside the brain
};

struct ClinicSubject {
  int64_t index = 0;
  std::string site;
  double age = 0.0;    ///< years, rounded to 0.1
  int infarct = 0;     ///< 1 when the subject has an acute infarct (task 1's label)
  int meningioma = 0;  ///< 1 when the subject has a meningioma
  std::string territory;  ///< of the infarct: "MCA-left", "ACA-right", ...; "" without one
  std::vector<ClinicSequence> sequences;  ///< in file order (see ClinicTask)
  Volume meningiomaMask;  ///< {0, 1}: tumour fraction >= 0.5 (zeros without a meningioma)
  Volume infarctMask;     ///< {0, 1}: infarcted tissue fraction >= 0.5
  // Volumes in ml (1 mm voxels), from the partial-volume tissue fractions.
  double brainMl = 0.0;       ///< grey + white matter (+ lesions), without CSF
  double ventricleMl = 0.0;
  double infarctMl = 0.0;
  double meningiomaMl = 0.0;
  double wmhMl = 0.0;  ///< white-matter hyperintensities (and oedema)
  int microbleeds = 0;

  /// The sequence called `name`, or nullptr.
  const Volume* sequence(std::string_view name) const;
};

/// Generates subject `index` at its site (options.sites[index % size]; a default site "a"
/// when the list is empty).
///
/// Example:
///   ClinicOptions o;
///   o.task = ClinicTask::Infarct;
///   o.sites = {ClinicSite::fromName("a"), ClinicSite::fromName("b")};
///   ClinicSubject s = synthesizeClinic(o, 3);  // at site "b"
ClinicSubject synthesizeClinic(const ClinicOptions& options, int64_t index);

/// The same subject (anatomy and findings) scanned at `site`.
ClinicSubject synthesizeClinic(const ClinicOptions& options, int64_t index, const ClinicSite& site);

}  // namespace gyrus::rt
