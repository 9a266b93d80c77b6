// NVRTC through dlopen, and the CUBIN cache: the part of the GPU back end that compiles
// the CUDA C++ of kir::cudaModule (Cuda.h) without a GPU and without linking CUDA. The
// library (gyrus_kernel_cuda) links nothing but libdl, so every binary that uses it
// starts where no CUDA exists and says so only when asked to compile.
//
// Where NVRTC is looked for, in order (the first that loads wins):
//   $GYRUS_NVRTC                       a path to libnvrtc.so.* (when set, the only one tried)
//   libnvrtc.so.13, libnvrtc.so.12     by soname (LD_LIBRARY_PATH, the loader's cache)
//   $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64
//   beside a LibTorch already loaded in the process (the wheel's ../../nvidia/cu13/lib,
//   ../../nvidia/cuda_nvrtc/lib)
//   the torch wheel's environment: $GYRUS_TORCH_VENV, ~/.cache/gyrus/torch-* (newest first),
//   /opt/torch/.venv (lib/python3.*/site-packages/nvidia/{cu13,cuda_nvrtc}/lib)
//
// Example:
//   kir::CudaModule m = kir::cudaModule(kernel.program);
//   std::string ptx = kir::cuda::Nvrtc::get().ptx(m.source);          // for printing
//   kir::cuda::CompiledModule c = kir::cuda::compileCubin(kernel.program);  // to run (cached)
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gyrus/Ir.h"
#include "gyrus/kernel/Cuda.h"

namespace gyrus::kir::cuda {

/// NVRTC could not be loaded: the message lists every path tried.
class NvrtcNotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// NVRTC rejected a source: the message has NVRTC's error and its log; `log()` the log alone.
class CompileError : public std::runtime_error {
 public:
  CompileError(const std::string& message, std::string log) : std::runtime_error(message), log_(std::move(log)) {}
  const std::string& log() const { return log_; }

 private:
  std::string log_;
};

/// The default architecture of CUBINs (the GPU host's H200), and of PTX (its virtual one).
inline constexpr const char* kCubinArch = "sm_90";
inline constexpr const char* kPtxArch = "compute_90";

/// NVRTC, loaded once per process. Thread-safe.
class Nvrtc {
 public:
  /// The process's NVRTC, loaded on first use; throws NvrtcNotFound.
  static const Nvrtc& get();
  /// The library file loaded.
  const std::string& path() const { return path_; }
  /// NVRTC's version, "major.minor".
  const std::string& version() const { return version_; }
  /// PTX of `source` for the virtual architecture `arch` (e.g. compute_90), compiled with
  /// kir::cudaCompileOptions(). Throws CompileError.
  std::string ptx(const std::string& source, const std::string& arch = kPtxArch,
                  const std::string& name = "gyrus.cu") const;
  /// A CUBIN (an ELF image) of `source` for the real architecture `arch` (e.g. sm_90).
  /// Throws CompileError.
  std::vector<char> cubin(const std::string& source, const std::string& arch = kCubinArch,
                          const std::string& name = "gyrus.cu") const;

  struct Api;

 private:
  Nvrtc() = default;
  std::string compile(const std::string& source, const std::string& arch, const std::string& name, bool cubin) const;
  std::string path_, version_;
  std::shared_ptr<const Api> api_;
};

/// Where compiled kernels are cached: $GYRUS_KERNEL_CACHE, else ~/.cache/gyrus/kernels
/// (the CPU back end's folder too, Jit.h). CUBINs are `<key>.cubin` there.
std::string kernelCacheDir();

/// The cache key of a CUBIN: SHA-256 of the generated source (which starts with the
/// program's kir::hash, and changes with the generator), NVRTC's version, the
/// architecture and the compile options.
std::string cubinCacheKey(const std::string& source, const std::string& nvrtcVersion, const std::string& arch);

struct CubinOptions {
  std::string arch = kCubinArch;
  std::string cacheDir;  ///< empty: kernelCacheDir()
  bool disk = true;      ///< read and write the on-disk cache
  bool memory = true;    ///< read and write the process's in-memory cache
  CubinOptions& withArch(std::string a) { arch = std::move(a); return *this; }
  CubinOptions& withCacheDir(std::string d) { cacheDir = std::move(d); return *this; }
  CubinOptions& withDisk(bool d) { disk = d; return *this; }
  CubinOptions& withMemory(bool m) { memory = m; return *this; }
};

/// A program's module compiled for the GPU.
struct CompiledModule {
  CudaModule module;  ///< the source and the kernels' descriptions
  std::string key;    ///< cubinCacheKey
  std::shared_ptr<const std::vector<char>> cubin;
  enum class Origin { Compiled, Memory, Disk } origin = Origin::Compiled;
};

/// The CUBIN of `program`: from the in-memory cache, else the on-disk one (a file that
/// is not a complete, matching CUBIN record is ignored and rewritten), else NVRTC (then
/// written to disk atomically: a temporary file renamed). Throws NvrtcNotFound,
/// CompileError; a cache folder that cannot be written only loses the disk copy.
CompiledModule compileCubin(const Program& program, const CubinOptions& options = {});

/// The PTX of every GPU kernel of `experiment` (`gyrus emit --stage=ptx`): the kernel
/// programs of every stage and role as kir::printKernels enumerates them, each distinct
/// program once, as one module preceded by a line
/// `// kernel <hash, 16 hex digits> <stage> <role>[ segment i/n]`. Throws NvrtcNotFound,
/// CompileError (a bug of the generator).
std::string printPtx(const ir::Experiment& experiment, const std::string& arch = kPtxArch);
/// The same modules as CUDA C++ (`gyrus emit --stage=cuda`; needs no NVRTC).
std::string printCuda(const ir::Experiment& experiment);

/// Whether `bytes` starts with the ELF magic (a CUBIN is an ELF image).
bool isElf(const std::vector<char>& bytes);

}  // namespace gyrus::kir::cuda
