// The formatter: canonical layout, comments kept, idempotent; every example and the
// prelude are fixed points.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "TestUtil.h"
#include "gyrus/Format.h"
#include "gyrus/Parse.h"

using namespace gyrus;
using gyrus::test::slurp;

namespace {
using gyrus::test::format;

}  // namespace

TEST_CASE("canonical spacing, alignment and literals as written") {
  CHECK(format("dataset  d=synthetic( subjects=8,size=32^3 )\n") == "dataset d = synthetic(subjects = 8, size = 32^3)\n");
  CHECK(format("let x = 1e-4\nlet y = 60%\nlet z = 160x192x160\n") == "let x = 1e-4\nlet y = 60%\nlet z = 160x192x160\n");
  CHECK(format("pretrain b { data = d\n encoder=unet() objective = mae() }") ==
        "pretrain b {\n  data      = d\n  encoder   = unet()\n  objective = mae()\n}\n");
  CHECK(format("let p = (a >> b) >> c\nlet q = a >> (b >> c)\n") == "let p = a >> b >> c\nlet q = a >> (b >> c)\n");
  CHECK(format("evaluate m = b on c.lesion(shots=8)\nsweep b.epochs,b.batch in [[1,2],[3,4]]\n") ==
        "evaluate m = b on c.lesion (shots = 8)\nsweep b.epochs, b.batch in [[1, 2], [3, 4]]\n");
}

TEST_CASE("blank lines: at most one, kept where the source had one") {
  CHECK(format("let a = 1\n\n\n\nlet b = 2\nlet c = 3\n") == "let a = 1\n\nlet b = 2\nlet c = 3\n");
}

TEST_CASE("comments are kept: leading, trailing, between fields, inside expressions") {
  std::string src =
      "// header\n\n"
      "let a = 1  // trailing\n"
      "/* block */ let b = [1, // inside\n 2]\n"
      "pretrain p {\n  // about data\n  data = d // why\n  encoder = unet()\n  // last\n}\n"
      "// footer\n";
  std::string out = format(src);
  for (const char* c : {"// header", "// trailing", "/* block */", "// inside", "// about data", "// why", "// last",
                        "// footer"}) {
    INFO(c << " in\n" << out);
    CHECK(out.find(c) != std::string::npos);
  }
  CHECK(format(out) == out);
}

TEST_CASE("formatting is idempotent on every golden input that parses") {
  namespace fs = std::filesystem;
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(GYRUS_SOURCE_DIR) / "tests" / "golden")) {
    if (entry.path().extension() != ".gy") continue;
    std::string once = format(slurp(entry.path()));
    if (once.empty()) continue;
    ++n;
    INFO(entry.path().filename().string());
    CHECK(format(once) == once);
  }
  CHECK(n >= 10);
}

TEST_CASE("examples and the prelude are fixed points of fmt") {
  namespace fs = std::filesystem;
  std::vector<fs::path> files = {fs::path(GYRUS_SOURCE_DIR) / "stdlib" / "prelude.gy"};
  for (const auto& entry : fs::directory_iterator(fs::path(GYRUS_SOURCE_DIR) / "examples"))
    if (entry.path().extension() == ".gy") files.push_back(entry.path());
  for (const fs::path& p : files) {
    std::string text = slurp(p);
    INFO(p.string() << " is not formatted: run `gyrus fmt " << p.string() << "`");
    CHECK(format(text) == text);
  }
}

TEST_CASE("regression: comments between a field's name and value, and in a block's header, are kept") {
  std::string src = "pretrain /* header */ p {\n  objective =   // 60% as in the paper\n    mae(mask = 60%)\n}\n";
  std::string out = format(src);
  CHECK(out.find("// 60% as in the paper") != std::string::npos);
  CHECK(out.find("/* header */") != std::string::npos);
  CHECK(format(out) == out);
  std::string field = "pretrain p {\n  objective =   // why\n    mae(mask = 60%)\n  epochs = 2\n}\n";
  std::string f = format(field);
  CHECK(f.find("// why") != std::string::npos);
  CHECK(format(f) == f);
}
