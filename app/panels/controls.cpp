// The text box with its token chips, and a control for every session option.
#include <imgui.h>
#include <imgui_stdlib.h>

#include <cstring>

#include "../ui.hpp"
#include "session.hpp"
#include "tokenize.hpp"

namespace attnlab::app {

namespace {

void Section(const char* title) {
  ImGui::Spacing();
  ImGui::TextDisabled("%s", title);
  ImGui::Separator();
}

void HelpMarker(const std::string& text) {
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 30);
    ImGui::TextUnformatted(text.c_str());
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

// A combo over the choices that session_options() lists for `path`.
template <class Enum>
bool EnumCombo(const char* label, const char* path, Enum& value) {
  const auto& spec = option(path);
  int current = static_cast<int>(value);
  bool changed = false;
  if (ImGui::BeginCombo(label, spec.choices.at(current).c_str())) {
    for (int i = 0; i < static_cast<int>(spec.choices.size()); ++i) {
      if (ImGui::Selectable(spec.choices[i].c_str(), i == current)) {
        value = static_cast<Enum>(i);
        changed = i != current;
      }
    }
    ImGui::EndCombo();
  }
  HelpMarker(spec.help);
  return changed;
}

bool IntOption(const char* label, const char* path, int& value, int step) {
  const auto& spec = option(path);
  const bool changed = ImGui::InputInt(label, &value, step, step * 4);
  HelpMarker(spec.help + " (" + std::to_string(int(spec.min)) + " to " + std::to_string(int(spec.max)) + ")");
  return changed;
}

}  // namespace

void ShowTextPanel(AppState& st, Worker& worker) {
  ImGui::TextUnformatted("Text");
  const ImVec2 box(-FLT_MIN, ImGui::GetTextLineHeight() * 5);
  const ImVec2 p = ImGui::GetCursorScreenPos();
  if (ImGui::InputTextMultiline("##text", &st.session.text, box)) st.posted = worker.post(st.session);
  const ImVec2 sz = ImGui::GetItemRectSize();
  st.text_box = ImVec4(p.x, p.y, sz.x, sz.y);

  // Tokens of the shown result as chips; hovering one tells its index and bytes.
  if (!st.shown || !st.shown->result) return;
  const auto& tokens = st.shown->result->tokens;
  ImGui::Text("%zu tokens", tokens.size());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
  const std::size_t shown_max = 400;  // chips past this are summarised, not drawn
  for (std::size_t i = 0; i < tokens.size() && i < shown_max; ++i) {
    const std::string label = token_label(tokens[i].text);
    const ImVec2 ts = ImGui::CalcTextSize(label.c_str());
    const ImVec2 chip(ts.x + 10, ts.y + 4);
    if (i > 0) {
      ImGui::SameLine(0, 4);
      if (ImGui::GetCursorScreenPos().x + chip.x > right) ImGui::NewLine();
    }
    const ImVec2 a = ImGui::GetCursorScreenPos();
    ImGui::PushID(static_cast<int>(i));
    ImGui::InvisibleButton("chip", chip);
    const bool hovered = ImGui::IsItemHovered();
    ImGui::PopID();
    dl->AddRectFilled(a, ImVec2(a.x + chip.x, a.y + chip.y),
                      ImGui::GetColorU32(hovered ? ImGuiCol_ButtonHovered : ImGuiCol_Button), 4.0f);
    dl->AddText(ImVec2(a.x + 5, a.y + 2), ImGui::GetColorU32(ImGuiCol_Text), label.c_str());
    if (hovered) {
      ImGui::SetTooltip("token %zu: \"%s\"\nbytes %zu-%zu", i, tokens[i].text.c_str(), tokens[i].begin,
                        tokens[i].end);
    }
  }
  if (tokens.size() > shown_max) ImGui::TextDisabled("... and %zu more", tokens.size() - shown_max);
}

void ShowControlsPanel(AppState& st, Worker& worker) {
  Session& s = st.session;
  bool changed = false;
  ImGui::PushItemWidth(-ImGui::GetFontSize() * 8);

  Section("Tokens and model");
  changed |= EnumCombo("tokenizer", "tokenizer.kind", s.tokenizer.kind);
  changed |= IntOption("d_model", "model.d_model", s.model.d_model, 8);
  changed |= IntOption("n_heads", "model.n_heads", s.model.n_heads, 1);
  if (s.n_heads_ok()) {
    ImGui::TextDisabled("d_head = %d / %d = %d", s.model.d_model, s.model.n_heads, s.d_head());
  }
  changed |= ImGui::InputScalar("seed", ImGuiDataType_U64, &s.model.seed);
  HelpMarker(option("model.seed").help);

  Section("Attention");
  changed |= EnumCombo("positional", "positional.kind", s.positional.kind);
  changed |= EnumCombo("score", "attention.score.kind", s.attention.score.kind);
  changed |= EnumCombo("normalizer", "attention.normalizer.kind", s.attention.normalizer.kind);
  float t = static_cast<float>(s.attention.normalizer.temperature);
  if (ImGui::SliderFloat("temperature", &t, 0.01f, 100.0f, "%.3g", ImGuiSliderFlags_Logarithmic)) {
    s.attention.normalizer.temperature = t;
    changed = true;
  }
  HelpMarker(option("attention.normalizer.temperature").help + " (ctrl+click to type a value)");
  changed |= EnumCombo("mask", "attention.mask.kind", s.attention.mask.kind);

  Section("Show");
  int q = static_cast<int>(st.quantity);
  ImGui::RadioButton("weights", &q, 0);
  ImGui::SameLine();
  ImGui::RadioButton("logits", &q, 1);
  st.quantity = static_cast<Quantity>(q);
  ImGui::PopItemWidth();

  if (changed) st.posted = worker.post(s);

  // Problems of the newest edit, beside the controls; the picture keeps the last good result.
  if (st.problems_current()) {
    ImGui::Spacing();
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
    ImGui::PushTextWrapPos(0);
    for (const auto& p : st.newest->problems) ImGui::Text("! %s", p.c_str());
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
    ImGui::TextDisabled("showing the last valid result");
  }
}

}  // namespace attnlab::app
