// Source files: line tables and text access.
#include "gyrus/Source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gyrus {

FileId SourceManager::add(std::string path, std::string text) {
  SourceFile f;
  f.path = std::move(path);
  f.text = std::move(text);
  f.lineStarts.push_back(0);
  for (uint32_t i = 0; i < f.text.size(); ++i) {
    if (f.text[i] == '\n') f.lineStarts.push_back(i + 1);
  }
  files_.push_back(std::move(f));
  return static_cast<FileId>(files_.size() - 1);
}

namespace {

/// The bytes of a UTF-8 byte-order mark at the start of `text` (editors on Windows write
/// one): not a column of line 1.
uint32_t bomBytes(const std::string& text) { return text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0; }

}  // namespace

LineCol SourceManager::lineCol(FileId id, uint32_t offset) const {
  const SourceFile& f = file(id);
  auto it = std::upper_bound(f.lineStarts.begin(), f.lineStarts.end(), offset);
  auto line = static_cast<uint32_t>(it - f.lineStarts.begin());  // 1-based
  uint32_t start = f.lineStarts[line - 1];
  if (line == 1) start = std::min(offset, bomBytes(f.text));
  return {line, offset - start + 1};
}

std::string_view SourceManager::lineText(FileId id, uint32_t line) const {
  const SourceFile& f = file(id);
  if (line == 0 || line > f.lineStarts.size()) return {};
  uint32_t begin = line == 1 ? bomBytes(f.text) : f.lineStarts[line - 1];
  uint32_t end = line < f.lineStarts.size() ? f.lineStarts[line] : static_cast<uint32_t>(f.text.size());
  end = std::max(begin, end);
  std::string_view v(f.text.data() + begin, end - begin);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.remove_suffix(1);
  return v;
}

std::string_view SourceManager::text(SourceRange range) const {
  if (!range.valid()) return {};
  const std::string& t = file(range.file).text;
  uint32_t b = std::min<uint32_t>(range.begin, static_cast<uint32_t>(t.size()));
  uint32_t e = std::min<uint32_t>(std::max(range.end, b), static_cast<uint32_t>(t.size()));
  return std::string_view(t).substr(b, e - b);
}

bool readFile(const std::string& path, std::string& out, std::string& error) {
  out.clear();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) {
    error = "cannot read '" + path + "': no such file";
    return false;
  }
  if (status.type() == fs::file_type::directory) {
    error = "cannot read '" + path + "': it is a directory, not a file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    error = "cannot read '" + path + "': " + std::strerror(errno);
    return false;
  }
  out = ss.str();
  return true;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t at = text.find(separator, start);
    parts.emplace_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return parts;
}

}  // namespace gyrus
