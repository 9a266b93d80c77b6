// The NCCL backend of data-parallel training on GPUs (see Distributed.h). In its own unit:
// LibTorch's ProcessGroupNCCL.hpp needs USE_C10D_NCCL and the CUDA toolkit's nccl.h;
// without them this build trains data-parallel on CPUs only.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#if __has_include(<nccl.h>)
#ifndef USE_C10D_NCCL  // LibTorch's CMake configuration defines it for a CUDA build
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define GYRUS_HAVE_NCCL 1
#endif

namespace gyrus::rt {

c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout) {
#ifdef GYRUS_HAVE_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  return {};
#endif
}

}  // namespace gyrus::rt
