// An evaluation: its model and task resolved, its arguments bound to the `evaluate`
// signature, the rules that concern it (head and task, metrics, pipeline agreement,
// few-shot sizing, shapes) and its stage.
#include "../CheckInternal.h"

namespace gyrus::check {

void Checker::checkEvaluate(const ast::DeclEvaluate& d) {
  // The model.
  auto it = symbols_.find(d.model);
  Value model;
  if (it == symbols_.end()) {
    std::vector<std::string> names;
    for (const auto& [name, sym] : symbols_)
      if (sym.decl->is<ast::DeclPretrain>()) names.push_back(name);
    Diagnostic& diag = diags_.report(DiagKind::UnknownName, d.modelRange, "unknown pretrain stage '" + d.model + "'");
    suggest(diag, d.modelRange, d.model, names);
  } else if (it->second.decl->is<ast::DeclEvaluate>()) {
    diags_.report(DiagKind::TypeMismatch, d.modelRange,
                  "evaluate needs a pretrain stage, but '" + d.model + "' is an evaluation")
        .note(it->second.decl->nameRange, "'" + d.model + "' declared here");
  } else {
    ++it->second.uses;
    model = evalDecl(it->second);
    if (model.ty != Ty::Model && model.ty != Ty::Error) {
      diags_.report(DiagKind::TypeMismatch, d.modelRange,
                    "evaluate needs a pretrain stage, but '" + d.model + "' is " + std::string(tyName(model.ty)))
          .note(it->second.decl->nameRange, "'" + d.model + "' declared here");
      model = errorValue();
    }
  }

  // The task: dataset.label.
  Value data;
  std::string label;
  ir::LabelKind labelKind = ir::LabelKind::Binary;
  if (d.task.size() != 2) {
    diags_.report(DiagKind::TypeMismatch, {d.taskRanges.front().file, d.taskRanges.front().begin, d.taskRanges.back().end},
                  "evaluate needs a task written as dataset.label, e.g. `clinic.lesion`");
  } else {
    auto ds = symbols_.find(d.task[0]);
    if (ds == symbols_.end()) {
      Diagnostic& diag = diags_.report(DiagKind::UnknownName, d.taskRanges[0], "unknown dataset '" + d.task[0] + "'");
      std::vector<std::string> names;
      for (const auto& [name, sym] : symbols_) names.push_back(name);
      suggest(diag, d.taskRanges[0], d.task[0], names);
    } else {
      ++ds->second.uses;
      data = evalDecl(ds->second);
      if (data.ty != Ty::Dataset && data.ty != Ty::Error) {
        diags_.report(DiagKind::TypeMismatch, d.taskRanges[0],
                      "'" + d.task[0] + "' is " + std::string(tyName(data.ty)) + ", not a dataset");
        data = errorValue();
      }
      if (data.ty == Ty::Dataset && data.dataset.kind == ir::DataKind::Folder) {
        label = d.task[1];
        if (!data.dataset.folder.hasLabel) {
          diags_.report(DiagKind::UnknownLabel, d.taskRanges[1], "dataset '" + d.task[0] + "' has no labels")
              .note("fomo60k folders are unlabelled; labelled data are fomo25(...) folders or folder(...) with a table");
          data = errorValue();
        } else if (label != data.dataset.folder.labelName) {
          const std::string& name = data.dataset.folder.labelName;
          Diagnostic& diag = diags_.report(DiagKind::UnknownLabel, d.taskRanges[1],
                                           "dataset '" + d.task[0] + "' has no label '" + label + "'");
          diag.fixit(d.taskRanges[1], name);
          diag.note(data.dataset.folder.layout == ir::FolderData::Layout::Fomo25
                        ? std::string("a fomo25 folder's label (labels/<subject>/<session>/label.txt) is called `label`")
                        : "this folder's label is its table column `" + name + "`");
          data = errorValue();
        } else {
          labelKind = data.dataset.folder.labelKind;
        }
      } else if (data.ty == Ty::Dataset) {
        static const std::vector<std::string> kLabels = {"lesion", "age"};
        label = d.task[1];
        if (label == "lesion") {
          labelKind = ir::LabelKind::Binary;
        } else if (label == "age") {
          labelKind = ir::LabelKind::Continuous;
        } else {
          Diagnostic& diag = diags_.report(DiagKind::UnknownLabel, d.taskRanges[1],
                                           "dataset '" + d.task[0] + "' has no label '" + label + "'");
          suggest(diag, d.taskRanges[1], label, kLabels);
          diag.note("synthetic data sets provide: lesion (binary), age (years)");
          data = errorValue();
        }
      }
    }
  }

  // Protocol arguments.
  const Signature& sig = *findSignature("evaluate");
  std::map<std::string, Bound> args;
  std::vector<ArgItem> items;
  for (const ast::Arg& a : d.args) items.push_back({a.name, a.nameRange, a.value});
  bool ok = bindArguments(sig, items, BindSite::Evaluate, d.name, args);
  bool finetune = args.count("protocol") != 0 && args["protocol"].value.flag;
  for (const Param& only : sig.params) {
    auto given = args.find(only.name);
    if ((only.flags & kFinetuneOnly) == 0 || given == args.end() || given->second.value.ty == Ty::Error || finetune)
      continue;
    diags_.report(DiagKind::UnknownArgument, given->second.range,
                  "'" + only.name + "' is an argument of the fine-tuning protocol; a probe does not train the encoder")
        .note("add `protocol = finetune` to fine-tune the encoder on the shots");
    ok = false;
  }
  if (!ok || model.ty != Ty::Model || data.ty != Ty::Dataset) return;
  fillDefaults(sig, args, d.range);
  std::vector<std::string> metricNames;
  std::vector<SourceRange> metricRanges;
  for (const Value& m : args["metrics"].value.items) {
    metricNames.push_back(metricName(m));
    metricRanges.push_back(m.range);
  }

  // The head follows from the task: one number per sample needs a pooled head, a mask
  // a dense decoder; a probe has no decoder at all.
  bool segmentation = labelKind == ir::LabelKind::Mask;
  if (segmentation && !finetune) {
    diags_.report(DiagKind::TaskHead, d.taskRanges[1],
                  "'" + d.task[0] + "." + label + "' is a segmentation; a probe predicts one number per sample")
        .note(std::string("segment with `protocol = finetune`: the encoder is trained with ") +
              (model.encoder.kind == ir::EncoderKind::Vit ? "a per-token patch head (one logit per voxel)"
                                                          : "a dense U-Net decoder"));
    return;
  }
  if (args["head"].present && args["head"].value.flag != segmentation) {
    bool dense = args["head"].value.flag;
    Diagnostic& diag = diags_.report(
        DiagKind::TaskHead, args["head"].range,
        dense ? "a dense decoder predicts a mask, but '" + d.task[0] + "." + label + "' is one number per sample"
              : "a pooled head predicts one number, but '" + d.task[0] + "." + label + "' is a segmentation mask");
    diag.fixit(args["head"].range, dense ? "pooled" : "dense");
    return;
  }
  if (args["tolerance"].present && !segmentation) {
    diags_.report(DiagKind::UnknownArgument, args["tolerance"].range,
                  "'tolerance' is the surface-distance tolerance of segmentation metrics; '" + d.task[0] + "." + label +
                      "' is not a segmentation");
    return;
  }

  // The metrics to report, in order: the evaluation's own, its data set's task's, or
  // the label kind's.
  std::vector<std::string> metrics;
  std::string metricsFrom;
  if (args["metrics"].present) {
    if (!checkMetricsSuit(metricNames, metricRanges, args["metrics"].range, labelKind,
                          "'" + d.task[0] + "." + label + "'", SourceRange{}))
      return;
    metrics = metricNames;
  } else if (!data.taskMetrics.empty()) {
    for (const Value& m : data.taskMetrics) metrics.push_back(metricName(m));
    metricsFrom = " (from the task of '" + d.task[0] + "')";
  } else {
    metrics = metricsOf(labelKind);
    metricsFrom = " (the default for " + labelKindWord(labelKind) + " labels)";
  }

  // The evaluation's own preprocessing must match what the encoder was pretrained on.
  Value evalPipeline = model;
  SourceRange evalPipelineAt = model.range;
  if (args["pipeline"].present) {
    const Value& pv = args["pipeline"].value;
    evalPipeline.pipeline = pv.pipeline;
    evalPipeline.opOrigins = pv.opOrigins;
    evalPipeline.pipelineSetsShape = pv.pipelineSetsShape;
    evalPipeline.shapeOrigin = pv.shapeOrigin;
    evalPipelineAt = args["pipeline"].range;
    if (!checkPipelinesAgree(model, evalPipeline, evalPipelineAt, finetune)) return;
  }

  ir::Stage stage;
  stage.kind = ir::StageKind::Evaluate;
  stage.name = d.name;
  ir::EvaluateStage& e = stage.evaluate;
  e.name = d.name;
  e.pretrain = model.model;
  e.data = data.dataset;
  e.encoder = model.encoder;
  // Augmentations are for training views only: evaluation sees the deterministic part.
  for (const ir::PipelineOp& op : evalPipeline.pipeline.ops)
    if (!op.isRandom()) e.pipeline.ops.push_back(op);
  if (finetune) {
    e.protocol = ir::Protocol::Finetune;
    e.epochs = static_cast<int64_t>(args["epochs"].value.num);
    e.lr = args["lr"].value.num;
    if (args["batch"].present) e.batch = static_cast<int64_t>(args["batch"].value.num);
    if (args["batches"].present) e.batches = static_cast<int64_t>(args["batches"].value.num);
    e.gradClip = args["clip"].value.num;
    if (e.data.channelCount() > e.encoder.inChannels()) {
      diags_.report(DiagKind::StemReinit, d.taskRanges[0],
                    "'" + d.task[0] + "' has " + std::to_string(e.data.channelCount()) +
                        " channels but '" + model.model + "' was pretrained on " +
                        std::to_string(e.encoder.inChannels()) + ": fine-tuning re-initialises the " +
                        (e.encoder.kind == ir::EncoderKind::Vit ? "patch embedding" : "first convolution"))
          .note("the rest of the encoder starts from the pretrained weights; the probe protocol instead encodes each "
                "channel with the pretrained stem");
    }
  }
  e.encoder = model.encoder;
  e.label = label;
  e.labelKind = labelKind;
  e.metrics = metrics;
  e.shots = static_cast<int64_t>(args["shots"].value.num);
  if (e.batch > e.shots) {
    diags_.report(DiagKind::ValueRange, args["batch"].range,
                  "batch " + std::to_string(e.batch) + " is larger than shots " + std::to_string(e.shots) +
                      ": a batch holds distinct training samples")
        .fixit(args["batch"].range, std::to_string(e.shots))
        .note("to train on more batches per epoch, set `batches` (e.g. the FOMO25 baseline's 100)");
    return;
  }
  e.repeats = static_cast<int64_t>(args["repeats"].value.num);
  if (args["test"].value.ty == Ty::Site) {
    e.testSite = args["test"].value.str;
  } else {
    e.testFraction = args["test"].value.num;
  }
  e.seed = static_cast<uint64_t>(args["seed"].value.num);
  e.nsdToleranceMm = args["tolerance"].value.num;

  // Sizes: the held-out test set and the pool the shots are drawn from.
  int64_t n = e.data.count();
  auto testCount = static_cast<int64_t>(std::llround(e.testFraction * static_cast<double>(n)));
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
      return;
    }
    if (testCount == 0) {
      std::string list;
      for (const std::string& site : sites) list += (list.empty() ? "" : ", ") + site;
      Diagnostic& diag = diags_.report(DiagKind::Data, at, "'" + d.task[0] + "' has no site '" + e.testSite + "'");
      suggest(diag, at, e.testSite, sites, SuggestStyle{false, '"', "site(\"", "\")"});
      diag.note("its sites: " + list);
      return;
    }
    if (testCount == n) {
      diags_.report(DiagKind::Data, at, "every sample of '" + d.task[0] + "' is from site '" + e.testSite +
                                            "': no other site is left to draw the shots from");
      return;
    }
  }
  int64_t pool = n - testCount;
  SourceRange shotsAt = args["shots"].present ? args["shots"].range : d.range;
  int64_t minShots = labelKind == ir::LabelKind::Binary ? 2 : labelKind == ir::LabelKind::Mask ? 1 : 3;
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
    return;
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
    return;
  }
  if (e.data.kind == ir::DataKind::Folder && labelKind == ir::LabelKind::Binary) {
    size_t positives = 0;
    for (const ir::FolderSample& smp : e.data.folder.samples) positives += smp.label == 1.0 ? 1 : 0;
    if (positives == 0 || positives == e.data.folder.samples.size()) {
      diags_.report(DiagKind::Data, d.taskRanges[1],
                    "every label of '" + d.task[0] + "' is " + (positives == 0 ? "0" : "1") + "; AUROC needs both classes");
      return;
    }
  }
  // The task data go through the pretraining pipeline: they must fit the encoder too.
  Value taskData = data;
  taskData.ty = Ty::Data;
  warnCropPadding(data, evalPipeline.pipeline, evalPipeline.opOrigins, taskDatasetRange(d));
  flowShape(taskData, evalPipeline.pipeline);
  if (evalPipeline.pipelineSetsShape) taskData.shapeOrigin = evalPipeline.shapeOrigin;
  if (!taskData.shapeKnown) {
    reportUnknownShape(d.taskRanges[0]);
    return;
  }
  if (!checkDivisible(taskData, e.encoder, model.range, evalPipeline.pipelineSetsShape ? "crop" : "input size")) return;

  std::string metricList;
  for (const std::string& m : e.metrics) metricList += (metricList.empty() ? "" : ", ") + m;
  std::string detail =
      "model = " + e.pretrain + "; task = " + d.task[0] + "." + e.label + " (" +
      std::string(ir::toString(e.labelKind)) + ") of " + ir::print(e.data) + "; " +
      (finetune ? "protocol = finetune, epochs = " + std::to_string(e.epochs) + ", lr = " + ir::formatNumber(e.lr) + ","
                : std::string("probe = linear,")) +
      " shots = " + std::to_string(e.shots) + ", repeats = " + std::to_string(e.repeats) + ", test = " +
      (e.testSite.empty() ? ir::formatNumber(e.testFraction * 100) + "%" : "site(\"" + e.testSite + "\")") + " (" +
      std::to_string(testCount) + " subjects); pipeline = " + ir::print(e.pipeline) + "; metrics = [" + metricList +
      "]" + metricsFrom;
  Value shown;
  shown.shape = taskData.shape;
  record(d, shown, d.name, "Evaluate", detail);

  stage.deps.push_back(stageIndex_.at(e.pretrain));
  experiment_.stages.push_back(std::move(stage));
}


}  // namespace gyrus::check
