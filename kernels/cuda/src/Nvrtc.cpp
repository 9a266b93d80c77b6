// NVRTC through dlopen and the CUBIN cache (see Nvrtc.h).
#include "gyrus/kernel/Nvrtc.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "gyrus/Sha256.h"

namespace fs = std::filesystem;

namespace gyrus::kir::cuda {

// The few entry points of nvrtc.h used here, declared by hand (NVRTC's C API has been
// stable since CUDA 7); nvrtcResult is an int-sized enum, 0 on success.
struct Nvrtc::Api {
  using Program = struct NvrtcProgramOpaque*;
  void* handle = nullptr;
  const char* (*getErrorString)(int) = nullptr;
  int (*version)(int*, int*) = nullptr;
  int (*createProgram)(Program*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
  int (*destroyProgram)(Program*) = nullptr;
  int (*compileProgram)(Program, int, const char* const*) = nullptr;
  int (*getPTXSize)(Program, size_t*) = nullptr;
  int (*getPTX)(Program, char*) = nullptr;
  int (*getCUBINSize)(Program, size_t*) = nullptr;
  int (*getCUBIN)(Program, char*) = nullptr;
  int (*getProgramLogSize)(Program, size_t*) = nullptr;
  int (*getProgramLog)(Program, char*) = nullptr;
};

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

/// Folders of LibTorch libraries already loaded in this process.
int collectTorch(struct dl_phdr_info* info, size_t, void* data) {
  auto* dirs = static_cast<std::vector<std::string>*>(data);
  if (info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') return 0;
  fs::path p(info->dlpi_name);
  std::string file = p.filename().string();
  if (file == "libtorch.so" || file == "libtorch_cuda.so" || file == "libc10.so") dirs->push_back(p.parent_path().string());
  return 0;
}

/// The NVRTC libraries of a torch wheel's environment.
void venvCandidates(const fs::path& venv, std::vector<std::string>& out) {
  std::error_code ec;
  fs::path lib = venv / "lib";
  if (!fs::is_directory(lib, ec)) return;
  std::vector<fs::path> pythons;
  for (const fs::directory_entry& e : fs::directory_iterator(lib, ec))
    if (e.path().filename().string().rfind("python3", 0) == 0) pythons.push_back(e.path());
  std::sort(pythons.begin(), pythons.end());
  for (const fs::path& py : pythons)
    for (const char* sub : {"nvidia/cu13/lib/libnvrtc.so.13", "nvidia/cuda_nvrtc/lib/libnvrtc.so.13",
                            "nvidia/cuda_nvrtc/lib/libnvrtc.so.12"})
      out.push_back((py / "site-packages" / sub).string());
}

std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (std::string p = env("GYRUS_NVRTC"); !p.empty()) return {p};
  c.push_back("libnvrtc.so.13");
  c.push_back("libnvrtc.so.12");
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (std::string home = env(var); !home.empty()) c.push_back(home + "/lib64/libnvrtc.so.13");
  c.push_back("/usr/local/cuda/lib64/libnvrtc.so.13");
  c.push_back("/usr/local/cuda/lib64/libnvrtc.so");
  std::vector<std::string> torchDirs;
  dl_iterate_phdr(collectTorch, &torchDirs);
  for (const std::string& d : torchDirs) {
    c.push_back(d + "/../../nvidia/cu13/lib/libnvrtc.so.13");
    c.push_back(d + "/../../nvidia/cuda_nvrtc/lib/libnvrtc.so.13");
    c.push_back(d + "/../../nvidia/cuda_nvrtc/lib/libnvrtc.so.12");
  }
  std::vector<fs::path> venvs;
  if (std::string v = env("GYRUS_TORCH_VENV"); !v.empty()) venvs.emplace_back(v);
  if (std::string home = env("HOME"); !home.empty()) {
    std::error_code ec;
    fs::path cache = fs::path(home) / ".cache/gyrus";
    std::vector<fs::path> found;
    if (fs::is_directory(cache, ec))
      for (const fs::directory_entry& e : fs::directory_iterator(cache, ec))
        if (e.path().filename().string().rfind("torch-", 0) == 0) found.push_back(e.path());
    std::sort(found.begin(), found.end());
    venvs.insert(venvs.end(), found.rbegin(), found.rend());
  }
  venvs.emplace_back("/opt/torch/.venv");
  for (const fs::path& v : venvs) venvCandidates(v, c);
  std::vector<std::string> unique;
  for (const std::string& s : c)
    if (std::find(unique.begin(), unique.end(), s) == unique.end()) unique.push_back(s);
  return unique;
}

template <typename F>
bool bind(void* handle, F& fn, const char* name) {
  fn = reinterpret_cast<F>(dlsym(handle, name));
  return fn != nullptr;
}

std::shared_ptr<Nvrtc::Api> loadApi(const std::string& path, std::string& why) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    why = e ? e : "dlopen failed";
    return nullptr;
  }
  auto api = std::make_shared<Nvrtc::Api>();
  api->handle = h;
  bool ok = bind(h, api->getErrorString, "nvrtcGetErrorString") && bind(h, api->version, "nvrtcVersion") &&
            bind(h, api->createProgram, "nvrtcCreateProgram") && bind(h, api->destroyProgram, "nvrtcDestroyProgram") &&
            bind(h, api->compileProgram, "nvrtcCompileProgram") && bind(h, api->getPTXSize, "nvrtcGetPTXSize") &&
            bind(h, api->getPTX, "nvrtcGetPTX") && bind(h, api->getCUBINSize, "nvrtcGetCUBINSize") &&
            bind(h, api->getCUBIN, "nvrtcGetCUBIN") && bind(h, api->getProgramLogSize, "nvrtcGetProgramLogSize") &&
            bind(h, api->getProgramLog, "nvrtcGetProgramLog");
  if (!ok) {
    why = "not NVRTC (an entry point is missing)";
    dlclose(h);
    return nullptr;
  }
  return api;
}

}  // namespace

const Nvrtc& Nvrtc::get() {
  static std::once_flag once;
  static std::unique_ptr<Nvrtc> instance;
  static std::string failure;
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& path : candidates()) {
      std::string why;
      std::shared_ptr<Api> api = loadApi(path, why);
      if (!api) {
        tried += "\n  " + path + ": " + why;
        continue;
      }
      int major = 0, minor = 0;
      api->version(&major, &minor);
      instance.reset(new Nvrtc());
      instance->api_ = std::move(api);
      Dl_info info{};
      std::string loaded = path;
      if (dladdr(reinterpret_cast<void*>(instance->api_->version), &info) != 0 && info.dli_fname != nullptr)
        loaded = info.dli_fname;
      instance->path_ = loaded;
      instance->version_ = std::to_string(major) + "." + std::to_string(minor);
      return;
    }
    failure = "NVRTC (CUDA's runtime compiler, libnvrtc.so) could not be loaded; tried:" + tried +
              "\nset GYRUS_NVRTC to the path of libnvrtc.so.13 (in a CUDA toolkit's lib64, or the torch wheel's "
              "nvidia/cu13/lib)";
  });
  if (!instance) throw NvrtcNotFound(failure);
  return *instance;
}

std::string Nvrtc::compile(const std::string& source, const std::string& arch, const std::string& name,
                           bool cubin) const {
  const Api& a = *api_;
  Api::Program prog = nullptr;
  auto check = [&](int rc, const char* what) {
    if (rc != 0) {
      std::string msg = std::string("NVRTC ") + what + ": " + a.getErrorString(rc);
      if (prog != nullptr) a.destroyProgram(&prog);
      throw CompileError(msg, "");
    }
  };
  check(a.createProgram(&prog, source.c_str(), name.c_str(), 0, nullptr, nullptr), "nvrtcCreateProgram");
  std::vector<std::string> options = cudaCompileOptions();
  options.push_back("--gpu-architecture=" + arch);
  std::vector<const char*> argv;
  for (const std::string& o : options) argv.push_back(o.c_str());
  int rc = a.compileProgram(prog, static_cast<int>(argv.size()), argv.data());
  size_t logSize = 0;
  std::string log;
  if (a.getProgramLogSize(prog, &logSize) == 0 && logSize > 1) {
    log.resize(logSize);
    a.getProgramLog(prog, log.data());
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }
  if (rc != 0) {
    std::string msg = "NVRTC could not compile " + name + " for " + arch + " (" + a.getErrorString(rc) + ")";
    if (!log.empty()) msg += ":\n" + log;
    a.destroyProgram(&prog);
    throw CompileError(msg, log);
  }
  size_t size = 0;
  std::string out;
  if (cubin) {
    check(a.getCUBINSize(prog, &size), "nvrtcGetCUBINSize");
    out.resize(size);
    check(a.getCUBIN(prog, out.data()), "nvrtcGetCUBIN");
  } else {
    check(a.getPTXSize(prog, &size), "nvrtcGetPTXSize");
    out.resize(size);
    check(a.getPTX(prog, out.data()), "nvrtcGetPTX");
    while (!out.empty() && out.back() == '\0') out.pop_back();
  }
  a.destroyProgram(&prog);
  return out;
}

std::string Nvrtc::ptx(const std::string& source, const std::string& arch, const std::string& name) const {
  return compile(source, arch, name, false);
}

std::vector<char> Nvrtc::cubin(const std::string& source, const std::string& arch, const std::string& name) const {
  std::string bytes = compile(source, arch, name, true);
  return {bytes.begin(), bytes.end()};
}

std::string kernelCacheDir() {
  if (std::string d = env("GYRUS_KERNEL_CACHE"); !d.empty()) return d;
  if (std::string home = env("HOME"); !home.empty()) return home + "/.cache/gyrus/kernels";
  return (fs::temp_directory_path() / "gyrus-kernels").string();
}

std::string cubinCacheKey(const std::string& source, const std::string& nvrtcVersion, const std::string& arch) {
  ir::Sha256 h;
  h.update("gyrus-cubin 1\nnvrtc ").update(nvrtcVersion).update("\narch ").update(arch).update("\noptions");
  for (const std::string& o : cudaCompileOptions()) h.update(" ").update(o);
  h.update("\n").update(source);
  return h.hex();
}

bool isElf(const std::vector<char>& bytes) {
  return bytes.size() >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F';
}

namespace {

// The on-disk record: a header line "gyrus-cubin 1 <key> <size> <sha256 of the image>",
// then the image. Anything else (a truncated write, another version) is a miss.
constexpr const char* kRecordTag = "gyrus-cubin 1";

std::shared_ptr<const std::vector<char>> readRecord(const fs::path& file, const std::string& key) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return nullptr;
  std::string header;
  if (!std::getline(in, header)) return nullptr;
  std::istringstream fields(header);
  std::string tag1, tag2, fileKey, digest;
  size_t size = 0;
  if (!(fields >> tag1 >> tag2 >> fileKey >> size >> digest)) return nullptr;
  if (tag1 + " " + tag2 != kRecordTag || fileKey != key || size > (size_t{1} << 30)) return nullptr;
  auto image = std::make_shared<std::vector<char>>(size);
  if (!in.read(image->data(), static_cast<std::streamsize>(size))) return nullptr;
  if (in.peek() != std::char_traits<char>::eof()) return nullptr;
  if (ir::sha256Hex(std::string_view(image->data(), image->size())) != digest || !isElf(*image)) return nullptr;
  return image;
}

void writeRecord(const fs::path& dir, const fs::path& file, const std::string& key, const std::vector<char>& image) {
  static std::atomic<unsigned> counter{0};
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path tmp = file;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out << kRecordTag << " " << key << " " << image.size() << " "
        << ir::sha256Hex(std::string_view(image.data(), image.size())) << "\n";
    out.write(image.data(), static_cast<std::streamsize>(image.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) fs::remove(tmp, ec);
}

}  // namespace

CompiledModule compileCubin(const Program& program, const CubinOptions& options) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const std::vector<char>>> memory;
  CompiledModule c;
  c.module = cudaModule(program);
  const Nvrtc& nvrtc = Nvrtc::get();
  c.key = cubinCacheKey(c.module.source, nvrtc.version(), options.arch);
  if (options.memory) {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = memory.find(c.key); it != memory.end()) {
      c.cubin = it->second;
      c.origin = CompiledModule::Origin::Memory;
      return c;
    }
  }
  const fs::path dir = options.cacheDir.empty() ? fs::path(kernelCacheDir()) : fs::path(options.cacheDir);
  const fs::path file = dir / (c.key + ".cubin");
  if (options.disk) c.cubin = readRecord(file, c.key);
  if (c.cubin) {
    c.origin = CompiledModule::Origin::Disk;
  } else {
    c.cubin = std::make_shared<const std::vector<char>>(
        nvrtc.cubin(c.module.source, options.arch, "gyrus_" + hash(program).substr(0, 16) + ".cu"));
    c.origin = CompiledModule::Origin::Compiled;
    if (options.disk) writeRecord(dir, file, c.key, *c.cubin);
  }
  if (options.memory) {
    std::lock_guard<std::mutex> lock(mutex);
    memory.emplace(c.key, c.cubin);
  }
  return c;
}

}  // namespace gyrus::kir::cuda
