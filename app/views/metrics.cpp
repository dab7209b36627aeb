// Per-head metrics of a layer, the head-similarity matrix and the attention rollout through it.
#include <imgui.h>

#include <cstdio>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

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
    if (ImGui::BeginTable("metrics", 8, ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit)) {
      for (const char* h : {"head", "entropy (nats)", "normalised", "mean distance", "max weight", "first token", "density",
                            "sink mass (first 4)"})
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
    if (l < static_cast<int>(r.layers.size()) && !r.layers[l].heads.empty() && !r.layers[l].heads[0].sink_weight.empty()) {
      std::string line = "learned sink, mean weight per head:";
      for (std::size_t h = 0; h < r.layers[l].heads.size(); ++h) {
        const auto& sw = r.layers[l].heads[h].sink_weight;
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
      const float side = std::min(w - ImGui::GetFontSize() * 5, avail.y - title - 10);
      if (side < 8) continue;
      const auto [i, j] = DrawImage(st, img, ViewTextures(st, "metrics").at(idx), ImVec2(o.x, o.y + title), ImVec2(side, side), true);
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

}  // namespace

extern const View kMetricsView{"metrics", "View", "Metrics, head similarity and rollout", &AppState::show_metrics, false,
    [](const Result& r, const DisplayOptions&) {
      std::vector<FigurePanel> out = similarity_panels(r);  // layer l at l, its rollout at n_layers + l
      for (FigurePanel& p : rollout_panels(r)) out.push_back(std::move(p));
      return out;
    },
    [](AppState& st, const ViewContext&) { ShowMetricsWindow(st); }};

}  // namespace attnlab::app
