// The Slurm executor's generated batch scripts and sbatch arguments (`gyrus run
// --executor slurm`): every value reaches run-stage exactly as given, and no store path,
// executable path or option value can run a command. The scripts are run here with bash
// and a stand-in for gyrus that records its arguments.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gyrus/exec/Slurm.h"

namespace fs = std::filesystem;
using namespace gyrus::exec;

namespace {

// A private scratch directory, removed at the end.
struct Scratch {
  fs::path dir;
  Scratch() {
    char tmpl[] = "/tmp/gyrus-slurm-test-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The NUL-separated arguments the stand-in wrote.
std::vector<std::string> argsIn(const fs::path& p) {
  std::string text = readAll(p);
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t z = text.find('\0'); z != std::string::npos; z = text.find('\0', start)) {
    args.push_back(text.substr(start, z - start));
    start = z + 1;
  }
  return args;
}

// Every name a shell could be tricked by: substitutions, quotes, spaces, a newline, globs.
const std::string hostile = "st ore$(touch pwned)`touch pwned2`'\"q\nnl;touch pwned3 &*?%A";

const std::string hashA(64, 'a');
const std::string hashB = std::string(63, '0') + "f";

}  // namespace

TEST_CASE("shell quoting keeps any text one word") {
  CHECK(shellQuote("plain") == "'plain'");
  CHECK(shellQuote("") == "''");
  CHECK(shellQuote("it's") == "'it'\\''s'");
  CHECK(shellQuote("$(x) `y` \"z\"\n") == "'$(x) `y` \"z\"\n'");
}

TEST_CASE("store paths as Slurm file name patterns") {
  CHECK(slurmPathPattern("/scratch/run store") == "/scratch/run store");
  CHECK(slurmPathPattern("/s/100%/x%j") == "/s/100%%/x%%j");
  // A backslash turns Slurm's pattern processing off: the script logs instead.
  CHECK_FALSE(slurmPathPattern("/s/a\\b").has_value());
}

TEST_CASE("Slurm settings are checked") {
  SlurmSettings s;
  s.executable = "/usr/bin/gyrus";
  CHECK(checkSlurmSettings(s).empty());
  s.extraSbatchLines = {"#SBATCH --qos=high", "#SBATCH --comment=$(touch pwned)"};
  CHECK(checkSlurmSettings(s).empty());
  s.extraSbatchLines = {"--qos=high"};
  CHECK(checkSlurmSettings(s).find("does not start with #SBATCH") != std::string::npos);
  s.extraSbatchLines = {"#SBATCH --qos=high\ntouch pwned"};
  CHECK(checkSlurmSettings(s).find("line break") != std::string::npos);
  s.extraSbatchLines = {"#SBATCH --qos=high\rx"};
  CHECK_FALSE(checkSlurmSettings(s).empty());
  s.extraSbatchLines.clear();
  s.executable = "gyrus";
  CHECK(checkSlurmSettings(s).find("absolute") != std::string::npos);
}

TEST_CASE("sbatch gets each option as one argument, the dependencies on single tasks") {
  SlurmSettings s;
  s.partition = "gpu;touch pwned";
  s.account = "-lab";
  s.time = "1:00:00";
  s.gpusPerTask = 1;
  s.cpusPerTask = 4;
  s.maxRunning = 3;
  std::vector<std::string> a = sbatchArguments(s, 5, {"12_0", "12_3"}, "gyrus-level1", "/st/slurm/%A_%a.log", "/st/x.sh");
  std::vector<std::string> want = {"--parsable",
                                   "--array=0-4%3",
                                   "--job-name=gyrus-level1",
                                   "--output=/st/slurm/%A_%a.log",
                                   "--open-mode=append",
                                   "--partition=gpu;touch pwned",
                                   "--account=-lab",
                                   "--time=1:00:00",
                                   "--gpus-per-task=1",
                                   "--cpus-per-task=4",
                                   "--dependency=afterok:12_0:12_3",
                                   "/st/x.sh"};
  CHECK(a == want);
  SlurmSettings plain;
  CHECK(sbatchArguments(plain, 1, {}, "gyrus-a", "o", "s") ==
        std::vector<std::string>{"--parsable", "--array=0-0", "--job-name=gyrus-a", "--output=o", "--open-mode=append", "s"});
}

TEST_CASE("a batch script runs run-stage with exactly the given values, whatever their characters") {
  Scratch scratch;
  // The stand-in gyrus, itself at a hostile path, writes its arguments NUL-separated.
  fs::path binDir = scratch.dir / ("bin " + hostile);
  fs::path store = scratch.dir / hostile;
  fs::create_directories(binDir);
  fs::create_directories(store / "slurm");
  fs::path fake = binDir / "gyrus";
  const fs::path argsFile = scratch.dir / "args";
  {
    std::ofstream f(fake);
    f << "#!/bin/bash\nprintf '%s\\0' \"$@\" > \"$ARGS_OUT\"\necho \"threads $OPENBLAS_NUM_THREADS\"\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  SlurmSettings s;
  s.executable = fake.string();
  s.extraSbatchLines = {"#SBATCH --comment=$(touch pwned4)"};
  RunSettings run;
  run.device = "cuda:0";
  run.volumeCache = scratch.dir / ("cache " + hostile);
  run.loaderMemory = 1024;

  for (bool redirect : {false, true}) {
    CAPTURE(redirect);
    std::string script = batchScript({hashA, hashB}, store, s, run, redirect);
    CHECK(script.rfind("#!/bin/bash\n", 0) == 0);
    // The #SBATCH lines come before the first command, where sbatch reads them.
    CHECK(script.find("#SBATCH --comment") < script.find("set -u"));
    fs::path file = scratch.dir / "job.sh";
    {
      std::ofstream f(file);
      f << script;
    }
    fs::remove(argsFile);
    std::string command = "cd '" + scratch.dir.string() + "' && ARGS_OUT='" + argsFile.string() +
                          "' SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=1 SLURM_CPUS_PER_TASK=3 bash job.sh > out.txt 2>&1";
    CHECK(std::system(command.c_str()) == 0);
    std::vector<std::string> want = {"run-stage", hashB, "--store",        store.string(),          "--threads",
                                     "3",         "--device", "cuda:0", "--volume-cache", run.volumeCache.string(),
                                     "--loader-memory", "1024"};
    CHECK(argsIn(argsFile) == want);
    // Its output: in the task's log in the store when the script redirects it itself.
    std::string out = redirect ? readAll(store / "slurm" / "7_1.log") : readAll(scratch.dir / "out.txt");
    CHECK(out.find("gyrus: stage " + hashB + ", Slurm task 7_1") != std::string::npos);
    CHECK(out.find("threads 3") != std::string::npos);
    // A task the script has no stage for fails, saying so.
    std::string missing = "cd '" + scratch.dir.string() + "' && SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=2 bash job.sh > out2.txt 2>&1";
    CHECK(std::system(missing.c_str()) != 0);
  }
  // Nothing the names hold was run.
  for (const char* p : {"pwned", "pwned2", "pwned3", "pwned4"}) {
    CHECK_FALSE(fs::exists(scratch.dir / p));
    CHECK_FALSE(fs::exists(fs::current_path() / p));
  }
  CHECK_THROWS(batchScript({"abc;rm"}, store, s, run, false));
}

TEST_CASE("squeue's lines become tasks, finished ones included") {
  std::string out =
      "5_0|COMPLETED|0|None|\n"
      "5_1|FAILED|768|NonZeroExitCode|\n"
      "6_0|FAILED|9|JobLaunchFailure|\n"
      "7_2|PENDING|0|DependencyNeverSatisfied|\n"
      "8_0|CANCELLED by 0|0|None|\n"
      "9_[0-3]|PENDING|0|Dependency|\n"
      "garbage\n";
  std::map<std::string, SlurmTask> t = parseSqueue(out);
  CHECK(t.size() == 5);
  CHECK(t["5_0"].state == "COMPLETED");
  CHECK_FALSE(slurmInFlight(t["5_0"]));
  CHECK((t["5_1"].exitStatus >> 8) == 3);
  CHECK((t["6_0"].exitStatus & 0x7f) == 9);
  CHECK(t["7_2"].reason == "DependencyNeverSatisfied");
  CHECK(slurmInFlight(t["7_2"]));
  CHECK(t["8_0"].state == "CANCELLED");
  CHECK(t.count("9_[0-3]") == 0);
}
