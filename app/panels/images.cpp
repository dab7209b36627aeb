// Drawing a prepared matrix (a view's ImageData) with its texture, token labels and hover.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "../ui.hpp"

namespace attnlab::app {

std::pair<int, int> DrawImage(const AppState& st, const ImageData& img, const Heatmap& tex, ImVec2 origin, ImVec2 size,
                              bool labels, ImVec4* cells_rect) {
  const float font = ImGui::GetFontSize();
  const int rows = img.rows, cols = img.cols;
  float gutter = labels ? std::min(st.longest_label() + 8, std::min(size.x, size.y) * 0.3f) : 0;
  float cw = (size.x - (img.token_rows ? gutter : 0)) / cols, ch = (size.y - (img.token_cols ? gutter : 0)) / rows;
  if (img.token_rows && img.token_cols) cw = ch = std::min(cw, ch);  // square cells for position x position
  if (std::min(cw, ch) * 3 < font) gutter = 0;
  const ImVec2 p0(std::floor(origin.x + (img.token_rows ? gutter : 0)), std::floor(origin.y + (img.token_cols ? gutter : 0)));
  if (gutter == 0) {
    cw = size.x / cols;
    ch = size.y / rows;
    if (img.token_rows && img.token_cols) cw = ch = std::min(cw, ch);
  }
  const ImVec2 p1(p0.x + cw * cols, p0.y + ch * rows);
  if (cells_rect) *cells_rect = ImVec4(p0.x, p0.y, p1.x - p0.x, p1.y - p0.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  if (tex.texture()) dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(tex.texture())), p0, p1);
  dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), ImGui::GetColorU32(ImGuiCol_Border));
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  const int n_labels = static_cast<int>(st.labels.size());
  const int n_key_labels = static_cast<int>(st.key_labels.size());
  if (gutter > 0 && img.token_rows) {
    const int stride = std::max(1, static_cast<int>(std::ceil(font / ch)));
    for (int i = 0; i < rows && i < n_labels; i += stride) {
      const std::string s = FitLabel(st.labels[i], gutter - 6);
      dl->AddText(ImVec2(p0.x - 4 - ImGui::CalcTextSize(s.c_str()).x, p0.y + (i + 0.5f) * ch - font * 0.5f), dim, s.c_str());
    }
  }
  if (gutter > 0 && img.token_cols) {
    const int stride = std::max(1, static_cast<int>(std::ceil(font / cw)));
    // columns are keys: the context's tokens in cross-attention (mask images), else the text's
    const bool keys = img.cols == n_key_labels && n_key_labels != n_labels;
    for (int j = 0; j < cols && j < (keys ? n_key_labels : n_labels); j += stride)
      AddTextVertical(dl, ImVec2(p0.x + (j + 0.5f) * cw - font * 0.5f, p0.y - 4), dim,
                      FitLabel(keys ? st.key_labels[j] : st.labels[j], gutter - 6).c_str());
  }
  const ImVec2 m = ImGui::GetMousePos();
  if (ImGui::IsWindowHovered() && m.x >= p0.x && m.y >= p0.y && m.x < p1.x && m.y < p1.y) {
    const int i = std::clamp(static_cast<int>((m.y - p0.y) / ch), 0, rows - 1);
    const int j = std::clamp(static_cast<int>((m.x - p0.x) / cw), 0, cols - 1);
    dl->AddRect(ImVec2(p0.x + j * cw, p0.y + i * ch), ImVec2(p0.x + (j + 1) * cw, p0.y + (i + 1) * ch),
                IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
    return {i, j};
  }
  return {-1, -1};
}

}  // namespace attnlab::app
