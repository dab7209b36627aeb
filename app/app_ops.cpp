// Session edits and history, files (open, save, recent, the in-app browser), preferences in the
// XDG config directory, lessons, export and the clipboard, and the help window.
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_internal.h>  // BringWindowToDisplayFront: the lesson strip is never covered
#include <imgui_stdlib.h>

#include "background.hpp"
#include "session/cost.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "present/export.hpp"
#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/utf8.hpp"
#include "analysis/steps.hpp"
#include "present/figure_views.hpp"
#include "tokenizers/tokenize.hpp"
#include "core/strings.hpp"
#include "ui.hpp"
#include "views/view.hpp"

namespace fs = std::filesystem;

namespace attnlab::app {

namespace {

constexpr std::size_t kMaxUndo = 200;
// and at most this many bytes of session text across the history (200 copies of a 1 MB text
// would hold 200 MB: the soak's memory growth)
constexpr std::size_t kMaxUndoBytes = 32u << 20;

std::size_t HistoryBytes(const std::vector<Session>& v) {
  std::size_t n = 0;
  for (const auto& s : v) n += s.text.size() + s.context.text.size() + s.attention.mask.cells.size() * 8;
  return n;
}
constexpr std::size_t kMaxRecent = 8;

void Post(AppState& st, Worker& worker) {
  st.posted = worker.post(st.session, st.display);
  st.edit_posted_at = std::chrono::steady_clock::now(), st.edit_generation = st.posted;
}

void Remember(AppState& st, const std::string& path) {
  std::error_code ec;
  const std::string abs = fs::absolute(path, ec).lexically_normal().string();
  st.recent.erase(std::remove(st.recent.begin(), st.recent.end(), abs), st.recent.end());
  st.recent.insert(st.recent.begin(), abs);
  if (st.recent.size() > kMaxRecent) st.recent.resize(kMaxRecent);
}

}  // namespace

void Edited(AppState& st, Worker& worker, bool text_edit) {
  if (st.edit_b && st.worker_b) {  // the side panel is editing compare's session B (swapped in)
    PostB(st, st.session);
    return;
  }
  // typing within a second of the last keystroke extends the same history entry
  const double now = ImGui::GetTime();
  const bool same_entry = text_edit && now - st.last_text_edit < 1.0 && !st.undo.empty();
  st.last_text_edit = text_edit ? now : -10;
  if (!same_entry && !(st.committed == st.session)) {
    st.undo.push_back(st.committed);
    if (st.undo.size() > kMaxUndo) st.undo.erase(st.undo.begin());
    while (st.undo.size() > 1 && HistoryBytes(st.undo) > kMaxUndoBytes) st.undo.erase(st.undo.begin());
  }
  st.committed = st.session;
  st.redo.clear();
  Post(st, worker);
}

const std::vector<Result::NextToken>* NextTokensAt(const AppState& st, int pos) {
  if (!st.shown || !st.shown->result) return nullptr;
  const Result& r = *st.shown->result;
  if (pos < 0 || pos >= static_cast<int>(r.next_tokens.size())) return nullptr;
  if (!r.next_tokens[pos].empty() || r.final_hidden.rows() != static_cast<Eigen::Index>(r.next_tokens.size()) ||
      !st.shown->model)
    return &r.next_tokens[pos];
  if (st.next_of.lock() != st.shown->result) st.next_asked.clear(), st.next_of = st.shown->result;
  auto it = st.next_asked.find(pos);
  if (it == st.next_asked.end()) {
    std::vector<std::vector<Result::NextToken>> one;
    std::string note;
    const int k = static_cast<int>(r.next_tokens.back().size());
    st.shown->model->next_tokens(r.final_hidden.middleRows(pos, 1), std::max(1, k), one, note, nullptr);
    it = st.next_asked.emplace(pos, one.empty() ? std::vector<Result::NextToken>{} : std::move(one.front())).first;
  }
  return &it->second;
}

void Repost(AppState& st, Worker& worker) {
  Post(st, worker);
  if (st.show_compare && st.worker_b) PostB(st, st.session_b);
}

void PostB(AppState& st, const Session& b) {
  if (!st.worker_b) return;
  const bool model = st.b_uses_model && (st.model_b || st.model);
  st.worker_b->set_model(model ? (st.model_b ? st.model_b : st.model) : nullptr);
  st.worker_b->set_intervention(model ? st.b_intervention : Intervention{});
  // B's picture as A's (colours, range, scale, pooling), without A's open views or pipeline head
  DisplayOptions d;
  d.colormap = st.display.colormap, d.range = st.display.range, d.log = st.display.log;
  d.pool_mean = st.display.pool_mean;
  st.b_posted = st.worker_b->post(b, d);
}

void Undo(AppState& st, Worker& worker) {
  if (st.undo.empty()) return;
  st.redo.push_back(st.session);
  st.session = st.undo.back();
  st.undo.pop_back();
  st.committed = st.session;
  st.last_text_edit = -10;
  Post(st, worker);
}

void Redo(AppState& st, Worker& worker) {
  if (st.redo.empty()) return;
  st.undo.push_back(st.session);
  st.session = st.redo.back();
  st.redo.pop_back();
  st.committed = st.session;
  st.last_text_edit = -10;
  Post(st, worker);
}

bool OpenSessionFile(AppState& st, Worker& worker, const std::string& path) {
  std::string text, err;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, err, "a session file")) {
    st.status = "could not open " + utf8_sanitize(err);
    st.status_error = true;
    return false;
  }
  auto p = parse_session(text);
  if (!p.session) {  // the current session stays as it was
    st.status = "could not open " + utf8_sanitize(path) + ": " + join(p.problems);
    st.status_error = true;
    return false;
  }
  st.undo.push_back(st.session);  // opening is an edit too: Ctrl+Z goes back
  st.redo.clear();
  st.session = *p.session;
  st.committed = st.opened = st.session;
  st.session_path = path;
  st.status = "opened " + path;
  st.status_error = false;
  Remember(st, path);
  Post(st, worker);
  SavePrefs(st);
  return true;
}

bool SaveSessionFile(AppState& st, const std::string& path) {
  std::string err;
  if (!write_file_atomic(path, to_json(st.session) + "\n", err)) {
    st.status = "not saved: " + err;
    st.status_error = true;
    return false;
  }
  st.session_path = path;
  st.opened = st.session;
  st.status = "saved " + path;
  st.status_error = false;
  Remember(st, path);
  SavePrefs(st);
  return true;
}

// --- preferences: $XDG_CONFIG_HOME/attnlab/prefs.json ---------------------------------------

void LoadPrefs(AppState& st) {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) st.config_dir = std::string(x) + "/attnlab";
  else if (const char* h = std::getenv("HOME"); h && *h) st.config_dir = std::string(h) + "/.config/attnlab";
  if (st.config_dir.empty()) return;
  const std::string path = st.config_dir + "/prefs.json";
  if (!fs::exists(fs::symlink_status(path))) return;
  std::string text, err;
  nlohmann::json j;
  // every field checked on its own: one that is wrong is dropped, the rest are kept
  if (!read_file_limited(path, kMaxConfigFileBytes, text, err, "a configuration file") || !parse_json_input(text, j, err) ||
      !j.is_object()) {
    st.status = "ignored unreadable preferences in " + utf8_sanitize(path) + (err.empty() ? "" : ": " + utf8_sanitize(err));
    st.status_error = true;
    return;
  }
  std::vector<std::string> bad;
  double font = 1.0;
  std::string colormap_name = st.display.colormap, range = "global", last;
  if (!json_get(j, "font_scale", font, 1.0, 3.0, err, "prefs.json")) bad.push_back("font_scale");
  if (!json_get(j, "light", st.light, err, "prefs.json")) bad.push_back("light");
  if (!json_get(j, "numbers", st.numbers, err, "prefs.json")) bad.push_back("numbers");
  if (!json_get(j, "colormap", colormap_name, err, "prefs.json")) bad.push_back("colormap");
  if (!json_get(j, "range", range, err, "prefs.json") || !parse_range_mode(range, st.display.range)) bad.push_back("range");
  if (!json_get(j, "log", st.display.log, err, "prefs.json")) bad.push_back("log");
  if (j.contains("memory_budget_gb")) {
    double gb = 0;
    if (!json_get(j, "memory_budget_gb", gb, 0.0, 1e6, err, "prefs.json")) bad.push_back("memory_budget_gb");
    else if (gb > 0) set_memory_budget_bytes(gb * 1e9), st.budget_gb = static_cast<float>(gb);
  }
  if (!json_get(j, "last_session", last, err, "prefs.json")) bad.push_back("last_session");
  st.font_scale = static_cast<float>(font);
  st.display.colormap = colormap_name;
  st.last_session = last;
  if (j.contains("recent") && j["recent"].is_array())
    for (const auto& r : j["recent"])
      if (r.is_string() && st.recent.size() < kMaxRecent) st.recent.push_back(r.get<std::string>());
  if (!bad.empty()) {
    st.status = "ignored wrong preferences in " + utf8_sanitize(path) + ": " + join(bad);
    st.status_error = true;
  }
}

void SavePrefs(const AppState& st) {
  if (st.config_dir.empty()) return;
  std::error_code ec;
  fs::create_directories(st.config_dir, ec);
  nlohmann::json j;
  j["font_scale"] = st.font_scale;
  j["light"] = st.light;
  j["numbers"] = st.numbers;
  j["colormap"] = st.display.colormap;
  j["range"] = name(st.display.range);
  j["log"] = st.display.log;
  if (st.budget_gb > 0) j["memory_budget_gb"] = st.budget_gb;
  // a file name that is not valid UTF-8 cannot be written into JSON: it stays out of the list
  nlohmann::json recent = nlohmann::json::array();
  for (const auto& r : st.recent)
    if (!utf8_first_invalid(r)) recent.push_back(r);
  j["recent"] = recent;
  // the session being worked on, restored on the next start
  j["last_session"] = to_json(st.session);
  std::string err;
  write_file_atomic(st.config_dir + "/prefs.json", j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", err);
}

// --- lessons ----------------------------------------------------------------------------------

void LoadLessons(AppState& st, const std::string& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    try {
      std::string text, err;
      nlohmann::json j;
      if (!read_file_limited(path.string(), kMaxConfigFileBytes, text, err, "a lesson") || !parse_json_input(text, j, err))
        throw std::runtime_error(err);
      Lesson l;
      l.title = j.at("title").get<std::string>();
      const Session base = parse_session(j.value("session", nlohmann::json::object()).dump()).session.value_or(Session{});
      for (const auto& s : j.at("steps")) {
        Lesson::Step step;
        step.title = s.at("title").get<std::string>();
        step.text = s.at("text").get<std::string>();
        step.view = s.value("view", std::string());
        if (!step.view.empty() && !find_view(step.view))
          throw std::runtime_error("view '" + step.view + "' is not one of " + join(view_ids(), ", "));
        step.training = s.value("training", std::string());
        if (!step.training.empty() && step.training != "reset" && step.training != "start" &&
            step.training != "start_until_phase_change" && step.training != "pause")
          throw std::runtime_error("training '" + step.training + "' is not reset, start, start_until_phase_change or pause");
        // a step's session: the lesson's base with the step's changes (by option path)
        step.session = base;
        const nlohmann::json set = s.value("set", nlohmann::json::object());
        for (const auto& [key, value] : set.items()) {
          if (auto err = option_set(step.session, key, value.dump()); !err.empty())
            throw std::runtime_error(key + ": " + err);
        }
        l.steps.push_back(std::move(step));
      }
      if (!l.steps.empty()) st.lessons.push_back(std::move(l));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "attnlab: lesson %s skipped: %s\n", path.c_str(), e.what());
    }
  }
}

void GoToLessonStep(AppState& st, Worker& worker, int lesson, int step) {
  if (lesson < 0 || lesson >= static_cast<int>(st.lessons.size())) return;
  const Lesson& l = st.lessons[lesson];
  st.lesson = lesson;
  st.lesson_step = std::clamp(step, 0, static_cast<int>(l.steps.size()) - 1);
  const auto& s = l.steps[st.lesson_step];
  st.session = s.session;
  // the step's view opens (the first step's too), placed where it leaves the lesson visible
  if (const View* v = find_view(s.view)) {  // lesson files name views by their registry id
    st.*(v->open) = true;
    st.place_view = st.lesson_view = v->id;
    st.place_frames = 4;
  }
  st.training_action = s.training;
  Edited(st, worker);
}

void LessonKeys(AppState& st, Worker& worker, int key) {
  if (st.lesson < 0) return;
  // a presenter's clicker sends Page Down / Page Up (some send Right / Left, or Space)
  if (key == GLFW_KEY_PAGE_DOWN || key == GLFW_KEY_RIGHT || key == GLFW_KEY_SPACE)
    GoToLessonStep(st, worker, st.lesson, st.lesson_step + 1);
  else if (key == GLFW_KEY_PAGE_UP || key == GLFW_KEY_LEFT)
    GoToLessonStep(st, worker, st.lesson, st.lesson_step - 1);
}

void PlaceLessonView(AppState& st, const char* id) {
  // placed when the step opens it (for a few frames: the strip's height is known only once it has
  // been drawn), and again whenever the strip moves (font scale, presentation, another step)
  const bool requested = st.place_view == id;
  const bool strip_moved = st.lesson >= 0 && st.lesson_view == id && std::abs(st.lesson_top - st.lesson_view_top) > 1;
  if (!requested && !strip_moved) return;
  if (requested && --st.place_frames <= 0) st.place_view.clear();
  st.lesson_view_top = st.lesson_top;
  // between the menu bar and the lesson strip, over the heads (the side panel stays visible)
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const float font = ImGui::GetFontSize(), top = vp->Pos.y + font * 3.5f;
  const float bottom = st.lesson_top > 0 ? std::max(st.lesson_top - font * 0.5f, top + font * 3) : vp->Pos.y + vp->Size.y;
  const float left = vp->Pos.x + (st.hide_controls ? font : std::min(font * 26, vp->Size.x * 0.35f));
  ImGui::SetNextWindowPos(ImVec2(left, top), ImGuiCond_Always);
  ImGui::SetNextWindowSize(ImVec2(vp->Pos.x + vp->Size.x - left - font, bottom - top), ImGuiCond_Always);
}

void ShowLessonWindow(AppState& st, Worker& worker) {
  if (st.lesson < 0 || st.lesson >= static_cast<int>(st.lessons.size())) {
    st.lesson_top = 0;
    return;
  }
  const Lesson& l = st.lessons[st.lesson];
  bool open = true;
  // A strip along the bottom of the window, always in front: navigation first, so Previous and
  // Next are never covered or clipped, whatever the font scale or the screen.
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const float font = ImGui::GetFontSize();
  ImGui::SetNextWindowPos(ImVec2(vp->Pos.x, vp->Pos.y + vp->Size.y), ImGuiCond_Always, ImVec2(0.0f, 1.0f));
  // its own text decides its height (up to three quarters of the screen at 3x on 1024x768)
  ImGui::SetNextWindowSizeConstraints(ImVec2(vp->Size.x, 0), ImVec2(vp->Size.x, vp->Size.y * 0.75f));
  if (ImGui::Begin("###lesson", &open,
                   ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                       ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoTitleBar)) {
    ImGui::BringWindowToDisplayFront(ImGui::GetCurrentWindow());
    st.lesson_top = ImGui::GetWindowPos().y;
    RecordWidget(st, "lesson.window");
    st.widgets["lesson.window"] = ImVec4(ImGui::GetWindowPos().x, ImGui::GetWindowPos().y, ImGui::GetWindowSize().x,
                                         ImGui::GetWindowSize().y);
    const int n = static_cast<int>(l.steps.size());
    st.lesson_step = std::clamp(st.lesson_step, 0, n - 1);
    const auto& s = l.steps[st.lesson_step];
    int go = -1;
    ImGui::BeginDisabled(st.lesson_step == 0);
    if (ImGui::Button("< Previous")) go = st.lesson_step - 1;
    ImGui::EndDisabled();
    RecordWidget(st, "lesson.previous");
    ImGui::SameLine();
    ImGui::BeginDisabled(st.lesson_step + 1 >= n);
    if (ImGui::Button("Next >")) go = st.lesson_step + 1;
    ImGui::EndDisabled();
    RecordWidget(st, "lesson.next");
    const float close_w = ImGui::CalcTextSize("Close").x + font;
    const char* hint = "Page Down / Page Up";
    if (ImGui::GetItemRectMax().x + font * 2 + ImGui::CalcTextSize(hint).x + close_w < vp->Pos.x + vp->Size.x) {
      ImGui::SameLine(0, font);
      ImGui::TextDisabled("%s", hint);
    }
    ImGui::SameLine(vp->Size.x - close_w - font * 0.5f);
    if (ImGui::SmallButton("Close")) open = false;
    RecordWidget(st, "lesson.close");
    // the heading and the text wrap to the width of the screen; when they would not fit in the
    // strip at this font size (3x on 1024x768), they are drawn smaller until they do, so they
    // are never cut off and the heads keep a quarter of the screen
    const std::string heading = l.title + ", step " + std::to_string(st.lesson_step + 1) + " of " + std::to_string(n) + ": " + s.title;
    const float wrap = vp->Size.x - font * 2;
    const float budget = vp->Size.y * 0.75f - ImGui::GetCursorPosY() - ImGui::GetStyle().WindowPadding.y * 2 - font;
    auto height_at = [&](float k) {
      return (ImGui::CalcTextSize(heading.c_str(), nullptr, false, wrap / k).y +
              ImGui::CalcTextSize(s.text.c_str(), nullptr, false, wrap / k).y) * k + font;
    };
    float k = 1.0f;
    while (k > 0.5f && height_at(k) > budget) k -= 0.05f;
    ImGui::SetWindowFontScale(k);
    ImGui::PushTextWrapPos(wrap);
    ImGui::TextUnformatted(heading.c_str());
    RecordWidget(st, "lesson.title");
    ImGui::Separator();
    ImGui::TextUnformatted(s.text.c_str());
    ImGui::PopTextWrapPos();
    RecordWidget(st, "lesson.text");
    ImGui::SetWindowFontScale(1.0f);
    st.lesson_text_scale = k;
    if (go >= 0) GoToLessonStep(st, worker, st.lesson, go);
  }
  ImGui::End();
  if (!open) st.lesson = -1, st.lesson_top = 0;
}

// --- the file browser -------------------------------------------------------------------------

void ShowFileBrowser(AppState& st, Worker& worker) {
  FileBrowser& b = st.browser;
  if (!b.open) return;
  if (b.dir.empty()) {
    std::error_code ec;
    b.dir = st.session_path.empty() ? fs::current_path(ec).string() : fs::absolute(st.session_path, ec).parent_path().string();
  }
  ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 36, ImGui::GetFontSize() * 26), ImGuiCond_Appearing);
  ImGui::SetNextWindowPos(ImGui::GetMainViewport()->GetCenter(), ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  bool open = true;
  if (ImGui::Begin(b.model ? "Open model folder###browser" : b.saving ? "Save session###browser" : "Open session###browser", &open)) {
    ImGui::TextDisabled("%s", b.dir.c_str());
    if (ImGui::SmallButton("up")) b.dir = fs::path(b.dir).parent_path().string();
    RecordWidget(st, "browser.up");
    ImGui::BeginChild("entries", ImVec2(0, -ImGui::GetFrameHeightWithSpacing() * 2.2f), true);
    std::error_code ec;
    std::vector<fs::directory_entry> entries;
    for (const auto& e : fs::directory_iterator(b.dir, fs::directory_options::skip_permission_denied, ec)) {
      if (e.path().filename().string().starts_with(".")) continue;
      if (e.is_directory(ec) || (!b.model && e.path().extension() == ".json")) entries.push_back(e);
    }
    std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) {
      std::error_code e;
      if (x.is_directory(e) != y.is_directory(e)) return x.is_directory(e);
      return x.path().filename() < y.path().filename();
    });
    std::string chosen;
    for (const auto& e : entries) {
      const bool dir = e.is_directory(ec);
      const std::string label = e.path().filename().string() + (dir ? "/" : "");
      if (ImGui::Selectable(label.c_str(), b.name == label, ImGuiSelectableFlags_AllowDoubleClick)) {
        if (dir) b.dir = e.path().string();
        else {
          b.name = label;
          if (ImGui::IsMouseDoubleClicked(0)) chosen = e.path().string();
        }
      }
      RecordWidget(st, "browser.entry=" + label);
    }
    ImGui::EndChild();
    bool enter = false;
    if (!b.model) {
      ImGui::SetNextItemWidth(-ImGui::GetFontSize() * 6);
      enter = ImGui::InputText("##name", &b.name, ImGuiInputTextFlags_EnterReturnsTrue);
      RecordWidget(st, "browser.name");
      ImGui::SameLine();
    }
    if (b.model) {
      const bool is_model = fs::exists(fs::path(b.dir) / "config.json", ec);
      ImGui::BeginDisabled(!is_model);
      if (ImGui::Button(b.for_b ? "Open this folder as B's model" : "Open this folder")) {
        StartModelLoad(st, b.dir, b.for_b);
        open = false;
      }
      ImGui::EndDisabled();
      RecordWidget(st, "browser.open_model");
      if (!is_model) ImGui::TextDisabled("a model folder holds config.json, *.safetensors and the tokenizer files");
    } else if (ImGui::Button(b.saving ? "Save" : "Open") || enter) {
      chosen = (fs::path(b.dir) / b.name).string();
    }
    RecordWidget(st, "browser.ok");
    if (!chosen.empty()) {
      if (b.saving && fs::path(chosen).extension() != ".json") chosen += ".json";
      const bool ok = b.saving ? SaveSessionFile(st, chosen) : OpenSessionFile(st, worker, chosen);
      if (ok) open = false;
      else b.error = st.status;
    }
    if (!b.error.empty()) ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "%s", b.error.c_str());
  }
  ImGui::End();
  if (!open) b.open = false, b.error.clear();
}

// --- export -----------------------------------------------------------------------------------

namespace {

// What the export offers: every figure view (PNG), then matrices (CSV, .npy, JSON, TSV), each a
// step of the open head ("" = the step the pipeline shows).
struct ExportChoice {
  std::string label;
  bool figure;
  FigureView view;
  std::string step;
};
const std::vector<ExportChoice>& export_choices() {
  static const std::vector<ExportChoice> all = [] {
    std::vector<ExportChoice> v;
    for (const auto& f : figure_views()) v.push_back({f.label, true, f.view, ""});
    v.push_back({"weights matrix", false, FigureView::heads, "weights"});
    v.push_back({"logits matrix", false, FigureView::heads, "masked"});
    v.push_back({"pipeline step matrix", false, FigureView::heads, ""});
    return v;
  }();
  return all;
}

}  // namespace

void ShowExportWindow(AppState& st) {
  if (!st.show_export || !st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 30, 0), ImGuiCond_Appearing);
  if (ImGui::Begin("Export###export", &st.show_export)) {
    const auto& choices = export_choices();
    st.export_what = std::clamp(st.export_what, 0, static_cast<int>(choices.size()) - 1);
    if (ImGui::BeginCombo("what", choices[st.export_what].label.c_str(), ImGuiComboFlags_HeightLargest)) {
      const bool placed = !ImGui::IsWindowAppearing();
      for (int k = 0; k < static_cast<int>(choices.size()); ++k) {
        if (ImGui::Selectable(choices[k].label.c_str(), k == st.export_what)) {
          if (choices[k].figure != choices[st.export_what].figure) st.export_path.clear();  // PNG <-> matrix: a fitting name
          st.export_what = k;
        }
        if (placed) RecordWidget(st, "export.what=" + std::to_string(k));
      }
      ImGui::EndCombo();
    }
    RecordWidget(st, "export.what");
    const ExportChoice& choice = choices[st.export_what];
    const bool figure = choice.figure;
    const int head = std::max(0, st.detail_head);
    if (figure) {
      ImGui::TextUnformatted("scale");
      for (int s : {1, 2, 4}) {
        ImGui::SameLine();
        ImGui::RadioButton((std::to_string(s) + "x").c_str(), &st.export_scale, s);
        RecordWidget(st, "export.scale=" + std::to_string(s));
      }
    }
    ImGui::TextDisabled(figure ? "labels and colour bar; the extension picks the format: .png .svg .pdf"
                               : "the extension picks the format: .csv .npy .json .tsv");
    ImGui::TextDisabled("layer %d, head %d (the open detail head)", st.layer, head);
    if (st.export_path.empty()) st.export_path = figure ? "attnlab-figure.png" : "attnlab-matrix.csv";
    ImGui::SetNextItemWidth(-ImGui::GetFontSize() * 6);
    ImGui::InputText("##path", &st.export_path);
    RecordWidget(st, "export.path");
    ImGui::SameLine();
    if (ImGui::Button("Export")) {
      std::string err;
      bool ok = false;
      ViewRequest q;
      q.layer = st.layer;
      q.head = head;
      q.logits = st.quantity == Quantity::logits;
      const auto& steps = ViewImages(*st.shown, "pipeline");
      const std::size_t step = std::min<std::size_t>(st.pipeline_step, steps.empty() ? 0 : steps.size() - 1);
      q.step = steps.empty() ? "weights" : steps[step].id;
      if (figure) {
        q.view = choice.view;
        FigureStyle fs;
        fs.scale = static_cast<float>(st.export_scale);
        fs.colormap = st.display.colormap;
        fs.range = st.display.range;
        fs.log = st.display.log;
        fs.numbers = st.numbers;
        fs.light = st.light;
        apply_view_layout(q.view, st.shown->n_heads, fs);
        std::vector<FigurePanel> panels;
        std::string title;
        ok = view_panels(r, q, panels, title, err) && write_figure(st.export_path, title, panels, fs, err);
      } else {
        MatrixFormat f;
        if (!format_from_path(st.export_path, f)) {
          err = st.export_path + ": the name must end in .csv, .npy, .json or .tsv";
        } else {
          const std::string id = choice.step.empty() ? q.step : choice.step;
          LabeledMatrix m;
          ok = step_matrix(r, q.layer, q.head, id, m, err) && write_file_atomic(st.export_path, encode_matrix(m, f), err);
        }
      }
      st.status = ok ? "exported " + st.export_path : "export failed: " + err;
      st.status_error = !ok;
    }
    RecordWidget(st, "export.go");
    if (!st.status.empty()) ImGui::TextColored(st.status_error ? ImVec4(1, 0.45f, 0.4f, 1) : ImVec4(0.5f, 0.9f, 0.5f, 1), "%s", st.status.c_str());
  }
  ImGui::End();
}

void CopyHoveredToClipboard(AppState& st) {
  if (!st.shown || !st.shown->result || st.hover.head < 0) return;
  const Result& r = *st.shown->result;
  if (r.is_field()) {  // a long sequence: the hovered cell, not n^2 numbers
    char buf[200];
    std::snprintf(buf, sizeof buf, "layer\t%d\thead\t%d\tquery\t%d\tkey\t%d\tweight\t%.9g\tlogit\t%.9g\n", st.layer,
                  st.hover.head, st.hover.query, st.hover.key, double(st.hover_weight), double(st.hover_logit));
    ImGui::SetClipboardText(buf);
    st.status = "copied the hovered cell (a block: attnlab-cli export --rows A:B --cols C:D)";
    st.status_error = false;
    return;
  }
  const HeadResult& h = r.layers[st.layer].heads[st.hover.head];
  LabeledMatrix m{st.quantity == Quantity::weights ? "weights" : "logits",
                  st.quantity == Quantity::weights ? h.weights : h.logits, {}, {}};
  for (const auto& t : r.tokens) m.row_labels.push_back(token_label(t.text));
  for (const auto& t : r.keys()) m.col_labels.push_back(token_label(t.text));
  const std::string tsv = to_delimited(m, '\t');
  ImGui::SetClipboardText(tsv.c_str());
  st.status = "copied head " + std::to_string(st.hover.head) + " (" + std::to_string(m.values.rows()) + " x " +
              std::to_string(m.values.cols()) + ") as TSV";
  st.status_error = false;
}

// --- models ---------------------------------------------------------------------------------

void StartModelLoad(AppState& st, const std::string& dir, bool for_b) {
  st.loading = std::make_unique<ModelLoad>();
  ModelLoad* l = st.loading.get();
  l->dir = dir;
  l->for_b = for_b;
  l->thread = std::thread([l] {
    run_below_the_ui();
    try {  // nothing escapes this thread: a failure is the load's error
      l->model = HfModel::load(l->dir, l->error, &l->progress, &l->cancel);
    } catch (const std::bad_alloc&) {
      l->model.reset();
      l->error = {false, l->dir + ": out of memory loading the model"};
    } catch (const std::exception& e) {
      l->model.reset();
      l->error = {false, l->dir + ": " + e.what()};
    }
    l->done = true;
  });
}

void ShowModelLoad(AppState& st, Worker& worker) {
  if (!st.loading) return;
  ModelLoad& l = *st.loading;
  if (l.done) {
    l.thread.join();
    const bool a_loaded = l.model && !l.for_b;
    if (l.model && l.for_b) {  // compare's B: its own model, A's untouched
      st.model_b = std::shared_ptr<const HfModel>(std::move(l.model));
      st.b_uses_model = true;
      st.b_intervention = {}, st.b_ablate_text.clear(), st.b_ablate_error.clear();
      const ModelInfo& in = st.model_b->info();
      st.status = "B's model " + in.dir + ": " + in.model_type + ", " + std::to_string(in.n_layers) + " layers x " +
                  std::to_string(in.n_heads) + " heads";
      st.status_error = false;
      PostB(st, st.session_b);
    } else if (l.model) {
      st.model = std::shared_ptr<const HfModel>(std::move(l.model));
      ForgetPatching(st);  // the grid was another model's
      st.b_posted = 0, st.b_shown.reset();  // compare's B starts again as A
      worker.set_model(st.model);
      const ModelInfo& in = st.model->info();
      st.status = "model " + in.dir + ": " + in.model_type + ", " + std::to_string(in.n_layers) + " layers x " +
                  std::to_string(in.n_heads) + " heads, " + in.dtype;
      st.status_error = false;
      st.layer = 0;
      st.detail_head = -1;
      st.posted = worker.post(st.session, st.display);
    } else {
      st.status = l.error.cancelled ? "model loading cancelled" : "model not loaded: " + l.error.message;
      st.status_error = !l.error.cancelled;
    }
    st.loading.reset();
    // two checkpoints for Compare A / B: B's folder once A's is in
    if (!st.next_model_b.empty()) {
      const std::string b = std::move(st.next_model_b);
      st.next_model_b.clear();
      if (a_loaded) StartModelLoad(st, b, true);
    }
    return;
  }
  ImGui::SetNextWindowPos(ImGui::GetMainViewport()->GetCenter(), ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 26, 0), ImGuiCond_Appearing);
  if (ImGui::Begin("Loading model###loading", nullptr, ImGuiWindowFlags_NoCollapse)) {
    ImGui::TextUnformatted(l.dir.c_str());
    ImGui::ProgressBar(l.progress.load(), ImVec2(-FLT_MIN, 0));
    RecordWidget(st, "model.progress");
    if (ImGui::Button("Cancel")) l.cancel = true;
    RecordWidget(st, "model.cancel");
  }
  ImGui::End();
}

void CloseModel(AppState& st, Worker& worker) {
  ForgetPatching(st);
  st.b_posted = 0, st.b_shown.reset();  // compare's B starts again as A
  st.intervention = {};
  st.model.reset();
  worker.set_model(nullptr);
  st.status = "back to the random-weight laboratory";
  st.status_error = false;
  st.posted = worker.post(st.session, st.display);
}

// --- help -------------------------------------------------------------------------------------


}  // namespace attnlab::app
