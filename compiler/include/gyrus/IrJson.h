// The experiment IR as JSON, and stage identity.
//
// `gyrus emit FILE --stage=ir --json` writes an experiment with `toJson`; a run store
// holds each stage as `stage.json` (`stageToJson`), which `gyrus run-stage` reads back
// with `stageFromJson`. Every field is written, named as in the field tables
// (compiler/src/IrFields.h); the reader accepts exactly what the writer writes (a
// missing or unknown key is an error naming its JSON path).
//
// A stage's hash is the SHA-256 of its hash material: the canonical JSON of its
// identity fields (the tables mark names, absolute paths and reported metrics as not
// part of it), the IR version and its dependencies' hashes.
//
// Example:
//   std::string text = ir::toJson(experiment);
//   ir::Experiment back;
//   std::string error;
//   if (!ir::experimentFromJson(text, back, error)) ...;  // back's hashes are verified
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus::ir {

/// Version of the JSON layout (bumped when a key is renamed, added or removed).
inline constexpr int kIrJsonFormat = 2;  // 2: pipeline ops are registry names with named parameters

/// The whole experiment: `{"format": "gyrus-ir", "version": 1, "ir_version": ...,
/// "stages": [...]}`; each stage with its hash and its dependencies' hashes.
std::string toJson(const Experiment& experiment, int indent = 2);
/// One stage, self-contained: its dependencies appear by hash (`"deps": [...]`).
std::string stageToJson(const Stage& stage, const std::vector<std::string>& depHashes, int indent = 2);
/// The hashes of a stage's dependencies, in order.
std::vector<std::string> depHashes(const Stage& stage, const Experiment& experiment);

/// Reads an experiment written by `toJson`. Recomputes every hash and fails when one
/// differs from the stored one (written by another gyrus version, or edited).
bool experimentFromJson(std::string_view text, Experiment& out, std::string& error);
/// Reads a stage written by `stageToJson`; `depHashes` receives its dependencies'
/// hashes (its `deps` indices are left empty) and its stored hash is verified.
bool stageFromJson(std::string_view text, Stage& out, std::vector<std::string>& depHashes, std::string& error);

/// The canonical hash material of a stage whose dependencies have the given hashes.
std::string hashMaterial(const Stage& stage, const std::vector<std::string>& depHashes);
/// Computes every stage's hash, in order, from its hash material.
void hashStages(Experiment& experiment);

}  // namespace gyrus::ir
