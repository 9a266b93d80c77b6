// `gyrus runs ls|show|rm|gc --store DIR`: what a run store holds, and removing from it.
// The store stays plain directories (exec/include/gyrus/exec/Store.h); these commands
// read them and never load the runtime.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::exec {
class Store;
}

namespace gyrus::driver {

/// One row per stage: hash, name, kind, status, first metric, size, when, device and
/// host; `json`: one object with `stages`. Exit 0, or 1 when the store does not exist.
int runsList(const std::filesystem::path& store, bool json);

/// A stage's name, kind, dependencies, status, metrics, files and last history line.
int runsShow(const std::filesystem::path& store, const std::string& hash);

/// Removes stages (hashes or unique prefixes); a stage a process is running is refused.
int runsRemove(const std::filesystem::path& store, const std::vector<std::string>& hashes);

/// Removes every stage that none of `keep` (hashes of the stages the given experiment
/// files plan) is; with `dryRun` only lists them.
int runsCollect(const std::filesystem::path& store, const std::vector<std::string>& keep, bool dryRun);

/// A stage of `store` by its name or a unique prefix (6+ digits) of its hash; "" after
/// printing why not (none, or several: their hashes are listed).
std::string findStage(const exec::Store& store, const std::string& nameOrHash);

/// True when `store` is a run store (has stages/); otherwise prints why not.
bool storeExists(const std::filesystem::path& store);

/// A stage of a store read back from its stage.json: what export and predict start from.
struct StoredStage {
  std::string hash;
  ir::Stage stage;
  std::vector<std::string> deps;  ///< its dependencies' hashes
};
/// The stage `nameOrHash` (findStage) of the store at `storeDir`, read back; false after
/// printing why not (no store, no such stage or several, an unreadable stage.json).
bool readStoredStage(const std::filesystem::path& storeDir, const std::string& nameOrHash, StoredStage& out);

}  // namespace gyrus::driver
