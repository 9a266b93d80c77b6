// Resolving NIfTI folder data sets at check time: the checker lists every sample's
// files and reads its label, so errors in a data tree (a missing channel, a missing or
// malformed label) are reported before any compute, and the stage hash covers the data.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/Safetensors.h"

namespace gyrus {

/// Why a folder could not be resolved: `message` for the diagnostic, `note` with
/// details (e.g. the files that do exist), both empty on success.
struct DataProblem {
  DataProblem() = default;
  DataProblem(std::string why, std::string details) : message(std::move(why)), note(std::move(details)) {}
  std::string message;
  std::string note;
  /// The messages of the data set's other problems of the same kind (every sample is
  /// checked, so all of them are reported in one run).
  std::vector<std::string> more;
  bool ok() const { return message.empty(); }
};

/// Lists `<root>/<subject>/<session>/<sequence>.nii[.gz]`; every scan is one sample.
/// `sequences` (file names without extension, case-insensitive) filters when not empty.
DataProblem resolveFomo60k(const std::string& root, const std::vector<std::string>& sequences, ir::FolderData& out);

/// Lists `<root>/preprocessed/<subject>/<session>/` with one file per channel (`"swi|t2s"`:
/// the first alternative that exists) and reads `<root>/labels/<subject>/<session>/label.txt`.
DataProblem resolveFomo25(const std::string& root, const std::vector<std::string>& channels, ir::LabelKind kind,
                          ir::FolderData& out);

/// Lists the files under `root` whose path relative to it matches `glob` (`*` and `?`
/// within a path component, as fnmatch with FNM_PATHNAME). With `table` (a CSV or TSV
/// file with a header, relative to the root), reads column `labelColumn` of the row whose
/// `subjectColumn` is the sample's subject; every sample must have a number there.
DataProblem resolveGlob(const std::string& root, const std::string& glob, const std::string& table,
                        const std::string& subjectColumn, const std::string& labelColumn, ir::LabelKind kind,
                        ir::FolderData& out);

/// Reads the samples' sites from `table` (relative to the folder's root; columns
/// `subject` and `site`). An empty `table` reads `sites.tsv` when the root has one.
DataProblem readSites(const std::string& table, ir::FolderData& data);

/// One folder data set as a call describes it: what a resolver lists, and the key of
/// its cache (every field is part of it).
struct FolderRequest {
  ir::FolderData::Layout layout = ir::FolderData::Layout::Fomo60k;
  std::string root;                 ///< resolved against the experiment file's directory
  std::vector<std::string> names;   ///< Fomo60k: the sequences to keep; Fomo25: the channels
  ir::LabelKind label = ir::LabelKind::Binary;
  std::string glob;                 ///< Glob: the pattern
  std::string table;                ///< Glob: the labels' table (empty: none)
  std::string subjectColumn;        ///< Glob: the table's subject column
  std::string labelColumn;          ///< Glob: the table's label column
  std::string sites;                ///< the sites table (empty: `sites.tsv` when the root has one)
  bool skipUnreadable = false;
  /// The request as one string (a cache key; unambiguous).
  std::string key() const;
};

/// The named data roots of the site configuration (gyrus.toml's `[roots]`,
/// docs/site-config.md), which `root("name", "sub/folder")` in an experiment file
/// resolves: where data lie on this machine, kept out of the file so that it stays
/// portable. A root's folder is not part of any stage hash (a folder data set's identity
/// is its content, not its place).
struct DataRoots {
  std::map<std::string, std::string> folders;  ///< name -> absolute folder
  std::string siteFile;                        ///< the site file they come from ("" when none was found)
  std::vector<std::string> searched;           ///< where gyrus looked for one (for the note when none was found)
};

/// Lists folder data sets for the checker, which does no file I/O of its own: tests
/// give it a fake one (no files), the driver a cached one over the files.
class DataResolver {
 public:
  virtual ~DataResolver() = default;
  /// Lists the samples (files, content fingerprints, labels, sites) of `request` into
  /// `out`; a problem instead when the folder cannot be used as asked.
  virtual DataProblem resolve(const FolderRequest& request, ir::FolderData& out) = 0;
  /// Reads a weights file's header and content digest (`weights("...")`; `path` is
  /// absolute). The default reads the file.
  virtual DataProblem weights(const std::string& path, ir::WeightsFile& out, st::Header& header);
};

/// Lists folders on disk: resolveFomo60k, resolveFomo25 or resolveGlob, then readSites.
class FileDataResolver final : public DataResolver {
 public:
  DataProblem resolve(const FolderRequest& request, ir::FolderData& out) override;
};

/// Remembers the answer to every request: `inner` lists a folder once per key, so
/// re-checking an unchanged file (every sweep point, an editor) does not list it again.
/// The answers live as long as the resolver; clear() forgets them (files changed).
class CachingDataResolver final : public DataResolver {
 public:
  explicit CachingDataResolver(DataResolver& inner) : inner_(inner) {}
  DataProblem resolve(const FolderRequest& request, ir::FolderData& out) override;
  DataProblem weights(const std::string& path, ir::WeightsFile& out, st::Header& header) override {
    return inner_.weights(path, out, header);
  }
  void clear() { cache_.clear(); }
  size_t size() const { return cache_.size(); }

 private:
  DataResolver& inner_;
  std::map<std::string, std::pair<DataProblem, ir::FolderData>> cache_;
};

/// The files, uncached (a FileDataResolver): what a check given no resolver uses.
/// compileFile wraps it in a CachingDataResolver for its compilation, so the sweep
/// points of one file list each folder once; an editor keeps its own cache across
/// checks and clears it when files change.
DataResolver& defaultDataResolver();

}  // namespace gyrus
