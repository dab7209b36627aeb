// Colormaps are data: 256 RGB entries per map, read from assets/colormaps/*.csv at build time
// (CMake embeds them, so the app needs no asset path at run time).
#pragma once

#include <array>
#include <string_view>
#include <vector>

namespace attnlab {

struct Colormap {
  std::string_view name;
  std::vector<std::array<float, 3>> rgb;  // 256 entries, 0..1
};

// Every embedded colormap; viridis first.
const std::vector<Colormap>& colormaps();
const Colormap& colormap(std::string_view name);  // viridis when the name is unknown

}  // namespace attnlab
