// The display settings of the side panel: colormap, colour range, log scale, numbers in cells.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/colormap.hpp"
#include "../ui.hpp"

namespace attnlab::app {

namespace {

bool ComboStrings(AppState& st, const char* label, const std::string& id, std::string& value,
                  const std::vector<std::string>& choices) {
  bool changed = false;
  if (ImGui::BeginCombo(label, value.c_str(), ImGuiComboFlags_HeightLargest)) {
    const bool placed = !ImGui::IsWindowAppearing();
    for (const auto& c : choices) {
      if (ImGui::Selectable(c.c_str(), c == value)) value = c, changed = true;
      if (placed) RecordWidget(st, id + "=" + c);
    }
    ImGui::EndCombo();
  }
  RecordWidget(st, id);
  return changed;
}

}  // namespace

void ShowDisplaySection(AppState& st, Worker& worker) {
  bool changed = false;
  std::vector<std::string> maps;
  for (const auto& m : colormaps())
    if (m.name != "rdbu_diverging") maps.emplace_back(m.name);
  changed |= ComboStrings(st, "colormap", "display.colormap", st.display.colormap, maps);
  std::string range = name(st.display.range);
  if (ComboStrings(st, "range", "display.range", range, {"global", "per_head", "per_row"})) {
    parse_range_mode(range, st.display.range);
    changed = true;
  }
  changed |= ImGui::Checkbox("log scale (weights)", &st.display.log);
  RecordWidget(st, "display.log");
  ImGui::SameLine();
  ImGui::Checkbox("numbers in cells", &st.numbers);
  RecordWidget(st, "display.numbers");
  if (changed) Repost(st, worker);
}

}  // namespace attnlab::app
