// Views for exploring and teaching: the model view (every layer x head), the step-by-step
// pipeline of one head, the line view, compare A/B, and the display settings.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/colormap.hpp"
#include "../ui.hpp"

namespace attnlab::app {

namespace {

bool ComboStrings(AppState& st, const char* label, const std::string& id, std::string& value,
                  const std::vector<std::string>& choices) {
  bool changed = false;
  if (ImGui::BeginCombo(label, value.c_str(), ImGuiComboFlags_HeightLargest)) {
    const bool placed = !ImGui::IsWindowAppearing();
    for (const auto& c : choices) {
      if (ImGui::Selectable(c.c_str(), c == value)) value = c, changed = true;
      if (placed) RecordWidget(st, id + "=" + c);
    }
    ImGui::EndCombo();
  }
  RecordWidget(st, id);
  return changed;
}

ImU32 HeadColour(int h, float alpha) {  // distinct hues for the line view
  ImVec4 c;
  ImGui::ColorConvertHSVtoRGB(std::fmod(h * 0.618034f, 1.0f), 0.65f, 0.95f, c.x, c.y, c.z);
  c.w = alpha;
  return ImGui::ColorConvertFloat4ToU32(c);
}

}  // namespace

void ShowDisplaySection(AppState& st, Worker& worker) {
  bool changed = false;
  std::vector<std::string> maps;
  for (const auto& m : colormaps())
    if (m.name != "rdbu_diverging") maps.emplace_back(m.name);
  changed |= ComboStrings(st, "colormap", "display.colormap", st.display.colormap, maps);
  std::string range = name(st.display.range);
  if (ComboStrings(st, "range", "display.range", range, {"global", "per_head", "per_row"})) {
    parse_range_mode(range, st.display.range);
    changed = true;
  }
  changed |= ImGui::Checkbox("log scale (weights)", &st.display.log);
  RecordWidget(st, "display.log");
  ImGui::SameLine();
  ImGui::Checkbox("numbers in cells", &st.numbers);
  RecordWidget(st, "display.numbers");
  if (changed) Repost(st, worker);
}

void ShowModelWindow(AppState& st) {
  if (!st.show_model || !st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  ImGui::SetNextWindowSize(ImVec2(900, 700), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(380, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "model");
  if (ImGui::Begin("Model view: every layer x every head###model", &st.show_model)) {
    const int n_layers = static_cast<int>(r.layers.size()), n_heads = st.shown->n_heads;
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

void ShowPipelineWindow(AppState& st, Worker& worker) {
  (void)worker;
  if (!st.show_pipeline || !st.shown || !st.shown->result) return;
  ImGui::SetNextWindowSize(ImVec2(860, 760), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(400, 70), ImGuiCond_FirstUseEver);
  const int head = std::max(0, st.detail_head);
  const std::string title = "Step by step: layer " + std::to_string(st.layer) + ", head " + std::to_string(head) + "###pipeline";
  PlaceLessonView(st, "pipeline");
  if (ImGui::Begin(title.c_str(), &st.show_pipeline)) {
    const Snapshot& snap = *st.shown;
    const bool current = snap.display.steps_layer == st.layer && snap.display.steps_head == head;
    if (snap.steps.empty() || !current || st.tex.steps.size() != snap.steps.size()) {
      ImGui::TextDisabled("preparing the steps of this head...");
      ImGui::End();
      return;
    }
    const int n = static_cast<int>(snap.steps.size());
    for (int k = 0; k < n && !st.pending_step.empty(); ++k)
      if (snap.steps[k].id == st.pending_step) st.pipeline_step = k;
    st.pending_step.clear();
    st.pipeline_step = std::clamp(st.pipeline_step, 0, n - 1);
    ImGui::BeginDisabled(st.pipeline_step == 0);
    if (ImGui::Button("< Previous")) --st.pipeline_step;
    ImGui::EndDisabled();
    RecordWidget(st, "pipeline.previous");
    ImGui::SameLine();
    ImGui::BeginDisabled(st.pipeline_step + 1 >= n);
    if (ImGui::Button("Next >")) ++st.pipeline_step;
    ImGui::EndDisabled();
    RecordWidget(st, "pipeline.next");
    ImGui::SameLine();
    ImGui::Text("step %d of %d", st.pipeline_step + 1, n);
    // the road: every step's name, the current one highlighted, each clickable
    for (int k = 0; k < n; ++k) {
      if (k) {
        ImGui::SameLine(0, 2);
        ImGui::TextDisabled(">");
        ImGui::SameLine(0, 2);
      }
      ImGui::PushStyleColor(ImGuiCol_Button, ImGui::GetStyleColorVec4(k == st.pipeline_step ? ImGuiCol_ButtonActive : ImGuiCol_FrameBg));
      if (ImGui::SmallButton(snap.steps[k].id.c_str())) st.pipeline_step = k;
      ImGui::PopStyleColor();
      RecordWidget(st, "pipeline.step=" + snap.steps[k].id);
    }
    const StepImage& s = snap.steps[st.pipeline_step];
    ImGui::Separator();
    ImGui::SetWindowFontScale(1.25f);
    ImGui::TextUnformatted(s.title.c_str());
    ImGui::SetWindowFontScale(1.0f);
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(s.formula.c_str());
    ImGui::PopTextWrapPos();
    ImGui::TextDisabled("%d x %d", s.image.rows, s.image.cols);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float bar_w = ImGui::GetFontSize() * 5.5f;
    ImVec4 cells;
    const auto [i, j] = DrawImage(st, s.image, st.tex.steps[st.pipeline_step], o, ImVec2(avail.x - bar_w, avail.y), true, &cells);
    st.widgets["pipeline.cells"] = cells;
    DrawColorBar(ImVec2(o.x + avail.x - bar_w + ImGui::GetFontSize() * 1.5f, o.y + ImGui::GetFontSize()), avail.y * 0.5f,
                 s.image.vmin, s.image.vmax, s.id.c_str(), s.image.diverging ? "rdbu_diverging" : snap.display.colormap.c_str());
    if (i >= 0) {
      const Result& r = *snap.result;
      const Step* dummy = nullptr;
      (void)dummy;
      ImGui::BeginTooltip();
      ImGui::Text("%s  row %d, column %d", s.id.c_str(), i, j);
      if (s.image.token_rows && i < int(st.labels.size())) ImGui::Text("row token \"%s\"", st.labels[i].c_str());
      if (s.image.token_cols && j < int(r.keys().size())) ImGui::Text("column token \"%s\"", st.key_labels[j].c_str());
      ImGui::EndTooltip();
    }
  }
  ImGui::End();
}

void ShowLinesWindow(AppState& st) {
  if (!st.show_lines || !st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  ImGui::SetNextWindowSize(ImVec2(520, 760), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(700, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "lines");
  if (ImGui::Begin("Line view###lines", &st.show_lines)) {
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

void ShowCompareWindow(AppState& st, Worker& worker, Worker& worker_b, const HeatmapRenderer& renderer) {
  (void)worker;
  (void)renderer;
  if (!st.show_compare) {
    st.edit_b = false;
    return;
  }
  const ImVec2 vs = ImGui::GetMainViewport()->Size;
  ImGui::SetNextWindowSize(ImVec2(vs.x * 0.72f, vs.y * 0.7f), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(vs.x * 0.26f, vs.y * 0.12f), ImGuiCond_FirstUseEver);
  if (ImGui::Begin("Compare A / B###compare", &st.show_compare)) {
    ImGui::Checkbox("the side panel edits B", &st.edit_b);
    RecordWidget(st, "compare.edit_b");
    ImGui::SameLine();
    if (ImGui::SmallButton("B = A")) {
      st.session_b = st.session;
      st.b_posted = worker_b.post(st.session_b, DisplayOptions{st.display.colormap, st.display.range, st.display.log});
    }
    RecordWidget(st, "compare.copy");
    const Snapshot* a = st.shown.get();
    const Snapshot* b = st.b_shown.get();
    if (!a || !a->result || !b || !b->result) {
      ImGui::TextDisabled("computing B...");
      ImGui::End();
      return;
    }
    const int n_heads = std::min(a->n_heads, b->n_heads);
    st.compare_head = std::clamp(st.compare_head, 0, n_heads - 1);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
    ImGui::SliderInt("head", &st.compare_head, 0, n_heads - 1);
    RecordWidget(st, "compare.head");
    // what differs
    std::string diffs;
    for (const auto& o : session_options()) {
      if (option_get(st.session, o.path) != option_get(st.session_b, o.path))
        diffs += (diffs.empty() ? "" : ", ") + o.path + " " + option_get(st.session_b, o.path);
    }
    ImGui::TextDisabled("B differs in: %s", diffs.empty() ? "nothing (edit B with the side panel)" : diffs.c_str());

    const int h = st.compare_head;
    const HeadResult& ha = a->result->layers[0].heads[h];
    const HeadResult& hb = b->result->layers[0].heads[h];
    const bool same_shape = ha.weights.rows() == hb.weights.rows() && ha.weights.cols() == hb.weights.cols();
    const float font = ImGui::GetFontSize();
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float metrics_h = font * 6;
    const float side = std::max(40.0f, std::min((avail.x - font * 12) / 3, avail.y - metrics_h - font * 2));
    const ImVec2 o = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    Hover linked;
    auto panel = [&](int k, const char* label, unsigned tex, int n_q, int n_k) {
      const ImVec2 p0(o.x + k * (side + font * 2), o.y + font * 1.4f);
      dl->AddText(ImVec2(p0.x, o.y), ImGui::GetColorU32(ImGuiCol_Text), label);
      const float cell = std::min(side / n_k, side / n_q);
      const ImVec2 p1(p0.x + cell * n_k, p0.y + cell * n_q);
      if (tex) dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<intptr_t>(tex)), p0, p1);
      dl->AddRect(ImVec2(p0.x - 1, p0.y - 1), ImVec2(p1.x + 1, p1.y + 1), ImGui::GetColorU32(ImGuiCol_Border));
      st.widgets[std::string("compare.") + (k == 0 ? "a" : k == 1 ? "b" : "diff")] = ImVec4(p0.x, p0.y, p1.x - p0.x, p1.y - p0.y);
      const ImVec2 m = ImGui::GetMousePos();
      if (ImGui::IsWindowHovered() && m.x >= p0.x && m.y >= p0.y && m.x < p1.x && m.y < p1.y)
        linked = {h, static_cast<int>((m.y - p0.y) / cell), static_cast<int>((m.x - p0.x) / cell)};
      return std::pair<ImVec2, float>(p0, cell);
    };
    const std::size_t ka = std::size_t(0) * a->n_heads + h;
    std::vector<std::pair<ImVec2, float>> placed;
    placed.push_back(panel(0, "A (the main session)", ka < st.tex.weights.size() ? st.tex.weights[ka].texture() : 0,
                           int(ha.weights.rows()), int(ha.weights.cols())));
    placed.push_back(panel(1, "B", h < int(st.b_tex.size()) ? st.b_tex[h].texture() : 0, int(hb.weights.rows()),
                           int(hb.weights.cols())));
    if (same_shape && h < int(st.diff_tex.size())) {
      char label[64];
      std::snprintf(label, sizeof label, "B - A   (max |diff| %.3g)", st.diff_img[h].vmax);
      placed.push_back(panel(2, label, st.diff_tex[h].texture(), int(ha.weights.rows()), int(ha.weights.cols())));
      st.diff_max = st.diff_img[h].vmax;
      DrawColorBar(ImVec2(o.x + 3 * (side + font * 2) + font * 0.5f, o.y + font * 2), side * 0.8f, -st.diff_img[h].vmax,
                   st.diff_img[h].vmax, "B - A", "rdbu_diverging");
    } else {
      dl->AddText(ImVec2(o.x + 2 * (side + font * 2), o.y + font * 2), ImGui::GetColorU32(ImGuiCol_TextDisabled),
                  "no difference map: A and B have different shapes");
    }
    st.compare_hover = linked;
    if (linked.head >= 0) {  // the same cell in every panel
      for (const auto& [p0, cell] : placed)
        dl->AddRect(ImVec2(p0.x + linked.key * cell, p0.y + linked.query * cell),
                    ImVec2(p0.x + (linked.key + 1) * cell, p0.y + (linked.query + 1) * cell), IM_COL32(255, 255, 255, 255),
                    0, 0, 2.0f);
      const int i = linked.query, j = linked.key;
      ImGui::BeginTooltip();
      ImGui::Text("query %d, key %d", i, j);
      if (i < ha.weights.rows() && j < ha.weights.cols()) ImGui::Text("A: weight %.4f", ha.weights(i, j));
      if (i < hb.weights.rows() && j < hb.weights.cols()) ImGui::Text("B: weight %.4f", hb.weights(i, j));
      ImGui::EndTooltip();
    }
    ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + font * 1.6f + side + font));
    // per-head metric deltas
    const auto& ma = a->result->metrics, &mb = b->result->metrics;
    if (!ma.empty() && !mb.empty() && ImGui::BeginTable("deltas", 5, ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg)) {
      for (const char* c : {"head", "entropy A -> B", "mean distance A -> B", "max weight A -> B", "first token A -> B"})
        ImGui::TableSetupColumn(c);
      ImGui::TableHeadersRow();
      for (int k = 0; k < n_heads; ++k) {
        const HeadMetrics &x = ma[0].heads[k], &y = mb[0].heads[k];
        ImGui::TableNextColumn();
        ImGui::Text("%d", k);
        for (auto [u, v] : {std::pair{x.entropy, y.entropy}, {x.mean_distance, y.mean_distance},
                            {x.max_weight, y.max_weight}, {x.first_token, y.first_token}}) {
          ImGui::TableNextColumn();
          ImGui::Text("%.3f -> %.3f (%+.3f)", u, v, v - u);
        }
      }
      ImGui::EndTable();
    } else if (ma.empty() || mb.empty()) {
      ImGui::TextDisabled("computing metrics...");
    }
  }
  ImGui::End();
}

}  // namespace attnlab::app
