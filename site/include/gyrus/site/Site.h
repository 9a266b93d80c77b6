// The site configuration, `gyrus.toml`: what belongs to a machine rather than to an
// experiment (where the run store and the data live, the volume cache, the loader's
// memory, the default device and job count, Slurm's partition and account). An
// experiment file stays portable between a laptop and a cluster because these settings
// live here. Nothing here changes results: settings that do (epochs, seeds, data
// selection, ...) belong in the experiment file, where the stage hash sees them, and
// this file has no key for them. docs/site-config.md documents every key.
//
// Found beside the experiment file, then in $XDG_CONFIG_HOME/gyrus/ (~/.config/gyrus/);
// `--config FILE` names one instead. The first file found is read alone (no merging),
// so what a command uses is always one file, shown in its diagnostics.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gyrus/Diagnostics.h"
#include "gyrus/Source.h"

namespace gyrus {

/// The `[slurm]` table: defaults for `gyrus run --executor slurm`. Parsed and validated
/// here; the Slurm executor fills its own settings from its flags and these.
struct SlurmSite {
  std::optional<std::string> partition;      ///< sbatch --partition
  std::optional<std::string> account;        ///< sbatch --account
  std::optional<std::string> time;           ///< sbatch --time, Slurm's format ("30", "4:00:00", "1-12")
  std::optional<int64_t> gpusPerTask;        ///< sbatch --gpus-per-task (>= 0)
  std::optional<int64_t> maxRunning;         ///< the job arrays' %K throttle (>= 1)
  std::optional<int64_t> retries;            ///< resubmissions of a failed task (>= 0)
  std::vector<std::string> extraSbatch;      ///< whole `#SBATCH ...` lines, in order
};

/// One parsed, validated `gyrus.toml`. Unset keys are empty optionals: the command's
/// own default applies.
struct SiteConfig {
  std::string path;                          ///< the file read ("" when none was found)
  std::optional<std::string> store;          ///< default run store (absolute)
  std::map<std::string, std::string> roots;  ///< named data roots: name -> absolute folder
  std::optional<std::string> volumeCache;    ///< directory of preprocessed volumes (absolute)
  std::optional<int64_t> loaderMemory;       ///< bytes ("8GiB" in the file)
  std::optional<std::string> device;         ///< auto | cpu | cuda | cuda:N
  std::optional<int64_t> jobs;               ///< default for --jobs (>= 1)
  std::optional<int64_t> ranks;              ///< data-parallel ranks (>= 1)
  SlurmSite slurm;
  /// Where each key was set ("store", "roots.fomo60k", "slurm.partition"), for a
  /// diagnostic that a later step reports about a setting (e.g. ranks).
  std::map<std::string, SourceRange> places;
  /// The place of `key`, or an invalid range.
  SourceRange place(const std::string& key) const;
};

/// Where `gyrus.toml` is looked for, in order, for an experiment at `experimentFile`
/// (empty: a command without one): beside the experiment, then
/// $XDG_CONFIG_HOME/gyrus/gyrus.toml (an absolute XDG_CONFIG_HOME; otherwise
/// ~/.config/gyrus/gyrus.toml).
std::vector<std::string> siteSearchPath(const std::string& experimentFile);

/// The first file of siteSearchPath that exists, or "".
std::string findSiteFile(const std::string& experimentFile);

/// Parses and validates `text` as the site file `path` (added to `sm`, so diagnostics
/// point into it at line:column). Relative `store` and `volume_cache` are resolved
/// against the file's folder; `~/` is the home folder. Returns false when an error was
/// reported; `out` then holds the settings that were valid.
bool parseSiteConfig(const std::string& path, std::string text, SourceManager& sm, DiagnosticEngine& diags,
                     SiteConfig& out);

/// Reads the file at `path` and parses it (parseSiteConfig); a file that cannot be read
/// is an [io-error].
bool loadSiteConfig(const std::string& path, SourceManager& sm, DiagnosticEngine& diags, SiteConfig& out);

/// A memory size: a number with an optional unit (B, K/KiB, M/MiB, G/GiB, T/TiB; binary
/// multiples), e.g. "8GiB", "512MiB", "2G". False when it is not one or not positive.
bool parseByteSize(const std::string& text, int64_t& bytes);

/// Whether `name` is a device `gyrus run --device` takes: auto, cpu, cuda or cuda:N.
bool isDeviceName(const std::string& name);

}  // namespace gyrus
