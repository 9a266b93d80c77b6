// The built-in functions of the language: each one's parameters (name, type, whether
// required, range check) and how it builds its value. The checker binds and checks
// arguments from this table (Check.cpp).
#include "CheckInternal.h"
#include "gyrus/Data.h"

namespace gyrus {
namespace check {

// A folder data set: `resolve` lists it, then its sites are read; any problem is a
// [data] error at the root argument.
Value folderDataset(Checker& c, std::map<std::string, Bound>& a,
                    const std::function<DataProblem(const std::string& root, ir::FolderData&)>& resolve) {
  Value v;
  v.ty = Ty::Dataset;
  v.dataset.kind = ir::DataKind::Folder;
  v.shapeKnown = false;
  v.dataset.folder.skipUnreadable = a["skip_unreadable"].present && a["skip_unreadable"].value.flag;
  DataProblem p = resolve(c.resolvePath(a["root"].value.str), v.dataset.folder);
  if (p.ok()) p = readSites(a["sites"].present ? a["sites"].value.str : "", v.dataset.folder);
  if (!p.ok()) {
    // Every problem of the data set at once: the first in full, the others listed.
    constexpr size_t kListed = 8;
    std::string also = p.more.empty() ? std::string()
                                      : " (and " + std::to_string(p.more.size()) + " more problem" +
                                            (p.more.size() == 1 ? "" : "s") + " of this kind)";
    Diagnostic& d = c.diags().report(DiagKind::Data, a["root"].range, p.message + also);
    if (!p.note.empty()) d.note(p.note);
    for (size_t i = 0; i < p.more.size() && i < kListed; ++i) d.note("also: " + p.more[i]);
    if (p.more.size() > kListed) d.note("and " + std::to_string(p.more.size() - kListed) + " more");
    return errorValue();
  }
  if (const std::vector<ir::SkippedSample>& skipped = v.dataset.folder.skipped; !skipped.empty()) {
    size_t total = skipped.size() + v.dataset.folder.samples.size();
    Diagnostic& d = c.diags().report(DiagKind::DataSkipped, a["skip_unreadable"].range,
                                     std::to_string(skipped.size()) + " of " + std::to_string(total) +
                                         " samples are skipped: " + skipped.front().reason);
    for (size_t i = 1; i < skipped.size() && i < 4; ++i) d.note(skipped[i].reason);
    if (skipped.size() > 4) d.note("and " + std::to_string(skipped.size() - 4) + " more");
  }
  v.shapeOrigin = a["root"].range;
  return v;
}

ir::LabelKind labelKindOf(const Bound& b) {
  if (!b.present || b.value.num == 0) return ir::LabelKind::Binary;
  return b.value.num == 1 ? ir::LabelKind::Continuous : ir::LabelKind::Mask;
}

int64_t asInt(const Bound& b, int64_t fallback) { return b.present ? static_cast<int64_t>(b.value.num) : fallback; }
double asNum(const Bound& b, double fallback) { return b.present ? b.value.num : fallback; }

const std::vector<Builtin>& builtins() {
  static const std::vector<Builtin> table = [] {
    std::vector<Builtin> t;
    t.push_back({"synthetic",
                 Ty::Dataset,
                 {{"subjects", Ty::Int, false, between(2, 100000, false, false)},
                  {"size", Ty::Shape, false, shapeAtLeast(8)},
                  {"seed", Ty::Int, false, atLeast(0)},
                  {"lesion_rate", Ty::Fraction, false, between(0, 1, false, false)},
                  {"noise", Ty::Fraction, false, between(0, 1, false, false)}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   Value v;
                   v.ty = Ty::Dataset;
                   v.dataset.kind = ir::DataKind::Synthetic;
                   ir::SyntheticData& d = v.dataset.synthetic;
                   d.subjects = asInt(a["subjects"], d.subjects);
                   if (a["size"].present) d.size = a["size"].value.shape;
                   d.seed = static_cast<uint64_t>(asInt(a["seed"], static_cast<int64_t>(d.seed)));
                   d.lesionRate = asNum(a["lesion_rate"], d.lesionRate);
                   d.noise = asNum(a["noise"], d.noise);
                   v.shape = d.size;
                   v.shapeOrigin = a["size"].present ? a["size"].range : call;
                   return v;
                 }});
    auto strings = [](const Bound& b, std::vector<std::string>& out) {
      if (!b.present) return std::string();
      for (const Value& item : b.value.items) {
        if (item.ty != Ty::String) return std::string("must be a list of strings, e.g. [\"t1\", \"flair\"]");
        out.push_back(item.str);
      }
      return std::string();
    };
    t.push_back({"fomo60k",
                 Ty::Dataset,
                 {{"root", Ty::String, true, nullptr},
                  {"sequences", Ty::List, false, nullptr},
                  {"sites", Ty::String, false, nullptr},
                  {"skip_unreadable", Ty::Bool, false, nullptr}},
                 [strings](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   std::vector<std::string> sequences;
                   if (std::string why = strings(a["sequences"], sequences); !why.empty()) {
                     c.diags().report(DiagKind::TypeMismatch, a["sequences"].range, "argument 'sequences' of fomo60k() " + why);
                     return errorValue();
                   }
                   return folderDataset(c, a, [&](const std::string& root, ir::FolderData& out) {
                     return resolveFomo60k(root, sequences, out);
                   });
                 }});
    t.push_back({"fomo25",
                 Ty::Dataset,
                 {{"root", Ty::String, true, nullptr},
                  {"channels", Ty::List, true, nullptr},
                  {"label", Ty::LabelType, false, nullptr},
                  {"sites", Ty::String, false, nullptr},
                  {"skip_unreadable", Ty::Bool, false, nullptr},
                  {"task", Ty::Record, false, nullptr}},
                 [strings](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   std::vector<std::string> channels;
                   std::string why = strings(a["channels"], channels);
                   if (why.empty() && channels.empty()) why = "must name at least one channel";
                   if (!why.empty()) {
                     c.diags().report(DiagKind::TypeMismatch, a["channels"].range, "argument 'channels' of fomo25() " + why);
                     return errorValue();
                   }
                   ir::LabelKind kind = labelKindOf(a["label"]);
                   return folderDataset(c, a, [&](const std::string& root, ir::FolderData& out) {
                     return resolveFomo25(root, channels, kind, out);
                   });
                 }});
    t.push_back({"folder",
                 Ty::Dataset,
                 {{"root", Ty::String, true, nullptr},
                  {"glob", Ty::String, false, nullptr},
                  {"table", Ty::String, false, nullptr},
                  {"subject", Ty::String, false, nullptr},
                  {"column", Ty::String, false, nullptr},
                  {"label", Ty::LabelType, false, nullptr},
                  {"sites", Ty::String, false, nullptr},
                  {"skip_unreadable", Ty::Bool, false, nullptr},
                  {"task", Ty::Record, false, nullptr}},
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   auto str = [&](const char* k, const char* def) {
                     return a[k].present ? a[k].value.str : std::string(def);
                   };
                   if (a["table"].present != a["column"].present) {
                     c.diags().report(DiagKind::MissingArgument, a[a["table"].present ? "table" : "column"].range,
                                      "folder() needs both 'table' and 'column' to read labels");
                     return errorValue();
                   }
                   ir::LabelKind kind = labelKindOf(a["label"]);
                   if (kind == ir::LabelKind::Mask) {
                     c.diags().report(DiagKind::TypeMismatch, a["label"].range,
                                      "folder() reads one number per subject from its table; segmentation masks come "
                                      "from fomo25(..., label = segmentation) folders");
                     return errorValue();
                   }
                   return folderDataset(c, a, [&](const std::string& root, ir::FolderData& out) {
                     return resolveGlob(root, str("glob", "*.nii.gz"), str("table", ""), str("subject", "subject"),
                                        str("column", ""), kind, out);
                   });
                 }});
    t.push_back({"site",
                 Ty::Site,
                 {{"name", Ty::String, true, nullptr}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Site;
                   v.str = a["name"].value.str;
                   return v;
                 }});
    t.push_back({"resample",
                 Ty::Pipeline,
                 {{"spacing", Ty::Length, false, between(0.05, 20, false, false)}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Pipeline;
                   ir::PipelineOp op;
                   op.kind = ir::OpKind::Resample;
                   op.mm = asNum(a["spacing"], 1.0);
                   v.pipeline.ops.push_back(op);
                   return v;
                 }});
    t.push_back({"crop",
                 Ty::Pipeline,
                 {{"size", Ty::Shape, true, shapeAtLeast(1)}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Pipeline;
                   ir::PipelineOp op;
                   op.kind = ir::OpKind::Crop;
                   op.size = a["size"].value.shape;
                   v.pipeline.ops.push_back(op);
                   v.pipelineSetsShape = true;
                   v.shapeOrigin = a["size"].range;
                   v.shape = op.size;
                   return v;
                 }});
    t.push_back({"zscore",
                 Ty::Pipeline,
                 {{"nonzero", Ty::Bool, false, nullptr}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Pipeline;
                   ir::PipelineOp op;
                   op.kind = ir::OpKind::ZScore;
                   op.nonzero = a["nonzero"].present ? a["nonzero"].value.flag : true;
                   v.pipeline.ops.push_back(op);
                   return v;
                 }});
    t.push_back({"clip",
                 Ty::Pipeline,
                 {{"lo", Ty::Fraction, false, between(0, 1, false, true)},
                  {"hi", Ty::Fraction, false, between(0, 1, true, false)}},
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange call) {
                   Value v;
                   v.ty = Ty::Pipeline;
                   ir::PipelineOp op;
                   op.kind = ir::OpKind::Clip;
                   op.lo = asNum(a["lo"], 0.005);
                   op.hi = asNum(a["hi"], 0.995);
                   if (op.lo >= op.hi) {
                     c.diags().report(DiagKind::ValueRange, a["hi"].present ? a["hi"].range : call,
                                      "clip's upper percentile must be above its lower one");
                     return errorValue();
                   }
                   v.pipeline.ops.push_back(op);
                   return v;
                 }});
    auto randomOp = [](ir::OpKind kind) {
      Value v;
      v.ty = Ty::Pipeline;
      ir::PipelineOp op;
      op.kind = kind;
      v.pipeline.ops.push_back(op);
      return v;
    };
    t.push_back({"flip",
                 Ty::Pipeline,
                 {{"p", Ty::Fraction, false, between(0, 1, false, false)}},
                 [randomOp](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v = randomOp(ir::OpKind::Flip);
                   v.pipeline.ops[0].p = asNum(a["p"], 0.5);
                   return v;
                 }});
    t.push_back({"noise",
                 Ty::Pipeline,
                 {{"sigma", Ty::Float, false, between(0, 10, false, false)}},
                 [randomOp](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v = randomOp(ir::OpKind::Noise);
                   v.pipeline.ops[0].sigma = asNum(a["sigma"], 0.05);
                   return v;
                 }});
    t.push_back({"gamma",
                 Ty::Pipeline,
                 {{"range", Ty::Range, false, [](const Value& r) {
                    return r.num > 0 && r.hi <= 10 ? std::string() : std::string("must lie within (0, 10]");
                  }}},
                 [randomOp](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v = randomOp(ir::OpKind::Gamma);
                   v.pipeline.ops[0].lo = a["range"].present ? a["range"].value.num : 0.7;
                   v.pipeline.ops[0].hi = a["range"].present ? a["range"].value.hi : 1.5;
                   return v;
                 }});
    t.push_back({"unet",
                 Ty::Encoder,
                 {{"width", Ty::Int, false, between(1, 1024, false, false)},
                  {"stages", Ty::Int, false, between(1, 8, false, false)},
                  {"convs", Ty::Int, false, between(1, 8, false, false)},
                  {"max_width", Ty::Int, false, between(1, 4096, false, false)}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Encoder;
                   v.encoder.kind = ir::EncoderKind::UNet;
                   ir::UNetEncoder& e = v.encoder.unet;
                   e.width = asInt(a["width"], e.width);
                   e.stages = asInt(a["stages"], e.stages);
                   e.convsPerStage = asInt(a["convs"], e.convsPerStage);
                   e.maxWidth = asInt(a["max_width"], e.maxWidth);
                   return v;
                 }});
    t.push_back({"vit",
                 Ty::Encoder,
                 {{"patch", Ty::Voxels, false, between(2, 64, false, false)},
                  {"dim", Ty::Int, false, between(6, 4096, false, false)},
                  {"depth", Ty::Int, false, between(1, 64, false, false)},
                  {"heads", Ty::Int, false, between(1, 64, false, false)},
                  {"mlp_ratio", Ty::Int, false, between(1, 16, false, false)}},
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Encoder;
                   v.encoder.kind = ir::EncoderKind::Vit;
                   ir::VitEncoder& e = v.encoder.vit;
                   e.patch = asInt(a["patch"], e.patch);
                   e.dim = asInt(a["dim"], e.dim);
                   e.depth = asInt(a["depth"], e.depth);
                   e.heads = asInt(a["heads"], e.heads);
                   e.mlpRatio = asInt(a["mlp_ratio"], e.mlpRatio);
                   // Attention splits the features evenly over the heads.
                   if (e.dim % e.heads != 0) {
                     // The nearest multiples of heads that dim may be, and the number of
                     // heads nearest to the one given that divides dim.
                     std::vector<int64_t> dims;
                     for (int64_t d : {e.dim / e.heads * e.heads, (e.dim / e.heads + 1) * e.heads})
                       if (d >= 6 && d <= 4096) dims.push_back(d);
                     int64_t heads = 1;
                     for (int64_t h = 1; h <= 64; ++h)
                       if (e.dim % h == 0 && std::llabs(h - e.heads) < std::llabs(heads - e.heads)) heads = h;
                     SourceRange at = a["dim"].present ? a["dim"].range : a["heads"].range;
                     Diagnostic& d = c.diags().report(DiagKind::ShapeDivisibility, at,
                                                      "dim " + std::to_string(e.dim) + " is not divisible by heads " +
                                                          std::to_string(e.heads) +
                                                          ": attention splits the features evenly over the heads");
                     std::string dimText;
                     for (int64_t x : dims) dimText += (dimText.empty() ? "" : " or ") + std::to_string(x);
                     d.note((dimText.empty() ? std::string() : "nearest valid dims: " + dimText + "; or ") +
                            "heads = " + std::to_string(heads) + ", which divides " + std::to_string(e.dim));
                     if (a["dim"].present && !dims.empty()) {
                       int64_t best = dims.front();
                       for (int64_t x : dims)
                         if (std::llabs(x - e.dim) < std::llabs(best - e.dim)) best = x;
                       d.fixit(a["dim"].range, std::to_string(best));
                     } else if (a["heads"].present) {
                       d.fixit(a["heads"].range, std::to_string(heads));
                     }
                     return errorValue();
                   }
                   return v;
                 }});
    t.push_back({"mae",
                 Ty::Objective,
                 {{"mask", Ty::Fraction, false, between(0, 1, true, true)},
                  {"cube", Ty::Voxels, false, between(1, 64, false, false)},
                  {"masked_only", Ty::Bool, false, nullptr}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   Value v;
                   v.ty = Ty::Objective;
                   ir::ObjectiveTerm term;
                   term.kind = ir::ObjectiveKind::Mae;
                   term.mae.maskRatio = asNum(a["mask"], term.mae.maskRatio);
                   term.mae.cube = asInt(a["cube"], term.mae.cube);
                   term.mae.maskedOnly = a["masked_only"].present && a["masked_only"].value.flag;
                   v.objective.terms.push_back(term);
                   v.cubeOrigins.push_back(a["cube"].present ? a["cube"].range : call);
                   return v;
                 }});
    t.push_back({"simclr",
                 Ty::Objective,
                 {{"temperature", Ty::Float, false, between(0, 10, true, false)},
                  {"projection", Ty::Int, false, between(1, 4096, false, false)}},
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   Value v;
                   v.ty = Ty::Objective;
                   ir::ObjectiveTerm term;
                   term.kind = ir::ObjectiveKind::SimClr;
                   term.simclr.temperature = asNum(a["temperature"], term.simclr.temperature);
                   term.simclr.projection = asInt(a["projection"], term.simclr.projection);
                   v.objective.terms.push_back(term);
                   v.cubeOrigins.push_back(call);
                   return v;
                 }});
    // The optimisers share their schedule and clipping parameters.
    auto optimizerParams = [](std::vector<Param> own) {
      own.push_back({"warmup", Ty::Int, false, atLeast(0)});
      own.push_back({"schedule", Ty::Schedule, false, nullptr});
      own.push_back({"clip", Ty::Float, false, between(0, 1e6, false, false)});
      return own;
    };
    auto optimizer = [](ir::OptimizerKind kind, std::map<std::string, Bound>& a) {
      Value v;
      v.ty = Ty::Optimizer;
      ir::Optimizer& o = v.optimizer;
      o.kind = kind;
      o.lr = asNum(a["lr"], o.lr);
      o.weightDecay = asNum(a["weight_decay"], o.weightDecay);
      if (kind == ir::OptimizerKind::Sgd) o.momentum = asNum(a["momentum"], o.momentum);
      o.warmupEpochs = asInt(a["warmup"], o.warmupEpochs);
      if (a["schedule"].present) o.schedule = a["schedule"].value.schedule;
      o.gradClip = asNum(a["clip"], o.gradClip);
      return v;
    };
    t.push_back({"adamw",
                 Ty::Optimizer,
                 optimizerParams({{"lr", Ty::Float, false, between(0, 10, true, false)},
                                  {"weight_decay", Ty::Float, false, between(0, 1, false, false)}}),
                 [optimizer](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   return optimizer(ir::OptimizerKind::AdamW, a);
                 }});
    t.push_back({"sgd",
                 Ty::Optimizer,
                 optimizerParams({{"lr", Ty::Float, false, between(0, 10, true, false)},
                                  {"momentum", Ty::Float, false, between(0, 1, false, true)},
                                  {"weight_decay", Ty::Float, false, between(0, 1, false, false)}}),
                 [optimizer](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   return optimizer(ir::OptimizerKind::Sgd, a);
                 }});
    return t;
  }();
  return table;
}

}  // namespace check

std::vector<std::string> builtinParameters(const std::string& function) {
  for (const check::Builtin& b : check::builtins())
    if (b.name == function) {
      std::vector<std::string> names;
      for (const check::Param& p : b.params) names.push_back(p.name);
      return names;
    }
  return {};
}

std::vector<std::string> builtinFunctions() {
  std::vector<std::string> names;
  for (const check::Builtin& b : check::builtins()) names.push_back(b.name);
  return names;
}


}  // namespace gyrus
