// Every layer x every head of the result, small multiples.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "views/view.hpp"

namespace attnlab::app {
namespace {

void ShowModelWindow(AppState& st) {
  if (!st.show_model || !st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  ImGui::SetNextWindowSize(ImVec2(900, 700), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "model");
  if (ImGui::Begin("Model view: every layer x every head###model", &st.show_model)) {
    const int n_layers = r.n_layers(), n_heads = st.shown->n_heads;
    const float font = ImGui::GetFontSize();
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float label_w = font * 4, title = font * 1.3f;
    const float tile = std::max(24.0f, std::min((avail.x - label_w) / n_heads, (avail.y - title) / n_layers));
    ImDrawList* dl = ImGui::GetWindowDrawList();
    for (int h = 0; h < n_heads; ++h)
      dl->AddText(ImVec2(o.x + label_w + h * tile + 2, o.y), ImGui::GetColorU32(ImGuiCol_TextDisabled), ("head " + std::to_string(h)).c_str());
    for (int l = 0; l < n_layers; ++l) {
      dl->AddText(ImVec2(o.x, o.y + title + l * tile + tile / 2 - font / 2), ImGui::GetColorU32(ImGuiCol_TextDisabled),
                  ("layer " + std::to_string(l)).c_str());
      for (int h = 0; h < n_heads; ++h) {
        HeadRect rect;
        Hover hover;
        const ImVec2 p(o.x + label_w + h * tile, o.y + title + l * tile);
        if (DrawHeatmap(st, h, p, ImVec2(tile - 6, tile - 6), &rect, &hover, l)) {
          st.layer = l;
          st.detail_head = h;
        }
        if (hover.head >= 0) st.hover = hover;
        st.widgets["model." + std::to_string(l) + "." + std::to_string(h)] = ImVec4(rect.x, rect.y, rect.w, rect.h);
      }
    }
    ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + title + n_layers * tile));
    ImGui::TextDisabled("click a head to open it large");
  }
  ImGui::End();
}

}  // namespace

extern const View kModelView{"model", "View", "Model view (all layers x heads)", &AppState::show_model, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowModelWindow(st); }};

}  // namespace attnlab::app
