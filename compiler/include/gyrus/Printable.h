// Text from a file, as a message quotes it. Header-only, so that every layer (the
// parser, the IR's weights reader) can use it without linking another.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace gyrus {

/// `text` with its control characters escaped as \xNN, so that a file's bytes can
/// neither drive the terminal (\x1b) nor cut the message short (\x00).
inline std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace gyrus
