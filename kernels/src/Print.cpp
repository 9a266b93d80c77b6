// The canonical text of a kernel program and its hash (see Kernel.h).
#include <cstdio>
#include <sstream>

#include "gyrus/kernel/Kernel.h"
#include "gyrus/Sha256.h"

namespace gyrus::kir {

namespace {

const char* name(CoordOp op) {
  switch (op) {
    case CoordOp::Affine: return "affine";
    case CoordOp::Clamp: return "clamp";
    case CoordOp::Window: return "window";
    case CoordOp::Displace: return "displace";
  }
  return "?";
}
const char* name(Buffer b) { return b == Buffer::Image ? "image" : b == Buffer::Target ? "target" : "mask"; }
const char* name(Interp i) { return i == Interp::Linear ? "linear" : i == Interp::Cubic ? "cubic" : "nearest"; }
const char* name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Moments: return "moments";
    case ReduceOp::MinMax: return "minmax";
    case ReduceOp::Percentiles: return "percentiles";
  }
  return "?";
}
const char* name(StencilOp op) {
  switch (op) {
    case StencilOp::Blur: return "blur";
    case StencilOp::Ghost: return "ghost";
    case StencilOp::Ring: return "ring";
    case StencilOp::LowRes: return "lowres";
  }
  return "?";
}

/// A float constant that reads back to the same bits ("%.9g").
std::string number(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

std::string operand(const Operand& o) { return o.isSlot ? "s" + std::to_string(o.slot) : number(o.value); }

std::string operands(const std::vector<Operand>& args) {
  std::string s = "(";
  for (size_t i = 0; i < args.size(); ++i) s += (i ? ", " : "") + operand(args[i]);
  return s + ")";
}

void printChain(std::ostringstream& out, const Chain& chain, const char* indent) {
  for (const PointInstr& p : chain) {
    out << indent << toString(p.op) << operands(p.args);
    if (p.headOnly) out << " head";
    if (p.op == PointOp::AddNoise || p.op == PointOp::MulNoise) out << " stream " << p.stream;
    out << "    // " << p.origin << "\n";
  }
}

}  // namespace

const char* toString(PointOp op) {
  switch (op) {
    case PointOp::Affine: return "affine";
    case PointOp::Normalize: return "normalize";
    case PointOp::Clamp: return "clamp";
    case PointOp::Gamma: return "gamma";
    case PointOp::AddNoise: return "add_noise";
    case PointOp::MulNoise: return "mul_noise";
    case PointOp::Contrast: return "contrast";
    case PointOp::Bias: return "bias";
  }
  return "?";
}

std::string print(const Program& program) {
  std::ostringstream out;
  out << "kernel {\n";
  out << "  slots " << program.slots << "\n";
  for (size_t i = 0; i < program.slotNames.size(); ++i) out << "    s" << i << " = " << program.slotNames[i] << "\n";
  for (size_t i = 0; i < program.fields.size(); ++i) {
    const FieldSpec& f = program.fields[i];
    out << "  field f" << i << " " << f.shape[0] << "x" << f.shape[1] << "x" << f.shape[2] << " x3    // " << f.origin
        << "\n";
  }
  for (const Pass& pass : program.passes) {
    switch (pass.kind) {
      case PassKind::Gather:
        out << "  gather {\n";
        for (const CoordInstr& c : pass.coords) {
          out << "    " << name(c.op);
          if (c.op == CoordOp::Displace) out << " f" << c.field;
          out << operands(c.args) << "    // " << c.origin << "\n";
        }
        for (const GatherOutput& o : pass.outputs) {
          // The source is part of the key: a later segment's target reads its own.
          out << "    " << name(o.buffer) << " = sample " << name(o.interp);
          if (o.source != o.buffer) out << " from " << name(o.source);
          out << " {\n";
          printChain(out, o.chain, "      ");
          out << "    }\n";
        }
        out << "  }\n";
        break;
      case PassKind::Reduce:
        out << "  reduce " << name(pass.buffer) << " " << name(pass.reduce.op);
        if (pass.reduce.op == ReduceOp::Percentiles)
          out << "(" << number(pass.reduce.q0) << ", " << number(pass.reduce.q1) << ")";
        if (pass.reduce.nonzero) out << " nonzero";
        out << " -> s" << pass.reduce.out << ", s" << pass.reduce.out + 1 << "\n";
        break;
      case PassKind::Map:
        out << "  map " << name(pass.buffer) << " {\n";
        printChain(out, pass.chain, "    ");
        out << "  }\n";
        break;
      case PassKind::Stencil:
        out << "  stencil " << name(pass.buffer) << " " << name(pass.stencil.op) << operands(pass.stencil.args)
            << " when " << operand(pass.stencil.enabled) << "    // " << pass.stencil.origin << "\n";
        break;
    }
  }
  out << "}\n";
  return out.str();
}

std::string hash(const Program& program) {
  ir::Sha256 h;
  h.update("gyrus-kernel 1\n");
  h.update(print(program));
  return h.hex();
}

}  // namespace gyrus::kir
