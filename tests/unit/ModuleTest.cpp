// Modules: `use std.<name>` (embedded standard library) and `use "file.gy"`.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "TestUtil.h"
#include "gyrus/Format.h"
#include "gyrus/Parse.h"

using namespace gyrus;
using gyrus::test::kinds;

namespace {
namespace fs = std::filesystem;

struct Dir {
  fs::path root = fs::temp_directory_path() / ("gyrus-module-test-" + std::to_string(::getpid()));
  Dir() { fs::create_directories(root); }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(root / rel) << text; }
  std::unique_ptr<Compilation> compile(const std::string& main) const {
    write("main.gy", main);
    return compileFile((root / "main.gy").string(), {}, StopAfter::Check);
  }
};

const char* kUsesFomo = R"(use std.fomo25

dataset corpus = synthetic(subjects = 16, size = 160^3)

pretrain base {
  data      = corpus |> fomo_views
  encoder   = unet_b
  objective = amaes
  optimizer = fomo_optimizer
}
)";
}  // namespace

TEST_CASE("the standard library's fomo25 module provides the baseline's settings") {
  auto c = test::compile(kUsesFomo);
  REQUIRE(kinds(*c).empty());
  const ir::PretrainStage& p = c->check.experiment->stages[0].pretrain;
  CHECK(p.optimizer.warmupEpochs == 5);
  // fomo_views: the preprocessing (3 operations: a 144^3 field of view), then the
  // baseline's 3 spatial augmentations, the 96^3 patch, its 8 intensity augmentations.
  REQUIRE(p.pipeline.ops.size() == 15);
  CHECK(p.pipeline.ops[2].name == "crop");
  CHECK(p.pipeline.ops[2].shape("size") == ir::Shape3{144, 144, 144});
  CHECK(p.pipeline.ops[3].name == "elastic");
  CHECK(p.pipeline.ops[6].name == "crop");
  CHECK(p.pipeline.ops[6].shape("size") == ir::Shape3{96, 96, 96});
  CHECK(p.pipeline.ops[14].name == "gamma");
  CHECK(p.pipeline.ops[14].flag("halves"));
  // Nothing of a module is reported as unused.
  CHECK(c->diags.warningCount() == 0);
}

TEST_CASE("file modules are relative to the file that uses them, loaded once, and may use others") {
  Dir d;
  d.write("common.gy", "use \"encoders.gy\"\npipeline prep = crop(32^3) >> zscore()\n");
  d.write("encoders.gy", "encoder small = unet(width = 4, stages = 3)\n");
  auto c = d.compile(
      "use \"common.gy\"\nuse \"encoders.gy\"\ndataset corpus = synthetic(subjects = 8)\n"
      "pretrain base {\n  data = corpus |> prep\n  encoder = small\n  objective = mae()\n}\n");
  REQUIRE(kinds(*c).empty());
  CHECK(c->check.experiment->stages[0].pretrain.encoder.unet.width == 4);
}

TEST_CASE("bad uses are [module] errors with suggestions; cycles are [cycle]") {
  auto unknown = test::compile("use std.fomo26\n");
  REQUIRE(kinds(*unknown) == std::vector<std::string>{"module"});
  const Diagnostic* d = test::find(*unknown, "module");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "std.fomo25");
  CHECK(kinds(*test::compile("use prelude\n")) == std::vector<std::string>{"module"});
  Dir dir;
  CHECK(kinds(*dir.compile("use \"missing.gy\"\n")) == std::vector<std::string>{"module"});
  dir.write("a.gy", "use \"b.gy\"\nlet x = 1\n");
  dir.write("b.gy", "use \"a.gy\"\nlet y = 2\n");
  CHECK(kinds(*dir.compile("use \"a.gy\"\n")) == std::vector<std::string>{"cycle"});
  // A module that uses the experiment file back is a cycle too, not a second copy of the
  // file's declarations (which reported them as duplicates of themselves).
  dir.write("back.gy", "use \"main.gy\"\nlet z = 3\n");
  CHECK(kinds(*dir.compile("use \"back.gy\"\nlet a = z\n")) == std::vector<std::string>{"cycle"});
  dir.write("stages.gy", "pretrain p {\n  data = synthetic()\n  encoder = unet()\n  objective = mae()\n}\n");
  CHECK(kinds(*dir.compile("use \"stages.gy\"\n")) == std::vector<std::string>{"module"});
  // A module's names clash with the file's like any other.
  CHECK(kinds(*test::compile("use std.fomo25\npipeline fomo_prep = zscore()\n")) ==
        std::vector<std::string>{"duplicate-name"});
}

TEST_CASE("every standard-library module checks cleanly and is formatted") {
  for (const char* name : {"prelude", "fomo25"}) {
    fs::path p = fs::path(GYRUS_SOURCE_DIR) / "stdlib" / (std::string(name) + ".gy");
    std::ifstream in(p);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SourceManager sm;
    ast::Arena arena;
    DiagnosticEngine diags;
    FileId id = sm.add(p.string(), text);
    ast::File* file = parseFile(sm, id, arena, diags);
    REQUIRE(file != nullptr);
    INFO(name << " is not formatted");
    CHECK(formatFile(sm, id, *file) == text);
  }
  CHECK(kinds(*test::compile("use std.fomo25\n"), Severity::Warning).empty());
}

TEST_CASE("regression: a standard-library file checks on its own, without duplicating itself") {
  for (const char* name : {"prelude.gy", "fomo25.gy"}) {
    CAPTURE(name);
    auto c = compileFile((fs::path(GYRUS_SOURCE_DIR) / "stdlib" / name).string(), {}, StopAfter::Check);
    CHECK(kinds(*c, Severity::Warning).empty());
  }
  // A user's file that declares a preset's name is still a duplicate.
  auto dup = gyrus::test::compile("encoder unet_b = unet(width = 8)\n");
  CHECK(kinds(*dup) == std::vector<std::string>{"duplicate-name"});
}

TEST_CASE("regression: an unreadable experiment file is [io-error], not [syntax]") {
  Dir d;
  fs::create_directories(d.root / "folder.gy");
  auto dir = compileFile((d.root / "folder.gy").string(), {}, StopAfter::Check);
  CHECK(kinds(*dir) == std::vector<std::string>{"io-error"});
  CHECK(test::find(*dir, "io-error")->message.find("is a directory") != std::string::npos);
  auto missing = compileFile((d.root / "missing.gy").string(), {}, StopAfter::Check);
  CHECK(kinds(*missing) == std::vector<std::string>{"io-error"});
  CHECK(test::find(*missing, "io-error")->message.find("no such file") != std::string::npos);
  if (::geteuid() != 0) {
    // Root reads any file, so the permission case runs for other users only.
    d.write("locked.gy", "let a = 1\n");
    fs::permissions(d.root / "locked.gy", fs::perms::none);
    auto locked = compileFile((d.root / "locked.gy").string(), {}, StopAfter::Check);
    CHECK(kinds(*locked) == std::vector<std::string>{"io-error"});
    CHECK(test::find(*locked, "io-error")->message.find("Permission denied") != std::string::npos);
  }
}

TEST_CASE("regression: --set and sweep of a module's declaration say it is the module's, not that it does not exist") {
  Dir d;
  d.write("common.gy", "let sizes = { crop = 24^3, width = 4 }\npipeline prep = crop(sizes.crop) >> zscore()\n");
  const std::string main = "use \"common.gy\"\ndataset corpus = synthetic(subjects = 12, size = 32^3)\n"
                           "pretrain hyb {\n  data = corpus |> prep\n  encoder = unet(width = sizes.width, stages = 3)\n"
                           "  objective = mae()\n  epochs = 1\n}\n";
  d.write("main.gy", main);
  auto set = compileFile((d.root / "main.gy").string(), {{"sizes.width", "8"}}, StopAfter::Check);
  REQUIRE(kinds(*set) == std::vector<std::string>{"bad-override"});
  const Diagnostic* e = test::find(*set, "bad-override");
  CHECK(e->message ==
        "--set sizes.width: 'sizes' is declared in a module the file uses, and --set changes only the experiment file");
  REQUIRE_FALSE(e->notes.empty());
  CHECK(set->sources.text(e->notes[0].range) == "sizes");
  auto sweep = d.compile(main + "sweep sizes.width in [4, 8]\n");
  REQUIRE(kinds(*sweep) == std::vector<std::string>{"bad-sweep"});
  CHECK(test::find(*sweep, "bad-sweep")->message.find("is declared in a module the file uses") != std::string::npos);
  // A name declared nowhere is still "no declaration named".
  auto none = compileFile((d.root / "main.gy").string(), {{"nosuch.width", "8"}}, StopAfter::Check);
  CHECK(test::find(*none, "bad-override")->message == "--set nosuch.width: no declaration named 'nosuch'");
}
