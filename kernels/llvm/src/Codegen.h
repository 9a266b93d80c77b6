// Kernel IR -> LLVM IR: one function per gather and per map pass of a program, each a
// loop nest over the output grid's z slices [zBegin, zEnd), rows and voxels, whose
// inner loop over x LLVM vectorises. Every instruction computes what Interp.cpp
// specifies, in its order and without contraction to FMA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "LlvmHeaders.h"
#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir::jit {

/// Every generated pass function: the sources (image, target, mask) on the `in` grid, the
/// outputs on the `out` grid (a map pass reads and writes its buffer's output), the slot
/// block, the displacement fields (F pointers, then F more: entry F + f is null when
/// field f is all zero, so the code may skip it), dims = (in x, y, z, out x, y, z), the draw key, and
/// the z slices to compute.
using PassFunction = void (*)(const float* srcImage, const float* srcTarget, const float* srcMask, float* outImage,
                              float* outTarget, float* outMask, const float* slots, const float* const* fields,
                              const int64_t* dims, uint64_t seed, uint32_t sample, int64_t zBegin, int64_t zEnd);

/// A generated module and the name of each pass's function (empty for a pass that is a
/// library routine: reduce, stencil).
struct Generated {
  std::unique_ptr<llvm::Module> module;
  std::vector<std::string> functions;
};

/// The name of the function of pass `index` of `program` (functions' names start with
/// `prefix`); empty for a pass that is a library routine (reduce, stencil).
std::string passFunctionName(const Program& program, size_t index, const std::string& prefix);

/// Generates `program`'s module for `machine` (its data layout, triple, CPU and features
/// on every function); function names start with `prefix`. Not yet optimised.
Generated generate(const Program& program, const std::string& prefix, llvm::LLVMContext& context,
                   llvm::TargetMachine& machine);

/// Runs LLVM's O3 pipeline, built with the target machine (so loops vectorise for it).
/// With `vectorMath`, calls of exp, log, pow, cos and sin in vectorised loops become
/// glibc libmvec's vector entry points (_ZGV*: ≤ 4 ulp, not the scalar libm's results),
/// which the JIT must then resolve (libmvec loaded).
void optimize(llvm::Module& module, llvm::TargetMachine& machine, bool vectorMath = false);

}  // namespace gyrus::kir::jit
