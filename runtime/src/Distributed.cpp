// Data-parallel training's process group (see Distributed.h).
#include "Distributed.h"

// LibTorch's CMake configuration defines USE_C10D_GLOO; the Gloo headers are Debian's
// libgloo-dev (the wheel has the library inside libtorch_cpu, not its headers).
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define GYRUS_HAVE_GLOO 1
#endif

#include <cstdlib>
#include <string>

#include "Errors.h"

namespace gyrus::rt {

// DistributedNccl.cpp: the NCCL backend (in its own unit: its headers need the CUDA
// toolkit's nccl.h); null when this build has none.
c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout, int deviceIndex);

std::chrono::milliseconds rankTimeout() {
  long seconds = 300;
  if (const char* env = std::getenv("GYRUS_RANK_TIMEOUT")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) seconds = v;
  }
  return std::chrono::milliseconds(seconds * 1000);
}

std::pair<int64_t, int64_t> shardRange(int64_t batch, int rank, int ranks) {
  int64_t begin = batch * rank / ranks, end = batch * (rank + 1) / ranks;
  return {begin, end - begin};
}

#ifdef GYRUS_HAVE_GLOO
namespace {

// The network device Gloo binds to: GLOO_SOCKET_IFNAME's interface when set; the
// loopback when every rank runs on this machine (launched by gyrus, or a Slurm task on
// one node); otherwise the address this machine's hostname resolves to.
std::shared_ptr<::gloo::transport::Device> glooDevice() {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  const char* nodes = std::getenv("SLURM_NNODES");
  if (nodes != nullptr && std::atoi(nodes) > 1) return c10d::ProcessGroupGloo::createDefaultDevice();
  return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
}

}  // namespace
#endif

DataParallel::DataParallel(const StageContext& ctx, const torch::Device& device)
    : rank_(ctx.rank), size_(ctx.worldSize), nccl_(device.is_cuda()) {
  if (ctx.rendezvous.empty()) throw std::logic_error("DataParallel: no rendezvous");
  const auto timeout = rankTimeout();
  try {
    auto store = c10::make_intrusive<c10d::FileStore>(ctx.rendezvous, size_);
    store->setTimeout(timeout);
    if (nccl_) {
      backend_ = makeNcclBackend(store, rank_, size_, timeout, device.has_index() ? device.index() : 0);
      if (!backend_)
        throw UserError("this runtime was built without NCCL, which data-parallel training on a GPU needs; run with "
                        "--device cpu, or --ranks 1");
    } else {
#ifdef GYRUS_HAVE_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(glooDevice());
      options->threads = 1;
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, size_, options);
#else
      throw UserError("this runtime was built without the Gloo headers (Debian's libgloo-dev), which "
                      "data-parallel training on a CPU needs: install them and rebuild, or run with --ranks 1");
#endif
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    throw UserError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
                    ": the ranks did not meet (rendezvous " + ctx.rendezvous + ", timeout " +
                    std::to_string(timeout.count() / 1000) + " s; GYRUS_RANK_TIMEOUT sets it): " + e.what());
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::wait(const char* what, const std::function<void()>& op) {
  try {
    op();
  } catch (const std::exception& e) {
    // Another rank stopped (its own error is reported by it) or timed out.
    throw UserError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": " + what +
                    " failed: another rank stopped or did not answer within " +
                    std::to_string(rankTimeout().count() / 1000) + " s (" + e.what() + ")");
  }
}

void DataParallel::sum(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& t : tensors) flat.push_back(t.reshape({-1}));
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  wait("summing over the ranks", [&] {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    backend_->allreduce(buffer, options)->wait();
  });
  int64_t at = 0;
  for (const torch::Tensor& t : tensors) {
    t.view({-1}).copy_(buffer[0].narrow(0, at, t.numel()));
    at += t.numel();
  }
}

void DataParallel::sumGradients(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> grads;
  std::vector<torch::Tensor> had;  // 1 where this rank has a gradient
  for (const torch::Tensor& p : parameters) {
    if (!p.requires_grad()) continue;
    bool defined = p.grad().defined();
    if (!defined) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
    had.push_back(torch::full({1}, defined ? 1.0f : 0.0f, p.options().dtype(torch::kFloat)));
  }
  std::vector<torch::Tensor> all = grads;
  torch::Tensor flags = torch::cat(had);
  all.push_back(flags);
  sum(all);
  // A parameter no rank had a gradient for keeps none (the optimiser skips it, as it
  // does in one process).
  auto f = flags.to(torch::kCPU);
  size_t i = 0;
  for (const torch::Tensor& p : parameters) {
    if (!p.requires_grad()) continue;
    if (f[static_cast<int64_t>(i)].item<float>() == 0.0f) p.mutable_grad() = torch::Tensor();
    ++i;
  }
}

std::vector<torch::Tensor> DataParallel::allGather(const torch::Tensor& local, int64_t batch) {
  // Gloo and NCCL gather tensors of one shape: each rank's rows padded to the largest shard.
  const int64_t rows = (batch + size_ - 1) / size_;
  std::vector<int64_t> shape = local.sizes().vec();
  shape[0] = rows;
  torch::Tensor padded = torch::zeros(shape, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local.detach());
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < size_; ++r) outputs[0].push_back(torch::empty_like(padded));
  std::vector<torch::Tensor> inputs{padded};
  wait("gathering the ranks' embeddings", [&] { backend_->allgather(outputs, inputs)->wait(); });
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < size_; ++r) parts.push_back(outputs[0][static_cast<size_t>(r)].narrow(0, 0, shardRange(batch, r, size_).second));
  return parts;
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& t : tensors) flat.push_back(t.detach().reshape({-1}).to(torch::kFloat));
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  wait("taking rank 0's parameters", [&] {
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    backend_->broadcast(buffer, options)->wait();
  });
  int64_t at = 0;
  torch::NoGradGuard noGrad;
  for (const torch::Tensor& t : tensors) {
    t.detach().view({-1}).copy_(buffer[0].narrow(0, at, t.numel()));
    at += t.numel();
  }
}

void DataParallel::barrier() {
  wait("waiting for the other ranks", [&] { backend_->barrier()->wait(); });
}

}  // namespace gyrus::rt
