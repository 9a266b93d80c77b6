// Data-parallel training (`gyrus run --ranks N`, docs/cluster.md): the process group of a
// stage's ranks, through LibTorch's c10d: Gloo when the stage runs on the CPU, NCCL when
// it runs on a GPU. The ranks meet through a c10d FileStore at StageContext::rendezvous.
//
// What it is used for (Pretrain.cpp, Trainer.cpp): rank 0's initial parameters are
// broadcast, every step's gradients are summed (each rank back-propagates its share of
// the global loss, so the sum is the gradient of the loss over the whole batch), and the
// epoch's loss sums are summed for the history. A rank that stops (an error, a kill)
// closes its connections, so the others' next collective fails instead of waiting; a
// rank that never arrives is given up after GYRUS_RANK_TIMEOUT seconds (default 300).
#pragma once

#include <c10/util/intrusive_ptr.h>
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <utility>
#include <vector>

#include "gyrus/runtime/Runtime.h"

namespace c10d {
class Backend;
}

namespace gyrus::rt {

class DataParallel {
 public:
  /// Joins the process group of `ctx` (ctx.worldSize > 1) for tensors on `device`.
  /// Throws UserError when the ranks cannot meet.
  DataParallel(const StageContext& ctx, const torch::Device& device);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// "gloo" or "nccl".
  const char* backendName() const { return nccl_ ? "nccl" : "gloo"; }
  /// Sums `tensors` (same device, float) over the ranks, in place, as one flat buffer.
  void sum(const std::vector<torch::Tensor>& tensors);
  /// Sums the gradients of `parameters` over the ranks, in place; a parameter without a
  /// gradient takes part with zeros and keeps none if every rank had none.
  void sumGradients(const std::vector<torch::Tensor>& parameters);
  /// Every rank's `local` rows of a step's batch of `batch` samples, in rank order
  /// (rank r holds shardRange(batch, r, size()) rows; the others' trailing dimensions
  /// equal `local`'s). No gradients flow through the result.
  std::vector<torch::Tensor> allGather(const torch::Tensor& local, int64_t batch);
  /// Overwrites `tensors` with rank 0's values.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  /// Returns once every rank has called it.
  void barrier();

 private:
  void wait(const char* what, const std::function<void()>& op);
  int rank_ = 0;
  int size_ = 1;
  bool nccl_ = false;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

/// The timeout for the ranks to meet and for each collective (GYRUS_RANK_TIMEOUT seconds,
/// default 300).
std::chrono::milliseconds rankTimeout();

/// Samples [begin, begin + size) of a step's batch of `batch` samples that rank `rank`
/// of `ranks` trains on: contiguous, sizes differing by at most one.
std::pair<int64_t, int64_t> shardRange(int64_t batch, int rank, int ranks);

}  // namespace gyrus::rt
