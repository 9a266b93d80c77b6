// Deterministic printers of the AST: a tree dump for `gyrus emit --stage=ast` and a
// canonical source form of expressions (used in messages and the typed print).
#include <cmath>
#include <cstdio>

#include "gyrus/Ast.h"

namespace gyrus::ast {

std::string_view toString(BinaryOp op) {
  switch (op) {
    case BinaryOp::Pow: return "^";
    case BinaryOp::Mul: return "*";
    case BinaryOp::Div: return "/";
    case BinaryOp::Add: return "+";
    case BinaryOp::Sub: return "-";
    case BinaryOp::Range: return "..";
    case BinaryOp::Compose: return ">>";
    case BinaryOp::Apply: return "|>";
  }
  return "?";
}

std::string_view toString(BindKind k) {
  switch (k) {
    case BindKind::Dataset: return "dataset";
    case BindKind::Pipeline: return "pipeline";
    case BindKind::Encoder: return "encoder";
    case BindKind::Objective: return "objective";
    case BindKind::Let: return "let";
  }
  return "let";
}

namespace {

std::string formatNumber(double v, bool isInteger) {
  if (isInteger && std::fabs(v) < 9.007199254740992e15) return std::to_string(static_cast<int64_t>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shortest representation that round-trips.
  for (int prec = 1; prec <= 17; ++prec) {
    char tmp[32];
    std::snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (std::strtod(tmp, nullptr) == v) return tmp;
  }
  return buf;
}

int precedence(const Expr& e) {
  if (const auto* b = e.as<ExprBinary>()) {
    switch (b->op) {
      case BinaryOp::Pow: return 7;
      case BinaryOp::Mul: case BinaryOp::Div: return 6;
      case BinaryOp::Add: case BinaryOp::Sub: return 5;
      case BinaryOp::Range: return 4;
      case BinaryOp::Compose: return 3;
      case BinaryOp::Apply: return 2;
    }
  }
  if (e.is<ExprUnary>()) return 8;
  return 10;
}

void printArgs(const std::vector<Arg>& args, std::string& out);
void print(const Expr& e, std::string& out);

// An operand, in parentheses when its precedence needs them.
void printOperand(const Expr& operand, bool paren, std::string& out) {
  if (paren) out += "(";
  print(operand, out);
  if (paren) out += ")";
}

void print(const Expr& e, std::string& out) {
  switch (e.kind) {
    case NodeKind::ExprNumber: {
      const auto& n = static_cast<const ExprNumber&>(e);
      out += formatNumber(n.value, n.isInteger);
      return;
    }
    case NodeKind::ExprQuantity: {
      const auto& q = static_cast<const ExprQuantity&>(e);
      out += formatNumber(q.value, q.isInteger) + q.unit;
      return;
    }
    case NodeKind::ExprShape: {
      const auto& s = static_cast<const ExprShape&>(e);
      for (size_t i = 0; i < s.dims.size(); ++i) out += (i ? "x" : "") + std::to_string(s.dims[i]);
      return;
    }
    case NodeKind::ExprString: {
      out += '"';
      for (char c : static_cast<const ExprString&>(e).value) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
          out += "\\n";
          continue;
        }
        out += c;
      }
      out += '"';
      return;
    }
    case NodeKind::ExprBool: out += static_cast<const ExprBool&>(e).value ? "true" : "false"; return;
    case NodeKind::ExprName: out += static_cast<const ExprName&>(e).name; return;
    case NodeKind::ExprMember: {
      const auto& m = static_cast<const ExprMember&>(e);
      print(*m.base, out);
      out += "." + m.name;
      return;
    }
    case NodeKind::ExprCall: {
      const auto& c = static_cast<const ExprCall&>(e);
      print(*c.callee, out);
      printArgs(c.args, out);
      return;
    }
    case NodeKind::ExprUnary: {
      const auto& u = static_cast<const ExprUnary&>(e);
      out += "-";
      printOperand(*u.operand, precedence(*u.operand) < precedence(e), out);
      return;
    }
    case NodeKind::ExprBinary: {
      const auto& b = static_cast<const ExprBinary&>(e);
      int p = precedence(e);
      bool rightAssoc = b.op == BinaryOp::Pow;
      bool lp = precedence(*b.lhs) < p || (rightAssoc && precedence(*b.lhs) == p);
      bool rp = precedence(*b.rhs) < p || (!rightAssoc && precedence(*b.rhs) == p);
      printOperand(*b.lhs, lp, out);
      out += b.op == BinaryOp::Pow ? "^" : " " + std::string(toString(b.op)) + " ";
      printOperand(*b.rhs, rp, out);
      return;
    }
    case NodeKind::ExprList: {
      const auto& l = static_cast<const ExprList&>(e);
      out += "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        print(*l.items[i], out);
      }
      out += "]";
      return;
    }
    case NodeKind::ExprRecord: {
      const auto& r = static_cast<const ExprRecord&>(e);
      if (r.fields.empty()) {
        out += "{}";
        return;
      }
      out += "{ ";
      for (size_t i = 0; i < r.fields.size(); ++i) {
        if (i) out += ", ";
        out += r.fields[i].name + " = ";
        print(*r.fields[i].value, out);
      }
      out += " }";
      return;
    }
    default: out += "<?>"; return;
  }
}

void printArgs(const std::vector<Arg>& args, std::string& out) {
  out += "(";
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) out += ", ";
    if (!args[i].name.empty()) out += args[i].name + " = ";
    print(*args[i].value, out);
  }
  out += ")";
}

std::string at(const SourceManager& sm, SourceRange r) {
  LineCol lc = sm.lineCol(r.file, r.begin);
  return std::to_string(lc.line) + ":" + std::to_string(lc.col);
}

void dumpExpr(const SourceManager& sm, const Expr& e, int depth, std::string& out);

void dumpArgs(const SourceManager& sm, const std::vector<Arg>& args, int depth, std::string& out) {
  for (const Arg& a : args) {
    out += std::string(depth * 2, ' ') + "Arg" + (a.name.empty() ? std::string() : " " + a.name) + "\n";
    dumpExpr(sm, *a.value, depth + 1, out);
  }
}

void dumpExpr(const SourceManager& sm, const Expr& e, int depth, std::string& out) {
  std::string pad(depth * 2, ' ');
  std::string where = " @" + at(sm, e.range);
  switch (e.kind) {
    case NodeKind::ExprMember: {
      const auto& m = static_cast<const ExprMember&>(e);
      out += pad + "Member ." + m.name + where + "\n";
      dumpExpr(sm, *m.base, depth + 1, out);
      return;
    }
    case NodeKind::ExprCall: {
      const auto& c = static_cast<const ExprCall&>(e);
      out += pad + "Call" + where + "\n";
      dumpExpr(sm, *c.callee, depth + 1, out);
      dumpArgs(sm, c.args, depth + 1, out);
      return;
    }
    case NodeKind::ExprUnary: {
      out += pad + "Unary -" + where + "\n";
      dumpExpr(sm, *static_cast<const ExprUnary&>(e).operand, depth + 1, out);
      return;
    }
    case NodeKind::ExprBinary: {
      const auto& b = static_cast<const ExprBinary&>(e);
      out += pad + "Binary " + std::string(toString(b.op)) + where + "\n";
      dumpExpr(sm, *b.lhs, depth + 1, out);
      dumpExpr(sm, *b.rhs, depth + 1, out);
      return;
    }
    case NodeKind::ExprList: {
      out += pad + "List" + where + "\n";
      for (const Expr* i : static_cast<const ExprList&>(e).items) dumpExpr(sm, *i, depth + 1, out);
      return;
    }
    case NodeKind::ExprRecord: {
      out += pad + "Record" + where + "\n";
      for (const RecordField& f : static_cast<const ExprRecord&>(e).fields) {
        out += pad + "  Field " + f.name + " @" + at(sm, f.nameRange) + "\n";
        dumpExpr(sm, *f.value, depth + 2, out);
      }
      return;
    }
    default: {
      static const char* names[] = {"Number", "Quantity", "Shape", "String", "Bool", "Name"};
      out += pad + names[static_cast<int>(e.kind)] + " " + printExpr(e) + where + "\n";
      return;
    }
  }
}

}  // namespace

std::string printExpr(const Expr& e) {
  std::string out;
  print(e, out);
  return out;
}

std::string printAst(const SourceManager& sm, const File& file) {
  std::string out = "File " + sm.file(file.id).path + "\n";
  for (const Decl* d : file.decls) {
    std::string where = " @" + at(sm, d->range);
    if (const auto* b = d->as<DeclBind>()) {
      out += "  Bind " + std::string(toString(b->bindKind)) + " " + b->name + where + "\n";
      dumpExpr(sm, *b->value, 2, out);
    } else if (const auto* p = d->as<DeclPretrain>()) {
      out += "  Pretrain " + p->name + where + "\n";
      for (const Field& f : p->fields) {
        out += "    Field " + f.name + "\n";
        dumpExpr(sm, *f.value, 3, out);
      }
    } else if (const auto* u = d->as<DeclUse>()) {
      std::string target = u->file.empty() ? std::string() : "\"" + u->file + "\"";
      for (size_t k = 0; k < u->module.size(); ++k) target += (k ? "." : "") + u->module[k];
      out += "  Use " + target + where + "\n";
    } else if (const auto* sw = d->as<DeclSweep>()) {
      std::string paths;
      for (size_t i = 0; i < sw->paths.size(); ++i) {
        if (i) paths += ", ";
        for (size_t k = 0; k < sw->paths[i].size(); ++k) paths += (k ? "." : "") + sw->paths[i][k];
      }
      out += "  Sweep " + paths + where + "\n";
      dumpExpr(sm, *sw->values, 2, out);
    } else if (const auto* e = d->as<DeclEvaluate>()) {
      std::string task;
      for (size_t i = 0; i < e->task.size(); ++i) task += (i ? "." : "") + e->task[i];
      out += "  Evaluate " + e->name + " model=" + e->model + " task=" + task + where + "\n";
      dumpArgs(sm, e->args, 2, out);
    }
  }
  return out;
}

}  // namespace gyrus::ast
