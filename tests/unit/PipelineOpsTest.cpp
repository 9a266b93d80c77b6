// The pipeline-operation registry (compiler/include/gyrus/PipelineOps.def): the checker's
// signatures are its entries, the IR's defaults are the checker's, every operation
// round-trips through JSON and the verifier, and what the registry does not declare is
// rejected. (tests/runtime/PreprocessTests.cpp: every operation has a reference
// implementation.)
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "CheckInternal.h"
#include "TestUtil.h"
#include "gyrus/IrJson.h"

using namespace gyrus;
using gyrus::test::compile;

namespace {
// A pretraining whose pipeline is every operation of the registry, in its order, with
// its defaults (an operation that sets the shape: 32^3), and an evaluation of it.
std::string everyOperation() {
  std::string pipeline;
  for (const ir::OpSpec& spec : ir::pipelineOps()) {
    pipeline += (pipeline.empty() ? "" : " >> ") + std::string(spec.name) + "(";
    for (const ir::OpParamSpec& p : spec.params)
      if ((p.flags & ir::kRequired) != 0) pipeline += std::string(p.name) + " = 32^3";
    pipeline += ")";
  }
  return "dataset corpus = synthetic(subjects = 16, size = 40^3)\n"
         "pretrain base {\n  data = corpus |> " +
         pipeline +
         "\n  encoder = unet(width = 8, stages = 4)\n  objective = mae()\n}\n"
         "evaluate base on corpus.lesion (shots = 4, repeats = 1)\n";
}

check::Ty checkerType(ir::OpParamType t) {
  switch (t) {
    case ir::OpParamType::Float: return check::Ty::Float;
    case ir::OpParamType::Fraction: return check::Ty::Fraction;
    case ir::OpParamType::Length: return check::Ty::Length;
    case ir::OpParamType::Shape: return check::Ty::Shape;
    case ir::OpParamType::Bool: return check::Ty::Bool;
    case ir::OpParamType::Range: return check::Ty::Range;
  }
  return check::Ty::Error;
}

ir::Experiment compileEveryOperation() {
  auto c = compile(everyOperation());
  INFO(everyOperation());
  INFO(renderHuman(c->sources, c->diags.sorted()));
  REQUIRE(c->check.experiment.has_value());
  return *c->check.experiment;
}
}  // namespace

TEST_CASE("pipeline registry: each operation is a Pipeline function of the signature table, parameter for parameter") {
  for (const ir::OpSpec& spec : ir::pipelineOps()) {
    INFO(spec.name);
    const check::Signature* s = check::findSignature(std::string(spec.name));
    REQUIRE(s != nullptr);
    CHECK(s->callable);
    CHECK((s->result == check::Ty::Pipeline));
    CHECK(s->doc == spec.doc);
    REQUIRE(s->params.size() == spec.params.size());
    for (size_t i = 0; i < spec.params.size(); ++i) {
      const ir::OpParamSpec& p = spec.params[i];
      const check::Param& q = s->params[i];
      INFO(p.name);
      CHECK(q.name == p.name);
      CHECK((q.ty == checkerType(p.type)));
      CHECK(q.unit == p.unit);
      CHECK(q.defaultText == p.defaultText);
      CHECK((q.bounds == p.bounds));
      CHECK(q.lo == p.lo);
      CHECK(q.hi == p.hi);
      CHECK(q.flags == p.flags);
    }
    // The shape effect names one of the operation's parameters, of the type it reads.
    if (spec.shape != ir::OpShape::Keeps) {
      const ir::OpParamSpec* p = spec.find(spec.shapeParam);
      REQUIRE(p != nullptr);
      CHECK((p->type == (spec.shape == ir::OpShape::Sets ? ir::OpParamType::Shape : ir::OpParamType::Length)));
    }
  }
  // Every Pipeline function is an operation of the registry.
  for (const check::Signature* s : check::builtins())
    if (s->result == check::Ty::Pipeline) CHECK(ir::findPipelineOp(s->name) != nullptr);
}

TEST_CASE("pipeline registry: the IR's defaults are the checker's") {
  for (const ir::OpSpec& spec : ir::pipelineOps()) {
    const check::Signature* s = check::findSignature(std::string(spec.name));
    REQUIRE(s != nullptr);
    for (const ir::OpParamSpec& p : spec.params) {
      INFO(spec.name << "." << p.name);
      const check::Param* q = s->find(std::string(p.name));
      REQUIRE(q != nullptr);
      ir::OpValue d = ir::defaultValue(p);
      if (q->required()) continue;
      const check::Value& v = q->defaultValue;
      if (const auto* x = std::get_if<double>(&d)) CHECK(*x == v.num);
      if (const auto* x = std::get_if<bool>(&d)) CHECK(*x == v.flag);
      if (const auto* x = std::get_if<ir::Shape3>(&d)) CHECK(*x == v.shape);
      if (const auto* x = std::get_if<ir::Interval>(&d)) CHECK((*x == ir::Interval{v.num, v.hi}));
    }
  }
}

TEST_CASE("pipeline registry: every operation round-trips through JSON, prints and verifies") {
  ir::Experiment ex = compileEveryOperation();
  CHECK(ir::verify(ex).empty());
  const ir::Pipeline& p = ex.stages[0].pretrain.pipeline;
  REQUIRE(p.ops.size() == ir::pipelineOps().size());
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const ir::OpSpec& spec = ir::pipelineOps()[i];
    INFO(spec.name);
    CHECK(p.ops[i].name == spec.name);
    CHECK(ir::verify(p.ops[i]).empty());
    // The print is a call with every parameter by name, in the registry's order.
    std::string printed = ir::print(p.ops[i]);
    CHECK(printed.rfind(std::string(spec.name) + "(", 0) == 0);
    for (const ir::OpParamSpec& param : spec.params)
      CHECK(printed.find(std::string(param.name) + " = ") != std::string::npos);
  }
  // The evaluation keeps the deterministic operations.
  size_t deterministic = 0;
  for (const ir::OpSpec& spec : ir::pipelineOps()) deterministic += spec.random() ? 0 : 1;
  CHECK(ex.stages[1].evaluate.pipeline.ops.size() == deterministic);

  std::string text = ir::toJson(ex);
  ir::Experiment back;
  std::string error;
  REQUIRE_MESSAGE(ir::experimentFromJson(text, back, error), error);
  CHECK(ir::toJson(back) == text);
  CHECK(back.stages[0].hash == ex.stages[0].hash);
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const ir::PipelineOp& a = p.ops[i];
    const ir::PipelineOp& b = back.stages[0].pretrain.pipeline.ops[i];
    CHECK(a.name == b.name);
    REQUIRE(a.args.size() == b.args.size());
    for (size_t k = 0; k < a.args.size(); ++k) {
      CHECK(a.args[k].name == b.args[k].name);
      CHECK((a.args[k].value == b.args[k].value));
    }
  }
  // An operation's parameters are part of the stage's identity.
  ir::Experiment changed = ex;
  ir::PipelineOp& last = changed.stages[0].pretrain.pipeline.ops.back();
  last.args[0].value = std::visit(
      [](auto v) -> ir::OpValue {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, double>) return v / 2;
        if constexpr (std::is_same_v<T, bool>) return !v;
        if constexpr (std::is_same_v<T, ir::Shape3>) return ir::Shape3{v[0] / 2, v[1], v[2]};
        if constexpr (std::is_same_v<T, ir::Interval>) return ir::Interval{v.lo / 2, v.hi};
      },
      last.args[0].value);
  CHECK(ir::hashMaterial(changed.stages[0], {}) != ir::hashMaterial(ex.stages[0], {}));
}

TEST_CASE("pipeline registry: what the registry does not declare is rejected") {
  ir::Experiment ex = compileEveryOperation();
  auto json = nlohmann::ordered_json::parse(ir::toJson(ex));
  auto readBack = [](const nlohmann::ordered_json& j) {
    ir::Experiment out;
    std::string error;
    CHECK_FALSE(ir::experimentFromJson(j.dump(), out, error));
    return error;
  };
  nlohmann::ordered_json bad = json;
  bad["stages"][0]["pretrain"]["pipeline"]["ops"][0]["op"] = "sharpen";
  CHECK(readBack(bad) == "stages[0].pretrain.pipeline.ops[0].op: unknown value 'sharpen'");
  bad = json;
  bad["stages"][0]["pretrain"]["pipeline"]["ops"][0]["extra"] = 1;
  CHECK(readBack(bad) == "stages[0].pretrain.pipeline.ops[0]: unknown key 'extra'");
  bad = json;
  bad["stages"][0]["pretrain"]["pipeline"]["ops"][1].erase("size");  // crop
  CHECK(readBack(bad) == "stages[0].pretrain.pipeline.ops[1]: missing key 'size'");

  // The verifier: registry name, parameters in order and of their types, ranges, rules.
  CHECK(ir::verify(ir::PipelineOp{"sharpen", {}}) == "unknown pipeline operation 'sharpen'");
  ir::PipelineOp crop = ir::makeOp("crop", {{"size", ir::Shape3{8, 8, 8}}});
  CHECK(ir::verify(crop).empty());
  crop.args[0].value = 8.0;
  CHECK(ir::verify(crop) == "crop's parameter 0 is not 'size' of its type");
  crop.args.clear();
  CHECK(ir::verify(crop) == "crop has not one value per parameter");
  CHECK(ir::verify(ir::makeOp("crop")) == "crop's size every side must be at least 1 voxels");
  CHECK(ir::verify(ir::makeOp("resample", {{"spacing", 0.0}})) == "resample's spacing must be in [0.05, 20]");
  CHECK(ir::verify(ir::makeOp("clip", {{"lo", 0.5}, {"hi", 0.4}})) == "clip percentiles are not 0 <= lo < hi <= 1");
  CHECK(ir::verify(ir::makeOp("gamma", {{"range", ir::Interval{0.0, 1.0}}})) == "a gamma range is not 0 < lo < hi");
  CHECK(ir::verify(ir::makeOp("rotate", {{"angle", ir::Interval{10, -10}}})) == "rotate's angle is not a range lo < hi");
  CHECK(ir::verify(ir::makeOp("rotate", {{"angle", ir::Interval{-200, 10}}})) == "rotate's angle must lie within [-180, 180]");
  CHECK(ir::verify(ir::makeOp("ringing", {{"cut", ir::Interval{0, 0.5}}})) == "ringing's cut must lie within (0, 1]");
  CHECK(ir::verify(ir::makeOp("blur", {{"sigma", ir::Interval{0, 1}}})).empty());  // Inside: [0, 20]
  ex.stages[0].pretrain.pipeline.ops[4].set("p", 1.5);  // flip
  CHECK(ir::verify(ex) == "stage 0 'base': flip's p must be in [0, 1]");

  // The accessors name what is wrong.
  CHECK_THROWS_WITH_AS(ir::makeOp("sharpen"), "unknown pipeline operation 'sharpen'", std::invalid_argument);
  CHECK_THROWS_WITH_AS(ir::makeOp("crop", {{"side", 8.0}}), "crop has no parameter 'side'", std::invalid_argument);
  CHECK_THROWS_WITH_AS(ir::makeOp("crop", {{"size", 8.0}}), "crop's parameter 'size' has another type",
                       std::invalid_argument);
  CHECK_THROWS_AS(ir::makeOp("zscore").number("nonzero"), std::invalid_argument);
}

TEST_CASE("pipeline registry: shape effects") {
  ir::Shape3 shape{40, 30, 20};
  std::array<double, 3> spacing{1.0, 2.0, 0.5};
  ir::applyShape(ir::makeOp("zscore"), shape, spacing);
  CHECK(shape == ir::Shape3{40, 30, 20});
  ir::applyShape(ir::makeOp("resample", {{"spacing", 2.0}}), shape, spacing);
  CHECK(shape == ir::Shape3{20, 30, 5});
  CHECK(spacing == std::array<double, 3>{2.0, 2.0, 2.0});
  ir::applyShape(ir::makeOp("crop", {{"size", ir::Shape3{8, 9, 10}}}), shape, spacing);
  CHECK(shape == ir::Shape3{8, 9, 10});
  ir::Pipeline p{{ir::makeOp("resample", {{"spacing", 2.0}}), ir::makeOp("resample", {{"spacing", 1.0}})}};
  CHECK(ir::outputShape(p, {40, 40, 40}) == ir::Shape3{40, 40, 40});  // the spacing is tracked
}

TEST_CASE("pipeline registry: a parameter added later is identity only when it is not its default") {
  auto stage = [](const std::string& views) {
    auto c = compile("dataset corpus = synthetic(subjects = 16, size = 40^3)\npretrain base {\n  data = corpus |> crop(32^3) >> " +
                     views + "\n  encoder = unet(width = 8, stages = 4)\n  objective = mae()\n}\n");
    INFO(views);
    REQUIRE(c->check.experiment.has_value());
    return c->check.experiment->stages[0];
  };
  // noise's p and sigma_hi, gamma's p, invert and halves: written (and hashed) only when set
  // to something else than their defaults, so older files keep their stage hashes.
  const ir::Stage before = stage("noise(sigma = 0.05) >> gamma(0.7 .. 1.5)");
  CHECK(stage("noise(sigma = 0.05, p = 100%, sigma_hi = 0) >> gamma(0.7 .. 1.5, p = 100%, invert = 0%, halves = false)")
            .hash == before.hash);
  ir::Experiment ex;
  ex.stages.push_back(before);
  CHECK(ir::toJson(ex).find("\"sigma_hi\"") == std::string::npos);
  CHECK(ir::toJson(ex).find("\"halves\"") == std::string::npos);
  std::set<std::string> hashes = {before.hash};
  for (const char* views : {"noise(sigma = 0.05, p = 50%) >> gamma(0.7 .. 1.5)",
                            "noise(sigma = 0.05, sigma_hi = 0.1) >> gamma(0.7 .. 1.5)",
                            "noise(sigma = 0.05) >> gamma(0.7 .. 1.5, p = 20%)",
                            "noise(sigma = 0.05) >> gamma(0.7 .. 1.5, invert = 5%)",
                            "noise(sigma = 0.05) >> gamma(0.7 .. 1.5, halves = true)"})
    CHECK(hashes.insert(stage(views).hash).second);
  // A set one round-trips through JSON.
  ex.stages[0] = stage("noise(sigma = 0.05, p = 50%) >> gamma(0.7 .. 1.5, halves = true)");
  std::string text = ir::toJson(ex);
  CHECK(text.find("\"halves\"") != std::string::npos);
  ir::Experiment back;
  std::string error;
  REQUIRE_MESSAGE(ir::experimentFromJson(text, back, error), error);
  CHECK(ir::toJson(back) == text);
}

TEST_CASE("pipeline registry: cubic and random crops keep older hashes; a random crop is evaluated centred") {
  auto experiment = [](const std::string& pipeline) {
    auto c = compile("dataset corpus = synthetic(subjects = 16, size = 40^3)\ndataset clinic = synthetic(subjects = 40, "
                     "size = 40^3, seed = 2)\npipeline prep = " +
                     pipeline +
                     "\npretrain base {\n  data = corpus |> prep\n  encoder = unet(width = 8, stages = 4)\n  objective = "
                     "mae()\n}\nevaluate base on clinic.lesion (shots = 16, repeats = 2)\n");
    INFO(pipeline);
    REQUIRE(c->check.experiment.has_value());
    return *c->check.experiment;
  };
  const ir::Experiment before = experiment("resample(1mm) >> crop(32^3) >> rotate()");
  const ir::Experiment same =
      experiment("resample(1mm, cubic = false) >> crop(32^3, random = false) >> rotate(cubic = false)");
  CHECK(same.stages[0].hash == before.stages[0].hash);
  CHECK(ir::toJson(before).find("\"cubic\"") == std::string::npos);
  CHECK(ir::toJson(before).find("\"random\"") == std::string::npos);
  std::set<std::string> hashes = {before.stages[0].hash};
  for (const char* p : {"resample(1mm, cubic = true) >> crop(32^3) >> rotate()",
                        "resample(1mm) >> crop(32^3, random = true) >> rotate()",
                        "resample(1mm) >> crop(32^3) >> rotate(cubic = true)"})
    CHECK(hashes.insert(experiment(p).stages[0].hash).second);
  // Set, they round-trip through JSON.
  const ir::Experiment set = experiment("resample(1mm, cubic = true) >> crop(32^3, random = true) >> rotate()");
  std::string text = ir::toJson(set);
  CHECK(text.find("\"cubic\"") != std::string::npos);
  ir::Experiment back;
  std::string error;
  REQUIRE_MESSAGE(ir::experimentFromJson(text, back, error), error);
  CHECK(ir::toJson(back) == text);
  // Evaluation sees the deterministic part: the crop stays (the shape), centred; the
  // rotation is left out.
  const ir::Stage& eval = set.stages[1];
  REQUIRE((eval.kind == ir::StageKind::Evaluate));
  REQUIRE(eval.evaluate.pipeline.ops.size() == 2);
  CHECK(eval.evaluate.pipeline.ops[1].name == "crop");
  CHECK_FALSE(eval.evaluate.pipeline.ops[1].flag("random"));
  // A boolean is checked as one.
  auto bad = compile("pipeline prep = crop(32^3, random = 2)\n");
  CHECK(bad->diags.errorCount() > 0);
}
