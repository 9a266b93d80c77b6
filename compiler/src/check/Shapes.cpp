// Rule pass: shapes. The input size must be divisible by the encoder's total stride
// (or tiled by the ViT's patches) and by the MAE mask cube; a crop larger than a known
// volume is a warning.
#include "../CheckInternal.h"

namespace gyrus::check {

void Checker::warnCropPadding(const Value& data, const ir::Pipeline& pipeline, const std::vector<SourceRange>& origins,
                              SourceRange usedAt) {
  // Only a synthetic volume's size is known at check time (folder volumes are not read).
  if (data.dataset.kind != ir::DataKind::Synthetic || !data.shapeKnown) return;
  Value flowing = data;
  for (size_t i = 0; i < pipeline.ops.size(); ++i) {
    const ir::PipelineOp& op = pipeline.ops[i];
    if (op.spec().shape == ir::OpShape::Sets && flowing.shapeKnown) {
      const ir::Shape3 size = op.shape(op.spec().shapeParam);
      bool larger = false;
      ir::Shape3 fits{};
      for (size_t k = 0; k < 3; ++k) {
        larger = larger || size[k] > flowing.shape[k];
        fits[k] = std::min(size[k], flowing.shape[k]);
      }
      // One warning per crop and volume size, however many stages share the pipeline.
      bool first = larger && i < origins.size() &&
                   paddingWarned_.insert({origins[i].file, origins[i].begin, flowing.shape}).second;
      if (first) {
        Diagnostic& d = diags_.report(DiagKind::CropPadding, origins[i],
                                      op.name + " " + ir::formatShape(size) + " is larger than the volume (" +
                                          ir::formatShape(flowing.shape) + "): the volume is zero-padded to fill it");
        if (usedAt.valid()) d.note(usedAt, "the volumes of this data set go through it here");
        d.note("a crop cuts the centre of the volume; where the volume is smaller it pads with zeros, which the "
               "encoder then learns as content");
        d.note("the largest crop without padding is " + ir::formatShape(fits));
      }
    }
    ir::Pipeline one;
    one.ops.push_back(op);
    flowShape(flowing, one);
  }
}

bool Checker::checkDivisible(const Value& data, const ir::Encoder& enc, SourceRange encoderRange, const char* what) {
  int64_t stride = enc.totalStride();
  bool ok = true;
  for (int64_t side : data.shape) ok = ok && side % stride == 0;
  if (ok) return true;
  std::string shape = ir::formatShape(data.shape);
  Diagnostic& d = diags_.report(DiagKind::ShapeDivisibility, data.shapeOrigin,
                                std::string(what) + " " + shape +
                                    (enc.kind == ir::EncoderKind::Vit
                                         ? " is not divisible by the ViT's patch size " + std::to_string(stride) +
                                               ": the patches must tile the input"
                                         : " is not divisible by the encoder's total stride " + std::to_string(stride) +
                                               " (" + std::to_string(enc.unet.stages - 1) + " downsamplings)"));
  d.note(encoderRange, "encoder '" + std::string(sm_.text(encoderRange)) + "' declared here");
  ir::Shape3 down{}, up{};
  for (size_t i = 0; i < 3; ++i) {
    down[i] = std::max(stride, data.shape[i] / stride * stride);
    up[i] = (data.shape[i] + stride - 1) / stride * stride;
  }
  ir::Shape3 nearest{};
  for (size_t i = 0; i < 3; ++i) nearest[i] = data.shape[i] - down[i] < up[i] - data.shape[i] ? down[i] : up[i];
  std::string downS = ir::formatShape(down), upS = ir::formatShape(up);
  d.note(downS == upS ? "nearest valid size: " + upS : "nearest valid sizes: " + downS + " or " + upS);
  // Offer the replacement only where the origin is a shape literal the user wrote.
  std::string_view origin = sm_.text(data.shapeOrigin);
  if (!origin.empty() && origin.find('(') == std::string_view::npos) d.fixit(data.shapeOrigin, ir::formatShape(nearest));
  return false;
}

void Checker::checkCube(const Value& data, const Value& objective) {
  for (size_t t = 0; t < objective.objective.terms.size(); ++t) {
    const ir::ObjectiveTerm& term = objective.objective.terms[t];
    if (term.kind != ir::ObjectiveKind::Mae) continue;
    int64_t cube = term.mae.cube;
    bool ok = true;
    for (int64_t side : data.shape) ok = ok && side % cube == 0;
    if (ok) continue;
    SourceRange where = t < objective.cubeOrigins.size() ? objective.cubeOrigins[t] : objective.range;
    Diagnostic& d = diags_.report(DiagKind::ShapeDivisibility, where,
                                  "MAE mask cube " + std::to_string(cube) + " does not tile the input " +
                                      ir::formatShape(data.shape));
    d.note(data.shapeOrigin, "input size set here");
    std::vector<int64_t> divisors;
    for (int64_t c = 1; c <= data.shape[0]; ++c) {
      bool all = true;
      for (int64_t side : data.shape) all = all && side % c == 0;
      if (all) divisors.push_back(c);
    }
    int64_t best = 1;
    for (int64_t c : divisors)
      if (std::llabs(c - cube) < std::llabs(best - cube)) best = c;
    d.note("nearest cube that tiles it: " + std::to_string(best));
  }
}


// The task data go through the evaluation's pipeline: they must fit the encoder too.
bool Checker::checkTaskShape(Evaluation& ev, const ir::EvaluateStage& e, Value& taskData) {
  const ast::DeclEvaluate& d = *ev.decl;
  const Value& model = ev.model;
  const Value& data = ev.data;
  const Value& evalPipeline = ev.pipeline;
  // The task data go through the pretraining pipeline: they must fit the encoder too.
  taskData = data;
  taskData.ty = Ty::Data;
  warnCropPadding(data, evalPipeline.pipeline, evalPipeline.opOrigins, taskDatasetRange(d));
  flowShape(taskData, evalPipeline.pipeline);
  if (evalPipeline.pipelineSetsShape) taskData.shapeOrigin = evalPipeline.shapeOrigin;
  if (!taskData.shapeKnown) {
    reportUnknownShape(d.taskRanges[0]);
    return false;
  }
  if (!checkDivisible(taskData, e.encoder, model.range, evalPipeline.pipelineSetsShape ? "crop" : "input size")) return false;
  return true;
}

}  // namespace gyrus::check
