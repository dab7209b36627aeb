// The line view (BertViz-style): tokens in two columns, a line per attention weight, per head.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "views/view.hpp"

namespace attnlab::app {
namespace {

ImU32 HeadColour(int h, float alpha) {  // distinct hues for the line view
  ImVec4 c;
  ImGui::ColorConvertHSVtoRGB(std::fmod(h * 0.618034f, 1.0f), 0.65f, 0.95f, c.x, c.y, c.z);
  c.w = alpha;
  return ImGui::ColorConvertFloat4ToU32(c);
}

void ShowLinesWindow(AppState& st) {
  if (!st.show_lines || !st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  ImGui::SetNextWindowSize(ImVec2(520, 760), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(700, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "lines");
  if (ImGui::Begin("Line view###lines", &st.show_lines)) {
    if (DenseOnly(*st.shown, "The line view")) {
      ImGui::End();
      return;
    }
    const int n_heads = st.shown->n_heads;
    const LayerResult& L = r.layers[st.layer];
    std::string current = st.lines_head < 0 ? "all heads" : "head " + std::to_string(st.lines_head);
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    if (ImGui::BeginCombo("heads", current.c_str())) {
      const bool placed = !ImGui::IsWindowAppearing();
      for (int h = -1; h < n_heads; ++h) {
        const std::string l = h < 0 ? "all heads" : "head " + std::to_string(h);
        if (ImGui::Selectable(l.c_str(), h == st.lines_head)) st.lines_head = h;
        if (placed) RecordWidget(st, "lines.heads=" + l);
      }
      ImGui::EndCombo();
    }
    RecordWidget(st, "lines.heads");
    ImGui::SameLine();
    ImGui::PushTextWrapPos(0);
    ImGui::TextDisabled("layer %d: queries left, keys right; hover a token", st.layer);
    ImGui::PopTextWrapPos();
    const int n_q = static_cast<int>(r.tokens.size()), n_k = static_cast<int>(r.keys().size());
    const int max_tokens = 128;  // beyond this the lines are a blur: the first ones only
    const int rows_q = std::min(n_q, max_tokens), rows_k = std::min(n_k, max_tokens);
    const float font = ImGui::GetFontSize();
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float row_h = std::max(4.0f, std::min(font * 1.3f, (avail.y - font) / std::max(rows_q, rows_k)));
    const float col_w = std::min(font * 8, avail.x * 0.3f);
    const float left_x = o.x + col_w, right_x = o.x + avail.x - col_w;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    // which query is hovered (isolates its lines)
    const ImVec2 m = ImGui::GetMousePos();
    st.lines_token = -1;
    if (ImGui::IsWindowHovered() && m.x >= o.x && m.x < left_x && m.y >= o.y)
      if (int i = static_cast<int>((m.y - o.y) / row_h); i < rows_q) st.lines_token = i;
    int hovered_key = -1;
    if (ImGui::IsWindowHovered() && m.x >= right_x && m.y >= o.y)
      if (int j = static_cast<int>((m.y - o.y) / row_h); j < rows_k) hovered_key = j;
    const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
    const bool small = row_h < font;
    for (int i = 0; i < rows_q; ++i) {
      const float y = o.y + (i + 0.5f) * row_h;
      const std::string s = FitLabel(st.labels[i], col_w - 8);
      if (!small || i == st.lines_token)
        dl->AddText(ImVec2(left_x - 6 - ImGui::CalcTextSize(s.c_str()).x, y - font / 2), i == st.lines_token ? text : dim, s.c_str());
      st.widgets["lines.query=" + std::to_string(i)] = ImVec4(o.x, y - row_h / 2, col_w, row_h);
    }
    for (int j = 0; j < rows_k; ++j) {
      const float y = o.y + (j + 0.5f) * row_h;
      if (!small || j == hovered_key)
        dl->AddText(ImVec2(right_x + 6, y - font / 2), j == hovered_key ? text : dim, FitLabel(st.key_labels[j], col_w - 8).c_str());
    }
    const int h0 = st.lines_head < 0 ? 0 : st.lines_head, h1 = st.lines_head < 0 ? n_heads : st.lines_head + 1;
    const float heads_share = 1.0f / std::sqrt(float(h1 - h0));  // several heads overlap: each a bit fainter
    int drawn = 0;
    for (int h = h0; h < h1; ++h) {
      const Matrix& w = L.heads[h].weights;
      for (int i = 0; i < rows_q; ++i) {
        if (st.lines_token >= 0 && i != st.lines_token) continue;
        for (int j = 0; j < rows_k; ++j) {
          if (hovered_key >= 0 && j != hovered_key) continue;
          const float a = std::min(1.0f, w(i, j) * heads_share);
          if (a < 0.02f) continue;
          dl->AddLine(ImVec2(left_x, o.y + (i + 0.5f) * row_h), ImVec2(right_x, o.y + (j + 0.5f) * row_h),
                      HeadColour(h, a), std::max(1.0f, 3.0f * a));
          ++drawn;
        }
      }
    }
    st.widgets["lines.area"] = ImVec4(left_x, o.y, right_x - left_x, rows_q * row_h);
    st.lines_drawn = drawn;
    ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + std::max(rows_q, rows_k) * row_h + 4));
    if (n_q > max_tokens) ImGui::TextDisabled("first %d of %d tokens", max_tokens, n_q);
    if (st.lines_head < 0)
      for (int h = 0; h < n_heads; ++h) {
        ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(HeadColour(h, 1)), "head %d", h);
        if (h + 1 < n_heads) ImGui::SameLine();
      }
  }
  ImGui::End();
}

}  // namespace

extern const View kLinesView{"lines", "View", "Line view", &AppState::show_lines, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowLinesWindow(st); },
    [](const AppState& st, nlohmann::json& j) {
      j["lines_token"] = st.lines_token;
      j["lines_drawn"] = st.lines_drawn;
    }};

}  // namespace attnlab::app
