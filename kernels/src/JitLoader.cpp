// Loading the LLVM back end (see Jit.h): the module libgyrus_kernel_llvm.so, with the
// same search and checks as every gyrus module (exec::loadModule).
#include "gyrus/AbiVersions.h"
#include "gyrus/exec/Module.h"
#include "gyrus/kernel/Jit.h"

namespace gyrus::kir {

std::unique_ptr<Jit> loadJit(std::string& error, const JitOptions& options) {
  static const exec::ModuleSpec spec{"libgyrus_kernel_llvm.so", "GYRUS_KERNEL_LLVM", "gyrus_kernel_jit_create",
                                     "kernel compiler module (LLVM)", "gyrus_kernel_llvm", kKernelJitAbiVersion};
  std::unique_ptr<Jit> jit = exec::loadModule<Jit>(spec, error);
  if (jit) jit->configure(options);
  return jit;
}

}  // namespace gyrus::kir
