// Kernel IR -> LLVM IR (see Codegen.h). Interp.cpp is the specification: each emitted
// instruction mirrors one line of it, in the same order, with no fast-math flag (no
// contraction, no reassociation). Integer voxel indices are 32-bit (the host refuses
// volumes of 2^31 voxels or more), so gathers vectorise with 32-bit lanes. A read that
// the interpreter skips (a voxel outside the grid) is here a read of a clamped, valid
// address whose value is replaced by 0, so the loop body has no branch.
#include "Codegen.h"

#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include "gyrus/kernel/Philox.h"

namespace gyrus::kir::jit {

namespace {

using llvm::Value;

class Emitter {
 public:
  Emitter(const Program& program, llvm::Module& module, llvm::TargetMachine& machine)
      : program_(program), module_(module), machine_(machine), ctx_(module.getContext()), b_(ctx_) {
    f32_ = b_.getFloatTy();
    i32_ = b_.getInt32Ty();
    i64_ = b_.getInt64Ty();
    fptr_ = llvm::Type::getFloatPtrTy(ctx_);
  }

  void emit(const Pass& pass, const std::string& name) {
    // Seven float pointers (sources, outputs, slots), the fields, dims, seed, sample, z range.
    std::vector<llvm::Type*> params(7, fptr_);
    params.insert(params.end(),
                  {llvm::PointerType::getUnqual(fptr_), llvm::Type::getInt64PtrTy(ctx_), i64_, i32_, i64_, i64_});
    auto* type = llvm::FunctionType::get(b_.getVoidTy(), params, false);
    fn_ = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module_);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    fn_->addFnAttr("target-cpu", machine_.getTargetCPU());
    fn_->addFnAttr("target-features", machine_.getTargetFeatureString());
    const char* names[] = {"src_image", "src_target", "src_mask", "out_image", "out_target", "out_mask", "slots",
                           "fields",    "dims",       "seed",     "sample",    "z_begin",    "z_end"};
    for (unsigned i = 0; i < params.size(); ++i) fn_->getArg(i)->setName(names[i]);
    for (unsigned i = 0; i < 9; ++i) {
      fn_->addParamAttr(i, llvm::Attribute::NoAlias);
      fn_->addParamAttr(i, llvm::Attribute::NoCapture);
      if (i < 3 || i > 5) fn_->addParamAttr(i, llvm::Attribute::ReadOnly);
    }
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", fn_));
    prologue(pass);
    Value* zBegin = b_.CreateTrunc(fn_->getArg(11), i32_, "z0");
    Value* zEnd = b_.CreateTrunc(fn_->getArg(12), i32_, "z1");
    loop(zBegin, zEnd, "z", false, [&](Value* z) {
      Value* zf = b_.CreateSIToFP(z, f32_, "zf");
      Value* uz = bias_ ? unit(zf, out_[2]) : nullptr;
      loop(b_.getInt32(0), out_[1], "y", false, [&](Value* y) {
        Value* yf = b_.CreateSIToFP(y, f32_, "yf");
        Value* uy = bias_ ? unit(yf, out_[1]) : nullptr;
        Value* row = b_.CreateNSWMul(out_[0], b_.CreateNSWAdd(y, b_.CreateNSWMul(out_[1], z)), "row");
        // A row at a time: the gather's reads (coordinates, interpolation) store each
        // output's row; then each instruction of a chain that is not skipped for this
        // sample (Kernel.h) runs over the row in place, one vectorisable loop each.
        if (pass.kind == PassKind::Gather) {
          gatherRow(pass, yf, zf, row);
          for (const GatherOutput& o : pass.outputs)
            chainRow(o.chain, fn_->getArg(3 + static_cast<unsigned>(o.buffer)), row, uy, uz);
        } else {
          chainRow(pass.chain, fn_->getArg(3 + static_cast<unsigned>(pass.buffer)), row, uy, uz);
        }
      });
    });
    b_.CreateRetVoid();
  }

 private:
  using Vec3 = std::array<Value*, 3>;
  struct Place {
    Value* index = nullptr;  ///< i32, the output's linear index
    Vec3 unit{};             ///< Bias: the position scaled to [-1, 1]
  };

  // ---- the function's invariants --------------------------------------------------------

  void prologue(const Pass& pass) {
    slots_.clear();
    std::set<int> used;
    auto note = [&](const std::vector<Operand>& args) {
      for (const Operand& o : args)
        if (o.isSlot) used.insert(o.slot);
    };
    bias_ = noise_ = false;
    auto chain = [&](const Chain& c) {
      for (const PointInstr& p : c) {
        note(p.args);
        bias_ = bias_ || p.op == PointOp::Bias;
        noise_ = noise_ || p.op == PointOp::AddNoise || p.op == PointOp::MulNoise;
      }
    };
    for (const CoordInstr& c : pass.coords) note(c.args);
    for (const GatherOutput& o : pass.outputs) chain(o.chain);
    chain(pass.chain);
    for (int s : used) {
      if (s < 0 || s >= program_.slots) throw std::invalid_argument("kernel codegen: an operand names no slot");
      Value* at = b_.CreateConstInBoundsGEP1_64(f32_, fn_->getArg(6), static_cast<uint64_t>(s));
      slots_[s] = b_.CreateLoad(f32_, at, "s" + std::to_string(s));
    }
    for (unsigned a = 0; a < 3; ++a) {
      auto dim = [&](unsigned i, const char* name) {
        Value* at = b_.CreateConstInBoundsGEP1_64(i64_, fn_->getArg(8), i);
        return b_.CreateTrunc(b_.CreateLoad(i64_, at), i32_, name);
      };
      in_[a] = dim(a, "in");
      out_[a] = dim(3 + a, "out");
      inF_[a] = b_.CreateSIToFP(in_[a], f32_, "in_f");
    }
    fields_.clear();
    for (const CoordInstr& c : pass.coords)
      if (c.op == CoordOp::Displace) {
        if (c.field < 0 || static_cast<size_t>(c.field) >= program_.fields.size())
          throw std::invalid_argument("kernel codegen: a displacement names no field");
        Value* at = b_.CreateConstInBoundsGEP1_64(fptr_, fn_->getArg(7), static_cast<uint64_t>(c.field));
        fields_[c.field] = b_.CreateLoad(fptr_, at, "field" + std::to_string(c.field));
      }
    if (noise_) {
      // Philox's round keys: (seed lo, seed hi) + r (W0, W1), computed once.
      Value* seed = fn_->getArg(9);
      Value *k0 = b_.CreateTrunc(seed, i32_), *k1 = b_.CreateTrunc(b_.CreateLShr(seed, 32), i32_);
      for (int r = 0; r < 10; ++r) {
        keys_[static_cast<size_t>(r)] = {k0, k1};
        k0 = b_.CreateAdd(k0, b_.getInt32(kPhiloxW0));
        k1 = b_.CreateAdd(k1, b_.getInt32(kPhiloxW1));
      }
    }
  }

  /// A loop over [begin, end) (i32); the body is emitted by `body(i)`. The x loop asks
  /// the vectoriser to vectorise (the cost model may judge gathers dear).
  template <class Body>
  void loop(Value* begin, Value* end, const std::string& name, bool vectorize, Body body) {
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(ctx_, name + ".loop", fn_);
    auto* inside = llvm::BasicBlock::Create(ctx_, name + ".body", fn_);
    auto* exit = llvm::BasicBlock::Create(ctx_, name + ".exit", fn_);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode* i = b_.CreatePHI(i32_, 2, name);
    i->addIncoming(begin, pre);
    b_.CreateCondBr(b_.CreateICmpSLT(i, end), inside, exit);
    b_.SetInsertPoint(inside);
    body(i);
    Value* next = b_.CreateNSWAdd(i, b_.getInt32(1));
    llvm::BranchInst* back = b_.CreateBr(header);
    if (vectorize) back->setMetadata(llvm::LLVMContext::MD_loop, vectorizeLoop());
    i->addIncoming(next, b_.GetInsertBlock());
    b_.SetInsertPoint(exit);
  }

  llvm::MDNode* vectorizeLoop() {
    llvm::Metadata* enable[] = {llvm::MDString::get(ctx_, "llvm.loop.vectorize.enable"),
                                llvm::ConstantAsMetadata::get(b_.getTrue())};
    llvm::TempMDTuple self = llvm::MDNode::getTemporary(ctx_, llvm::None);
    llvm::Metadata* ops[] = {self.get(), llvm::MDNode::get(ctx_, enable)};
    llvm::MDNode* id = llvm::MDNode::getDistinct(ctx_, ops);
    id->replaceOperandWith(0, id);
    return id;
  }

  // ---- arithmetic as the interpreter's C++ -----------------------------------------------

  Value* f(float v) { return llvm::ConstantFP::get(f32_, static_cast<double>(v)); }
  Value* operand(const Operand& o) { return o.isSlot ? slots_.at(o.slot) : f(o.value); }
  /// std::max(a, c): a < c ? c : a.
  Value* max(Value* a, Value* c) { return b_.CreateSelect(b_.CreateFCmpOLT(a, c), c, a); }
  /// std::min(a, c): c < a ? c : a.
  Value* min(Value* a, Value* c) { return b_.CreateSelect(b_.CreateFCmpOLT(c, a), c, a); }
  Value* call(llvm::Intrinsic::ID id, Value* v) { return b_.CreateUnaryIntrinsic(id, v); }
  Value* lerp(Value* a, Value* c, Value* w) { return b_.CreateFAdd(a, b_.CreateFMul(w, b_.CreateFSub(c, a))); }
  /// An integral float as an index, saturated to [lo, hi] first (NaN to lo), so a
  /// position far outside the grid gives a defined index that is still outside it.
  Value* index(Value* v, Value* lo, Value* hi) {
    Value* c =
        b_.CreateBinaryIntrinsic(llvm::Intrinsic::minnum, b_.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, v, lo), hi);
    return b_.CreateFPToSI(c, i32_);
  }
  Value* clampIndex(Value* i, Value* hi) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin,
                                    b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, i, b_.getInt32(0)), hi);
  }
  /// 2 i / (n - 1) - 1 for n > 1, else 0 (VoxelPlace::unit).
  Value* unit(Value* i, Value* n) {
    Value* top = b_.CreateSIToFP(b_.CreateSub(n, b_.getInt32(1)), f32_);
    Value* u = b_.CreateFSub(b_.CreateFDiv(b_.CreateFMul(f(2.0f), i), top), f(1.0f));
    return b_.CreateSelect(b_.CreateICmpSGT(n, b_.getInt32(1)), u, f(0.0f));
  }
  /// p'_i = ((m_i0 x + m_i1 y) + m_i2 z) + t_i.
  Vec3 affine(const std::vector<Operand>& args, const Vec3& p) {
    Vec3 r{};
    for (size_t i = 0; i < 3; ++i) {
      const Operand* m = &args[4 * i];
      r[i] = b_.CreateFAdd(b_.CreateFMul(operand(m[0]), p[0]), b_.CreateFMul(operand(m[1]), p[1]));
      r[i] = b_.CreateFAdd(r[i], b_.CreateFMul(operand(m[2]), p[2]));
      r[i] = b_.CreateFAdd(r[i], operand(m[3]));
    }
    return r;
  }
  Value* load(Value* base, Value* index) {
    return b_.CreateLoad(f32_, b_.CreateInBoundsGEP(f32_, base, b_.CreateSExt(index, i64_)));
  }

  // ---- interpolation ---------------------------------------------------------------------

  /// One axis of a trilinear read: the two neighbours (clamped into the grid), whether
  /// each is inside it, and the weight.
  struct Axis {
    Value *lo, *hi, *loInside, *hiInside, *w;
  };
  Axis axis(Value* p, unsigned a) {
    Value* fl = call(llvm::Intrinsic::floor, p);
    Value* i = index(fl, f(-2.0f), inF_[a]);
    Value* i1 = b_.CreateNSWAdd(i, b_.getInt32(1));
    Value* top = b_.CreateSub(in_[a], b_.getInt32(1));
    return {clampIndex(i, top), clampIndex(i1, top), b_.CreateICmpULT(i, in_[a]), b_.CreateICmpULT(i1, in_[a]),
            b_.CreateFSub(p, fl)};
  }
  Value* trilinear(Value* src, const Vec3& p) {
    Axis x = axis(p[0], 0), y = axis(p[1], 1), z = axis(p[2], 2);
    auto voxel = [&](bool xHi, bool yHi, bool zHi) {
      Value* inside = b_.CreateAnd(b_.CreateAnd(xHi ? x.hiInside : x.loInside, yHi ? y.hiInside : y.loInside),
                                   zHi ? z.hiInside : z.loInside);
      Value* row =
          b_.CreateNSWMul(in_[0], b_.CreateNSWAdd(yHi ? y.hi : y.lo, b_.CreateNSWMul(in_[1], zHi ? z.hi : z.lo)));
      Value* v = load(src, b_.CreateNSWAdd(xHi ? x.hi : x.lo, row));
      return b_.CreateSelect(inside, v, f(0.0f));
    };
    Value* c00 = lerp(voxel(false, false, false), voxel(true, false, false), x.w);
    Value* c10 = lerp(voxel(false, true, false), voxel(true, true, false), x.w);
    Value* c01 = lerp(voxel(false, false, true), voxel(true, false, true), x.w);
    Value* c11 = lerp(voxel(false, true, true), voxel(true, true, true), x.w);
    Value* blend = lerp(lerp(c00, c10, y.w), lerp(c01, c11, y.w), z.w);
    // At an integral position: the voxel itself (Kernel.h).
    Value* integral = b_.CreateAnd(b_.CreateAnd(b_.CreateFCmpOEQ(x.w, f(0.0f)), b_.CreateFCmpOEQ(y.w, f(0.0f))),
                                   b_.CreateFCmpOEQ(z.w, f(0.0f)));
    return b_.CreateSelect(integral, voxel(false, false, false), blend);
  }
  /// Catmull-Rom weights at fraction t (Interp.cpp's cubicWeights, operation by operation).
  std::array<Value*, 4> cubicWeights(Value* t) {
    auto mul = [&](Value* a, Value* c) { return b_.CreateFMul(a, c); };
    auto add = [&](Value* a, Value* c) { return b_.CreateFAdd(a, c); };
    return {mul(b_.CreateFSub(mul(add(mul(f(-0.5f), t), f(1.0f)), t), f(0.5f)), t),
            add(mul(mul(b_.CreateFSub(mul(f(1.5f), t), f(2.5f)), t), t), f(1.0f)),
            mul(add(mul(add(mul(f(-1.5f), t), f(2.0f)), t), f(0.5f)), t),
            mul(mul(b_.CreateFSub(mul(f(0.5f), t), f(0.5f)), t), t)};
  }
  /// Tricubic (Catmull-Rom): per axis the neighbours floor(p) - 1 .. floor(p) + 2 (clamped
  /// into the grid, whether each is inside it) and the weights; rows along x, then y, z.
  Value* tricubic(Value* src, const Vec3& p) {
    std::array<std::array<Value*, 4>, 3> at{}, inside{}, w{};
    Value* integral = b_.getTrue();
    for (unsigned a = 0; a < 3; ++a) {
      Value* fl = call(llvm::Intrinsic::floor, p[a]);
      // Saturated to [-3, n + 1]: beyond, every neighbour is outside (as the interpreter's).
      Value* base = index(fl, f(-3.0f), b_.CreateFAdd(inF_[a], f(1.0f)));
      Value* top = b_.CreateSub(in_[a], b_.getInt32(1));
      for (int i = 0; i < 4; ++i) {
        Value* k = b_.CreateNSWAdd(base, b_.getInt32(i - 1));
        at[a][static_cast<size_t>(i)] = clampIndex(k, top);
        inside[a][static_cast<size_t>(i)] = b_.CreateICmpULT(k, in_[a]);
      }
      Value* t = b_.CreateFSub(p[a], fl);
      w[a] = cubicWeights(t);
      integral = b_.CreateAnd(integral, b_.CreateFCmpOEQ(t, f(0.0f)));
    }
    auto voxel = [&](size_t i, size_t j, size_t k) {
      Value* ok = b_.CreateAnd(b_.CreateAnd(inside[0][i], inside[1][j]), inside[2][k]);
      Value* row = b_.CreateNSWMul(in_[0], b_.CreateNSWAdd(at[1][j], b_.CreateNSWMul(in_[1], at[2][k])));
      return b_.CreateSelect(ok, load(src, b_.CreateNSWAdd(at[0][i], row)), f(0.0f));
    };
    auto sum4 = [&](const std::array<Value*, 4>& wt, const std::array<Value*, 4>& v) {
      Value* r = b_.CreateFAdd(b_.CreateFMul(wt[0], v[0]), b_.CreateFMul(wt[1], v[1]));
      r = b_.CreateFAdd(r, b_.CreateFMul(wt[2], v[2]));
      return b_.CreateFAdd(r, b_.CreateFMul(wt[3], v[3]));
    };
    std::array<Value*, 4> planes{};
    for (size_t k = 0; k < 4; ++k) {
      std::array<Value*, 4> rows{};
      for (size_t j = 0; j < 4; ++j) {
        std::array<Value*, 4> v{};
        for (size_t i = 0; i < 4; ++i) v[i] = voxel(i, j, k);
        rows[j] = sum4(w[0], v);
      }
      planes[k] = sum4(w[1], rows);
    }
    // At an integral position: the voxel itself (Kernel.h).
    return b_.CreateSelect(integral, voxel(1, 1, 1), sum4(w[2], planes));
  }
  Value* nearest(Value* src, const Vec3& p) {
    Value* inside = b_.getTrue();
    Vec3 i{};
    for (unsigned a = 0; a < 3; ++a) {
      Value* k = index(call(llvm::Intrinsic::floor, b_.CreateFAdd(p[a], f(0.5f))), f(-1.0f), inF_[a]);
      inside = b_.CreateAnd(inside, b_.CreateICmpULT(k, in_[a]));
      i[a] = clampIndex(k, b_.CreateSub(in_[a], b_.getInt32(1)));
    }
    Value* at = b_.CreateNSWAdd(i[0], b_.CreateNSWMul(in_[0], b_.CreateNSWAdd(i[1], b_.CreateNSWMul(in_[1], i[2]))));
    return b_.CreateSelect(inside, load(src, at), f(0.0f));
  }
  /// The displacement d(q) of field `field` (Interp.cpp's fieldAt, all three components).
  Vec3 displacement(int field, Vec3 q) {
    const ir::Shape3& s = program_.fields[static_cast<size_t>(field)].shape;
    int64_t count = s[0] * s[1] * s[2];
    if (count <= 0 || 3 * count >= (int64_t{1} << 31))
      throw std::invalid_argument("kernel codegen: a displacement field of an unsupported size");
    std::array<Value*, 3> lo{}, hi{}, w{};
    for (size_t a = 0; a < 3; ++a) {
      Value* top = f(static_cast<float>(s[a] - 1));
      q[a] = min(max(q[a], f(0.0f)), top);
      Value* fl = call(llvm::Intrinsic::floor, q[a]);
      lo[a] = index(fl, f(0.0f), top);
      hi[a] = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smin, b_.CreateNSWAdd(lo[a], b_.getInt32(1)),
                                       b_.getInt32(static_cast<int32_t>(s[a] - 1)));
      w[a] = b_.CreateFSub(q[a], fl);
    }
    Value* data = fields_.at(field);
    Vec3 d{};
    for (int c = 0; c < 3; ++c) {
      auto at = [&](Value* i, Value* j, Value* k) {
        Value* row = b_.CreateNSWMul(b_.getInt32(static_cast<int32_t>(s[0])),
                                     b_.CreateNSWAdd(j, b_.CreateNSWMul(b_.getInt32(static_cast<int32_t>(s[1])), k)));
        Value* offset = b_.CreateNSWAdd(b_.getInt32(static_cast<int32_t>(c * count)), b_.CreateNSWAdd(i, row));
        return load(data, offset);
      };
      Value* c00 = lerp(at(lo[0], lo[1], lo[2]), at(hi[0], lo[1], lo[2]), w[0]);
      Value* c10 = lerp(at(lo[0], hi[1], lo[2]), at(hi[0], hi[1], lo[2]), w[0]);
      Value* c01 = lerp(at(lo[0], lo[1], hi[2]), at(hi[0], lo[1], hi[2]), w[0]);
      Value* c11 = lerp(at(lo[0], hi[1], hi[2]), at(hi[0], hi[1], hi[2]), w[0]);
      d[static_cast<size_t>(c)] = lerp(lerp(c00, c10, w[1]), lerp(c01, c11, w[1]), w[2]);
    }
    return d;
  }

  // ---- Philox4x32-10 (Philox.h) ----------------------------------------------------------

  Value* voxelNormal(Value* voxel, uint32_t stream) {
    std::array<Value*, 4> c = {voxel, b_.getInt32(stream), fn_->getArg(10), b_.getInt32(0)};
    for (size_t r = 0; r < 10; ++r) {
      Value* p0 = b_.CreateNUWMul(b_.CreateZExt(c[0], i64_), b_.getInt64(kPhiloxM0));
      Value* p1 = b_.CreateNUWMul(b_.CreateZExt(c[2], i64_), b_.getInt64(kPhiloxM1));
      Value *hi0 = b_.CreateTrunc(b_.CreateLShr(p0, 32), i32_), *lo0 = b_.CreateTrunc(p0, i32_);
      Value *hi1 = b_.CreateTrunc(b_.CreateLShr(p1, 32), i32_), *lo1 = b_.CreateTrunc(p1, i32_);
      c = {b_.CreateXor(b_.CreateXor(hi1, c[1]), keys_[r][0]), lo1, b_.CreateXor(b_.CreateXor(hi0, c[3]), keys_[r][1]),
           lo0};
    }
    auto uniform = [&](Value* bits) {
      Value* k = b_.CreateAdd(b_.CreateLShr(bits, 8), b_.getInt32(1));
      return b_.CreateFMul(b_.CreateUIToFP(k, f32_), f(0x1.0p-24f));
    };
    Value *u1 = uniform(c[0]), *u2 = uniform(c[1]);
    Value* radius = call(llvm::Intrinsic::sqrt, b_.CreateFMul(f(-2.0f), call(llvm::Intrinsic::log, u1)));
    return b_.CreateFMul(radius, call(llvm::Intrinsic::cos, b_.CreateFMul(f(6.28318530717958647692f), u2)));
  }

  // ---- the pointwise chain ---------------------------------------------------------------

  /// Whether `p` runs for this sample (not Kernel.h's `skipped`): an i1, folded to a
  /// constant when its operands are constants.
  Value* runs(const PointInstr& p) {
    auto arg = [&](size_t i) {
      if (i >= p.args.size()) throw std::invalid_argument("kernel codegen: '" + p.origin + "' lacks an operand");
      return operand(p.args[i]);
    };
    auto ne = [&](size_t i, float c) { return b_.CreateFCmpUNE(arg(i), f(c)); };
    constexpr float inf = std::numeric_limits<float>::infinity();
    switch (p.op) {
      case PointOp::Affine: return b_.CreateOr(ne(0, 1.0f), ne(1, 0.0f));
      case PointOp::Normalize: return b_.CreateOr(ne(0, 0.0f), ne(1, 1.0f));
      case PointOp::Clamp: return b_.CreateOr(ne(0, -inf), ne(1, inf));
      case PointOp::Gamma:
        return b_.CreateAnd(b_.CreateFCmpOGT(b_.CreateFSub(arg(2), arg(1)), f(0.0f)),
                            b_.CreateOr(ne(0, 1.0f), ne(3, 0.0f)));
      case PointOp::AddNoise:
      case PointOp::MulNoise: return ne(0, 0.0f);
      case PointOp::Contrast: return ne(0, 1.0f);
      case PointOp::Bias: {
        Value* any = b_.getFalse();
        for (size_t i = 0; i < 10; ++i) any = b_.CreateOr(any, ne(i, 0.0f));
        return any;
      }
    }
    throw std::invalid_argument("kernel codegen: no code for the pointwise instruction of '" + p.origin + "'");
  }

  /// Runs `instrs` over the row at `row` of `data` in place: per instruction, a branch
  /// on whether it runs for this sample, then its loop over x.
  void chainRow(const Chain& instrs, Value* data, Value* row, Value* uy, Value* uz) {
    for (const PointInstr& p : instrs) {
      Value* go = runs(p);
      if (auto* c = llvm::dyn_cast<llvm::ConstantInt>(go); c != nullptr && c->isZero()) continue;
      auto* body = llvm::BasicBlock::Create(ctx_, "instr", fn_);
      auto* after = llvm::BasicBlock::Create(ctx_, "instr.after", fn_);
      b_.CreateCondBr(go, body, after);
      b_.SetInsertPoint(body);
      loop(b_.getInt32(0), out_[0], "x", true, [&](Value* x) {
        Place at;
        at.index = b_.CreateNSWAdd(row, x, "index");
        if (p.op == PointOp::Bias) at.unit = {unit(b_.CreateSIToFP(x, f32_), out_[0]), uy, uz};
        Value* ptr = b_.CreateInBoundsGEP(f32_, data, b_.CreateSExt(at.index, i64_));
        b_.CreateStore(instruction(p, b_.CreateLoad(f32_, ptr), at), ptr);
      });
      b_.CreateBr(after);
      b_.SetInsertPoint(after);
    }
  }

  Value* instruction(const PointInstr& p, Value* v, const Place& at) {
    {
      auto arg = [&](size_t i) {
        if (i >= p.args.size()) throw std::invalid_argument("kernel codegen: '" + p.origin + "' lacks an operand");
        return operand(p.args[i]);
      };
      Value* r = nullptr;
      switch (p.op) {
        case PointOp::Affine: r = b_.CreateFAdd(b_.CreateFMul(arg(0), v), arg(1)); break;
        case PointOp::Normalize: r = b_.CreateFDiv(b_.CreateFSub(v, arg(0)), arg(1)); break;
        case PointOp::Clamp: r = min(max(v, arg(0)), arg(1)); break;
        case PointOp::Gamma: {
          Value *g = arg(0), *lo = arg(1), *hi = arg(2);
          Value* range = b_.CreateFSub(hi, lo);
          Value* t = min(max(b_.CreateFDiv(b_.CreateFSub(v, lo), range), f(0.0f)), f(1.0f));
          Value* invert = b_.CreateFCmpUNE(arg(3), f(0.0f));
          Value* base = b_.CreateSelect(invert, b_.CreateFSub(f(1.0f), t), t);
          Value* power = b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, base, g);
          Value* u = b_.CreateSelect(invert, b_.CreateFSub(f(1.0f), power), power);
          r = b_.CreateSelect(b_.CreateFCmpOGT(range, f(0.0f)), b_.CreateFAdd(lo, b_.CreateFMul(range, u)), v);
          break;
        }
        case PointOp::AddNoise: r = b_.CreateFAdd(v, b_.CreateFMul(arg(0), voxelNormal(at.index, p.stream))); break;
        case PointOp::MulNoise:
          r = b_.CreateFMul(v, b_.CreateFAdd(f(1.0f), b_.CreateFMul(arg(0), voxelNormal(at.index, p.stream))));
          break;
        case PointOp::Contrast: r = b_.CreateFAdd(b_.CreateFMul(b_.CreateFSub(v, arg(1)), arg(0)), arg(1)); break;
        case PointOp::Bias: {
          Value *x = at.unit[0], *y = at.unit[1], *z = at.unit[2];
          Value *xx = b_.CreateFMul(x, x), *yy = b_.CreateFMul(y, y), *zz = b_.CreateFMul(z, z);
          Value *xy = b_.CreateFMul(x, y), *xz = b_.CreateFMul(x, z), *yz = b_.CreateFMul(y, z);
          Value* terms[10] = {f(1.0f), x, y, z, xx, yy, zz, xy, xz, yz};
          Value* e = f(0.0f);
          for (size_t i = 0; i < 10; ++i) e = b_.CreateFAdd(e, b_.CreateFMul(arg(i), terms[i]));
          r = b_.CreateFMul(v, call(llvm::Intrinsic::exp, e));
          break;
        }
      }
      if (r == nullptr)
        throw std::invalid_argument("kernel codegen: no code for the pointwise instruction of '" + p.origin + "'");
      return p.headOnly ? b_.CreateSelect(b_.CreateFCmpOEQ(v, f(0.0f)), v, r) : r;
    }
  }

  // ---- the voxel of a gather, of a map ---------------------------------------------------

  /// The gather's reads of one row: coordinates and interpolation, each output's value
  /// stored (its chain follows, chainRow).
  void gatherRow(const Pass& pass, Value* yf, Value* zf, Value* row) {
    auto general = [&] {
      loop(b_.getInt32(0), out_[0], "x", true, [&](Value* x) {
        Value* index = b_.CreateNSWAdd(row, x, "index");
        gatherVoxel(pass, {b_.CreateSIToFP(x, f32_, "xf"), yf, zf}, index);
      });
    };
    // A coordinate program of Affine and Window steps only may, for this sample, be a
    // translation by whole voxels (no spatial operation, or none that fires but a crop):
    // then every position is integral and each output reads its voxel (Kernel.h: Linear
    // at an integral position), a contiguous copy of a source row.
    for (const CoordInstr& c : pass.coords)
      if (c.op != CoordOp::Affine && c.op != CoordOp::Window && c.op != CoordOp::Displace) return general();
    Value* fast = translation(pass);
    auto* fastBlock = llvm::BasicBlock::Create(ctx_, "row.translate", fn_);
    auto* slowBlock = llvm::BasicBlock::Create(ctx_, "row.general", fn_);
    auto* join = llvm::BasicBlock::Create(ctx_, "row.gathered", fn_);
    b_.CreateCondBr(fast, fastBlock, slowBlock);
    b_.SetInsertPoint(slowBlock);
    general();
    b_.CreateBr(join);
    b_.SetInsertPoint(fastBlock);
    translatedRow(pass, yf, zf, row);
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
  }

  /// Whether every Affine step of the coordinate program is the identity matrix with a
  /// whole translation of at most 2^20 voxels per axis, and every displacement field is
  /// all zero (an i1).
  Value* translation(const Pass& pass) {
    Value* ok = b_.getTrue();
    for (const CoordInstr& c : pass.coords) {
      if (c.op == CoordOp::Displace) {  // a field of zeros adds 0: p unchanged
        const auto slot = static_cast<uint64_t>(program_.fields.size()) + static_cast<uint64_t>(c.field);
        Value* flag = b_.CreateLoad(fptr_, b_.CreateConstInBoundsGEP1_64(fptr_, fn_->getArg(7), slot));
        ok = b_.CreateAnd(ok, b_.CreateICmpEQ(flag, llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(fptr_))));
        continue;
      }
      if (c.op != CoordOp::Affine) continue;
      if (c.args.size() < 12) throw std::invalid_argument("kernel codegen: '" + c.origin + "' lacks an operand");
      for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 4; ++j) {
          Value* v = operand(c.args[4 * i + j]);
          if (j == 3) {
            Value* whole = b_.CreateFCmpOEQ(call(llvm::Intrinsic::floor, v), v);
            Value* small = b_.CreateFCmpOLE(call(llvm::Intrinsic::fabs, v), f(1048576.0f));
            ok = b_.CreateAnd(ok, b_.CreateAnd(whole, small));
          } else {
            ok = b_.CreateAnd(ok, b_.CreateFCmpOEQ(v, f(i == j ? 1.0f : 0.0f)));
          }
        }
    }
    return ok;
  }

  /// The gather of one row when the coordinate program is a whole translation: the
  /// interpreter's p = ((1 x + 0 y) + 0 z) + t is then exactly x + t (integers below
  /// 2^24), its windows are the same comparisons, and both interpolations read the voxel.
  void translatedRow(const Pass& pass, Value* yf, Value* zf, Value* row) {
    Value* py = yf;
    Value* pz = zf;
    Value* tx = f(0.0f);
    Value* rowValid = b_.getTrue();
    struct XWindow {
      Value *shift, *top;
    };
    std::vector<XWindow> windows;
    for (const CoordInstr& c : pass.coords) {
      if (c.op == CoordOp::Displace) continue;  // a field of zeros (translation)
      if (c.op == CoordOp::Affine) {
        tx = b_.CreateFAdd(tx, operand(c.args[3]));
        py = b_.CreateFAdd(py, operand(c.args[7]));
        pz = b_.CreateFAdd(pz, operand(c.args[11]));
      } else {  // Window
        if (c.args.size() < 3) throw std::invalid_argument("kernel codegen: '" + c.origin + "' lacks an operand");
        windows.push_back({tx, b_.CreateFAdd(operand(c.args[0]), f(0.5f))});
        Value* p[2] = {py, pz};
        for (size_t a = 0; a < 2; ++a)
          rowValid = b_.CreateAnd(rowValid, b_.CreateAnd(b_.CreateFCmpOGT(p[a], f(-0.5f)),
                                                         b_.CreateFCmpOLT(p[a], b_.CreateFAdd(operand(c.args[a + 1]),
                                                                                              f(0.5f)))));
      }
    }
    Value* sy = b_.CreateFPToSI(py, i32_);
    Value* sz = b_.CreateFPToSI(pz, i32_);
    Value* shift = b_.CreateFPToSI(tx, i32_);
    rowValid = b_.CreateAnd(rowValid, b_.CreateAnd(b_.CreateICmpULT(sy, in_[1]), b_.CreateICmpULT(sz, in_[2])));
    // Source x = x + shift in [0, in0): x in [lo, hi), empty when the row reads nothing.
    Value* lo = clampIndex(b_.CreateNeg(shift), out_[0]);
    Value* hi = b_.CreateBinaryIntrinsic(llvm::Intrinsic::smax, clampIndex(b_.CreateSub(in_[0], shift), out_[0]), lo);
    lo = b_.CreateSelect(rowValid, lo, out_[0]);
    hi = b_.CreateSelect(rowValid, hi, out_[0]);
    Value* srcRow = b_.CreateSelect(
        rowValid, b_.CreateNSWMul(in_[0], b_.CreateNSWAdd(sy, b_.CreateNSWMul(in_[1], sz))), b_.getInt32(0));
    auto zeros = [&](Value* begin, Value* end) {
      loop(begin, end, "x", true, [&](Value* x) {
        Value* index = b_.CreateNSWAdd(row, x);
        for (const GatherOutput& o : pass.outputs)
          b_.CreateStore(f(0.0f), b_.CreateInBoundsGEP(f32_, fn_->getArg(3 + static_cast<unsigned>(o.buffer)),
                                                        b_.CreateSExt(index, i64_)));
      });
    };
    zeros(b_.getInt32(0), lo);
    loop(lo, hi, "x", true, [&](Value* x) {
      Value* xf = b_.CreateSIToFP(x, f32_);
      Value* valid = b_.getTrue();
      for (const XWindow& w : windows) {
        Value* px = b_.CreateFAdd(xf, w.shift);
        valid = b_.CreateAnd(valid, b_.CreateAnd(b_.CreateFCmpOGT(px, f(-0.5f)), b_.CreateFCmpOLT(px, w.top)));
      }
      Value* at = b_.CreateNSWAdd(srcRow, b_.CreateNSWAdd(x, shift));
      Value* index = b_.CreateNSWAdd(row, x);
      for (const GatherOutput& o : pass.outputs) {
        Value* v = load(fn_->getArg(static_cast<unsigned>(o.source)), at);
        if (!windows.empty()) v = b_.CreateSelect(valid, v, f(0.0f));
        b_.CreateStore(v, b_.CreateInBoundsGEP(f32_, fn_->getArg(3 + static_cast<unsigned>(o.buffer)),
                                               b_.CreateSExt(index, i64_)));
      }
    });
    zeros(hi, out_[0]);
  }

  void gatherVoxel(const Pass& pass, Vec3 p, Value* index) {
    Value* valid = b_.getTrue();
    for (const CoordInstr& c : pass.coords) {
      if (c.op != CoordOp::Affine && c.op != CoordOp::Clamp && c.op != CoordOp::Window && c.op != CoordOp::Displace)
        throw std::invalid_argument("kernel codegen: no code for the coordinate instruction of '" + c.origin + "'");
      auto need = [&](size_t n) {
        if (c.args.size() < n) throw std::invalid_argument("kernel codegen: '" + c.origin + "' lacks an operand");
      };
      switch (c.op) {
        case CoordOp::Affine:
          need(12);
          p = affine(c.args, p);
          break;
        case CoordOp::Clamp:
          need(3);
          for (size_t a = 0; a < 3; ++a) p[a] = min(max(p[a], f(0.0f)), operand(c.args[a]));
          break;
        case CoordOp::Window:
          need(3);
          for (size_t a = 0; a < 3; ++a) {
            Value* inside = b_.CreateAnd(b_.CreateFCmpOGT(p[a], f(-0.5f)),
                                         b_.CreateFCmpOLT(p[a], b_.CreateFAdd(operand(c.args[a]), f(0.5f))));
            valid = b_.CreateAnd(valid, inside);
          }
          break;
        case CoordOp::Displace: {
          need(12);
          Vec3 d = displacement(c.field, affine(c.args, p));
          for (size_t a = 0; a < 3; ++a) p[a] = b_.CreateFAdd(p[a], d[a]);
          break;
        }
      }
    }
    for (const GatherOutput& o : pass.outputs) {
      Value* src = fn_->getArg(static_cast<unsigned>(o.source));
      Value* v = o.interp == Interp::Linear  ? trilinear(src, p)
                 : o.interp == Interp::Cubic ? tricubic(src, p)
                                             : nearest(src, p);
      v = b_.CreateSelect(valid, v, f(0.0f));
      Value* out = fn_->getArg(3 + static_cast<unsigned>(o.buffer));
      b_.CreateStore(v, b_.CreateInBoundsGEP(f32_, out, b_.CreateSExt(index, i64_)));
    }
  }

  const Program& program_;
  llvm::Module& module_;
  llvm::TargetMachine& machine_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  llvm::Type *f32_, *i32_, *i64_, *fptr_;
  // The current function's invariants (its entry block).
  llvm::Function* fn_ = nullptr;
  std::map<int, Value*> slots_, fields_;
  Vec3 in_{}, out_{}, inF_{};
  std::array<std::array<Value*, 2>, 10> keys_{};
  bool bias_ = false, noise_ = false;
};

const char* bufferName(Buffer b) { return b == Buffer::Image ? "image" : b == Buffer::Target ? "target" : "mask"; }

}  // namespace

std::string passFunctionName(const Program& program, size_t index, const std::string& prefix) {
  const Pass& pass = program.passes.at(index);
  if (pass.kind == PassKind::Gather) return prefix + "_pass" + std::to_string(index) + "_gather";
  if (pass.kind == PassKind::Map) return prefix + "_pass" + std::to_string(index) + "_map_" + bufferName(pass.buffer);
  return {};
}

Generated generate(const Program& program, const std::string& prefix, llvm::LLVMContext& context,
                   llvm::TargetMachine& machine) {
  Generated g;
  g.module = std::make_unique<llvm::Module>(prefix, context);
  g.module->setDataLayout(machine.createDataLayout());
  g.module->setTargetTriple(machine.getTargetTriple().str());
  Emitter emitter(program, *g.module, machine);
  for (size_t i = 0; i < program.passes.size(); ++i) {
    g.functions.push_back(passFunctionName(program, i, prefix));
    if (!g.functions.back().empty()) emitter.emit(program.passes[i], g.functions.back());
  }
  std::string problems;
  llvm::raw_string_ostream os(problems);
  if (llvm::verifyModule(*g.module, &os)) throw std::logic_error("kernel codegen: invalid LLVM IR: " + os.str());
  return g;
}

void optimize(llvm::Module& module, llvm::TargetMachine& machine, bool vectorMath) {
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  tuning.LoopUnrolling = true;
  llvm::LoopAnalysisManager loops;
  llvm::FunctionAnalysisManager functions;
  llvm::CGSCCAnalysisManager cgscc;
  llvm::ModuleAnalysisManager modules;
  llvm::PassBuilder builder(&machine, tuning);
  // The library the vectoriser may call: registered before the defaults, so it wins.
  llvm::TargetLibraryInfoImpl library(machine.getTargetTriple());
  if (vectorMath) library.addVectorizableFunctionsFromVecLib(llvm::TargetLibraryInfoImpl::LIBMVEC_X86);
  functions.registerPass([&] { return llvm::TargetLibraryAnalysis(library); });
  builder.registerModuleAnalyses(modules);
  builder.registerCGSCCAnalyses(cgscc);
  builder.registerFunctionAnalyses(functions);
  builder.registerLoopAnalyses(loops);
  builder.crossRegisterProxies(loops, functions, cgscc, modules);
  llvm::ModulePassManager passes = builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  passes.run(module, modules);
}

}  // namespace gyrus::kir::jit
