// Rule pass: the memory budget. A pretraining that declares `memory` is warned when the
// estimate (parameters, gradients and AdamW state, activations at its batch) exceeds it.
#include "../CheckInternal.h"
#include "gyrus/Plan.h"

namespace gyrus::check {

void Checker::checkMemoryBudget(const ast::DeclPretrain& d, const ir::PretrainStage& p, const Bound& memory) {
  if (!memory.present) return;
  CostEstimate cost = estimateCost(p);
  double state = static_cast<double>(cost.parameters) * 4.0 * 4.0;  // weights, gradients, AdamW m and v
  double need = state + cost.activationMiB * 1024.0 * 1024.0;
  double budget = memory.value.num;
  if (need > budget) {
    auto gib = [](double b) { return ir::formatNumber(std::round(b / (1024.0 * 1024 * 1024) * 100) / 100) + " GiB"; };
    double perSample = cost.activationMiB * 1024.0 * 1024.0 / static_cast<double>(p.batch);
    auto fits = static_cast<int64_t>((budget - state) / perSample);
    Diagnostic& diag = diags_.report(
        DiagKind::MemoryBudget, memory.range,
        "pretrain '" + d.name + "' needs about " + gib(need) + " (" + gib(state) + " for parameters and optimizer " +
            "state, " + gib(need - state) + " of activations at batch " + std::to_string(p.batch) + "), more than " +
            "memory = " + std::string(sm_.text(memory.range)));
    if (fits >= 1) {
      diag.note("batch " + std::to_string(fits) + " would fit");
    } else {
      diag.note("even batch 1 does not fit: use a smaller crop or a narrower encoder");
    }
  }
}

}  // namespace gyrus::check
