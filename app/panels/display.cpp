// The display settings of the side panel: colormap, colour range, log scale, numbers in cells.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/colormap.hpp"
#include "session/cost.hpp"
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
  // long sequences (above 2048 tokens): how the overview pools a block of cells
  int pool = st.display.pool_mean ? 1 : 0;
  ImGui::TextUnformatted("overview of a long text:");
  ImGui::SameLine();
  changed |= ImGui::RadioButton("block max", &pool, 0);
  RecordWidget(st, "display.pool_max");
  ImGui::SameLine();
  changed |= ImGui::RadioButton("block mean", &pool, 1);
  RecordWidget(st, "display.pool_mean");
  st.display.pool_mean = pool == 1;
  // the memory a computation may use; past it the session is refused with the figures
  float gb = static_cast<float>(memory_budget_bytes() / 1e9);
  const float most = static_cast<float>(std::max(1.0, physical_memory_bytes() * 0.9 / 1e9));
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
  if (ImGui::SliderFloat("memory budget", &gb, 0.25f, most, "%.2f GB")) {
    set_memory_budget_bytes(std::clamp(gb, 0.25f, most) * 1e9);
    st.budget_gb = static_cast<float>(memory_budget_bytes() / 1e9);
    changed = true;
  }
  RecordWidget(st, "display.budget");
  if (changed) Repost(st, worker);
}

}  // namespace attnlab::app
