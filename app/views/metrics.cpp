// Per-head metrics of a layer, the head-similarity matrix and the attention rollout through it.
#include <imgui.h>

#include <cstdio>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <future>
#include <string>

#include "background.hpp"
#include "attention/field.hpp"
#include "pipeline.hpp"
#include "present/colormap.hpp"
#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

// A long sequence (a field) has no n x n rollout: the rollout of chosen query rows through the
// layer, by vector x matrix products through the layers below (attention/field.hpp), on a thread
// of its own with progress and cancel; each row drawn over every token, pooled to the pixels by
// max, with the tokens it draws most from.
void ShowFieldRollout(AppState& st, const Snapshot& s, int l) {
  const Result& r = *s.result;
  auto& fr = st.field_rollout;
  const int n = static_cast<int>(r.tokens.size());
  // a finished computation is taken (or dropped when the Result or layer changed meanwhile)
  if (fr.pending.valid() && fr.pending.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    Matrix m = fr.pending.get();
    if (fr.pending_generation == s.generation && m.size()) {
      fr.values = std::move(m), fr.generation = fr.pending_generation, fr.layer = fr.pending_layer, fr.r0 = fr.pending_r0;
      fr.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - fr.started).count();
      // the residual term puts most of a row on its own token: colours end at the largest value
      // on another token (the own token saturates)
      fr.top = 1e-12f;
      fr.most.assign(fr.values.rows(), {});
      std::vector<int> order(n);
      for (Eigen::Index i = 0; i < fr.values.rows(); ++i) {
        for (int j = 0; j < n; ++j)
          if (j != fr.r0 + i) fr.top = std::max(fr.top, fr.values(i, j));
        for (int j = 0; j < n; ++j) order[j] = j;
        const int k = std::min(n, 6);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int a, int b) { return fr.values(i, a) > fr.values(i, b); });
        fr.most[i].assign(order.begin(), order.begin() + k);
      }
      fr.strip_px = 0;
    }
  }
  const bool running = fr.pending.valid();
  if (running && (fr.pending_generation != s.generation || fr.pending_layer != l)) *fr.cancel = true;  // stale
  ImGui::Separator();
  ImGui::Text("attention rollout through layer %d of chosen query rows", l);
  const bool whole = static_cast<int>(r.rollout.size()) > l;  // up to 4096 tokens: rows of the n x n above
  const std::string why = field_rollout_refusal(r);
  if (whole)
    ImGui::TextDisabled("%d tokens: rows of the whole rollout above, each over every token", n);
  else
    ImGui::TextDisabled("%d tokens: no n x n rollout%s%s; each row exact, by vector x matrix products through layers 0..%d", n,
                        why.empty() ? "" : " (", why.empty() ? "" : (why + ")").c_str(), l);
  if (fr.rows.empty()) fr.rows = std::to_string(std::max(0, n - 4)) + ":" + std::to_string(n);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s", fr.rows.c_str());
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
  const bool enter = ImGui::InputTextWithHint("query rows##rollout", "a:b", buf, sizeof buf, ImGuiInputTextFlags_EnterReturnsTrue);
  RecordWidget(st, "metrics.rollout_rows");
  fr.rows = buf;
  int r0 = 0, r1 = 0;
  const bool ok = ParseSpan(fr.rows, n, r0, r1) && r1 - r0 <= 256;
  ImGui::SameLine();
  if (running) {
    ImGui::ProgressBar(fr.progress->load(), ImVec2(ImGui::GetFontSize() * 8, 0));
    ImGui::SameLine();
    if (ImGui::Button("cancel##rollout")) *fr.cancel = true;
    RecordWidget(st, "metrics.rollout_cancel");
  } else {
    ImGui::BeginDisabled(!ok);
    const bool go = ImGui::Button("compute##rollout") || (enter && ok);
    ImGui::EndDisabled();
    RecordWidget(st, "metrics.rollout_compute");
    if (go) {
      fr.cancel = std::make_shared<std::atomic<bool>>(false);
      fr.progress = std::make_shared<std::atomic<float>>(0.0f);
      std::vector<int> rows;
      for (int i = r0; i < r1; ++i) rows.push_back(i);
      fr.pending = std::async(std::launch::async, [res = s.result, l, rows, r0, r1, cancel = fr.cancel, progress = fr.progress] {
        run_below_the_ui();
        if (static_cast<int>(res->rollout.size()) > l) return Matrix(res->rollout[l].middleRows(r0, r1 - r0));
        return field_rollout_rows(res->fields, l, rows, res->session.analysis.rollout_residual, cancel.get(), progress.get());
      });
      fr.pending_generation = s.generation, fr.pending_layer = l, fr.pending_r0 = r0;
      fr.started = std::chrono::steady_clock::now();
    }
  }
  if (!ok) {
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "rows a:b within 0..%d, at most 256 of them", n);
  }
  if (fr.generation != s.generation || fr.layer != l || fr.values.size() == 0) return;
  ImGui::TextDisabled("rows %d..%d through layer %d, %s, in %.0f ms", fr.r0, fr.r0 + int(fr.values.rows()) - 1, l,
                      r.session.analysis.rollout_residual ? "with the residual term (A + I) / 2" : "without the residual term",
                      fr.ms);
  const float top = fr.top;
  ImGui::TextDisabled("each row over all %d tokens, pooled to the pixels by max; colours up to %.3g, the largest value on "
                      "another token (a row's own token saturates)", n, double(top));
  // each row over every token, pooled to the pixels by max
  const auto& map = colormap(s.display.colormap);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float font = ImGui::GetFontSize();
  const ImVec2 o = ImGui::GetCursorScreenPos();
  const float x0 = o.x + font * 4, width = std::max(8.0f, ImGui::GetContentRegionAvail().x - font * 4);
  const int rows = static_cast<int>(fr.values.rows());
  // at most 64k cells a frame (256 rows are drawn 256 columns wide)
  const int px = std::clamp(std::min(static_cast<int>(width), 65536 / std::max(1, rows)), 1, n);
  const float row_h = std::clamp(ImGui::GetContentRegionAvail().y / float(rows + 3), 2.0f, font);
  if (fr.strip_px != px) {  // pooled again only when the width changes
    fr.strip.resize(std::size_t(rows) * px);
    for (int i = 0; i < rows; ++i)
      for (int x = 0; x < px; ++x) {
        const int a = static_cast<int>(std::int64_t(x) * n / px), b = std::max(a + 1, static_cast<int>(std::int64_t(x + 1) * n / px));
        fr.strip[std::size_t(i) * px + x] = fr.values.row(i).segment(a, std::min(b, n) - a).maxCoeff();
      }
    fr.strip_px = px;
  }
  for (int i = 0; i < rows; ++i) {
    if (row_h >= font) dl->AddText(ImVec2(o.x, o.y + i * row_h), IM_COL32(200, 200, 200, 255), std::to_string(fr.r0 + i).c_str());
    for (int x = 0; x < px; ++x) {
      const float v = fr.strip[std::size_t(i) * px + x];
      const auto& c = map.rgb[static_cast<std::size_t>(std::clamp(v / top, 0.0f, 1.0f) * 255)];
      dl->AddRectFilled(ImVec2(x0 + x * width / px, o.y + i * row_h), ImVec2(x0 + (x + 1) * width / px, o.y + (i + 1) * row_h),
                        IM_COL32(int(c[0] * 255), int(c[1] * 255), int(c[2] * 255), 255));
    }
  }
  ImGui::SetCursorScreenPos(o);
  ImGui::InvisibleButton("##rollout_rows", ImVec2(font * 4 + width, rows * row_h));
  st.widgets["metrics.rollout"] = ImVec4(x0, o.y, width, rows * row_h);
  int row = 0;
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetMousePos();
    row = std::clamp(static_cast<int>((m.y - o.y) / row_h), 0, rows - 1);
    const int j = std::clamp(static_cast<int>((m.x - x0) / width * n), 0, n - 1);
    ImGui::SetTooltip("token %d \"%s\" draws %.4g from token %d \"%s\"", fr.r0 + row, st.labels[fr.r0 + row].c_str(),
                      fr.values(row, j), j, st.labels[j].c_str());
  }
  // the tokens the (hovered, else first) row draws most from
  const std::vector<int>& order = fr.most[row];
  const int k = static_cast<int>(order.size());
  std::string line = "token " + std::to_string(fr.r0 + row) + " draws most from:";
  for (int t = 0; t < k; ++t) {
    char item[96];
    std::snprintf(item, sizeof item, "  %d \"%s\" %.3f", order[t], st.labels[order[t]].substr(0, 24).c_str(),
                  double(fr.values(row, order[t])));
    line += item;
  }
  ImGui::TextWrapped("%s", line.c_str());
}

void ShowMetricsWindow(AppState& st, Worker& worker) {
  if (!st.show_metrics) return;
  const ImVec2 vp = ImGui::GetMainViewport()->Size;  // inside the window at 1024 x 768 too
  const float left = std::min(380.0f, std::max(20.0f, vp.x - 960));
  ImGui::SetNextWindowSize(ImVec2(std::min(940.0f, vp.x - left - 20), std::min(640.0f, vp.y - 100)), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(left, 80), ImGuiCond_FirstUseEver);
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
    // the sink's size: the first s tokens (StreamingLLM's 4); changing it computes again
    ImGui::SameLine();
    int sinks = st.session.analysis.sink_tokens;
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
    if (ImGui::InputInt("sink tokens", &sinks) && sinks >= 1 && sinks <= 4096) {
      st.session.analysis.sink_tokens = sinks;
      Edited(st, worker);
    }
    RecordWidget(st, "metrics.sink_tokens");
    const std::string sink_header = "sink mass (first " + std::to_string(r.metrics[l].sink_tokens) + ")";
    if (ImGui::BeginTable("metrics", 8, ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit)) {
      for (const char* h : {"head", "entropy (nats)", "normalised", "mean distance", "max weight", "first token", "density",
                            sink_header.c_str()})
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
        // a head that sinks - half its weight or more on the first four tokens - is marked
        ImGui::TableNextColumn();
        if (m.sink_mass >= 0.5)
          ImGui::TextColored(ImVec4(1.0f, 0.7f, 0.25f, 1.0f), "%.3f sinks", m.sink_mass);
        else
          ImGui::Text("%.3f", m.sink_mass);
      }
      ImGui::EndTable();
    }
    RecordWidget(st, "metrics.table");
    // gpt-oss's learned sink: the weight it takes from each head's rows (they sum to 1 - it)
    // (a dense head's or a field head's, per query row)
    auto sink_of = [&](std::size_t h) -> const std::vector<float>& {
      return r.is_field() ? r.fields[l].heads[h].sink_weight : r.layers[l].heads[h].sink_weight;
    };
    const std::size_t heads = r.is_field() ? (l < static_cast<int>(r.fields.size()) ? r.fields[l].heads.size() : 0)
                                           : (l < static_cast<int>(r.layers.size()) ? r.layers[l].heads.size() : 0);
    if (heads > 0 && !sink_of(0).empty()) {
      std::string line = "learned sink, mean weight per head:";
      for (std::size_t h = 0; h < heads; ++h) {
        const auto& sw = sink_of(h);
        double mean = 0;
        for (float x : sw) mean += x;
        char buf[32];
        std::snprintf(buf, sizeof buf, "  %zu: %.3f", h, sw.empty() ? 0.0 : mean / sw.size());
        line += buf;
      }
      ImGui::TextWrapped("%s", line.c_str());
    }
    // the head-similarity matrix of this layer, and the rollout through it
    const int n_layers = static_cast<int>(r.metrics.size());
    std::vector<int> shown = {l};
    if (!r.rollout.empty()) shown.push_back(n_layers + l);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 start = ImGui::GetCursorScreenPos();
    const float w = avail.x / shown.size(), title = ImGui::GetTextLineHeightWithSpacing() * 2;
    // a field's rollout rows below the panels
    const bool field_rollout = r.is_field() && r.key_tokens.empty();
    const float reserve = field_rollout ? std::max(ImGui::GetFontSize() * 11, avail.y * 0.35f) : 0.0f;
    float panels_bottom = start.y;
    for (std::size_t k = 0; k < shown.size(); ++k) {
      const int idx = shown[k];
      if (idx >= static_cast<int>(ViewImages(s, "metrics").size())) continue;
      const ImageData& img = ViewImages(s, "metrics")[idx];
      const ImVec2 o(start.x + k * w, start.y);
      ImGui::PushClipRect(o, ImVec2(o.x + w - 8, o.y + avail.y), true);
      ImGui::SetCursorScreenPos(o);
      ImGui::TextUnformatted(img.title.c_str());
      ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + ImGui::GetTextLineHeight()));
      ImGui::TextDisabled("%s", img.caption.c_str());
      ImGui::PopClipRect();
      const float side = std::min(w - ImGui::GetFontSize() * 5, avail.y - title - 10 - reserve);
      if (side < 8) continue;
      const auto [i, j] = DrawImage(st, img, ViewTextures(st, "metrics").at(idx), ImVec2(o.x, o.y + title), ImVec2(side, side), true);
      DrawColorBar(ImVec2(o.x + side + ImGui::GetFontSize() * 1.5f, o.y + title), side * 0.8f, img.vmin, img.vmax, "");
      panels_bottom = std::max(panels_bottom, o.y + title + side + 6);
      if (i >= 0 && img.width == img.cols) {
        const float v = img.rg[2 * (std::size_t(i) * img.width + j)];
        if (k == 0) ImGui::SetTooltip("heads %d and %d: JS divergence %.4f nats", i, j, v);
        else ImGui::SetTooltip("rollout: token %d draws %.4f from token %d", i, v, j);
      }
    }
    if (field_rollout) {
      ImGui::SetCursorScreenPos(ImVec2(start.x, std::max(panels_bottom, start.y + 4)));
      ShowFieldRollout(st, s, l);
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kMetricsView{"metrics", "View", "Metrics, head similarity and rollout", &AppState::show_metrics, false,
    [](const Result& r, const DisplayOptions&) {
      std::vector<FigurePanel> out = similarity_panels(r);  // layer l at l, its rollout at n_layers + l
      for (FigurePanel& p : rollout_panels(r)) out.push_back(std::move(p));
      return out;
    },
    [](AppState& st, const ViewContext& c) { ShowMetricsWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      // the panels' titles and captions, and a long sequence's rollout rows: per row its largest
      // value, the token it is at and the row's sum
      nlohmann::json panels = nlohmann::json::array();
      if (st.shown)
        for (const ImageData& img : ViewImages(*st.shown, "metrics")) panels.push_back({{"title", img.title}, {"caption", img.caption}});
      j["metrics_panels"] = panels;
      const auto& fr = st.field_rollout;
      nlohmann::json rows = nlohmann::json::array();
      if (st.shown && fr.generation == st.shown->generation)
        for (Eigen::Index i = 0; i < fr.values.rows(); ++i) {
          Eigen::Index at = 0;
          const float top = fr.values.row(i).maxCoeff(&at);
          rows.push_back({{"row", fr.r0 + i}, {"max", top}, {"argmax", at}, {"sum", fr.values.row(i).sum()}});
        }
      j["field_rollout"] = {{"layer", fr.layer}, {"running", fr.pending.valid()}, {"rows", rows}};
    }};

}  // namespace attnlab::app
