// The LLVM ORC back end (see Jit.h): one LLJIT per Jit; each program's object file is
// linked into a JITDylib of its own (process symbols resolve exp, log, pow, cos). The
// memory cache maps a program's hash to its code; the disk cache holds the object file
// under a key of everything that shapes it, behind a header with its size and SHA-256,
// so a corrupt or truncated file is recognised, ignored and rewritten.
#include "gyrus/kernel/Jit.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "Codegen.h"
#include "gyrus/Sha256.h"

namespace gyrus::kir {

namespace {

namespace fs = std::filesystem;

constexpr const char* kObjectMagic = "gyrus-kernel-object 1";
constexpr int64_t kMaxVoxels = int64_t{1} << 31;

int64_t count(const ir::Shape3& s) { return s[0] * s[1] * s[2]; }

std::string message(llvm::Error error) { return llvm::toString(std::move(error)); }

void initializeLlvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

/// The native code of one program: its pass functions (null for library passes). Keeps
/// the JIT that holds the code alive.
struct Code {
  std::shared_ptr<llvm::orc::LLJIT> jit;
  Program program;
  std::vector<jit::PassFunction> functions;
};

/// Splits [0, n) among the caller's parallel loop or our own threads.
void forSlices(int64_t n, const RunOptions& options, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (options.parallelFor) {
    options.parallelFor(n, body);
    return;
  }
  const int64_t threads = std::min<int64_t>(std::max(options.threads, 1), n);
  if (threads == 1) {
    body(0, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(body, t * n / threads, (t + 1) * n / threads);
  body(0, n / threads);
  for (std::thread& t : pool) t.join();
}

class Compiled final : public CompiledProgram {
 public:
  Compiled(std::shared_ptr<const Code> code, std::string hash, CodeSource source, double ms)
      : code_(std::move(code)), hash_(std::move(hash)), source_(source), ms_(ms) {}

  void run(Binding& b, const Buffers& buffers, const RunOptions& options) const override {
    const Program& program = code_->program;
    if (program.passes.empty() || program.passes[0].kind != PassKind::Gather)
      throw std::invalid_argument("kernel run: a program starts with its gather");
    const int64_t nIn = count(b.in.shape), nOut = count(b.out.shape);
    for (size_t a = 0; a < 3; ++a)
      if (b.in.shape[a] <= 0 || b.out.shape[a] < 0) throw std::invalid_argument("kernel run: a grid without voxels");
    if (nIn >= kMaxVoxels || nOut >= kMaxVoxels)
      throw std::invalid_argument("kernel run: the compiled kernels take volumes of fewer than 2^31 voxels");
    if (b.slots.size() != static_cast<size_t>(program.slots))
      throw std::invalid_argument("kernel run: the binding's slots are not the program's");
    std::vector<const float*> fields;
    for (size_t f = 0; f < program.fields.size(); ++f) {
      if (f >= b.fields.size() || static_cast<int64_t>(b.fields[f].size()) != 3 * count(program.fields[f].shape))
        throw std::invalid_argument("kernel run: displacement field " + std::to_string(f) + " has the wrong size");
      fields.push_back(b.fields[f].data());
    }
    // Then whether each field displaces at all (null: all zero, a displacement of 0).
    for (size_t f = 0; f < program.fields.size(); ++f) {
      const std::vector<float>& v = b.fields[f];
      const bool zero = std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
      fields.push_back(zero ? nullptr : v.data());
    }
    auto need = [](const float* p, const char* what) {
      if (p == nullptr) throw std::invalid_argument(std::string("kernel run: no ") + what + " buffer");
    };
    const int64_t dims[6] = {b.in.shape[0],  b.in.shape[1],  b.in.shape[2],
                             b.out.shape[0], b.out.shape[1], b.out.shape[2]};
    for (size_t i = 0; i < program.passes.size(); ++i) {
      const Pass& pass = program.passes[i];
      switch (pass.kind) {
        case PassKind::Gather:
        case PassKind::Map: {
          if (pass.kind == PassKind::Gather) {
            for (const GatherOutput& o : pass.outputs) {
              need(buffers.source(o.source), "source");
              need(buffers.of(o.buffer), "output");
            }
          } else {
            need(buffers.of(pass.buffer), "output");
          }
          jit::PassFunction fn = code_->functions[i];
          const float* slots = b.slots.data();
          forSlices(b.out.shape[2], options, [&](int64_t z0, int64_t z1) {
            fn(buffers.image, buffers.target, buffers.mask, buffers.outImage, buffers.outTarget, buffers.outMask, slots,
               fields.data(), dims, b.seed, b.sample, z0, z1);
          });
          break;
        }
        case PassKind::Reduce:
          need(buffers.of(pass.buffer), "output");
          if (reductionNeeded(program, i, b.slots)) runReduce(pass.reduce, buffers.of(pass.buffer), nOut, b.slots);
          break;
        case PassKind::Stencil:
          need(buffers.of(pass.buffer), "output");
          if (valueOf(pass.stencil.enabled, b.slots) != 0.0f)
            runStencil(pass.stencil, buffers.of(pass.buffer), b.out.shape, b.slots);
          break;
      }
    }
  }
  const std::string& hash() const override { return hash_; }
  CodeSource source() const override { return source_; }
  double compileMs() const override { return ms_; }
  const std::shared_ptr<const Code>& code() const { return code_; }

 private:
  std::shared_ptr<const Code> code_;
  std::string hash_;
  CodeSource source_;
  double ms_;
};

// ---- the disk cache ----------------------------------------------------------------------

/// The object file stored under `key` at `path`, or empty when there is none or it is not
/// intact (wrong magic or key, truncated, or its bytes do not match their SHA-256).
std::string readObject(const fs::path& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string magic, storedKey, digest, sizeText;
  if (!std::getline(in, magic) || !std::getline(in, storedKey) || !std::getline(in, digest) ||
      !std::getline(in, sizeText))
    return {};
  if (magic != kObjectMagic || storedKey != key || sizeText.empty() || sizeText.size() > 12 ||
      sizeText.find_first_not_of("0123456789") != std::string::npos)
    return {};
  const auto size = static_cast<size_t>(std::stoull(sizeText));
  // A damaged header may claim any size: never allocate more than the file holds.
  std::error_code ec;
  const auto fileSize = fs::file_size(path, ec);
  if (ec || size > fileSize) return {};
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)) || in.peek() != std::char_traits<char>::eof())
    return {};
  if (size == 0 || ir::sha256Hex(bytes) != digest) return {};
  return bytes;
}

/// Writes the object file atomically: a temporary file in the same directory, renamed
/// over the final name. Failing to write only costs a later compile.
void writeObject(const fs::path& path, const std::string& key, const std::string& bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  static std::atomic<unsigned> serial{0};
  fs::path temp = path;
  temp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(serial++);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << kObjectMagic << "\n" << key << "\n" << ir::sha256Hex(bytes) << "\n" << bytes.size() << "\n";
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      fs::remove(temp, ec);
      return;
    }
  }
  fs::rename(temp, path, ec);
  if (ec) fs::remove(temp, ec);
}

std::string defaultCacheDir() {
  if (const char* dir = std::getenv("GYRUS_KERNEL_CACHE"); dir != nullptr && *dir != '\0') return dir;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return (fs::path(home) / ".cache" / "gyrus" / "kernels").string();
  return {};
}

// ---- the Jit -----------------------------------------------------------------------------

class LlvmJit final : public Jit {
 public:
  explicit LlvmJit(const JitOptions& options) { configure(options); }

  void configure(const JitOptions& options) override {
    std::lock_guard lock(mutex_);
    cacheDir_ = options.diskCache ? (options.cacheDir.empty() ? defaultCacheDir() : options.cacheDir) : std::string();
  }

  std::shared_ptr<const CompiledProgram> compile(const Program& program) override {
    const auto start = std::chrono::steady_clock::now();
    std::string h = hash(program);
    std::lock_guard lock(mutex_);
    if (auto it = memory_.find(h); it != memory_.end())
      return std::make_shared<Compiled>(it->second, h, CodeSource::MemoryCache, since(start));
    setUp();
    const std::string key = objectKey(h);
    const fs::path path = cacheDir_.empty() ? fs::path() : fs::path(cacheDir_) / (key + ".o");
    std::shared_ptr<const Code> code;
    CodeSource source = CodeSource::DiskCache;
    if (!path.empty()) {
      if (std::string bytes = readObject(path, key); !bytes.empty()) {
        std::string error;
        code = link(program, h, bytes, error);  // a failure: compile afresh, rewrite the file
      }
    }
    if (!code) {
      source = CodeSource::Compiled;
      std::string bytes = compileObject(program, h);
      std::string error;
      code = link(program, h, bytes, error);
      if (!code) throw std::runtime_error("kernel JIT: cannot link the compiled kernel: " + error);
      if (!path.empty()) writeObject(path, key, bytes);
    }
    memory_[h] = code;
    return std::make_shared<Compiled>(code, h, source, since(start));
  }

  std::string llvmIr(const Program& program) override {
    std::lock_guard lock(mutex_);
    setUp();
    llvm::LLVMContext context;
    jit::Generated g = jit::generate(program, prefix(hash(program)), context, *machine_);
    jit::optimize(*g.module, *machine_, vectorMath_);
    std::string text;
    llvm::raw_string_ostream os(text);
    g.module->print(os, nullptr);
    return os.str();
  }

  std::string target() const override {
    std::lock_guard lock(mutex_);
    setUp();
    return target_;
  }
  std::string cacheDirectory() const override {
    std::lock_guard lock(mutex_);
    return cacheDir_;
  }

 private:
  static double since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  static std::string prefix(const std::string& hash) { return "gyrus_kernel_" + hash.substr(0, 16); }

  /// The LLJIT and the target machine, on first use.
  void setUp() const {
    if (jit_) return;
    initializeLlvm();
    auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!builder) throw std::runtime_error("kernel JIT: no host target: " + message(builder.takeError()));
    builder->setCPU(llvm::sys::getHostCPUName().str());
    builder->setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
    builder->getOptions().AllowFPOpFusion = llvm::FPOpFusion::Strict;
    auto machine = builder->createTargetMachine();
    if (!machine) throw std::runtime_error("kernel JIT: no target machine: " + message(machine.takeError()));
    auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(*builder).create();
    if (!jit) throw std::runtime_error("kernel JIT: cannot create the JIT: " + message(jit.takeError()));
    machine_ = std::move(*machine);
    jit_ = std::shared_ptr<llvm::orc::LLJIT>(std::move(*jit));
    // Vector math (libmvec's AVX2 and SSE entry points) on an x86-64 host with AVX2 where
    // glibc's libmvec loads; GYRUS_KERNEL_VECTOR_MATH=0 keeps the scalar libm calls.
    const char* vm = std::getenv("GYRUS_KERNEL_VECTOR_MATH");
    const bool wanted = vm == nullptr || std::string(vm) != "0";
    const llvm::Triple& triple = machine_->getTargetTriple();
    const std::string features = machine_->getTargetFeatureString().str();
    if (wanted && triple.getArch() == llvm::Triple::x86_64 && triple.isOSLinux() &&
        features.find("+avx2") != std::string::npos) {
      std::string error;
      vectorMath_ = !llvm::sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1", &error);
    }
    target_ = std::string("LLVM ") + LLVM_VERSION_STRING + ", " + triple.str() + ", cpu " +
              machine_->getTargetCPU().str() + ", features " + features +
              (vectorMath_ ? ", vector math libmvec" : "");
  }

  /// The disk cache's key: everything that shapes the object file.
  std::string objectKey(const std::string& programHash) const {
    ir::Sha256 h;
    h.update("gyrus-kernel-object 1\n");
    h.update(programHash + "\n");
    h.update(std::string("codegen ") + GYRUS_CODEGEN_VERSION + "\n");
    h.update(target_ + "\n");
    return h.hex();
  }

  std::string compileObject(const Program& program, const std::string& h) {
    llvm::LLVMContext context;
    jit::Generated g = jit::generate(program, prefix(h), context, *machine_);
    jit::optimize(*g.module, *machine_, vectorMath_);
    llvm::SmallVector<char, 0> buffer;
    llvm::raw_svector_ostream os(buffer);
    llvm::legacy::PassManager passes;
    if (machine_->addPassesToEmitFile(passes, os, nullptr, llvm::CGFT_ObjectFile))
      throw std::runtime_error("kernel JIT: the target cannot emit object files");
    passes.run(*g.module);
    return std::string(buffer.data(), buffer.size());
  }

  /// Links an object file into a fresh JITDylib and finds the pass functions; null with
  /// `error` when the object does not link.
  std::shared_ptr<const Code> link(const Program& program, const std::string& h, const std::string& bytes,
                                   std::string& error) {
    auto dylib = jit_->createJITDylib(prefix(h) + "_" + std::to_string(dylibs_++));
    if (!dylib) {
      error = message(dylib.takeError());
      return nullptr;
    }
    auto process =
        llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(jit_->getDataLayout().getGlobalPrefix());
    if (!process) {
      error = message(process.takeError());
      return nullptr;
    }
    dylib->addGenerator(std::move(*process));
    if (llvm::Error e = jit_->addObjectFile(*dylib, llvm::MemoryBuffer::getMemBufferCopy(bytes, prefix(h)))) {
      error = message(std::move(e));
      return nullptr;
    }
    auto code = std::make_shared<Code>();
    code->jit = jit_;
    code->program = program;
    for (size_t i = 0; i < program.passes.size(); ++i) {
      std::string name = jit::passFunctionName(program, i, prefix(h));
      if (name.empty()) {
        code->functions.push_back(nullptr);
        continue;
      }
      auto symbol = jit_->lookup(*dylib, name);
      if (!symbol) {
        error = message(symbol.takeError());
        return nullptr;
      }
      code->functions.push_back(reinterpret_cast<jit::PassFunction>(static_cast<uintptr_t>(symbol->getAddress())));
    }
    return code;
  }

  mutable std::mutex mutex_;
  std::string cacheDir_;
  // Set up on first use (setUp), also by the const target().
  mutable std::shared_ptr<llvm::orc::LLJIT> jit_;
  mutable std::unique_ptr<llvm::TargetMachine> machine_;
  mutable std::string target_;
  mutable bool vectorMath_ = false;
  std::map<std::string, std::shared_ptr<const Code>> memory_;
  unsigned dylibs_ = 0;
};

}  // namespace

std::unique_ptr<Jit> createJit(const JitOptions& options) { return std::make_unique<LlvmJit>(options); }

}  // namespace gyrus::kir
