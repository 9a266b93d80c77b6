// Rule pass: heads. The head an evaluation trains follows from its task (a pooled
// head for one number per sample, a dense decoder for a mask; a probe has none).
#include "../CheckInternal.h"

namespace gyrus::check {

bool Checker::checkTaskHead(Evaluation& ev) {
  std::map<std::string, Bound>& args = ev.args;
  // The head follows from the task: one number per sample needs a pooled head, a mask
  // a dense decoder; a probe has no decoder at all.
  bool segmentation = ev.labelKind == ir::LabelKind::Mask;
  if (segmentation && !ev.finetune) {
    diags_.report(DiagKind::TaskHead, ev.decl->taskRanges[1],
                  ev.labelText() + " is a segmentation; a probe predicts one number per sample")
        .note(std::string("segment with `protocol = finetune`: the encoder is trained with ") +
              (ev.model.encoder.kind == ir::EncoderKind::Vit ? "a per-token patch head (one logit per voxel)"
                                                          : "a dense U-Net decoder"));
    return false;
  }
  if (args["head"].present && args["head"].value.flag != segmentation) {
    bool dense = args["head"].value.flag;
    Diagnostic& diag = diags_.report(
        DiagKind::TaskHead, args["head"].range,
        dense ? "a dense decoder predicts a mask, but " + ev.labelText() + " is one number per sample"
              : "a pooled head predicts one number, but " + ev.labelText() + " is a segmentation mask");
    diag.fixit(args["head"].range, dense ? "pooled" : "dense");
    return false;
  }
  if (args["alpha"].present && (ev.finetune || ev.labelKind != ir::LabelKind::Continuous)) {
    Diagnostic& diag = diags_.report(
        DiagKind::UnknownArgument, args["alpha"].range,
        "'alpha' is the L2 strength of the ridge probe of a continuous label; " +
            (ev.finetune ? std::string("a fine-tuning evaluation fits no probe")
                         : ev.labelText() + " is judged by " +
                               (segmentation ? "fine-tuning" : "a logistic probe")));
    diag.note("remove it; without it a regression probe chooses its strength by leave-one-out on the shots");
    return false;
  }
  if (args["tolerance"].present && !segmentation) {
    diags_.report(DiagKind::UnknownArgument, args["tolerance"].range,
                  "'tolerance' is the surface-distance tolerance of segmentation metrics; " + ev.labelText() +
                      " is not a segmentation");
    return false;
  }
  return true;
}

// A reconstruction objective needs a decoder (the light MAE decoder is the default); a
// decoder no term uses is reported as unused.
bool Checker::checkObjectiveHead(const ast::DeclPretrain& d, const Value& obj, std::map<std::string, Bound>& fields) {
  // A reconstruction objective needs a decoder (the light MAE decoder is the default).
  bool reconstructs = false;
  for (const ir::ObjectiveTerm& t : obj.objective.terms) reconstructs = reconstructs || t.kind == ir::ObjectiveKind::Mae;
  if (fields["decoder"].present) {
    bool light = fields["decoder"].value.flag;
    if (reconstructs && !light) {
      diags_.report(DiagKind::ObjectiveHead, fields["decoder"].range,
                    "mae reconstructs the input, so pretrain '" + d.name + "' needs a decoder")
          .fixit(fields["decoder"].range, "light")
          .note(fields["objective"].range, "the objective is declared here");
      return false;
    }
    if (!reconstructs && light) {
      diags_.report(DiagKind::UnusedDeclaration, fields["decoder"].range,
                    "the decoder is unused: no term of the objective reconstructs the input");
    }
  }
  return true;
}

}  // namespace gyrus::check
