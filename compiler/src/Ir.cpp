// Canonical printing and content hashing of the experiment IR.
#include "gyrus/Ir.h"

#include <cstdio>
#include <cstdlib>

#include "IrFields.h"

namespace gyrus::ir {

std::string_view toString(StageKind k) { return fields::enumName(k); }
std::string_view toString(LabelKind k) { return fields::enumName(k); }
std::string_view toString(Schedule s) { return fields::enumName(s); }
std::string_view toString(Precision p) { return fields::enumName(p); }
std::string_view toString(StemInit s) { return fields::enumName(s); }
std::string_view toString(Protocol p) { return fields::enumName(p); }
std::string_view toString(OptimizerKind k) { return fields::enumName(k); }
std::string_view toString(ObjectiveKind k) { return fields::enumName(k); }

std::string formatNumber(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string formatShape(const Shape3& s) {
  if (s[0] == s[1] && s[1] == s[2]) return std::to_string(s[0]) + "^3";
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

std::string print(const SyntheticData& d) {
  return "synthetic(subjects = " + std::to_string(d.subjects) + ", size = " + formatShape(d.size) +
         ", seed = " + std::to_string(d.seed) + ", lesion_rate = " + formatNumber(d.lesionRate) +
         ", noise = " + formatNumber(d.noise) + ", lesion_contrast = " + formatNumber(d.lesionContrast) +
         ", lesion_size = " + formatNumber(d.lesionSize) + "mm, lesion_shape = " + formatNumber(d.lesionShape) +
         ", site_effect = " + formatNumber(d.siteEffect) + ", age_effect = " + formatNumber(d.ageEffect) + ")";
}

namespace {
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}
std::string stringList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + quoted(items[i]);
  return out + "]";
}
}  // namespace

std::string print(const DataSource& d) {
  if (d.kind == DataKind::Synthetic) return print(d.synthetic);
  const FolderData& f = d.folder;
  std::string out = f.layout == FolderData::Layout::Fomo60k ? "fomo60k(sequences = "
                    : f.layout == FolderData::Layout::Fomo25  ? "fomo25(channels = "
                                                              : "folder(glob = ";
  out += f.layout == FolderData::Layout::Glob ? quoted(f.glob) : stringList(f.channels);
  if (f.layout == FolderData::Layout::Glob && f.hasLabel) out += ", column = " + quoted(f.labelName);
  if (f.hasLabel)
    out += std::string(", label = ") + (f.labelKind == LabelKind::Binary       ? "binary"
                                        : f.labelKind == LabelKind::Continuous ? "regression"
                                                                               : "segmentation");
  if (f.skipUnreadable) out += ", skip_unreadable = true";
  out += ", samples = " + std::to_string(f.samples.size()) + ", fingerprint = " + f.fingerprint.substr(0, 16) + ")";
  return out;
}

std::string print(const Pipeline& p) {
  if (p.ops.empty()) return "identity()";
  std::string out;
  for (const PipelineOp& op : p.ops) out += (out.empty() ? "" : " >> ") + print(op);
  return out;
}

std::string print(const UNetEncoder& e) {
  return "unet(in_channels = " + std::to_string(e.inChannels) + ", width = " + std::to_string(e.width) +
         ", stages = " + std::to_string(e.stages) + ", convs = " + std::to_string(e.convsPerStage) +
         ", max_width = " + std::to_string(e.maxWidth) + ")";
}

std::string print(const VitEncoder& e) {
  return "vit(in_channels = " + std::to_string(e.inChannels) + ", patch = " + std::to_string(e.patch) +
         ", dim = " + std::to_string(e.dim) + ", depth = " + std::to_string(e.depth) +
         ", heads = " + std::to_string(e.heads) + ", mlp_ratio = " + std::to_string(e.mlpRatio) + ")";
}

std::string print(const Encoder& e) { return e.kind == EncoderKind::UNet ? print(e.unet) : print(e.vit); }

bool Encoder::operator==(const Encoder& o) const { return print(*this) == print(o); }

std::string print(const Objective& o) {
  std::string out;
  for (const ObjectiveTerm& t : o.terms) {
    if (!out.empty()) out += " + ";
    out += formatNumber(t.weight) + " * ";
    if (t.kind == ObjectiveKind::Mae) {
      out += "mae(mask = " + formatNumber(t.mae.maskRatio) + ", cube = " + std::to_string(t.mae.cube) +
             ", masked_only = " + (t.mae.maskedOnly ? "true" : "false") + ")";
    } else {
      out += "simclr(temperature = " + formatNumber(t.simclr.temperature) +
             ", projection = " + std::to_string(t.simclr.projection) + ")";
    }
  }
  return out;
}

std::string print(const Optimizer& o) {
  std::string out = std::string(toString(o.kind)) + "(lr = " + formatNumber(o.lr) +
                    ", weight_decay = " + formatNumber(o.weightDecay);
  if (o.kind == OptimizerKind::Sgd) out += ", momentum = " + formatNumber(o.momentum);
  return out + ", warmup = " + std::to_string(o.warmupEpochs) + ", schedule = " + std::string(toString(o.schedule)) +
         ", clip = " + formatNumber(o.gradClip) + ")";
}

int64_t parameterCount(const VitEncoder& e) {
  const int64_t d = e.dim, hidden = e.mlpRatio * e.dim;
  int64_t total = e.inChannels * e.patch * e.patch * e.patch * d + d;  // patch embedding, with bias
  // Per block: two LayerNorms, qkv and output projections, the MLP (all with biases).
  total += e.depth * (2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d));
  return total + 2 * d;  // the final LayerNorm
}

std::vector<ParameterShape> encoderParameters(const Encoder& e) {
  std::vector<ParameterShape> out;
  if (e.kind == EncoderKind::UNet) {
    const UNetEncoder& u = e.unet;
    int64_t in = u.inChannels;
    for (int64_t s = 0; s < u.stages; ++s) {
      const int64_t w = u.widthOf(s);
      for (int64_t c = 0; c < u.convsPerStage; ++c) {
        const std::string block = "stage" + std::to_string(s) + ".conv" + std::to_string(c) + ".";
        out.push_back({block + "conv.weight", {w, in, 3, 3, 3}});
        out.push_back({block + "norm.weight", {w}});
        out.push_back({block + "norm.bias", {w}});
        in = w;
      }
    }
    return out;
  }
  const VitEncoder& v = e.vit;
  const int64_t d = v.dim, hidden = v.mlpRatio * v.dim;
  out.push_back({"patch_embed.weight", {d, v.inChannels, v.patch, v.patch, v.patch}});
  out.push_back({"patch_embed.bias", {d}});
  for (int64_t b = 0; b < v.depth; ++b) {
    const std::string block = "block" + std::to_string(b) + ".";
    out.push_back({block + "norm1.weight", {d}});
    out.push_back({block + "norm1.bias", {d}});
    out.push_back({block + "attn.qkv.weight", {3 * d, d}});
    out.push_back({block + "attn.qkv.bias", {3 * d}});
    out.push_back({block + "attn.proj.weight", {d, d}});
    out.push_back({block + "attn.proj.bias", {d}});
    out.push_back({block + "norm2.weight", {d}});
    out.push_back({block + "norm2.bias", {d}});
    out.push_back({block + "mlp.fc1.weight", {hidden, d}});
    out.push_back({block + "mlp.fc1.bias", {hidden}});
    out.push_back({block + "mlp.fc2.weight", {d, hidden}});
    out.push_back({block + "mlp.fc2.bias", {d}});
  }
  out.push_back({"norm.weight", {d}});
  out.push_back({"norm.bias", {d}});
  return out;
}

int64_t parameterCount(const Encoder& e) {
  return e.kind == EncoderKind::UNet ? parameterCount(e.unet) : parameterCount(e.vit);
}

int64_t parameterCount(const UNetEncoder& e) {
  int64_t total = 0;
  int64_t in = e.inChannels;
  for (int64_t s = 0; s < e.stages; ++s) {
    int64_t w = e.widthOf(s);
    for (int64_t c = 0; c < e.convsPerStage; ++c) {
      total += in * w * 27;  // 3x3x3 convolution, no bias (instance norm follows)
      total += 2 * w;        // instance norm affine
      in = w;
    }
  }
  return total;
}

std::string printStage(const Stage& stage, const Experiment& experiment) {
  std::string out = std::string(toString(stage.kind)) + " " + stage.name + "\n";
  if (stage.kind == StageKind::Pretrain) {
    const PretrainStage& p = stage.pretrain;
    out += "  data = " + print(p.data) + "\n";
    if (p.data.kind == DataKind::Folder) out += "  root = " + quoted(p.data.folder.root) + "\n";
    out += "  pipeline = " + print(p.pipeline) + "\n";
    out += "  encoder = " + print(p.encoder) + "\n";
    out += "  objective = " + print(p.objective) + "\n";
    out += "  optimizer = " + print(p.optimizer) + "\n";
    out += "  epochs = " + std::to_string(p.epochs) + "\n";
    out += "  batch = " + std::to_string(p.batch) + "\n";
    out += "  seed = " + std::to_string(p.seed) + "\n";
    if (!p.init.empty()) out += "  init = " + p.init + "\n";
  } else {
    const EvaluateStage& e = stage.evaluate;
    out += "  model = " + e.pretrain + "\n";
    out += "  data = " + print(e.data) + "\n";
    if (e.data.kind == DataKind::Folder) out += "  root = " + quoted(e.data.folder.root) + "\n";
    out += "  pipeline = " + print(e.pipeline) + "\n";
    out += "  encoder = " + print(e.encoder) + "\n";
    out += "  label = " + e.label + " (" + std::string(toString(e.labelKind)) + ")\n";
    if (!e.metrics.empty()) out += "  metrics = " + join(e.metrics) + "\n";
    if (e.protocol == Protocol::Probe) {
      out += "  probe = linear(shots = " + std::to_string(e.shots) + ", repeats = " + std::to_string(e.repeats) +
             ", test = " + (e.testSite.empty() ? formatNumber(e.testFraction) : "site(" + quoted(e.testSite) + ")") +
             ", seed = " + std::to_string(e.seed) +
             (e.labelKind != LabelKind::Continuous ? std::string()
              : e.ridgeAlpha > 0                   ? ", alpha = " + formatNumber(e.ridgeAlpha)
                                                   : std::string(", alpha = leave-one-out")) +
             ")\n";
    } else {
      out += "  finetune = (shots = " + std::to_string(e.shots) + ", repeats = " + std::to_string(e.repeats) +
             ", test = " + (e.testSite.empty() ? formatNumber(e.testFraction) : "site(" + quoted(e.testSite) + ")") +
             ", seed = " + std::to_string(e.seed) +
             ", epochs = " + std::to_string(e.epochs) + ", lr = " + formatNumber(e.lr) +
             (e.batch > 0 ? ", batch = " + std::to_string(e.batch) : std::string()) +
             (e.batches > 0 ? ", batches = " + std::to_string(e.batches) : std::string()) +
             ", clip = " + formatNumber(e.gradClip) +
             (e.stem != StemInit::Reinit ? ", stem = " + std::string(toString(e.stem)) : std::string()) +
             (e.labelKind == LabelKind::Mask ? ", tolerance = " + formatNumber(e.nsdToleranceMm) + "mm" : std::string()) +
             ")\n";
    }
  }
  for (size_t d : stage.deps) out += "  after " + experiment.stages.at(d).name + "\n";
  return out;
}

std::string printExperiment(const Experiment& experiment) {
  std::string out;
  for (const Stage& s : experiment.stages) {
    out += "// " + (s.hash.empty() ? std::string("(not hashed)") : s.hash.substr(0, 16)) + "\n";
    out += printStage(s, experiment);
  }
  return out;
}


}  // namespace gyrus::ir
