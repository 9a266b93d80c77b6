// ir::verify: the invariants every experiment the checker accepts satisfies. The
// checker reports user mistakes; a violation here is a bug in the checker (an internal
// error), and the runtime may assert these instead of re-validating them.
#include "gyrus/Ir.h"

#include <cmath>

namespace gyrus::ir {

namespace {
std::string checkPipeline(const Pipeline& p) {
  for (const PipelineOp& op : p.ops)
    if (std::string why = verify(op); !why.empty()) return why;
  return {};
}

std::string checkEncoder(const Encoder& e) {
  if (e.kind == EncoderKind::UNet) {
    const UNetEncoder& u = e.unet;
    if (u.width < 1 || u.stages < 1 || u.convsPerStage < 1 || u.maxWidth < 1 || u.inChannels < 1)
      return "a U-Net size is below 1";
  } else {
    const VitEncoder& v = e.vit;
    if (v.patch < 1 || v.dim < 1 || v.depth < 1 || v.heads < 1 || v.mlpRatio < 1 || v.inChannels < 1)
      return "a ViT size is below 1";
    if (v.dim % v.heads != 0) return "the ViT's dim is not divisible by its heads";
  }
  return {};
}
}  // namespace

int64_t minimumShots(LabelKind kind) {
  return kind == LabelKind::Binary ? 2 : kind == LabelKind::Mask ? 1 : 3;
}

std::string verify(const PretrainStage& p) {
  if (p.epochs < 1 || p.batch < 1) return "epochs or batch below 1";
  if (p.batch > p.data.count()) return "the batch is larger than the data set";
  if (p.data.channelCount() != 1) return "pretraining data have more than one channel";
  if (p.objective.terms.empty()) return "the objective has no term";
  bool random = false;
  for (const PipelineOp& op : p.pipeline.ops) random = random || op.isRandom();
  for (const ObjectiveTerm& t : p.objective.terms) {
    if (!(t.weight > 0)) return "an objective weight is not positive";
    if (t.kind == ObjectiveKind::Mae && !(t.mae.maskRatio > 0 && t.mae.maskRatio < 1 && t.mae.cube >= 1))
      return "an MAE term's mask or cube is out of range";
    if (t.kind == ObjectiveKind::SimClr) {
      if (!(t.simclr.temperature > 0) || t.simclr.projection < 1)
        return "a SimCLR term's temperature or projection is out of range";
      if (p.batch < 2 || p.data.count() < 2) return "a contrastive batch has fewer than 2 samples";
      if (!random) return "a contrastive pipeline has no random augmentation";
    }
  }
  if (std::string why = checkPipeline(p.pipeline); !why.empty()) return why;
  return checkEncoder(p.encoder);
}

std::string verify(const EvaluateStage& e) {
  if (e.shots < minimumShots(e.labelKind) || e.repeats < 1) return "too few shots or repeats for its label";
  if (e.testSite.empty() && !(e.testFraction > 0 && e.testFraction < 1)) return "the test share is outside (0, 1)";
  if (e.protocol == Protocol::Finetune) {
    if (e.epochs < 1 || !(e.lr > 0) || !std::isfinite(e.lr)) return "fine-tuning epochs below 1 or lr not positive";
    if (e.batch < 0 || e.batch > e.shots) return "the fine-tuning batch is larger than the shots";
  }
  if (e.labelKind == LabelKind::Mask && !(e.nsdToleranceMm >= 0 && std::isfinite(e.nsdToleranceMm)))
    return "the NSD tolerance is negative";
  if (std::string why = checkPipeline(e.pipeline); !why.empty()) return why;
  return checkEncoder(e.encoder);
}

std::string verify(const Experiment& ex) {
  std::vector<std::string> names;
  for (size_t i = 0; i < ex.stages.size(); ++i) {
    const Stage& s = ex.stages[i];
    auto fail = [&](const std::string& why) { return "stage " + std::to_string(i) + " '" + s.name + "': " + why; };
    for (const std::string& n : names)
      if (n == s.name) return fail("its name is not unique");
    names.push_back(s.name);
    for (size_t dep : s.deps)
      if (dep >= i) return fail("a dependency does not come before it");
    if (s.hash.size() != 64) return fail("it has no hash");
    if (s.kind == StageKind::Pretrain) {
      const PretrainStage& p = s.pretrain;
      if (std::string why = verify(p); !why.empty()) return fail(why);
      if (!p.init.empty() && !p.initWeights.empty()) return fail("it starts from both a stage and a weights file");
      if (!p.init.empty()) {
        bool found = false;
        for (size_t dep : s.deps) found = found || ex.stages[dep].name == p.init;
        if (!found) return fail("it does not depend on its init stage '" + p.init + "'");
      }
    } else {
      const EvaluateStage& e = s.evaluate;
      bool found = false;
      for (size_t dep : s.deps)
        found = found || (ex.stages[dep].kind == StageKind::Pretrain && ex.stages[dep].name == e.pretrain);
      // A weights file replaces the pretraining's result, which is then not needed.
      if (!found && e.initWeights.empty()) return fail("it does not depend on its pretrain stage '" + e.pretrain + "'");
      if (found && !e.initWeights.empty()) return fail("it judges a weights file but depends on '" + e.pretrain + "'");
      if (std::string why = verify(e); !why.empty()) return fail(why);
      // The checker's own promises, which the runtime does not rely on: it reports the
      // metrics listed, and skips random operations of an evaluation pipeline anyway.
      if (e.metrics.empty()) return fail("it has no metric");
      for (const PipelineOp& op : e.pipeline.ops)
        if (op.isRandom()) return fail("its pipeline has a random augmentation");
    }
  }
  return {};
}

}  // namespace gyrus::ir
