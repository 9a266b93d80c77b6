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
#include <c10/cuda/CUDAFunctions.h>
#define GYRUS_HAVE_NCCL 1
#endif

namespace gyrus::rt {

c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout, int deviceIndex) {
#ifdef GYRUS_HAVE_NCCL
  // NCCL's communicators are made on the current device: the rank's own GPU.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(deviceIndex));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)deviceIndex;
  return {};
#endif
}

}  // namespace gyrus::rt
