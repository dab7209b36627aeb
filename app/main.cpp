// attnlab: the window. Short and boring on purpose: set up, then one frame per loop.
#include <glad/gl.h>
// glad before GLFW
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <imgui_internal.h>  // ErrorCheckEndFrameRecover: a frame that threw is closed cleanly
#include <stb_image_write.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sstream>
#include <unistd.h>

#include "example_session.hpp"  // generated: kExampleSession (assets/sessions/example.json)
#include "present/export.hpp"
#include "core/files.hpp"
#include "core/strings.hpp"
#include "core/memory.hpp"
#include "render/heatmap.hpp"
#include "tokenizers/tokenize.hpp"
#include "ui.hpp"
#include "views/view.hpp"

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::app;

namespace {

std::string g_banner_for_state;  // the banner line, for the state dump

struct Options {
  std::string session_path, screenshot_path, state_path;
  int frames = 3;
  int width = 1600, height = 1000;
  bool no_mouse = false, example = false, light = false;
  float font_scale = 0;
  std::string step, model_dir;
  int head = -1;
  int lesson = 0, lesson_step = 1;
  bool present = false;
};


// Reads a session file; on failure returns the one-line reason.
std::optional<Session> load_session(const std::string& path, std::string& error) {
  std::string text;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, error, "a session file")) return std::nullopt;
  auto p = parse_session(text);
  if (!p.session) error = path + ": " + join(p.problems);
  return p.session;
}

// Every view's remembered selection, clamped to what the shown Result has (a head chosen before
// n_heads went down must not be read past the end).
void ClampSelections(AppState& st) {
  if (!st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  const int layers = static_cast<int>(r.layers.size());
  st.layer = std::clamp(st.layer, 0, std::max(0, layers - 1));
  const int heads = layers ? static_cast<int>(r.layers[st.layer].heads.size()) : 0;
  if (st.detail_head >= heads) st.detail_head = -1;
  if (st.lines_head >= heads) st.lines_head = -1;
  st.compare_head = std::clamp(st.compare_head, 0, std::max(0, heads - 1));
  st.flash_head = std::clamp(st.flash_head, 0, std::max(0, heads - 1));
  st.mask_head = std::clamp(st.mask_head, 0, std::max(0, heads - 1));
  if (st.lines_token >= static_cast<int>(r.tokens.size())) st.lines_token = -1;
  st.pipeline_step = std::max(0, st.pipeline_step);
}

// The marker of a running window: left behind when a run did not exit cleanly. That run's
// session may be what took it down, so it is offered, not restored by itself.
std::string running_marker(const AppState& st) { return st.config_dir.empty() ? "" : st.config_dir + "/running"; }
bool last_run_crashed(const AppState& st) {
  std::string text, err;
  if (running_marker(st).empty() || !read_file_limited(running_marker(st), 64, text, err)) return false;
  const long pid = std::strtol(text.c_str(), nullptr, 10);
  return pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);  // that process is gone
}

// The test hook's state file: replaced by rename so a reader never sees half of it, but without
// write_file_atomic's fsync, which would cost milliseconds every frame.
void write_state_dump(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << content;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

bool write_screenshot(const std::string& path, int w, int h) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w) * h * 3);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, px.data());
  stbi_flip_vertically_on_write(1);
  return stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0;
}

// Uploads the textures of st.incoming for about `budget_ms` (at least one texture), into the
// second texture set; when all are done, the new result replaces the shown one in one swap.
// So a large result never stalls a frame, and what is drawn is always one whole result.
// Uploads the incoming snapshot's textures a few at a time (budget_ms a frame): the heads'
// weights and logits, then every view's images in registry order. Then it is shown.
void upload_some(AppState& st, const HeatmapRenderer& renderer, double budget_ms) {
  if (!st.incoming) return;
  const Snapshot& s = *st.incoming;
  auto& t = st.in_tex;
  const std::size_t heads = s.images.size();
  t.weights.resize(heads);
  t.logits.resize(heads);
  // every texture to upload, in order: (view images, index), the heads first (view null)
  std::vector<std::pair<const std::vector<ImageData>*, std::vector<Heatmap>*>> lists;
  std::size_t total = 2 * heads;
  for (auto& [id, images] : s.views) {
    auto& tex = t.views[id];
    tex.resize(images.size());
    lists.push_back({&images, &tex});
    total += images.size();
  }
  for (auto it = t.views.begin(); it != t.views.end();)  // views with nothing this time
    it = s.views.count(it->first) ? std::next(it) : t.views.erase(it);
  const std::string& cmap = s.display.colormap;
  const auto t0 = std::chrono::steady_clock::now();
  while (st.in_next < total) {
    std::size_t k = st.in_next;
    if (k < 2 * heads) {
      const HeadImage& img = s.images[k / 2];
      const std::size_t layer = (k / 2) / s.n_heads;
      const bool own = s.display.range == RangeMode::per_head;
      const ValueRange w = own ? s.head_weight_range[k / 2] : s.weight_range[layer];
      const ValueRange l = own ? s.head_logit_range[k / 2] : s.logit_range[layer];
      if (k % 2 == 0) t.weights[k / 2].update(renderer, img.width, img.height, img.weights_rg, w.lo, w.hi, cmap);
      else t.logits[k / 2].update(renderer, img.width, img.height, img.logits_rg, l.lo, l.hi, cmap);
    } else {
      k -= 2 * heads;
      for (auto& [images, tex] : lists) {
        if (k >= images->size()) {
          k -= images->size();
          continue;
        }
        const ImageData& img = (*images)[k];
        (*tex)[k].update(renderer, img.width, img.height, img.rg, img.vmin, img.vmax, img.diverging ? "rdbu_diverging" : cmap);
        break;
      }
    }
    ++st.in_next;
    if (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() > budget_ms) break;
  }
  if (st.in_next == total) {
    st.shown = std::move(st.incoming);
    st.incoming.reset();
    std::swap(st.tex, st.in_tex);
    // labels change only with the result: build and measure them once here, not every frame
    st.labels.clear();
    st.longest_label_em = 0;
    for (const auto& tok : st.shown->result->tokens) {
      st.labels.push_back(to_ui(Clip(token_label(tok.text), 40)));
      st.fonts.need(st.labels.back());
      if (st.labels.size() <= 512)
        st.longest_label_em = std::max(st.longest_label_em, ImGui::CalcTextSize(st.labels.back().c_str()).x / ImGui::GetFontSize());
    }
    st.key_labels.clear();
    for (const auto& tok : st.shown->result->keys()) {
      st.key_labels.push_back(to_ui(Clip(token_label(tok.text), 40)));
      st.fonts.need(st.key_labels.back());
      if (st.key_labels.size() <= 512)
        st.longest_label_em = std::max(st.longest_label_em, ImGui::CalcTextSize(st.key_labels.back().c_str()).x / ImGui::GetFontSize());
    }
  }
}

// What tests read: where each head was drawn (framebuffer pixels), what is shown, the problems.
std::string state_json(const AppState& st, const Worker& worker, ImVec4 bg, ImVec2 scale, int fb_w, int fb_h) {
  nlohmann::json j;
  j["posted"] = st.posted;
  j["busy"] = worker.busy() || st.incoming != nullptr;  // computing, or uploading textures
  j["computing"] = worker.busy();
  j["progress"] = worker.progress();
  j["cancelled"] = worker.cancelled();
  j["computations"] = worker.computations();
  j["frame"] = ImGui::GetFrameCount();
  j["labels_cut"] = st.labels_cut;
  j["lesson_text_scale"] = st.lesson_text_scale;
  j["window_rect"] = st.window_rect;
  j["offer_restore"] = st.offer_restore;
  j["banner"] = g_banner_for_state;
  j["framebuffer"] = {fb_w, fb_h};
  j["background"] = {int(bg.x * 255 + 0.5f), int(bg.y * 255 + 0.5f), int(bg.z * 255 + 0.5f)};
  j["text_box"] = {st.text_box.x * scale.x, st.text_box.y * scale.y, st.text_box.z * scale.x, st.text_box.w * scale.y};
  j["quantity"] = st.quantity == Quantity::weights ? "weights" : "logits";
  j["detail_head"] = st.detail_head;
  j["hover"] = {{"head", st.hover.head}, {"query", st.hover.query}, {"key", st.hover.key}};
  nlohmann::json widgets = nlohmann::json::object();
  for (const auto& [name, r] : st.widgets) widgets[name] = {r.x * scale.x, r.y * scale.y, r.z * scale.x, r.w * scale.y};
  j["widgets"] = widgets;
  for (const View* v : views()) {  // each view: open or not, and its own keys
    j["windows"][v->id] = st.*(v->open);
    if (v->dump) v->dump(st, j);
  }
  j["windows"]["export"] = st.show_export;
  j["windows"]["browser"] = st.browser.open;
  j["windows"]["lesson"] = st.lesson >= 0;
  j["text"] = st.session.text;
  {  // code points on screen that the atlas cannot draw (ImGui would show '?'): labels and the text
    int missing = st.fonts.missing(to_ui(st.session.text));
    for (std::size_t i = 0; i < st.labels.size() && i < 512; ++i) missing += st.fonts.missing(st.labels[i]);
    for (std::size_t i = 0; i < st.key_labels.size() && i < 512; ++i) missing += st.fonts.missing(st.key_labels[i]);
    j["missing_glyphs"] = missing;
    j["labels"] = std::vector<std::string>(st.labels.begin(), st.labels.begin() + std::min<std::size_t>(st.labels.size(), 64));
  }
  if (st.model) j["model"] = {{"dir", st.model->info().dir}, {"type", st.model->info().model_type},
                              {"layers", st.model->info().n_layers}, {"heads", st.model->info().n_heads},
                              {"dtype", st.model->info().dtype}};
  j["model_loading"] = st.loading != nullptr;
  if (st.shown && st.shown->result) j["intervention"] = st.shown->result->intervention;
  j["temperature"] = st.session.attention.normalizer.temperature;
  j["undo"] = st.undo.size();
  j["redo"] = st.redo.size();
  j["display"] = {{"colormap", st.display.colormap}, {"range", name(st.display.range)}, {"log", st.display.log},
                  {"numbers", st.numbers}};
  j["light"] = st.light;
  j["font_scale"] = st.font_scale;
  j["font_size"] = ImGui::GetFontSize();
  j["hide_controls"] = st.hide_controls;
  j["fullscreen"] = st.fullscreen;
  j["session_path"] = st.session_path;
  j["recent"] = st.recent;
  j["status"] = st.status;
  j["config_dir"] = st.config_dir;
  j["lessons"] = st.lessons.size();
  j["lesson"] = st.lesson;
  j["lesson_step"] = st.lesson_step;
  j["zoom"] = st.zoom;
  j["export_what"] = st.export_what;
  j["export_path"] = st.export_path;
  j["pan"] = {st.pan.x, st.pan.y};
  j["layer"] = st.layer;
  j["problems"] = st.problems_current() ? st.newest->problems : std::vector<std::string>{};
  if (st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
    j["shown_generation"] = st.shown->generation;
    j["shown_display"] = {{"colormap", st.shown->display.colormap}, {"range", name(st.shown->display.range)},
                          {"log", st.shown->display.log}};
    j["mask"] = name(r.session.attention.mask.kind);
    j["positional"] = name(r.session.positional.kind);
    std::vector<std::string> allowed;  // head 0's pattern, a string per row
    const MaskMatrix& a = *r.layers[0].heads[0].allowed;
    for (Eigen::Index i = 0; i < a.rows() && a.rows() <= 64; ++i) {
      std::string row;
      for (Eigen::Index c = 0; c < a.cols(); ++c) row += a(i, c) ? '1' : '0';
      allowed.push_back(row);
    }
    j["allowed"] = allowed;
    j["n_tokens"] = r.tokens.size();
    std::vector<std::string> tokens;
    for (const auto& t : r.tokens) tokens.push_back(t.text);
    j["tokens"] = tokens;
    std::vector<std::string> keys;
    for (const auto& t : r.key_tokens) keys.push_back(t.text);
    j["key_tokens"] = keys;
    nlohmann::json heads = nlohmann::json::array();
    for (const auto& h : st.head_rects) {
      heads.push_back({{"head", h.head}, {"x", h.x * scale.x}, {"y", h.y * scale.y}, {"w", h.w * scale.x},
                       {"h", h.h * scale.y}, {"n_q", h.n_q}, {"n_k", h.n_k}});
    }
    j["heads"] = heads;
    j["n_layers"] = r.layers.size();
    std::vector<int> kv;
    for (const auto& h : r.layers[0].heads) kv.push_back(h.kv_head);
    j["kv_heads"] = kv;
    j["kernel"] = name(r.session.attention.kernel.kind);
    nlohmann::json approx = nlohmann::json::array();
    for (const auto& h : r.layers[0].heads)
      approx.push_back(h.approx ? nlohmann::json{h.approx->max_weight_error, h.approx->output_error} : nlohmann::json());
    j["approximation"] = approx;
  }
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Dark for the desk; light and high-contrast for projectors. Sizes follow the font scale.
void style(bool light, float scale) {
  ImGuiStyle& s = ImGui::GetStyle();
  s = ImGuiStyle();
  if (light) {
    ImGui::StyleColorsLight();
    s.Colors[ImGuiCol_WindowBg] = ImVec4(1, 1, 1, 1);  // opaque: masked cells show exactly this
    s.Colors[ImGuiCol_Text] = ImVec4(0, 0, 0, 1);
    s.Colors[ImGuiCol_TextDisabled] = ImVec4(0.25f, 0.25f, 0.25f, 1);
    s.Colors[ImGuiCol_Border] = ImVec4(0, 0, 0, 0.6f);
    s.Colors[ImGuiCol_FrameBg] = ImVec4(0.88f, 0.88f, 0.9f, 1);
    s.Colors[ImGuiCol_PopupBg] = ImVec4(1, 1, 0.96f, 1);
  } else {
    ImGui::StyleColorsDark();
    s.Colors[ImGuiCol_WindowBg] = ImVec4(0.11f, 0.11f, 0.12f, 1.0f);  // opaque: masked cells show exactly this
  }
  s.WindowRounding = 0;
  s.FrameRounding = 3;
  s.GrabRounding = 3;
  s.Colors[ImGuiCol_ChildBg] = ImVec4(0, 0, 0, 0);
  s.ScaleAllSizes(scale);
}

std::vector<std::string> g_dropped;  // paths dropped on the window (GLFW callback), handled next frame

// The window's place and size before it went full screen, restored exactly when it comes back.
struct WindowedRect {
  bool saved = false;
  int x = 0, y = 0, w = 0, h = 0;
} g_windowed;

void set_fullscreen(GLFWwindow* w, bool on, int, int) {
  GLFWmonitor* m = glfwGetPrimaryMonitor();
  const GLFWvidmode* mode = m ? glfwGetVideoMode(m) : nullptr;
  const bool is_full = glfwGetWindowMonitor(w) != nullptr;
  if (on && mode && !is_full) {
    glfwGetWindowPos(w, &g_windowed.x, &g_windowed.y);
    glfwGetWindowSize(w, &g_windowed.w, &g_windowed.h);
    g_windowed.saved = true;
    glfwSetWindowMonitor(w, m, 0, 0, mode->width, mode->height, mode->refreshRate);
  } else if (!on && is_full && g_windowed.saved) {
    glfwSetWindowMonitor(w, nullptr, g_windowed.x, g_windowed.y, g_windowed.w, g_windowed.h, 0);
  }
}

void TogglePresentation(AppState& st, GLFWwindow* window, const Options& opt) {
  static struct { bool light, hide, fullscreen; float scale; } saved{};
  const bool on = !(st.fullscreen && st.light && st.hide_controls);
  if (on) {
    saved = {st.light, st.hide_controls, st.fullscreen, st.font_scale};
    st.light = st.hide_controls = st.fullscreen = true;
    st.font_scale = std::max(st.font_scale, 1.75f);
  } else {
    st.light = saved.light;
    st.hide_controls = saved.hide;
    st.fullscreen = saved.fullscreen;
    st.font_scale = saved.scale > 0 ? saved.scale : 1.0f;
  }
  set_fullscreen(window, st.fullscreen, opt.width, opt.height);
}

// Key presses as GLFW reports them, chained before ImGui's own callback: a presenter's clicker
// (and xdotool) taps a key for a few milliseconds, press and release within one frame, which
// ImGui 1.86's per-frame key state can miss.
std::vector<int> g_key_presses;
void OnKey(GLFWwindow*, int key, int, int action, int) {
  if (action == GLFW_PRESS) g_key_presses.push_back(key);
}

// Global keys. GLFW key codes index ImGui 1.86's key state (the GLFW backend maps them 1:1).
void HandleShortcuts(AppState& st, Worker& worker, GLFWwindow* window, const Options& opt) {
  const ImGuiIO& io = ImGui::GetIO();
  const std::vector<int> keys = std::move(g_key_presses);
  g_key_presses.clear();
  auto tapped = [&](int key) { return std::find(keys.begin(), keys.end(), key) != keys.end(); };
  auto pressed = [&](int key) { return ImGui::IsKeyPressed(key, false) || tapped(key); };
  // the clicker's keys step the lesson, unless a text field is being typed in
  if (!io.WantTextInput)
    for (int key : keys) LessonKeys(st, worker, key);
  if (pressed(GLFW_KEY_F1)) st.show_help = !st.show_help;
  if (pressed(GLFW_KEY_F5)) TogglePresentation(st, window, opt);
  if (pressed(GLFW_KEY_F9)) st.hide_controls = !st.hide_controls;
  // Esc stops a long computation; the last picture stays (a text field keeps Esc for itself)
  if (pressed(GLFW_KEY_ESCAPE) && worker.busy() && !io.WantTextInput) worker.cancel();
  if (pressed(GLFW_KEY_F11)) {
    st.fullscreen = !st.fullscreen;
    set_fullscreen(window, st.fullscreen, opt.width, opt.height);
  }
  if (!io.KeyCtrl) return;
  if (pressed(GLFW_KEY_O)) st.browser = {true, false, "", "", ""};
  if (pressed(GLFW_KEY_S)) {
    if (io.KeyShift || st.session_path.empty()) st.browser = {true, true, "", "session.json", ""};
    else SaveSessionFile(st, st.session_path);
  }
  if (pressed(GLFW_KEY_E)) st.show_export = true;
  if (pressed(GLFW_KEY_Q)) glfwSetWindowShouldClose(window, 1);
  if (pressed(GLFW_KEY_EQUAL) || pressed(GLFW_KEY_KP_ADD)) st.font_scale = std::min(3.0f, st.font_scale + 0.25f);
  if (pressed(GLFW_KEY_MINUS) || pressed(GLFW_KEY_KP_SUBTRACT)) st.font_scale = std::max(1.0f, st.font_scale - 0.25f);
  if (pressed(GLFW_KEY_C) && !io.WantTextInput) CopyHoveredToClipboard(st);
  // the text box keeps its own Ctrl+Z while it is being edited; its edits are in the history too
  if (io.WantTextInput) return;
  if (pressed(GLFW_KEY_Z)) io.KeyShift ? Redo(st, worker) : Undo(st, worker);
  if (pressed(GLFW_KEY_Y)) Redo(st, worker);
}

}  // namespace

int main(int argc, char** argv) {
  attnlab::tune_allocator();
  Options opt;
  CLI::App cli{"attnlab: a laboratory for the attention mechanism"};
  cli.add_option("--session", opt.session_path, "session JSON to open (default: the built-in example)");
  cli.add_option("--screenshot", opt.screenshot_path, "write the window as PNG once the result is shown, then exit");
  cli.add_option("--frames", opt.frames, "frames to render before --screenshot")->check(CLI::Range(1, 10000));
  cli.add_option("--state-file", opt.state_path, "keep a JSON of what is shown (for tests)");
  cli.add_option("--width", opt.width, "window width")->check(CLI::Range(320, 16384));
  cli.add_option("--height", opt.height, "window height")->check(CLI::Range(240, 16384));
  cli.add_flag("--no-mouse", opt.no_mouse, "ignore the mouse (reproducible screenshots)");
  std::vector<std::string> open_views;
  cli.add_option("--view", open_views, "open a view window (repeatable): " + join(view_ids(), ", "))
      ->check(CLI::IsMember(view_ids()));
  cli.add_flag("--example", opt.example, "start on the built-in example, not where the last run left off");
  cli.add_option("--font-scale", opt.font_scale, "font scale, 1 to 3")->check(CLI::Range(1.0, 3.0));
  cli.add_flag("--light", opt.light, "light, high-contrast theme");
  cli.add_option("--step", opt.step, "with --view pipeline: start on this step (input, q, k, v, scores, scaled, biased, masked, weights, context, output)");
  cli.add_option("--model", opt.model_dir, "open a Hugging Face model folder (GPT-2, BERT or Llama family): its attention on the text");
  cli.add_option("--head", opt.head, "the head opened large (and walked through by the pipeline)");
  cli.add_option("--lesson", opt.lesson, "open lesson N (1 = the first of the Lessons menu)")->check(CLI::Range(1, 1000));
  cli.add_option("--lesson-step", opt.lesson_step, "with --lesson: start on step K (1 = the first)")->check(CLI::Range(1, 1000));
  cli.add_flag("--present", opt.present, "start in presentation mode (F5)");
  CLI11_PARSE(cli, argc, argv);

  AppState st;
  std::string banner;  // a problem opening the requested session, shown in the window
  {
    auto p = parse_session(kExampleSession);
    st.session = p.session.value_or(Session{});
  }
  LoadPrefs(st);
  LoadLessons(st, ATTNLAB_ASSET_DIR "/lessons");
  // temporaries of saves that were killed part way (ours only: by name, and their process is gone)
  if (!st.config_dir.empty()) remove_stale_temporaries(st.config_dir);
  for (const auto& r : st.recent) remove_stale_temporaries(fs::path(r).parent_path().string());
  const bool crashed = opt.screenshot_path.empty() && last_run_crashed(st);
  if (opt.session_path.empty() && opt.screenshot_path.empty() && !opt.example && !st.last_session.empty()) {
    if (crashed) {
      st.offer_restore = true;  // the banner offers it; the example is shown meanwhile
    } else if (auto p = parse_session(st.last_session); p.session) {
      st.session = *p.session;  // where the last run left off (an invalid one shows its problems)
    }
  }
  if (opt.screenshot_path.empty() && !running_marker(st).empty()) {
    std::error_code ec;
    fs::create_directories(st.config_dir, ec);
    std::string err;
    write_file_atomic(running_marker(st), std::to_string(::getpid()) + "\n", err);
  }
  if (!opt.session_path.empty()) {
    std::string err;
    if (auto s = load_session(opt.session_path, err)) {
      st.session = *s;
      st.session_path = opt.session_path;
    } else if (!opt.screenshot_path.empty()) {
      std::fprintf(stderr, "attnlab: %s\n", err.c_str());
      return 1;
    } else {
      banner = "could not open " + err + " - showing the built-in example";
    }
  }

  if (!opt.screenshot_path.empty()) {  // scripted figures: an invalid session is an error, not a picture
    if (auto v = validate(st.session); !v.ok()) {
      std::fprintf(stderr, "attnlab: %s: %s\n", opt.session_path.empty() ? "example" : opt.session_path.c_str(),
                   join(v.problems).c_str());
      return 1;
    }
  }
  st.opened = st.committed = st.session;
  st.pending_step = opt.step;
  st.detail_head = opt.head;
  for (const auto& id : open_views) st.*(find_view(id)->open) = true;
  glfwSetErrorCallback([](int code, const char* msg) { std::fprintf(stderr, "attnlab: GLFW error %d: %s\n", code, msg); });
  if (!glfwInit()) {
    std::fprintf(stderr, "attnlab: cannot open a window (no display? run under xvfb-run for headless use)\n");
    return 1;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(opt.width, opt.height, "attnlab", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "attnlab: cannot create an OpenGL 3.3 core window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);
  if (!gladLoadGL(glfwGetProcAddress)) {
    std::fprintf(stderr, "attnlab: cannot load OpenGL functions\n");
    return 1;
  }

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  // window layout persists beside the preferences, in the user's config directory (XDG)
  static std::string ini;
  if (!st.config_dir.empty()) {
    std::error_code ec;
    fs::create_directories(st.config_dir, ec);
    ini = st.config_dir + "/imgui.ini";
    io.IniFilename = ini.c_str();
  } else {
    io.IniFilename = nullptr;
  }
  if (opt.no_mouse) io.ConfigFlags |= ImGuiConfigFlags_NoMouse;
  if (opt.font_scale > 0) st.font_scale = opt.font_scale;
  if (opt.light) st.light = true;
  glfwSetKeyCallback(window, OnKey);  // before ImGui's backend, which chains to it
  glfwSetDropCallback(window, [](GLFWwindow*, int n, const char** paths) {
    for (int i = 0; i < n; ++i) g_dropped.emplace_back(paths[i]);
  });
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330 core");
  // the clipboard crosses the 16-bit boundary too: pasted emoji arrive as stand-ins, copied text
  // leaves as the real code points
  io.GetClipboardTextFn = [](void* user) -> const char* {
    static std::string pasted;
    const char* s = glfwGetClipboardString(static_cast<GLFWwindow*>(user));
    pasted = to_ui(s ? s : "");
    return pasted.c_str();
  };
  io.SetClipboardTextFn = [](void* user, const char* text) {
    glfwSetClipboardString(static_cast<GLFWwindow*>(user), from_ui(text ? text : "").c_str());
  };

  int exit_code = 0;
  {
    HeatmapRenderer renderer;
    if (!renderer.init()) return 1;
    Worker worker, worker_b;
    st.worker_b = &worker_b;
    if (!opt.model_dir.empty()) {
      Failure err;
      if (auto m = HfModel::load(opt.model_dir, err)) {  // at start: before the first result
        st.model = std::shared_ptr<const HfModel>(std::move(m));
        worker.set_model(st.model);
      } else if (!opt.screenshot_path.empty()) {
        std::fprintf(stderr, "attnlab: %s\n", err.message.c_str());
        return 1;
      } else {
        banner = "model not loaded: " + err.message;
      }
    }
    if (opt.lesson > 0) {
      if (opt.lesson <= static_cast<int>(st.lessons.size())) GoToLessonStep(st, worker, opt.lesson - 1, opt.lesson_step - 1);
      else banner = "there is no lesson " + std::to_string(opt.lesson) + " (" + std::to_string(st.lessons.size()) + " lessons)";
    }
    if (opt.present) TogglePresentation(st, window, opt);
    st.posted = worker.post(st.session, st.display);
    bool applied_light = !st.light;
    float pending_font_scale = 0;
    const Snapshot* diff_a = nullptr;
    const Snapshot* diff_b = nullptr;

    const auto started = std::chrono::steady_clock::now();
    int ready_frames = 0;
    std::string last_state;
    while (!glfwWindowShouldClose(window)) {
      // Wake on input, or soon while the worker computes, so a result shows the frame it lands.
      if (opt.screenshot_path.empty()) glfwWaitEventsTimeout(worker.busy() || st.incoming ? 0.004 : 0.1);
      else glfwPollEvents();

      if (auto snap = worker.latest(); snap && snap != st.newest) {
        st.newest = snap;
        if (snap->result) {
          st.incoming = snap;  // replaces one still uploading: the newest wins
          st.in_next = 0;
        }
      }
      upload_some(st, renderer, 8.0);
      worker.set_want_metrics(st.show_metrics || st.show_compare);
      worker_b.set_want_metrics(true);
      if (pending_font_scale > 0) st.font_scale = pending_font_scale, pending_font_scale = 0;
      // theme and font scale (the atlas is rebuilt at the new size, between frames)
      if (st.font_scale != st.applied_font_scale || st.light != applied_light || st.fonts.dirty()) {
        st.font_scale = std::clamp(st.font_scale, 1.0f, 3.0f);
        style(st.light, st.font_scale);
        if (st.font_scale != st.applied_font_scale && st.lesson >= 0) {  // the strip changes height: re-place its view
          const auto& step = st.lessons[st.lesson].steps[std::clamp<std::size_t>(st.lesson_step, 0, st.lessons[st.lesson].steps.size() - 1)];
          if (!step.view.empty()) st.place_view = step.view, st.place_frames = 4;
        }
        if (st.font_scale != st.applied_font_scale || st.fonts.dirty()) {
          // rasterised at the size it is shown, so it stays sharp at every scale
          st.fonts.build(std::round(17.0f * st.font_scale));
          ImGui_ImplOpenGL3_DestroyFontsTexture();
          ImGui_ImplOpenGL3_CreateFontsTexture();
        }
        st.applied_font_scale = st.font_scale;
        applied_light = st.light;
      }
      // the pipeline view wants the steps of the open head
      {
        DisplayOptions want = st.display;
        want.steps_layer = st.show_pipeline ? st.layer : -1;
        want.steps_head = st.show_pipeline ? std::max(0, st.detail_head) : -1;
        if (!(want == st.display)) {
          st.display = want;
          Repost(st, worker);
        }
      }
      if (!g_dropped.empty()) {  // a file dropped on the window: the first session among them
        for (const auto& p : g_dropped)
          if (fs::path(p).extension() == ".json") {
            OpenSessionFile(st, worker, p);
            break;
          }
        g_dropped.clear();
      }
      // compare: B is computed by its own worker; its textures and B - A follow new results
      if (st.show_compare) {
        if (!st.b_posted) {
          st.session_b = st.session;
          st.b_posted = worker_b.post(st.session_b, DisplayOptions{st.display.colormap, st.display.range, st.display.log});
        }
        if (auto b = worker_b.latest(); b && b->result && b != st.b_shown) st.b_shown = b;
        if (st.b_shown && st.shown && st.shown->result && (diff_a != st.shown.get() || diff_b != st.b_shown.get())) {
          diff_a = st.shown.get();
          diff_b = st.b_shown.get();
          const Snapshot& b = *st.b_shown;
          st.b_tex.resize(b.n_heads);
          for (int h = 0; h < b.n_heads; ++h) {
            const HeadImage& img = b.images[h];
            const ValueRange w = st.shown->weight_range[0];
            st.b_tex[h].update(renderer, img.width, img.height, img.weights_rg, w.lo, w.hi, b.display.colormap);
          }
          st.diff_img.clear();
          st.diff_tex.resize(std::min(b.n_heads, st.shown->n_heads));
          for (int h = 0; h < int(st.diff_tex.size()); ++h) {
            const Matrix& wa = st.shown->result->layers[0].heads[h].weights;
            const Matrix& wb = b.result->layers[0].heads[h].weights;
            if (wa.rows() != wb.rows() || wa.cols() != wb.cols()) {
              st.diff_tex.resize(h);
              break;
            }
            const Matrix diff = wb - wa;
            ImageData d = make_image(diff, nullptr, kMaxTextureSide);
            const float m = diff.size() ? diff.cwiseAbs().maxCoeff() : 0.0f;
            d.vmin = -m;
            d.vmax = m;
            st.diff_tex[h].update(renderer, d.width, d.height, d.rg, m > 0 ? -m : -1, m > 0 ? m : 1, "rdbu_diverging");
            st.diff_img.push_back(std::move(d));
          }
        }
      }
      if ((st.show_metrics || st.show_compare) && st.shown && st.shown->result && st.shown->result->metrics.empty() &&
          !st.incoming && !worker.busy() && st.newest == st.shown) {
        st.posted = worker.post(st.session, st.display);  // metrics were asked for: compute them now
      }

      ClampSelections(st);
      ImGui_ImplOpenGL3_NewFrame();
      ImGui_ImplGlfw_NewFrame();
      ImGui::NewFrame();
      st.hover = {};
      st.widgets.clear();
      // Nothing that goes wrong while drawing may take the window down: the frame is closed
      // cleanly, the problem is shown, and the last good state stays.
      try {

      const ImGuiViewport* vp = ImGui::GetMainViewport();
      ImGui::SetNextWindowPos(vp->Pos);
      ImGui::SetNextWindowSize(vp->Size);
      ImGui::Begin("attnlab", nullptr,
                   ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoBringToFrontOnFocus |
                       ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_MenuBar);
      if (ImGui::BeginMenuBar()) {
        auto item = [&](const char* label, const char* shortcut, bool* flag, const char* id, bool enabled = true) {
          const bool clicked = ImGui::MenuItem(label, shortcut, flag, enabled);
          if (!ImGui::IsWindowAppearing()) RecordWidget(st, id);  // once the popup is placed
          return clicked;
        };
        auto menu = [&](const char* label, const char* id) {
          const bool open = ImGui::BeginMenu(label);
          RecordWidget(st, id);
          return open;
        };
        if (menu("File", "menu.file")) {
          if (item("Open...", "Ctrl+O", nullptr, "menu.file.open")) st.browser = {true, false, "", "", ""};
          if (item("Save", "Ctrl+S", nullptr, "menu.file.save")) {
            if (st.session_path.empty()) st.browser = {true, true, "", "session.json", ""};
            else SaveSessionFile(st, st.session_path);
          }
          if (item("Save as...", "Ctrl+Shift+S", nullptr, "menu.file.save_as")) st.browser = {true, true, "", "session.json", ""};
          ImGui::Separator();
          if (item("Open model folder (Hugging Face)...", nullptr, nullptr, "menu.file.model", !st.loading)) {
            st.browser = {true, false, "", "", ""};
            st.browser.model = true;
          }
          if (item("Close model", nullptr, nullptr, "menu.file.close_model", st.model != nullptr)) CloseModel(st, worker);
          ImGui::Separator();
          if (ImGui::BeginMenu("Open recent", !st.recent.empty())) {
            for (std::size_t k = 0; k < st.recent.size(); ++k) {
              const std::string path = st.recent[k];
              if (ImGui::MenuItem(path.c_str())) OpenSessionFile(st, worker, path);
              if (!ImGui::IsWindowAppearing()) RecordWidget(st, "menu.file.recent=" + std::to_string(k));
            }
            ImGui::EndMenu();
          }
          RecordWidget(st, "menu.file.recent");
          item("Export figure or matrix...", "Ctrl+E", &st.show_export, "menu.file.export");
          ImGui::Separator();
          if (item("Quit", "Ctrl+Q", nullptr, "menu.file.quit")) glfwSetWindowShouldClose(window, 1);
          ImGui::EndMenu();
        }
        if (menu("Edit", "menu.edit")) {
          if (item("Undo", "Ctrl+Z", nullptr, "menu.edit.undo", !st.undo.empty())) Undo(st, worker);
          if (item("Redo", "Ctrl+Shift+Z", nullptr, "menu.edit.redo", !st.redo.empty())) Redo(st, worker);
          ImGui::EndMenu();
        }
        if (menu("View", "menu.view")) {
          for (const View* v : views()) {
            if (std::string_view(v->menu) != "View") continue;
            if (v->separator_before) ImGui::Separator();
            item(v->label, nullptr, &(st.*(v->open)), ("menu.view." + std::string(v->id)).c_str());
          }
          ImGui::EndMenu();
        }
        if (menu("Lessons", "menu.lessons")) {
          for (std::size_t k = 0; k < st.lessons.size(); ++k) {
            if (ImGui::MenuItem(st.lessons[k].title.c_str(), nullptr, st.lesson == int(k)))
              GoToLessonStep(st, worker, static_cast<int>(k), 0);
            if (!ImGui::IsWindowAppearing()) RecordWidget(st, "menu.lessons=" + std::to_string(k));
          }
          ImGui::EndMenu();
        }
        if (menu("Present", "menu.present")) {
          bool presenting = st.fullscreen && st.light && st.hide_controls;
          if (item("Presentation mode", "F5", &presenting, "menu.present.mode")) TogglePresentation(st, window, opt);
          item("Light theme (projectors)", nullptr, &st.light, "menu.present.light");
          item("Hide controls", "F9", &st.hide_controls, "menu.present.hide");
          bool fs = st.fullscreen;
          if (item("Full screen", "F11", &fs, "menu.present.fullscreen")) {
            st.fullscreen = fs;
            set_fullscreen(window, fs, opt.width, opt.height);
          }
          ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
          float scale = st.font_scale;
          if (ImGui::SliderFloat("font scale", &scale, 1.0f, 3.0f, "%.2gx")) pending_font_scale = scale;
          RecordWidget(st, "menu.present.font");
          ImGui::EndMenu();
        }
        if (menu("Help", "menu.help")) {
          item(find_view("help")->label, "F1", &st.show_help, "menu.help.keys");
          ImGui::EndMenu();
        }
        if (!st.status.empty()) {
          ImGui::SameLine(0, ImGui::GetFontSize() * 2);
          ImGui::TextColored(st.status_error ? ImVec4(1.0f, 0.45f, 0.4f, 1.0f) : ImVec4(0.45f, 0.8f, 0.45f, 1.0f), "%s",
                             st.status.c_str());
        }
        ImGui::EndMenuBar();
      }
      if (!st.hide_controls) {  // presenting: the picture gets the line
        ImGui::TextUnformatted("attnlab");
        ImGui::SameLine();
        ImGui::TextDisabled("%s%s", st.session_path.empty() ? "built-in example" : st.session_path.c_str(),
                            st.session == st.opened ? "" : "  (edited)");
        if (worker.busy() || st.incoming) {
          ImGui::SameLine();
          ImGui::TextColored(ImVec4(0.9f, 0.8f, 0.3f, 1), "computing...");
        }
      }
      if (!banner.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "%s", banner.c_str());
        ImGui::SameLine();
        if (ImGui::SmallButton("dismiss")) banner.clear();
      }
      if (st.offer_restore) {
        ImGui::TextColored(ImVec4(1.0f, 0.7f, 0.3f, 1.0f),
                           "attnlab did not close cleanly last time, so the session it had open was not restored "
                           "(it may be what stopped it).");
        ImGui::SameLine();
        if (ImGui::SmallButton("restore it")) {
          if (auto p = parse_session(st.last_session); p.session) {
            st.session = *p.session;
            Edited(st, worker);
          }
          st.offer_restore = false;
        }
        RecordWidget(st, "restore.offer");
        ImGui::SameLine();
        if (ImGui::SmallButton("keep the example")) st.offer_restore = false;
      }
      if (!st.hide_controls) {
        const float side = ImGui::GetFontSize() * 25;
        ImGui::BeginChild("side", ImVec2(side, 0), false);
        if (st.edit_b && st.show_compare) {  // the same controls, on compare's session B
          ImGui::TextColored(ImVec4(0.95f, 0.7f, 0.3f, 1.0f), "Editing session B (Compare window)");
          std::swap(st.session, st.session_b);
        }
        ShowTextPanel(st, worker);
        ShowControlsPanel(st, worker);
        if (st.edit_b && st.show_compare) std::swap(st.session, st.session_b);
        ImGui::EndChild();
        ImGui::SameLine();
      }
      ImGui::BeginChild("heads", ImVec2(0, 0), false, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
      ShowHeadGrid(st);
      ShowProgress(st, worker);
      ImGui::EndChild();
      ImGui::End();
      ShowHeadDetail(st);
      const ViewContext views_context{worker, worker_b, renderer};
      for (const View* v : views()) v->draw(st, views_context);
      ShowLessonWindow(st, worker);
      ShowExportWindow(st);
      ShowFileBrowser(st, worker);
      ShowModelLoad(st, worker);
      HandleShortcuts(st, worker, window, opt);
      } catch (const std::exception& e) {
        ImGui::ErrorCheckEndFrameRecover(nullptr);
        banner = std::string("a problem while drawing was caught (the window keeps the last good state): ") + e.what();
      }

      ImGui::Render();
      st.labels_cut = TakeLabelsCut();
      glfwGetWindowPos(window, &st.window_rect[0], &st.window_rect[1]);
      glfwGetWindowSize(window, &st.window_rect[2], &st.window_rect[3]);
      int fb_w, fb_h;
      glfwGetFramebufferSize(window, &fb_w, &fb_h);
      glViewport(0, 0, fb_w, fb_h);
      const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
      glClearColor(bg.x, bg.y, bg.z, 1.0f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

      g_banner_for_state = banner;
      if (!opt.state_path.empty()) {
        std::string s = state_json(st, worker, bg, io.DisplayFramebufferScale, fb_w, fb_h);
        if (s != last_state) write_state_dump(opt.state_path, s), last_state = std::move(s);
      }
      if (!opt.screenshot_path.empty()) {
        const bool settled = st.newest && st.newest->generation == st.posted && !worker.busy() && !st.incoming;
        ready_frames = settled ? ready_frames + 1 : 0;
        if (ready_frames >= opt.frames) {
          if (!write_screenshot(opt.screenshot_path, fb_w, fb_h)) {
            std::fprintf(stderr, "attnlab: cannot write %s\n", opt.screenshot_path.c_str());
            exit_code = 1;
          }
          glfwSetWindowShouldClose(window, 1);
        } else if (std::chrono::steady_clock::now() - started > std::chrono::seconds(120)) {
          std::fprintf(stderr, "attnlab: no result within 120 s; no screenshot written\n");
          exit_code = 1;
          glfwSetWindowShouldClose(window, 1);
        }
      }
      glfwSwapBuffers(window);
    }
  }

  // preferences, recent files and the session, for the next start (a scripted screenshot leaves
  // the user's preferences as they were)
  if (opt.screenshot_path.empty()) SavePrefs(st);
  if (!running_marker(st).empty() && opt.screenshot_path.empty()) std::remove(running_marker(st).c_str());  // a clean exit
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return exit_code;
}
