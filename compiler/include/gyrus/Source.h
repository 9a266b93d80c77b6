// Source files and locations.
//
// Every AST node and diagnostic carries a `SourceRange` (file id + byte offsets); the
// `SourceManager` turns offsets into 1-based lines and columns only when rendering.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gyrus {

using FileId = uint32_t;
inline constexpr FileId kNoFile = ~FileId{0};

/// A half-open byte range [begin, end) in one source file.
struct SourceRange {
  FileId file = kNoFile;
  uint32_t begin = 0;
  uint32_t end = 0;
  bool valid() const { return file != kNoFile; }
};

/// A 1-based line and column (columns count bytes).
struct LineCol {
  uint32_t line = 1;
  uint32_t col = 1;
};

struct SourceFile {
  std::string path;  ///< as the user gave it (shown in diagnostics)
  std::string text;
  std::vector<uint32_t> lineStarts;  ///< byte offset of each line's first character
};

/// Owns the text of every file (and `--set` value) of one compilation.
class SourceManager {
 public:
  /// Adds a file and returns its id. `path` is what diagnostics print.
  FileId add(std::string path, std::string text);
  const SourceFile& file(FileId id) const { return files_.at(id); }
  size_t size() const { return files_.size(); }
  LineCol lineCol(FileId id, uint32_t offset) const;
  /// The text of 1-based line `line`, without its line break.
  std::string_view lineText(FileId id, uint32_t line) const;
  /// The source text covered by `range`.
  std::string_view text(SourceRange range) const;

 private:
  std::vector<SourceFile> files_;
};

/// The pieces of `text` between `separator`s (`split("a.b", '.')` is {"a", "b"}; an
/// empty text is one empty piece).
std::vector<std::string> split(std::string_view text, char separator);

/// Reads a whole file; returns false (and leaves `out` empty) when it cannot.
bool readFile(const std::string& path, std::string& out, std::string& error);

}  // namespace gyrus
