// Flash attention as a lesson, tile by tile.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "attention/kernels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

// Flash attention as a lesson: the tiles in the order Algorithm 1 visits them; for the tile
// reached, each row of its block shows the running max m and the running sum l so far.
void ShowFlashWindow(AppState& st) {
  if (!st.show_flash) return;
  ImGui::SetNextWindowSize(ImVec2(920, 660), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 70), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "flash");
  if (ImGui::Begin("Flash attention, tile by tile###flash", &st.show_flash) && st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
    if (DenseOnly(*st.shown, "The flash tile view")) {
      ImGui::End();
      return;
    }
    const auto& heads = r.layers[0].heads;
    st.flash_head = std::clamp(st.flash_head, 0, static_cast<int>(heads.size()) - 1);
    const HeadResult& h = heads[st.flash_head];
    if (r.session.attention.kernel.kind != KernelKind::flash) {
      ImGui::TextWrapped("Choose kernel 'flash' (Kernel, in the controls) to step through its tiles.");
    } else if (h.flash_trace.empty()) {
      ImGui::TextWrapped("The tile trace is kept for up to %d tokens.", kMaxFlashTraceTokens);
    } else {
      const int tiles = static_cast<int>(h.flash_trace.size());
      st.flash_step = std::clamp(st.flash_step, 1, tiles);
      ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
      ImGui::SliderInt("head##flash", &st.flash_head, 0, static_cast<int>(heads.size()) - 1);
      ImGui::SameLine();
      if (ImGui::Button("< Previous")) st.flash_step = std::max(1, st.flash_step - 1);
      RecordWidget(st, "flash.previous");
      ImGui::SameLine();
      if (ImGui::Button("Next >")) st.flash_step = std::min(tiles, st.flash_step + 1);
      RecordWidget(st, "flash.next");
      ImGui::SameLine();
      ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12);
      ImGui::SliderInt("tile##flash", &st.flash_step, 1, tiles);
      const FlashTile& t = h.flash_trace[st.flash_step - 1];
      ImGui::TextWrapped(
          "Tile %d of %d: queries %d-%d, keys %d-%d. Each row keeps a running max m and a running sum "
          "l of exp(s - m); a new tile with a larger max rescales the old sum and output by exp(m_old - m_new), "
          "so after the last tile of a row the result equals softmax exactly (max |dw| %.2g).",
          st.flash_step, tiles, t.r0, t.r1 - 1, t.c0, t.c1 - 1, h.approx ? h.approx->max_weight_error : 0.0);
      const ImVec2 avail = ImGui::GetContentRegionAvail();
      const ImVec2 o = ImGui::GetCursorScreenPos();
      const float side = std::min(avail.x * 0.62f, avail.y);
      const std::size_t k = static_cast<std::size_t>(st.flash_head);
      ImVec4 cells;
      if (k < st.ready_w.size() && st.ready_w[k] && !ViewImages(*st.shown, "mask").empty()) {
        ImageData frame = ViewImages(*st.shown, "mask")[0];  // for the geometry: rows, cols, token labels
        DrawImage(st, frame, st.tex.weights[k], o, ImVec2(side, side), true, &cells);
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const float cw = cells.z / frame.cols, ch = cells.w / frame.rows;
        for (int s = 0; s < st.flash_step; ++s) {  // tiles done so far: outlined; the current one: bright
          const FlashTile& d = h.flash_trace[s];
          const ImVec2 a(cells.x + d.c0 * cw, cells.y + d.r0 * ch), b(cells.x + d.c1 * cw, cells.y + d.r1 * ch);
          dl->AddRect(a, b, s + 1 == st.flash_step ? IM_COL32(255, 80, 60, 255) : IM_COL32(255, 255, 255, 70), 0, 0,
                      s + 1 == st.flash_step ? 3.0f : 1.0f);
        }
      }
      ImGui::SetCursorScreenPos(ImVec2(o.x + side + ImGui::GetFontSize() * 1.5f, o.y));
      ImGui::BeginGroup();
      if (ImGui::BeginTable("flash_rows", 3, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
        ImGui::TableSetupColumn("query");
        ImGui::TableSetupColumn("running max m");
        ImGui::TableSetupColumn("running sum l");
        ImGui::TableHeadersRow();
        for (int i = t.r0; i < t.r1; ++i) {
          ImGui::TableNextRow();
          ImGui::TableNextColumn();
          ImGui::Text("%d %s", i, i < static_cast<int>(st.labels.size()) ? st.labels[i].c_str() : "");
          ImGui::TableNextColumn();
          ImGui::Text("%.4f", t.m[i - t.r0]);
          ImGui::TableNextColumn();
          ImGui::Text("%.4f", t.l[i - t.r0]);
        }
        ImGui::EndTable();
      }
      ImGui::EndGroup();
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kFlashView{"flash", "View", "Flash attention, tile by tile", &AppState::show_flash, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowFlashWindow(st); },
    [](const AppState& st, nlohmann::json& j) {
      j["flash_step"] = st.flash_step;
      if (st.shown && st.shown->result && !st.shown->result->is_field()) j["flash_tiles"] = st.shown->result->layers[0].heads[0].flash_trace.size();
    }};

}  // namespace attnlab::app
