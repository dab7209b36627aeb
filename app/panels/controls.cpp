// The text box with its token chips, and a control for every session option.
#include <imgui.h>
#include <imgui_stdlib.h>

#include <thread>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "background.hpp"
#include "../ui.hpp"
#include "attention/expression.hpp"
#include "core/utf8.hpp"
#include "views/view.hpp"
#include "session/session.hpp"
#include "tokenizers/tokenize.hpp"

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

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Short label for a control: the last part of its path ("attention.mask.window" -> "window").
std::string ShortLabel(const OptionSpec& o) {
  if (o.path == "attention.sink.enabled") return "learned sink";
  if (o.path == "attention.differential.enabled") return "differential";
  if (o.path == "attention.sink.logit") return "sink logit";
  std::string last = o.path.substr(o.path.rfind('.') + 1);
  if (last == "kind") last = o.path.substr(0, o.path.rfind('.')).substr(o.path.substr(0, o.path.rfind('.')).rfind('.') + 1);
  return last;
}

// An expression field (attention.mask.expression, attention.score_mod.expression): a preset
// menu, the formula, and - when it does not compile - a red mark under the character the problem
// starts at, with the message. Returns the new expression as JSON ("" when unchanged); a preset
// also sets the parameters.
std::string ExpressionWidget(AppState& st, const OptionSpec& o, const std::string& current_text) {
  const bool mask = o.path == "attention.mask.expression";
  const ExpressionRole role = mask ? ExpressionRole::mask : ExpressionRole::score_mod;
  std::string next;
  const std::string preset_id = "preset##" + o.path;
  if (ImGui::BeginCombo(preset_id.c_str(), "choose a preset...", ImGuiComboFlags_HeightLargest)) {
    const bool placed = !ImGui::IsWindowAppearing();
    for (const ExpressionPreset& p : expression_presets()) {
      if (p.role != role) continue;
      if (ImGui::Selectable(p.name)) {
        next = nlohmann::json(std::string(p.expression)).dump();
        option_set(st.session, mask ? "attention.mask.parameters" : "attention.score_mod.parameters", p.parameters);
      }
      if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s\n%s", p.expression, p.description);
      if (placed) RecordWidget(st, o.path + ".preset=" + p.name);
    }
    ImGui::EndCombo();
  }
  RecordWidget(st, o.path + ".preset");
  std::string text = current_text;
  // the whole width of the panel: formulas are longer than numbers
  ImGui::TextUnformatted(mask ? "mask expression" : "score_mod (empty: none)");
  HelpMarker(o.help);
  const std::string label = "##" + o.path;
  const ImVec2 at = ImGui::GetCursorScreenPos();
  ImGui::SetNextItemWidth(-FLT_MIN);
  if (ImGui::InputText(label.c_str(), &text))
    next = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  RecordWidget(st, o.path);
  // the problem, compiled here (muparser parses a 4 KB formula in well under a millisecond):
  // the session's validation says the same in words, this says where
  st.expression_marks.erase(o.path);
  if (!text.empty() || mask) {
    ExpressionProblem problem;
    const auto& params = mask ? st.session.attention.mask.parameters : st.session.attention.score_mod.parameters;
    if (text.size() <= kMaxExpressionBytes && !utf8_first_invalid(text) &&
        !CellExpression::compile(text, role, params, {}, problem)) {
      const ImGuiStyle& style = ImGui::GetStyle();
      const std::string ui = to_ui(text);
      // the byte the character starts at, in the text as ImGui shows it
      std::size_t byte = 0;
      for (int c = 0; c < problem.position && byte < ui.size(); ++c) {
        ++byte;
        while (byte < ui.size() && (static_cast<unsigned char>(ui[byte]) & 0xC0) == 0x80) ++byte;
      }
      const float x = at.x + style.FramePadding.x + ImGui::CalcTextSize(ui.c_str(), ui.c_str() + byte).x;
      const float w = problem.position >= 0 && byte < ui.size()
                          ? std::max(ImGui::CalcTextSize(ui.c_str() + byte, ui.c_str() + byte + 1).x, 4.0f)
                          : 6.0f;
      const float y = at.y + ImGui::GetFrameHeight() - 2;
      const ImU32 red = IM_COL32(255, 80, 70, 255);
      if (problem.position >= 0) {  // under the character: a bar and a caret (the field scrolls no further than 4 KB)
        ImDrawList* dl = ImGui::GetWindowDrawList();
        dl->AddRectFilled(ImVec2(x, y - 1), ImVec2(x + w, y + 2), red);
        dl->AddTriangleFilled(ImVec2(x + w / 2, y), ImVec2(x + w / 2 - 5, y + 7), ImVec2(x + w / 2 + 5, y + 7), red);
      }
      ImGui::Dummy(ImVec2(0, 6));
      ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
      ImGui::PushTextWrapPos(0);
      ImGui::TextUnformatted(problem.message.c_str());
      ImGui::PopTextWrapPos();
      ImGui::PopStyleColor();
      st.expression_marks[o.path] = {problem.message, problem.position, x + w / 2};
    }
  }
  return next;
}

// A parameters field: a number per name (dragged or typed), a button to remove it, and a box to
// add one. Returns the new object as JSON ("" when unchanged).
std::string ParametersWidget(AppState& st, const OptionSpec& o, const nlohmann::json& value) {
  nlohmann::json out = value;
  bool changed = false;
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string key = it.key();
    double v = it.value().get<double>();
    ImGui::PushID(key.c_str());
    // a drag whose speed follows the value: windows of 2 and caps of 50 both move in useful steps
    const float speed = float(std::max(0.05, std::abs(v) * 0.02));
    if (ImGui::DragScalar(key.c_str(), ImGuiDataType_Double, &v, speed, nullptr, nullptr, "%.4g")) {
      if (std::isfinite(v)) out[key] = v, changed = true;
    }
    RecordWidget(st, o.path + "." + key);
    ImGui::SameLine();
    if (ImGui::SmallButton("x")) out.erase(key), changed = true;
    ImGui::PopID();
  }
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
  const std::string add_id = "##add" + o.path;
  const bool enter = ImGui::InputTextWithHint(add_id.c_str(), "name", &st.new_parameter,
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  RecordWidget(st, o.path + ".new");
  ImGui::SameLine();
  const std::string button = "add parameter##" + o.path;
  if ((ImGui::SmallButton(button.c_str()) || enter) && !Trim(st.new_parameter).empty()) {
    out[Trim(st.new_parameter)] = 1.0;
    st.new_parameter.clear();
    changed = true;
  }
  return changed ? out.dump() : "";
}

// One widget for option `o`, by its type, editing the session through the generic accessors.
// Returns true when the session changed. Records the widget's rect under its path (and, for an
// open combo, each choice under "path=choice") for the GUI tests.
bool OptionWidget(AppState& st, const OptionSpec& o) {
  Session& s = st.session;
  const std::string label = ShortLabel(o) + "##" + o.path;
  const std::string current = option_get(s, o.path);
  const nlohmann::json value = nlohmann::json::parse(current);
  std::string next;  // new value as JSON, when edited
  if (o.type == "enum") {
    const std::string cur = value.get<std::string>();
    if (ImGui::BeginCombo(label.c_str(), cur.c_str(), ImGuiComboFlags_HeightLargest)) {
      // On its first frame the popup is laid out hidden, before it is moved to fit the screen
      // (above the combo near the bottom): its items are recorded from the second frame on.
      const bool placed = !ImGui::IsWindowAppearing();
      for (const auto& c : o.choices) {
        if (ImGui::Selectable(c.c_str(), c == cur)) next = nlohmann::json(c).dump();
        if (placed) RecordWidget(st, o.path + "=" + c);
      }
      ImGui::EndCombo();
    }
  } else if (o.type == "int") {
    int v = value.get<int>();
    const int step = o.max > 1000 ? 1 : 1;
    if (ImGui::InputInt(label.c_str(), &v, step, step * 4)) next = std::to_string(v);
  } else if (o.type == "number") {
    if (o.path == "attention.normalizer.temperature") {
      float t = value.get<float>();
      if (ImGui::SliderFloat(label.c_str(), &t, float(o.min), float(o.max), "%.3g", ImGuiSliderFlags_Logarithmic))
        next = nlohmann::json(double(t)).dump();
    } else if (o.max <= 1) {
      float t = value.get<float>();
      if (ImGui::SliderFloat(label.c_str(), &t, float(o.min), float(o.max), "%.2f")) next = nlohmann::json(double(t)).dump();
    } else {
      double d = value.get<double>();
      if (ImGui::InputDouble(label.c_str(), &d, 0, 0, "%.6g")) next = nlohmann::json(d).dump();
    }
  } else if (o.type == "uint64") {
    std::uint64_t v = value.get<std::uint64_t>();
    if (ImGui::InputScalar(label.c_str(), ImGuiDataType_U64, &v)) next = std::to_string(v);
  } else if (o.type == "bool") {
    bool b = value.get<bool>();
    if (ImGui::Checkbox(label.c_str(), &b)) next = b ? "true" : "false";
  } else if (o.type == "string" && (o.path == "attention.mask.expression" || o.path == "attention.score_mod.expression")) {
    next = ExpressionWidget(st, o, value.get<std::string>());
    if (next.empty()) return false;
    return option_set(s, o.path, next).empty();  // kept while it does not compile: the mark says where
  } else if (o.type == "parameters") {
    next = ParametersWidget(st, o, value);
    if (next.empty()) return false;
  } else if (o.type == "string") {
    std::string text = value.get<std::string>();
    const bool multiline = o.path == "context.text";
    if (multiline ? ImGui::InputTextMultiline(label.c_str(), &text, ImVec2(0, ImGui::GetTextLineHeight() * 3))
                  : ImGui::InputText(label.c_str(), &text))
      next = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else if (o.type == "int_list") {
    // "0, 11": typed as comma-separated positions; what does not parse is ignored
    std::string text;
    for (const auto& x : value) text += (text.empty() ? "" : ", ") + std::to_string(x.get<int>());
    if (ImGui::InputText(label.c_str(), &text)) {
      nlohmann::json list = nlohmann::json::array();
      std::size_t at = 0;
      while (at <= text.size()) {
        const std::size_t comma = std::min(text.find(',', at), text.size());
        const std::string part = Trim(text.substr(at, comma - at));
        char* end = nullptr;
        const long v = std::strtol(part.c_str(), &end, 10);
        if (!part.empty() && end && *end == 0) list.push_back(v);
        at = comma + 1;
      }
      next = list.dump();
    }
  } else if (o.type == "cell_list") {
    ImGui::Text("%zu painted cells", value.size());
    ImGui::SameLine();
    if (ImGui::SmallButton("clear##cells")) next = "[]";
    ImGui::SameLine();
    if (ImGui::SmallButton("paint...")) st.show_mask = true;
  }
  RecordWidget(st, o.path);
  HelpMarker(o.help + (o.type == "int" || o.type == "number"
                           ? " (" + Trim(nlohmann::json(o.min).dump()) + " to " + Trim(nlohmann::json(o.max).dump()) + ")"
                           : ""));
  if (next.empty() || next == current) return false;
  return option_set(s, o.path, next).empty();
}

// The problems of the newest edit that concern option `path`, in red right under its control.
void ProblemsFor(AppState& st, const std::string& path) {
  if (!st.problems_current()) return;
  for (const auto& p : st.newest->problems) {
    const auto paths = problem_options(p);
    if (std::find(paths.begin(), paths.end(), path) == paths.end()) continue;
    if (st.expression_marks.count(path)) continue;  // said, and pointed at, by the expression field
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(("! " + p).c_str());
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
    RecordWidget(st, "problem." + path);
  }
}

// Every relevant option whose path starts with one of `prefixes`, in table order.
bool OptionSection(AppState& st, const char* title, std::initializer_list<const char*> prefixes) {
  Section(title);
  bool changed = false;
  for (const auto& o : session_options()) {
    if (o.path == "text") continue;
    bool match = false;
    for (const char* p : prefixes) match |= o.path.rfind(p, 0) == 0;
    if (!match || !option_relevant(st.session, o.path)) continue;
    ImGui::PushID(o.path.c_str());
    changed |= OptionWidget(st, o);
    ProblemsFor(st, o.path);
    ImGui::PopID();
    if (o.path == "model.n_heads" && st.session.n_heads_ok())
      ImGui::TextDisabled("d_head = %d / %d = %d", st.session.model.d_model, st.session.model.n_heads, st.session.d_head());
  }
  return changed;
}

}  // namespace

void ShowTextPanel(AppState& st, Worker& worker) {
  ImGui::TextUnformatted("Text");
  const ImVec2 box(-FLT_MIN, ImGui::GetTextLineHeight() * 5);
  const ImVec2 p = ImGui::GetCursorScreenPos();
  // edited as shown to ImGui (code points above U+FFFF as stand-ins, render/window_fonts.hpp), stored as typed
  std::string ui = to_ui(st.session.text);
  if (st.text_needed != st.session.text) st.fonts.need(ui), st.text_needed = st.session.text;
  if (ImGui::InputTextMultiline("##text", &ui, box)) {
    st.session.text = from_ui(ui);
    Edited(st, worker, true);
  }
  const ImVec2 sz = ImGui::GetItemRectSize();
  st.text_box = ImVec4(p.x, p.y, sz.x, sz.y);
  ProblemsFor(st, "text");

  // Tokens of the shown result as chips; hovering one tells its index and bytes.
  if (!st.shown || !st.shown->result) return;
  const auto& tokens = st.shown->result->tokens;
  ImGui::Text("%zu tokens", tokens.size());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
  const std::size_t shown_max = 400;  // chips past this are summarised, not drawn
  for (std::size_t i = 0; i < tokens.size() && i < shown_max; ++i) {
    const std::string label = i < st.labels.size() ? st.labels[i] : to_ui(token_label(tokens[i].text));
    const ImVec2 ts = ImGui::CalcTextSize(label.c_str());
    const ImVec2 chip(ts.x + 10, ts.y + 4);
    if (i > 0) {
      ImGui::SameLine(0, 4);
      if (ImGui::GetCursorScreenPos().x + chip.x > right) ImGui::NewLine();
    }
    const ImVec2 a = ImGui::GetCursorScreenPos();
    ImGui::PushID(static_cast<int>(i));
    const bool clicked = ImGui::InvisibleButton("chip", chip);
    const bool hovered = ImGui::IsItemHovered();
    ImGui::PopID();
    if (i < 8) RecordWidget(st, "chip." + std::to_string(i));
    if (clicked) {  // span navigation: the token's neighbourhood in the head opened large
      const int n = static_cast<int>(tokens.size()), at = static_cast<int>(i);
      const int lo = std::max(0, at - 16), hi = std::min(n, lo + 32);
      if (st.detail_head < 0) st.detail_head = 0;
      st.span_rows = std::to_string(lo) + ":" + std::to_string(hi);
      st.span_cols.clear();
      st.span_pending = true;
    }
    dl->AddRectFilled(a, ImVec2(a.x + chip.x, a.y + chip.y),
                      ImGui::GetColorU32(hovered ? ImGuiCol_ButtonHovered : ImGuiCol_Button), 4.0f);
    dl->AddText(ImVec2(a.x + 5, a.y + 2), ImGui::GetColorU32(ImGuiCol_Text), label.c_str());
    if (hovered) {
      ImGui::SetTooltip("token %zu: \"%s\"\nbytes %zu-%zu\nclick: its rows and columns in the head opened large", i,
                        to_ui(Clip(tokens[i].text, 2000)).c_str(), tokens[i].begin, tokens[i].end);
    }
  }
  if (tokens.size() > shown_max) ImGui::TextDisabled("... and %zu more", tokens.size() - shown_max);
}

// A token's text as shown: a piece of a multi-byte character (byte-level BPE splits them) as
// its bytes in hex, never a replacement character.
std::string Readable(const std::string& t) {
  if (!utf8_first_invalid(t)) return t;
  std::string out;
  char b[8];
  for (unsigned char c : t) std::snprintf(b, sizeof b, "<%02X>", c), out += b;
  return out;
}

// What the model predicts after one position: its top tokens with their probabilities as bars.
void ShowNextTokens(AppState& st) {
  if (!st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  Section("Next token");
  if (r.next_tokens.empty()) {
    ImGui::TextDisabled("%s", r.next_tokens_note.empty() ? "no prediction" : r.next_tokens_note.c_str());
    return;
  }
  const int n = static_cast<int>(r.next_tokens.size());
  int pos = st.next_pos < 0 || st.next_pos >= n ? n - 1 : st.next_pos;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
  if (ImGui::SliderInt("after token", &pos, 0, n - 1)) st.next_pos = pos == n - 1 ? -1 : pos;
  RecordWidget(st, "model.next_pos");
  const std::string after = Readable(r.tokens[pos].text);
  ImGui::TextDisabled("after \"%s\" (position %d)%s", after.c_str(), pos, r.intervention.empty() ? "" : ", intervened");
  const std::vector<Result::NextToken>* list = NextTokensAt(st, pos);
  for (const auto& t : list ? *list : std::vector<Result::NextToken>{}) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f %%", 100.0 * t.p);
    ImGui::ProgressBar(t.p, ImVec2(ImGui::GetFontSize() * 5, 0), pct);
    ImGui::SameLine();
    ImGui::Text("\"%s\"", Readable(t.token).c_str());
  }
  // StreamingLLM's observation, shown: the same text with the first tokens masked as keys, as B
  if (st.model && ImGui::SmallButton("mask the sink: compare in A / B")) {
    st.session_b = st.session;
    st.model_b.reset();
    st.b_uses_model = true;
    st.b_intervention = {};
    st.b_ablate_text.clear(), st.b_ablate_error.clear();
    SetSinkMasked(st.b_intervention, *st.model, true);
    st.show_compare = true;
    PostB(st, st.session_b);
  }
  RecordWidget(st, "model.mask_sink");
}

struct GenerateJob {
  std::shared_ptr<const HfModel> model;
  std::string text;
  GenerateOptions options;
  std::atomic<float> progress{0};
  CancelFlag cancel{false};
  std::atomic<bool> done{false};
  bool ok = false;  // read once done
  std::string error;
  Generation out;
  std::thread thread;
  ~GenerateJob() {
    cancel = true;
    if (thread.joinable()) thread.join();
  }
};

// Generate: N tokens appended to the text (greedy or sampled), on their own thread with progress
// and Cancel; the text then runs through the model as after any edit (Ctrl+Z takes it back).
void ShowGenerate(AppState& st, Worker& worker) {
  if (st.gen_job && st.gen_job->done.load(std::memory_order_acquire)) {
    GenerateJob& j = *st.gen_job;
    if (j.ok) {
      // byte tokens that make no whole character (a sample cut mid-character, a small model's
      // noise) become U+FFFD: the text box holds valid UTF-8, and the model runs on it
      st.session.text = utf8_sanitize(j.out.text);
      st.gen_done = "appended " + std::to_string(j.out.generated.size()) + " tokens" +
                    (j.out.note.empty() ? "" : " (" + j.out.note + ")") +
                    (st.session.text == j.out.text ? "" : "; bytes that are no whole character shown as U+FFFD");
      st.gen_error.clear();
      Edited(st, worker, true);
    } else {
      st.gen_error = j.error.empty() ? "cancelled" : j.error;
    }
    st.gen_job.reset();
  }
  Section("Generate");
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
  ImGui::InputInt("tokens##gen", &st.gen_tokens);
  st.gen_tokens = std::clamp(st.gen_tokens, 1, 1000);
  ImGui::Checkbox("sample##gen", &st.gen_sample);
  if (st.gen_sample) {
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    ImGui::SliderFloat("temperature##gen", &st.gen_temperature, 0.05f, 2.0f, "%.2f");
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    ImGui::SliderFloat("top-p##gen", &st.gen_top_p, 0.05f, 1.0f, "%.2f");
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
    ImGui::InputInt("seed##gen", &st.gen_seed);
    st.gen_seed = std::max(0, st.gen_seed);
  }
  if (st.gen_job) {
    ImGui::ProgressBar(st.gen_job->progress.load(), ImVec2(ImGui::GetFontSize() * 8, 0));
    ImGui::SameLine();
    if (ImGui::Button("Cancel##gen")) st.gen_job->cancel = true;
  } else if (ImGui::Button("Generate##gen")) {
    auto job = std::make_shared<GenerateJob>();
    job->model = st.model;
    job->text = st.session.text;
    job->options.tokens = st.gen_tokens;
    job->options.greedy = !st.gen_sample;
    job->options.sample.temperature = st.gen_temperature;
    job->options.sample.top_p = st.gen_top_p;
    job->options.sample.seed = static_cast<std::uint64_t>(st.gen_seed);
    GenerateJob* j = job.get();
    job->thread = std::thread([j] {
      run_below_the_ui();
      j->ok = j->model->generate(j->text, j->options, j->out, j->error, &j->progress, &j->cancel);
      j->done.store(true, std::memory_order_release);
    });
    st.gen_job = std::move(job);
  }
  RecordWidget(st, "model.generate");
  if (!st.gen_error.empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", st.gen_error.c_str());
  else if (!st.gen_done.empty()) ImGui::TextDisabled("%s", st.gen_done.c_str());
}

void ShowControlsPanel(AppState& st, Worker& worker) {
  bool changed = false;
  ImGui::PushItemWidth(-ImGui::GetFontSize() * 8);
  if (st.model) {  // a pretrained model: its own weights, positions and mask
    const ModelInfo& in = st.model->info();
    Section("Model");
    ImGui::TextWrapped("%s", in.dir.c_str());
    ImGui::Text("%s: %d layers x %d heads, d_model %d, %s", in.model_type.c_str(), in.n_layers, in.n_heads, in.d_model,
                in.dtype.c_str());
    const std::string about = describe_architecture(in);
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("%s", about.c_str());  // wrapped: a narrow side panel cut Mistral's description
    ImGui::PopStyleColor();
    if (ImGui::Button("Close model")) CloseModel(st, worker);
    RecordWidget(st, "model.close");
    // an intervention: the session's mask and temperature applied to the model's heads
    Section("Intervention");
    bool iv_changed = ImGui::Checkbox("intervene on the model", &st.intervene);
    RecordWidget(st, "model.intervene");
    if (st.intervene) {
      ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
      iv_changed |= ImGui::SliderInt("layer (-1: all)", &st.intervene_layer, -1, in.n_layers - 1);
      iv_changed |= ImGui::Checkbox("replace the mask", &st.intervene_mask);
      RecordWidget(st, "model.intervene_mask");
      changed |= OptionSection(st, "Mask and temperature", {"attention.mask.", "attention.normalizer.temperature"});
    }
    // ablation: heads whose output is replaced (zeros, or the mean over positions)
    Section("Ablate heads");
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    if (ImGui::InputTextWithHint("heads##ablate", "layer.head, e.g. 0.1, 1.0", &st.ablate_text)) {
      std::string spec;
      for (char c : st.ablate_text)
        if (c != ' ') spec += c;
      std::vector<std::pair<int, int>> heads;
      if (spec.empty() || parse_ablate(spec, in.n_layers, in.n_heads, heads, st.ablate_error)) {
        st.ablate_error.clear();
        if (heads != st.ablate) st.ablate = heads, iv_changed = true;
      }
    }
    RecordWidget(st, "model.ablate");
    iv_changed |= ImGui::RadioButton("zero", &st.ablate_mode, 0);
    RecordWidget(st, "model.ablate_zero");
    ImGui::SameLine();
    iv_changed |= ImGui::RadioButton("mean over positions", &st.ablate_mode, 1);
    RecordWidget(st, "model.ablate_mean");
    if (!st.ablate_error.empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", st.ablate_error.c_str());
    if (iv_changed || changed) {
      Intervention iv;
      iv.enabled = st.intervene;
      iv.layer = st.intervene_layer;
      iv.temperature = st.session.attention.normalizer.temperature;
      iv.replace_mask = st.intervene_mask;
      iv.mask = st.session.attention.mask;
      iv.ablate = st.ablate;
      iv.ablate_mode = st.ablate_mode == 1 ? AblateMode::mean : AblateMode::zero;
      worker.set_intervention(iv);
      st.intervention = iv;
      if (iv_changed) Repost(st, worker);
    }
    ShowNextTokens(st);
    if (st.model->info().model_type != "bert") ShowGenerate(st, worker);
  } else {
    changed |= OptionSection(st, "Tokens and model", {"tokenizer.", "model."});
    changed |= OptionSection(st, "Positional encoding", {"positional."});
    changed |= OptionSection(st, "Scores", {"attention.score.", "attention.normalizer.", "attention.sink.", "attention.differential.",
                                                   "attention.dropout"});
    changed |= OptionSection(st, "Mask", {"attention.mask."});
    changed |= OptionSection(st, "Score modifier", {"attention.score_mod."});
    changed |= OptionSection(st, "Kernel", {"attention.kernel."});
    changed |= OptionSection(st, "Cross-attention", {"context."});
    changed |= OptionSection(st, "Analysis", {"analysis."});
    if (st.shown && st.shown->mask_cells >= 0)
      ImGui::TextDisabled("density %.3f, %lld score computations", st.shown->mask_density, st.shown->mask_cells);
  }

  Section("Show");
  int q = static_cast<int>(st.quantity);
  ImGui::RadioButton("weights", &q, 0);
  RecordWidget(st, "show.weights");
  ImGui::SameLine();
  ImGui::RadioButton("logits", &q, 1);
  RecordWidget(st, "show.logits");
  st.quantity = static_cast<Quantity>(q);
  ShowDisplaySection(st, worker);
  ImGui::PopItemWidth();

  if (changed) Edited(st, worker);

  // Problems are shown under the controls they concern and over the heads (ShowProblemBanner).
  ImGui::Dummy(ImVec2(0, ImGui::GetFontSize() * 2));  // the last control scrolls clear of the edge
}

}  // namespace attnlab::app
