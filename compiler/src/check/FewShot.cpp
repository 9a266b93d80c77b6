// Rule pass: few-shot sizing. The held-out test set (a share, or one site) and the pool
// the shots are drawn from must leave enough labelled subjects, with both classes.
#include "../CheckInternal.h"

namespace gyrus::check {

bool Checker::checkFewShot(Evaluation& ev, const ir::EvaluateStage& e) {
  const ast::DeclEvaluate& d = *ev.decl;
  ir::LabelKind labelKind = ev.labelKind;
  std::map<std::string, Bound>& args = ev.args;
  bool finetune = ev.finetune;
  int64_t& testCount = ev.testCount;
  // Sizes: the held-out test set and the pool the shots are drawn from.
  int64_t n = e.data.count();
  testCount = static_cast<int64_t>(std::llround(e.testFraction * static_cast<double>(n)));
  testCount = std::clamp<int64_t>(testCount, 1, std::max<int64_t>(1, n - 1));
  if (!e.testSite.empty()) {
    // Out-of-domain: test on one site, draw the shots from the others.
    std::vector<std::string> sites;
    testCount = 0;
    if (e.data.kind == ir::DataKind::Folder)
      for (const ir::FolderSample& smp : e.data.folder.samples) {
        if (std::find(sites.begin(), sites.end(), smp.site) == sites.end() && !smp.site.empty()) sites.push_back(smp.site);
        testCount += smp.site == e.testSite ? 1 : 0;
      }
    SourceRange at = args["test"].range;
    if (sites.empty()) {
      diags_.report(DiagKind::Data, at, "'" + d.task[0] + "' has no sites to test on")
          .note("sites come from a table of subject and site (sites.tsv in the folder, or the `sites` argument)");
      return false;
    }
    if (testCount == 0) {
      std::string list;
      for (const std::string& site : sites) list += (list.empty() ? "" : ", ") + site;
      Diagnostic& diag = diags_.report(DiagKind::Data, at, "'" + d.task[0] + "' has no site '" + e.testSite + "'");
      suggest(diag, at, e.testSite, sites, SuggestStyle{false, '"', "site(\"", "\")"});
      diag.note("its sites: " + list);
      return false;
    }
    if (testCount == n) {
      diags_.report(DiagKind::Data, at, "every sample of '" + d.task[0] + "' is from site '" + e.testSite +
                                            "': no other site is left to draw the shots from");
      return false;
    }
  }
  int64_t pool = n - testCount;
  SourceRange shotsAt = args["shots"].present ? args["shots"].range : d.range;
  int64_t minShots = ir::minimumShots(labelKind);
  if (e.shots > pool || e.shots < minShots || pool < minShots) {
    Diagnostic& diag = diags_.report(
        DiagKind::FewShotSize, shotsAt,
        e.shots > pool ? std::to_string(e.shots) + " shots do not fit in the training pool of " + std::to_string(pool) +
                             " subjects"
                       : "a " + std::string(labelKind == ir::LabelKind::Binary ? "binary" : "regression") +
                             " task needs at least " + std::to_string(minShots) + " shots");
    diag.note(taskDatasetRange(d),
              "'" + d.task[0] + "' has " + std::to_string(n) + " subjects; " + std::to_string(testCount) +
                  " are held out for testing (" +
                  (e.testSite.empty() ? "test = " + ir::formatNumber(e.testFraction * 100) + "%"
                                      : "site '" + e.testSite + "'") +
                  ")");
    return false;
  }
  if (e.shots == pool && e.repeats > 1) {
    // Every repeat draws the whole pool: the repeats differ in nothing but their seed.
    SourceRange repeatsAt = args["repeats"].present ? args["repeats"].range : shotsAt;
    Diagnostic& diag = diags_.report(
        DiagKind::IdenticalRepeats, repeatsAt,
        "the " + std::to_string(e.shots) + " shots are the whole training pool, so all " + std::to_string(e.repeats) +
            " repeats draw the same samples" + (finetune ? "" : ": identical results, std 0"));
    diag.note(shotsAt, "shots set here; the pool is the " + std::to_string(pool) + " subjects not held out for testing");
    if (args["repeats"].present) diag.fixit(repeatsAt, "1");
  }
  if (e.data.kind == ir::DataKind::Synthetic && labelKind == ir::LabelKind::Binary &&
      (e.data.synthetic.lesionRate <= 0.0 || e.data.synthetic.lesionRate >= 1.0)) {
    diags_.report(DiagKind::ValueRange, d.taskRanges[1],
                  "label 'lesion' of '" + d.task[0] + "' has a single class (lesion_rate = " +
                      ir::formatNumber(e.data.synthetic.lesionRate * 100) + "%); AUROC needs both");
    return false;
  }
  if (e.data.kind == ir::DataKind::Folder && labelKind == ir::LabelKind::Binary) {
    size_t positives = 0;
    for (const ir::FolderSample& smp : e.data.folder.samples) positives += smp.label == 1.0 ? 1 : 0;
    if (positives == 0 || positives == e.data.folder.samples.size()) {
      diags_.report(DiagKind::Data, d.taskRanges[1],
                    "every label of '" + d.task[0] + "' is " + (positives == 0 ? "0" : "1") + "; AUROC needs both classes");
      return false;
    }
  }
  return true;
}

}  // namespace gyrus::check
