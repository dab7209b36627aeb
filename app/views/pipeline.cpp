// One head's computation step by step: X, Q, K, V, QK^T, scaled, biased, masked, softmax, .V, output.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

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
    if (DenseOnly(snap, "Step by step")) {
      ImGui::End();
      return;
    }
    const bool current = snap.display.steps_layer == st.layer && snap.display.steps_head == head;
    const auto& steps = ViewImages(snap, "pipeline");
    const auto& textures = ViewTextures(st, "pipeline");
    if (steps.empty() || !current || textures.size() != steps.size()) {
      ImGui::TextDisabled("preparing the steps of this head...");
      ImGui::End();
      return;
    }
    const int n = static_cast<int>(steps.size());
    for (int k = 0; k < n && !st.pending_step.empty(); ++k)
      if (steps[k].id == st.pending_step) st.pipeline_step = k;
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
      if (ImGui::SmallButton(steps[k].id.c_str())) st.pipeline_step = k;
      ImGui::PopStyleColor();
      RecordWidget(st, "pipeline.step=" + steps[k].id);
    }
    const ImageData& s = steps[st.pipeline_step];
    ImGui::Separator();
    ImGui::SetWindowFontScale(1.25f);
    ImGui::TextUnformatted(s.title.c_str());
    ImGui::SetWindowFontScale(1.0f);
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(s.caption.c_str());
    ImGui::PopTextWrapPos();
    ImGui::TextDisabled("%d x %d", s.rows, s.cols);
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float bar_w = ImGui::GetFontSize() * 5.5f;
    ImVec4 cells;
    const auto [i, j] = DrawImage(st, s, textures[st.pipeline_step], o, ImVec2(avail.x - bar_w, avail.y), true, &cells);
    st.widgets["pipeline.cells"] = cells;
    DrawColorBar(ImVec2(o.x + avail.x - bar_w + ImGui::GetFontSize() * 1.5f, o.y + ImGui::GetFontSize()), avail.y * 0.5f,
                 s.vmin, s.vmax, s.id.c_str(), s.diverging ? "rdbu_diverging" : snap.display.colormap.c_str());
    if (i >= 0) {
      const Result& r = *snap.result;
      const Step* dummy = nullptr;
      (void)dummy;
      ImGui::BeginTooltip();
      ImGui::Text("%s  row %d, column %d", s.id.c_str(), i, j);
      if (s.token_rows && i < int(st.labels.size())) ImGui::Text("row token \"%s\"", st.labels[i].c_str());
      if (s.token_cols && j < int(r.keys().size())) ImGui::Text("column token \"%s\"", st.key_labels[j].c_str());
      ImGui::EndTooltip();
    }
  }
  ImGui::End();
}

}  // namespace

extern const View kPipelineView{"pipeline", "View", "Step by step (one head's pipeline)", &AppState::show_pipeline, false,
    [](const Result& r, const DisplayOptions& d) {
      const bool asked = !r.is_field() && d.steps_layer >= 0 && d.steps_layer < int(r.layers.size()) && d.steps_head >= 0 &&
                         d.steps_head < int(r.layers[d.steps_layer].heads.size());
      return asked ? step_panels(r, d.steps_layer, d.steps_head) : std::vector<FigurePanel>{};
    },
    [](AppState& st, const ViewContext& c) { ShowPipelineWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      if (!st.shown || !st.shown->result) return;
      const auto& steps = ViewImages(*st.shown, "pipeline");
      if (steps.empty() || ViewTextures(st, "pipeline").empty()) return;
      const ImageData& s = steps[std::min<std::size_t>(st.pipeline_step, steps.size() - 1)];
      j["pipeline"] = {{"step", st.pipeline_step}, {"id", s.id}, {"steps", steps.size()}, {"rows", s.rows}, {"cols", s.cols}};
    }};

}  // namespace attnlab::app
