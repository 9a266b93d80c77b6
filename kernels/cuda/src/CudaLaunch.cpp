// Running a kernel program with the CUDA driver API through dlopen (see CudaLaunch.h).
#include "gyrus/kernel/CudaLaunch.h"

#include <dlfcn.h>

#include <mutex>

namespace gyrus::kir::cuda {

namespace {

// The driver API's types, as cuda.h declares them (handles are pointers, CUresult an
// int-sized enum, 0 on success; CUdeviceptr 64-bit).
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUmodule = void*;
using CUfunction = void*;
using CUstream = void*;
using CUdeviceptr = unsigned long long;

struct Driver {
  CUresult (*init)(unsigned) = nullptr;
  CUresult (*getErrorString)(CUresult, const char**) = nullptr;
  CUresult (*deviceGetCount)(int*) = nullptr;
  CUresult (*deviceGet)(CUdevice*, int) = nullptr;
  CUresult (*ctxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*ctxSetCurrent)(CUcontext) = nullptr;
  CUresult (*primaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*moduleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*moduleUnload)(CUmodule) = nullptr;
  CUresult (*moduleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                           void**, void**) = nullptr;
  CUresult (*memAlloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*memFree)(CUdeviceptr) = nullptr;
  CUresult (*memcpyHtoD)(CUdeviceptr, const void*, size_t) = nullptr;
  CUresult (*memcpyDtoH)(void*, CUdeviceptr, size_t) = nullptr;
  CUresult (*memcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream) = nullptr;
  CUresult (*memcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*memsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;
  CUresult (*streamSynchronize)(CUstream) = nullptr;

  void check(CUresult rc, const char* what) const {
    if (rc == 0) return;
    const char* text = nullptr;
    if (getErrorString == nullptr || getErrorString(rc, &text) != 0 || text == nullptr) text = "unknown error";
    throw DriverError(std::string("CUDA driver: ") + what + " failed: " + text + " (" + std::to_string(rc) + ")");
  }

  /// The process's driver, loaded and initialised once; throws DriverError.
  static const Driver& get() {
    static std::once_flag once;
    static Driver driver;
    static std::string failure;
    std::call_once(once, [] {
      void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        const char* e = dlerror();
        failure = std::string("the CUDA driver (libcuda.so.1) could not be loaded: ") + (e ? e : "dlopen failed");
        return;
      }
      Driver d;
      auto bind = [&](auto& fn, const char* name) {
        fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
        return fn != nullptr;
      };
      bool ok = bind(d.init, "cuInit") && bind(d.getErrorString, "cuGetErrorString") &&
                bind(d.deviceGetCount, "cuDeviceGetCount") && bind(d.deviceGet, "cuDeviceGet") &&
                bind(d.ctxGetCurrent, "cuCtxGetCurrent") && bind(d.ctxSetCurrent, "cuCtxSetCurrent") &&
                bind(d.primaryCtxRetain, "cuDevicePrimaryCtxRetain") && bind(d.moduleLoadData, "cuModuleLoadData") &&
                bind(d.moduleUnload, "cuModuleUnload") && bind(d.moduleGetFunction, "cuModuleGetFunction") &&
                bind(d.launchKernel, "cuLaunchKernel") && bind(d.memAlloc, "cuMemAlloc_v2") &&
                bind(d.memFree, "cuMemFree_v2") && bind(d.memcpyHtoD, "cuMemcpyHtoD_v2") &&
                bind(d.memcpyDtoH, "cuMemcpyDtoH_v2") && bind(d.memcpyHtoDAsync, "cuMemcpyHtoDAsync_v2") &&
                bind(d.memcpyDtoHAsync, "cuMemcpyDtoHAsync_v2") && bind(d.memsetD8, "cuMemsetD8_v2") &&
                bind(d.streamSynchronize, "cuStreamSynchronize");
      if (!ok) {
        failure = "the CUDA driver (libcuda.so.1) lacks an entry point gyrus uses";
        return;
      }
      CUresult rc = d.init(0);
      if (rc != 0) {
        const char* text = nullptr;
        d.getErrorString(rc, &text);
        failure = std::string("cuInit failed: ") + (text ? text : "unknown error");
        return;
      }
      int count = 0;
      if (d.deviceGetCount(&count) != 0 || count == 0) {
        failure = "the CUDA driver sees no device";
        return;
      }
      driver = d;
    });
    if (!failure.empty()) throw DriverError(failure);
    return driver;
  }
};

/// Makes a context current on this thread: the current one, else device 0's primary
/// context (retained for the life of the process).
const Driver& withContext() {
  const Driver& d = Driver::get();
  CUcontext ctx = nullptr;
  d.check(d.ctxGetCurrent(&ctx), "cuCtxGetCurrent");
  if (ctx != nullptr) return d;
  CUdevice dev = 0;
  d.check(d.deviceGet(&dev, 0), "cuDeviceGet");
  d.check(d.primaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  d.check(d.ctxSetCurrent(ctx), "cuCtxSetCurrent");
  return d;
}

CUdeviceptr ptr(const void* p) { return reinterpret_cast<CUdeviceptr>(p); }

const char* bufferName(Buffer b) { return b == Buffer::Image ? "image" : b == Buffer::Target ? "target" : "mask"; }

}  // namespace

struct DeviceProgram::State {
  Program program;
  CUmodule module = nullptr;
  std::vector<CUfunction> functions;  ///< per kernel
  CUdeviceptr slots = 0;
  std::vector<CUdeviceptr> fields;
  std::vector<size_t> fieldBytes;
  std::vector<CUdeviceptr> accums;  ///< per kernel; 0 for kernels without one

  ~State() {
    try {
      const Driver& d = Driver::get();
      for (CUdeviceptr p : accums)
        if (p != 0) d.memFree(p);
      for (CUdeviceptr p : fields)
        if (p != 0) d.memFree(p);
      if (slots != 0) d.memFree(slots);
      if (module != nullptr) d.moduleUnload(module);
    } catch (...) {
      // Nothing was allocated without a driver.
    }
  }
};

bool deviceAvailable(std::string* why) {
  try {
    Driver::get();
    return true;
  } catch (const DriverError& e) {
    if (why != nullptr) *why = e.what();
    return false;
  }
}

DeviceProgram::DeviceProgram(const Program& program, const CubinOptions& options)
    : compiled_(compileCubin(program, options)), state_(std::make_unique<State>()) {
  const Driver& d = withContext();
  State& s = *state_;
  s.program = program;
  d.check(d.moduleLoadData(&s.module, compiled_.cubin->data()), "cuModuleLoadData");
  for (const CudaKernel& k : compiled_.module.kernels) {
    CUfunction f = nullptr;
    d.check(d.moduleGetFunction(&f, s.module, k.name.c_str()), ("cuModuleGetFunction(" + k.name + ")").c_str());
    s.functions.push_back(f);
    CUdeviceptr accum = 0;
    if (k.accumBytes > 0) {
      d.check(d.memAlloc(&accum, k.accumBytes), "cuMemAlloc");
      d.check(d.memsetD8(accum, 0, k.accumBytes), "cuMemsetD8");
    }
    s.accums.push_back(accum);
  }
  d.check(d.memAlloc(&s.slots, sizeof(float) * static_cast<size_t>(program.slots > 0 ? program.slots : 1)), "cuMemAlloc");
  for (const FieldSpec& f : program.fields) {
    const size_t bytes = sizeof(float) * 3 * static_cast<size_t>(f.shape[0] * f.shape[1] * f.shape[2]);
    CUdeviceptr p = 0;
    d.check(d.memAlloc(&p, bytes > 0 ? bytes : sizeof(float)), "cuMemAlloc");
    s.fields.push_back(p);
    s.fieldBytes.push_back(bytes);
  }
}

DeviceProgram::~DeviceProgram() = default;

void DeviceProgram::run(Binding& binding, const DeviceBuffers& buffers, void* stream, const LibraryPass& library,
                        bool readSlots) {
  const Driver& d = Driver::get();
  State& s = *state_;
  const Program& program = s.program;
  if (binding.slots.size() != static_cast<size_t>(program.slots))
    throw DriverError("kernel run: the binding has " + std::to_string(binding.slots.size()) + " slots, the program " +
                      std::to_string(program.slots));
  if (program.slots > 0)
    d.check(d.memcpyHtoDAsync(s.slots, binding.slots.data(), sizeof(float) * binding.slots.size(), stream),
            "cuMemcpyHtoDAsync (slots)");
  for (size_t f = 0; f < s.fields.size(); ++f) {
    if (f >= binding.fields.size() || binding.fields[f].size() * sizeof(float) != s.fieldBytes[f])
      throw DriverError("kernel run: displacement field " + std::to_string(f) + " has the wrong size");
    if (s.fieldBytes[f] > 0)
      d.check(d.memcpyHtoDAsync(s.fields[f], binding.fields[f].data(), s.fieldBytes[f], stream),
              "cuMemcpyHtoDAsync (field)");
  }
  const int64_t voxels = binding.out.shape[0] * binding.out.shape[1] * binding.out.shape[2];
  const CudaModule& m = compiled_.module;
  for (size_t i = 0; i < program.passes.size(); ++i) {
    const int ki = m.passKernel[i];
    if (ki < 0) {
      if (!library)
        throw DriverError("kernel run: pass " + std::to_string(i) +
                          " has no generated kernel (percentiles or a stencil) and no library routine was given");
      library(program.passes[i], static_cast<int>(i), reinterpret_cast<void*>(s.slots), buffers, stream);
      continue;
    }
    const CudaKernel& k = m.kernels[static_cast<size_t>(ki)];
    // The values the argument array points to; reserved so that no pointer moves.
    std::vector<CUdeviceptr> pointers;
    std::vector<int> ints;
    pointers.reserve(k.args.size());
    ints.reserve(k.args.size());
    unsigned long long seed = binding.seed;
    unsigned int sample = binding.sample;
    std::vector<void*> params;
    auto pointer = [&](CUdeviceptr p, const char* what, Buffer b) {
      if (p == 0)
        throw DriverError(std::string("kernel run: ") + k.name + " needs the " + what + " " + bufferName(b) +
                          ", and DeviceBuffers has none");
      pointers.push_back(p);
      params.push_back(&pointers.back());
    };
    for (const CudaArg& a : k.args) {
      switch (a.kind) {
        case CudaParam::Slots: pointer(s.slots, "slot block", Buffer::Image); break;
        case CudaParam::Field: pointer(s.fields[static_cast<size_t>(a.index)], "field of", Buffer::Image); break;
        case CudaParam::Source: pointer(ptr(buffers.source(a.buffer)), "source", a.buffer); break;
        case CudaParam::Output:
        case CudaParam::Data: pointer(ptr(buffers.of(a.buffer)), "output", a.buffer); break;
        case CudaParam::Accum: pointer(s.accums[static_cast<size_t>(ki)], "accumulator of", Buffer::Image); break;
        case CudaParam::InShape:
          ints.push_back(static_cast<int>(binding.in.shape[static_cast<size_t>(a.index)]));
          params.push_back(&ints.back());
          break;
        case CudaParam::OutShape:
          ints.push_back(static_cast<int>(binding.out.shape[static_cast<size_t>(a.index)]));
          params.push_back(&ints.back());
          break;
        case CudaParam::Seed: params.push_back(&seed); break;
        case CudaParam::Sample: params.push_back(&sample); break;
      }
    }
    const unsigned grid = cudaGridSize(k, voxels);
    d.check(d.launchKernel(s.functions[static_cast<size_t>(ki)], grid, 1, 1, static_cast<unsigned>(k.blockSize), 1, 1,
                           0, stream, params.data(), nullptr),
            ("cuLaunchKernel(" + k.name + ")").c_str());
  }
  if (readSlots && program.slots > 0) {
    d.check(d.memcpyDtoHAsync(binding.slots.data(), s.slots, sizeof(float) * binding.slots.size(), stream),
            "cuMemcpyDtoHAsync (slots)");
    d.check(d.streamSynchronize(stream), "cuStreamSynchronize");
  }
}

void* deviceAlloc(size_t bytes) {
  const Driver& d = withContext();
  CUdeviceptr p = 0;
  d.check(d.memAlloc(&p, bytes > 0 ? bytes : 1), "cuMemAlloc");
  return reinterpret_cast<void*>(p);
}

void deviceFree(void* pointer) {
  if (pointer != nullptr) Driver::get().memFree(ptr(pointer));
}

void copyToDevice(void* device, const void* host, size_t bytes) {
  const Driver& d = withContext();
  d.check(d.memcpyHtoD(ptr(device), host, bytes), "cuMemcpyHtoD");
}

void copyToHost(void* host, const void* device, size_t bytes) {
  const Driver& d = withContext();
  d.check(d.memcpyDtoH(host, ptr(device), bytes), "cuMemcpyDtoH");
}

void synchronize(void* stream) {
  const Driver& d = Driver::get();
  d.check(d.streamSynchronize(stream), "cuStreamSynchronize");
}

}  // namespace gyrus::kir::cuda
