// Small string helpers used across the engine, the CLI and the window.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace attnlab {

// "a; b; c": problems joined into the one line the CLI prints and the window shows.
inline std::string join(const std::vector<std::string>& parts, std::string_view separator = "; ") {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += separator;
    out += parts[i];
  }
  return out;
}

}  // namespace attnlab
