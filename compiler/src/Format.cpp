// The formatter (see Format.h).
#include "gyrus/Format.h"

#include <algorithm>
#include <cstdint>

#include "gyrus/Parse.h"

namespace gyrus {
namespace {

class Formatter {
 public:
  Formatter(const SourceManager& sm, FileId id) : sm_(sm), id_(id), text_(sm.file(id).text), comments_(comments(sm, id)) {}

  std::string run(const ast::File& file) {
    uint32_t prevEnd = 0;
    bool first = true;
    for (const ast::Decl* d : file.decls) {
      SourceRange r = d->range;
      // Comments before the declaration, each on its own line.
      bool blankBefore = !first && hasBlankLine(prevEnd, firstCommentOrBegin(prevEnd, r.begin));
      if (blankBefore) out_ += "\n";
      emitLeadingComments(prevEnd, r.begin);
      // A comment the layout cannot place (inside an expression, outside a record
      // literal) keeps the declaration as written.
      bool verbatim = d->is<ast::DeclPretrain>() ? commentInside(r.begin, d->nameRange.end + 1)
                                                 : looseComment(r.begin, r.end, recordsOf(*d));
      if (verbatim) {
        out_ += std::string(sm_.text(r));
      } else {
        decl(*d);
      }
      prevEnd = r.end;
      emitTrailingComment(prevEnd);
      out_ += "\n";
      first = false;
    }
    // Comments after the last declaration.
    bool any = false;
    for (const SourceRange& c : comments_) {
      if (c.begin < prevEnd || used(c)) continue;
      if (!any && !first && hasBlankLine(prevEnd, c.begin)) out_ += "\n";
      any = true;
      out_ += std::string(sm_.text(c)) + "\n";
      markUsed(c);
    }
    return out_;
  }

 private:
  // ---- comments ----
  bool used(const SourceRange& c) const { return std::find(used_.begin(), used_.end(), c.begin) != used_.end(); }
  void markUsed(const SourceRange& c) { used_.push_back(c.begin); }

  uint32_t firstCommentOrBegin(uint32_t from, uint32_t begin) const {
    for (const SourceRange& c : comments_)
      if (c.begin >= from && c.begin < begin && !used(c)) return c.begin;
    return begin;
  }

  bool hasBlankLine(uint32_t from, uint32_t to) const {
    int newlines = 0;
    for (uint32_t i = from; i < to && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        if (++newlines >= 2) return true;
      } else if (text_[i] != ' ' && text_[i] != '\t' && text_[i] != '\r') {
        newlines = 0;
      }
    }
    return false;
  }

  bool sameLine(uint32_t a, uint32_t b) const {
    for (uint32_t i = std::min(a, b); i < std::max(a, b) && i < text_.size(); ++i)
      if (text_[i] == '\n') return false;
    return true;
  }

  // The comments in [from, to), each on its own line.
  std::string leadingComments(uint32_t from, uint32_t to, const std::string& indent) {
    std::string out;
    uint32_t last = from;
    bool any = false;
    for (const SourceRange& c : comments_) {
      if (c.begin < from || c.begin >= to || used(c)) continue;
      if (any && hasBlankLine(last, c.begin)) out += "\n";
      out += indent + std::string(sm_.text(c)) + "\n";
      markUsed(c);
      last = c.end;
      any = true;
    }
    if (any && hasBlankLine(last, to)) out += "\n";
    return out;
  }
  void emitLeadingComments(uint32_t from, uint32_t to, const std::string& indent = "") {
    out_ += leadingComments(from, to, indent);
  }

  // The first comment after `end` when it starts on the same line (and before `limit`).
  std::string trailingComment(uint32_t end, uint32_t limit = UINT32_MAX) {
    for (const SourceRange& c : comments_) {
      if (c.begin < end || used(c)) continue;
      if (sameLine(end, c.begin) && c.begin < limit) {
        markUsed(c);
        return "  " + std::string(sm_.text(c));
      }
      return std::string();
    }
    return std::string();
  }
  void emitTrailingComment(uint32_t end) { out_ += trailingComment(end); }

  bool commentInside(uint32_t begin, uint32_t end) const {
    for (const SourceRange& c : comments_)
      if (c.begin > begin && c.begin < end) return true;
    return false;
  }

  // A comment in (begin, end) outside every record literal in `records`: the record
  // formatter places comments between fields; any other one is kept as written.
  bool looseComment(uint32_t begin, uint32_t end, const std::vector<SourceRange>& records) const {
    for (const SourceRange& c : comments_) {
      if (c.begin <= begin || c.begin >= end) continue;
      bool inRecord = false;
      for (const SourceRange& r : records) inRecord = inRecord || (c.begin > r.begin && c.begin < r.end);
      if (!inRecord) return true;
    }
    return false;
  }

  // The source ranges of the record literals in an expression or a declaration.
  static void collectRecords(const ast::Expr* e, std::vector<SourceRange>& out) {
    if (e == nullptr) return;
    switch (e->kind) {
      case ast::NodeKind::ExprMember: collectRecords(static_cast<const ast::ExprMember*>(e)->base, out); return;
      case ast::NodeKind::ExprCall: {
        const auto* c = static_cast<const ast::ExprCall*>(e);
        collectRecords(c->callee, out);
        for (const ast::Arg& a : c->args) collectRecords(a.value, out);
        return;
      }
      case ast::NodeKind::ExprUnary: collectRecords(static_cast<const ast::ExprUnary*>(e)->operand, out); return;
      case ast::NodeKind::ExprBinary: {
        const auto* b = static_cast<const ast::ExprBinary*>(e);
        collectRecords(b->lhs, out);
        collectRecords(b->rhs, out);
        return;
      }
      case ast::NodeKind::ExprList:
        for (const ast::Expr* i : static_cast<const ast::ExprList*>(e)->items) collectRecords(i, out);
        return;
      case ast::NodeKind::ExprRecord:
        out.push_back(e->range);
        for (const ast::RecordField& f : static_cast<const ast::ExprRecord*>(e)->fields) collectRecords(f.value, out);
        return;
      default: return;
    }
  }
  static std::vector<SourceRange> recordsOf(const ast::Expr& e) {
    std::vector<SourceRange> out;
    collectRecords(&e, out);
    return out;
  }
  static std::vector<SourceRange> recordsOf(const ast::Decl& d) {
    std::vector<SourceRange> out;
    if (const auto* b = d.as<ast::DeclBind>()) {
      collectRecords(b->value, out);
      for (const ast::Param& p : b->params) collectRecords(p.value, out);
    } else if (const auto* e = d.as<ast::DeclEvaluate>()) {
      for (const ast::Arg& a : e->args) collectRecords(a.value, out);
    } else if (const auto* s = d.as<ast::DeclSweep>()) {
      collectRecords(s->values, out);
    }
    return out;
  }

  // ---- declarations ----
  void decl(const ast::Decl& d) {
    indent_.clear();
    if (const auto* b = d.as<ast::DeclBind>()) {
      out_ += std::string(ast::toString(b->bindKind)) + " " + b->name;
      if (b->isFunction) {
        out_ += "(";
        for (size_t i = 0; i < b->params.size(); ++i) {
          out_ += (i ? ", " : "") + b->params[i].name;
          if (b->params[i].value != nullptr) out_ += " = " + expr(*b->params[i].value);
        }
        out_ += ")";
      }
      out_ += " = " + expr(*b->value);
    } else if (const auto* p = d.as<ast::DeclPretrain>()) {
      pretrain(*p);
    } else if (const auto* e = d.as<ast::DeclEvaluate>()) {
      out_ += "evaluate ";
      if (e->explicitName) out_ += e->name + " = ";
      out_ += e->model + " on ";
      for (size_t i = 0; i < e->task.size(); ++i) out_ += (i ? "." : "") + e->task[i];
      if (!e->args.empty()) out_ += " " + args(e->args);
    } else if (const auto* u = d.as<ast::DeclUse>()) {
      out_ += "use " + (u->file.empty() ? std::string() : std::string(sm_.text(u->targetRange)));
      for (size_t k = 0; k < u->module.size(); ++k) out_ += (k ? "." : "") + u->module[k];
    } else if (const auto* s = d.as<ast::DeclSweep>()) {
      out_ += "sweep ";
      for (size_t i = 0; i < s->paths.size(); ++i) {
        if (i) out_ += ", ";
        for (size_t k = 0; k < s->paths[i].size(); ++k) out_ += (k ? "." : "") + s->paths[i][k];
      }
      out_ += " in " + expr(*s->values);
    }
  }

  void pretrain(const ast::DeclPretrain& p) {
    out_ += "pretrain " + p.name + " {\n";
    size_t width = 0;
    for (const ast::Field& f : p.fields) width = std::max(width, f.name.size());
    uint32_t prev = p.nameRange.end;
    for (const ast::Field& f : p.fields) {
      SourceRange fr{id_, f.nameRange.begin, f.value->range.end};
      emitLeadingComments(prev, fr.begin, "  ");
      if (looseComment(fr.begin, fr.end, recordsOf(*f.value))) {
        out_ += "  " + std::string(sm_.text(fr));  // a comment inside the field: as written
      } else {
        indent_ = "  ";
        out_ += "  " + f.name + std::string(width - f.name.size(), ' ') + " = " + expr(*f.value);
        indent_.clear();
      }
      prev = fr.end;
      emitTrailingComment(prev);
      out_ += "\n";
    }
    emitLeadingComments(prev, p.range.end - 1, "  ");
    out_ += "}";
  }

  // ---- expressions ----
  static int precedence(const ast::Expr& e) {
    if (const auto* b = e.as<ast::ExprBinary>()) {
      switch (b->op) {
        case ast::BinaryOp::Pow: return 7;
        case ast::BinaryOp::Mul: case ast::BinaryOp::Div: return 6;
        case ast::BinaryOp::Add: case ast::BinaryOp::Sub: return 5;
        case ast::BinaryOp::Range: return 4;
        case ast::BinaryOp::Compose: return 3;
        case ast::BinaryOp::Apply: return 2;
      }
    }
    if (e.is<ast::ExprUnary>()) return 8;
    return 10;
  }

  std::string args(const std::vector<ast::Arg>& a) {
    std::string out = "(";
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out += ", ";
      if (!a[i].name.empty()) out += a[i].name + " = ";
      out += expr(*a[i].value);
    }
    return out + ")";
  }

  std::string expr(const ast::Expr& e) {
    switch (e.kind) {
      case ast::NodeKind::ExprNumber:
      case ast::NodeKind::ExprQuantity:
      case ast::NodeKind::ExprShape:
      case ast::NodeKind::ExprString:
      case ast::NodeKind::ExprBool:
      case ast::NodeKind::ExprName: return std::string(sm_.text(e.range));
      case ast::NodeKind::ExprMember: {
        const auto& m = static_cast<const ast::ExprMember&>(e);
        return expr(*m.base) + "." + m.name;
      }
      case ast::NodeKind::ExprCall: {
        const auto& c = static_cast<const ast::ExprCall&>(e);
        return expr(*c.callee) + args(c.args);
      }
      case ast::NodeKind::ExprUnary: {
        const auto& u = static_cast<const ast::ExprUnary&>(e);
        bool paren = precedence(*u.operand) < precedence(e);
        return "-" + (paren ? "(" + expr(*u.operand) + ")" : expr(*u.operand));
      }
      case ast::NodeKind::ExprBinary: {
        const auto& b = static_cast<const ast::ExprBinary&>(e);
        int p = precedence(e);
        bool right = b.op == ast::BinaryOp::Pow;
        bool lp = precedence(*b.lhs) < p || (right && precedence(*b.lhs) == p);
        bool rp = precedence(*b.rhs) < p || (!right && precedence(*b.rhs) == p);
        std::string l = lp ? "(" + expr(*b.lhs) + ")" : expr(*b.lhs);
        std::string r = rp ? "(" + expr(*b.rhs) + ")" : expr(*b.rhs);
        if (b.op == ast::BinaryOp::Pow) return l + "^" + r;
        return l + " " + std::string(ast::toString(b.op)) + " " + r;
      }
      case ast::NodeKind::ExprList: {
        const auto& l = static_cast<const ast::ExprList&>(e);
        std::string out = "[";
        for (size_t i = 0; i < l.items.size(); ++i) out += (i ? ", " : "") + expr(*l.items[i]);
        return out + "]";
      }
      case ast::NodeKind::ExprRecord: return record(static_cast<const ast::ExprRecord&>(e));
      default: return std::string(sm_.text(e.range));
    }
  }

  // A record literal: `{ a = 1, b = 2 }` on one line when short and free of comments,
  // else one field per line (names aligned, every field followed by a comma), indented
  // one level past the line it starts on, with its comments in place.
  static constexpr size_t kRecordLine = 60;
  std::string record(const ast::ExprRecord& r) {
    bool comments = commentInside(r.range.begin, r.range.end);
    if (!comments) {
      if (r.fields.empty()) return "{}";
      // The one-line form, with nested records on one line too (`flat_`): rendering
      // each level once keeps deep nesting linear per level.
      bool wasFlat = flat_;
      flat_ = true;
      std::string one = "{ ";
      for (size_t i = 0; i < r.fields.size(); ++i)
        one += (i ? ", " : "") + r.fields[i].name + " = " + expr(*r.fields[i].value);
      one += " }";
      flat_ = wasFlat;
      if (flat_ || (one.size() <= kRecordLine && one.find('\n') == std::string::npos)) return one;
    }
    std::string outer = indent_, inner = indent_ + "  ";
    size_t width = 0;
    for (const ast::RecordField& f : r.fields) width = std::max(width, f.name.size());
    std::string out = "{";
    uint32_t prev = r.range.begin + 1;
    out += trailingComment(prev, r.fields.empty() ? r.range.end : r.fields.front().nameRange.begin);
    out += "\n";
    for (size_t i = 0; i < r.fields.size(); ++i) {
      const ast::RecordField& f = r.fields[i];
      SourceRange fr{id_, f.nameRange.begin, f.value->range.end};
      out += leadingComments(prev, fr.begin, inner);
      if (looseComment(fr.begin, fr.end, recordsOf(*f.value))) {
        out += inner + std::string(sm_.text(fr));  // a comment inside the value: as written
      } else {
        indent_ = inner;
        out += inner + f.name + std::string(width - f.name.size(), ' ') + " = " + expr(*f.value);
        indent_ = outer;
      }
      out += ",";
      prev = fr.end;
      uint32_t next = i + 1 < r.fields.size() ? r.fields[i + 1].nameRange.begin : r.range.end;
      out += trailingComment(prev, next) + "\n";
    }
    out += leadingComments(prev, r.range.end - 1, inner);
    return out + outer + "}";
  }

  const SourceManager& sm_;
  FileId id_;
  const std::string& text_;
  std::vector<SourceRange> comments_;
  std::vector<uint32_t> used_;
  std::string out_;
  std::string indent_;  // indentation of the line the current expression starts on
  bool flat_ = false;   // rendering a record's one-line form: nested records stay flat
};

}  // namespace

std::string formatFile(const SourceManager& sm, FileId id, const ast::File& file) {
  return Formatter(sm, id).run(file);
}

}  // namespace gyrus
