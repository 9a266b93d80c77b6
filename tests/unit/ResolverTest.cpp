// The checker lists folder data sets only through a DataResolver: a fake one (no files)
// stands in for the disk, and the caching one lists each request once.
#include <doctest/doctest.h>

#include "TestUtil.h"
#include "gyrus/Data.h"

using namespace gyrus;
using namespace gyrus::test;

namespace {
// Answers every request with `subjects` labelled samples (no file is touched) and
// remembers the requests it was asked.
class FakeResolver final : public DataResolver {
 public:
  DataProblem resolve(const FolderRequest& r, ir::FolderData& out) override {
    requests.push_back(r);
    if (!problem.empty()) return {problem, "a note"};
    out = {};
    out.layout = r.layout;
    out.root = r.root;
    out.channels = r.names;
    out.hasLabel = r.layout != ir::FolderData::Layout::Fomo60k;
    out.labelKind = r.label;
    for (int i = 0; i < subjects; ++i) {
      ir::FolderSample s;
      s.subject = "sub_" + std::to_string(i);
      s.session = "ses_1";
      for (const std::string& c : r.names) s.files.push_back("/fake/" + s.subject + "/" + c + ".nii.gz");
      s.label = i % 2;
      s.site = i < subjects / 2 ? "a" : "b";
      out.samples.push_back(s);
    }
    out.fingerprint = "fake";
    return {};
  }
  int subjects = 40;
  std::string problem;
  std::vector<FolderRequest> requests;
};

const char* kFolders = R"(dataset corpus = synthetic(subjects = 32, size = 40^3)
dataset clinic = fomo25("data/task", channels = ["flair", "t1"], label = binary, sites = "sites.tsv")
pretrain base {
  data      = corpus |> crop(32^3) >> zscore()
  encoder   = unet(width = 4, stages = 3)
  objective = mae(mask = 60%)
  epochs    = 2
}
evaluate base on clinic.label (shots = 8, test = site("b"))
)";
}  // namespace

TEST_CASE("resolver: the checker lists folders through its resolver, with the call's request") {
  FakeResolver fake;
  std::string text = kFolders;
  auto c = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &fake);
  INFO(renderHuman(c->sources, c->diags.sorted()));
  CHECK(c->diags.errorCount() == 0);
  REQUIRE(c->check.experiment.has_value());
  REQUIRE(fake.requests.size() == 1);
  const FolderRequest& r = fake.requests.front();
  CHECK((r.layout == ir::FolderData::Layout::Fomo25));
  CHECK(r.root == "/exp/data/task");
  CHECK(r.names == std::vector<std::string>{"flair", "t1"});
  CHECK((r.label == ir::LabelKind::Binary));
  CHECK(r.sites == "sites.tsv");
  CHECK_FALSE(r.skipUnreadable);
  const ir::Stage& ev = c->check.experiment->stages.back();
  CHECK(ev.evaluate.data.folder.samples.size() == 40);
  CHECK(ev.evaluate.testSite == "b");
}

TEST_CASE("resolver: a problem is a [data] error at the root") {
  FakeResolver fake;
  fake.problem = "no such thing";
  std::string text = kFolders;
  auto c = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &fake);
  const Diagnostic* d = find(*c, "data");
  REQUIRE(d != nullptr);
  CHECK(d->message == "no such thing");
  CHECK(where(*c, *d) == "2:25");
}

TEST_CASE("resolver: requests differ by every argument that changes the listing") {
  FolderRequest a;
  a.root = "/r";
  FolderRequest b = a;
  CHECK(a.key() == b.key());
  b.names = {"t1"};
  CHECK(a.key() != b.key());
  b = a;
  b.skipUnreadable = true;
  CHECK(a.key() != b.key());
  b = a;
  b.sites = "s.tsv";
  CHECK(a.key() != b.key());
  b = a;
  b.glob = "x";
  FolderRequest c = a;
  c.table = "x";
  CHECK(b.key() != c.key());
}

TEST_CASE("resolver: the cache lists a folder once across checks and sweep points") {
  FakeResolver fake;
  CachingDataResolver cache(fake);
  std::string text = kFolders;
  auto first = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &cache);
  CHECK(first->diags.errorCount() == 0);
  CHECK(fake.requests.size() == 1);
  // Re-checking the unchanged file (an editor) does not list again.
  auto second = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &cache);
  CHECK(second->diags.errorCount() == 0);
  CHECK(fake.requests.size() == 1);
  CHECK(cache.size() == 1);
  REQUIRE(second->check.experiment.has_value());
  CHECK(second->check.experiment->stages.back().evaluate.data.folder.samples.size() == 40);
  // Another request lists again; clear() forgets.
  std::string other = text;
  other.replace(other.find("\"t1\""), 4, "\"t2\"");
  compileFile("/exp/test.gy", {}, StopAfter::Check, &other, &cache);
  CHECK(fake.requests.size() == 2);
  cache.clear();
  compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &cache);
  CHECK(fake.requests.size() == 3);

  // The sweep points of one compilation share its resolver: four points over one folder
  // list it once (compileFile without a resolver caches the files like this).
  FakeResolver counting;
  CachingDataResolver perCompilation(counting);
  std::string swept = text + "sweep base.objective.mask in [50%, 60%, 70%, 80%]\n";
  auto points = compileFile("/exp/test.gy", {}, StopAfter::Check, &swept, &perCompilation);
  INFO(renderHuman(points->sources, points->diags.sorted()));
  CHECK(points->diags.errorCount() == 0);
  CHECK(points->plan.points.size() == 4);
  CHECK(counting.requests.size() == 1);
}
