// The build hooks of the built-in functions: how each builds its value from its bound
// arguments (every pipeline operation through one hook, pipelineOp, over its registry
// entry). Their signatures (parameters, types, units, defaults, ranges, docs) are
// declared in Signatures.def; the binder has checked and defaulted every argument
// before a hook runs, so a hook reads `a["name"].value` (`present`: given, not defaulted).
#include "CheckInternal.h"
#include "gyrus/Data.h"

namespace gyrus {
namespace check {

// A folder data set: the checker's resolver lists it (with its sites); any problem is a
// [data] error at the root argument. `request` has the layout's own arguments.
Value folderDataset(Checker& c, std::map<std::string, Bound>& a, FolderRequest request) {
  Value v;
  v.ty = Ty::Dataset;
  v.dataset.kind = ir::DataKind::Folder;
  v.shapeKnown = false;
  request.root = c.resolvePath(a["root"].value.str);
  request.sites = a["sites"].present ? a["sites"].value.str : "";
  request.skipUnreadable = a["skip_unreadable"].value.flag;
  DataProblem p = c.dataResolver().resolve(request, v.dataset.folder);
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
  if (b.value.num == 0) return ir::LabelKind::Binary;
  return b.value.num == 1 ? ir::LabelKind::Continuous : ir::LabelKind::Mask;
}

int64_t asInt(const Bound& b) { return static_cast<int64_t>(b.value.num); }
double asNum(const Bound& b) { return b.value.num; }

namespace {
// The checks of a pipeline operation that its registry's ranges cannot say, keyed by its
// name: each reports and returns false.
struct OpRule {
  std::string_view op;
  bool (*check)(Checker& c, const ir::PipelineOp& op, std::map<std::string, Bound>& a, SourceRange call);
};
const OpRule kOpRules[] = {
    {"clip",
     [](Checker& c, const ir::PipelineOp& op, std::map<std::string, Bound>& a, SourceRange call) {
       if (op.number("lo") < op.number("hi")) return true;
       c.diags().report(DiagKind::ValueRange, a["hi"].present ? a["hi"].range : call,
                        "clip's upper percentile must be above its lower one");
       return false;
     }},
};

// Every pipeline operation's hook: its bound arguments, by the registry's parameters,
// become the operation's values; one that sets the shape carries it (and where it was
// written) on the pipeline.
Value pipelineOp(Checker& c, const ir::OpSpec& spec, std::map<std::string, Bound>& a, SourceRange call) {
  ir::PipelineOp op;
  op.name = std::string(spec.name);
  for (const ir::OpParamSpec& p : spec.params) {
    const Value& x = a[std::string(p.name)].value;
    ir::OpValue value = x.num;
    if (p.type == ir::OpParamType::Bool) value = x.flag;
    if (p.type == ir::OpParamType::Shape) value = x.shape;
    if (p.type == ir::OpParamType::Range) value = ir::Interval{x.num, x.hi};
    op.args.push_back({std::string(p.name), value});
  }
  for (const OpRule& rule : kOpRules)
    if (rule.op == spec.name && !rule.check(c, op, a, call)) return errorValue();
  Value v;
  v.ty = Ty::Pipeline;
  if (spec.shape == ir::OpShape::Sets) {
    const Bound& size = a[std::string(spec.shapeParam)];
    v.pipelineSetsShape = true;
    v.shapeOrigin = size.range;
    v.shape = size.value.shape;
  }
  v.pipeline.ops.push_back(std::move(op));
  return v;
}

using NamedHook = std::pair<std::string, BuildHook>;

const std::vector<NamedHook>& hookTable() {
  static const std::vector<NamedHook> table = [] {
    std::vector<NamedHook> hooks;
    hooks.push_back({"synthetic",
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   Value v;
                   v.ty = Ty::Dataset;
                   v.dataset.kind = ir::DataKind::Synthetic;
                   ir::SyntheticData& d = v.dataset.synthetic;
                   d.subjects = asInt(a["subjects"]);
                   d.size = a["size"].value.shape;
                   d.seed = static_cast<uint64_t>(asInt(a["seed"]));
                   d.lesionRate = asNum(a["lesion_rate"]);
                   d.noise = asNum(a["noise"]);
                   d.lesionContrast = asNum(a["lesion_contrast"]);
                   d.lesionSize = asNum(a["lesion_size"]);
                   d.lesionShape = asNum(a["lesion_shape"]);
                   d.siteEffect = asNum(a["site_effect"]);
                   d.ageEffect = asNum(a["age_effect"]);
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
    hooks.push_back({"fomo60k",
                 [strings](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   std::vector<std::string> sequences;
                   if (std::string why = strings(a["sequences"], sequences); !why.empty()) {
                     c.diags().report(DiagKind::TypeMismatch, a["sequences"].range, "argument 'sequences' of fomo60k() " + why);
                     return errorValue();
                   }
                   FolderRequest request;
                   request.layout = ir::FolderData::Layout::Fomo60k;
                   request.names = sequences;
                   return folderDataset(c, a, request);
                 }});
    hooks.push_back({"fomo25",
                 [strings](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   std::vector<std::string> channels;
                   std::string why = strings(a["channels"], channels);
                   if (why.empty() && channels.empty()) why = "must name at least one channel";
                   if (!why.empty()) {
                     c.diags().report(DiagKind::TypeMismatch, a["channels"].range, "argument 'channels' of fomo25() " + why);
                     return errorValue();
                   }
                   ir::LabelKind kind = labelKindOf(a["label"]);
                   FolderRequest request;
                   request.layout = ir::FolderData::Layout::Fomo25;
                   request.names = channels;
                   request.label = kind;
                   return folderDataset(c, a, request);
                 }});
    hooks.push_back({"folder",
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   auto str = [&](const char* k) { return a[k].value.str; };
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
                   FolderRequest request;
                   request.layout = ir::FolderData::Layout::Glob;
                   request.glob = str("glob");
                   request.table = str("table");
                   request.subjectColumn = str("subject");
                   request.labelColumn = str("column");
                   request.label = kind;
                   return folderDataset(c, a, request);
                 }});
    // root("fomo60k", "sub"): a folder under a named data root of the site
    // configuration. The value is the folder on this machine, marked so that only a
    // folder data set's root takes it (Bind.cpp): the data's identity is its content,
    // so no stage hash depends on where the site file says the data lie.
    hooks.push_back({"root",
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   const std::string& name = a["name"].value.str;
                   const DataRoots& roots = c.roots();
                   auto it = roots.folders.find(name);
                   if (it == roots.folders.end()) {
                     Diagnostic& d = c.diags().report(DiagKind::UnknownRoot, a["name"].range,
                                                      "no data root named \"" + name + "\"");
                     std::vector<std::string> names;
                     for (const auto& [n, folder] : roots.folders) names.push_back(n);
                     suggest(d, a["name"].range, name, names, SuggestStyle{true, '"', "\"", "\""});
                     if (roots.siteFile.empty()) {
                       std::string where;
                       for (const std::string& p : roots.searched) where += (where.empty() ? "" : ", ") + p;
                       d.note("no site configuration was found (looked for " + (where.empty() ? "none" : where) +
                              "); data roots are named in its [roots] table, or give one with --config FILE");
                     } else {
                       std::string list;
                       for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
                       d.note("the site configuration " + roots.siteFile +
                              (names.empty() ? " defines no data roots" : " defines the data roots: " + list));
                     }
                     return errorValue();
                   }
                   const std::string& sub = a["path"].value.str;
                   if (std::filesystem::path(sub).is_absolute()) {
                     c.diags().report(DiagKind::ValueRange, a["path"].range,
                                      "root()'s path is a folder under the root, so it must be relative; got \"" + sub +
                                          "\"");
                     return errorValue();
                   }
                   Value v;
                   v.ty = Ty::String;
                   std::filesystem::path folder = std::filesystem::path(it->second) / sub;
                   v.str = folder.lexically_normal().string();
                   while (v.str.size() > 1 && v.str.back() == '/') v.str.pop_back();
                   v.machinePath = true;
                   return v;
                 }});
    hooks.push_back({"weights",
                 [](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Weights;
                   v.str = a["path"].value.str;
                   const std::string abs = std::filesystem::absolute(c.resolvePath(v.str)).lexically_normal().string();
                   DataProblem p = c.dataResolver().weights(abs, v.weights, v.weightsHeader);
                   if (!p.ok()) {
                     // Messages name the file as the user wrote it (the same on every machine).
                     std::string message;
                     size_t from = 0;
                     for (size_t at = p.message.find(abs); at != std::string::npos; at = p.message.find(abs, from)) {
                       message += p.message.substr(from, at - from) + v.str;
                       from = at + abs.size();
                     }
                     message += p.message.substr(from);
                     Diagnostic& d = c.diags().report(DiagKind::WeightsFile, a["path"].range, message);
                     if (!p.note.empty()) d.note(p.note);
                     return errorValue();
                   }
                   return v;
                 }});
    hooks.push_back({"site",
                 [](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   Value v;
                   v.ty = Ty::Site;
                   v.str = a["name"].value.str;
                   return v;
                 }});
    for (const ir::OpSpec& spec : ir::pipelineOps())
      hooks.push_back({std::string(spec.name), [&spec](Checker& c, std::map<std::string, Bound>& a, SourceRange call) {
                         return pipelineOp(c, spec, a, call);
                       }});
    auto encoder = [](const ir::Encoder& e) {
      Value v;
      v.ty = Ty::Encoder;
      v.encoder = e;
      return v;
    };
    hooks.push_back({"unet",
                 [encoder](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   return encoder(ir::UNetEncoder{.width = asInt(a["width"]), .stages = asInt(a["stages"]),
                                                  .convsPerStage = asInt(a["convs"]),
                                                  .maxWidth = asInt(a["max_width"])});
                 }});
    hooks.push_back({"vit",
                 [encoder](Checker& c, std::map<std::string, Bound>& a, SourceRange) {
                   const ir::VitEncoder e{.patch = asInt(a["patch"]), .dim = asInt(a["dim"]),
                                          .depth = asInt(a["depth"]), .heads = asInt(a["heads"]),
                                          .mlpRatio = asInt(a["mlp_ratio"])};
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
                   return encoder(ir::Encoder(e));
                 }});
    // An objective of one term; `cubeAt` is where its mask cube is set (the call for a
    // term without one).
    auto objective = [](const ir::ObjectiveTerm& term, SourceRange cubeAt) {
      Value v;
      v.ty = Ty::Objective;
      v.objective.terms.push_back(term);
      v.cubeOrigins.push_back(cubeAt);
      return v;
    };
    hooks.push_back({"mae",
                 [objective](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   ir::ObjectiveTerm term;
                   term.kind = ir::ObjectiveKind::Mae;
                   term.mae = {asNum(a["mask"]), asInt(a["cube"]), a["masked_only"].value.flag};
                   return objective(term, a["cube"].present ? a["cube"].range : call);
                 }});
    hooks.push_back({"simclr",
                 [objective](Checker&, std::map<std::string, Bound>& a, SourceRange call) {
                   ir::ObjectiveTerm term;
                   term.kind = ir::ObjectiveKind::SimClr;
                   term.simclr = {asNum(a["temperature"]), asInt(a["projection"])};
                   return objective(term, call);
                 }});
    // The optimisers share their schedule and clipping parameters.
    auto optimizer = [](ir::OptimizerKind kind, std::map<std::string, Bound>& a) {
      Value v;
      v.ty = Ty::Optimizer;
      ir::Optimizer& o = v.optimizer;
      o.kind = kind;
      o.lr = asNum(a["lr"]);
      o.weightDecay = asNum(a["weight_decay"]);
      if (kind == ir::OptimizerKind::Sgd) o.momentum = asNum(a["momentum"]);
      o.warmupEpochs = asInt(a["warmup"]);
      o.schedule = a["schedule"].value.schedule;
      o.gradClip = asNum(a["clip"]);
      return v;
    };
    hooks.push_back({"adamw",
                 [optimizer](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   return optimizer(ir::OptimizerKind::AdamW, a);
                 }});
    hooks.push_back({"sgd",
                 [optimizer](Checker&, std::map<std::string, Bound>& a, SourceRange) {
                   return optimizer(ir::OptimizerKind::Sgd, a);
                 }});
    return hooks;
  }();
  return table;
}
}  // namespace

BuildHook buildHook(const std::string& name) {
  for (const NamedHook& h : hookTable())
    if (h.first == name) return h.second;
  return nullptr;
}

std::vector<std::string> buildHookNames() {
  std::vector<std::string> names;
  for (const NamedHook& h : hookTable()) names.push_back(h.first);
  return names;
}

}  // namespace check

std::vector<std::string> builtinParameters(const std::string& function) {
  const check::Signature* s = check::findSignature(function);
  return s != nullptr && s->callable ? s->paramNames() : std::vector<std::string>{};
}

std::vector<std::string> builtinFunctions() {
  std::vector<std::string> names;
  for (const check::Signature* b : check::builtins()) names.push_back(b->name);
  return names;
}


}  // namespace gyrus
