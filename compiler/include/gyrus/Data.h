// Resolving NIfTI folder data sets at check time: the checker lists every sample's
// files and reads its label, so errors in a data tree (a missing channel, a missing or
// malformed label) are reported before any compute, and the stage hash covers the data.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gyrus/Ir.h"

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

}  // namespace gyrus
