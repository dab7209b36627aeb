// The keyboard shortcuts.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "views/view.hpp"

namespace attnlab::app {
namespace {

void ShowHelpWindow(AppState& st) {
  if (!st.show_help) return;
  ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 28, 0), ImGuiCond_Appearing);
  if (ImGui::Begin("Keyboard shortcuts###help", &st.show_help)) {
    static const char* keys[][2] = {
        {"F1", "this help"},
        {"Ctrl+O / Ctrl+S", "open / save a session (Ctrl+Shift+S: save as)"},
        {"Ctrl+Z / Ctrl+Shift+Z", "undo / redo any session edit (Ctrl+Y too)"},
        {"Ctrl+E", "export a figure (PNG 1x/2x/4x) or a matrix (CSV, .npy, JSON)"},
        {"Ctrl+C over a heatmap", "copy that head's matrix as tab-separated text"},
        {"F5", "presentation mode: full screen, large light theme, controls hidden"},
        {"F9", "hide / show the controls"},
        {"F11", "full screen"},
        {"Ctrl+= / Ctrl+-", "font larger / smaller (1x to 3x)"},
        {"wheel, drag (head detail)", "zoom and pan"},
        {"drop a .json on the window", "open that session"},
    };
    if (ImGui::BeginTable("keys", 2, ImGuiTableFlags_RowBg)) {
      for (const auto& k : keys) {
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(k[0]);
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(k[1]);
      }
      ImGui::EndTable();
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kHelpView{"help", "Help", "Keyboard shortcuts", &AppState::show_help, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowHelpWindow(st); }};

}  // namespace attnlab::app
