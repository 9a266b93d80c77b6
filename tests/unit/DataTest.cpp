// Folder data sets in the language: fomo60k(...) and fomo25(...) are resolved at check
// time (files listed, labels read), with located errors for trees that do not match.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "TestUtil.h"

using namespace gyrus;
using gyrus::test::compile;
using gyrus::test::find;
using gyrus::test::kinds;

namespace {
namespace fs = std::filesystem;

// A temporary tree, removed at the end of the test.
struct Tree {
  fs::path root;
  Tree() {
    root = fs::temp_directory_path() / ("gyrus-data-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(root);
  }
  ~Tree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  void file(const std::string& rel, const std::string& text = "x") const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

std::string experiment(const std::string& corpus, const std::string& task, const std::string& taskLabel = "label") {
  return "dataset corpus = " + corpus + "\ndataset task = " + task +
         "\npipeline prep = resample(1mm) >> crop(32^3) >> zscore()\n"
         "pretrain base {\n  data = corpus |> prep\n  encoder = unet(width = 4, stages = 3)\n  objective = mae()\n"
         "  batch = 2\n}\nevaluate base on task." +
         taskLabel + " (shots = 2, repeats = 1)\n";
}

void fomo25Tree(const Tree& t, int subjects) {
  for (int i = 1; i <= subjects; ++i) {
    std::string s = "sub_" + std::to_string(i) + "/ses_1/";
    t.file("task/preprocessed/" + s + "flair.nii.gz");
    t.file("task/preprocessed/" + s + (i % 2 ? "swi.nii.gz" : "t2s.nii.gz"));
    t.file("task/labels/" + s + "label.txt", std::to_string(i % 2) + "\n");
  }
}
}  // namespace

TEST_CASE("fomo60k and fomo25 folders resolve to samples, channels and labels") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_1/ses_1/flair.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii");
  t.file("corpus/sub_2/ses_1/notes.txt");
  fomo25Tree(t, 6);
  std::string root = t.root.string();
  auto c = compile(experiment("fomo60k(\"" + root + "/corpus\")",
                              "fomo25(\"" + root + "/task\", channels = [\"flair\", \"swi|t2s\"])"));
  REQUIRE(kinds(*c).empty());
  const ir::Experiment& ex = *c->check.experiment;
  const ir::FolderData& corpus = ex.stages[0].pretrain.data.folder;
  CHECK((ex.stages[0].pretrain.data.kind == ir::DataKind::Folder));
  REQUIRE(corpus.samples.size() == 3);  // notes.txt is not a scan
  CHECK(corpus.samples[0].files[0] == root + "/corpus/sub_1/ses_1/flair.nii.gz");
  const ir::FolderData& task = ex.stages[1].evaluate.data.folder;
  REQUIRE(task.samples.size() == 6);
  CHECK(task.samples[0].files.size() == 2);
  CHECK(task.samples[1].files[1].find("t2s.nii.gz") != std::string::npos);  // the alternative
  CHECK(task.samples[0].label == 1.0);
  CHECK(task.samples[1].label == 0.0);
  CHECK(task.fingerprint.size() == 64);
  // The root is not part of the hash; the content is.
  std::string before = ex.stages[1].hash;
  t.file("task/labels/sub_1/ses_1/label.txt", "0\n");
  t.file("task/labels/sub_2/ses_1/label.txt", "1\n");
  auto changed = compile(experiment("fomo60k(\"" + root + "/corpus\")",
                                    "fomo25(\"" + root + "/task\", channels = [\"flair\", \"swi|t2s\"])"));
  REQUIRE(changed->check.experiment);
  CHECK(changed->check.experiment->stages[1].hash != before);
  CHECK(changed->check.experiment->stages[0].hash == ex.stages[0].hash);
}

TEST_CASE("a sequence filter selects scans") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_1/ses_1/FLAIR.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  auto c = compile("dataset d = fomo60k(\"" + t.root.string() +
                   "/corpus\", sequences = [\"flair\"])\npretrain p {\n  data = d |> crop(16^3)\n  encoder = unet(width = 2, stages = 2)\n  objective = mae()\n  batch = 1\n}\n");
  REQUIRE(kinds(*c).empty());
  CHECK(c->check.experiment->stages[0].pretrain.data.folder.samples.size() == 1);
}

TEST_CASE("data trees that do not match their declaration are [data] errors at the root") {
  Tree t;
  fomo25Tree(t, 4);
  std::string root = t.root.string();
  auto missing = compile("dataset d = fomo60k(\"" + root + "/nowhere\")\nlet x = d\n");
  REQUIRE(kinds(*missing) == std::vector<std::string>{"data"});
  CHECK(std::string(missing->sources.text(test::find(*missing, "data")->range)) == "\"" + root + "/nowhere\"");
  auto channel = compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\", \"dwi_b1000\"])\nlet x = d\n");
  REQUIRE(kinds(*channel) == std::vector<std::string>{"data"});
  // Regression (issue 8, item 7): every session's problem in one run, not one per check.
  const Diagnostic* all = test::find(*channel, "data");
  CHECK(all->message ==
        "session 'preprocessed/sub_1/ses_1' has no channel 'dwi_b1000' (and 3 more problems of this kind)");
  REQUIRE(all->notes.size() == 4);
  CHECK(all->notes[3].message == "also: session 'preprocessed/sub_4/ses_1' has no channel 'dwi_b1000'");
  t.file("task/labels/sub_3/ses_1/label.txt", "0.5\n");
  auto binary = compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\"])\nlet x = d\n");
  CHECK(kinds(*binary) == std::vector<std::string>{"data"});
  CHECK(kinds(*compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\"], label = regression)\nlet x = d\n"))
            .empty());
  t.file("task/labels/sub_3/ses_1/label.txt", "old\n");
  CHECK(kinds(*compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\"], label = regression)\nlet x = d\n")) ==
        std::vector<std::string>{"data"});
  fs::remove(t.root / "task/labels/sub_3/ses_1/label.txt");
  CHECK(kinds(*compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\"])\nlet x = d\n")) ==
        std::vector<std::string>{"data"});
  CHECK(kinds(*compile("dataset d = fomo25(\"" + root + "/task\", channels = [1, 2])\nlet x = d\n")) ==
        std::vector<std::string>{"type-mismatch"});
}

TEST_CASE("folder volumes vary in size: a crop must fix the encoder's input") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  fomo25Tree(t, 6);
  std::string root = t.root.string();
  std::string src = experiment("fomo60k(\"" + root + "/corpus\")",
                               "fomo25(\"" + root + "/task\", channels = [\"flair\"])");
  src.replace(src.find("resample(1mm) >> crop(32^3) >> zscore()"), 39, "zscore() >> resample(1mm)");
  CHECK(kinds(*compile(src)) == std::vector<std::string>{"shape-unknown"});
}

TEST_CASE("pretraining on multi-channel samples and evaluating unlabelled folders are errors") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  fomo25Tree(t, 6);
  std::string root = t.root.string();
  auto multi = compile(experiment("fomo25(\"" + root + "/task\", channels = [\"flair\", \"swi|t2s\"])",
                                  "fomo25(\"" + root + "/task\", channels = [\"flair\"])"));
  CHECK(kinds(*multi) == std::vector<std::string>{"data"});
  auto unlabelled = compile(experiment("fomo60k(\"" + root + "/corpus\")", "fomo60k(\"" + root + "/corpus\")"));
  CHECK(kinds(*unlabelled) == std::vector<std::string>{"unknown-label"});
  auto wrongName = compile(experiment("fomo60k(\"" + root + "/corpus\")",
                                      "fomo25(\"" + root + "/task\", channels = [\"flair\"])", "lesion"));
  CHECK(kinds(*wrongName) == std::vector<std::string>{"unknown-label"});
}

TEST_CASE("relative data roots are relative to the experiment file") {
  Tree t;
  t.file("exp/data/sub_1/ses_1/t1.nii.gz");
  std::string src = "dataset d = fomo60k(\"data\")\npretrain p {\n  data = d |> crop(16^3)\n  encoder = unet(width = 2, stages = 2)\n  objective = mae()\n  batch = 1\n}\n";
  auto c = compileFile((t.root / "exp" / "x.gy").string(), {}, StopAfter::Check, &src);
  REQUIRE(kinds(*c).empty());
  CHECK(c->check.experiment->stages[0].pretrain.data.folder.root == fs::canonical(t.root / "exp" / "data").string());
}

TEST_CASE("folder(): a glob, a label table and sites") {
  Tree t;
  t.file("ixi/IXI002/anat/T1.nii.gz");
  t.file("ixi/IXI012/anat/T1.nii.gz");
  t.file("ixi/IXI013/anat/T1.nii.gz");
  t.file("ixi/IXI013/anat/T2.nii.gz");
  t.file("ixi/participants.tsv", "participant_id\tage\tsex\nIXI002\t35.8\tF\nIXI012\t38.8\tM\nIXI013\t46.7\tM\n");
  t.file("ixi/scanners.csv", "subject,site\nIXI002,guys\nIXI012,hh\nIXI013,hh\n");
  std::string root = t.root.string() + "/ixi";
  std::string decl = "dataset ixi = folder(\"" + root +
                     "\", glob = \"*/anat/T1.nii.gz\", table = \"participants.tsv\", subject = \"participant_id\", "
                     "column = \"age\", label = regression, sites = \"scanners.csv\")\n";
  auto c = compile(decl + "let x = ixi\n");
  REQUIRE(kinds(*c).empty());
  // Resolved through a pretrain + evaluate to look at the IR.
  std::string src = decl +
                    "pretrain p {\n  data = ixi |> crop(16^3)\n  encoder = unet(width = 2, stages = 2)\n  objective = "
                    "mae()\n  batch = 1\n}\nevaluate p on ixi.age (shots = 1, test = site(\"guys\"))\n";
  auto e = compile(src);
  CHECK(kinds(*e) == std::vector<std::string>{"few-shot-size"});  // a regression probe needs 3 shots
  auto ok = compile(src + "", {{"p_age.shots", "3"}, {"ixi.glob", "\"*/anat/T*.nii.gz\""}});
  REQUIRE(kinds(*ok).empty());
  const ir::EvaluateStage& ev = ok->check.experiment->stages[1].evaluate;
  REQUIRE(ev.data.folder.samples.size() == 4);
  CHECK(ev.data.folder.samples[0].subject == "IXI002");
  CHECK(ev.data.folder.samples[0].label == doctest::Approx(35.8));
  CHECK(ev.data.folder.samples[0].site == "guys");
  CHECK(ev.testSite == "guys");
  CHECK((ev.labelKind == ir::LabelKind::Continuous));
  // Errors: a subject missing from the table, an unknown column, an unknown site.
  t.file("ixi/IXI099/anat/T1.nii.gz");
  CHECK(kinds(*compile(decl + "let x = ixi\n")) == std::vector<std::string>{"data"});
  CHECK(kinds(*compile(decl + "let x = ixi\n", {{"ixi.column", "\"height\""}})) == std::vector<std::string>{"data"});
  CHECK(kinds(*compile(decl + "let x = ixi\n", {{"ixi.glob", "\"nothing/*.nii\""}})) ==
        std::vector<std::string>{"data"});
}

TEST_CASE("out-of-domain evaluation: test = site(...)") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  fomo25Tree(t, 8);
  std::string sites = "subject\tsite\n";
  for (int i = 1; i <= 8; ++i) sites += "sub_" + std::to_string(i) + "\t" + (i <= 4 ? "india" : "denmark") + "\n";
  t.file("task/sites.tsv", sites);
  std::string root = t.root.string();
  std::string src = experiment("fomo60k(\"" + root + "/corpus\")", "fomo25(\"" + root + "/task\", channels = [\"flair\"])");
  auto c = compile(src, {{"base_task.test", "site(\"denmark\")"}});
  REQUIRE(kinds(*c).empty());
  CHECK(c->check.experiment->stages[1].evaluate.testSite == "denmark");
  CHECK(c->check.experiment->stages[1].evaluate.data.folder.samples[7].site == "denmark");
  auto typo = compile(src, {{"base_task.test", "site(\"danmark\")"}});
  REQUIRE(kinds(*typo) == std::vector<std::string>{"data"});
  REQUIRE(test::find(*typo, "data")->fixits.size() == 1);
  CHECK(test::find(*typo, "data")->fixits[0].replacement == "site(\"denmark\")");
  // Without a sites table there is no site to test on.
  fs::remove(t.root / "task/sites.tsv");
  CHECK(kinds(*compile(src, {{"base_task.test", "site(\"denmark\")"}})) == std::vector<std::string>{"data"});
}

TEST_CASE("segmentation tasks: fomo25(..., label = segmentation) reads masks and needs fine-tuning") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  for (int i = 1; i <= 6; ++i) {
    std::string s = "sub_" + std::to_string(i) + "/ses_1/";
    t.file("task/preprocessed/" + s + "flair.nii.gz");
    t.file("task/labels/" + s + "seg.nii.gz");
  }
  std::string root = t.root.string();
  std::string src =
      experiment("fomo60k(\"" + root + "/corpus\")",
                 "fomo25(\"" + root + "/task\", channels = [\"flair\"], label = segmentation)");
  auto probe = compile(src);
  CHECK(kinds(*probe) == std::vector<std::string>{"task-head"});
  auto ft = compile(src, {{"base_task.protocol", "finetune"}, {"base_task.tolerance", "1.5mm"}});
  REQUIRE(kinds(*ft).empty());
  const ir::EvaluateStage& e = ft->check.experiment->stages[1].evaluate;
  CHECK((e.labelKind == ir::LabelKind::Mask));
  CHECK(e.nsdToleranceMm == doctest::Approx(1.5));
  REQUIRE(e.data.folder.samples.size() == 6);
  CHECK(e.data.folder.samples[0].mask == root + "/task/labels/sub_1/ses_1/seg.nii.gz");
  CHECK(kinds(*compile(src, {{"base_task.protocol", "finetune"}, {"base_task.head", "pooled"}})) ==
        std::vector<std::string>{"task-head"});
  fs::remove(t.root / "task/labels/sub_4/ses_1/seg.nii.gz");
  CHECK(kinds(*compile(src, {{"base_task.protocol", "finetune"}})) == std::vector<std::string>{"data"});
}

TEST_CASE("tolerance and dense heads belong to segmentation tasks") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  fomo25Tree(t, 6);
  std::string root = t.root.string();
  std::string src = experiment("fomo60k(\"" + root + "/corpus\")", "fomo25(\"" + root + "/task\", channels = [\"flair\"])");
  CHECK(kinds(*compile(src, {{"base_task.tolerance", "2mm"}})) == std::vector<std::string>{"unknown-argument"});
  CHECK(kinds(*compile(src, {{"base_task.protocol", "finetune"}, {"base_task.head", "dense"}})) ==
        std::vector<std::string>{"task-head"});
  CHECK(kinds(*compile(src, {{"base_task.protocol", "finetune"}, {"base_task.head", "pooled"}})).empty());
  // The decoder of a pretraining: MAE needs one; SimCLR alone does not use one.
  CHECK(kinds(*compile(src, {{"base.decoder", "none"}})) == std::vector<std::string>{"objective-head"});
  CHECK(kinds(*compile(src, {{"base.decoder", "light"}})).empty());
}

TEST_CASE("stem = repeat: a multi-channel fine-tuning starts from the tiled pretrained stem, without the warning") {
  Tree t;
  t.file("corpus/sub_1/ses_1/t1.nii.gz");
  t.file("corpus/sub_2/ses_1/t1.nii.gz");
  fomo25Tree(t, 6);
  for (int i = 1; i <= 6; ++i) t.file("task/preprocessed/sub_" + std::to_string(i) + "/ses_1/dwi_b1000.nii.gz");
  std::string root = t.root.string();
  std::string src = experiment("fomo60k(\"" + root + "/corpus\")",
                               "fomo25(\"" + root + "/task\", channels = [\"flair\", \"dwi_b1000\"])");
  auto reinit = compile(src, {{"base_task.protocol", "finetune"}});
  REQUIRE(kinds(*reinit).empty());
  CHECK(find(*reinit, "stem-reinit") != nullptr);
  auto repeat = compile(src, {{"base_task.protocol", "finetune"}, {"base_task.stem", "repeat"}});
  REQUIRE(kinds(*repeat).empty());
  CHECK(find(*repeat, "stem-reinit") == nullptr);
  const ir::Stage& tuned = repeat->check.experiment->stages[1];
  CHECK((tuned.evaluate.stem == ir::StemInit::Repeat));
  CHECK(tuned.hash != reinit->check.experiment->stages[1].hash);
  CHECK(ir::printExperiment(*repeat->check.experiment).find("stem = repeat") != std::string::npos);
  // A probe has no stem to start; a misspelt value is a type error.
  CHECK(kinds(*compile(src, {{"base_task.stem", "repeat"}})) == std::vector<std::string>{"unknown-argument"});
  CHECK(!kinds(*compile(src, {{"base_task.protocol", "finetune"}, {"base_task.stem", "tile"}})).empty());
  // Where the channels match, the setting is moot and stays out of the hash.
  std::string single =
      experiment("fomo60k(\"" + root + "/corpus\")", "fomo25(\"" + root + "/task\", channels = [\"flair\"])");
  auto a = compile(single, {{"base_task.protocol", "finetune"}});
  auto b = compile(single, {{"base_task.protocol", "finetune"}, {"base_task.stem", "repeat"}});
  REQUIRE(kinds(*b).empty());
  CHECK(a->check.experiment->stages[1].hash == b->check.experiment->stages[1].hash);
}

TEST_CASE("regression: a data set's problems are all reported at once, the list capped") {
  Tree t;
  for (int i = 1; i <= 12; ++i) t.file("task/preprocessed/sub_" + std::to_string(i) + "/ses_1/flair.nii.gz");
  t.file("task/labels/sub_1/ses_1/label.txt", "1\n");
  std::string root = t.root.string();
  auto c = compile("dataset d = fomo25(\"" + root + "/task\", channels = [\"flair\"])\nlet x = d\n");
  REQUIRE(kinds(*c) == std::vector<std::string>{"data"});
  const Diagnostic* d = test::find(*c, "data");
  CHECK(d->message == "missing label for 'sub_10/ses_1' (and 10 more problems of this kind)");
  REQUIRE(d->notes.size() == 10);  // the first's details, 8 more listed, then the count
  CHECK(d->notes[1].message == "also: missing label for 'sub_11/ses_1'");
  CHECK(d->notes.back().message == "and 2 more");
  // folder(): every subject without a label in its table.
  t.file("glob/a/x.nii.gz");
  t.file("glob/b/x.nii.gz");
  t.file("glob/c/x.nii.gz");
  t.file("glob/labels.tsv", "subject\tage\na\t30\n");
  auto g = compile("dataset d = folder(\"" + root + "/glob\", glob = \"*/x.nii.gz\", table = \"labels.tsv\", "
                   "column = \"age\", label = regression)\nlet x = d\n");
  REQUIRE(test::find(*g, "data") != nullptr);
  CHECK(test::find(*g, "data")->message.find("(and 1 more problem of this kind)") != std::string::npos);
}

TEST_CASE("regression: folder() follows symbolic links, and a broken one is a [data] error") {
  // A data set of one real file and one link had 1 sample and no warning.
  Tree t;
  t.file("elsewhere/b.nii.gz");
  t.file("elsewhere/sub/c.nii.gz");
  t.file("data/a.nii.gz");
  fs::create_symlink(t.root / "elsewhere/b.nii.gz", t.root / "data/b.nii.gz");
  fs::create_directory_symlink(t.root / "elsewhere/sub", t.root / "data/sub");
  std::string root = t.root.string();
  auto c = compile("dataset d = folder(\"" + root + "/data\", glob = \"*.nii.gz\")\n"
                   "dataset e = folder(\"" + root + "/data\", glob = \"*/*.nii.gz\")\nlet x = [d, e]\n");
  REQUIRE(kinds(*c).empty());
  std::string typed = c->check.typed();
  CHECK(typed.find("glob = \"*.nii.gz\", samples = 2") != std::string::npos);
  CHECK(typed.find("glob = \"*/*.nii.gz\", samples = 1") != std::string::npos);
  fs::create_symlink(t.root / "elsewhere/gone.nii.gz", t.root / "data/gone.nii.gz");
  auto broken = compile("dataset d = folder(\"" + root + "/data\", glob = \"*.nii.gz\")\nlet x = d\n");
  REQUIRE(kinds(*broken) == std::vector<std::string>{"data"});
  CHECK(test::find(*broken, "data")->message.find("'gone.nii.gz' is a symbolic link to") != std::string::npos);
}

TEST_CASE("regression: folder() label and site tables: rows that disagree are an error, a bad value is named") {
  Tree t;
  t.file("ixi/IXI002/T1.nii.gz");
  t.file("ixi/IXI012/T1.nii.gz");
  const std::string root = t.root.string() + "/ixi";
  const std::string decl = "dataset ixi = folder(\"" + root +
                           "\", glob = \"*/T1.nii.gz\", table = \"demog.csv\", subject = \"MRID\", column = \"Age\", "
                           "label = regression)\nlet x = ixi\n";
  auto message = [&](const std::string& src) {
    auto c = compile(src);
    const Diagnostic* d = test::find(*c, "data");
    return d == nullptr ? std::string("(no [data] error)") : d->message;
  };
  // A repeated row with the same value is harmless; another value is never last-row-wins.
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,38.78,M\nIXI012,38.78,M\n");
  CHECK(kinds(*compile(decl)).empty());
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,38.78,M\nIXI012,99,M\n");
  CHECK(message(decl) == "subject 'IXI012' has rows in 'demog.csv' with different 'Age': 38.78 on line 3, 99 on line 4");
  // A value that is there but not a number is named with its line, not dropped in silence.
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,abc,M\n");
  CHECK(message(decl) == "no usable 'Age' for subject 'IXI012' in 'demog.csv': on line 3 it is not a number ('abc')");
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,,M\n");
  CHECK(message(decl) == "no usable 'Age' for subject 'IXI012' in 'demog.csv': on line 3 it is empty");
  // A usable row and an empty one: the usable one counts.
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,,M\nIXI012,40,M\n");
  CHECK(kinds(*compile(decl)).empty());
  // Sites: one subject at two sites.
  t.file("ixi/demog.csv", "MRID,Age,Sex\nIXI002,35.8,F\nIXI012,40,M\n");
  t.file("ixi/sites.csv", "subject,site\nIXI002,guys\nIXI012,hh\nIXI012,guys\n");
  const std::string withSites = "dataset ixi = folder(\"" + root +
                                "\", glob = \"*/T1.nii.gz\", table = \"demog.csv\", subject = \"MRID\", column = \"Age\", "
                                "label = regression, sites = \"sites.csv\")\nlet x = ixi\n";
  CHECK(message(withSites).find("subject 'IXI012' has two sites in '") == 0);
  CHECK(message(withSites).find("'hh' on line 3, 'guys' on line 4") != std::string::npos);
}
