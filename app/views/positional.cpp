// The positions the Result used: the encoding, position similarity, RoPE angles, ALiBi / T5 biases.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

void ShowPositionalWindow(AppState& st) {
  if (!st.show_positional) return;
  ImGui::SetNextWindowSize(ImVec2(900, 620), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(400, 100), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "positional");
  if (ImGui::Begin("Positional encoding###positional", &st.show_positional) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    const auto& images = ViewImages(s, "positional");
    ImGui::Text("%s", name(s.result->session.positional.kind));
    if (images.empty()) {
      ImGui::TextDisabled("no positional encoding: attention sees a bag of tokens (permuting them permutes the weights)");
    }
    const int count = static_cast<int>(images.size());
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const int cols = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
    const int rows = std::max(1, (count + cols - 1) / cols);
    const float w = avail.x / cols, h = avail.y / rows;
    const ImVec2 start = ImGui::GetCursorScreenPos();
    const float title = ImGui::GetTextLineHeightWithSpacing() * 2;
    for (int k = 0; k < count; ++k) {
      const ImageData& img = images[k];
      const ImVec2 o(start.x + (k % cols) * w, start.y + (k / cols) * h);
      ImGui::PushClipRect(o, ImVec2(o.x + w - 8, o.y + h), true);  // long captions stay in their panel
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.c_str());
      ImGui::PopClipRect();
      const ImVec2 size(w - ImGui::GetFontSize() * 4.5f, h - title - 10);
      if (size.x < 8 || size.y < 8) continue;
      const auto [i, j] = DrawImage(st, img, ViewTextures(st, "positional").at(k), ImVec2(o.x, o.y + title), size, true);
      DrawColorBar(ImVec2(o.x + w - ImGui::GetFontSize() * 3.5f, o.y + title), size.y * 0.8f, img.vmin, img.vmax, "",
                   img.diverging ? "rdbu_diverging" : "viridis");
      if (i >= 0 && img.width == img.cols && img.height == img.rows) {
        const float v = img.rg[2 * (std::size_t(i) * img.width + j)];
        ImGui::SetTooltip("%s\nrow %d, column %d: %.4g", img.title.c_str(), i, j, v);
      }
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kPositionalView{"positional", "View", "Positional encoding", &AppState::show_positional, false,
    [](const Result& r, const DisplayOptions&) { return positional_panels(r); },
    [](AppState& st, const ViewContext&) { ShowPositionalWindow(st); },
    [](const AppState& st, nlohmann::json& j) {
      if (st.shown && st.shown->result) j["positional_views"] = ViewImages(*st.shown, "positional").size();
    }};

}  // namespace attnlab::app
