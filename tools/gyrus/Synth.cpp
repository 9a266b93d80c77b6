// `gyrus synth` (see Synth.h).
#include "Synth.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fmt/core.h>
#include <memory>
#include <string_view>
#include <vector>

#include "Inspect.h"
#include "gyrus/Source.h"
#include "gyrus/Version.h"
#include "gyrus/io/IoModule.h"

namespace gyrus::driver {
namespace {

// Single-quotes a word for a shell when it needs it (for the command recorded in README.txt).
std::string shellWord(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view("_-./,=:+").find(c) != std::string_view::npos);
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

int runSynth(const SynthArgs& args) {
  std::unique_ptr<io::IoModule> module = loadIoModule();
  if (!module) return 2;
  io::SynthRequest request;
  request.out = args.out;
  request.layout = args.layout;
  request.subjects = args.subjects;
  request.size = args.size;
  request.seed = args.seed;
  request.sites = split(args.sites, ',');
  request.force = args.force;
  request.lesionContrast = args.lesionContrast / 100.0;
  request.lesionSize = args.lesionSize / 100.0;
  request.ageEffect = args.ageEffect / 100.0;
  request.threads = args.threads;
  request.generator = std::string("gyrus ") + kVersion;
  request.command = fmt::format(
      "gyrus synth --out {} --layout {} --subjects {} --size {} --seed {} --sites {} --lesion-contrast {} --lesion-size {} "
      "--age-effect {}",
      shellWord(args.out), shellWord(args.layout), args.subjects, args.size, args.seed, shellWord(args.sites),
      args.lesionContrast, args.lesionSize, args.ageEffect);
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    request.progress = [](int64_t done, int64_t total) {
      fmt::print(stderr, "\rsynth: {}/{} subjects", done, total);
      if (done == total) fmt::print(stderr, "\n");
    };
  }
  io::SynthSummary summary;
  io::IoResult result = module->synthesize(request, summary);
  if (result.status == io::IoResult::Status::UserError) {
    if (tty) fmt::print(stderr, "\n");
    fmt::print(stderr, "error: {}\n", result.message);
    return 1;
  }
  if (result.status == io::IoResult::Status::InternalError) {
    fmt::print(stderr, "internal error: {}\nthis is a bug in gyrus; please report it with the command you ran\n",
               result.message);
    return 2;
  }
  fmt::print("wrote {} subjects of {} ({} files, {:.1f} MB) to {} in {:.2f} s ({:.1f} subjects/s)\n", summary.subjects,
             args.layout, summary.files, static_cast<double>(summary.bytes) / 1e6, args.out, summary.seconds,
             summary.seconds > 0 ? static_cast<double>(summary.subjects) / summary.seconds : 0.0);
  return 0;
}

}  // namespace gyrus::driver
