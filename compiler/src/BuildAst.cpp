// The ANTLR boundary: runs the generated lexer and parser, turns syntax errors into
// [syntax] diagnostics, and converts the parse tree into gyrus's AST. No ANTLR type
// leaves this file.
#include <antlr4-runtime.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "GyrusLexer.h"
#include "GyrusParser.h"
#include "gyrus/Parse.h"
#include "gyrus/Printable.h"

namespace gyrus {
namespace {

using G = grammar::GyrusParser;

// ANTLR's input stream counts code points; our ranges count bytes. This maps one to
// the other (identity for ASCII files).
class OffsetMap {
 public:
  explicit OffsetMap(const std::string& text) {
    bool ascii = true;
    for (unsigned char c : text) ascii = ascii && c < 0x80;
    if (ascii) {
      size_ = text.size();
      return;
    }
    for (uint32_t i = 0; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) bytes_.push_back(i);
    }
    // ANTLR's input stream drops a leading UTF-8 byte-order mark: its code point 0 is the
    // first one after it.
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) bytes_.erase(bytes_.begin());
    size_ = text.size();
  }
  uint32_t byteOf(size_t codePoint) const {
    if (bytes_.empty()) return static_cast<uint32_t>(std::min(codePoint, size_));
    return codePoint < bytes_.size() ? bytes_[codePoint] : static_cast<uint32_t>(size_);
  }

 private:
  std::vector<uint32_t> bytes_;
  size_t size_ = 0;
};

std::string describeToken(const std::string& text) {
  if (text == "<EOF>") return "end of file";
  return "'" + printable(text) + "'";  // a NUL would end the printed message
}

// Rewrites ANTLR's token-set vocabulary into words a user knows.
std::string humanize(std::string msg) {
  const std::pair<std::string_view, std::string_view> words[] = {
      {"<EOF>", "end of file"}, {"QUANTITY", "a number with a unit"}, {"NUMBER", "a number"},
      {"SHAPE", "a shape"},     {"STRING", "a string"},               {"ID", "a name"},
      {"BAD_CHAR", "a character"}};
  for (auto [from, to] : words) {
    size_t pos = 0;
    while ((pos = msg.find(from, pos)) != std::string::npos) {
      // Only whole words: not inside a quoted token such as 'IDx'.
      bool quoted = pos > 0 && msg[pos - 1] == '\'';
      if (quoted) {
        pos += from.size();
        continue;
      }
      msg.replace(pos, from.size(), to);
      pos += to.size();
    }
  }
  return msg;
}

// `{'}', 'use', 'dataset', ..., a name}` -> `{'}', a name}`; a set left with one
// member loses its braces.
std::string collapseNameSet(const std::string& msg) {
  size_t open = msg.find('{');
  size_t close = open == std::string::npos ? std::string::npos : msg.find('}', open);
  if (close != std::string::npos && close + 1 < msg.size() && msg[close + 1] == '\'') close = msg.find('}', close + 1);
  if (open == std::string::npos || close == std::string::npos) return msg;
  std::string set = msg.substr(open + 1, close - open - 1);
  if (set.find("a name") == std::string::npos) return msg;
  static const std::vector<std::string> keywords = {"'dataset'", "'pipeline'", "'encoder'", "'objective'", "'let'",
                                                    "'pretrain'", "'evaluate'", "'on'", "'sweep'", "'in'", "'use'"};
  std::vector<std::string> kept;
  size_t start = 0;
  while (start <= set.size()) {
    size_t comma = set.find(", ", start);
    std::string item = set.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (std::find(keywords.begin(), keywords.end(), item) == keywords.end()) kept.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  std::string joined;
  for (const std::string& k : kept) joined += (joined.empty() ? "" : ", ") + k;
  return msg.substr(0, open) + (kept.size() == 1 ? joined : "{" + joined + "}") + msg.substr(close + 1);
}

class ErrorCollector final : public antlr4::BaseErrorListener {
 public:
  ErrorCollector(FileId file, const OffsetMap& map, DiagnosticEngine& diags) : file_(file), map_(map), diags_(diags) {}

  // The visible token before `t` in the parser's stream (null from the lexer or at the start).
  static antlr4::Token* previousToken(antlr4::Recognizer* recognizer, antlr4::Token* t) {
    auto* parser = dynamic_cast<antlr4::Parser*>(recognizer);
    if (parser == nullptr) return nullptr;
    antlr4::TokenStream* stream = parser->getTokenStream();
    for (size_t i = t->getTokenIndex(); i-- > 0;) {
      antlr4::Token* p = stream->get(i);
      if (p->getChannel() == antlr4::Token::DEFAULT_CHANNEL) return p;
    }
    return nullptr;
  }

  void syntaxError(antlr4::Recognizer* recognizer, antlr4::Token* offending, size_t, size_t, const std::string& msg,
                   std::exception_ptr) override {
    SourceRange r{file_, 0, 0};
    std::string text;
    if (offending != nullptr) {
      text = offending->getText();
      if (offending->getType() == antlr4::Token::EOF) {
        r.begin = r.end = map_.byteOf(offending->getStartIndex());
      } else {
        r.begin = map_.byteOf(offending->getStartIndex());
        r.end = map_.byteOf(offending->getStopIndex() + 1);
      }
    }
    std::string message;
    auto startsWith = [&](std::string_view p) { return msg.rfind(p, 0) == 0; };
    size_t expecting = msg.find(" expecting ");
    if ((startsWith("mismatched input") || startsWith("extraneous input")) && expecting != std::string::npos) {
      message = "unexpected " + describeToken(text) + ", expected " + humanize(msg.substr(expecting + 11));
    } else if (startsWith("missing ")) {
      size_t at = msg.rfind(" at ");
      message = "missing " + humanize(msg.substr(8, at == std::string::npos ? std::string::npos : at - 8)) +
                " before " + describeToken(text);
    } else if (startsWith("no viable alternative")) {
      message = "unexpected " + describeToken(text);
    } else if (startsWith("token recognition error")) {
      message = "unexpected character";
    } else {
      message = humanize(msg);
    }
    if (offending != nullptr && offending->getType() == grammar::GyrusLexer::BAD_CHAR) {
      message = "unexpected character " + describeToken(text);
      // `60 %`: a percentage is one token, written without a space.
      antlr4::Token* number = text == "%" ? previousToken(recognizer, offending) : nullptr;
      if (number != nullptr && number->getType() == grammar::GyrusLexer::NUMBER && offending->getLine() != lastLine_) {
        SourceRange whole{file_, map_.byteOf(number->getStartIndex()), r.end};
        diags_.report(DiagKind::Syntax, r, "a percentage is written without a space before '%', e.g. " +
                                               number->getText() + "%")
            .fixit(whole, number->getText() + "%");
        lastLine_ = static_cast<uint32_t>(offending->getLine());
        return;
      }
    }
    // Where a name is expected, keywords are names too (fields, arguments, members):
    // the set lists them all; say "a name".
    message = collapseNameSet(message);
    // The expected set at the top level is every declaration keyword: say so.
    size_t brace = message.find("expected {");
    if (brace != std::string::npos && message.find("'pretrain'", brace) != std::string::npos) {
      message = message.substr(0, brace) + "expected a declaration (dataset, pipeline, encoder, objective, let, " +
                "pretrain, evaluate, sweep or use)";
    }
    // One mistake often derails the parser for the rest of its line: report the first.
    uint32_t line = offending != nullptr ? static_cast<uint32_t>(offending->getLine()) : 0;
    if (line != 0 && line == lastLine_) return;
    lastLine_ = line;
    diags_.report(DiagKind::Syntax, r, std::move(message));
  }

 private:
  FileId file_;
  const OffsetMap& map_;
  DiagnosticEngine& diags_;
  uint32_t lastLine_ = 0;
};

// How deep expressions may nest (brackets, prefix minus, `^` chains): the parser, the
// checker and the formatter recurse over them, and a pathological file must not exhaust
// their stack.
constexpr int kMaxNesting = 256;

std::string nestingMessage(int limit) {
  return "expressions nest more than " + std::to_string(limit) +
         " levels deep here; name the inner parts with `let` bindings";
}

// Converts parse-tree nodes into AST nodes.
class Builder {
 public:
  Builder(FileId file, const OffsetMap& map, ast::Arena& arena) : file_(file), map_(map), arena_(arena) {}

  /// Runs `build` (a member of this builder); an expression nested too deeply is a
  /// [syntax] error and gives nullptr.
  template <class F>
  static auto guarded(DiagnosticEngine& diags, F&& build) -> decltype(build()) {
    try {
      return build();
    } catch (const TooDeep& e) {
      diags.report(DiagKind::Syntax, e.where, nestingMessage(kMaxNesting));
      return nullptr;
    }
  }

  SourceRange range(antlr4::ParserRuleContext* ctx) const {
    return {file_, map_.byteOf(ctx->getStart()->getStartIndex()), map_.byteOf(ctx->getStop()->getStopIndex() + 1)};
  }
  SourceRange range(antlr4::Token* tok) const {
    return {file_, map_.byteOf(tok->getStartIndex()), map_.byteOf(tok->getStopIndex() + 1)};
  }
  SourceRange range(antlr4::tree::TerminalNode* n) const { return range(n->getSymbol()); }
  static SourceRange join(SourceRange a, SourceRange b) { return {a.file, std::min(a.begin, b.begin), std::max(a.end, b.end)}; }

  ast::File* file(G::FileContext* ctx) {
    ast::File* f = arena_.makeFile();
    f->id = file_;
    for (G::DeclContext* d : ctx->decl()) f->decls.push_back(decl(d));
    return f;
  }

  ast::Decl* decl(G::DeclContext* ctx) {
    if (auto* b = dynamic_cast<G::BindDeclContext*>(ctx)) {
      std::string kw = b->kind->getText();
      ast::BindKind kind = kw == "dataset"    ? ast::BindKind::Dataset
                           : kw == "pipeline" ? ast::BindKind::Pipeline
                           : kw == "encoder"  ? ast::BindKind::Encoder
                           : kw == "objective" ? ast::BindKind::Objective
                                               : ast::BindKind::Let;
      auto* decl = arena_.make<ast::DeclBind>(range(ctx), b->name->getText(), range(b->name), kind, expr(b->expr()));
      if (b->params() != nullptr) {
        decl->isFunction = true;
        for (G::ParamContext* pc : b->params()->param())
          decl->params.push_back({pc->name->getText(), range(pc->name), pc->value != nullptr ? expr(pc->value) : nullptr});
      }
      return decl;
    }
    if (auto* p = dynamic_cast<G::PretrainDeclContext*>(ctx)) {
      std::vector<ast::Field> fields;
      for (G::FieldContext* fc : p->field()) fields.push_back({fc->name->getText(), range(fc->name), expr(fc->expr())});
      return arena_.make<ast::DeclPretrain>(range(ctx), p->name->getText(), range(p->name), std::move(fields));
    }
    if (auto* u = dynamic_cast<G::UseDeclContext*>(ctx)) {
      auto* d = arena_.make<ast::DeclUse>(range(ctx));
      if (u->module != nullptr) {
        for (G::IdentContext* id : u->module->ident()) d->module.push_back(id->getText());
        d->targetRange = range(u->module);
      } else {
        std::string t = u->target->getText();
        d->file = t.size() >= 2 ? t.substr(1, t.size() - 2) : t;
        d->targetRange = range(u->target);
      }
      return d;
    }
    if (auto* sw = dynamic_cast<G::SweepDeclContext*>(ctx)) {
      auto* d = arena_.make<ast::DeclSweep>(range(ctx));
      for (G::PathContext* p : sw->path()) {
        std::vector<std::string> parts;
        for (G::IdentContext* id : p->ident()) parts.push_back(id->getText());
        d->paths.push_back(std::move(parts));
        d->pathRanges.push_back(range(p));
      }
      d->values = expr(sw->values);
      return d;
    }
    auto* e = dynamic_cast<G::EvaluateDeclContext*>(ctx);
    std::vector<G::IdentContext*> ids = e->task->ident();
    // The default name is <model>_<label>; a fomo25 folder's label is always called
    // `label`, so there the data set names the evaluation: <model>_<dataset>.
    std::string labelPart = ids.size() >= 2 && ids.back()->getText() == "label" ? ids[ids.size() - 2]->getText()
                                                                                 : ids.back()->getText();
    std::string name = e->name != nullptr ? e->name->getText() : e->model->getText() + "_" + labelPart;
    SourceRange nameRange = e->name != nullptr ? range(e->name) : range(e->model);
    auto* d = arena_.make<ast::DeclEvaluate>(range(ctx), name, nameRange);
    d->explicitName = e->name != nullptr;
    d->model = e->model->getText();
    d->modelRange = range(e->model);
    for (auto* id : ids) {
      d->task.push_back(id->getText());
      d->taskRanges.push_back(range(id));
    }
    if (e->argList() != nullptr) d->args = args(e->argList());
    return d;
  }

  std::vector<ast::Arg> args(G::ArgListContext* ctx) {
    std::vector<ast::Arg> out;
    for (G::ArgContext* a : ctx->arg()) {
      ast::Arg arg;
      if (a->name != nullptr) {
        arg.name = a->name->getText();
        arg.nameRange = range(a->name);
      }
      arg.value = expr(a->expr());
      out.push_back(std::move(arg));
    }
    return out;
  }

  /// Thrown when expressions nest deeper than kMaxNesting (the checker and formatter
  /// recurse over expressions; a pathological file must not exhaust their stack).
  struct TooDeep {
    SourceRange where;
  };

  ast::Expr* expr(G::ExprContext* ctx) {
    SourceRange r = range(ctx);
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(++depth) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxNesting) throw TooDeep{r};
    if (auto* m = dynamic_cast<G::MemberExprContext*>(ctx)) {
      return arena_.make<ast::ExprMember>(r, expr(m->expr()), m->ident()->getText(), range(m->ident()));
    }
    if (auto* c = dynamic_cast<G::CallExprContext*>(ctx)) {
      return arena_.make<ast::ExprCall>(r, expr(c->expr()), args(c->argList()));
    }
    if (auto* n = dynamic_cast<G::NegExprContext*>(ctx)) {
      return arena_.make<ast::ExprUnary>(r, ast::UnaryOp::Neg, expr(n->expr()));
    }
    if (auto* p = dynamic_cast<G::PowExprContext*>(ctx)) {
      return binary(r, ast::BinaryOp::Pow, p->expr(0), p->expr(1), static_cast<antlr4::Token*>(nullptr));
    }
    if (auto* m = dynamic_cast<G::MulExprContext*>(ctx)) {
      return binary(r, m->op->getText() == "*" ? ast::BinaryOp::Mul : ast::BinaryOp::Div, m->expr(0), m->expr(1), m->op);
    }
    if (auto* a = dynamic_cast<G::AddExprContext*>(ctx)) {
      return binary(r, a->op->getText() == "+" ? ast::BinaryOp::Add : ast::BinaryOp::Sub, a->expr(0), a->expr(1), a->op);
    }
    if (auto* rg = dynamic_cast<G::RangeExprContext*>(ctx)) return binary(r, ast::BinaryOp::Range, rg->expr(0), rg->expr(1), static_cast<antlr4::Token*>(nullptr));
    if (auto* c = dynamic_cast<G::ComposeExprContext*>(ctx)) return binary(r, ast::BinaryOp::Compose, c->expr(0), c->expr(1), static_cast<antlr4::Token*>(nullptr));
    if (auto* a = dynamic_cast<G::ApplyExprContext*>(ctx)) return binary(r, ast::BinaryOp::Apply, a->expr(0), a->expr(1), static_cast<antlr4::Token*>(nullptr));
    return primary(dynamic_cast<G::PrimaryExprContext*>(ctx)->primary());
  }

  ast::Expr* binary(SourceRange r, ast::BinaryOp op, G::ExprContext* l, G::ExprContext* rr, antlr4::Token* opTok) {
    ast::Expr* lhs = expr(l);
    ast::Expr* rhs = expr(rr);
    // The operator sits between the operands.
    SourceRange opRange = opTok != nullptr ? range(opTok) : SourceRange{file_, lhs->range.end, rhs->range.begin};
    return arena_.make<ast::ExprBinary>(r, op, lhs, rhs, opRange);
  }

  ast::Expr* binary(SourceRange r, ast::BinaryOp op, G::ExprContext* l, G::ExprContext* rr, antlr4::tree::TerminalNode* opNode) {
    return binary(r, op, l, rr, opNode != nullptr ? opNode->getSymbol() : nullptr);
  }

  // Splits `1.5e-3mm` into the number and its unit.
  static size_t numberPrefix(const std::string& s) {
    size_t i = 0;
    auto digits = [&] { while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i; };
    digits();
    if (i + 1 < s.size() && s[i] == '.' && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      ++i;
      digits();
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      size_t j = i + 1;
      if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
      if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
        i = j;
        digits();
      }
    }
    return i;
  }

  static bool isIntegerText(std::string_view s) { return s.find_first_of(".eE") == std::string_view::npos; }

  ast::Expr* primary(G::PrimaryContext* ctx) {
    SourceRange r = range(ctx);
    if (auto* n = dynamic_cast<G::NumberLitContext*>(ctx)) {
      std::string t = n->getText();
      return arena_.make<ast::ExprNumber>(r, std::strtod(t.c_str(), nullptr), isIntegerText(t));
    }
    if (auto* q = dynamic_cast<G::QuantityLitContext*>(ctx)) {
      std::string t = q->getText();
      size_t n = numberPrefix(t);
      std::string num = t.substr(0, n);
      SourceRange unitRange{file_, r.begin + static_cast<uint32_t>(n), r.end};
      return arena_.make<ast::ExprQuantity>(r, std::strtod(num.c_str(), nullptr), isIntegerText(num), t.substr(n), unitRange);
    }
    if (auto* s = dynamic_cast<G::ShapeLitContext*>(ctx)) {
      std::string t = s->getText();
      std::vector<int64_t> dims;
      size_t start = 0;
      while (start <= t.size()) {
        size_t x = t.find('x', start);
        std::string part = t.substr(start, x == std::string::npos ? std::string::npos : x - start);
        int64_t v = 0;
        auto res = std::from_chars(part.data(), part.data() + part.size(), v);
        dims.push_back(res.ec == std::errc() ? v : -1);  // -1: overflow, reported by the checker
        if (x == std::string::npos) break;
        start = x + 1;
      }
      return arena_.make<ast::ExprShape>(r, std::move(dims));
    }
    if (auto* s = dynamic_cast<G::StringLitContext*>(ctx)) {
      std::string t = s->getText();
      std::string v;
      for (size_t i = 1; i + 1 < t.size(); ++i) {
        if (t[i] == '\\' && i + 2 < t.size()) {
          char c = t[++i];
          v += c == 'n' ? '\n' : c == 't' ? '\t' : c;
        } else {
          v += t[i];
        }
      }
      return arena_.make<ast::ExprString>(r, std::move(v));
    }
    if (auto* b = dynamic_cast<G::BoolLitContext*>(ctx)) return arena_.make<ast::ExprBool>(r, b->value->getText() == "true");
    if (auto* n = dynamic_cast<G::NameRefContext*>(ctx)) return arena_.make<ast::ExprName>(r, n->getText());
    if (auto* p = dynamic_cast<G::ParenExprContext*>(ctx)) return expr(p->expr());
    if (auto* rec = dynamic_cast<G::RecordLitContext*>(ctx)) {
      std::vector<ast::RecordField> fields;
      for (G::RecordFieldContext* f : rec->recordField())
        fields.push_back({f->name->getText(), range(f->name), expr(f->expr())});
      return arena_.make<ast::ExprRecord>(r, std::move(fields));
    }
    auto* l = dynamic_cast<G::ListLitContext*>(ctx);
    std::vector<ast::Expr*> items;
    for (G::ExprContext* e : l->expr()) items.push_back(expr(e));
    return arena_.make<ast::ExprList>(r, std::move(items));
  }

 private:
  FileId file_;
  const OffsetMap& map_;
  ast::Arena& arena_;
  int depth_ = 0;  // expressions being built, innermost last
};

// The byte offset of the first byte that is not valid UTF-8, or npos. ANTLR's input
// stream throws on invalid UTF-8, so files are validated first.
size_t firstInvalidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

// Reports invalid UTF-8; true when the text is valid.
bool checkUtf8(const std::string& text, FileId id, DiagnosticEngine& diags) {
  size_t bad = firstInvalidUtf8(text);
  if (bad == std::string::npos) return true;
  auto at = static_cast<uint32_t>(bad);
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
  diags.report(DiagKind::Syntax, {id, at, at + 1}, std::string("invalid UTF-8 (byte ") + hex + "); save the file as UTF-8");
  return false;
}

// A scan of the token stream before ANTLR parses it, for two mistakes the parser
// handles badly:
// - Nesting deeper than `limit`. ANTLR's parser is recursive descent: every bracket,
//   prefix minus and right-associative `^` nests a few stack frames, and 20,000 nested
//   parentheses overflow the stack before the AST builder's own limit is reached.
// - A bracket left open: the parser reports it far away ("missing '='" at the next
//   declaration); here it is reported where the next declaration starts, with a note
//   at the bracket.
// Returns false after reporting [syntax] errors; the parser then does not run (its own
// reports of an open bracket would only echo them).
bool scanBrackets(antlr4::CommonTokenStream& tokens, const OffsetMap& map, FileId id, int limit,
                  DiagnosticEngine& diags) {
  tokens.fill();
  struct Open {
    antlr4::Token* bracket;  // null for the file itself
    int chain = 0;           // prefix `-` and `^` since the last separator, nested inside it
  };
  std::vector<Open> open{{nullptr}};
  int depth = 0;
  auto rangeOf = [&](antlr4::Token* t) {
    return SourceRange{id, map.byteOf(t->getStartIndex()), map.byteOf(t->getStopIndex() + 1)};
  };
  static const std::vector<std::string> kDeclKeywords = {"dataset", "pipeline", "encoder", "objective", "let",
                                                          "pretrain", "evaluate", "sweep",   "use"};
  std::vector<antlr4::Token*> visible;
  for (antlr4::Token* t : tokens.getTokens())
    if (t->getChannel() == antlr4::Token::DEFAULT_CHANNEL) visible.push_back(t);
  auto unclosed = [&](antlr4::Token* at, const std::string& before) {
    antlr4::Token* bracket = open.back().bracket;
    std::string o = bracket->getText();
    std::string c = o == "(" ? ")" : o == "[" ? "]" : "}";
    SourceRange where = rangeOf(at);
    if (at->getType() == antlr4::Token::EOF) where.end = where.begin;
    diags.report(DiagKind::Syntax, where, "expected '" + c + "' before " + before + ": the '" + o + "' is not closed")
        .note(rangeOf(bracket), "'" + o + "' opened here");
  };
  std::string previous;  // the previous token's text ("" at the start)
  bool ok = true;
  for (size_t k = 0; k < visible.size(); ++k) {
    antlr4::Token* t = visible[k];
    // A string or block comment never closed swallows what follows (brackets included):
    // it is the one mistake to report, at its opening.
    if (t->getType() == grammar::GyrusLexer::UNTERMINATED_STRING ||
        t->getType() == grammar::GyrusLexer::UNTERMINATED_COMMENT) {
      const bool string = t->getType() == grammar::GyrusLexer::UNTERMINATED_STRING;
      SourceRange where = rangeOf(t);
      where.end = where.begin + (string ? 1 : 2);
      diags.report(DiagKind::Syntax, where,
                   string ? "unterminated string: a string ends with '\"' on the line where it starts"
                          : "unterminated comment: this '/*' has no closing '*/'");
      return false;
    }
    if (t->getType() == antlr4::Token::EOF) {
      if (open.size() > 1) {
        unclosed(t, "the end of the file");
        ok = false;
      }
      break;
    }
    std::string text = t->getText();
    // A declaration keyword followed by a name never stands inside brackets (fields and
    // arguments named like keywords are followed by `=`): a bracket was left open.
    if (open.size() > 1 && k + 1 < visible.size() &&
        std::find(kDeclKeywords.begin(), kDeclKeywords.end(), text) != kDeclKeywords.end()) {
      size_t next = visible[k + 1]->getType();
      if (next == grammar::GyrusLexer::ID || (text == "use" && next == grammar::GyrusLexer::STRING)) {
        // Reported once per declaration left open; the scan goes on as if it were closed.
        unclosed(t, "the next declaration");
        ok = false;
        open.resize(1);
        open.back().chain = 0;
        depth = 0;
      }
    }
    bool opens = text == "(" || text == "[" || text == "{";
    bool closes = text == ")" || text == "]" || text == "}";
    bool afterOperand = !previous.empty() && (previous == ")" || previous == "]" || previous == "}" ||
                                              std::isalnum(static_cast<unsigned char>(previous.back())) ||
                                              previous.back() == '_' || previous.back() == '"' || previous.back() == '%');
    bool nests = opens || text == "^" || (text == "-" && !afterOperand);
    if (closes) {
      if (open.size() > 1) {
        depth -= open.back().chain + 1;
        open.pop_back();
      }
    } else if (text == "," || text == "=" || text == ";") {
      depth -= open.back().chain;
      open.back().chain = 0;
    } else if (nests) {
      ++depth;
      if (opens) open.push_back({t});
      else ++open.back().chain;
      if (depth > limit) {
        diags.report(DiagKind::Syntax, rangeOf(t), nestingMessage(limit));
        return false;
      }
    }
    previous = std::move(text);
  }
  return ok;
}

struct ParserSetup {
  explicit ParserSetup(const std::string& text, FileId id, DiagnosticEngine& diags)
      : map(text), input(text), lexer(&input), tokens(&lexer), parser(&tokens), errors(id, map, diags) {
    lexer.removeErrorListeners();
    lexer.addErrorListener(&errors);
    parser.removeErrorListeners();
    parser.addErrorListener(&errors);
  }
  OffsetMap map;
  antlr4::ANTLRInputStream input;
  grammar::GyrusLexer lexer;
  antlr4::CommonTokenStream tokens;
  G parser;
  ErrorCollector errors;
};

}  // namespace

namespace {
// Parses file `id` with the grammar rule `rule` (parser -> tree) and builds our AST from
// the tree with `build` (builder, tree -> node): nullptr after any error (invalid UTF-8,
// unbalanced or too deeply nested brackets, a syntax error, nesting too deep to build).
template <class Rule, class Build>
auto parseWith(const SourceManager& sm, FileId id, ast::Arena& arena, DiagnosticEngine& diags, Rule rule, Build build)
    -> decltype(build(std::declval<Builder&>(), rule(std::declval<G&>()))) {
  const std::string& text = sm.file(id).text;
  if (!checkUtf8(text, id, diags)) return nullptr;
  size_t before = diags.errorCount();
  ParserSetup p(text, id, diags);
  if (!scanBrackets(p.tokens, p.map, id, kMaxNesting, diags)) return nullptr;
  auto* tree = rule(p.parser);
  if (diags.errorCount() != before) return nullptr;
  Builder builder(id, p.map, arena);
  return Builder::guarded(diags, [&] { return build(builder, tree); });
}
}  // namespace

ast::File* parseFile(const SourceManager& sm, FileId id, ast::Arena& arena, DiagnosticEngine& diags) {
  return parseWith(
      sm, id, arena, diags, [](G& parser) { return parser.file(); },
      [](Builder& b, G::FileContext* tree) { return b.file(tree); });
}

ast::Expr* parseExpression(const SourceManager& sm, FileId id, ast::Arena& arena, DiagnosticEngine& diags) {
  return parseWith(
      sm, id, arena, diags, [](G& parser) { return parser.exprOnly(); },
      [](Builder& b, G::ExprOnlyContext* tree) { return b.expr(tree->expr()); });
}

std::vector<SourceRange> comments(const SourceManager& sm, FileId id) {
  const std::string& text = sm.file(id).text;
  DiagnosticEngine ignored;
  if (!checkUtf8(text, id, ignored)) return {};
  ParserSetup p(text, id, ignored);
  p.tokens.fill();
  std::vector<SourceRange> out;
  for (antlr4::Token* t : p.tokens.getTokens()) {
    if (t->getType() == grammar::GyrusLexer::LINE_COMMENT || t->getType() == grammar::GyrusLexer::BLOCK_COMMENT) {
      out.push_back({id, p.map.byteOf(t->getStartIndex()), p.map.byteOf(t->getStopIndex() + 1)});
    }
  }
  return out;
}

std::string dumpTokens(const SourceManager& sm, FileId id) {
  const std::string& text = sm.file(id).text;
  DiagnosticEngine ignored;
  if (!checkUtf8(text, id, ignored)) return "invalid UTF-8\n";
  ParserSetup p(text, id, ignored);
  p.tokens.fill();
  std::string out;
  const antlr4::dfa::Vocabulary& vocab = p.lexer.getVocabulary();
  for (antlr4::Token* t : p.tokens.getTokens()) {
    if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
    LineCol lc = sm.lineCol(id, p.map.byteOf(t->getStartIndex()));
    std::string kind = t->getType() == antlr4::Token::EOF ? "EOF" : std::string(vocab.getSymbolicName(t->getType()));
    if (kind.empty()) kind = "KEYWORD";
    out += std::to_string(lc.line) + ":" + std::to_string(lc.col) + " " + kind;
    if (t->getType() != antlr4::Token::EOF) out += " '" + t->getText() + "'";
    out += "\n";
  }
  return out;
}

}  // namespace gyrus
