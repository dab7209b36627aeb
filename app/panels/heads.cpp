// The head grid (one heatmap per head), the large view of one head, and the colour bar.
#include <imgui.h>

#include <algorithm>
#include <utility>
#include <vector>
#include <cmath>
#include <string>

#include "present/colormap.hpp"
#include "present/field_view.hpp"
#include "../ui.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab::app {

namespace {


}  // namespace

void RecordWidget(AppState& st, const std::string& name) {
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  st.widgets[name] = ImVec4(a.x, a.y, b.x - a.x, b.y - a.y);
}

// Cuts a label to max_width pixels, ending in an ellipsis.
int g_labels_cut = 0;  // labels shortened with "..." since the frame began (the state dump reports it)
int TakeLabelsCut() { return std::exchange(g_labels_cut, 0); }

std::string Clip(std::string_view s, std::size_t max_code_points) {
  std::size_t cps = 0;
  for (std::size_t k = 0; k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80 && ++cps > max_code_points)
      return std::string(s.substr(0, k)) + "\u2026";
  return std::string(s);
}

// The longest prefix (in code points) that fits with "...", by bisection: a label of a million
// characters (a pasted text with no space is one token) must not cost a million measurements.
std::string FitLabel(std::string s, float max_width) {
  if (ImGui::CalcTextSize(s.c_str()).x <= max_width) return s;
  ++g_labels_cut;
  std::vector<std::size_t> starts;  // byte offset of each code point
  for (std::size_t k = 0; k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) starts.push_back(k);
  std::size_t lo = 0, hi = starts.size();  // lo code points fit, hi do not
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    if (ImGui::CalcTextSize((s.substr(0, starts[mid]) + "\u2026").c_str()).x <= max_width) lo = mid;
    else hi = mid;
  }
  return lo == 0 ? std::string() : s.substr(0, starts[lo]) + "\u2026";
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

ValueRange RangeFor(const AppState& st, const Snapshot& snap, int layer, int head) {
  const bool weights = st.quantity == Quantity::weights;
  if (snap.display.range == RangeMode::per_head) {
    const std::size_t k = std::size_t(layer) * snap.n_heads + head;
    return weights ? snap.head_weight_range[k] : snap.head_logit_range[k];
  }
  return weights ? snap.weight_range[layer] : snap.logit_range[layer];
}

std::string RangeLabel(const AppState& st, const Snapshot& snap) {
  const bool weights = st.quantity == Quantity::weights;
  std::string l = weights ? (snap.display.log ? "log10 weight" : "weight") : "logit";
  if (snap.field) l += snap.display.pool_mean ? " (block mean, to p99.5)" : " (block max, to p99.5)";
  else if (snap.display.range == RangeMode::per_row) l += " (per row: row min .. row max)";
  else if (snap.display.range == RangeMode::per_head) l += " (head 0's range; each head its own)";
  return l;
}

bool DrawHeatmap(AppState& st, int head, ImVec2 origin, ImVec2 size, HeadRect* rect_out, Hover* hover_out, int layer,
                 bool zoomable, const CellLayout* fixed) {
  const Snapshot& snap = *st.shown;
  const Result& r = *snap.result;
  if (layer < 0) layer = st.layer;
  // dense: the head's matrices; a field (long sequence): its overview texture, exact tiles of
  // the zoomed region, and exact cells computed from q, k and the row statistics on demand
  const bool field = r.is_field();
  const HeadResult* hr = field ? nullptr : &r.layers[layer].heads[head];
  const HeadField* hf = field ? &r.fields[layer].heads[head] : nullptr;
  const FieldHeadSpec* fspec = field ? &r.fields[layer].specs[head] : nullptr;
  const int n_q = static_cast<int>(r.tokens.size()), n_k = static_cast<int>(r.keys().size());
  const float font = ImGui::GetFontSize();
  const bool weights = st.quantity == Quantity::weights;

  // the visible window of cells: all of them, or a zoomed part (detail view)
  const float zoom = zoomable ? std::max(1.0f, st.zoom) : 1.0f;
  const float vis_k = n_k / zoom, vis_q = n_q / zoom;
  ImVec2 pan = zoomable ? st.pan : ImVec2(0, 0);
  pan.x = std::clamp(pan.x, 0.0f, n_k - vis_k);
  pan.y = std::clamp(pan.y, 0.0f, n_q - vis_q);

  // Label gutters on the left (queries) and top (keys), when cells are tall enough to label.
  float gutter = std::min(st.longest_label() + 8, std::min(size.x, size.y) * 0.3f);
  float cell = std::min((size.x - gutter) / vis_k, (size.y - gutter) / vis_q);
  // the zoomable view keeps a ruler of token indices where labels do not fit
  const float ruler_left = ImGui::CalcTextSize("000000").x + 8, ruler_top = font + 6;
  bool ruler = false;
  float gl = gutter, gt = gutter;  // left and top gutters
  if (cell * 3 < font) {  // labels would be unreadable even one in three: drop the gutters
    gutter = 0;
    ruler = zoomable && !fixed;
    gl = ruler ? ruler_left : 0, gt = ruler ? ruler_top : 0;
    cell = std::min((size.x - gl) / vis_k, (size.y - gt) / vis_q);
  }
  bool row_labels = gutter > 0, col_labels = gutter > 0;
  if (fixed) {
    gutter = fixed->gutter, cell = fixed->cell;
    row_labels = fixed->row_labels && gutter > 0;
    col_labels = fixed->col_labels && gutter > 0;
    gl = fixed->row_labels ? gutter : 0, gt = fixed->col_labels ? gutter : 0;
  }
  cell = std::max(cell, 1e-6f);
  const ImVec2 p0(std::floor(origin.x + gl), std::floor(origin.y + gt));
  const ImVec2 hs(cell * vis_k, cell * vis_q);
  const ImVec2 p1(p0.x + hs.x, p0.y + hs.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  auto cell_x = [&](float j) { return p0.x + (j - pan.x) * cell; };
  auto cell_y = [&](float i) { return p0.y + (i - pan.y) * cell; };

  const auto& maps = weights || field ? st.tex.weights : st.tex.logits;  // a field's overview is of weights
  const std::size_t tk = std::size_t(layer) * snap.n_heads + head;
  // textures uploaded after the swap (other layers, logits) are drawn once they are there
  const auto& up = weights || field ? st.ready_w : st.ready_l;
  const bool ready = tk < up.size() && up[tk];
  if (ready && tk < maps.size() && maps[tk].texture()) {
    dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(maps[tk].texture())), p0, p1,
                 ImVec2(pan.x / n_k, pan.y / n_q), ImVec2((pan.x + vis_k) / n_k, (pan.y + vis_q) / n_q));
  }
  dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), ImGui::GetColorU32(ImGuiCol_Border));
  dl->PushClipRect(p0, p1, true);
  // a field zoomed in: exact tiles over the overview, as fine as the screen (the pyramid)
  const int vr0 = std::max(0, static_cast<int>(pan.y)), vr1 = std::min(n_q, static_cast<int>(std::ceil(pan.y + vis_q)));
  const int vc0 = std::max(0, static_cast<int>(pan.x)), vc1 = std::min(n_k, static_cast<int>(std::ceil(pan.x + vis_k)));
  if (field && zoomable && st.tiles) {
    const int level = TileCache::level_for(1.0 / cell, std::max(hf->fr, hf->fc));
    st.tile_level = level;
    st.tiles_drawn = 0;
    const ImU32 bg = ImGui::GetColorU32(ImGuiCol_WindowBg);
    for (const TileCache::Drawn& t : st.tiles->view(st.shown, layer, head, level, vr0, vr1, vc0, vc1)) {
      // the tile's masked cells are transparent: the coarse overview under it must not show through
      dl->AddRectFilled(ImVec2(cell_x(float(t.c0)), cell_y(float(t.r0))), ImVec2(cell_x(float(t.c1)), cell_y(float(t.r1))), bg);
      dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t.texture)), ImVec2(cell_x(float(t.c0)), cell_y(float(t.r0))),
                   ImVec2(cell_x(float(t.c1)), cell_y(float(t.r1))));
      ++st.tiles_drawn;
    }
  }

  // numbers in the cells, when a cell holds "0.00"
  const HeadImage& img = snap.images[tk];
  const bool big_cells = st.numbers && cell >= ImGui::CalcTextSize("-0.00").x + 4;
  // (a dense head's logits image exists once the window asked for logits: until it comes, no numbers)
  const bool have = field || (weights ? !img.weights_rg.empty() : !img.logits_rg.empty());
  if (big_cells && have && (field || (img.width == n_k && img.height == n_q))) {
    const ValueRange range = RangeFor(st, snap, layer, head);
    const auto& map = colormap(snap.display.colormap);
    const auto& rg = weights ? img.weights_rg : img.logits_rg;
    // a field's visible cells (a few hundred at this size), exact, on the spot
    const Matrix exact = field ? field_tile(*hf, *fspec, vr0, vr1, vc0, vc1, !weights) : Matrix();
    for (int i = vr0; i < vr1; ++i)
      for (int j = vc0; j < vc1; ++j) {
        const float v = field ? exact(i - vr0, j - vc0) : weights ? hr->weights(i, j) : hr->logits(i, j);
        if (field ? (weights ? !fspec->rule->allowed(i, j) : !std::isfinite(v)) : !(*hr->allowed)(i, j)) continue;
        char buf[16];
        std::snprintf(buf, sizeof buf, std::abs(v) < 10 ? "%.2f" : "%.0f", double(v));
        const float shown_v = field ? display_value(v, snap.display.log) : rg[2 * (std::size_t(i) * n_k + j)];
        const float t = std::clamp((shown_v - range.lo) / (range.hi - range.lo), 0.0f, 1.0f);
        const auto& c = map.rgb[static_cast<std::size_t>(t * 255)];
        const float lum = 0.2126f * c[0] + 0.7152f * c[1] + 0.0722f * c[2];
        const ImVec2 ts = ImGui::CalcTextSize(buf);
        dl->AddText(ImVec2(cell_x(j + 0.5f) - ts.x / 2, cell_y(i + 0.5f) - ts.y / 2),
                    lum > 0.55f ? IM_COL32(0, 0, 0, 255) : IM_COL32(255, 255, 255, 255), buf);
      }
  }

  // hover and click over the cells
  ImGui::SetCursorScreenPos(p0);
  ImGui::PushID(head + 1000 * layer);
  const bool clicked = ImGui::InvisibleButton("cells", ImVec2(std::max(hs.x, 1.0f), std::max(hs.y, 1.0f)));
  const bool hovered = ImGui::IsItemHovered();
  const bool active = ImGui::IsItemActive();
  ImGui::PopID();
  int hi = -1, hj = -1;
  bool zoomed = false;
  if (zoomable && hovered) {  // wheel zooms about the cell under the mouse
    const float wheel = ImGui::GetIO().MouseWheel;
    if (wheel != 0) {
      zoomed = true;
      const ImVec2 m = ImGui::GetMousePos();
      const float cj = pan.x + (m.x - p0.x) / cell, ci = pan.y + (m.y - p0.y) / cell;
      const float nz = std::clamp(st.zoom * std::pow(1.25f, wheel), 1.0f, float(std::max(n_q, n_k)));
      const float f = st.zoom / nz;
      st.pan = ImVec2(cj - (cj - pan.x) * f, ci - (ci - pan.y) * f);
      st.zoom = nz;
    }
  }
  if (zoomable && active && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2.0f)) {
    const ImVec2 d = ImGui::GetIO().MouseDelta;
    st.pan = ImVec2(pan.x - d.x / cell, pan.y - d.y / cell);
  } else if (zoomable && !zoomed) {
    st.pan = pan;
  }
  if (hovered) {
    const ImVec2 m = ImGui::GetMousePos();
    hi = std::clamp(static_cast<int>(pan.y + (m.y - p0.y) / cell), 0, n_q - 1);
    hj = std::clamp(static_cast<int>(pan.x + (m.x - p0.x) / cell), 0, n_k - 1);
    if (hover_out) *hover_out = {head, hi, hj};
    const ImU32 band = IM_COL32(255, 255, 255, 40);
    dl->AddRectFilled(ImVec2(p0.x, cell_y(hi)), ImVec2(p1.x, cell_y(hi + 1)), band);
    dl->AddRectFilled(ImVec2(cell_x(hj), p0.y), ImVec2(cell_x(hj + 1), p1.y), band);
    dl->AddRect(ImVec2(cell_x(hj), cell_y(hi)), ImVec2(cell_x(hj + 1), cell_y(hi + 1)), IM_COL32(255, 255, 255, 255), 0,
                0, 2.0f);
    const FieldCell fc = field ? field_cell(*hf, *fspec, hi, hj) : FieldCell{};
    const bool allowed = field ? fc.allowed : (*hr->allowed)(hi, hj);
    if (field) st.hover_weight = fc.weight, st.hover_logit = fc.logit;
    ImGui::BeginTooltip();
    ImGui::Text("layer %d  head %d   query %d \"%s\"  ->  key %d \"%s\"", layer, head, hi, st.labels[hi].c_str(), hj,
                st.key_labels[hj].c_str());
    const std::vector<float>& bias = snap.bias[head];
    if (allowed) {
      ImGui::Text("weight %.6g", field ? fc.weight : hr->weights(hi, hj));
      ImGui::Text("logit  %.4f   (score x %s%s)", field ? fc.logit : hr->logits(hi, hj),
                  r.session.attention.score.kind == ScoreKind::scaled_dot ? "1/sqrt(d_head)" : "1",
                  bias.empty() ? "" : " + bias");
    } else {
      ImGui::Text("masked: weight 0, logit -inf");
    }
    ImGui::Text("mask %s: %s", name(r.session.attention.mask.kind), allowed ? "allowed" : "forbidden");
    if (!field && hr && hi < static_cast<int>(hr->sink_weight.size()))  // gpt-oss's learned sink
      ImGui::Text("row %d sums to %.4f: the learned sink holds %.4f", hi, 1.0 - hr->sink_weight[hi], hr->sink_weight[hi]);
    if (!bias.empty())
      ImGui::Text("bias   %+.4f   (%s, distance %d)", bias[hj - hi + n_q - 1], name(r.session.positional.kind), hj - hi);
    const char* copy = field ? "Ctrl+C: copy this cell" : "Ctrl+C: copy this head as TSV";
    if (zoomable) ImGui::TextDisabled("wheel: zoom   drag: pan   %s", copy);
    else ImGui::TextDisabled("click to open head %d large   %s", head, copy);
    ImGui::EndTooltip();
  }
  dl->PopClipRect();

  // labels, one in `stride` when cells are smaller than the font
  if (row_labels || col_labels) {
    const int stride = std::max(1, static_cast<int>(std::ceil(font / cell)));
    const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
    for (int i = static_cast<int>(pan.y); row_labels && i < std::min(n_q, static_cast<int>(std::ceil(pan.y + vis_q))); i += stride) {
      const std::string s = FitLabel(st.labels[i], gutter - 6);
      const float w = ImGui::CalcTextSize(s.c_str()).x;
      dl->AddText(ImVec2(p0.x - 4 - w, cell_y(i + 0.5f) - font * 0.5f), i == hi ? text : dim, s.c_str());
    }
    for (int j = static_cast<int>(pan.x); col_labels && j < std::min(n_k, static_cast<int>(std::ceil(pan.x + vis_k))); j += stride) {
      const std::string s = FitLabel(st.key_labels[j], gutter - 6);
      AddTextVertical(dl, ImVec2(cell_x(j + 0.5f) - font * 0.5f, p0.y - 4), j == hj ? text : dim, s.c_str());
    }
  }
  if (ruler) {  // token indices every few cells, along the top and the left
    auto nice = [](double min_cells) {  // the first of 1, 2, 5, 10, 20, 50, ... at least min_cells
      for (long m = 1;; m *= 10)
        for (int f : {1, 2, 5})
          if (double(f) * m >= min_cells) return static_cast<int>(f * m);
    };
    const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
    const int col_step = nice(ImGui::CalcTextSize("000000").x * 1.6 / cell), row_step = nice(font * 1.8 / cell);
    char buf[16];
    dl->PushClipRect(ImVec2(p0.x - 2, origin.y), ImVec2(p1.x + font * 3, p0.y), true);
    for (int j = (vc0 + col_step - 1) / col_step * col_step; j < vc1; j += col_step) {
      std::snprintf(buf, sizeof buf, "%d", j);
      dl->AddLine(ImVec2(cell_x(j + 0.5f), p0.y - 4), ImVec2(cell_x(j + 0.5f), p0.y), dim);
      dl->AddText(ImVec2(cell_x(j + 0.5f) - ImGui::CalcTextSize(buf).x / 2, p0.y - font - 4), dim, buf);
    }
    dl->PopClipRect();
    dl->PushClipRect(ImVec2(origin.x, p0.y - font), ImVec2(p0.x, p1.y + font), true);
    for (int i = (vr0 + row_step - 1) / row_step * row_step; i < vr1; i += row_step) {
      std::snprintf(buf, sizeof buf, "%d", i);
      dl->AddLine(ImVec2(p0.x - 4, cell_y(i + 0.5f)), ImVec2(p0.x, cell_y(i + 0.5f)), dim);
      dl->AddText(ImVec2(p0.x - 6 - ImGui::CalcTextSize(buf).x, cell_y(i + 0.5f) - font * 0.5f), dim, buf);
    }
    dl->PopClipRect();
    st.ruler = true;
  }
  if (row_labels || col_labels) st.labels_drawn = true;
  // span selection: drag along the left axis (queries) or the top axis (keys); on release the
  // view shows that span (and the block on the diagonal of it)
  if (zoomable && !fixed && (gl > 4 || gt > 4)) {
    auto axis = [&](const char* id, ImVec2 a, ImVec2 b, bool rows) {
      if (b.x - a.x < 2 || b.y - a.y < 2) return;
      ImGui::SetCursorScreenPos(a);
      ImGui::PushID(head + 1000 * layer);
      ImGui::InvisibleButton(id, ImVec2(b.x - a.x, b.y - a.y));
      ImGui::PopID();
      const std::string name = std::string("detail.axis_") + (rows ? "rows" : "cols");
      RecordWidget(st, name);
      const ImVec2 m = ImGui::GetMousePos();
      const int at = rows ? std::clamp(static_cast<int>(pan.y + (m.y - p0.y) / cell), 0, n_q - 1)
                          : std::clamp(static_cast<int>(pan.x + (m.x - p0.x) / cell), 0, n_k - 1);
      if (ImGui::IsItemActivated()) st.axis_drag = {rows ? 1 : 2, at};
      if (ImGui::IsItemActive() && st.axis_drag.first == (rows ? 1 : 2)) {
        const int lo = std::min(st.axis_drag.second, at), hi = std::max(st.axis_drag.second, at) + 1;
        const ImU32 band = IM_COL32(255, 210, 80, 70);
        if (rows) dl->AddRectFilled(ImVec2(origin.x, cell_y(float(lo))), ImVec2(p1.x, cell_y(float(hi))), band);
        else dl->AddRectFilled(ImVec2(cell_x(float(lo)), origin.y), ImVec2(cell_x(float(hi)), p1.y), band);
        ImGui::SetTooltip("%s %d..%d (%d tokens): release to show them", rows ? "queries" : "keys", lo, hi - 1, hi - lo);
      }
      if (ImGui::IsItemDeactivated() && st.axis_drag.first == (rows ? 1 : 2)) {
        const int lo = std::min(st.axis_drag.second, at), hi = std::max(st.axis_drag.second, at) + 1;
        st.axis_drag = {0, 0};
        if (hi - lo >= 2) {
          (rows ? st.span_rows : st.span_cols) = std::to_string(lo) + ":" + std::to_string(hi);
          (rows ? st.span_cols : st.span_rows).clear();
          st.span_pending = true;  // the span controls show it next frame
        }
      }
    };
    axis("rows_axis", ImVec2(origin.x, p0.y), ImVec2(p0.x - 1, p1.y), true);
    axis("cols_axis", ImVec2(p0.x, origin.y), ImVec2(p1.x, p0.y - 1), false);
  }
  if (rect_out) *rect_out = {head, p0.x, p0.y, hs.x, hs.y, n_q, n_k};
  return clicked && !ImGui::IsMouseDragging(ImGuiMouseButton_Left);
}

// The newest edit's problems where the eye is, over the heads; the heads stay, marked as the
// last valid picture (with what that picture was computed from).
void ShowProblemBanner(AppState& st) {
  if (!st.problems_current()) return;
  const ImVec4 red(1.0f, 0.42f, 0.36f, 1.0f);
  ImGui::PushStyleColor(ImGuiCol_ChildBg, st.light ? ImVec4(1.0f, 0.9f, 0.88f, 1.0f) : ImVec4(0.32f, 0.1f, 0.1f, 1.0f));
  const int lines = static_cast<int>(std::min<std::size_t>(st.newest->problems.size(), 3)) + 1;
  ImGui::BeginChild("problems", ImVec2(0, ImGui::GetTextLineHeightWithSpacing() * (lines + 0.6f)), true,
                    ImGuiWindowFlags_NoScrollbar);
  ImGui::PushTextWrapPos(0);
  for (std::size_t k = 0; k < st.newest->problems.size() && k < 3; ++k)
    ImGui::TextColored(st.light ? ImVec4(0.7f, 0.05f, 0.05f, 1) : red, "! %s", st.newest->problems[k].c_str());
  if (st.newest->problems.size() > 3) ImGui::TextDisabled("... and %zu more beside the controls", st.newest->problems.size() - 3);
  ImGui::PopTextWrapPos();
  if (st.shown && st.shown->result) {
    const Session& was = st.shown->result->session;
    ImGui::TextDisabled("below: the last valid picture (%zu tokens, mask %s, kernel %s), not this edit",
                        st.shown->result->tokens.size(), name(was.attention.mask.kind), name(was.attention.kernel.kind));
  }
  ImGui::EndChild();
  RecordWidget(st, "problem.banner");
  ImGui::PopStyleColor();
}

void ShowHeadGrid(AppState& st) {
  ShowProblemBanner(st);
  if (!st.shown || !st.shown->result) {
    ImGui::TextDisabled(st.problems_current() ? "no valid result yet: fix the problems shown above" : "computing...");
    return;
  }
  const Snapshot& snap = *st.shown;
  const Result& r = *snap.result;
  const int n_layers = r.n_layers();
  st.layer = std::clamp(st.layer, 0, n_layers - 1);
  const int n_heads = r.n_heads();
  const bool weights = st.quantity == Quantity::weights;
  const ValueRange range = RangeFor(st, snap, st.layer, 0);

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
  // one wrapped line: at a large font on a small screen it breaks, it is never cut off; while
  // presenting (controls hidden) only what a class needs, so the heads get the height
  if (st.hide_controls)
    ImGui::TextWrapped("%d heads, %zu tokens%s", n_heads, r.tokens.size(), weights ? "" : ", logits");
  else if (r.key_tokens.empty())
    ImGui::TextWrapped("%d heads   %zu tokens   d_head %d   %s   (computed in %.1f ms)", n_heads, r.tokens.size(), r.d_head,
                       weights ? "attention weights" : "logits (masked cells blank)", r.compute_ms);
  else
    ImGui::TextWrapped("%d heads   cross-attention: %zu queries x %zu context keys   d_head %d   %s   (computed in %.1f ms)",
                       n_heads, r.tokens.size(), n_keys, r.d_head, weights ? "attention weights" : "logits (masked cells blank)",
                       r.compute_ms);
  if (r.is_field()) {
    const HeadField& f0 = r.fields[st.layer].heads[0];
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyle().Colors[ImGuiCol_TextDisabled]);
    ImGui::TextWrapped("long sequence (an attention field): each head's overview, a cell the %s weight of %d x %d; "
                       "click a head and zoom for exact tiles, then token labels",
                       snap.display.pool_mean ? "mean" : "max", f0.fr, f0.fc);
    ImGui::PopStyleColor();
  }
  if (!r.intervention.empty())  // a pretrained model changed by the user: never mistaken for the model itself
    ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.3f, 1.0f), "INTERVENTION - not the model as trained: %s", r.intervention.c_str());

  const float font = ImGui::GetFontSize();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const ImVec2 start = ImGui::GetCursorScreenPos();
  const float bar_w = font * 4.5f;
  const float grid_w = avail.x - bar_w, grid_h = avail.y;

  // Small multiples with shared axes: one cell size for every head, token labels along the left
  // of the first column and the top of the first row only, so that the gutters (which grow with
  // the font: 3x on a projector) are paid once, not per tile. The column count is the one that
  // gives the largest cells.
  const float title = ImGui::GetTextLineHeightWithSpacing();
  const float sp = font * 0.8f;
  const int n_q = static_cast<int>(r.tokens.size()), n_k = static_cast<int>(r.keys().size());
  float gutter = std::min(st.longest_label() + 8, std::min(grid_w, grid_h) * 0.35f);
  // a tile is at least as wide as its shortest title ("h12")
  const float min_tile = ImGui::CalcTextSize(Numbered("h", n_heads - 1).c_str()).x + sp;
  auto fit = [&](int c, float g) {
    const int rows = (n_heads + c - 1) / c;
    if (grid_w - g < c * min_tile) return -1.0f;
    return std::min((grid_w - g - (c - 1) * sp) / (c * n_k), (grid_h - g - rows * (title + sp)) / (rows * n_q));
  };
  int cols = 1;
  float best = -1;
  for (int c = 1; c <= n_heads; ++c)
    if (const float cell = fit(c, gutter); cell > best) best = cell, cols = c;
  if (best * 6 < font) {  // cells too small to label even one in six: no gutters
    gutter = 0;
    for (int c = 1; c <= n_heads; ++c)
      if (const float cell = fit(c, 0); cell > best) best = cell, cols = c;
  }
  CellLayout shared;
  shared.cell = std::max(best, 1e-6f);
  shared.gutter = gutter;
  const float tile_w = std::max(n_k * shared.cell + sp, min_tile), tile_h = n_q * shared.cell + title + sp;
  st.head_rects.assign(n_heads, {});
  for (int h = 0; h < n_heads; ++h) {
    const int c = h % cols, row = h / cols;
    const ImVec2 o(start.x + (c ? gutter + c * tile_w : 0), start.y + (row ? gutter + row * tile_h : 0));
    // the title sits above the heatmap (in the first row, above the key labels too)
    ImGui::SetCursorScreenPos(ImVec2(o.x + (c ? 0 : gutter), o.y));
    const HeadResult* head = r.is_field() ? nullptr : &r.layers[st.layer].heads[h];
    const int kv = r.kv_head(st.layer, h);
    if (st.problems_current()) {  // stale: say so on every head
      ImGui::TextColored(ImVec4(1.0f, 0.5f, 0.4f, 1.0f), "last valid:");
      ImGui::SameLine();
    }
    // the title as long as the tile allows: "head 3   K/V 1  (shared by heads 2-3)", "head 3", "h3"
    std::string t = Numbered("head ", h);
    if (r.session.model.kv_sharing != KvSharing::mha) {
      const int per = n_heads / r.session.model.kv_heads();
      const std::string full = t + "   K/V " + std::to_string(kv) + "  (shared by heads " + std::to_string(kv * per) + "-" +
                               std::to_string((kv + 1) * per - 1) + ")";
      if (ImGui::CalcTextSize(full.c_str()).x <= tile_w - sp * 0.5f) t = full;
    }
    if (ImGui::CalcTextSize(t.c_str()).x > tile_w - sp * 0.5f) t = Numbered("h", h);
    ImGui::TextUnformatted(t.c_str());
    if (head && head->approx && ImGui::CalcTextSize(t.c_str()).x + font * 16 < tile_w) {  // the kernel against exact softmax attention
      ImGui::SameLine();
      ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.35f, 1.0f), "  %s: max |dw| %.3g, output error %.2g%%",
                         name(r.session.attention.kernel.kind), head->approx->max_weight_error,
                         100.0 * head->approx->output_error);
    }
    CellLayout mine = shared;
    mine.row_labels = c == 0;
    mine.col_labels = row == 0;
    const ImVec2 area(n_k * shared.cell + (c ? 0 : gutter), n_q * shared.cell + (row ? 0 : gutter));
    if (DrawHeatmap(st, h, ImVec2(o.x, o.y + title), area, &st.head_rects[h], &st.hover, -1, false, &mine)) st.detail_head = h;
  }
  // the colour bar right beside the last column, not at the far edge
  const float used_w = gutter + cols * tile_w;
  const float bar_top = start.y + title + gutter;
  DrawColorBar(ImVec2(start.x + std::min(grid_w, used_w) + font * 0.5f, bar_top),
               std::max(font * 3, std::min({grid_h * 0.6f, 400.0f, start.y + grid_h - bar_top - font * 1.5f})),
               range.lo, range.hi, RangeLabel(st, snap).c_str(),
               snap.signed_weights && st.quantity == Quantity::weights ? "rdbu_diverging" : snap.display.colormap.c_str());
  ImGui::SetCursorScreenPos(ImVec2(start.x, start.y + avail.y));
}

void ShowProgress(AppState& st, Worker& worker) {
  if (!worker.busy() || worker.busy_seconds() < 0.2) return;
  const ImVec2 pos = ImGui::GetWindowPos(), size = ImGui::GetWindowSize();
  const float font = ImGui::GetFontSize();
  ImGui::SetNextWindowPos(ImVec2(pos.x + size.x * 0.5f, pos.y + font * 3), ImGuiCond_Always, ImVec2(0.5f, 0.0f));
  ImGui::SetNextWindowSize(ImVec2(std::min(size.x * 0.8f, font * 30), 0));
  ImGui::SetNextWindowBgAlpha(0.92f);
  if (ImGui::Begin("###progress", nullptr,
                   ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                       ImGuiWindowFlags_NoFocusOnAppearing)) {
    ImGui::Text("computing... %.0f%%  (%.1f s)", 100.0f * worker.progress(), worker.busy_seconds());
    ImGui::ProgressBar(worker.progress(), ImVec2(-FLT_MIN, 0));
    RecordWidget(st, "progress");
    if (ImGui::Button("Cancel (Esc)")) worker.cancel();
    RecordWidget(st, "progress.cancel");
    ImGui::SameLine();
    ImGui::TextDisabled(st.shown ? "the picture below is the last one computed" : "");
  }
  ImGui::End();
}

// "a:b" (b exclusive) or "a" (one token) within [0, n): false when it is not one.
bool ParseSpan(const std::string& text, int n, int& a, int& b) {
  int x = 0, y = 0;
  char colon = 0;
  const int got = std::sscanf(text.c_str(), " %d %c %d", &x, &colon, &y);
  if (got == 1) y = x + 1;
  else if (got != 3 || colon != ':') return false;
  if (x < 0 || y > n || x >= y) return false;
  a = x, b = y;
  return true;
}

// Shows rows [r0, r1) x columns [c0, c1) of the head detail (one zoom for both axes: the larger span decides).
void ShowSpan(AppState& st, int n_q, int n_k, int r0, int r1, int c0, int c1) {
  st.zoom = std::max(1.0f, std::min(float(n_q) / float(r1 - r0), float(n_k) / float(c1 - c0)));
  st.pan = ImVec2(float(c0), float(r0));
}

// Span navigation and token search of the head detail: type a range of query rows and key
// columns, or find a token by its text and jump to it (its row and its column).
void ShowSpanControls(AppState& st) {
  const Result& r = *st.shown->result;
  const int n_q = static_cast<int>(r.tokens.size()), n_k = static_cast<int>(r.keys().size());
  const float font = ImGui::GetFontSize();
  auto input = [&](const char* label, std::string& text, const char* hint) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s", text.c_str());
    ImGui::SetNextItemWidth(font * 7);
    const bool enter = ImGui::InputTextWithHint(label, hint, buf, sizeof buf, ImGuiInputTextFlags_EnterReturnsTrue);
    text = buf;
    return enter;
  };
  bool go = input("rows", st.span_rows, "a:b");
  RecordWidget(st, "detail.rows");
  ImGui::SameLine();
  go |= input("cols", st.span_cols, "c:d");
  RecordWidget(st, "detail.cols");
  ImGui::SameLine();
  go |= ImGui::SmallButton("show span");
  RecordWidget(st, "detail.show_span");
  go |= std::exchange(st.span_pending, false);
  if (go) {
    int r0 = 0, r1 = n_q, c0 = 0, c1 = n_k;
    const bool rows_ok = st.span_rows.empty() || ParseSpan(st.span_rows, n_q, r0, r1);
    const bool cols_ok = st.span_cols.empty() || ParseSpan(st.span_cols, n_k, c0, c1);
    if (rows_ok && cols_ok) {
      if (st.span_cols.empty() && !st.span_rows.empty()) c0 = r0, c1 = std::min(n_k, r0 + (r1 - r0));  // the block on the diagonal
      if (st.span_rows.empty() && !st.span_cols.empty()) r0 = c0, r1 = std::min(n_q, c0 + (c1 - c0));
      ShowSpan(st, n_q, n_k, r0, r1, c0, c1);
      st.status.clear();
    } else {
      st.status = "a span is a:b with 0 <= a < b <= " + std::to_string(rows_ok ? n_k : n_q) + " (b not included)";
      st.status_error = true;
    }
  }
  ImGui::SameLine();
  const bool find = input("find", st.find_text, "token text");
  RecordWidget(st, "detail.find");
  if (st.find_text != st.find_done) {  // every token containing the text (the first 200)
    st.find_done = st.find_text;
    st.find_hits.clear();
    for (int i = 0; i < n_q && !st.find_text.empty() && st.find_hits.size() < 200; ++i)
      if (r.tokens[i].text.find(st.find_text) != std::string::npos) st.find_hits.push_back(i);
  }
  if (!st.find_text.empty()) {
    ImGui::SameLine();
    ImGui::TextDisabled("%zu%s found", st.find_hits.size(), st.find_hits.size() == 200 ? "+" : "");
    if (find && !st.find_hits.empty()) {  // Enter: the next hit after the one shown
      static std::size_t next = 0;
      const int i = st.find_hits[next++ % st.find_hits.size()];
      const int half = 16;
      const int a = std::max(0, i - half), b = std::min(n_q, i + half);
      ShowSpan(st, n_q, n_k, a, b, std::max(0, std::min(a, n_k - (b - a))), std::min(n_k, std::max(a, 0) + (b - a)));
      st.status = "token " + std::to_string(i) + " \"" + Clip(r.tokens[i].text, 30) + "\" (Enter: the next)";
      st.status_error = false;
    }
  }
}

void ShowHeadDetail(AppState& st) {
  if (st.detail_head < 0 || !st.shown || !st.shown->result) return;
  const int n_heads = st.shown->result->n_heads();
  if (st.detail_head >= n_heads) {
    st.detail_head = -1;
    return;
  }
  bool open = true;
  // first opened at 760 x 760 where that fits, else within the window (at 1024 x 768 it ran off
  // the bottom, the last rows and the colour bar cut)
  const ImVec2 vp = ImGui::GetMainViewport()->Size;
  const ImVec2 at(std::min(420.0f, vp.x * 0.35f), std::min(80.0f, vp.y * 0.1f));
  ImGui::SetNextWindowSize(ImVec2(std::min(760.0f, vp.x - at.x - 8), std::min(760.0f, vp.y - at.y - 8)), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(at, ImGuiCond_FirstUseEver);
  const std::string title = "layer " + std::to_string(st.layer) + ", head " + std::to_string(st.detail_head) + "###detail";
  if (ImGui::Begin(title.c_str(), &open)) {
    const Snapshot& snap = *st.shown;
    ImGui::Text("zoom %.2gx", st.zoom);
    ImGui::SameLine();
    if (ImGui::SmallButton("reset zoom")) st.zoom = 1, st.pan = ImVec2(0, 0);
    RecordWidget(st, "detail.reset_zoom");
    ImGui::SameLine();
    if (ImGui::SmallButton("step by step")) st.show_pipeline = true, st.pipeline_step = 0;
    RecordWidget(st, "detail.pipeline");
    ShowSpanControls(st);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float bar_w = ImGui::GetFontSize() * 5.5f;
    HeadRect rect;
    DrawHeatmap(st, st.detail_head, o, ImVec2(avail.x - bar_w, avail.y), &rect, &st.hover, -1, true);
    st.widgets["detail.cells"] = ImVec4(rect.x, rect.y, rect.w, rect.h);
    const ValueRange range = RangeFor(st, snap, st.layer, st.detail_head);
    DrawColorBar(ImVec2(o.x + avail.x - bar_w + ImGui::GetFontSize() * 1.5f, o.y + ImGui::GetFontSize()),
                 avail.y * 0.6f, range.lo, range.hi, RangeLabel(st, snap).c_str(), snap.display.colormap.c_str());
  }
  ImGui::End();
  if (!open) st.detail_head = -1;
}

}  // namespace attnlab::app
