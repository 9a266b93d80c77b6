// The formatter: a canonical layout for gyrus files (`gyrus fmt`).
//
// Canonical means: one declaration per line (pretrain blocks one field per line,
// two-space indent, `=` aligned within a block), single spaces around binary
// operators and `=`, `, ` between arguments, at most one blank line between
// declarations (kept where the source had one), literals as written (`1e-4`, `60%`,
// `160x192x160`). Comments are kept: leading, trailing and between fields. A
// declaration with a comment inside an expression is kept verbatim. The formatter is
// idempotent: formatting its output changes nothing.
#pragma once

#include <string>

#include "gyrus/Ast.h"
#include "gyrus/Source.h"

namespace gyrus {

/// Formats a parsed file (`file` must be the parse of `id`).
std::string formatFile(const SourceManager& sm, FileId id, const ast::File& file);

}  // namespace gyrus
