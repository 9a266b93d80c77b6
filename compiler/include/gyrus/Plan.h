// Plans: the stage DAG of an experiment after sweep expansion and deduplication, and
// static cost estimates for each stage (`gyrus plan`, `gyrus emit --stage=plan`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gyrus/Ir.h"

namespace gyrus {

/// Static estimate of what one pretraining costs, from the IR alone.
struct CostEstimate {
  int64_t parameters = 0;        ///< trainable parameters (encoder + decoder/heads)
  double gflopPerStep = 0.0;     ///< forward + backward, whole batch
  double activationMiB = 0.0;    ///< activations kept for backward, whole batch
  int64_t stepsPerEpoch = 0;
  int64_t steps = 0;             ///< all epochs
};

/// Estimates a pretraining step: 3x3x3 convolutions dominate; backward costs about
/// twice the forward pass; each conv block keeps its convolution, normalisation and
/// activation outputs for backward.
CostEstimate estimateCost(const ir::PretrainStage& stage);

/// An experiment with its sweep points: `users[i]` lists the points (0-based) that
/// need stage i; `points[p]` describes point p (`base.objective = simclr()`, ...).
struct Plan {
  ir::Experiment experiment;
  std::vector<std::vector<size_t>> users;
  std::vector<std::string> points;
};

/// Deterministic print of a plan: every distinct stage with its hash, dependencies,
/// the sweep points that share it, and its estimated cost; then totals.
std::string printPlan(const Plan& plan);

/// The plan as JSON (`gyrus plan FILE --json`): `points` (the sweep points' descriptions)
/// and `stages`, each with name, kind, hash, `deps` (its dependencies' hashes), `points`
/// (1-based numbers of the points that use it) and, for a pretraining, its `cost`.
std::string planToJson(const Plan& plan);

}  // namespace gyrus
