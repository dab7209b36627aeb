// The mask in force (one pattern, or one per head under LSH), with the custom-mask painter.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

void ShowMaskWindow(AppState& st, Worker& worker) {
  if (!st.show_mask) return;
  ImGui::SetNextWindowSize(ImVec2(560, 620), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(ImGui::GetMainViewport()->Size.x - 580, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "mask");
  if (ImGui::Begin("Mask###mask", &st.show_mask) && st.shown && st.shown->result && !ViewImages(*st.shown, "mask").empty()) {
    const Snapshot& s = *st.shown;
    const auto& masks = ViewImages(s, "mask");
    const int entries = static_cast<int>(masks.size());
    if (entries > 1) {  // LSH: each head hashes its own queries
      ImGui::SliderInt("head", &st.mask_head, 0, entries - 1);
      RecordWidget(st, "mask.head");
    }
    const int e = std::clamp(st.mask_head, 0, entries - 1);
    const auto& mask = st.session.attention.mask;
    const long long all = static_cast<long long>(masks[e].rows) * masks[e].pooled_r * masks[e].cols * masks[e].pooled_c;
    ImGui::Text("%s   density %.3g   %lld of %lld score computations", masks[e].title.c_str(), masks[e].density,
                masks[e].cells, s.result->is_field() ? static_cast<long long>(s.result->tokens.size()) * s.result->keys().size() : all);
    if (s.result->is_field()) ImGui::TextDisabled("%s", masks[e].caption.c_str());
    const bool custom = s.result->session.attention.mask.kind == MaskKind::custom;
    if (custom) ImGui::TextDisabled("paint: left button adds cells, right button erases (queries are rows)");
    const ImVec2 o = ImGui::GetCursorScreenPos(), avail = ImGui::GetContentRegionAvail();
    ImVec4 cells;
    const auto [i, j] = DrawImage(st, masks[e], ViewTextures(st, "mask").at(e), o, avail, true, &cells);
    st.widgets["mask.view"] = cells;  // the cells themselves, for tests
    if (i >= 0 && s.result->is_field()) {  // an overview: a block of cells per texel
      const ImageData& m = masks[e];
      const int r0 = i * m.pooled_r, c0 = j * m.pooled_c;
      ImGui::SetTooltip("queries %d..%d -> keys %d..%d: %.4g of the block attended", r0,
                        std::min<int>(r0 + m.pooled_r, int(st.labels.size())) - 1, c0,
                        std::min<int>(c0 + m.pooled_c, int(st.key_labels.size())) - 1,
                        double(m.rg[2 * (std::size_t(i) * m.width + j)]));
    } else if (i >= 0) {
      const bool allowed = (*s.result->layers[0].heads[e].allowed)(i, j);
      ImGui::SetTooltip("query %d \"%s\" -> key %d \"%s\": %s", i, st.labels[i].c_str(), j, st.key_labels[j].c_str(),
                        allowed ? "attended" : "masked");
      if (custom) {
        // a stroke adds (left) or erases (right) every cell it passes over
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) st.paint = 1;
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Right)) st.paint = -1;
      }
    }
    if (!ImGui::IsMouseDown(ImGuiMouseButton_Left) && !ImGui::IsMouseDown(ImGuiMouseButton_Right)) st.paint = 0;
    if (custom && st.paint != 0 && i >= 0 && mask.kind == MaskKind::custom) {
      auto& cells = st.session.attention.mask.cells;
      const std::array<int, 2> cell{i, j};
      const auto it = std::find(cells.begin(), cells.end(), cell);
      if (st.paint > 0 && it == cells.end()) {
        cells.push_back(cell);
        Edited(st, worker);
      } else if (st.paint < 0 && it != cells.end()) {
        cells.erase(it);
        Edited(st, worker);
      }
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kMaskView{"mask", "View", "Mask", &AppState::show_mask, true,
    [](const Result& r, const DisplayOptions&) { return mask_panels(r, 0); },
    [](AppState& st, const ViewContext& c) { ShowMaskWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      if (!st.shown || !st.shown->result) return;
      std::vector<double> density;
      std::vector<long long> cells;
      for (const ImageData& m : ViewImages(*st.shown, "mask")) density.push_back(m.density), cells.push_back(m.cells);
      if (!density.empty()) j["mask_density"] = density, j["mask_cells"] = cells;
    }};

}  // namespace attnlab::app
