// Rule pass: pipeline agreement between a pretraining and an evaluation of its encoder.
#include "../CheckInternal.h"

namespace gyrus::check {

// Spacing and intensity normalisation of an evaluation's pipeline must be those the
// encoder was pretrained with (the FOMO25 baseline fine-tuned at native spacing and
// predicted at 1 mm: a silent accuracy loss). Crops may differ. A rule about three
// operations by name: resample, zscore and clip.
bool Checker::checkPipelinesAgree(const Value& pre, const Value& eval, SourceRange evalAt, bool finetune) {
  struct Facts {
    double mm = 0;  // 0: native spacing
    SourceRange mmAt;
    int zscore = 0;  // 0 none, 1 over all voxels, 2 over non-zero voxels
    SourceRange zAt;
    bool clip = false;  // and its percentiles
    double clipLo = 0, clipHi = 0;
    SourceRange clipAt;
  };
  auto facts = [](const Value& v, SourceRange fallback) {
    Facts f;
    f.mmAt = f.zAt = f.clipAt = fallback;
    for (size_t i = 0; i < v.pipeline.ops.size(); ++i) {
      const ir::PipelineOp& op = v.pipeline.ops[i];
      SourceRange at = i < v.opOrigins.size() ? v.opOrigins[i] : fallback;
      if (op.name == "resample") {
        f.mm = op.number("spacing");
        f.mmAt = at;
      }
      if (op.name == "zscore") {
        f.zscore = op.flag("nonzero") ? 2 : 1;
        f.zAt = at;
      }
      if (op.name == "clip") {
        f.clip = true;
        f.clipLo = op.number("lo");
        f.clipHi = op.number("hi");
        f.clipAt = at;
      }
    }
    return f;
  };
  // Without the step in question, notes point at the pretraining's pipeline as a whole.
  Facts a = facts(pre, pre.dataOrigin.valid() ? pre.dataOrigin : pre.range), b = facts(eval, evalAt);
  const char* use = finetune ? "fine-tuning" : "evaluation";
  auto spacing = [](double mm) { return mm == 0 ? std::string("native spacing") : ir::formatNumber(mm) + "mm"; };
  if (a.mm != b.mm) {
    diags_.report(DiagKind::PipelineMismatch, b.mmAt,
                  std::string(use) + " data are resampled to " + spacing(b.mm) + ", but the encoder was pretrained at " +
                      spacing(a.mm))
        .note(a.mmAt, a.mm == 0 ? "the pretraining's pipeline, which does not resample"
                                : "pretraining resamples here")
        .note("use the pretraining's spacing, e.g. `resample(" + (a.mm == 0 ? std::string("1") : ir::formatNumber(a.mm)) +
              "mm)`, in both pipelines");
    return false;
  }
  if (a.clip != b.clip || (a.clip && (a.clipLo != b.clipLo || a.clipHi != b.clipHi))) {
    auto clipping = [](const Facts& f) {
      return f.clip ? "clipped at " + ir::formatNumber(f.clipLo * 100) + "% .. " + ir::formatNumber(f.clipHi * 100) + "%"
                    : std::string("not clipped");
    };
    Diagnostic& diag = diags_.report(DiagKind::NormalizationMismatch, b.clipAt,
                                     std::string(use) + " data are " + clipping(b) + ", but the encoder was pretrained on " +
                                         "data " + clipping(a));
    diag.note(a.clipAt, b.clip && !a.clip ? "the pretraining's pipeline, which does not clip" : "pretraining clips here");
    diag.note("intensities the encoder never saw in pretraining shift its features; use the same clip() in both "
              "pipelines");
  }
  if (a.zscore != b.zscore) {
    auto norm = [](int z) {
      return z == 0 ? std::string("no z-score") : z == 1 ? std::string("a z-score over all voxels")
                                                         : std::string("a z-score over non-zero voxels");
    };
    diags_.report(DiagKind::PipelineMismatch, b.zAt,
                  std::string(use) + " data get " + norm(b.zscore) + ", but the encoder was pretrained with " + norm(a.zscore))
        .note(a.zAt, a.zscore == 0 ? "the pretraining's pipeline, which has no z-score" : "pretraining normalises here");
    return false;
  }
  return true;
}


}  // namespace gyrus::check
