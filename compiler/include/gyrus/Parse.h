// Parsing: source text -> AST. The only layer that touches ANTLR (in its .cpp files).
#pragma once

#include <string>
#include <vector>

#include "gyrus/Ast.h"
#include "gyrus/Diagnostics.h"

namespace gyrus {

/// Parses one file. Syntax errors are reported as [syntax] diagnostics; the returned
/// file is null when there were any (the tree would be incomplete).
ast::File* parseFile(const SourceManager& sm, FileId id, ast::Arena& arena, DiagnosticEngine& diags);

/// Parses a lone expression (the value of a `--set PATH=VALUE`); null on error.
ast::Expr* parseExpression(const SourceManager& sm, FileId id, ast::Arena& arena,
                           DiagnosticEngine& diags);

/// The ranges of every comment (`// ...` and `/* ... */`) in a file, in order.
std::vector<SourceRange> comments(const SourceManager& sm, FileId id);

/// One token per line: `line:col KIND 'text'` (`gyrus emit --stage=tokens`).
std::string dumpTokens(const SourceManager& sm, FileId id);

}  // namespace gyrus
