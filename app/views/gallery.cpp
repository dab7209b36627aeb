// Every mask kind for these tokens, as small multiples; a click picks one.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

void ShowGalleryWindow(AppState& st, Worker& worker) {
  if (!st.show_gallery) return;
  ImGui::SetNextWindowSize(ImVec2(900, 640), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 120), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "gallery");
  if (ImGui::Begin("Mask gallery###gallery", &st.show_gallery) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    ImGui::TextDisabled("every pattern for these %zu tokens with the current parameters; click one to use it",
                        s.result->tokens.size());
    const int count = static_cast<int>(ViewImages(s, "gallery").size());
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float title = ImGui::GetTextLineHeightWithSpacing() * 2;
    int cols = 1;
    float tile = 0;
    for (int c = 1; c <= count; ++c) {
      const int r = (count + c - 1) / c;
      const float t = std::min(avail.x / c, avail.y / r - title * 0.2f);
      if (t > tile) tile = t, cols = c;
    }
    const ImVec2 start = ImGui::GetCursorScreenPos();
    for (int k = 0; k < count; ++k) {
      const ImVec2 o(start.x + (k % cols) * tile, start.y + (k / cols) * tile);
      const ImageData& img = ViewImages(s, "gallery")[k];
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.substr(0, img.caption.find("   ")).c_str());
      const ImVec2 io(o.x, o.y + title);
      const float side = tile - title - 8;
      if (side <= 4) continue;
      DrawImage(st, img, ViewTextures(st, "gallery").at(k), io, ImVec2(side, side), false);
      ImGui::SetCursorScreenPos(io);
      ImGui::PushID(k);
      if (ImGui::InvisibleButton("pick", ImVec2(side, side))) {
        const std::string kind = img.title.substr(0, img.title.find(' '));
        if (option_set(st.session, "attention.mask.kind", "\"" + kind + "\"").empty()) Edited(st, worker);
      }
      RecordWidget(st, "gallery." + img.title.substr(0, img.title.find(' ')));
      if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s\n%s\nclick to use this mask", img.title.c_str(), img.caption.c_str());
      ImGui::PopID();
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kGalleryView{"gallery", "View", "Mask gallery", &AppState::show_gallery, false,
    [](const Result& r, const DisplayOptions&) { return gallery_panels(r); },
    [](AppState& st, const ViewContext& c) { ShowGalleryWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      if (st.shown && st.shown->result) j["gallery"] = ViewImages(*st.shown, "gallery").size();
    }};

}  // namespace attnlab::app
