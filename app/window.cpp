// The window: GLFW with an OpenGL 3.3 core context, Dear ImGui on it, the theme, full screen
// and presentation mode, and the global keys.
#include <glad/gl.h>
// glad before GLFW
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "window.hpp"

namespace fs = std::filesystem;

namespace attnlab::app {

std::vector<std::string> g_dropped;  // paths dropped on the window (GLFW callback), handled next frame

namespace {

// The window's place and size before it went full screen, restored exactly when it comes back.
struct WindowedRect {
  bool saved = false;
  int x = 0, y = 0, w = 0, h = 0;
} g_windowed;

// Key presses as GLFW reports them, chained before ImGui's own callback: a presenter's clicker
// (and xdotool) taps a key for a few milliseconds, press and release within one frame, which
// ImGui 1.86's per-frame key state can miss.
std::vector<int> g_key_presses;
void OnKey(GLFWwindow*, int key, int, int action, int) {
  if (action == GLFW_PRESS) g_key_presses.push_back(key);
}

}  // namespace

bool write_screenshot(const std::string& path, int w, int h) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w) * h * 3);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, px.data());
  stbi_flip_vertically_on_write(1);
  return stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0;
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

// A GLFW window with an OpenGL 3.3 core context and its loader; null with the reason printed.
GLFWwindow* OpenWindow(const Options& opt) {
  glfwSetErrorCallback([](int code, const char* msg) { std::fprintf(stderr, "attnlab: GLFW error %d: %s\n", code, msg); });
  if (!glfwInit()) {
    std::fprintf(stderr, "attnlab: cannot open a window (no display? run under xvfb-run for headless use)\n");
    return nullptr;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(opt.width, opt.height, "attnlab", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "attnlab: cannot create an OpenGL 3.3 core window\n");
    glfwTerminate();
    return nullptr;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);
  if (!gladLoadGL(glfwGetProcAddress)) {
    std::fprintf(stderr, "attnlab: cannot load OpenGL functions\n");
    return nullptr;
  }

  return window;
}

// Dear ImGui on the window: settings beside the preferences, input callbacks, the clipboard.
void SetUpImGui(AppState& st, GLFWwindow* window, const Options& opt) {
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
}

}  // namespace attnlab::app
