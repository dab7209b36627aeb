// Minimal UTF-8 handling: validation with a byte offset, and decoding to code points.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab {

// Byte offset of the first invalid sequence (overlong, surrogate, > U+10FFFF, truncated), if any.
std::optional<std::size_t> utf8_first_invalid(std::string_view s);

struct CodePoint {
  char32_t value;
  std::size_t begin;  // byte offsets in the source, [begin, end)
  std::size_t end;
};
// Assumes valid UTF-8 (check with utf8_first_invalid first).
std::vector<CodePoint> utf8_decode(std::string_view s);

std::string utf8_encode(char32_t cp);

// s with every invalid byte replaced by U+FFFD, so it can be shown or printed safely.
std::string utf8_sanitize(std::string_view s);

}  // namespace attnlab
