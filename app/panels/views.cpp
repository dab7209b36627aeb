// The mask view (with the custom-mask painter), the mask gallery and the positional views.
// All matrices come prepared from the worker (engine/present/views.hpp); this file only draws.
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

void ShowMaskWindow(AppState& st, Worker& worker) {
  if (!st.show_mask) return;
  ImGui::SetNextWindowSize(ImVec2(560, 620), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(ImGui::GetMainViewport()->Size.x - 580, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "mask");
  if (ImGui::Begin("Mask###mask", &st.show_mask) && st.shown && st.shown->result && !st.shown->masks.empty()) {
    const Snapshot& s = *st.shown;
    const int entries = static_cast<int>(s.masks.size());
    if (entries > 1) {  // LSH: each head hashes its own queries
      ImGui::SliderInt("head", &st.mask_head, 0, entries - 1);
      RecordWidget(st, "mask.head");
    }
    const int e = std::clamp(st.mask_head, 0, entries - 1);
    const auto& mask = st.session.attention.mask;
    ImGui::Text("%s   density %.3f   %lld of %lld score computations", s.masks[e].title.c_str(), s.mask_density[e],
                s.mask_cells[e], static_cast<long long>(s.masks[e].rows) * s.masks[e].cols);
    const bool custom = s.result->session.attention.mask.kind == MaskKind::custom;
    if (custom) ImGui::TextDisabled("paint: left button adds cells, right button erases (queries are rows)");
    const ImVec2 o = ImGui::GetCursorScreenPos(), avail = ImGui::GetContentRegionAvail();
    ImVec4 cells;
    const auto [i, j] = DrawImage(st, s.masks[e], st.tex.masks.at(e), o, avail, true, &cells);
    st.widgets["mask.view"] = cells;  // the cells themselves, for tests
    if (i >= 0) {
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

void ShowGalleryWindow(AppState& st, Worker& worker) {
  if (!st.show_gallery) return;
  ImGui::SetNextWindowSize(ImVec2(900, 640), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 120), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "gallery");
  if (ImGui::Begin("Mask gallery###gallery", &st.show_gallery) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    ImGui::TextDisabled("every pattern for these %zu tokens with the current parameters; click one to use it",
                        s.result->tokens.size());
    const int count = static_cast<int>(s.gallery.size());
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
      const ImageData& img = s.gallery[k];
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.substr(0, img.caption.find("   ")).c_str());
      const ImVec2 io(o.x, o.y + title);
      const float side = tile - title - 8;
      if (side <= 4) continue;
      DrawImage(st, img, st.tex.gallery.at(k), io, ImVec2(side, side), false);
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

void ShowPositionalWindow(AppState& st) {
  if (!st.show_positional) return;
  ImGui::SetNextWindowSize(ImVec2(900, 620), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(400, 100), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "positional");
  if (ImGui::Begin("Positional encoding###positional", &st.show_positional) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    ImGui::Text("%s", name(s.result->session.positional.kind));
    if (s.positional.empty()) {
      ImGui::TextDisabled("no positional encoding: attention sees a bag of tokens (permuting them permutes the weights)");
    }
    const int count = static_cast<int>(s.positional.size());
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const int cols = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
    const int rows = std::max(1, (count + cols - 1) / cols);
    const float w = avail.x / cols, h = avail.y / rows;
    const ImVec2 start = ImGui::GetCursorScreenPos();
    const float title = ImGui::GetTextLineHeightWithSpacing() * 2;
    for (int k = 0; k < count; ++k) {
      const ImageData& img = s.positional[k];
      const ImVec2 o(start.x + (k % cols) * w, start.y + (k / cols) * h);
      ImGui::PushClipRect(o, ImVec2(o.x + w - 8, o.y + h), true);  // long captions stay in their panel
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.c_str());
      ImGui::PopClipRect();
      const ImVec2 size(w - ImGui::GetFontSize() * 4.5f, h - title - 10);
      if (size.x < 8 || size.y < 8) continue;
      const auto [i, j] = DrawImage(st, img, st.tex.positional.at(k), ImVec2(o.x, o.y + title), size, true);
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

}  // namespace attnlab::app

namespace attnlab::app {

void ShowMetricsWindow(AppState& st) {
  if (!st.show_metrics) return;
  ImGui::SetNextWindowSize(ImVec2(940, 640), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 80), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "metrics");
  if (ImGui::Begin("Metrics and rollout###metrics", &st.show_metrics) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    const Result& r = *s.result;
    if (r.metrics.empty()) {
      ImGui::TextDisabled("computing the metrics...");
      ImGui::End();
      return;
    }
    const int l = std::clamp(st.layer, 0, static_cast<int>(r.metrics.size()) - 1);
    ImGui::Text("layer %d (choose the layer above the heads)", l);
    if (ImGui::BeginTable("metrics", 7, ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit)) {
      for (const char* h : {"head", "entropy (nats)", "normalised", "mean distance", "max weight", "first token", "density"})
        ImGui::TableSetupColumn(h);
      ImGui::TableHeadersRow();
      for (std::size_t h = 0; h < r.metrics[l].heads.size(); ++h) {
        const HeadMetrics& m = r.metrics[l].heads[h];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::Text("%zu", h);
        for (double v : {m.entropy, m.entropy_normalized, m.mean_distance, m.max_weight, m.first_token, m.density}) {
          ImGui::TableNextColumn();
          ImGui::Text("%.3f", v);
        }
      }
      ImGui::EndTable();
    }
    RecordWidget(st, "metrics.table");
    // the head-similarity matrix of this layer, and the rollout through it
    const int n_layers = static_cast<int>(r.metrics.size());
    std::vector<int> shown = {l};
    if (!r.rollout.empty()) shown.push_back(n_layers + l);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 start = ImGui::GetCursorScreenPos();
    const float w = avail.x / shown.size(), title = ImGui::GetTextLineHeightWithSpacing() * 2;
    for (std::size_t k = 0; k < shown.size(); ++k) {
      const int idx = shown[k];
      if (idx >= static_cast<int>(s.analysis.size())) continue;
      const ImageData& img = s.analysis[idx];
      const ImVec2 o(start.x + k * w, start.y);
      ImGui::PushClipRect(o, ImVec2(o.x + w - 8, o.y + avail.y), true);
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.c_str());
      ImGui::PopClipRect();
      const float side = std::min(w - ImGui::GetFontSize() * 5, avail.y - title - 10);
      if (side < 8) continue;
      const auto [i, j] = DrawImage(st, img, st.tex.analysis.at(idx), ImVec2(o.x, o.y + title), ImVec2(side, side), true);
      DrawColorBar(ImVec2(o.x + side + ImGui::GetFontSize() * 1.5f, o.y + title), side * 0.8f, img.vmin, img.vmax, "");
      if (i >= 0 && img.width == img.cols) {
        const float v = img.rg[2 * (std::size_t(i) * img.width + j)];
        if (k == 0) ImGui::SetTooltip("heads %d and %d: JS divergence %.4f nats", i, j, v);
        else ImGui::SetTooltip("rollout: token %d draws %.4f from token %d", i, v, j);
      }
    }
  }
  ImGui::End();
}

}  // namespace attnlab::app

namespace attnlab::app {

// Flash attention as a lesson: the tiles in the order Algorithm 1 visits them; for the tile
// reached, each row of its block shows the running max m and the running sum l so far.
void ShowFlashWindow(AppState& st) {
  if (!st.show_flash) return;
  ImGui::SetNextWindowSize(ImVec2(920, 660), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 70), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "flash");
  if (ImGui::Begin("Flash attention, tile by tile###flash", &st.show_flash) && st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
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
      if (k < st.tex.weights.size() && !st.shown->masks.empty()) {
        ImageData frame = st.shown->masks[0];  // for the geometry: rows, cols, token labels
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

}  // namespace attnlab::app
