// The GPU back end without a GPU: the generated CUDA source (kir::cudaModule) and NVRTC.
//
// The differential test compiles the generated CUDA C++ with the host C++ compiler under
// a small shim (CUDA's built-ins as plain C++: a block's threads are real threads with a
// barrier for __syncthreads, blocks run one after the other), calls every kernel through a `void**` argument array built from its
// CudaKernel description (as cuLaunchKernel is called), and compares the outputs and the
// slots with the reference interpreter, bit for bit: the same single-precision
// operations in the same order, the same C library for powf/expf/logf/cosf. On a GPU
// only those functions differ (by a few ulp). NVRTC tests compile to PTX and to a CUBIN
// (skipped, with a message, where NVRTC cannot be loaded).
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "gyrus/PipelineOps.h"
#include "gyrus/kernel/Cuda.h"
#include "gyrus/kernel/Kernel.h"
#include "gyrus/kernel/CudaLaunch.h"
#include "gyrus/kernel/Nvrtc.h"

using namespace gyrus;
using gyrus::ir::Shape3;
namespace fs = std::filesystem;

namespace {

kir::Operand slot(int s) { return kir::Operand::at(s); }
kir::Operand c(float v) { return kir::Operand::constant(v); }

/// A program that uses every coordinate step, every pointwise instruction (head-only
/// too), both interpolations, all three outputs, a displacement field, and the
/// reductions with generated kernels (Moments, MinMax; nonzero and not).
kir::Program everyOp(float gammaConstant = 0.8f) {
  kir::Program p;
  auto newSlot = [&](const std::string& name) {
    p.slotNames.push_back(name);
    return p.slots++;
  };
  int affine = newSlot("affine[0]");
  for (int i = 1; i < 12; ++i) newSlot("affine[" + std::to_string(i) + "]");
  int top = newSlot("top[0]");
  newSlot("top[1]");
  newSlot("top[2]");
  int sigma = newSlot("sigma");
  int moments = newSlot("moments.mean");
  newSlot("moments.sd");
  int minmax = newSlot("minmax.min");
  newSlot("minmax.max");
  int moments2 = newSlot("moments2.mean");
  newSlot("moments2.sd");
  int minmax2 = newSlot("minmax2.min");
  newSlot("minmax2.max");
  p.fields.push_back({Shape3{4, 5, 3}, "elastic"});

  kir::Pass g;
  g.kind = kir::PassKind::Gather;
  kir::CoordInstr a;
  a.op = kir::CoordOp::Affine;
  for (int i = 0; i < 12; ++i) a.args.push_back(slot(affine + i));
  a.origin = "rotate */ scale";
  kir::CoordInstr d;
  d.op = kir::CoordOp::Displace;
  d.field = 0;
  d.args = {c(0.25f), c(0), c(0.01f), c(-0.1f), c(0), c(0.4f), c(0), c(0.2f), c(0), c(0), c(0.3f), c(0.05f)};
  d.origin = "elastic";
  kir::CoordInstr clamp;
  clamp.op = kir::CoordOp::Clamp;
  clamp.args = {c(12.5f), c(100.0f), c(7.75f)};
  kir::CoordInstr window;
  window.op = kir::CoordOp::Window;
  window.args = {slot(top), slot(top + 1), slot(top + 2)};
  g.coords = {a, d, window, clamp};

  using kir::PointOp;
  kir::Chain image = {
      {PointOp::Affine, false, {c(1.5f), c(-0.25f)}, 0, "affine"},
      {PointOp::Gamma, true, {c(gammaConstant), c(-0.5f), c(2.5f), c(0)}, 0, "gamma"},
      {PointOp::AddNoise, true, {slot(sigma)}, 3, "noise"},
      {PointOp::MulNoise, false, {c(0.05f)}, 4, "mul noise"},
      {PointOp::Contrast, true, {c(1.2f), c(0.9f)}, 0, "contrast"},
      {PointOp::Bias, true, {c(0.1f), c(-0.2f), c(0.05f), c(0.3f), c(-0.1f), c(0.02f), c(0.07f), c(-0.03f), c(0.01f), c(0.2f)},
       0, "bias"},
      {PointOp::Clamp, false, {c(-3.0f), c(4.0f)}, 0, "clamp"},
      {PointOp::Normalize, false, {c(0.1f), c(1.7f)}, 0, "normalize"},
  };
  // Constants that are not plain decimals: infinities, a negative zero, a subnormal.
  const float inf = std::numeric_limits<float>::infinity();
  kir::Chain target = {{PointOp::Gamma, false, {c(1.7f), c(0.0f), c(2.0f), c(1.0f)}, 0, "gamma inverted"},
                       {PointOp::Affine, false, {c(2.0f), c(-0.0f)}, 0, "affine"},
                       {PointOp::Clamp, false, {c(-inf), c(inf)}, 0, "clamp"},
                       {PointOp::Affine, false, {c(1.0f), c(1e-40f)}, 0, "affine"}};
  g.outputs = {{kir::Buffer::Image, kir::Buffer::Image, kir::Interp::Linear, image},
               {kir::Buffer::Target, kir::Buffer::Image, kir::Interp::Linear, target},
               {kir::Buffer::Mask, kir::Buffer::Mask, kir::Interp::Nearest, {}}};
  p.passes.push_back(g);

  auto reduce = [&](kir::Buffer b, kir::ReduceOp op, bool nonzero, int out) {
    kir::Pass r;
    r.kind = kir::PassKind::Reduce;
    r.buffer = b;
    r.reduce.op = op;
    r.reduce.nonzero = nonzero;
    r.reduce.out = out;
    p.passes.push_back(r);
  };
  auto map = [&](kir::Buffer b, kir::Chain chain) {
    kir::Pass m;
    m.kind = kir::PassKind::Map;
    m.buffer = b;
    m.chain = std::move(chain);
    p.passes.push_back(m);
  };
  reduce(kir::Buffer::Image, kir::ReduceOp::Moments, true, moments);
  map(kir::Buffer::Image, {{PointOp::Normalize, true, {slot(moments), slot(moments + 1)}, 0, "zscore"},
                           {PointOp::AddNoise, false, {c(0.01f)}, 9, "noise"}});
  reduce(kir::Buffer::Target, kir::ReduceOp::MinMax, false, minmax);
  map(kir::Buffer::Target, {{PointOp::Gamma, false, {c(1.3f), slot(minmax), slot(minmax + 1), c(0)}, 0, "gamma"}});
  reduce(kir::Buffer::Image, kir::ReduceOp::MinMax, true, minmax2);
  reduce(kir::Buffer::Target, kir::ReduceOp::Moments, false, moments2);
  map(kir::Buffer::Target, {{PointOp::Affine, false, {slot(minmax2 + 1), slot(moments2)}, 0, "affine"}});
  p.hasTarget = true;
  p.hasMask = true;
  return p;
}

/// Values for everyOp: an affine map that sends part of the output outside the window.
kir::Binding everyOpBinding(const kir::Program& p, const kir::Grid& in, const kir::Grid& out) {
  kir::Binding b;
  b.in = in;
  b.out = out;
  b.slots.assign(static_cast<size_t>(p.slots), 0.0f);
  const float m[12] = {0.96f, -0.21f, 0.05f, 0.7f, 0.2f, 1.03f, -0.02f, -0.4f, -0.04f, 0.03f, 1.1f, 0.33f};
  for (int i = 0; i < 12; ++i) b.slots[static_cast<size_t>(i)] = m[i];
  for (int a = 0; a < 3; ++a) b.slots[static_cast<size_t>(12 + a)] = static_cast<float>(in.shape[static_cast<size_t>(a)] - 1);
  b.slots[15] = 0.2f;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  b.fields.resize(p.fields.size());
  for (size_t f = 0; f < p.fields.size(); ++f) {
    const Shape3& s = p.fields[f].shape;
    b.fields[f].resize(static_cast<size_t>(3 * s[0] * s[1] * s[2]));
    for (float& v : b.fields[f]) v = u(rng);
  }
  b.seed = 0x1234567890abcdefULL;
  b.sample = 5;
  return b;
}

/// A volume with a zero background (what head-only instructions leave alone).
std::vector<float> volume(const Shape3& s, unsigned seed) {
  std::vector<float> v(static_cast<size_t>(s[0] * s[1] * s[2]));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 2.0f);
  for (int64_t z = 0; z < s[2]; ++z)
    for (int64_t y = 0; y < s[1]; ++y)
      for (int64_t x = 0; x < s[0]; ++x) {
        double dx = (x - 0.5 * (s[0] - 1)) / (0.45 * s[0]), dy = (y - 0.5 * (s[1] - 1)) / (0.45 * s[1]),
               dz = (z - 0.5 * (s[2] - 1)) / (0.45 * s[2]);
        v[static_cast<size_t>(x + s[0] * (y + s[1] * z))] = dx * dx + dy * dy + dz * dz < 1 ? u(rng) : 0.0f;
      }
  return v;
}

std::vector<float> labels(const Shape3& s) {
  std::vector<float> v(static_cast<size_t>(s[0] * s[1] * s[2]));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i / 7) % 3);
  return v;
}

/// CUDA's built-ins as plain C++, for the host compile of a generated module.
constexpr const char* kShim = R"(#include <math.h>
#include <string.h>
#include <barrier>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static
struct gy_dim3 { unsigned x, y, z; };
static thread_local gy_dim3 threadIdx = {0, 0, 0};
static gy_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
static std::barrier<>* gy_block_barrier = nullptr;
inline void __syncthreads() { gy_block_barrier->arrive_and_wait(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline double atomicAdd(double* p, double v) {
  double old, next;
  __atomic_load(p, &old, __ATOMIC_SEQ_CST);
  do {
    next = old + v;
  } while (!__atomic_compare_exchange(p, &old, &next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  return old;
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  unsigned old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}
/* A launch: blocks one after another, each block's threads as real threads (so
   __syncthreads, shared memory and the atomics are exercised). */
extern "C" void gy_launch(void (*kernel)(void**), void** args, unsigned grid, unsigned block) {
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx = {b, 0, 0};
    std::barrier<> barrier(block);
    gy_block_barrier = &barrier;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([=] {
        threadIdx = {t, 0, 0};
        kernel(args);
      });
    for (std::thread& t : threads) t.join();
  }
}
)";

const char* cType(const kir::CudaKernel& k, const kir::CudaArg& a) {
  const bool reduce = k.kind == kir::PassKind::Reduce;
  switch (a.kind) {
    case kir::CudaParam::Slots: return reduce ? "float*" : "const float*";
    case kir::CudaParam::Field:
    case kir::CudaParam::Source: return "const float*";
    case kir::CudaParam::Output: return "float*";
    case kir::CudaParam::Data: return reduce ? "const float*" : "float*";
    case kir::CudaParam::Accum: return "void*";
    case kir::CudaParam::InShape:
    case kir::CudaParam::OutShape: return "int";
    case kir::CudaParam::Seed: return "unsigned long long";
    case kir::CudaParam::Sample: return "unsigned int";
  }
  return "?";
}

/// A module compiled for the host, its kernels callable through argument arrays.
class HostModule {
 public:
  explicit HostModule(const kir::CudaModule& m) : module_(m) {
    static int counter = 0;
    dir_ = fs::temp_directory_path() / ("gyrus-cuda-host-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "shim.h") << kShim;
    std::ostringstream calls;
    calls << m.source << "\n";
    for (const kir::CudaKernel& k : m.kernels) {
      calls << "extern \"C\" void call_" << k.name << "(void** args) {\n  " << k.name << "(";
      for (size_t i = 0; i < k.args.size(); ++i)
        calls << (i ? ", " : "") << "*(" << cType(k, k.args[i]) << "*)args[" << i << "]";
      calls << ");\n}\n";
    }
    std::ofstream(dir_ / "module.cpp") << calls.str();
    std::string cmd = std::string(GYRUS_HOST_CXX) + " -std=c++20 -pthread -O1 -ffp-contract=off -fPIC -shared -w -include " +
                      (dir_ / "shim.h").string() + " " + (dir_ / "module.cpp").string() + " -o " +
                      (dir_ / "module.so").string() + " 2>" + (dir_ / "log.txt").string();
    int rc = std::system(cmd.c_str());
    if (rc != 0) {
      std::ifstream log(dir_ / "log.txt");
      std::stringstream text;
      text << log.rdbuf();
      FAIL("host compile of the generated source failed:\n" << text.str() << "\n" << m.source);
    }
    handle_ = dlopen((dir_ / "module.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(handle_ != nullptr);
  }
  ~HostModule() {
    if (handle_) dlclose(handle_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Runs the program as a launcher would: the passes in order, each kernel over
  /// `blocks` blocks of `threads` threads (a power of two, as on the GPU), library
  /// passes (none in these programs) refused.
  void run(const kir::Program& program, kir::Binding& b, const kir::Buffers& buf, unsigned blocks, unsigned threads) {
    using Launch = void (*)(void (*)(void**), void**, unsigned, unsigned);
    auto launch = reinterpret_cast<Launch>(dlsym(handle_, "gy_launch"));
    REQUIRE(reinterpret_cast<void*>(launch) != nullptr);
    std::vector<std::vector<double>> accums(module_.kernels.size(), std::vector<double>(8, 0.0));
    for (size_t pass = 0; pass < program.passes.size(); ++pass) {
      int ki = module_.passKernel[pass];
      REQUIRE(ki >= 0);
      const kir::CudaKernel& k = module_.kernels[static_cast<size_t>(ki)];
      CHECK(k.pass == static_cast<int>(pass));
      // Every value an argument points to, kept alive across the call.
      std::vector<const void*> pointers;
      std::vector<int> ints;
      ints.reserve(16);
      pointers.reserve(16);
      std::vector<void*> args;
      unsigned long long seed = b.seed;
      unsigned int sample = b.sample;
      void* accum = accums[static_cast<size_t>(ki)].data();
      for (const kir::CudaArg& a : k.args) {
        switch (a.kind) {
          case kir::CudaParam::Slots: pointers.push_back(b.slots.data()); args.push_back(&pointers.back()); break;
          case kir::CudaParam::Field:
            pointers.push_back(b.fields[static_cast<size_t>(a.index)].data());
            args.push_back(&pointers.back());
            break;
          case kir::CudaParam::Source: pointers.push_back(buf.source(a.buffer)); args.push_back(&pointers.back()); break;
          case kir::CudaParam::Output:
          case kir::CudaParam::Data: pointers.push_back(buf.of(a.buffer)); args.push_back(&pointers.back()); break;
          case kir::CudaParam::Accum: args.push_back(&accum); break;
          case kir::CudaParam::InShape:
            ints.push_back(static_cast<int>(b.in.shape[static_cast<size_t>(a.index)]));
            args.push_back(&ints.back());
            break;
          case kir::CudaParam::OutShape:
            ints.push_back(static_cast<int>(b.out.shape[static_cast<size_t>(a.index)]));
            args.push_back(&ints.back());
            break;
          case kir::CudaParam::Seed: args.push_back(&seed); break;
          case kir::CudaParam::Sample: args.push_back(&sample); break;
        }
      }
      auto call = reinterpret_cast<void (*)(void**)>(dlsym(handle_, ("call_" + k.name).c_str()));
      REQUIRE(reinterpret_cast<void*>(call) != nullptr);
      launch(call, args.data(), blocks, threads);
      if (k.kind == kir::PassKind::Reduce)
        for (double v : accums[static_cast<size_t>(ki)]) CHECK(v == 0.0);  // left zeroed for the next launch
    }
  }

 private:
  kir::CudaModule module_;
  fs::path dir_;
  void* handle_ = nullptr;
};

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

size_t firstDifference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
  return a.size();
}

/// The interpreter and the host-compiled generated module on the same binding.
void compareWithInterpreter(const kir::Program& program, const kir::Binding& binding, const std::vector<float>& image,
                            const std::vector<float>& mask, unsigned blocks, unsigned threads) {
  const auto n = static_cast<size_t>(binding.out.shape[0] * binding.out.shape[1] * binding.out.shape[2]);
  struct Out {
    std::vector<float> image, target, mask;
    kir::Binding b;
  } ref, gen;
  for (Out* o : {&ref, &gen}) {
    o->image.assign(n, -7.0f);
    o->target.assign(n, -7.0f);
    o->mask.assign(n, -7.0f);
    o->b = binding;
  }
  auto buffers = [&](Out& o) {
    kir::Buffers buf;
    buf.image = image.data();
    buf.mask = program.hasMask ? mask.data() : nullptr;
    buf.target = image.data();
    buf.outImage = o.image.data();
    buf.outTarget = program.hasTarget ? o.target.data() : nullptr;
    buf.outMask = program.hasMask ? o.mask.data() : nullptr;
    return buf;
  };
  kir::interpret(program, ref.b, buffers(ref));
  kir::CudaModule m = kir::cudaModule(program);
  HostModule host(m);
  host.run(program, gen.b, buffers(gen), blocks, threads);
  INFO("program:\n" << kir::print(program));
  CHECK_MESSAGE(sameBits(ref.image, gen.image), "image differs first at " << firstDifference(ref.image, gen.image));
  CHECK_MESSAGE(sameBits(ref.target, gen.target), "target differs first at " << firstDifference(ref.target, gen.target));
  CHECK_MESSAGE(sameBits(ref.mask, gen.mask), "mask differs first at " << firstDifference(ref.mask, gen.mask));
  for (size_t s = 0; s < ref.b.slots.size(); ++s) CHECK_MESSAGE(ref.b.slots[s] == gen.b.slots[s], "slot " << s);
}

ir::Pipeline pipeline(std::initializer_list<ir::PipelineOp> ops) { return ir::Pipeline{ops}; }

/// NVRTC, or null with a message (the tests that need it pass vacuously without it).
const kir::cuda::Nvrtc* nvrtcOrSkip() {
  try {
    return &kir::cuda::Nvrtc::get();
  } catch (const kir::cuda::NvrtcNotFound& e) {
    MESSAGE("skipped: " << e.what());
    return nullptr;
  }
}

}  // namespace

TEST_CASE("cuda source: a kernel per gather, map and generated reduction, described") {
  kir::Program p = everyOp();
  kir::CudaModule m = kir::cudaModule(p);
  REQUIRE(m.passKernel.size() == p.passes.size());
  REQUIRE(m.kernels.size() == p.passes.size());  // every pass of everyOp has a kernel
  CHECK(m.kernels[0].name == "gyrus_p0_gather");
  CHECK(m.kernels[1].name == "gyrus_p1_moments");
  CHECK(m.kernels[2].name == "gyrus_p2_map");
  CHECK(m.kernels[3].name == "gyrus_p3_minmax");
  CHECK(m.kernels[1].accumBytes == 32);
  for (const kir::CudaKernel& k : m.kernels) {
    CHECK(m.source.find("extern \"C\" __global__ void __launch_bounds__(256) " + k.name + "(") != std::string::npos);
    CHECK(k.blockSize == 256);
  }
  CHECK(m.source.rfind("/* gyrus kernel " + kir::hash(p), 0) == 0);
  CHECK(kir::cudaSource(p) == m.source);  // deterministic
  // An origin that would close the comment does not.
  CHECK(m.source.find("rotate * / scale") != std::string::npos);

  // Percentiles and stencils run as library operations: no kernel.
  kir::Program q = p;
  kir::Pass pct;
  pct.kind = kir::PassKind::Reduce;
  pct.reduce.op = kir::ReduceOp::Percentiles;
  pct.reduce.q0 = 0.01f;
  pct.reduce.q1 = 0.99f;
  pct.reduce.out = 16;
  q.passes.push_back(pct);
  kir::Pass st;
  st.kind = kir::PassKind::Stencil;
  st.stencil.op = kir::StencilOp::Blur;
  st.stencil.args = {c(1), c(1), c(1)};
  q.passes.push_back(st);
  kir::CudaModule mq = kir::cudaModule(q);
  CHECK(mq.passKernel[p.passes.size()] == -1);
  CHECK(mq.passKernel[p.passes.size() + 1] == -1);
  CHECK(mq.kernels.size() == m.kernels.size());

  CHECK(kir::cudaGridSize(m.kernels[0], 0) == 1);
  CHECK(kir::cudaGridSize(m.kernels[0], 257) == 2);
  CHECK(kir::cudaGridSize(m.kernels[1], int64_t{256} * 5000) == 1024);
}

TEST_CASE("cuda source, compiled for the host: every instruction agrees with the interpreter bit for bit") {
  kir::Program p = everyOp();
  kir::Grid in{Shape3{13, 11, 9}, {1, 1, 1}}, out{Shape3{12, 10, 8}, {1, 1, 1}};
  kir::Binding b = everyOpBinding(p, in, out);
  std::vector<float> image = volume(in.shape, 3), mask = labels(in.shape);
  // One thread per block (many blocks: the grid-stride loops, the last-block logic), and
  // 256 threads a block (the shared-memory trees of the reductions, real threads).
  for (auto [blocks, threads] : {std::pair{1u, 1u}, std::pair{7u, 1u}, std::pair{3u, 256u}, std::pair{1u, 256u}}) {
    CAPTURE(blocks);
    CAPTURE(threads);
    compareWithInterpreter(p, b, image, mask, blocks, threads);
  }
  // Edge cases of the coordinates: one voxel along an axis (Bias's position is 0 there).
  kir::Grid flat{Shape3{9, 1, 6}, {1, 1, 1}};
  kir::Binding bf = everyOpBinding(p, in, flat);
  compareWithInterpreter(p, bf, image, mask, 3, 64);
}

TEST_CASE("cuda source, compiled for the host: lowered pipelines agree with the interpreter bit for bit") {
  Shape3 shape{23, 19, 17};
  std::vector<float> image = volume(shape, 5), mask = labels(shape);
  kir::Grid in{shape, {1.2, 0.9, 2.0}};
  std::vector<std::pair<ir::Pipeline, kir::LowerOptions>> cases = {
      {pipeline({ir::makeOp("crop", {{"size", Shape3{16, 16, 16}}}), ir::makeOp("zscore")}), {}},
      {pipeline({ir::makeOp("resample", {{"spacing", 1.0}}), ir::makeOp("crop", {{"size", Shape3{20, 24, 28}}}),
                 ir::makeOp("clip"), ir::makeOp("zscore", {{"nonzero", false}})}),
       {.target = false, .mask = true}},
      {pipeline({ir::makeOp("flip"), ir::makeOp("gamma"), ir::makeOp("noise", {{"sigma", 0.1}})}),
       {.target = true, .mask = false}},
      {pipeline({ir::makeOp("resample", {{"spacing", 1.5}}), ir::makeOp("flip"), ir::makeOp("gamma"),
                 ir::makeOp("noise", {{"sigma", 0.3}})}),
       {.target = true, .mask = true}},
      // The FOMO25 augmentations that lower to no stencil: the displacement field, the
      // rotation and scaling, and the remaining pointwise instructions.
      {pipeline({ir::makeOp("elastic", {{"p", 1.0}}), ir::makeOp("rotate", {{"p", 1.0}}), ir::makeOp("scale", {{"p", 1.0}}),
                 ir::makeOp("mul_noise", {{"p", 1.0}}), ir::makeOp("bias_field", {{"p", 1.0}}),
                 ir::makeOp("brightness", {{"p", 1.0}}), ir::makeOp("contrast", {{"p", 1.0}}),
                 ir::makeOp("gamma", {{"p", 1.0}}), ir::makeOp("noise", {{"p", 1.0}})}),
       {.target = true, .mask = true}},
      // Tricubic interpolation (image and target; the mask nearest) and a random patch.
      {pipeline({ir::makeOp("resample", {{"spacing", 0.8}, {"cubic", true}}),
                 ir::makeOp("crop", {{"size", Shape3{20, 18, 16}}, {"random", true}}), ir::makeOp("zscore")}),
       {.target = true, .mask = true}},
      {pipeline({ir::makeOp("elastic", {{"p", 1.0}, {"cubic", true}}), ir::makeOp("rotate", {{"p", 1.0}}),
                 ir::makeOp("scale", {{"p", 1.0}}), ir::makeOp("crop", {{"size", Shape3{12, 30, 9}}, {"random", true}}),
                 ir::makeOp("noise", {{"p", 1.0}})}),
       {.target = true, .mask = true}},
  };
  for (const auto& [pl, options] : cases) {
    for (const kir::Kernel& k : kir::lowerSegments(pl, options)) {
      bool libraryPass = false;
      for (const kir::Pass& pass : k.program.passes)
        libraryPass = libraryPass || pass.kind == kir::PassKind::Stencil ||
                      (pass.kind == kir::PassKind::Reduce && pass.reduce.op == kir::ReduceOp::Percentiles);
      if (libraryPass) continue;  // clip's percentiles: a library operation on the GPU
      for (uint32_t sample : {0u, 3u}) {
        kir::Binding b = kir::bind(k, in, 42, sample);
        compareWithInterpreter(k.program, b, image, mask, 4, sample == 0 ? 1u : 256u);
      }
    }
  }
}

TEST_CASE("nvrtc: the generated source compiles to PTX and to an sm_90 CUBIN") {
  const kir::cuda::Nvrtc* nvrtc = nvrtcOrSkip();
  if (nvrtc == nullptr) return;
  MESSAGE("NVRTC " << nvrtc->version() << " from " << nvrtc->path());
  kir::CudaModule m = kir::cudaModule(everyOp());
  std::string ptx = nvrtc->ptx(m.source);
  CHECK(ptx.find(".target sm_90") != std::string::npos);
  for (const kir::CudaKernel& k : m.kernels) CHECK(ptx.find(".entry " + k.name + "(") != std::string::npos);
  // No contraction: without transcendental functions (whose library code uses FMA on
  // purpose) there is no FMA at all, so coordinates and values are the interpreter's.
  kir::Kernel det = kir::lower(pipeline({ir::makeOp("resample", {{"spacing", 1.0}}),
                                         ir::makeOp("crop", {{"size", Shape3{20, 24, 28}}}), ir::makeOp("zscore")}),
                               {.target = false, .mask = true});
  std::string detPtx = nvrtc->ptx(kir::cudaSource(det.program));
  CHECK(detPtx.find("fma.rn") == std::string::npos);
  CHECK(detPtx.find("mul.rn.f32") != std::string::npos);
  std::vector<char> cubin = nvrtc->cubin(m.source);
  CHECK(kir::cuda::isElf(cubin));
  // ptxas accepts the PTX for the GPU host's architecture (where a toolkit is here).
  if (std::string(GYRUS_PTXAS).empty()) {
    MESSAGE("ptxas: skipped (no CUDA toolkit's ptxas found at configure time)");
  } else {
    fs::path dir = fs::temp_directory_path() / ("gyrus-ptxas-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "every_op.ptx") << ptx;
    std::string cmd = std::string(GYRUS_PTXAS) + " -arch=sm_90 -o " + (dir / "every_op.cubin").string() + " " +
                      (dir / "every_op.ptx").string();
    CHECK(std::system(cmd.c_str()) == 0);
    fs::remove_all(dir);
  }

  // A mistake in the source comes back with NVRTC's log.
  try {
    nvrtc->ptx("extern \"C\" __global__ void broken() { undeclared_name = 1; }");
    FAIL("expected a compile error");
  } catch (const kir::cuda::CompileError& e) {
    CHECK(std::string(e.what()).find("undeclared_name") != std::string::npos);
    CHECK(e.log().find("undeclared_name") != std::string::npos);
  }
}

TEST_CASE("nvrtc: programs differing in one constant have different keys and PTX, and the CUBIN cache") {
  const kir::cuda::Nvrtc* nvrtc = nvrtcOrSkip();
  if (nvrtc == nullptr) return;
  kir::Program a = everyOp(0.8f), b = everyOp(0.81f);
  kir::CudaModule ma = kir::cudaModule(a), mb = kir::cudaModule(b);
  CHECK(kir::hash(a) != kir::hash(b));
  CHECK(kir::cuda::cubinCacheKey(ma.source, nvrtc->version(), "sm_90") !=
        kir::cuda::cubinCacheKey(mb.source, nvrtc->version(), "sm_90"));
  CHECK(kir::cuda::cubinCacheKey(ma.source, nvrtc->version(), "sm_90") !=
        kir::cuda::cubinCacheKey(ma.source, nvrtc->version(), "sm_80"));
  CHECK(kir::cuda::cubinCacheKey(ma.source, "13.0", "sm_90") != kir::cuda::cubinCacheKey(ma.source, "13.1", "sm_90"));
  CHECK(nvrtc->ptx(ma.source) != nvrtc->ptx(mb.source));

  fs::path dir = fs::temp_directory_path() / ("gyrus-cubin-cache-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto disk = kir::cuda::CubinOptions().withCacheDir(dir.string()).withMemory(false);
  kir::cuda::CompiledModule first = kir::cuda::compileCubin(a, disk);
  CHECK(first.origin == kir::cuda::CompiledModule::Origin::Compiled);
  CHECK(kir::cuda::isElf(*first.cubin));
  const fs::path file = dir / (first.key + ".cubin");
  REQUIRE(fs::exists(file));
  kir::cuda::CompiledModule again = kir::cuda::compileCubin(a, disk);
  CHECK(again.origin == kir::cuda::CompiledModule::Origin::Disk);
  CHECK(*again.cubin == *first.cubin);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 1);
  // A truncated record is ignored and rewritten.
  fs::resize_file(file, fs::file_size(file) / 2);
  kir::cuda::CompiledModule repaired = kir::cuda::compileCubin(a, disk);
  CHECK(repaired.origin == kir::cuda::CompiledModule::Origin::Compiled);
  CHECK(kir::cuda::compileCubin(a, disk).origin == kir::cuda::CompiledModule::Origin::Disk);
  // Garbage of the right size is ignored too.
  {
    std::ofstream garbage(file, std::ios::binary | std::ios::trunc);
    garbage << std::string(1000, 'x');
  }
  CHECK(kir::cuda::compileCubin(a, disk).origin == kir::cuda::CompiledModule::Origin::Compiled);
  // The other program: another file.
  kir::cuda::CompiledModule other = kir::cuda::compileCubin(b, disk);
  CHECK(other.key != first.key);
  // The in-memory cache.
  auto memory = kir::cuda::CubinOptions().withCacheDir(dir.string());
  kir::cuda::compileCubin(a, memory);
  CHECK(kir::cuda::compileCubin(a, memory).origin == kir::cuda::CompiledModule::Origin::Memory);
  fs::remove_all(dir);
}

namespace {

/// Runs `program` on the GPU with the driver-API launcher: device copies of the inputs,
/// the outputs and slots copied back.
void compareOnDevice(const kir::Program& program, const kir::Binding& binding, const std::vector<float>& image,
                     const std::vector<float>& mask, double& worst) {
  const auto nIn = static_cast<size_t>(binding.in.shape[0] * binding.in.shape[1] * binding.in.shape[2]);
  const auto n = static_cast<size_t>(binding.out.shape[0] * binding.out.shape[1] * binding.out.shape[2]);
  std::vector<float> refImage(n), refTarget(n), refMask(n);
  kir::Binding refBinding = binding;
  kir::Buffers host;
  host.image = image.data();
  host.mask = mask.data();
  host.target = image.data();
  host.outImage = refImage.data();
  host.outTarget = program.hasTarget ? refTarget.data() : nullptr;
  host.outMask = program.hasMask ? refMask.data() : nullptr;
  kir::interpret(program, refBinding, host);

  namespace kc = kir::cuda;
  void* dImage = kc::deviceAlloc(nIn * 4);
  void* dMask = kc::deviceAlloc(nIn * 4);
  void* dOut[3] = {kc::deviceAlloc(n * 4), kc::deviceAlloc(n * 4), kc::deviceAlloc(n * 4)};
  kc::copyToDevice(dImage, image.data(), nIn * 4);
  kc::copyToDevice(dMask, mask.data(), nIn * 4);
  kc::DeviceBuffers buf;
  buf.image = dImage;
  buf.mask = dMask;
  buf.target = dImage;
  buf.outImage = dOut[0];
  buf.outTarget = program.hasTarget ? dOut[1] : nullptr;
  buf.outMask = program.hasMask ? dOut[2] : nullptr;
  kir::Binding b = binding;
  {
    kc::DeviceProgram gpu(program);
    for (int repeat = 0; repeat < 2; ++repeat) {  // the accumulators are left zeroed
      b = binding;
      gpu.run(b, buf, nullptr, {}, true);
    }
  }
  std::vector<float> gImage(n), gTarget(n), gMask(n);
  kc::copyToHost(gImage.data(), dOut[0], n * 4);
  kc::copyToHost(gTarget.data(), dOut[1], n * 4);
  kc::copyToHost(gMask.data(), dOut[2], n * 4);
  for (void* p : {dImage, dMask, dOut[0], dOut[1], dOut[2]}) kc::deviceFree(p);

  auto close = [&](const std::vector<float>& ref, const std::vector<float>& got, const char* what) {
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      double diff = std::abs(static_cast<double>(ref[i]) - got[i]);
      worst = std::max(worst, diff);
      if (diff > 1e-4 * std::max(1.0, std::abs(static_cast<double>(ref[i])))) ++bad;
    }
    CHECK_MESSAGE(bad == 0, what << ": " << bad << " voxels differ by more than 1e-4 (relative)");
  };
  close(refImage, gImage, "image");
  if (program.hasTarget) close(refTarget, gTarget, "target");
  if (program.hasMask) CHECK_MESSAGE(sameBits(refMask, gMask), "the mask differs at " << firstDifference(refMask, gMask));
  for (size_t s = 0; s < b.slots.size(); ++s)
    CHECK_MESSAGE(std::abs(b.slots[s] - refBinding.slots[s]) <= 1e-5f * std::max(1.0f, std::abs(refBinding.slots[s])),
                  "slot " << s << ": " << b.slots[s] << " against " << refBinding.slots[s]);
}

}  // namespace

TEST_CASE("device: the CUBIN on a GPU agrees with the interpreter (masks exactly)") {
  std::string why;
  if (!kir::cuda::deviceAvailable(&why)) {
    MESSAGE("skipped: " << why);
    return;
  }
  if (nvrtcOrSkip() == nullptr) return;
  double worst = 0;
  kir::Program p = everyOp();
  kir::Grid in{Shape3{53, 61, 47}, {1, 1, 1}}, out{Shape3{48, 56, 40}, {1, 1, 1}};
  std::vector<float> image = volume(in.shape, 3), mask = labels(in.shape);
  compareOnDevice(p, everyOpBinding(p, in, out), image, mask, worst);
  Shape3 shape{64, 72, 56};
  std::vector<float> image2 = volume(shape, 5), mask2 = labels(shape);
  for (const kir::Kernel& k :
       kir::lowerSegments(pipeline({ir::makeOp("resample", {{"spacing", 1.5}}), ir::makeOp("flip"), ir::makeOp("zscore"),
                                    ir::makeOp("gamma"), ir::makeOp("noise", {{"sigma", 0.3}})}),
                          {.target = true, .mask = true}))
    compareOnDevice(k.program, kir::bind(k, {shape, {1.2, 0.9, 2.0}}, 42, 3), image2, mask2, worst);
  for (const kir::Kernel& k :
       kir::lowerSegments(pipeline({ir::makeOp("resample", {{"spacing", 1.5}, {"cubic", true}}),
                                    ir::makeOp("rotate", {{"p", 1.0}}),
                                    ir::makeOp("crop", {{"size", Shape3{40, 36, 32}}, {"random", true}}), ir::makeOp("zscore")}),
                          {.target = true, .mask = true}))
    compareOnDevice(k.program, kir::bind(k, {shape, {1.2, 0.9, 2.0}}, 42, 5), image2, mask2, worst);
  MESSAGE("largest difference from the interpreter: " << worst);
}
