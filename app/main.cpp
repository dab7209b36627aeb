// attnlab: the window. Short and boring on purpose: set up, then one frame per loop.
#include <glad/gl.h>
// glad before GLFW
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <stb_image_write.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "example_session.hpp"  // generated: kExampleSession (assets/sessions/example.json)
#include "memory.hpp"
#include "render/heatmap.hpp"
#include "tokenize.hpp"
#include "ui.hpp"

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::app;

namespace {

struct Options {
  std::string session_path, screenshot_path, state_path;
  int frames = 3;
  int width = 1600, height = 1000;
  bool no_mouse = false;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
  return s;
}

// Reads a session file; on failure returns the one-line reason.
std::optional<Session> load_session(const std::string& path, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  std::error_code ec;
  if (!f || fs::is_directory(path, ec)) {
    error = path + ": cannot open";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  auto p = parse_session(ss.str());
  if (!p.session) error = path + ": " + join(p.problems);
  return p.session;
}

void write_file_atomically(const std::string& path, const std::string& content) {
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
void upload_some(AppState& st, const HeatmapRenderer& renderer, double budget_ms) {
  if (!st.incoming) return;
  const Snapshot& s = *st.incoming;
  auto& t = st.in_tex;
  const std::size_t heads = s.images.size();
  t.weights.resize(heads);
  t.logits.resize(heads);
  t.masks.resize(s.masks.size());
  t.gallery.resize(s.gallery.size());
  t.positional.resize(s.positional.size());
  t.analysis.resize(s.analysis.size());
  auto upload_image = [&](Heatmap& h, const ImageData& img) {
    h.update(renderer, img.width, img.height, img.rg, img.vmin, img.vmax, img.diverging ? "rdbu_diverging" : "viridis");
  };
  const std::size_t total = 2 * heads + s.masks.size() + s.gallery.size() + s.positional.size() + s.analysis.size();
  const auto t0 = std::chrono::steady_clock::now();
  while (st.in_next < total) {
    std::size_t k = st.in_next;
    if (k < 2 * heads) {
      const HeadImage& img = s.images[k / 2];
      const std::size_t layer = (k / 2) / s.n_heads;
      if (k % 2 == 0) t.weights[k / 2].update(renderer, img.width, img.height, img.weights_rg, 0.0f, s.weight_max[layer]);
      else t.logits[k / 2].update(renderer, img.width, img.height, img.logits_rg, s.logit_min[layer], s.logit_max[layer]);
    } else if ((k -= 2 * heads) < s.masks.size()) {
      upload_image(t.masks[k], s.masks[k]);
    } else if ((k -= s.masks.size()) < s.gallery.size()) {
      upload_image(t.gallery[k], s.gallery[k]);
    } else if ((k -= s.gallery.size()) < s.positional.size()) {
      upload_image(t.positional[k], s.positional[k]);
    } else {
      k -= s.positional.size();
      upload_image(t.analysis[k], s.analysis[k]);
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
    st.longest_label = 0;
    for (const auto& tok : st.shown->result->tokens) {
      st.labels.push_back(token_label(tok.text));
      if (st.labels.size() <= 512) st.longest_label = std::max(st.longest_label, ImGui::CalcTextSize(st.labels.back().c_str()).x);
    }
    st.key_labels.clear();
    for (const auto& tok : st.shown->result->keys()) {
      st.key_labels.push_back(token_label(tok.text));
      if (st.key_labels.size() <= 512)
        st.longest_label = std::max(st.longest_label, ImGui::CalcTextSize(st.key_labels.back().c_str()).x);
    }
  }
}

// What tests read: where each head was drawn (framebuffer pixels), what is shown, the problems.
std::string state_json(const AppState& st, const Worker& worker, ImVec4 bg, ImVec2 scale, int fb_w, int fb_h) {
  nlohmann::json j;
  j["posted"] = st.posted;
  j["busy"] = worker.busy() || st.incoming != nullptr;  // computing, or uploading textures
  j["framebuffer"] = {fb_w, fb_h};
  j["background"] = {int(bg.x * 255 + 0.5f), int(bg.y * 255 + 0.5f), int(bg.z * 255 + 0.5f)};
  j["text_box"] = {st.text_box.x * scale.x, st.text_box.y * scale.y, st.text_box.z * scale.x, st.text_box.w * scale.y};
  j["quantity"] = st.quantity == Quantity::weights ? "weights" : "logits";
  j["detail_head"] = st.detail_head;
  j["hover"] = {{"head", st.hover.head}, {"query", st.hover.query}, {"key", st.hover.key}};
  nlohmann::json widgets = nlohmann::json::object();
  for (const auto& [name, r] : st.widgets) widgets[name] = {r.x * scale.x, r.y * scale.y, r.z * scale.x, r.w * scale.y};
  j["widgets"] = widgets;
  j["windows"] = {{"mask", st.show_mask}, {"gallery", st.show_gallery}, {"positional", st.show_positional},
                  {"metrics", st.show_metrics}, {"flash", st.show_flash}};
  j["flash_step"] = st.flash_step;
  j["layer"] = st.layer;
  j["problems"] = st.problems_current() ? st.newest->problems : std::vector<std::string>{};
  if (st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
    j["shown_generation"] = st.shown->generation;
    j["mask"] = name(r.session.attention.mask.kind);
    j["positional"] = name(r.session.positional.kind);
    if (!st.shown->mask_density.empty()) {
      j["mask_density"] = st.shown->mask_density;
      j["mask_cells"] = st.shown->mask_cells;
    }
    std::vector<std::string> allowed;  // head 0's pattern, a string per row
    const MaskMatrix& a = *r.layers[0].heads[0].allowed;
    for (Eigen::Index i = 0; i < a.rows() && a.rows() <= 64; ++i) {
      std::string row;
      for (Eigen::Index c = 0; c < a.cols(); ++c) row += a(i, c) ? '1' : '0';
      allowed.push_back(row);
    }
    j["allowed"] = allowed;
    j["gallery"] = st.shown->gallery.size();
    j["positional_views"] = st.shown->positional.size();
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
    j["flash_tiles"] = r.layers[0].heads[0].flash_trace.size();
  }
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void load_fonts() {
  ImGuiIO& io = ImGui::GetIO();
  const char* path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  std::error_code ec;
  if (!fs::exists(path, ec)) {  // Debian's ImGui asserts on a missing font file: check first
    std::fprintf(stderr, "attnlab: %s not found (package fonts-dejavu-core); using the built-in font\n", path);
    return;
  }
  // Latin, Greek, Cyrillic, punctuation, arrows and the symbols that show whitespace tokens.
  static ImVector<ImWchar> ranges;
  ImFontGlyphRangesBuilder b;
  b.AddRanges(io.Fonts->GetGlyphRangesDefault());
  b.AddRanges(io.Fonts->GetGlyphRangesCyrillic());
  static const ImWchar extra[] = {0x0100, 0x024F, 0x0370, 0x03FF, 0x2000, 0x206F, 0x2190, 0x21FF,
                                  0x2200, 0x22FF, 0x2300, 0x23FF, 0x2400, 0x243F, 0x25A0, 0x25FF, 0};
  b.AddRanges(extra);
  b.BuildRanges(&ranges);
  io.Fonts->AddFontFromFileTTF(path, 17.0f, nullptr, ranges.Data);
}

void style() {
  ImGui::StyleColorsDark();
  ImGuiStyle& s = ImGui::GetStyle();
  s.WindowRounding = 0;
  s.FrameRounding = 3;
  s.GrabRounding = 3;
  s.Colors[ImGuiCol_WindowBg] = ImVec4(0.11f, 0.11f, 0.12f, 1.0f);  // opaque: masked cells show exactly this
  s.Colors[ImGuiCol_ChildBg] = ImVec4(0, 0, 0, 0);
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
  cli.add_option("--view", open_views, "open a view window: mask, gallery, positional (repeatable)")
      ->check(CLI::IsMember({"mask", "gallery", "positional", "metrics", "flash"}));
  CLI11_PARSE(cli, argc, argv);

  AppState st;
  std::string banner;  // a problem opening the requested session, shown in the window
  {
    auto p = parse_session(kExampleSession);
    st.session = p.session.value_or(Session{});
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
  st.opened = st.session;
  for (const auto& v : open_views) {
    st.show_mask |= v == "mask";
    st.show_gallery |= v == "gallery";
    st.show_positional |= v == "positional";
    st.show_metrics |= v == "metrics";
    st.show_flash |= v == "flash";
  }
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
  io.IniFilename = nullptr;  // layouts do not leak between runs (persisted preferences come later)
  if (opt.no_mouse) io.ConfigFlags |= ImGuiConfigFlags_NoMouse;
  style();
  load_fonts();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330 core");

  int exit_code = 0;
  {
    HeatmapRenderer renderer;
    if (!renderer.init()) return 1;
    Worker worker;
    st.posted = worker.post(st.session);

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
      worker.set_want_metrics(st.show_metrics);
      if (st.show_metrics && st.shown && st.shown->result && st.shown->result->metrics.empty() && !st.incoming &&
          !worker.busy() && st.newest == st.shown) {
        st.posted = worker.post(st.session);  // the Metrics window was opened: compute them now
      }

      ImGui_ImplOpenGL3_NewFrame();
      ImGui_ImplGlfw_NewFrame();
      ImGui::NewFrame();
      st.hover = {};
      st.widgets.clear();

      const ImGuiViewport* vp = ImGui::GetMainViewport();
      ImGui::SetNextWindowPos(vp->Pos);
      ImGui::SetNextWindowSize(vp->Size);
      ImGui::Begin("attnlab", nullptr,
                   ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoBringToFrontOnFocus |
                       ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_MenuBar);
      if (ImGui::BeginMenuBar()) {
        if (ImGui::BeginMenu("View")) {
          RecordWidget(st, "menu.view");
          ImGui::MenuItem("Mask", nullptr, &st.show_mask);
          RecordWidget(st, "menu.view.mask");
          ImGui::MenuItem("Mask gallery", nullptr, &st.show_gallery);
          RecordWidget(st, "menu.view.gallery");
          ImGui::MenuItem("Positional encoding", nullptr, &st.show_positional);
          RecordWidget(st, "menu.view.positional");
          ImGui::MenuItem("Metrics and rollout", nullptr, &st.show_metrics);
          RecordWidget(st, "menu.view.metrics");
          ImGui::MenuItem("Flash attention, tile by tile", nullptr, &st.show_flash);
          RecordWidget(st, "menu.view.flash");
          ImGui::EndMenu();
        } else {
          RecordWidget(st, "menu.view");
        }
        ImGui::EndMenuBar();
      }
      ImGui::TextUnformatted("attnlab");
      ImGui::SameLine();
      ImGui::TextDisabled("%s%s", st.session_path.empty() ? "built-in example" : st.session_path.c_str(),
                          st.session == st.opened ? "" : "  (edited)");
      if (worker.busy() || st.incoming) {
        ImGui::SameLine();
        ImGui::TextColored(ImVec4(0.9f, 0.8f, 0.3f, 1), "computing...");
      }
      if (!banner.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "%s", banner.c_str());
        ImGui::SameLine();
        if (ImGui::SmallButton("dismiss")) banner.clear();
      }
      const float side = ImGui::GetFontSize() * 25;
      ImGui::BeginChild("side", ImVec2(side, 0), false);
      ShowTextPanel(st, worker);
      ShowControlsPanel(st, worker);
      ImGui::EndChild();
      ImGui::SameLine();
      ImGui::BeginChild("heads", ImVec2(0, 0), false, ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoScrollWithMouse);
      ShowHeadGrid(st);
      ImGui::EndChild();
      ImGui::End();
      ShowHeadDetail(st);
      ShowMaskWindow(st, worker);
      ShowGalleryWindow(st, worker);
      ShowPositionalWindow(st);
      ShowMetricsWindow(st);
      ShowFlashWindow(st);

      ImGui::Render();
      int fb_w, fb_h;
      glfwGetFramebufferSize(window, &fb_w, &fb_h);
      glViewport(0, 0, fb_w, fb_h);
      const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
      glClearColor(bg.x, bg.y, bg.z, 1.0f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

      if (!opt.state_path.empty()) {
        std::string s = state_json(st, worker, bg, io.DisplayFramebufferScale, fb_w, fb_h);
        if (s != last_state) write_file_atomically(opt.state_path, s), last_state = std::move(s);
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

  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return exit_code;
}
