// The module libgyrus_kernel_llvm.so: exports only gyrus_kernel_jit_create (Jit.h);
// everything else has hidden visibility.
#include "gyrus/AbiVersions.h"
#include "gyrus/kernel/Jit.h"

extern "C" __attribute__((visibility("default"))) gyrus::kir::Jit* gyrus_kernel_jit_create(int abiVersion) {
  if (abiVersion != gyrus::kKernelJitAbiVersion) return nullptr;
  return gyrus::kir::createJit().release();
}
