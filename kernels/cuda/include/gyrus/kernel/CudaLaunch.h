// Running a kernel program on a GPU: the CUBIN of compileCubin (Nvrtc.h) loaded with the
// CUDA driver API, which is reached through dlopen("libcuda.so.1") like NVRTC, so nothing
// here links CUDA. It works on raw device pointers and a stream handle (a CUstream, the
// same thing as a cudaStream_t); the runtime's GPU runner wraps it with LibTorch tensors
// and c10::cuda::getCurrentCUDAStream(), and runs the passes without a generated kernel
// (Percentiles, stencils) as LibTorch operations through the LibraryPass callback.
//
// Example (device pointers from cuMemAlloc or tensors' data_ptr()):
//   kir::cuda::DeviceProgram gpu(kernel.program);      // compiles (cached) and loads
//   kir::Binding b = kir::bind(kernel, grid, seed, sample);
//   kir::cuda::DeviceBuffers buf;
//   buf.image = dImage; buf.outImage = dOut;
//   gpu.run(b, buf, stream);                            // asynchronous on `stream`
//
// Status: written against the driver API's documentation and compiled here; it has not
// run on a GPU yet (the development machines have none). The device test in
// tests/kernel/CudaTests.cpp skips without a GPU.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gyrus/kernel/Nvrtc.h"

namespace gyrus::kir::cuda {

/// The CUDA driver is missing, has no device, or a driver call failed (the message
/// names the call and the driver's error).
class DriverError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Whether the CUDA driver loads and sees a device; `why` receives the reason when not.
bool deviceAvailable(std::string* why = nullptr);

/// Device pointers of one run: sources on the binding's input grid, outputs on its
/// output grid (null for what the program does not read or write).
struct DeviceBuffers {
  const void* image = nullptr;
  const void* mask = nullptr;
  const void* target = nullptr;  ///< a later segment's target source
  void* outImage = nullptr;
  void* outTarget = nullptr;
  void* outMask = nullptr;
  const void* source(Buffer b) const { return b == Buffer::Image ? image : b == Buffer::Target ? target : mask; }
  void* of(Buffer b) const { return b == Buffer::Image ? outImage : b == Buffer::Target ? outTarget : outMask; }
};

/// A program loaded into a CUDA context, with the device memory its kernels need besides
/// the buffers (the slot block, the displacement fields, one accumulator per reduction).
/// Runs of one DeviceProgram must be ordered (one stream, or synchronised): they share
/// that memory.
class DeviceProgram {
 public:
  /// Compiles (compileCubin, cached) and loads the module into the current context;
  /// when the thread has none, device 0's primary context (the one the CUDA runtime and
  /// LibTorch use) is made current. Throws DriverError, NvrtcNotFound, CompileError.
  explicit DeviceProgram(const Program& program, const CubinOptions& options = {});
  ~DeviceProgram();
  DeviceProgram(const DeviceProgram&) = delete;
  DeviceProgram& operator=(const DeviceProgram&) = delete;

  /// A pass without a generated kernel (CudaModule::passKernel is -1): its index, the
  /// device slot block (Program::slots floats; a reduction writes its two there), the
  /// buffers and the stream.
  using LibraryPass =
      std::function<void(const Pass& pass, int index, void* deviceSlots, const DeviceBuffers& buffers, void* stream)>;

  /// Runs every pass in order on `stream` (null: the default stream), asynchronously:
  /// uploads the binding's slots and fields (the host copies may be reused on return),
  /// launches each kernel with the arguments its CudaKernel lists, and hands the other
  /// passes to `library` (a program that has one and no callback throws DriverError).
  /// With `readSlots`, waits for the stream and copies the slots back into
  /// `binding.slots` (the reductions' values).
  void run(Binding& binding, const DeviceBuffers& buffers, void* stream, const LibraryPass& library = {},
           bool readSlots = false);

  const CudaModule& module() const { return compiled_.module; }
  const CompiledModule& compiled() const { return compiled_; }

  struct State;

 private:
  CompiledModule compiled_;
  std::unique_ptr<State> state_;
};

/// Device memory helpers for tests and tools that have no LibTorch (synchronous).
void* deviceAlloc(size_t bytes);
void deviceFree(void* pointer);
void copyToDevice(void* device, const void* host, size_t bytes);
void copyToHost(void* host, const void* device, size_t bytes);
/// Waits for `stream` (null: the default stream).
void synchronize(void* stream);

}  // namespace gyrus::kir::cuda
