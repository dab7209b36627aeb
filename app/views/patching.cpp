// Activation patching of a loaded model (HfModel::patch): the text being shown, with each head's
// output (or the residual stream entering each layer at each position) taken from a corrupted
// text, and the metric at the last token as a layers x heads (or layers x positions) grid. The
// grid runs on its own thread, with progress and Cancel; the last finished grid stays shown.
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "background.hpp"
#include "present/colormap.hpp"
#include "views/view.hpp"

namespace attnlab::app {

struct PatchJob {
  std::shared_ptr<const HfModel> model;
  PatchRequest request;
  std::atomic<float> progress{0};
  CancelFlag cancel{false};
  std::atomic<bool> done{false};
  bool ok = false;  // read once done
  std::string error;
  PatchGrid grid;
  std::thread thread;
  ~PatchJob() {
    cancel = true;
    if (thread.joinable()) thread.join();
  }
};

namespace {

// Starts the grid for the text shown and the window's inputs; false with st.patch_error said.
bool StartPatching(AppState& st) {
  if (!st.model) return st.patch_error = "open a model folder first (File > Open model folder)", false;
  if (st.patch_corrupted.empty()) return st.patch_error = "type a corrupted text: as many tokens as the text", false;
  auto job = std::make_shared<PatchJob>();
  job->model = st.model;
  PatchRequest& q = job->request;
  q.clean = st.session.text;
  q.corrupted = st.patch_corrupted;
  q.grid = st.patch_grid == 0 ? PatchRequest::Grid::heads : PatchRequest::Grid::residual;
  q.metric = st.patch_metric == 0 ? PatchRequest::Metric::logit_diff : PatchRequest::Metric::prob;
  q.direction = st.patch_direction == 1 ? PatchRequest::Direction::denoising : PatchRequest::Direction::noising;
  std::string why;
  if (!st.patch_token_a.empty() && !st.model->single_token(st.patch_token_a, q.token_a, why))
    return st.patch_error = "token A: " + why, false;
  if (q.metric == PatchRequest::Metric::logit_diff && !st.patch_token_b.empty() &&
      !st.model->single_token(st.patch_token_b, q.token_b, why))
    return st.patch_error = "token B: " + why, false;
  st.patch_error.clear();
  PatchJob* j = job.get();
  job->thread = std::thread([j] {
    run_below_the_ui();
    j->ok = j->model->patch(j->request, j->grid, j->error, &j->progress, &j->cancel);
    j->done.store(true, std::memory_order_release);
  });
  st.patch_job = std::move(job);
  return true;
}

// A finished job becomes the shown grid (or its error); a cancelled one leaves the last grid.
void CollectPatching(AppState& st) {
  if (!st.patch_job || !st.patch_job->done.load(std::memory_order_acquire)) return;
  if (st.patch_job->ok) st.patch_shown = st.patch_job;
  else st.patch_error = st.patch_job->error.empty() ? "cancelled: the last grid stays" : st.patch_job->error;
  st.patch_job.reset();
}

void DrawGrid(AppState& st, const PatchGrid& g) {
  const Eigen::MatrixXd& v = g.values;
  const int rows = static_cast<int>(v.rows()), cols = static_cast<int>(v.cols());
  const bool heads = g.request.grid == PatchRequest::Grid::heads;
  const bool diff = g.request.metric == PatchRequest::Metric::logit_diff;
  const std::string metric = diff ? "logit(\"" + Clip(g.token_a_text, 16) + "\") - logit(\"" + Clip(g.token_b_text, 16) + "\")"
                                  : "p(\"" + Clip(g.token_a_text, 16) + "\")";
  // noising: the clean run, each piece from the corrupted one; denoising: the other way round
  const bool denoise = g.request.direction == PatchRequest::Direction::denoising;
  const char* base_name = denoise ? "corrupted" : "clean";
  const double base = denoise ? g.corrupted : g.clean;
  ImGui::TextWrapped("%s at position %d (after \"%s\"): clean %.4g, corrupted %.4g. Each cell: the %s run with that %s "
                     "from the %s run.", metric.c_str(), g.request.position,
                     Clip(g.tokens[std::size_t(g.request.position)].text, 24).c_str(), g.clean, g.corrupted, base_name,
                     heads ? "head's output" : "position's residual stream (entering the layer)", denoise ? "clean" : "corrupted");
  ImGui::TextDisabled("%d runs, %.1f forward passes (each starts at its layer from the %s run's stream)", g.runs,
                      g.layers_run, base_name);
  double m = 1e-12;  // the colours: metric - the unpatched run's, symmetric
  for (int l = 0; l < rows; ++l)
    for (int c = 0; c < cols; ++c) m = std::max(m, std::abs(v(l, c) - base));
  const float font = ImGui::GetFontSize();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float label_w = font * 4, top = heads ? font * 1.4f : font * 5, bar = font * 6;
  const float cell = std::clamp(std::min((avail.x - label_w - bar) / cols, (avail.y - top - font) / rows), 4.0f, font * 4);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const auto& map = colormap("rdbu_diverging");
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  for (int c = 0; c < cols; ++c) {
    const float x = o.x + label_w + c * cell;
    if (heads) {
      if (cell >= font * 1.2f || c % std::max(1, int(font * 2 / cell)) == 0)
        dl->AddText(ImVec2(x + 2, o.y), dim, (cell >= font * 3.5f ? Numbered("head ", c) : std::to_string(c)).c_str());
    } else if (cell >= font * 0.9f) {
      AddTextVertical(dl, ImVec2(x + cell / 2 - font / 2, o.y + top - 4), dim,
                      FitLabel(g.tokens[std::size_t(c)].text, top - 8).c_str());
    }
  }
  for (int l = 0; l < rows; ++l) {
    const float y = o.y + top + l * cell;
    if (cell >= font || l % std::max(1, int(font / cell) + 1) == 0)
      dl->AddText(ImVec2(o.x, y + cell / 2 - font / 2), dim, Numbered("layer ", l).c_str());
    for (int c = 0; c < cols; ++c) {
      const double t = (v(l, c) - base) / m;  // -1 .. 1
      const auto& rgb = map.rgb[std::size_t(std::clamp(int(std::lround((t + 1) * 127.5)), 0, 255))];
      const ImVec2 a(o.x + label_w + c * cell, y), b(a.x + cell - 1, a.y + cell - 1);
      dl->AddRectFilled(a, b, ImGui::ColorConvertFloat4ToU32(ImVec4(rgb[0], rgb[1], rgb[2], 1)));
      if (ImGui::IsMouseHoveringRect(a, b)) {
        dl->AddRect(a, b, IM_COL32(255, 255, 255, 255), 0, 0, 2);
        const double span = g.clean - g.corrupted;
        std::string what = heads ? "layer " + std::to_string(l) + ", head " + std::to_string(c)
                                 : "layer " + std::to_string(l) + ", position " + std::to_string(c) + " \"" +
                                       Clip(g.tokens[std::size_t(c)].text, 24) + "\"";
        if (std::abs(span) > 1e-12 && denoise)
          ImGui::SetTooltip("%s\n%s = %.5g\n(patched - corrupted) / (clean - corrupted) = %.3f (recovered)", what.c_str(),
                            metric.c_str(), v(l, c), (v(l, c) - g.corrupted) / span);
        else if (std::abs(span) > 1e-12)
          ImGui::SetTooltip("%s\n%s = %.5g\n(clean - patched) / (clean - corrupted) = %.3f", what.c_str(), metric.c_str(),
                            v(l, c), (g.clean - v(l, c)) / span);
        else
          ImGui::SetTooltip("%s\n%s = %.5g", what.c_str(), metric.c_str(), v(l, c));
        st.patch_hover = {l, c};
      }
    }
  }
  st.widgets["patching.grid"] = ImVec4(o.x + label_w, o.y + top, cols * cell, rows * cell);
  DrawColorBar(ImVec2(o.x + label_w + cols * cell + font * 2, o.y + top), std::max(rows * cell, font * 8), float(-m), float(m),
               denoise ? "patched - corrupted" : "patched - clean", "rdbu_diverging");
  ImGui::Dummy(ImVec2(label_w + cols * cell + bar, top + std::max(rows * cell, font * 8) + 4));
}

void ShowPatchingWindow(AppState& st) {
  if (!st.show_patching) return;
  CollectPatching(st);
  ImGui::SetNextWindowSize(ImVec2(760, 600), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(400, 90), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "patching");
  st.patch_hover = {-1, -1};
  if (ImGui::Begin("Activation patching###patching", &st.show_patching)) {
    if (!st.model) {
      ImGui::TextWrapped("Patching runs a pretrained model: open a model folder (File > Open model folder). The text of "
                         "the side panel is the clean run; type a corrupted text of as many tokens here.");
    } else {
      ImGui::TextDisabled("clean: the text of the side panel");
      ImGui::SetNextItemWidth(-1);
      ImGui::InputTextWithHint("##corrupted", "corrupted text (as many tokens)", &st.patch_corrupted);
      RecordWidget(st, "patching.corrupted");
      ImGui::RadioButton("heads", &st.patch_grid, 0);
      ImGui::SameLine();
      ImGui::RadioButton("residual stream", &st.patch_grid, 1);
      ImGui::SameLine(0, ImGui::GetFontSize() * 2);
      ImGui::RadioButton("logit difference", &st.patch_metric, 0);
      ImGui::SameLine();
      ImGui::RadioButton("probability", &st.patch_metric, 1);
      ImGui::SameLine(0, ImGui::GetFontSize() * 2);
      ImGui::RadioButton("noising", &st.patch_direction, 0);
      RecordWidget(st, "patching.noising");
      ImGui::SameLine();
      ImGui::RadioButton("denoising", &st.patch_direction, 1);
      RecordWidget(st, "patching.denoising");
      ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
      ImGui::InputTextWithHint("token A", "clean top", &st.patch_token_a);
      if (st.patch_metric == 0) {
        ImGui::SameLine();
        ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
        ImGui::InputTextWithHint("token B", "corrupted top", &st.patch_token_b);
      }
      ImGui::SameLine();
      if (st.patch_job) {
        ImGui::ProgressBar(st.patch_job->progress.load(), ImVec2(ImGui::GetFontSize() * 8, 0));
        ImGui::SameLine();
        if (ImGui::Button("Cancel##patching")) st.patch_job->cancel = true;
      } else if (ImGui::Button("Run##patching")) {
        StartPatching(st);
      }
      RecordWidget(st, "patching.run");
      if (!st.patch_error.empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", st.patch_error.c_str());
      if (st.patch_shown) DrawGrid(st, st.patch_shown->grid);
    }
  }
  ImGui::End();
}

}  // namespace

void ForgetPatching(AppState& st) {
  st.gen_job.reset();    // a generation of the model going away: cancelled and joined
  st.patch_job.reset();  // cancels and joins
  st.patch_shown.reset();
  st.patch_error.clear();
}

void PatchingDump(const AppState& st, nlohmann::json& j) {
  nlohmann::json p;
  p["running"] = st.patch_job != nullptr;
  p["error"] = st.patch_error;
  p["hover"] = {st.patch_hover.first, st.patch_hover.second};
  if (st.patch_shown) {
    const PatchGrid& g = st.patch_shown->grid;
    std::vector<std::vector<double>> values(std::size_t(g.values.rows()));
    for (Eigen::Index l = 0; l < g.values.rows(); ++l)
      for (Eigen::Index c = 0; c < g.values.cols(); ++c) values[std::size_t(l)].push_back(g.values(l, c));
    p["values"] = values;
    p["clean"] = g.clean;
    p["corrupted"] = g.corrupted;
    p["grid"] = g.request.grid == PatchRequest::Grid::heads ? "heads" : "residual";
    p["direction"] = g.request.direction == PatchRequest::Direction::denoising ? "denoising" : "noising";
    p["token_a"] = g.request.token_a;
    p["token_b"] = g.request.token_b;
  }
  j["patching"] = p;
}

extern const View kPatchingView{"patching", "View", "Activation patching (model)", &AppState::show_patching, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowPatchingWindow(st); },
    [](const AppState& st, nlohmann::json& j) { PatchingDump(st, j); }};

}  // namespace attnlab::app
