// Compare A / B: a second session beside the first, and B - A per head, hover linked.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include <imgui_stdlib.h>

#include "core/strings.hpp"
#include "analysis/metrics.hpp"
#include "views/view.hpp"

namespace attnlab::app {

bool SinkMasked(const Intervention& iv, const HfModel& m) {
  const Intervention want = sink_masked(m.info(), kSinkTokens);
  return iv.enabled && iv.replace_mask && iv.mask == want.mask && iv.layer == want.layer;
}

void SetSinkMasked(Intervention& iv, const HfModel& m, bool on) {
  if (on) mask_sink(iv, m.info(), kSinkTokens);
  else iv.enabled = false, iv.replace_mask = false;
}

namespace {
// The model B runs when it runs one: its own folder, else A's.
const HfModel* BModel(const AppState& st) { return st.model_b ? st.model_b.get() : st.model.get(); }

std::string ModelName(const HfModel* m) {
  if (!m) return "random weights";
  std::string dir = m->info().dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const auto slash = dir.rfind('/');
  return "model " + (slash == std::string::npos ? dir : dir.substr(slash + 1)) + " (" + m->info().model_type + ")";
}

// B's source when a model is open: the model (A's, or a folder of B's own, with heads ablated) or
// the random-weight engine, and B's text.
void ShowBSource(AppState& st) {
  // B's own model folder: one text through two models
  ImGui::TextUnformatted(st.model_b ? ("B's model: " + ModelName(st.model_b.get())).c_str()
                                    : st.model ? "B's model: A's" : "B's model: none");
  ImGui::SameLine();
  if (ImGui::SmallButton("Open a folder for B...") && !st.loading) {
    st.browser = {true, false, "", "", ""};
    st.browser.model = true, st.browser.for_b = true;
  }
  RecordWidget(st, "compare.b_open_model");
  if (st.model_b) {
    ImGui::SameLine();
    if (ImGui::SmallButton("B runs A's model")) {
      st.model_b.reset();
      st.b_intervention = {}, st.b_ablate_text.clear(), st.b_ablate_error.clear();
      PostB(st, st.session_b);
    }
    RecordWidget(st, "compare.b_model_a");
  }
  const HfModel* bm = BModel(st);
  if (!bm) return;
  bool changed = ImGui::Checkbox("B runs the model", &st.b_uses_model);
  RecordWidget(st, "compare.b_model");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10);
  if (st.b_uses_model) {
    if (ImGui::InputTextWithHint("B ablates##b", "layer.head, e.g. 0.1", &st.b_ablate_text)) {
      std::vector<std::pair<int, int>> heads;
      std::string why;
      if (parse_ablate(st.b_ablate_text, bm->info().n_layers, bm->info().n_heads, heads, why)) {
        st.b_ablate_error.clear();
        st.b_intervention.ablate = heads;
        changed = true;
      } else {
        st.b_ablate_error = why;  // the last valid ablation stays
      }
    }
    RecordWidget(st, "compare.b_ablate");
    ImGui::SameLine();
    if (ImGui::RadioButton("zero##b", &st.b_ablate_mode, 0) | ImGui::RadioButton("mean##b", &st.b_ablate_mode, 1)) changed = true;
    st.b_intervention.ablate_mode = st.b_ablate_mode == 1 ? AblateMode::mean : AblateMode::zero;
    // StreamingLLM's observation: B without the first tokens as keys, A as it is
    bool sink = SinkMasked(st.b_intervention, *bm);
    if (ImGui::Checkbox("B masks the sink (first 4 keys)", &sink)) {
      SetSinkMasked(st.b_intervention, *bm, sink);
      changed = true;
    }
    RecordWidget(st, "compare.b_sink");
  }
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputTextWithHint("##btext", "B's text", &st.session_b.text)) changed = true;
  RecordWidget(st, "compare.b_text");
  if (!st.b_ablate_error.empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", st.b_ablate_error.c_str());
  if (changed) PostB(st, st.session_b);
}

// What B's Result differs in from A's: what ran (the model or the engine), the text, the
// intervention, and for two random-weight sessions every option.
std::string Differences(const AppState& st, const Result& a, const Result& b) {
  std::vector<std::string> d;
  const HfModel* ma = st.model.get();
  const HfModel* mb = st.b_uses_model ? BModel(st) : nullptr;
  const bool model_a = ma != nullptr, model_b = mb != nullptr;
  if (ma != mb) d.push_back("what runs: A " + ModelName(ma) + ", B " + ModelName(mb));
  if (a.session.text != b.session.text) d.push_back("the text");
  if (a.intervention != b.intervention)
    d.push_back("the intervention: A " + (a.intervention.empty() ? std::string("none") : a.intervention) + ", B " +
                (b.intervention.empty() ? std::string("none") : b.intervention));
  if (!model_a && !model_b)
    for (const auto& o : session_options())
      if (o.path != "text" && option_get(st.session, o.path) != option_get(st.session_b, o.path))
        d.push_back(o.path + " " + option_get(st.session_b, o.path));
  return join(d, "; ");
}

// Whether the two texts' tokens line up, position by position, for B - A.
std::string Alignment(const Result& a, const Result& b) {
  if (a.tokens.size() != b.tokens.size())
    return "A has " + std::to_string(a.tokens.size()) + " tokens and B " + std::to_string(b.tokens.size()) +
           ": they do not align, so there is no B - A map";
  std::vector<std::string> at;
  for (std::size_t i = 0; i < a.tokens.size(); ++i)
    if (a.tokens[i].text != b.tokens[i].text) at.push_back(std::to_string(i));
  if (at.empty()) return "the tokens align (" + std::to_string(a.tokens.size()) + " identical)";
  if (at.size() > 8) at.resize(8), at.push_back("...");
  return std::to_string(a.tokens.size()) + " tokens each, different at " + join(at, ", ") +
         ": B - A compares position by position";
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
    if (ImGui::SmallButton("B = A")) {  // the text, the model and its intervention
      st.session_b = st.session;
      st.b_uses_model = true;
      st.model_b.reset();
      st.b_intervention = st.intervention;
      st.b_ablate_text.clear();
      st.b_ablate_error.clear();
      PostB(st, st.session_b);
    }
    RecordWidget(st, "compare.copy");
    (void)worker_b;
    ShowBSource(st);
    const Snapshot* a = st.shown.get();
    const Snapshot* b = st.b_shown.get();
    if (!a || !a->result || !b || !b->result) {
      ImGui::TextDisabled("computing B...");
      ImGui::End();
      return;
    }
    if (DenseOnly(*a, "Compare") || DenseOnly(*b, "Compare")) {
      ImGui::End();
      return;
    }
    const int n_heads = std::min(a->n_heads, b->n_heads);
    st.compare_head = std::clamp(st.compare_head, 0, n_heads - 1);

    const std::string diffs = Differences(st, *a->result, *b->result);
    st.compare_differs = diffs;
    ImGui::TextWrapped("B differs in: %s", diffs.empty() ? "nothing (edit B above, or with the side panel)" : diffs.c_str());
    const std::string aligned = Alignment(*a->result, *b->result);
    st.compare_alignment = aligned;
    ImGui::TextDisabled("%s", aligned.c_str());

    if (!a->result->next_tokens.empty() && !b->result->next_tokens.empty()) {  // what each predicts after its text
      auto top = [](const Result& r) {
        std::vector<std::string> t;
        for (std::size_t k = 0; k < std::min<std::size_t>(3, r.next_tokens.back().size()); ++k) {
          char p[32];
          std::snprintf(p, sizeof p, " %.1f%%", 100.0 * r.next_tokens.back()[k].p);
          t.push_back("\"" + Clip(r.next_tokens.back()[k].token, 12) + "\"" + p);
        }
        return join(t, ", ");
      };
      ImGui::TextDisabled("next token: A %s | B %s", top(*a->result).c_str(), top(*b->result).c_str());
    }
    const int layer = std::clamp(st.layer, 0, std::min(a->result->n_layers(), b->result->n_layers()) - 1);
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
    ImGui::SliderInt("head", &st.compare_head, 0, n_heads - 1);
    RecordWidget(st, "compare.head");
    ImGui::SameLine();
    ImGui::TextDisabled("of layer %d (the head grid's layer)", layer);
    const int h = st.compare_head;
    const HeadResult& ha = a->result->layers[layer].heads[h];
    const HeadResult& hb = b->result->layers[layer].heads[h];
    const bool same_shape = ha.weights.rows() == hb.weights.rows() && ha.weights.cols() == hb.weights.cols() &&
                            st.diff_layer == layer;
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
    const std::size_t ka = std::size_t(layer) * a->n_heads + h;
    std::vector<std::pair<ImVec2, float>> placed;
    placed.push_back(panel(0, "A (the main session)", ka < st.ready_w.size() && st.ready_w[ka] ? st.tex.weights[ka].texture() : 0,
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
        if (layer >= int(ma.size()) || layer >= int(mb.size())) break;
        const HeadMetrics &x = ma[layer].heads[k], &y = mb[layer].heads[k];
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

}  // namespace

extern const View kCompareView{"compare", "View", "Compare A / B", &AppState::show_compare, false, nullptr,
    [](AppState& st, const ViewContext& c) { ShowCompareWindow(st, c.worker, c.worker_b, c.renderer); },
    [](const AppState& st, nlohmann::json& j) {
      j["compare_hover"] = {st.compare_hover.query, st.compare_hover.key};
      j["diff_max"] = st.diff_max;
      j["b_temperature"] = st.session_b.attention.normalizer.temperature;
      j["b_shown"] = st.b_shown && st.b_shown->result ? st.b_shown->generation : 0;
      j["b_posted"] = st.b_posted;
      j["compare_differs"] = st.compare_differs;
      j["compare_alignment"] = st.compare_alignment;
      j["b_intervention"] = st.b_shown && st.b_shown->result ? st.b_shown->result->intervention : "";
      j["b_text"] = st.b_shown && st.b_shown->result ? st.b_shown->result->session.text : "";
      j["b_model"] = st.model_b ? st.model_b->info().dir : "";
      // B's next tokens after its text (top 3 ids), for the tests
      std::vector<int> next;
      if (st.b_shown && st.b_shown->result && !st.b_shown->result->next_tokens.empty())
        for (std::size_t k = 0; k < std::min<std::size_t>(3, st.b_shown->result->next_tokens.back().size()); ++k)
          next.push_back(st.b_shown->result->next_tokens.back()[k].id);
      j["b_next_ids"] = next;
    }};

}  // namespace attnlab::app
