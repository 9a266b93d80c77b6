// A pretrain block: its fields bound to the `pretrain` signature, the rules that
// concern one pretraining (channels, shapes, objective and decoder, contrastive views,
// warm-up, batch, memory budget), and its stage.
#include "../CheckInternal.h"
#include "gyrus/Plan.h"

namespace gyrus::check {

Value Checker::evalPretrain(const ast::DeclPretrain& d) {
  const Signature& sig = *findSignature("pretrain");
  std::map<std::string, Bound> fields;
  std::vector<ArgItem> items;
  for (const ast::Field& f : d.fields) items.push_back({f.name, f.nameRange, f.value});
  bool ok = bindArguments(sig, items, BindSite::Pretrain, d.name, fields);
  for (const Param& req : sig.params) {
    if (!req.required() || fields.count(req.name) != 0) continue;
    if (ok) {
      Diagnostic& diag = diags_.report(DiagKind::MissingField, d.nameRange,
                                       "pretrain '" + d.name + "' does not set '" + req.name + "'");
      std::string example = req.name == "data"      ? "data = corpus |> prep"
                            : req.name == "encoder" ? "encoder = unet(width = 32, stages = 5)"
                                                    : "objective = mae(mask = 60%)";
      diag.note("add a field such as `" + example + "`");
    }
    ok = false;
  }
  if (!ok) return errorValue();
  for (const auto& [name, bound] : fields)
    if (bound.value.ty == Ty::Error) return errorValue();
  fillDefaults(sig, fields, d.nameRange);

  const Value& data = fields["data"].value;
  const Value& enc = fields["encoder"].value;
  const Value& obj = fields["objective"].value;
  ir::Encoder encoder = enc.encoder;
  encoder.setInChannels(1);
  if (data.dataset.channelCount() > 1) {
    diags_.report(DiagKind::Data, fields["data"].range,
                  "pretraining takes single-channel volumes, but this data set has " +
                      std::to_string(data.dataset.channelCount()) + " channels per sample")
        .note("pretrain on a fomo60k(...) folder, where every scan is its own sample");
    return errorValue();
  }
  if (!data.shapeKnown) {
    reportUnknownShape(fields["data"].range);
    return errorValue();
  }
  // A size the encoder cannot tile is reported once: fixing it usually fixes the mask
  // cube too, so the cube is checked only against sizes the encoder accepts.
  if (checkDivisible(data, encoder, fields["encoder"].range, data.pipelineSetsShape ? "crop" : "input size"))
    checkCube(data, obj);
  if (!checkObjectiveHead(d, obj, fields)) return errorValue();
  bool stochastic = false;
  for (const ir::PipelineOp& op : data.pipeline.ops) stochastic = stochastic || op.isRandom();
  for (size_t t = 0; t < obj.objective.terms.size(); ++t) {
    if (obj.objective.terms[t].kind != ir::ObjectiveKind::SimClr || stochastic) continue;
    SourceRange where = t < obj.cubeOrigins.size() ? obj.cubeOrigins[t] : fields["objective"].range;
    Diagnostic& diag = diags_.report(DiagKind::ContrastiveViews, where,
                                     "simclr compares two random views of each volume, but the data of pretrain '" +
                                         d.name + "' has no random augmentation: both views would be identical");
    diag.note(fields["data"].range, "data prepared here");
    diag.note("add an augmentation such as flip(), noise(sigma = 0.05) or gamma(0.7 .. 1.5) to the pipeline");
    SourceRange dataRange = fields["data"].range;
    diag.fixit(dataRange, std::string(sm_.text(dataRange)) + " >> flip() >> noise(sigma = 0.05)");
    return errorValue();
  }
  // NT-Xent contrasts each sample with the other samples of its batch: one sample per
  // step (or in the whole data set) leaves no negatives.
  for (size_t t = 0; t < obj.objective.terms.size(); ++t) {
    if (obj.objective.terms[t].kind != ir::ObjectiveKind::SimClr) continue;
    SourceRange term = t < obj.cubeOrigins.size() ? obj.cubeOrigins[t] : fields["objective"].range;
    const int64_t batch = static_cast<int64_t>(fields["batch"].value.num);
    const int64_t samples = data.dataset.count();
    if (batch >= 2 && samples >= 2) break;
    SourceRange where = batch < 2 && fields["batch"].present ? fields["batch"].range : fields["data"].range;
    Diagnostic& diag = diags_.report(
        DiagKind::ContrastiveBatch, where,
        batch < 2 ? "simclr contrasts each sample with the others of its batch, but pretrain '" + d.name +
                        "' has batch = " + std::to_string(batch) + ": there are no negatives"
                  : "simclr contrasts each sample with the others of its batch, but the data of pretrain '" + d.name +
                        "' have " + std::to_string(samples) + " sample");
    diag.note(term, "the contrastive term");
    if (batch < 2 && fields["batch"].present) diag.fixit(where, "2");
    if (batch >= 2) diag.note("contrastive pretraining needs at least 2 samples");
    return errorValue();
  }
  ir::Stage stage = newStage(ir::StageKind::Pretrain, d.name);
  ir::PretrainStage& p = stage.pretrain;
  p.data = data.dataset;
  p.pipeline = data.pipeline;
  p.encoder = encoder;
  p.objective = obj.objective;
  if (fields["optimizer"].present) p.optimizer = fields["optimizer"].value.optimizer;
  p.epochs = static_cast<int64_t>(fields["epochs"].value.num);
  p.batch = static_cast<int64_t>(fields["batch"].value.num);
  p.seed = static_cast<uint64_t>(fields["seed"].value.num);
  p.precision = fields["precision"].value.flag ? ir::Precision::Bf16 : ir::Precision::Fp32;
  if (fields["init"].present && fields["init"].value.ty == Ty::Weights) {
    if (!checkInitWeights(fields["init"].value, fields["init"].range, encoder, fields["encoder"].range,
                          "pretrain '" + d.name + "'"))
      return errorValue();
    p.initWeights = fields["init"].value.weights;
  } else if (fields["init"].present) {
    const Value& from = fields["init"].value;
    const ir::Encoder& a = from.encoder;
    if (!(a == encoder)) {
      diags_.report(DiagKind::InitMismatch, fields["encoder"].range,
                    "pretrain '" + d.name + "' starts from '" + from.model + "', whose encoder is " + ir::print(a) +
                        ", not " + ir::print(encoder))
          .note(from.encoderOrigin, "'" + from.model + "' declares its encoder here")
          .note("a stage that continues another's training must use the same encoder");
      return errorValue();
    }
    p.init = from.model;
  }
  if (p.optimizer.warmupEpochs > 0 && p.optimizer.warmupEpochs >= p.epochs) {
    SourceRange at = fields["optimizer"].present ? fields["optimizer"].range : d.nameRange;
    Diagnostic& diag = diags_.report(
        DiagKind::WarmupLength, at,
        "the warm-up of " + std::to_string(p.optimizer.warmupEpochs) + " epoch" +
            (p.optimizer.warmupEpochs == 1 ? "" : "s") + " is not shorter than the run (" + std::to_string(p.epochs) +
            " epoch" + (p.epochs == 1 ? "" : "s") + "): the learning rate never reaches lr = " +
            ir::formatNumber(p.optimizer.lr));
    if (fields["epochs"].present) diag.note(fields["epochs"].range, "epochs set here");
    diag.note("warm-up ramps the learning rate up from lr/1000; make it shorter than the run, or train longer");
  }
  if (p.batch > p.data.count()) {
    diags_.report(DiagKind::ValueRange, fields["batch"].present ? fields["batch"].range : d.nameRange,
                  "batch " + std::to_string(p.batch) + " is larger than the data set (" +
                      std::to_string(p.data.count()) + " samples)");
    return errorValue();
  }
  checkMemoryBudget(d, p, fields["memory"]);

  // The stage with every default spelled out, and what follows from it.
  std::string detail = "data = " + ir::print(p.data) + " |> " + ir::print(p.pipeline) +
                       "; input = " + ir::formatShape(data.shape) + "; encoder = " + ir::print(p.encoder) + " (" +
                       std::to_string(ir::parameterCount(p.encoder)) +
                       (p.encoder.kind == ir::EncoderKind::Vit ? " parameters, patch " : " parameters, stride ") +
                       std::to_string(p.encoder.totalStride()) + "); objective = " + ir::print(p.objective) +
                       "; optimizer = " + ir::print(p.optimizer) + "; epochs = " + std::to_string(p.epochs) +
                       "; batch = " + std::to_string(p.batch) + "; seed = " + std::to_string(p.seed) +
                       (p.init.empty() ? std::string() : "; init = " + p.init) +
                       (p.initWeights.empty() ? std::string()
                                              : "; init = weights(" + fields["init"].value.str + ", sha256 " +
                                                    p.initWeights.sha256.substr(0, 12) + ")");

  if (!p.init.empty()) stage.deps.push_back(stageIndex_.at(p.init));
  stageIndex_[d.name] = experiment_.stages.size();
  experiment_.stages.push_back(std::move(stage));
  Value v;
  v.ty = Ty::Model;
  v.model = d.name;
  v.encoder = encoder;
  v.pipeline = data.pipeline;
  v.opOrigins = data.opOrigins;
  v.pipelineSetsShape = data.pipelineSetsShape;
  v.shapeOrigin = data.shapeOrigin;
  v.range = fields["encoder"].range;
  v.encoderOrigin = fields["encoder"].range;
  v.dataOrigin = fields["data"].range;
  Value shown = v;
  shown.shape = data.shape;
  record(d, shown, d.name, {}, detail);
  return v;
}

bool Checker::checkInitWeights(const Value& weights, SourceRange at, const ir::Encoder& encoder,
                               SourceRange encoderOrigin, const std::string& who) {
  ir::WeightsMatch m = ir::matchEncoderWeights(weights.weightsHeader, encoder);
  if (m.ok()) return true;
  Diagnostic& d = diags_.report(DiagKind::InitMismatch, at,
                                who + " starts from the weights in '" + weights.str + "', but " + m.problem);
  if (!m.note.empty()) d.note(m.note);
  d.note(encoderOrigin, "the encoder is declared here");
  return false;
}

}  // namespace gyrus::check
