// The GPU back end's source: CUDA C++ generated from a kernel program (Kernel.h), and a
// description of every generated kernel (name, pass, parameters, block size), which is
// all a launcher needs. Compiling the source (NVRTC through dlopen) and caching CUBINs
// is gyrus_kernel_cuda's (kernels/cuda/, Nvrtc.h); this header is part of gyrus_kernel
// and needs no CUDA at all.
//
// What is generated: one `extern "C" __global__` kernel per gather and map pass (one
// thread per output voxel, x fastest, a grid-stride loop: any grid size is correct;
// voxel indices are 32-bit, as the Philox counter is, so a volume has < 2^31 voxels), and
// one per Moments and MinMax reduction (block reduction in shared memory, then atomics
// into a small accumulator; the last block to finish writes the two slots on the device
// and zeroes the accumulator again). Percentiles and the stencils have no generated
// kernel: the GPU runner runs them as library (LibTorch) operations on the device tensor
// (CudaModule::passKernel is -1 for them).
//
// Exactness: the source must be compiled with --fmad=false (cudaCompileOptions() has it)
// so that nothing is contracted to FMA; coordinates are then computed in single
// precision in the interpreter's order, bit for bit, and so are masks (nearest
// neighbour) and every value that involves no transcendental function. powf, expf,
// logf and cosf (Gamma, Bias, the Box-Muller normal of AddNoise and MulNoise) are CUDA's,
// within a few ulp of the C library's. The Philox counters are the interpreter's
// (voxelCounter), so the GPU draws the same noise. Moments accumulate in double as the
// interpreter does, in another order (the slots agree to about 1e-7 relative).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

/// One parameter of a generated kernel. Each is a pointer or a 4- or 8-byte scalar,
/// passed to cuLaunchKernel by address, in CudaKernel::args order.
enum class CudaParam {
  Slots,     ///< float*: the sample's slot block on the device (Program::slots floats),
             ///< filled by kir::bind and uploaded; reduction kernels write their two slots
  Field,     ///< const float*: displacement field `index` (3 * prod(FieldSpec::shape) floats)
  Source,    ///< const float*: the gather's source `buffer`, on the input grid
  Output,    ///< float*: the gather's output `buffer`, on the output grid
  Data,      ///< float*: the buffer `buffer` a map rewrites or a reduction reads (output grid)
  Accum,     ///< void*: the reduction's accumulator, CudaKernel::accumBytes bytes, zeroed
             ///< once when allocated (every launch leaves it zeroed again)
  InShape,   ///< int: the input grid's extent along axis `index` (0 x, 1 y, 2 z)
  OutShape,  ///< int: the output grid's extent along axis `index`
  Seed,      ///< unsigned long long: Binding::seed
  Sample,    ///< unsigned int: Binding::sample
};

struct CudaArg {
  CudaParam kind = CudaParam::Slots;
  int index = 0;                  ///< Field: the field; InShape, OutShape: the axis
  Buffer buffer = Buffer::Image;  ///< Source, Output, Data
  std::string name;               ///< the parameter's name in the source
};

/// One generated kernel. Launch it with `blockSize` threads per block (a power of two;
/// the reductions rely on it) and any number of blocks (cudaGridSize suggests one).
struct CudaKernel {
  std::string name;  ///< its extern "C" name in the module
  int pass = -1;     ///< the pass of Program::passes it runs
  PassKind kind = PassKind::Gather;
  std::vector<CudaArg> args;
  int blockSize = 256;
  size_t accumBytes = 0;  ///< reductions: the accumulator's size (CudaParam::Accum)
};

/// A program's CUDA module.
struct CudaModule {
  std::string source;               ///< CUDA C++ (for NVRTC), starting with the program's hash
  std::vector<CudaKernel> kernels;  ///< in pass order
  /// Per pass of the program: the index of its kernel in `kernels`, or -1 when the pass
  /// runs as a library operation on the device tensor (Percentiles, Stencil).
  std::vector<int> passKernel;
};

/// The CUDA module of `program`: the source and its kernels. Deterministic: the same
/// program always gives the same text.
CudaModule cudaModule(const Program& program);
/// cudaModule(program).source.
std::string cudaSource(const Program& program);

/// The options every generated module is compiled with (NVRTC's syntax, without the
/// architecture): no FMA contraction, IEEE division and square root, no flush to zero.
std::vector<std::string> cudaCompileOptions();

/// Blocks for `voxels` output voxels: one thread each, capped for reductions (whose
/// blocks each end in atomics) at 1024 blocks; at least one block.
uint32_t cudaGridSize(const CudaKernel& kernel, int64_t voxels);

}  // namespace gyrus::kir
