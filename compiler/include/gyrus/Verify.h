// Inline diagnostic expectations for negative tests (`gyrus check --verify FILE`).
//
// A comment `// expect-error [kind]` expects an error of that kind whose primary range
// starts on the comment's line; `// expect-warning@+1 [kind]` one on the next line,
// `@-2` two lines up, `@*` anywhere (also diagnostics without a place, such as a bad
// `--set`). Several kinds may be listed: `// expect-error [unknown-name] [cycle]`.
// Verification passes when every expectation matches exactly one diagnostic and every
// error or warning is expected.
#pragma once

#include <string>
#include <vector>

#include "gyrus/Diagnostics.h"

namespace gyrus {

/// Checks the diagnostics against the expectations in file `id`; returns one message
/// per mismatch (empty: verified).
std::vector<std::string> verifyDiagnostics(const SourceManager& sm, FileId id, const std::vector<Diagnostic>& diags);

}  // namespace gyrus
