// An evaluation: its model and task resolved, its arguments bound to the `evaluate`
// signature, the rules that concern it (head and task, metrics, pipeline agreement,
// few-shot sizing, shapes) and its stage.
#include "../CheckInternal.h"

namespace gyrus::check {

Value Checker::resolveEvaluatedModel(const ast::DeclEvaluate& d) {
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
  return model;
}

Value Checker::resolveTask(const ast::DeclEvaluate& d, std::string& label, ir::LabelKind& labelKind) {
  Value data;
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
  return data;
}

void Checker::checkEvaluate(const ast::DeclEvaluate& d) {
  Evaluation ev;
  ev.decl = &d;
  ev.model = resolveEvaluatedModel(d);
  ev.data = resolveTask(d, ev.label, ev.labelKind);

  // Protocol arguments.
  const Signature& sig = *findSignature("evaluate");
  std::map<std::string, Bound>& args = ev.args;
  std::vector<ArgItem> items;
  for (const ast::Arg& a : d.args) items.push_back({a.name, a.nameRange, a.value});
  bool ok = bindArguments(sig, items, BindSite::Evaluate, d.name, args);
  ev.finetune = args.count("protocol") != 0 && args["protocol"].value.flag;
  bool finetune = ev.finetune;
  for (const Param& only : sig.params) {
    auto given = args.find(only.name);
    if ((only.flags & kFinetuneOnly) == 0 || given == args.end() || given->second.value.ty == Ty::Error || finetune)
      continue;
    diags_.report(DiagKind::UnknownArgument, given->second.range,
                  "'" + only.name + "' is an argument of the fine-tuning protocol; a probe does not train the encoder")
        .note("add `protocol = finetune` to fine-tune the encoder on the shots");
    ok = false;
  }
  if (!ok || ev.model.ty != Ty::Model || ev.data.ty != Ty::Dataset) return;
  fillDefaults(sig, args, d.range);

  // The rules, in order; the first that fails ends the evaluation's check.
  if (!checkTaskHead(ev) || !chooseMetrics(ev)) return;
  // The evaluation's own preprocessing must match what the encoder was pretrained on.
  ev.pipeline = ev.model;
  ev.pipelineAt = ev.model.range;
  if (args["pipeline"].present) {
    const Value& pv = args["pipeline"].value;
    ev.pipeline.pipeline = pv.pipeline;
    ev.pipeline.opOrigins = pv.opOrigins;
    ev.pipeline.pipelineSetsShape = pv.pipelineSetsShape;
    ev.pipeline.shapeOrigin = pv.shapeOrigin;
    ev.pipelineAt = args["pipeline"].range;
    if (!checkPipelinesAgree(ev.model, ev.pipeline, ev.pipelineAt, finetune)) return;
  }
  ir::Stage stage;
  Value taskData;
  if (!buildEvaluateStage(ev, stage) || !checkFewShot(ev, stage.evaluate) ||
      !checkTaskShape(ev, stage.evaluate, taskData))
    return;
  const ir::EvaluateStage& e = stage.evaluate;

  std::string metricList;
  for (const std::string& m : e.metrics) metricList += (metricList.empty() ? "" : ", ") + m;
  std::string detail =
      "model = " + e.pretrain +
      (e.initWeights.empty() ? std::string()
                             : " with weights(" + args["init"].value.str + ", sha256 " + e.initWeights.sha256.substr(0, 12) + ")") +
      "; task = " + d.task[0] + "." + e.label + " (" +
      std::string(ir::toString(e.labelKind)) + ") of " + ir::print(e.data) + "; " +
      (finetune ? "protocol = finetune, epochs = " + std::to_string(e.epochs) + ", lr = " + ir::formatNumber(e.lr) + ","
                : std::string("probe = linear,")) +
      " shots = " + std::to_string(e.shots) + ", repeats = " + std::to_string(e.repeats) + ", test = " +
      (e.testSite.empty() ? ir::formatNumber(e.testFraction * 100) + "%" : "site(\"" + e.testSite + "\")") + " (" +
      std::to_string(ev.testCount) + " subjects); pipeline = " + ir::print(e.pipeline) + "; metrics = [" + metricList +
      "]" + ev.metricsFrom;
  Value shown;
  shown.shape = taskData.shape;
  record(d, shown, d.name, "Evaluate", detail);

  // Judging a weights file needs no training: the model only lends its architecture
  // and pipeline.
  if (e.initWeights.empty()) stage.deps.push_back(stageIndex_.at(e.pretrain));
  experiment_.stages.push_back(std::move(stage));
}

bool Checker::chooseMetrics(Evaluation& ev) {
  const Bound& given = ev.args["metrics"];
  std::vector<std::string> metricNames;
  std::vector<SourceRange> metricRanges;
  for (const Value& m : given.value.items) {
    metricNames.push_back(metricName(m));
    metricRanges.push_back(m.range);
  }
  // The metrics to report, in order: the evaluation's own, its data set's task's, or
  // the label kind's.
  if (given.present) {
    if (!checkMetricsSuit(metricNames, metricRanges, given.range, ev.labelKind, ev.labelText(), SourceRange{}))
      return false;
    ev.metrics = metricNames;
  } else if (!ev.data.taskMetrics.empty()) {
    for (const Value& m : ev.data.taskMetrics) ev.metrics.push_back(metricName(m));
    ev.metricsFrom = " (from the task of '" + ev.decl->task[0] + "')";
  } else {
    ev.metrics = metricsOf(ev.labelKind);
    ev.metricsFrom = " (the default for " + labelKindWord(ev.labelKind) + " labels)";
  }
  return true;
}

bool Checker::buildEvaluateStage(Evaluation& ev, ir::Stage& stage) {
  const ast::DeclEvaluate& d = *ev.decl;
  const Value& model = ev.model;
  const Value& data = ev.data;
  const std::string& label = ev.label;
  ir::LabelKind labelKind = ev.labelKind;
  std::map<std::string, Bound>& args = ev.args;
  bool finetune = ev.finetune;
  const Value& evalPipeline = ev.pipeline;
  stage = newStage(ir::StageKind::Evaluate, d.name);
  ir::EvaluateStage& e = stage.evaluate;
  e.pretrain = model.model;
  e.data = data.dataset;
  e.encoder = model.encoder;
  // Augmentations are for training views only: evaluation sees the deterministic part
  // (a random crop becomes the centre crop of the same size).
  for (const ir::PipelineOp& op : evalPipeline.pipeline.ops)
    if (ir::PipelineOp part; ir::deterministicPart(op, part)) e.pipeline.ops.push_back(std::move(part));
  if (finetune) {
    e.protocol = ir::Protocol::Finetune;
    e.epochs = static_cast<int64_t>(args["epochs"].value.num);
    e.lr = args["lr"].value.num;
    if (args["batch"].present) e.batch = static_cast<int64_t>(args["batch"].value.num);
    if (args["batches"].present) e.batches = static_cast<int64_t>(args["batches"].value.num);
    e.gradClip = args["clip"].value.num;
    // Only a stem whose channels differ is started either way: elsewhere the setting is
    // moot and stays out of the stage's identity.
    e.stem = args["stem"].value.flag && e.data.channelCount() != e.encoder.inChannels() ? ir::StemInit::Repeat
                                                                                         : ir::StemInit::Reinit;
    if (e.data.channelCount() > e.encoder.inChannels() && e.stem == ir::StemInit::Reinit) {
      diags_.report(DiagKind::StemReinit, d.taskRanges[0],
                    "'" + d.task[0] + "' has " + std::to_string(e.data.channelCount()) +
                        " channels but '" + model.model + "' was pretrained on " +
                        std::to_string(e.encoder.inChannels()) + ": fine-tuning re-initialises the " +
                        (e.encoder.kind == ir::EncoderKind::Vit ? "patch embedding" : "first convolution"))
          .note("the rest of the encoder starts from the pretrained weights; the probe protocol instead encodes each "
                "channel with the pretrained stem")
          .note("`stem = repeat` starts it from the pretrained filters, tiled over the channels and rescaled");
    }
  }
  e.encoder = model.encoder;
  e.label = label;
  e.labelKind = labelKind;
  e.metrics = ev.metrics;
  e.shots = static_cast<int64_t>(args["shots"].value.num);
  if (e.batch > e.shots) {
    diags_.report(DiagKind::ValueRange, args["batch"].range,
                  "batch " + std::to_string(e.batch) + " is larger than shots " + std::to_string(e.shots) +
                      ": a batch holds distinct training samples")
        .fixit(args["batch"].range, std::to_string(e.shots))
        .note("to train on more batches per epoch, set `batches` (e.g. the FOMO25 baseline's 100)");
    return false;
  }
  e.repeats = static_cast<int64_t>(args["repeats"].value.num);
  if (args["test"].value.ty == Ty::Site) {
    e.testSite = args["test"].value.str;
  } else {
    e.testFraction = args["test"].value.num;
  }
  e.seed = static_cast<uint64_t>(args["seed"].value.num);
  e.precision = args["precision"].value.flag ? ir::Precision::Bf16 : ir::Precision::Fp32;
  e.nsdToleranceMm = args["tolerance"].value.num;
  e.ridgeAlpha = args["alpha"].present ? args["alpha"].value.num : 0.0;
  if (args["init"].present && args["init"].value.ty == Ty::Weights) {
    if (!checkInitWeights(args["init"].value, args["init"].range, model.encoder, model.encoderOrigin,
                          "evaluation '" + stage.name + "'"))
      return false;
    e.initWeights = args["init"].value.weights;
  }
  return true;
}

}  // namespace gyrus::check
