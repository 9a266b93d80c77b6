// gyrus's own abstract syntax tree.
//
// Built from the ANTLR parse tree in one place (BuildAst.cpp); nothing else sees ANTLR.
// Nodes are allocated from an `Arena` and never freed individually; each carries a kind
// tag (`is<T>()` / `as<T>()`) and the source range it came from. Analysis results live
// in the checker's side tables, not in the nodes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gyrus/Source.h"

namespace gyrus::ast {

enum class NodeKind {
  ExprNumber, ExprQuantity, ExprShape, ExprString, ExprBool, ExprName, ExprMember,
  ExprCall, ExprUnary, ExprBinary, ExprList, ExprRecord,
  DeclBind, DeclPretrain, DeclEvaluate, DeclSweep, DeclUse,
};

struct Node {
  explicit Node(NodeKind k, SourceRange r) : kind(k), range(r) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  template <class T> bool is() const { return kind == T::kKind; }
  template <class T> T* as() { return is<T>() ? static_cast<T*>(this) : nullptr; }
  template <class T> const T* as() const { return is<T>() ? static_cast<const T*>(this) : nullptr; }

  NodeKind kind;
  SourceRange range;
};

struct Expr : Node {
  using Node::Node;
};

/// `16`, `0.5`, `1e-4`. `isInteger` when written without a point or exponent.
struct ExprNumber final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprNumber;
  ExprNumber(SourceRange r, double v, bool isInt) : Expr(kKind, r), value(v), isInteger(isInt) {}
  double value;
  bool isInteger;
};

/// A number with a unit suffix: `1mm`, `60%`, `4vox`.
struct ExprQuantity final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprQuantity;
  ExprQuantity(SourceRange r, double v, bool isInt, std::string u, SourceRange ur)
      : Expr(kKind, r), value(v), isInteger(isInt), unit(std::move(u)), unitRange(ur) {}
  double value;
  bool isInteger;
  std::string unit;
  SourceRange unitRange;
};

/// `160x192x160`.
struct ExprShape final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprShape;
  ExprShape(SourceRange r, std::vector<int64_t> d) : Expr(kKind, r), dims(std::move(d)) {}
  std::vector<int64_t> dims;
};

/// A literal that is its one value: a string (`"t1"`, ExprString) or a boolean
/// (`true`, ExprBool).
template <NodeKind K, class T>
struct ExprLiteral final : Expr {
  static constexpr NodeKind kKind = K;
  ExprLiteral(SourceRange r, T v) : Expr(kKind, r), value(std::move(v)) {}
  T value;
};
using ExprString = ExprLiteral<NodeKind::ExprString, std::string>;
using ExprBool = ExprLiteral<NodeKind::ExprBool, bool>;

struct ExprName final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprName;
  ExprName(SourceRange r, std::string n) : Expr(kKind, r), name(std::move(n)) {}
  std::string name;
};

/// `base.member`.
struct ExprMember final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprMember;
  ExprMember(SourceRange r, Expr* b, std::string n, SourceRange nr)
      : Expr(kKind, r), base(b), name(std::move(n)), nameRange(nr) {}
  Expr* base;
  std::string name;
  SourceRange nameRange;
};

/// An expression with the name it is given: a call's argument, a record literal's
/// field, a definition's parameter or a block's field (the aliases below).
struct NamedExpr {
  std::string name;
  SourceRange nameRange;
  Expr* value = nullptr;
};

/// One argument of a call: positional when `name` is empty.
using Arg = NamedExpr;

struct ExprCall final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprCall;
  ExprCall(SourceRange r, Expr* c, std::vector<Arg> a) : Expr(kKind, r), callee(c), args(std::move(a)) {}
  Expr* callee;
  std::vector<Arg> args;
};

enum class UnaryOp { Neg };
struct ExprUnary final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprUnary;
  ExprUnary(SourceRange r, UnaryOp o, Expr* e) : Expr(kKind, r), op(o), operand(e) {}
  UnaryOp op;
  Expr* operand;
};

enum class BinaryOp { Pow, Mul, Div, Add, Sub, Range, Compose, Apply };
struct ExprBinary final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprBinary;
  ExprBinary(SourceRange r, BinaryOp o, Expr* l, Expr* rr, SourceRange opr)
      : Expr(kKind, r), op(o), lhs(l), rhs(rr), opRange(opr) {}
  BinaryOp op;
  Expr* lhs;
  Expr* rhs;
  SourceRange opRange;
};

struct ExprList final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprList;
  ExprList(SourceRange r, std::vector<Expr*> i) : Expr(kKind, r), items(std::move(i)) {}
  std::vector<Expr*> items;
};

/// One field of a record literal.
using RecordField = NamedExpr;

/// `{ channels = ["t1", "t2"], label = regression }`: fields in source order.
struct ExprRecord final : Expr {
  static constexpr NodeKind kKind = NodeKind::ExprRecord;
  ExprRecord(SourceRange r, std::vector<RecordField> f) : Expr(kKind, r), fields(std::move(f)) {}
  std::vector<RecordField> fields;
};

struct Decl : Node {
  Decl(NodeKind k, SourceRange r, std::string n, SourceRange nr)
      : Node(k, r), name(std::move(n)), nameRange(nr) {}
  std::string name;
  SourceRange nameRange;
};

/// The keyword a binding was declared with.
enum class BindKind { Dataset, Pipeline, Encoder, Objective, Let };

/// A parameter of a parameterised definition; `value` (the default) may be null.
using Param = NamedExpr;

/// `dataset corpus = synthetic(...)`, `pipeline prep = ...`, `let x = ...`, and
/// parameterised definitions `pipeline views(p = 50%) = prep >> flip(p = p)`, which are
/// called like built-in functions; the keyword constrains what a call returns.
struct DeclBind final : Decl {
  static constexpr NodeKind kKind = NodeKind::DeclBind;
  DeclBind(SourceRange r, std::string n, SourceRange nr, BindKind k, Expr* v)
      : Decl(kKind, r, std::move(n), nr), bindKind(k), value(v) {}
  BindKind bindKind;
  Expr* value;
  bool isFunction = false;  ///< declared with a parameter list (possibly empty)
  std::vector<Param> params;
};

/// One field of a `pretrain` block.
using Field = NamedExpr;

/// `pretrain base { data = ..., encoder = ..., ... }`.
struct DeclPretrain final : Decl {
  static constexpr NodeKind kKind = NodeKind::DeclPretrain;
  DeclPretrain(SourceRange r, std::string n, SourceRange nr, std::vector<Field> f)
      : Decl(kKind, r, std::move(n), nr), fields(std::move(f)) {}
  std::vector<Field> fields;
};

/// `evaluate [name =] model on data.label (args)`. Without an explicit name the
/// stage is called `<model>_<label>`, or `<model>_<data>` when the label is `label`.
struct DeclEvaluate final : Decl {
  static constexpr NodeKind kKind = NodeKind::DeclEvaluate;
  DeclEvaluate(SourceRange r, std::string n, SourceRange nr)
      : Decl(kKind, r, std::move(n), nr) {}
  bool explicitName = false;
  std::string model;
  SourceRange modelRange;
  std::vector<std::string> task;  ///< path components, e.g. {"clinic", "lesion"}
  std::vector<SourceRange> taskRanges;
  std::vector<Arg> args;
};

/// `sweep base.objective in [mae(), simclr()]` (one axis: a list of values) or
/// `sweep base.epochs, base.optimizer.lr in [[10, 1e-3], [20, 5e-4]]` (paired values,
/// zipped). Several sweep declarations form a grid (their product). Sweeps have no
/// name; their paths are those of `--set`.
struct DeclSweep final : Decl {
  static constexpr NodeKind kKind = NodeKind::DeclSweep;
  DeclSweep(SourceRange r) : Decl(kKind, r, std::string(), r) {}
  std::vector<std::vector<std::string>> paths;
  std::vector<SourceRange> pathRanges;
  Expr* values = nullptr;
};

/// `use std.fomo25` (a standard-library module) or `use "common.gy"` (a file, relative
/// to the one that uses it): the module's declarations become visible here.
struct DeclUse final : Decl {
  static constexpr NodeKind kKind = NodeKind::DeclUse;
  DeclUse(SourceRange r) : Decl(kKind, r, std::string(), r) {}
  std::vector<std::string> module;  ///< `std.fomo25` -> {"std", "fomo25"}; empty for a file
  std::string file;                 ///< `use "common.gy"`
  SourceRange targetRange;
};

/// One parsed source file.
struct File {
  FileId id = kNoFile;
  std::vector<Decl*> decls;
};

/// Owns every node of a compilation.
class Arena {
 public:
  template <class T, class... Args>
  T* make(Args&&... args) {
    auto node = std::make_unique<T>(std::forward<Args>(args)...);
    T* raw = node.get();
    nodes_.push_back(std::move(node));
    return raw;
  }
  File* makeFile() {
    files_.push_back(std::make_unique<File>());
    return files_.back().get();
  }

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<File>> files_;
};

std::string_view toString(BinaryOp op);
std::string_view toString(BindKind k);

/// Deterministic, indented print of a file's AST with `line:col` of every node
/// (`gyrus emit --stage=ast`).
std::string printAst(const SourceManager& sm, const File& file);
/// Prints an expression back as source text in canonical layout.
std::string printExpr(const Expr& e);

}  // namespace gyrus::ast
