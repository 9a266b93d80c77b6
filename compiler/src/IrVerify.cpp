// ir::verify: the invariants every experiment the checker accepts satisfies. The
// checker reports user mistakes; a violation here is a bug in the checker (an internal
// error), and the runtime may assert these instead of re-validating them.
#include "gyrus/Ir.h"

namespace gyrus::ir {

namespace {
std::string checkPipeline(const Pipeline& p) {
  for (const PipelineOp& op : p.ops) {
    switch (op.kind) {
      case OpKind::Crop:
        for (int64_t side : op.size)
          if (side < 1) return "a crop side is below 1";
        break;
      case OpKind::Clip:
        if (!(op.lo >= 0 && op.lo < op.hi && op.hi <= 1)) return "clip percentiles are not 0 <= lo < hi <= 1";
        break;
      case OpKind::Resample:
        if (!(op.mm > 0)) return "a resample spacing is not positive";
        break;
      case OpKind::Flip:
        if (!(op.p >= 0 && op.p <= 1)) return "a flip probability is outside [0, 1]";
        break;
      case OpKind::Noise:
        if (!(op.sigma >= 0)) return "a noise sigma is negative";
        break;
      case OpKind::Gamma:
        if (!(op.lo > 0 && op.lo < op.hi)) return "a gamma range is not 0 < lo < hi";
        break;
      default: break;
    }
  }
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
      if (p.epochs < 1 || p.batch < 1) return fail("epochs or batch below 1");
      if (p.batch > p.data.count()) return fail("the batch is larger than the data set");
      if (p.objective.terms.empty()) return fail("the objective has no term");
      for (const ObjectiveTerm& t : p.objective.terms) {
        if (!(t.weight > 0)) return fail("an objective weight is not positive");
        if (t.kind == ObjectiveKind::Mae && !(t.mae.maskRatio > 0 && t.mae.maskRatio < 1 && t.mae.cube >= 1))
          return fail("an MAE term's mask or cube is out of range");
      }
      if (std::string why = checkPipeline(p.pipeline); !why.empty()) return fail(why);
      if (std::string why = checkEncoder(p.encoder); !why.empty()) return fail(why);
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
      if (!found) return fail("it does not depend on its pretrain stage '" + e.pretrain + "'");
      if (e.shots < 1 || e.repeats < 1) return fail("shots or repeats below 1");
      if (e.testSite.empty() && !(e.testFraction > 0 && e.testFraction < 1)) return fail("the test share is outside (0, 1)");
      if (e.batch < 0 || e.batch > e.shots) return fail("the fine-tuning batch is larger than the shots");
      if (e.metrics.empty()) return fail("it has no metric");
      if (std::string why = checkPipeline(e.pipeline); !why.empty()) return fail(why);
      for (const PipelineOp& op : e.pipeline.ops)
        if (op.isRandom()) return fail("its pipeline has a random augmentation");
      if (std::string why = checkEncoder(e.encoder); !why.empty()) return fail(why);
    }
  }
  return {};
}

}  // namespace gyrus::ir
