// The driver's side of the site configuration (gyrus.toml, docs/site-config.md): which
// file a command reads (--config, or found beside the experiment, then in
// ~/.config/gyrus/), its diagnostics, and the defaults it gives `gyrus run`.
#pragma once

#include <memory>
#include <string>

#include "Run.h"
#include "gyrus/Data.h"
#include "gyrus/Frontend.h"
#include "gyrus/site/Site.h"

namespace gyrus::driver {

/// What a command uses the site file for. Every setting is honoured now (ranks too), so
/// both read it alike; `Run` stays for a setting a later gyrus cannot honour.
enum class SiteUse { Compile, Run };

/// One command's site configuration.
struct SiteLoad {
  /// The site file's text and diagnostics (no experiment): rendered like a compilation's.
  std::unique_ptr<Compilation> diagnostics = std::make_unique<Compilation>();
  SiteConfig config;
  /// The named data roots for the checker, with where they come from.
  DataRoots roots;
  bool ok = true;
};

/// Reads `configFlag` (--config; it must exist) or else the first gyrus.toml of
/// siteSearchPath(experimentFile). No file found is no error: every default applies.
SiteLoad loadSite(const std::string& configFlag, const std::string& experimentFile, SiteUse use = SiteUse::Compile);

/// A compilation that holds only the site file's diagnostics, with the experiment file
/// (unparsed) as its main file, so that `gyrus check --verify` can match them against the
/// file's `// expect-error@* [kind]` comments.
std::unique_ptr<Compilation> siteFailure(SiteLoad& site, const std::string& experimentFile);

/// Fills what `gyrus run` was not told on its command line from the site file: the run
/// store, --jobs, --device, --volume-cache and --loader-memory. `given*`: whether the
/// flag was on the command line.
void applySiteDefaults(const SiteConfig& site, bool givenStore, bool givenJobs, bool givenDevice, bool givenCache,
                       bool givenMemory, RunOptions& options);

}  // namespace gyrus::driver
