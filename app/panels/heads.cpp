// The head grid (one heatmap per head), the large view of one head, and the colour bar.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "colormap.hpp"
#include "../ui.hpp"
#include "tokenize.hpp"

namespace attnlab::app {

namespace {

const Heatmap* heatmap_for(const AppState& st, int head) {
  const auto& maps = st.quantity == Quantity::weights ? st.tex.weights : st.tex.logits;
  const std::size_t k = static_cast<std::size_t>(st.layer) * st.shown->n_heads + head;
  return k < maps.size() ? &maps[k] : nullptr;
}

}  // namespace

void RecordWidget(AppState& st, const std::string& name) {
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  st.widgets[name] = ImVec4(a.x, a.y, b.x - a.x, b.y - a.y);
}

// Cuts a label to max_width pixels, ending in an ellipsis.
std::string FitLabel(std::string s, float max_width) {
  if (ImGui::CalcTextSize(s.c_str()).x <= max_width) return s;
  while (!s.empty()) {
    // drop one UTF-8 code point from the end
    std::size_t k = s.size() - 1;
    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    s.erase(k);
    if (ImGui::CalcTextSize((s + "\u2026").c_str()).x <= max_width) return s + "\u2026";
  }
  return s;
}

// Text read bottom to top, its baseline start at `pos` (text extends upward). Draws the text
// horizontally, then turns its vertices by -90 degrees about `pos`.
void AddTextVertical(ImDrawList* dl, ImVec2 pos, ImU32 col, const char* text) {
  dl->PushClipRectFullScreen();  // glyph culling happens before the turn, so do not cull
  const int start = dl->VtxBuffer.Size;
  dl->AddText(pos, col, text);
  for (int i = start; i < dl->VtxBuffer.Size; ++i) {
    ImVec2& p = dl->VtxBuffer[i].pos;
    const float dx = p.x - pos.x, dy = p.y - pos.y;
    p = ImVec2(pos.x + dy, pos.y - dx);
  }
  dl->PopClipRect();
}

void DrawColorBar(ImVec2 origin, float height, float vmin, float vmax, const char* label, const char* colormap_name) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const auto& map = colormap(colormap_name);
  const float w = 14;
  const int segments = 64;
  for (int s = 0; s < segments; ++s) {
    // top is vmax
    const auto& top = map.rgb[255 - s * 255 / segments];
    const auto& bot = map.rgb[255 - std::min(255, (s + 1) * 255 / segments)];
    const float y0 = origin.y + height * s / segments, y1 = origin.y + height * (s + 1) / segments;
    const ImU32 ct = ImGui::ColorConvertFloat4ToU32(ImVec4(top[0], top[1], top[2], 1));
    const ImU32 cb = ImGui::ColorConvertFloat4ToU32(ImVec4(bot[0], bot[1], bot[2], 1));
    dl->AddRectFilledMultiColor(ImVec2(origin.x, y0), ImVec2(origin.x + w, y1), ct, ct, cb, cb);
  }
  dl->AddRect(origin, ImVec2(origin.x + w, origin.y + height), ImGui::GetColorU32(ImGuiCol_Border));
  char buf[32];
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  for (int k = 0; k <= 4; ++k) {
    const float v = vmax - (vmax - vmin) * k / 4.0f;
    const float y = origin.y + height * k / 4.0f;
    std::snprintf(buf, sizeof buf, "%.3g", v);
    dl->AddLine(ImVec2(origin.x + w, y), ImVec2(origin.x + w + 4, y), text);
    dl->AddText(ImVec2(origin.x + w + 9, y - ImGui::GetFontSize() * 0.5f), text, buf);
  }
  AddTextVertical(dl, ImVec2(origin.x - ImGui::GetFontSize() - 2, origin.y + height), ImGui::GetColorU32(ImGuiCol_TextDisabled),
                  label);
}

bool DrawHeatmap(const AppState& st, int head, ImVec2 origin, ImVec2 size, HeadRect* rect_out, Hover* hover_out) {
  const Result& r = *st.shown->result;
  const HeadResult& hr = r.layers[st.layer].heads[head];
  const int n_q = static_cast<int>(hr.weights.rows()), n_k = static_cast<int>(hr.weights.cols());
  const float font = ImGui::GetFontSize();

  // Label gutters on the left (queries) and top (keys), when cells are tall enough to label.
  float gutter = std::min(st.longest_label + 8, std::min(size.x, size.y) * 0.3f);
  float cell = std::min((size.x - gutter) / n_k, (size.y - gutter) / n_q);
  if (cell * 3 < font) {  // labels would be unreadable even one in three: drop the gutters
    gutter = 0;
    cell = std::min(size.x / n_k, size.y / n_q);
  }
  cell = std::max(cell, 0.01f);
  const ImVec2 p0(std::floor(origin.x + gutter), std::floor(origin.y + gutter));
  const ImVec2 hs(cell * n_k, cell * n_q);
  const ImVec2 p1(p0.x + hs.x, p0.y + hs.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();

  if (const Heatmap* hm = heatmap_for(st, head); hm && hm->texture()) {
    dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(hm->texture())), p0, p1);
  }
  dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), ImGui::GetColorU32(ImGuiCol_Border));

  // hover and click over the cells
  ImGui::SetCursorScreenPos(p0);
  ImGui::PushID(head);
  const bool clicked = ImGui::InvisibleButton("cells", ImVec2(std::max(hs.x, 1.0f), std::max(hs.y, 1.0f)));
  const bool hovered = ImGui::IsItemHovered();
  ImGui::PopID();
  int hi = -1, hj = -1;
  if (hovered) {
    const ImVec2 m = ImGui::GetMousePos();
    hi = std::clamp(static_cast<int>((m.y - p0.y) / cell), 0, n_q - 1);
    hj = std::clamp(static_cast<int>((m.x - p0.x) / cell), 0, n_k - 1);
    if (hover_out) *hover_out = {head, hi, hj};
    const ImU32 band = IM_COL32(255, 255, 255, 40);
    dl->AddRectFilled(ImVec2(p0.x, p0.y + hi * cell), ImVec2(p1.x, p0.y + (hi + 1) * cell), band);
    dl->AddRectFilled(ImVec2(p0.x + hj * cell, p0.y), ImVec2(p0.x + (hj + 1) * cell, p1.y), band);
    dl->AddRect(ImVec2(p0.x + hj * cell, p0.y + hi * cell), ImVec2(p0.x + (hj + 1) * cell, p0.y + (hi + 1) * cell),
                IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
    const bool allowed = (*hr.allowed)(hi, hj);
    ImGui::BeginTooltip();
    ImGui::Text("head %d   query %d \"%s\"  ->  key %d \"%s\"", head, hi, st.labels[hi].c_str(), hj,
                st.key_labels[hj].c_str());
    if (allowed) {
      ImGui::Text("weight %.4f", hr.weights(hi, hj));
      ImGui::Text("logit  %.4f   (score x %s)", hr.logits(hi, hj),
                  r.session.attention.score.kind == ScoreKind::scaled_dot ? "1/sqrt(d_head)" : "1");
    } else {
      ImGui::Text("masked (%s): weight 0, logit -inf", name(r.session.attention.mask.kind));
    }
    ImGui::TextDisabled("click to open head %d large", head);
    ImGui::EndTooltip();
  }

  // labels, one in `stride` when cells are smaller than the font
  if (gutter > 0) {
    const int stride = std::max(1, static_cast<int>(std::ceil(font / cell)));
    const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
    for (int i = 0; i < n_q; i += stride) {
      const std::string s = FitLabel(st.labels[i], gutter - 6);
      const float w = ImGui::CalcTextSize(s.c_str()).x;
      dl->AddText(ImVec2(p0.x - 4 - w, p0.y + (i + 0.5f) * cell - font * 0.5f), i == hi ? text : dim, s.c_str());
    }
    for (int j = 0; j < n_k; j += stride) {
      const std::string s = FitLabel(st.key_labels[j], gutter - 6);
      AddTextVertical(dl, ImVec2(p0.x + (j + 0.5f) * cell - font * 0.5f, p0.y - 4), j == hj ? text : dim, s.c_str());
    }
  }
  if (rect_out) *rect_out = {head, p0.x, p0.y, hs.x, hs.y, n_q, n_k};
  return clicked;
}

void ShowHeadGrid(AppState& st) {
  if (!st.shown || !st.shown->result) {
    ImGui::TextDisabled(st.problems_current() ? "no valid result yet: fix the problems shown on the left"
                                              : "computing...");
    return;
  }
  const Snapshot& snap = *st.shown;
  const Result& r = *snap.result;
  const int n_layers = static_cast<int>(r.layers.size());
  st.layer = std::clamp(st.layer, 0, n_layers - 1);
  const int n_heads = static_cast<int>(r.layers[st.layer].heads.size());
  const bool weights = st.quantity == Quantity::weights;
  const float vmin = weights ? 0.0f : snap.logit_min[st.layer];
  const float vmax = weights ? snap.weight_max[st.layer] : snap.logit_max[st.layer];

  if (n_layers > 1) {
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    ImGui::SliderInt("layer", &st.layer, 0, n_layers - 1);
    RecordWidget(st, "layer");
    ImGui::SameLine();
  } else {
    ImGui::Text("layer 0  ");
    ImGui::SameLine();
  }
  const std::size_t n_keys = r.keys().size();
  if (r.key_tokens.empty()) {
    ImGui::Text("%d heads   %zu tokens   d_head %d   %s", n_heads, r.tokens.size(), r.d_head,
                weights ? "attention weights" : "logits (masked cells blank)");
  } else {
    ImGui::Text("%d heads   cross-attention: %zu queries x %zu context keys   d_head %d   %s", n_heads, r.tokens.size(),
                n_keys, r.d_head, weights ? "attention weights" : "logits (masked cells blank)");
  }
  ImGui::SameLine();
  ImGui::TextDisabled("  computed in %.1f ms", r.compute_ms);

  const float font = ImGui::GetFontSize();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const ImVec2 start = ImGui::GetCursorScreenPos();
  const float bar_w = font * 5.5f;
  const float grid_w = avail.x - bar_w, grid_h = avail.y;

  // the column count that gives the largest square tiles
  int cols = 1;
  float tile = 0;
  for (int c = 1; c <= n_heads; ++c) {
    const int rows = (n_heads + c - 1) / c;
    const float t = std::min(grid_w / c, grid_h / rows);
    if (t > tile) tile = t, cols = c;
  }
  st.head_rects.assign(n_heads, {});
  const float title = ImGui::GetTextLineHeightWithSpacing();
  for (int h = 0; h < n_heads; ++h) {
    const ImVec2 o(start.x + (h % cols) * tile, start.y + (h / cols) * tile);
    ImGui::SetCursorScreenPos(o);
    const HeadResult& head = r.layers[st.layer].heads[h];
    const int kv = head.kv_head;
    if (r.session.model.kv_sharing == KvSharing::mha) ImGui::Text("head %d", h);
    else ImGui::Text("head %d   K/V %d  (shared by heads %d-%d)", h, kv, kv * (n_heads / r.session.model.kv_heads()),
                     (kv + 1) * (n_heads / r.session.model.kv_heads()) - 1);
    if (head.approx) {  // the kernel against exact softmax attention
      ImGui::SameLine();
      ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.35f, 1.0f), "  %s: max |dw| %.3g, output error %.2g%%",
                         name(r.session.attention.kernel.kind), head.approx->max_weight_error,
                         100.0 * head.approx->output_error);
    }
    const ImVec2 area(tile - font * 0.8f, tile - title - font * 0.8f);
    if (DrawHeatmap(st, h, ImVec2(o.x, o.y + title), area, &st.head_rects[h], &st.hover)) st.detail_head = h;
  }
  DrawColorBar(ImVec2(start.x + grid_w + font * 1.5f, start.y + title + font * 2), std::min(grid_h * 0.6f, 400.0f),
               vmin, vmax, weights ? "weight" : "logit");
  ImGui::SetCursorScreenPos(ImVec2(start.x, start.y + avail.y));
}

void ShowHeadDetail(AppState& st) {
  if (st.detail_head < 0 || !st.shown || !st.shown->result) return;
  const int n_heads = static_cast<int>(st.shown->result->layers[st.layer].heads.size());
  if (st.detail_head >= n_heads) {
    st.detail_head = -1;
    return;
  }
  bool open = true;
  ImGui::SetNextWindowSize(ImVec2(760, 760), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(420, 80), ImGuiCond_FirstUseEver);
  const std::string title = "layer " + std::to_string(st.layer) + ", head " + std::to_string(st.detail_head) + "###detail";
  if (ImGui::Begin(title.c_str(), &open)) {
    const Snapshot& snap = *st.shown;
    const bool weights = st.quantity == Quantity::weights;
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float bar_w = ImGui::GetFontSize() * 5.5f;
    DrawHeatmap(st, st.detail_head, o, ImVec2(avail.x - bar_w, avail.y), nullptr, &st.hover);
    DrawColorBar(ImVec2(o.x + avail.x - bar_w + ImGui::GetFontSize() * 1.5f, o.y + ImGui::GetFontSize()),
                 avail.y * 0.6f, weights ? 0.0f : snap.logit_min[st.layer], weights ? snap.weight_max[st.layer] : snap.logit_max[st.layer],
                 weights ? "weight" : "logit");
  }
  ImGui::End();
  if (!open) st.detail_head = -1;
}

}  // namespace attnlab::app
