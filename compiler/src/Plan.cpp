// Plan printing and static cost estimates.
#include "gyrus/Plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gyrus {

namespace {

double voxels(const ir::Shape3& s, int64_t level) {
  double v = 1.0;
  for (int64_t side : s) v *= static_cast<double>(std::max<int64_t>(1, side >> level));
  return v;
}

ir::Shape3 inputShape(const ir::PretrainStage& p) {
  // Folder data always end in a crop (the checker requires it).
  ir::Shape3 s = p.data.kind == ir::DataKind::Synthetic ? p.data.synthetic.size : ir::Shape3{1, 1, 1};
  return ir::outputShape(p.pipeline, s);
}

/// Per-sample forward costs of an encoder and of its MAE decoder: flops, activations
/// (floats kept for the backward pass) and parameters, and the pooled feature width.
struct NetCost {
  double encFlop = 0.0, encAct = 0.0, decFlop = 0.0, decAct = 0.0;
  int64_t encParams = 0, decParams = 0;
  int64_t pooled = 0;  ///< mean and max of the bottleneck
};

/// The U-Net: 3x3x3 convolutions per stage; the light decoder, one conv block per level
/// on the way up, then a 1x1x1 head.
NetCost unetCost(const ir::UNetEncoder& e, const ir::Shape3& shape) {
  NetCost n;
  int64_t in = e.inChannels;
  for (int64_t s = 0; s < e.stages; ++s) {
    int64_t w = e.widthOf(s);
    double v = voxels(shape, s);
    for (int64_t k = 0; k < e.convsPerStage; ++k) {
      n.encFlop += 2.0 * static_cast<double>(in * w * 27) * v;
      n.encAct += 3.0 * static_cast<double>(w) * v;
      n.encParams += in * w * 27 + 2 * w;
      in = w;
    }
  }
  for (int64_t s = e.stages - 2; s >= 0; --s) {
    int64_t cin = e.widthOf(s + 1), cout = e.widthOf(s);
    double v = voxels(shape, s);
    n.decFlop += 2.0 * static_cast<double>(cin * cout * 27) * v;
    n.decAct += 4.0 * static_cast<double>(cout) * v + static_cast<double>(cin) * v;  // upsampled input too
    n.decParams += cin * cout * 27 + 2 * cout;
  }
  n.decFlop += 2.0 * static_cast<double>(e.widthOf(0) * e.inChannels) * voxels(shape, 0);
  n.decParams += e.widthOf(0) * e.inChannels + e.inChannels;
  n.pooled = 2 * e.widthOf(e.stages - 1);
  return n;
}

/// The ViT: the patch embedding, the attention and MLP of every block; the decoder, one
/// linear layer per token back to its voxels.
NetCost vitCost(const ir::VitEncoder& e, const ir::Shape3& shape) {
  NetCost n;
  const double patchVoxels = static_cast<double>(e.patch * e.patch * e.patch);
  const double tokens = voxels(shape, 0) / patchVoxels;
  const double d = static_cast<double>(e.dim), hidden = static_cast<double>(e.mlpRatio * e.dim);
  const double cin = static_cast<double>(e.inChannels);
  n.encFlop = 2.0 * cin * patchVoxels * d * tokens;
  n.encAct = d * tokens;
  for (int64_t b = 0; b < e.depth; ++b) {
    n.encFlop += 2.0 * tokens * d * (3.0 * d + d + 2.0 * hidden) + 4.0 * tokens * tokens * d;
    // Inputs of both norms, q, k, v, attention output, the MLP's hidden layer twice,
    // and the attention matrix (scores and softmax) of every head.
    n.encAct += tokens * (8.0 * d + 2.0 * hidden) + 2.0 * static_cast<double>(e.heads) * tokens * tokens;
  }
  n.encParams = ir::parameterCount(e);
  const double out = patchVoxels * cin;
  n.decFlop = 2.0 * tokens * d * out;
  n.decAct = tokens * out;
  n.decParams = static_cast<int64_t>(d * out + out);
  n.pooled = 2 * e.dim;
  return n;
}

}  // namespace

CostEstimate estimateCost(const ir::PretrainStage& p) {
  const ir::Shape3 shape = inputShape(p);
  const NetCost n = p.encoder.kind == ir::EncoderKind::Vit ? vitCost(p.encoder.vit, shape)
                                                           : unetCost(p.encoder.unet, shape);
  double flop = 0.0, act = 0.0;
  int64_t params = n.encParams;
  bool decoder = false;
  for (const ir::ObjectiveTerm& t : p.objective.terms) {
    if (t.kind == ir::ObjectiveKind::Mae) {
      // Every MAE term encodes its own masked input; they share one decoder.
      flop += n.encFlop + n.decFlop;
      act += n.encAct + n.decAct;
      decoder = true;
    } else {
      flop += 2.0 * n.encFlop;  // two views
      act += 2.0 * n.encAct;
      const int64_t w = n.pooled;
      params += w * w + w + w * t.simclr.projection + t.simclr.projection;
    }
  }
  if (decoder) params += n.decParams;
  CostEstimate c;
  c.parameters = params;
  c.gflopPerStep = 3.0 * flop * static_cast<double>(p.batch) / 1e9;
  c.activationMiB = act * 4.0 * static_cast<double>(p.batch) / (1024.0 * 1024.0);
  c.stepsPerEpoch = (p.data.count() + p.batch - 1) / p.batch;
  c.steps = c.stepsPerEpoch * p.epochs;
  return c;
}

std::string printPlan(const Plan& plan) {
  const ir::Experiment& ex = plan.experiment;
  std::string out;
  char buf[512];
  size_t pretrains = 0, evaluates = 0;
  for (const ir::Stage& s : ex.stages) (s.kind == ir::StageKind::Pretrain ? pretrains : evaluates)++;
  size_t points = std::max<size_t>(1, plan.points.size());
  std::snprintf(buf, sizeof buf, "plan: %zu sweep point%s -> %zu distinct stages: %zu pretrain, %zu evaluate\n", points,
                points == 1 ? "" : "s", ex.stages.size(), pretrains, evaluates);
  out += buf;
  for (size_t p = 0; p < plan.points.size(); ++p) {
    std::snprintf(buf, sizeof buf, "  point %zu: %s\n", p + 1, plan.points[p].c_str());
    out += buf;
  }
  out += "\n";
  for (size_t i = 0; i < ex.stages.size(); ++i) {
    const ir::Stage& s = ex.stages[i];
    std::string deps;
    for (size_t d : s.deps) deps += (deps.empty() ? "" : ", ") + ex.stages[d].name;
    std::string users;
    const std::vector<size_t>& u = plan.users.at(i);
    if (u.size() == points) {
      users = "all points";
    } else {
      for (size_t p : u) users += (users.empty() ? "points " : ",") + std::to_string(p + 1);
    }
    std::snprintf(buf, sizeof buf, "%s %s  %s\n", std::string(ir::toString(s.kind)).c_str(), s.name.c_str(),
                  s.hash.substr(0, 16).c_str());
    out += buf;
    if (!deps.empty()) out += "  after     " + deps + "\n";
    out += "  used by   " + users + (u.size() > 1 ? " (shared)" : "") + "\n";
    if (s.kind == ir::StageKind::Pretrain) {
      CostEstimate c = estimateCost(s.pretrain);
      std::snprintf(buf, sizeof buf,
                    "  cost      %lld parameters; %.2f GFLOP and %.0f MiB of activations per step (batch %lld); "
                    "%lld steps (%lld epochs x %lld); about %.0f MiB of memory\n",
                    static_cast<long long>(c.parameters), c.gflopPerStep, c.activationMiB,
                    static_cast<long long>(s.pretrain.batch), static_cast<long long>(c.steps),
                    static_cast<long long>(s.pretrain.epochs), static_cast<long long>(c.stepsPerEpoch),
                    static_cast<double>(c.parameters) * 16.0 / (1024.0 * 1024.0) + c.activationMiB);
      out += buf;
    } else {
      const ir::EvaluateStage& e = s.evaluate;
      if (e.protocol == ir::Protocol::Finetune) {
        // Each repeat fine-tunes the pretrained encoder and, as the reference, a random
        // one: `epochs` epochs of `batches` steps, or of one pass over the shots.
        int64_t batch = e.batch > 0 ? e.batch : std::min<int64_t>(e.shots, 4);
        int64_t perEpoch = e.batches > 0 ? e.batches : (e.shots + batch - 1) / batch;
        std::snprintf(buf, sizeof buf,
                      "  cost      %lld subjects; %lld fine-tunings (%lld repeats, pretrained and from scratch), "
                      "each %lld epochs x %lld steps at batch %lld = %lld steps\n",
                      static_cast<long long>(e.data.count()), static_cast<long long>(e.repeats * 2),
                      static_cast<long long>(e.repeats), static_cast<long long>(e.epochs),
                      static_cast<long long>(perEpoch), static_cast<long long>(batch),
                      static_cast<long long>(e.epochs * perEpoch));
      } else {
        std::snprintf(buf, sizeof buf, "  cost      %lld subjects encoded once; %lld probe fits\n",
                      static_cast<long long>(e.data.count()), static_cast<long long>(e.repeats * 2));
      }
      out += buf;
    }
  }
  size_t runs = 0;
  for (const auto& u : plan.users) runs += u.size();
  std::snprintf(buf, sizeof buf, "\ntotal: %zu stage runs without sharing, %zu with it\n", runs, ex.stages.size());
  out += buf;
  return out;
}

std::string planToJson(const Plan& plan) {
  const ir::Experiment& ex = plan.experiment;
  nlohmann::ordered_json j;
  j["points"] = plan.points;
  j["stages"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < ex.stages.size(); ++i) {
    const ir::Stage& s = ex.stages[i];
    nlohmann::ordered_json stage;
    stage["name"] = s.name;
    stage["kind"] = ir::toString(s.kind);
    stage["hash"] = s.hash;
    stage["deps"] = nlohmann::ordered_json::array();
    for (size_t d : s.deps) stage["deps"].push_back(ex.stages[d].hash);
    nlohmann::ordered_json users = nlohmann::ordered_json::array();
    if (i < plan.users.size())
      for (size_t p : plan.users[i]) users.push_back(p + 1);
    stage["points"] = users;
    if (s.kind == ir::StageKind::Pretrain) {
      CostEstimate c = estimateCost(s.pretrain);
      stage["cost"] = {{"parameters", c.parameters},
                       {"gflop_per_step", c.gflopPerStep},
                       {"activation_mib", c.activationMiB},
                       {"steps", c.steps}};
    }
    j["stages"].push_back(std::move(stage));
  }
  return j.dump(2) + "\n";
}

}  // namespace gyrus
