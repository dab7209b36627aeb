// The logit lens (nostalgebraist 2020): a model's residual stream after each layer, through the
// final norm and the unembedding - what the model would predict at each position if it stopped
// there. A layer x position grid of top-1 tokens, each cell coloured by its probability.
#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "present/colormap.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

ImU32 ViridisColour(float p) {
  const Colormap& map = colormap("viridis");
  const auto& c = map.rgb[std::min<std::size_t>(map.rgb.size() - 1, static_cast<std::size_t>(std::clamp(p, 0.0f, 1.0f) * 255 + 0.5f))];
  return IM_COL32(static_cast<int>(c[0] * 255), static_cast<int>(c[1] * 255), static_cast<int>(c[2] * 255), 255);
}

void ShowLensWindow(AppState& st) {
  if (!st.show_lens) return;
  // first placed inside the screen at any size (1024 x 768 included): right of the side panel
  const ImVec2 vs = ImGui::GetMainViewport()->Size;
  const float font = ImGui::GetFontSize(), x = std::min(font * 22, vs.x * 0.3f), y = font * 5;
  ImGui::SetNextWindowSize(ImVec2(std::min(font * 48, vs.x - x - 8), std::min(font * 20, vs.y - y - 8)), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(x, y), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "lens");
  if (!ImGui::Begin("Logit lens###lens", &st.show_lens)) {
    ImGui::End();
    return;
  }
  RecordWidget(st, "lens.window");
  const Snapshot* s = st.shown.get();
  if (!st.model) {
    ImGui::TextWrapped("The logit lens reads a pretrained model's residual stream: open a model folder (File > Open model folder).");
    ImGui::End();
    return;
  }
  if (!s || !s->result) {
    ImGui::TextDisabled("computing...");
    ImGui::End();
    return;
  }
  const Result& r = *s->result;
  if (DenseOnly(*s, "The logit lens")) {
    ImGui::End();
    return;
  }
  if (r.logit_lens.empty()) {
    ImGui::TextDisabled("%s", !r.next_tokens_note.empty() ? r.next_tokens_note.c_str() : "computing the logit lens...");
    ImGui::End();
    return;
  }
  ImGui::TextWrapped("Each layer's output through the final norm and the unembedding: the token the model would predict "
                     "after each position if it stopped at that layer. Colour: its probability (0 dark, 1 yellow); "
                     "outlined: the same as the model's own prediction (the last layer).");
  const int layers = static_cast<int>(r.logit_lens.size());
  const int n = static_cast<int>(r.logit_lens.front().size());
  const float cw = ImGui::CalcTextSize("MMMMMM").x, ch = ImGui::GetTextLineHeight() * 1.5f;
  const float label_w = ImGui::CalcTextSize("layer 00").x + ImGui::GetStyle().ItemSpacing.x;
  ImGui::BeginChild("lens.scroll", ImVec2(0, 0), false, ImGuiWindowFlags_HorizontalScrollbar);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  auto clip = [](const std::string& t, std::size_t max_cps) {  // at most max_cps code points, then an ellipsis
    std::size_t cps = 0, k = 0;
    for (; k < t.size(); ++k)
      if ((static_cast<unsigned char>(t[k]) & 0xC0) != 0x80 && cps++ == max_cps) break;
    return k < t.size() ? t.substr(0, k) + "\xE2\x80\xA6" : t;
  };
  // the input tokens across the top, layers down the side (layer 0 at the bottom: the stream rises)
  for (int i = 0; i < n && i < static_cast<int>(r.tokens.size()); ++i) {
    const std::string t = clip(r.tokens[i].text, 5);
    dl->AddText(ImVec2(o.x + label_w + i * cw + 2, o.y), dim, t.c_str());
  }
  const float top = o.y + ch;
  int hovered_l = -1, hovered_i = -1;
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  for (int l = 0; l < layers; ++l) {
    const float y = top + (layers - 1 - l) * ch;
    char name[16];
    std::snprintf(name, sizeof name, "layer %d", l);
    dl->AddText(ImVec2(o.x, y + (ch - ImGui::GetTextLineHeight()) / 2), dim, name);
    for (int i = 0; i < n && i < static_cast<int>(r.logit_lens[l].size()); ++i) {
      const Result::NextToken& t = r.logit_lens[l][i];
      const ImVec2 a(o.x + label_w + i * cw, y), b(a.x + cw - 1, a.y + ch - 1);
      const ImU32 fill = ViridisColour(t.p);
      dl->AddRectFilled(a, b, fill);
      const bool final_match = i < static_cast<int>(r.next_tokens.size()) && !r.next_tokens[i].empty() &&
                               r.next_tokens[i].front().id == t.id;
      if (final_match) dl->AddRect(a, b, IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
      const ImVec4 f = ImGui::ColorConvertU32ToFloat4(fill);
      const bool light = 0.2126f * f.x + 0.7152f * f.y + 0.0722f * f.z > 0.55f;
      const std::string label = clip(Readable(t.token), 5);
      dl->PushClipRect(a, b, true);
      dl->AddText(ImVec2(a.x + 2, a.y + (ch - ImGui::GetTextLineHeight()) / 2), light ? IM_COL32(0, 0, 0, 255) : IM_COL32(255, 255, 255, 255),
                  label.c_str());
      dl->PopClipRect();
      if (mouse.x >= a.x && mouse.x < b.x && mouse.y >= a.y && mouse.y < b.y && ImGui::IsWindowHovered()) hovered_l = l, hovered_i = i;
    }
  }
  ImGui::Dummy(ImVec2(label_w + n * cw, ch * (layers + 1)));
  RecordWidget(st, "lens.grid");
  st.lens_grid = {o.x + label_w, top, n * cw, layers * ch};
  st.lens_hover = {hovered_l, hovered_i};
  if (hovered_l >= 0) {
    const Result::NextToken& t = r.logit_lens[hovered_l][hovered_i];
    ImGui::BeginTooltip();
    ImGui::Text("layer %d, after token %d \"%s\"", hovered_l, hovered_i,
                hovered_i < static_cast<int>(r.tokens.size()) ? r.tokens[hovered_i].text.c_str() : "");
    ImGui::Text("top token \"%s\" (id %d), p = %.3f", Readable(t.token).c_str(), t.id, t.p);
    if (hovered_i < static_cast<int>(r.next_tokens.size()) && !r.next_tokens[hovered_i].empty())
      ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(text), "the model's prediction there: \"%s\"",
                         Readable(r.next_tokens[hovered_i].front().token).c_str());
    ImGui::EndTooltip();
  }
  ImGui::EndChild();
  ImGui::End();
}

}  // namespace

extern const View kLensView{"lens", "View", "Logit lens", &AppState::show_lens, false, nullptr,
    [](AppState& st, const ViewContext&) { ShowLensWindow(st); },
    [](const AppState& st, nlohmann::json& j) {
      nlohmann::json ids = nlohmann::json::array(), ps = nlohmann::json::array();
      if (st.show_lens && st.shown && st.shown->result)
        for (const auto& row : st.shown->result->logit_lens) {
          nlohmann::json ri = nlohmann::json::array(), rp = nlohmann::json::array();
          for (const auto& t : row) ri.push_back(t.id), rp.push_back(t.p);
          ids.push_back(ri), ps.push_back(rp);
        }
      j["lens"] = {{"ids", ids}, {"p", ps}, {"grid", st.lens_grid}, {"hover", st.lens_hover}};
    }};

}  // namespace attnlab::app
