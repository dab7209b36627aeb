#include "present/colormap.hpp"

#include <sstream>
#include <string>

#include "colormap_data.hpp"  // generated: kColormapCsv[] = {{name, csv text}, ...}

namespace attnlab {

const std::vector<Colormap>& colormaps() {
  static const std::vector<Colormap> maps = [] {
    std::vector<Colormap> out;
    for (const auto& [name, csv] : kColormapCsv) {
      Colormap m{name, {}};
      std::istringstream in{std::string(csv)};
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::array<float, 3> c{};
        if (std::sscanf(line.c_str(), "%f,%f,%f", &c[0], &c[1], &c[2]) == 3) m.rgb.push_back(c);
      }
      out.push_back(std::move(m));
    }
    return out;
  }();
  return maps;
}

const Colormap& colormap(std::string_view name) {
  for (const auto& m : colormaps())
    if (m.name == name) return m;
  return colormaps().front();
}

}  // namespace attnlab
