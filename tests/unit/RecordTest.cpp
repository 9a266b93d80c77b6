// Records (`{ name = value }`, `record.field`), task records given to fomo25(...) and
// folder(...), and the metrics an evaluation reports.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "TestUtil.h"
#include "gyrus/Format.h"
#include "gyrus/Parse.h"

using namespace gyrus;
using gyrus::test::compile;
using gyrus::test::kinds;
using gyrus::test::kValid;

namespace {
namespace fs = std::filesystem;

const ast::Expr* bindValue(const Compilation& c, size_t i) { return c.main->decls.at(i)->as<ast::DeclBind>()->value; }

using gyrus::test::format;

// kValid with its pretraining's width and crop taken from a record.
const char* kRecordExperiment = R"(let sizes = { crop = 32^3, width = 4 }
dataset corpus = synthetic(subjects = 32, size = 40^3, seed = 1)
dataset clinic = synthetic(subjects = 40, size = 40^3, seed = 2)

pretrain base {
  data      = corpus |> crop(sizes.crop) >> zscore()
  encoder   = unet(width = sizes.width, stages = 3)
  objective = mae()
}

evaluate base on clinic.lesion (shots = 8)
evaluate base on clinic.age (shots = 8)
)";

// A FOMO25 task tree with every channel of the three tasks and a label per session.
struct TaskTree {
  fs::path root = fs::temp_directory_path() / ("gyrus-record-test-" + std::to_string(::getpid()));
  explicit TaskTree(const std::string& label = "1", int subjects = 6) {
    for (int i = 1; i <= subjects; ++i) {
      fs::path session = root / "task" / "preprocessed" / ("sub_" + std::to_string(i)) / "ses_1";
      fs::create_directories(session);
      for (const char* ch : {"flair", "dwi_b1000", "adc", "swi", "t1", "t2"}) std::ofstream(session / (std::string(ch) + ".nii.gz")) << "x";
      fs::path labels = root / "task" / "labels" / ("sub_" + std::to_string(i)) / "ses_1";
      fs::create_directories(labels);
      std::ofstream(labels / "label.txt") << (label == "alternate" ? std::to_string(i % 2) : label) << "\n";
    }
  }
  ~TaskTree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  std::string task() const { return (root / "task").string(); }
};

std::string taskExperiment(const std::string& dataset, const std::string& evaluate = "(shots = 2, repeats = 1)") {
  return "use std.fomo25\n"
         "dataset corpus = synthetic(subjects = 16, size = 32^3)\n"
         "dataset task = " +
         dataset +
         "\n"
         "pretrain base {\n  data = corpus |> resample(1mm) >> crop(32^3) >> zscore()\n"
         "  encoder = unet(width = 4, stages = 3)\n  objective = mae()\n}\n"
         "evaluate base on task.label " +
         evaluate + "\n";
}

const ir::EvaluateStage& firstEvaluation(const Compilation& c) {
  REQUIRE(c.check.experiment.has_value());
  for (const ir::Stage& s : c.check.experiment->stages)
    if (s.kind == ir::StageKind::Evaluate) return s.evaluate;
  FAIL("no evaluation");
  return c.check.experiment->stages.front().evaluate;
}
}  // namespace

TEST_CASE("record literals parse with fields in source order and a trailing comma") {
  auto c = compile("let t = {\n  b = 1,\n  a = [\"x\"],\n  c = { d = 2mm },\n}\nlet e = {}\nlet f = t.c.d\n", {},
                   StopAfter::Parse);
  REQUIRE(c->main != nullptr);
  const auto* r = bindValue(*c, 0)->as<ast::ExprRecord>();
  REQUIRE(r != nullptr);
  REQUIRE(r->fields.size() == 3);
  CHECK(r->fields[0].name == "b");
  CHECK(r->fields[1].name == "a");
  CHECK(r->fields[2].value->is<ast::ExprRecord>());
  CHECK(bindValue(*c, 1)->as<ast::ExprRecord>()->fields.empty());
  const auto* f = bindValue(*c, 2)->as<ast::ExprMember>();
  REQUIRE(f != nullptr);
  CHECK(f->name == "d");
  CHECK(ast::printExpr(*bindValue(*c, 0)) == "{ b = 1, a = [\"x\"], c = { d = 2mm } }");
  CHECK(ast::printAst(c->sources, *c->main).find("Record @1:9\n      Field b @2:3") != std::string::npos);
}

TEST_CASE("evaluate's dataset.label still parses next to member access") {
  auto c = compile(kRecordExperiment);
  CHECK(kinds(*c, Severity::Warning).empty());
  const ir::Experiment& ex = *c->check.experiment;
  CHECK(ex.stages[0].pretrain.encoder.unet.width == 4);
  CHECK(ex.stages[0].pretrain.pipeline.ops[0].shape("size") == ir::Shape3{32, 32, 32});
  CHECK(ex.stages[1].evaluate.label == "lesion");
}

TEST_CASE("unknown record fields suggest the closest field and list the fields") {
  std::string src = kRecordExperiment;
  src.replace(src.find("sizes.width"), 11, "sizes.widht");
  auto c = compile(src);
  REQUIRE(kinds(*c) == std::vector<std::string>{"unknown-field"});
  const Diagnostic* d = test::find(*c, "unknown-field");
  CHECK(test::where(*c, *d) == "7:34");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "width");
  REQUIRE(d->notes.size() == 1);
  CHECK(d->notes[0].message == "its fields: crop, width");
  // A member of something that is not a record.
  CHECK(kinds(*compile("let x = 3\nlet y = x.a\n")) == std::vector<std::string>{"unknown-field"});
  CHECK(kinds(*compile("let y = {}.a\n")) == std::vector<std::string>{"unknown-field"});
}

TEST_CASE("a field given twice is a duplicate-argument error at the second") {
  auto c = compile("let t = { a = 1, b = 2, a = 3 }\nlet u = t\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"duplicate-argument"});
  const Diagnostic* d = test::find(*c, "duplicate-argument");
  CHECK(test::where(*c, *d) == "1:25");
  CHECK(d->notes.at(0).message == "first given here");
}

TEST_CASE("records pass through parameterised definitions and print their field types") {
  auto c = compile(std::string(kRecordExperiment) +
                   "encoder sized(s = sizes) = unet(width = s.width, stages = 3)\nlet w = sized({ width = 8 })\n");
  CHECK(kinds(*c).empty());
  CHECK(c->check.typed().find("let sizes : {crop : Shape, width : Int} = { crop = 32^3, width = 4 }") !=
        std::string::npos);
  auto bad = compile("encoder sized(s) = unet(width = s.width)\nlet w = sized({ w = 8 })\n");
  CHECK(kinds(*bad) == std::vector<std::string>{"unknown-field"});
}

TEST_CASE("--set and sweeps reach record fields") {
  auto c = compile(kRecordExperiment, {{"sizes.width", "8"}, {"sizes.extra", "1"}});
  CHECK(kinds(*c).empty());
  CHECK(c->check.experiment->stages[0].pretrain.encoder.unet.width == 8);
  auto missing = compile(kRecordExperiment, {{"sizes.widht.x", "8"}});
  REQUIRE(kinds(*missing) == std::vector<std::string>{"bad-override"});
  CHECK(test::find(*missing, "bad-override")->message.find("did you mean 'width'?") != std::string::npos);
  auto sweep = compile(std::string(kRecordExperiment) + "sweep sizes.width in [4, 8]\nsweep sizes in [{ crop = 16^3, width = 2 }]\n");
  CHECK(kinds(*sweep).empty());
  CHECK(sweep->plan.points.size() == 2);
  auto set = compile(kRecordExperiment, {{"sizes", "{ crop = 24^3, width = 2 }"}});
  CHECK(kinds(*set).empty());
  CHECK(set->check.experiment->stages[0].pretrain.encoder.unet.width == 2);
}

TEST_CASE("metrics come from the evaluation then the label kind") {
  auto c = compile(kRecordExperiment);
  const ir::Experiment& ex = *c->check.experiment;
  CHECK(ex.stages[1].evaluate.metrics == std::vector<std::string>{"auroc"});
  CHECK(ex.stages[2].evaluate.metrics == std::vector<std::string>{"mae", "pearson_r"});
  std::string src = kRecordExperiment;
  src.replace(src.find("clinic.age (shots = 8)"), 22, "clinic.age (shots = 8, metrics = [pearson_r, mae])");
  auto own = compile(src);
  REQUIRE(kinds(*own).empty());
  CHECK(own->check.experiment->stages[2].evaluate.metrics == std::vector<std::string>{"pearson_r", "mae"});
}

TEST_CASE("metrics do not change stage hashes") {
  std::string src = kRecordExperiment;
  src.replace(src.find("clinic.age (shots = 8)"), 22, "clinic.age (shots = 8, metrics = [pearson_r])");
  auto a = compile(kRecordExperiment);
  auto b = compile(src);
  REQUIRE(kinds(*b).empty());
  CHECK(a->check.experiment->stages[2].hash == b->check.experiment->stages[2].hash);
  CHECK(ir::printExperiment(*b->check.experiment).find("  metrics = pearson_r\n") != std::string::npos);
}

TEST_CASE("a metric that cannot score the label is a metric-mismatch with the valid metrics as fix-it") {
  std::string src = kRecordExperiment;
  src.replace(src.find("clinic.lesion (shots = 8)"), 25, "clinic.lesion (shots = 8, metrics = [auroc, dice])");
  auto c = compile(src);
  REQUIRE(kinds(*c) == std::vector<std::string>{"metric-mismatch"});
  const Diagnostic* d = test::find(*c, "metric-mismatch");
  CHECK(test::where(*c, *d) == "11:62");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "[auroc]");
  // None fits: the label's own metrics.
  std::string none = kRecordExperiment;
  none.replace(none.find("clinic.age (shots = 8)"), 22, "clinic.age (shots = 8, metrics = [nsd])");
  auto noneFits = compile(none);
  const Diagnostic* n = test::find(*noneFits, "metric-mismatch");
  REQUIRE(n != nullptr);
  CHECK(n->fixits.at(0).replacement == "[mae, pearson_r]");
}

TEST_CASE("malformed metric lists are reported with fixes") {
  auto bad = [](const std::string& metrics) {
    std::string src = kRecordExperiment;
    src.replace(src.find("clinic.lesion (shots = 8)"), 25, "clinic.lesion (shots = 8, metrics = " + metrics + ")");
    return compile(src);
  };
  auto notList = bad("auroc");
  REQUIRE(kinds(*notList) == std::vector<std::string>{"type-mismatch"});
  CHECK(test::find(*notList, "type-mismatch")->fixits.at(0).replacement == "[auroc]");
  auto string = bad("[\"auroc\"]");
  REQUIRE(kinds(*string) == std::vector<std::string>{"type-mismatch"});
  CHECK(test::find(*string, "type-mismatch")->fixits.at(0).replacement == "auroc");
  CHECK(kinds(*bad("[auroc, auroc]")) == std::vector<std::string>{"duplicate-argument"});
  CHECK(kinds(*bad("[]")) == std::vector<std::string>{"value-range"});
  auto typo = bad("[aurco]");
  REQUIRE(kinds(*typo) == std::vector<std::string>{"unknown-name"});
  CHECK(test::find(*typo, "unknown-name")->fixits.at(0).replacement == "auroc");
}

TEST_CASE("std.fomo25 tasks give fomo25 its channels and label and the evaluation its metrics") {
  TaskTree t("alternate");
  auto infarct = compile(taskExperiment("fomo25(\"" + t.task() + "\", task = infarct_task)"));
  REQUIRE(kinds(*infarct).empty());
  const ir::EvaluateStage& e = firstEvaluation(*infarct);
  CHECK(e.data.folder.channels == std::vector<std::string>{"flair", "dwi_b1000", "adc", "swi|t2s"});
  CHECK((e.labelKind == ir::LabelKind::Binary));
  CHECK(e.metrics == std::vector<std::string>{"auroc"});
  // The same stage as the channels written out: the task adds no identity of its own.
  auto spelled = compile(taskExperiment("fomo25(\"" + t.task() + "\", channels = infarct_channels)"));
  REQUIRE(kinds(*spelled).empty());
  CHECK(spelled->check.experiment->stages[1].hash == infarct->check.experiment->stages[1].hash);
  // An evaluation's own metrics win over the task's.
  auto own = compile(taskExperiment("fomo25(\"" + t.task() + "\", task = infarct_task)",
                                    "(shots = 2, repeats = 1, metrics = [auroc])"));
  CHECK(kinds(*own).empty());
}

TEST_CASE("brain age and meningioma tasks carry their label kinds and metrics") {
  TaskTree ages("42");
  auto age = compile(taskExperiment("fomo25(\"" + ages.task() + "\", task = brain_age_task)", "(shots = 3, repeats = 1)"));
  REQUIRE(kinds(*age).empty());
  const ir::EvaluateStage& e = firstEvaluation(*age);
  CHECK(e.data.folder.channels == std::vector<std::string>{"t1", "t2"});
  CHECK((e.labelKind == ir::LabelKind::Continuous));
  CHECK(e.metrics == std::vector<std::string>{"mae", "pearson_r"});
  // Explicit arguments override the task's.
  auto one = compile(taskExperiment("fomo25(\"" + ages.task() + "\", task = brain_age_task, channels = [\"t1\"])",
                                    "(shots = 3, repeats = 1)"));
  REQUIRE(kinds(*one).empty());
  CHECK(firstEvaluation(*one).data.folder.channels == std::vector<std::string>{"t1"});
  // The meningioma task reads masks: without them it is a data error at the task's use.
  auto seg = compile(taskExperiment("fomo25(\"" + ages.task() + "\", task = meningioma_task)"));
  CHECK(kinds(*seg) == std::vector<std::string>{"data"});
}

TEST_CASE("task errors point at the record field with a note at the use") {
  TaskTree t("alternate");
  auto c = compile(taskExperiment("fomo25(\"" + t.task() + "\", task = lesions)") +
                   "let lesions = {\n  channels = [\"flair\"],\n  label = binary,\n  metrics = [dice],\n}\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"metric-mismatch"});
  const Diagnostic* d = test::find(*c, "metric-mismatch");
  CHECK(test::where(*c, *d) == "13:14");
  bool useNote = false;
  for (const DiagNote& n : d->notes) useNote = useNote || (n.message == "task given here" && c->sources.lineCol(n.range.file, n.range.begin).line == 3);
  CHECK(useNote);
  // A label the call sets is shown too.
  auto relabel = compile(taskExperiment("fomo25(\"" + t.task() + "\", task = brain_age_task, label = binary)"));
  const Diagnostic* r = test::find(*relabel, "metric-mismatch");
  REQUIRE(r != nullptr);
  CHECK(c->sources.file(r->range.file).path == "<std>/fomo25.gy");
  CHECK(r->fixits.empty());  // the standard library is not the user's to edit
  bool labelNote = false;
  for (const DiagNote& n : r->notes) labelNote = labelNote || n.message == "the label is set here";
  CHECK(labelNote);
}

TEST_CASE("task fields are checked like the call's arguments") {
  TaskTree t;
  std::string root = "\"" + t.task() + "\"";
  auto unknown = compile(taskExperiment("fomo25(" + root + ", task = { chanels = [\"flair\"] })"));
  REQUIRE(kinds(*unknown) == std::vector<std::string>{"unknown-field"});
  CHECK(test::find(*unknown, "unknown-field")->fixits.at(0).replacement == "channels");
  auto type = compile(taskExperiment("fomo25(" + root + ", task = { channels = \"flair\" })"));
  CHECK(kinds(*type) == std::vector<std::string>{"type-mismatch"});
  auto layout = compile(taskExperiment("folder(" + root + ", task = infarct_task)"));
  REQUIRE(kinds(*layout) == std::vector<std::string>{"type-mismatch"});
  const Diagnostic* l = test::find(*layout, "type-mismatch");
  CHECK(test::where(*layout, *l) == "3:" + std::to_string(32 + root.size()));
  CHECK(l->fixits.at(0).replacement == "fomo25");
  auto badLayout = compile(taskExperiment("fomo25(" + root + ", task = { channels = [\"flair\"], layout = \"fomo52\" })"));
  REQUIRE(kinds(*badLayout) == std::vector<std::string>{"value-range"});
  CHECK(test::find(*badLayout, "value-range")->fixits.at(0).replacement == "\"fomo25\"");
  auto missing = compile(taskExperiment("fomo25(" + root + ", task = { label = binary })"));
  REQUIRE(kinds(*missing) == std::vector<std::string>{"missing-argument"});
  CHECK(test::find(*missing, "missing-argument")->notes.at(0).message == "the task given here does not set 'channels' either");
  CHECK(kinds(*compile(taskExperiment("fomo25(" + root + ", task = [1])"))) == std::vector<std::string>{"type-mismatch"});
  // A task's fields may be any argument of the function but its root.
  auto rootField = compile(taskExperiment("fomo25(" + root + ", task = { root = \"x\", channels = [\"flair\"] })"));
  CHECK(kinds(*rootField) == std::vector<std::string>{"unknown-field"});
}

TEST_CASE("fmt lays records out on one line when short and one field per line otherwise") {
  CHECK(format("let t = {a=1,b=[2, 3],}\n") == "let t = { a = 1, b = [2, 3] }\n");
  CHECK(format("let e = { }\n") == "let e = {}\n");
  std::string longRecord =
      "let infarct = { channels = infarct_channels, label = binary, metrics = [auroc], layout = \"fomo25\" }\n";
  std::string expected =
      "let infarct = {\n  channels = infarct_channels,\n  label    = binary,\n  metrics  = [auroc],\n"
      "  layout   = \"fomo25\",\n}\n";
  CHECK(format(longRecord) == expected);
  CHECK(format(expected) == expected);
  // Nested and inside a block: indented one level past their line.
  std::string nested = format(
      "pretrain p {\n  data = f(task = { channels = [\"flair\", \"dwi_b1000\", \"adc\"], label = binary, x = 1 })\n}\n");
  CHECK(nested ==
        "pretrain p {\n  data = f(task = {\n    channels = [\"flair\", \"dwi_b1000\", \"adc\"],\n    label    = binary,\n"
        "    x        = 1,\n  })\n}\n");
  CHECK(format(nested) == nested);
}

TEST_CASE("fmt keeps comments inside records and is idempotent") {
  std::string src =
      "let t = { // the task\n  a = 1, // why\n  // about b\n  b = 2 /* inline */,\n\n  // last\n}\n"
      "let u = { a = 1 } // after\n";
  std::string out = format(src);
  for (const char* c : {"// the task", "// why", "// about b", "/* inline */", "// last", "// after"}) {
    INFO(c << " in\n" << out);
    CHECK(out.find(c) != std::string::npos);
  }
  CHECK(out.find("{  // the task\n  a = 1,  // why\n  // about b\n  b = 2,  /* inline */\n") != std::string::npos);
  CHECK(format(out) == out);
  // A comment inside a field's value keeps that field as written.
  std::string inner = "let t = {\n  a = [1, // one\n       2],\n  b = 2,\n}\n";
  std::string f = format(inner);
  CHECK(f.find("// one") != std::string::npos);
  CHECK(format(f) == f);
}

TEST_CASE("syntax errors in records say a name was expected and not a declaration") {
  auto c = compile("let t = { \"a\" = 1 }\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"syntax"});
  CHECK(test::find(*c, "syntax")->message == "unexpected '\"a\"', expected {'}', a name}");
  auto member = compile("let t = x.\n");
  CHECK(test::find(*member, "syntax")->message == "missing a name before end of file");
  auto unclosed = compile("let t = { a = 1\n");
  CHECK(test::find(*unclosed, "syntax")->message == "expected '}' before the end of the file: the '{' is not closed");
}

TEST_CASE("regression: fmt of deeply nested records takes time linear per level") {
  std::string src = "let t = ";
  for (int i = 0; i < 200; ++i) src += "{ a = ";
  src += "1";
  for (int i = 0; i < 200; ++i) src += " }";
  src += "\n";
  std::string out = format(src);  // rendered each level twice before the fix: 2^200
  REQUIRE_FALSE(out.empty());
  CHECK(format(out) == out);
}
