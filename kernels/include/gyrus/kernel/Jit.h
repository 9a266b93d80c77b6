// The CPU back end of the kernel IR: a program compiled to native code through LLVM 14's
// ORC JIT, behind an interface with no LLVM type. The code generator lives in the module
// libgyrus_kernel_llvm.so (next to the gyrus executable); `loadJit` finds and loads it
// with dlopen, so nothing that does not compile kernels pays for LLVM.
//
// Compiled code computes exactly what the reference interpreter (`kir::interpret`)
// computes: gather and map passes are generated code (one function each, an inner loop
// over x that LLVM vectorises), coordinates in single precision in the interpreter's
// order without FMA contraction (nearest-neighbour masks agree bit for bit), Philox
// draws with the interpreter's counters, exp/log/pow/cos from the C library; reduce and
// stencil passes call the library routines `kir::runReduce` and `kir::runStencil`.
//
// Compiled programs are cached in memory (keyed by `kir::hash`) and on disk: the object
// file, keyed by the program's hash, the code generator's version, the LLVM version and
// the host CPU and its features, in $GYRUS_KERNEL_CACHE (default ~/.cache/gyrus/kernels).
//
// Example:
//   std::string error;
//   std::unique_ptr<kir::Jit> jit = kir::loadJit(error);
//   if (!jit) fail(error);
//   kir::Result r = kir::apply(segments, grid, data, nullptr, seed, sample,
//                              jit->runner(kir::RunOptions().withThreads(8)));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

/// A parallel loop the caller provides (e.g. LibTorch's at::parallel_for): it must call
/// body(begin, end) on chunks that cover [0, n) once each, possibly concurrently.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body)>;

/// How a compiled program spreads its generated passes over threads: the output grid's
/// z slices are split among them. Results do not depend on the split.
struct RunOptions {
  /// Threads (std::thread) over z slices; 1 runs on the calling thread. Ignored when
  /// `parallelFor` is set.
  int threads = 1;
  /// The caller's parallel loop over z slices, instead of threads of our own.
  ParallelFor parallelFor;

  RunOptions& withThreads(int n) {
    threads = n;
    return *this;
  }
  RunOptions& withParallelFor(ParallelFor f) {
    parallelFor = std::move(f);
    return *this;
  }
};

/// Where a compiled program's code came from.
enum class CodeSource {
  Compiled,     ///< generated, optimised and compiled now (then written to the disk cache)
  MemoryCache,  ///< compiled earlier by this Jit
  DiskCache,    ///< the object file of the disk cache, loaded
};

/// A program as native code. Immutable: several threads may run it at once on their own
/// bindings and buffers.
class CompiledProgram {
 public:
  virtual ~CompiledProgram() = default;
  /// Runs every pass of the program as `kir::interpret` does; `binding.slots` receives
  /// the reductions. Throws std::invalid_argument when the buffers or the binding do not
  /// fit the program (a missing output, a field of the wrong size, a volume of 2^31
  /// voxels or more).
  virtual void run(Binding& binding, const Buffers& buffers, const RunOptions& options = {}) const = 0;
  /// The program's hash (`kir::hash`).
  virtual const std::string& hash() const = 0;
  /// Where the code came from, and how long it took to get it (ms): generation,
  /// optimisation and compilation when compiled, reading and linking when loaded.
  virtual CodeSource source() const = 0;
  virtual double compileMs() const = 0;
};

/// Settings of a Jit.
struct JitOptions {
  /// The disk cache's directory; empty: $GYRUS_KERNEL_CACHE, else ~/.cache/gyrus/kernels.
  std::string cacheDir;
  /// Whether compiled object files are read from and written to the disk cache.
  bool diskCache = true;

  JitOptions& withCacheDir(std::string dir) {
    cacheDir = std::move(dir);
    return *this;
  }
  JitOptions& withDiskCache(bool on) {
    diskCache = on;
    return *this;
  }
};

/// The compiler: programs to native code, with its caches. Thread-safe.
class Jit {
 public:
  virtual ~Jit() = default;
  /// Replaces the settings (before the first compile, usually).
  virtual void configure(const JitOptions& options) = 0;
  /// The compiled program, from the memory cache, the disk cache, or compiled now.
  /// Throws std::runtime_error when LLVM fails (a bug: every valid program compiles).
  virtual std::shared_ptr<const CompiledProgram> compile(const Program& program) = 0;
  std::shared_ptr<const CompiledProgram> compile(const Kernel& kernel) { return compile(kernel.program); }
  /// The optimised LLVM IR of the program, as text (`gyrus emit --stage=llvm`).
  virtual std::string llvmIr(const Program& program) = 0;
  /// What code is generated for: LLVM's version, the target triple, the CPU and its
  /// features (part of the disk cache's key).
  virtual std::string target() const = 0;
  /// The disk cache's directory (empty when it is off).
  virtual std::string cacheDirectory() const = 0;
  /// A back end for `kir::apply`: compiles each segment (once: the memory cache) and
  /// runs it. The Jit must outlive the Runner.
  Runner runner(RunOptions options = {}) {
    return [this, options](const Kernel& kernel, Binding& binding, const Buffers& buffers) {
      compile(kernel.program)->run(binding, buffers, options);
    };
  }
};

/// Finds the module libgyrus_kernel_llvm.so ($GYRUS_KERNEL_LLVM, else next to the
/// executable, else ../lib/gyrus/) and creates its Jit. Returns null with `error` set when
/// the module is missing, not a gyrus module, or built from other headers.
std::unique_ptr<Jit> loadJit(std::string& error, const JitOptions& options = {});

/// The Jit linked in directly (the static library gyrus_kernel_codegen: tests, tools
/// that link LLVM anyway).
std::unique_ptr<Jit> createJit(const JitOptions& options = {});

}  // namespace gyrus::kir

/// The module's one export: a new Jit, or null when `abiVersion` is not the one the module
/// was built with (gyrus/AbiVersions.h, kKernelJitAbiVersion).
extern "C" gyrus::kir::Jit* gyrus_kernel_jit_create(int abiVersion);
