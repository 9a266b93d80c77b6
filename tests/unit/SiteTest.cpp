// The site configuration (gyrus.toml): every key read, every kind of error at its
// line:column, the lookup order, and named data roots in the checker (root(...)),
// which resolve to the site's folder and never reach a stage hash.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unistd.h>

#include "TestUtil.h"
#include "gyrus/Data.h"
#include "gyrus/site/Site.h"

using namespace gyrus;
using namespace gyrus::test;

namespace {
namespace fs = std::filesystem;

// Sets environment variables for one test and puts them back after it (the tests after
// these must see the real HOME: the digest cache lives under it).
class ScopedEnv {
 public:
  ScopedEnv& set(const char* name, const std::string& value) {
    remember(name);
    ::setenv(name, value.c_str(), 1);
    return *this;
  }
  ScopedEnv& unset(const char* name) {
    remember(name);
    ::unsetenv(name);
    return *this;
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  void remember(const char* name) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// One parse of `text` as /site/gyrus.toml: the config, and every diagnostic as
// "line:col kind message".
struct Parsed {
  SourceManager sm;
  DiagnosticEngine diags;
  SiteConfig config;
  bool ok = false;
  explicit Parsed(const std::string& text) { ok = parseSiteConfig("/site/gyrus.toml", text, sm, diags, config); }
  std::vector<std::string> errors() const {
    std::vector<std::string> out;
    for (const Diagnostic& d : diags.sorted()) {
      LineCol lc = sm.lineCol(d.range.file, d.range.begin);
      out.push_back(std::to_string(lc.line) + ":" + std::to_string(lc.col) + " " + std::string(info(d.kind).name) +
                    " " + d.message);
    }
    return out;
  }
  Diagnostic first() const { return diags.sorted().at(0); }
};

// Answers every request with a fixed listing, whatever the root: two copies of the same
// data in two places.
class SameData final : public DataResolver {
 public:
  DataProblem resolve(const FolderRequest& r, ir::FolderData& out) override {
    roots.push_back(r.root);
    out = {};
    out.layout = r.layout;
    out.root = r.root;
    for (int i = 0; i < 8; ++i) {
      ir::FolderSample s;
      s.subject = "sub_" + std::to_string(i);
      s.session = "ses_1";
      s.files.push_back(r.root + "/" + s.subject + "/ses_1/t1.nii.gz");
      out.samples.push_back(s);
    }
    out.fingerprint = "same";
    return {};
  }
  std::vector<std::string> roots;
};

const char* kCorpus = R"(dataset corpus = fomo60k(root("fomo60k", "raw"))
pretrain base {
  data      = corpus |> crop(32^3) >> zscore()
  encoder   = unet(width = 4, stages = 3)
  objective = mae(mask = 60%)
  epochs    = 1
}
)";
}  // namespace

TEST_CASE("site: every key is read") {
  ScopedEnv env;
  env.set("HOME", "/home/u");
  Parsed p(R"(# a cluster
store = "runs"
volume_cache = "~/cache/volumes"
loader_memory = "8GiB"
device = "cuda:1"
jobs = 4
ranks = 1

[roots]
fomo60k = "/scratch/fomo60k/"
ixi = "~/data/IXI"

[slurm]
partition = "gpu"
account = "brains"
time = "1-12:00:00"
gpus_per_task = 1
max_running = 8
retries = 2
extra_sbatch = ["#SBATCH --qos=high", "#SBATCH --constraint=h100"]
)");
  INFO(p.errors().size());
  CHECK(p.ok);
  CHECK(p.errors().empty());
  const SiteConfig& c = p.config;
  CHECK(c.store == "/site/runs");  // relative to the site file
  CHECK(c.volumeCache == "/home/u/cache/volumes");
  CHECK(c.loaderMemory == int64_t{8} << 30);
  CHECK(c.device == "cuda:1");
  CHECK(c.jobs == 4);
  CHECK(c.ranks == 1);
  CHECK(c.roots.at("fomo60k") == "/scratch/fomo60k/");
  CHECK(c.roots.at("ixi") == "/home/u/data/IXI");
  CHECK(c.slurm.partition == "gpu");
  CHECK(c.slurm.account == "brains");
  CHECK(c.slurm.time == "1-12:00:00");
  CHECK(c.slurm.gpusPerTask == 1);
  CHECK(c.slurm.maxRunning == 8);
  CHECK(c.slurm.retries == 2);
  CHECK(c.slurm.extraSbatch == std::vector<std::string>{"#SBATCH --qos=high", "#SBATCH --constraint=h100"});
  // Where each key was set, for later diagnostics about it.
  LineCol jobs = p.sm.lineCol(c.place("jobs").file, c.place("jobs").begin);
  CHECK(jobs.line == 6);
  CHECK(jobs.col == 8);
  CHECK_FALSE(c.place("threads").valid());
}

TEST_CASE("site: an empty file sets nothing") {
  Parsed p("# nothing here\n");
  CHECK(p.ok);
  CHECK_FALSE(p.config.store.has_value());
  CHECK_FALSE(p.config.jobs.has_value());
  CHECK(p.config.roots.empty());
  CHECK_FALSE(p.config.slurm.partition.has_value());
}

TEST_CASE("site: a TOML syntax error is a [site-syntax] error at its place") {
  Parsed p("store = \"/runs\"\njobs = = 4\n");
  CHECK_FALSE(p.ok);
  REQUIRE(p.errors().size() == 1);
  CHECK(p.errors()[0].rfind("2:", 0) == 0);
  CHECK(p.errors()[0].find("site-syntax the site configuration is not valid TOML") != std::string::npos);
  Parsed unclosed("[slurm\npartition = \"gpu\"\n");
  REQUIRE(unclosed.errors().size() == 1);
  CHECK(unclosed.errors()[0].rfind("1:", 0) == 0);
}

TEST_CASE("site: an unknown key is a [site-unknown-key] error with the nearest key") {
  Parsed p("stroe = \"/runs\"\n\n[slurm]\npartiton = \"gpu\"\n");
  std::vector<std::string> e = p.errors();
  REQUIRE(e.size() == 2);
  CHECK(e[0] == "1:1 site-unknown-key unknown key 'stroe' in the site configuration; did you mean 'store'?");
  CHECK(e[1] == "4:1 site-unknown-key unknown key 'partiton' in [slurm]; did you mean 'partition'?");
  REQUIRE(p.first().fixits.size() == 1);
  CHECK(p.first().fixits[0].replacement == "store");
  CHECK(p.sm.text(p.first().fixits[0].range) == "stroe");
  // A setting of the experiment is no typo of a site key: the note says where it belongs.
  Parsed epochs("epochs = 10\n");
  REQUIRE(epochs.errors().size() == 1);
  bool belongs = false;
  for (const DiagNote& n : epochs.first().notes) belongs = belongs || n.message.find("experiment file") != std::string::npos;
  CHECK(belongs);
}

TEST_CASE("site: a wrong TOML type is a [site-type] error at the value") {
  Parsed p("jobs = \"4\"\ndevice = 1\nroots = \"/data\"\n[slurm]\nextra_sbatch = \"#SBATCH --qos=high\"\nretries = 1.5\n");
  std::vector<std::string> e = p.errors();
  REQUIRE(e.size() == 5);
  CHECK(e[0] == "1:8 site-type 'jobs' must be an integer, not a string");
  CHECK(e[1] == "2:10 site-type 'device' must be a string, not an integer");
  CHECK(e[2].rfind("3:9 site-type 'roots' must be a table", 0) == 0);
  CHECK(e[3].rfind("5:16 site-type 'slurm.extra_sbatch' must be an array of strings", 0) == 0);
  CHECK(e[4] == "6:11 site-type 'slurm.retries' must be an integer, not a float");
  // "4" for a count: the fix-it is the number.
  REQUIRE(p.first().fixits.size() == 1);
  CHECK(p.first().fixits[0].replacement == "4");
  CHECK(p.sm.text(p.first().fixits[0].range) == "\"4\"");
}

TEST_CASE("site: a value that is not allowed is a [site-value] error at the value") {
  Parsed p(R"(jobs = -2
device = "gpu"
loader_memory = "lots"
ranks = 0
[roots]
data = "data/fomo"
"my root" = "/x"
[slurm]
time = "tomorrow"
partition = "gpu; rm -rf /"
gpus_per_task = -1
extra_sbatch = ["--qos=high"]
)");
  std::vector<std::string> e = p.errors();
  REQUIRE(e.size() == 10);
  CHECK(e[0] == "1:8 site-value 'jobs' must be 1 to 256; got -2");
  CHECK(e[1] == "2:10 site-value 'gpu' is not a device; did you mean \"cpu\"?");
  CHECK(e[2] == "3:17 site-value 'loader_memory' is not a size: 'lots'");
  CHECK(e[3] == "4:9 site-value 'ranks' must be 1 to 1024; got 0");
  CHECK(e[4] == "6:8 site-value data root 'data' must be an absolute folder, not 'data/fomo'");
  CHECK(e[5].rfind("7:1 site-value data root name 'my root' may hold only", 0) == 0);
  CHECK(e[6] == "9:8 site-value slurm.time 'tomorrow' is not a Slurm time");
  CHECK(e[7] == "10:13 site-value slurm.partition must be one word (a Slurm partition name); got 'gpu; rm -rf /'");
  CHECK(e[8] == "11:17 site-value 'slurm.gpus_per_task' must be 0 to 64; got -1");
  CHECK(e[9] == "12:17 site-value an extra_sbatch line must start with '#SBATCH ' and give an option; got '--qos=high'");
  // The valid settings are kept; the invalid ones are not.
  CHECK(p.config.roots.empty());
  CHECK_FALSE(p.config.jobs.has_value());
  Parsed sbatch("[slurm]\nextra_sbatch = [\"#SBATCH --qos=high\", \"--mem=8G\"]\n");
  REQUIRE(sbatch.errors().size() == 1);
  CHECK(sbatch.errors()[0] == "2:39 site-value an extra_sbatch line must start with '#SBATCH ' and give an option; "
                              "got '--mem=8G'");
  REQUIRE(sbatch.first().fixits.size() == 1);
  CHECK(sbatch.first().fixits[0].replacement == "\"#SBATCH --mem=8G\"");
  CHECK(sbatch.config.slurm.extraSbatch.empty());
  Parsed newline("[slurm]\nextra_sbatch = [\"#SBATCH --qos=high\\necho owned\"]\n");
  REQUIRE(newline.errors().size() == 1);
  CHECK(newline.errors()[0].find("one line of printable characters") != std::string::npos);
}

TEST_CASE("site: toml++ counts characters, diagnostics bytes: a place after non-ASCII text is exact") {
  Parsed p("# Müller's cluster\n[roots]\n\"brüche\" = \"/x\"\n");
  REQUIRE(p.errors().size() == 1);
  CHECK(p.errors()[0].rfind("3:1 site-value data root name 'brüche'", 0) == 0);
  // ';' is the 14th character of the line and its 15th byte.
  Parsed after("store = \"/ü\" ; jobs = 1\n");
  REQUIRE(after.errors().size() == 1);
  CHECK(after.errors()[0].rfind("1:15 site-syntax", 0) == 0);
  CHECK(after.sm.text(after.first().range) == ";");
}

TEST_CASE("site: looked for beside the experiment, then in $XDG_CONFIG_HOME or ~/.config") {
  fs::path dir = fs::temp_directory_path() / ("gyrus-site-test-" + std::to_string(::getpid()));
  fs::create_directories(dir / "exp");
  fs::create_directories(dir / "xdg" / "gyrus");
  fs::create_directories(dir / "home" / ".config" / "gyrus");
  ScopedEnv env;
  env.set("HOME", (dir / "home").string()).unset("XDG_CONFIG_HOME");
  std::string exp = (dir / "exp" / "a.gy").string();
  CHECK(siteSearchPath(exp) == std::vector<std::string>{(dir / "exp" / "gyrus.toml").string(),
                                                         (dir / "home" / ".config" / "gyrus" / "gyrus.toml").string()});
  CHECK(findSiteFile(exp).empty());
  std::ofstream(dir / "home" / ".config" / "gyrus" / "gyrus.toml") << "jobs = 1\n";
  CHECK(findSiteFile(exp) == (dir / "home" / ".config" / "gyrus" / "gyrus.toml").string());
  env.set("XDG_CONFIG_HOME", (dir / "xdg").string());
  CHECK(findSiteFile(exp).empty());  // $XDG_CONFIG_HOME replaces ~/.config
  std::ofstream(dir / "xdg" / "gyrus" / "gyrus.toml") << "jobs = 2\n";
  CHECK(findSiteFile(exp) == (dir / "xdg" / "gyrus" / "gyrus.toml").string());
  env.set("XDG_CONFIG_HOME", "relative/xdg");  // ignored, as the XDG spec says
  CHECK(findSiteFile(exp) == (dir / "home" / ".config" / "gyrus" / "gyrus.toml").string());
  std::ofstream(dir / "exp" / "gyrus.toml") << "jobs = 3\n";
  CHECK(findSiteFile(exp) == (dir / "exp" / "gyrus.toml").string());
  // A file that is not there, or a folder: [io-error].
  SourceManager sm;
  DiagnosticEngine diags;
  SiteConfig config;
  CHECK_FALSE(loadSiteConfig((dir / "none.toml").string(), sm, diags, config));
  CHECK_FALSE(loadSiteConfig(dir.string(), sm, diags, config));
  REQUIRE(diags.all().size() == 2);
  CHECK(diags.all()[0].kind == DiagKind::IoError);
  CHECK(diags.all()[1].message.find("it is a directory") != std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("site: root() resolves a named data root; the stage hash does not see where") {
  std::string text = kCorpus;
  DataRoots a{{{"fomo60k", "/mnt/a/fomo60k"}}, "/a/gyrus.toml", {}};
  DataRoots b{{{"fomo60k", "/scratch/copy"}}, "/b/gyrus.toml", {}};
  SameData dataA, dataB;
  auto ca = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &dataA, &a);
  auto cb = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &dataB, &b);
  INFO(renderHuman(ca->sources, ca->diags.sorted()));
  REQUIRE(ca->ok());
  REQUIRE(cb->ok());
  CHECK(dataA.roots == std::vector<std::string>{"/mnt/a/fomo60k/raw"});
  CHECK(dataB.roots == std::vector<std::string>{"/scratch/copy/raw"});
  REQUIRE(ca->check.experiment->stages.size() == 1);
  CHECK(ca->check.experiment->stages[0].hash == cb->check.experiment->stages[0].hash);
}

TEST_CASE("site: an unknown root is an [unknown-root] error in the experiment, naming the site's roots") {
  std::string text = "dataset corpus = fomo60k(root(\"fomo6k\"))\nlet x = corpus\n";
  DataRoots roots{{{"fomo60k", "/data/fomo60k"}, {"ixi", "/data/IXI"}}, "/etc/site/gyrus.toml", {}};
  SameData data;
  auto c = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &data, &roots);
  const Diagnostic* d = find(*c, "unknown-root");
  REQUIRE(d != nullptr);
  CHECK(where(*c, *d) == "1:31");
  CHECK(d->message == "no data root named \"fomo6k\"; did you mean \"fomo60k\"?");
  REQUIRE(d->notes.size() == 1);
  CHECK(d->notes[0].message == "the site configuration /etc/site/gyrus.toml defines the data roots: fomo60k, ixi");
  REQUIRE(d->fixits.size() == 1);
  CHECK(d->fixits[0].replacement == "\"fomo60k\"");
  CHECK(data.roots.empty());
  // Without a site file: where gyrus looked.
  DataRoots none{{}, "", {"/exp/gyrus.toml", "/home/u/.config/gyrus/gyrus.toml"}};
  auto n = compileFile("/exp/test.gy", {}, StopAfter::Check, &text, &data, &none);
  const Diagnostic* nd = find(*n, "unknown-root");
  REQUIRE(nd != nullptr);
  REQUIRE(nd->notes.size() == 1);
  CHECK(nd->notes[0].message.find("no site configuration was found (looked for /exp/gyrus.toml, "
                                  "/home/u/.config/gyrus/gyrus.toml)") == 0);
}

TEST_CASE("site: root() is only a folder data set's root, never a value a hash sees") {
  DataRoots roots{{{"fomo60k", "/data/fomo60k"}}, "/site/gyrus.toml", {}};
  SameData data;
  std::string glob = "dataset d = folder(root(\"fomo60k\"), glob = root(\"fomo60k\"))\nlet x = d\n";
  auto c = compileFile("/exp/test.gy", {}, StopAfter::Check, &glob, &data, &roots);
  const Diagnostic* d = find(*c, "type-mismatch");
  REQUIRE(d != nullptr);
  CHECK(where(*c, *d) == "1:44");
  CHECK(d->message.find("argument 'glob' of folder() cannot be root(...)") == 0);
  std::string site = "dataset d = fomo60k(root(\"fomo60k\"))\nevaluate m on d.label (test = site(root(\"fomo60k\")))\n";
  auto s = compileFile("/exp/test.gy", {}, StopAfter::Check, &site, &data, &roots);
  CHECK(find(*s, "type-mismatch") != nullptr);
  std::string absolute = "dataset d = fomo60k(root(\"fomo60k\", \"/etc\"))\nlet x = d\n";
  auto a = compileFile("/exp/test.gy", {}, StopAfter::Check, &absolute, &data, &roots);
  const Diagnostic* ad = find(*a, "value-range");
  REQUIRE(ad != nullptr);
  CHECK(where(*a, *ad) == "1:37");
}

TEST_CASE("site: sizes and devices as the command line reads them") {
  int64_t bytes = 0;
  CHECK(parseByteSize("8GiB", bytes));
  CHECK(bytes == int64_t{8} << 30);
  CHECK(parseByteSize("512M", bytes));
  CHECK(bytes == int64_t{512} << 20);
  CHECK_FALSE(parseByteSize("0", bytes));
  CHECK_FALSE(parseByteSize("8 parsecs", bytes));
  CHECK(isDeviceName("cuda:3"));
  CHECK_FALSE(isDeviceName("cuda:"));
  CHECK_FALSE(isDeviceName("gpu"));
}
