// The window's start-up and frame loop, split by phase: main.cpp (options, the session to
// start on, main), window.cpp (GLFW and Dear ImGui set-up, theme, full screen, keys),
// frame.cpp (one frame: results in, menu bar, panels, views, render) and state_dump.cpp (what
// the GUI tests read).
#pragma once

#include <GLFW/glfw3.h>
#include <imgui.h>

#include <chrono>
#include <string>
#include <vector>

#include "ui.hpp"

namespace attnlab::app {

struct Options {
  std::string session_path, screenshot_path, state_path;
  int frames = 3;
  int width = 1600, height = 1000;
  bool no_mouse = false, example = false, light = false;
  bool result_first = false;  // --first-result-before-first-frame (tests)
  float font_scale = 0;
  std::string step, model_dir, model_b_dir;
  std::string rows, cols;  // --rows, --cols: the head detail's span
  int head = -1;
  int lesson = 0, lesson_step = 1;
  bool present = false;
  std::vector<std::string> views;  // --view: windows open at start
};

// window.cpp
GLFWwindow* OpenWindow(const Options& opt);
void SetUpImGui(AppState& st, GLFWwindow* window, const Options& opt);
void style(bool light, float scale);
void TogglePresentation(AppState& st, GLFWwindow* window, const Options& opt);
void set_fullscreen(GLFWwindow* w, bool on, int width, int height);
void HandleShortcuts(AppState& st, Worker& worker, GLFWwindow* window, const Options& opt);
bool write_screenshot(const std::string& path, int w, int h);
extern std::vector<std::string> g_dropped;  // paths dropped on the window, handled next frame

// frame.cpp
// What the frame loop shares between its phases and keeps from frame to frame.
struct Loop {
  Loop(AppState& s, Worker& w, Worker& wb, const HeatmapRenderer& r, GLFWwindow* win, const Options& o, std::string& b)
      : st(s), worker(w), worker_b(wb), renderer(r), window(win), opt(o), banner(b) {}
  AppState& st;
  Worker& worker;
  Worker& worker_b;
  const HeatmapRenderer& renderer;
  GLFWwindow* window;
  const Options& opt;
  std::string& banner;
  bool applied_light = false;
  float pending_font_scale = 0;
  const Snapshot* diff_a = nullptr;  // the A and B that diff_tex was made from
  const Snapshot* diff_b = nullptr;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  int ready_frames = 0;  // settled frames before --screenshot
  std::string last_state;
  int exit_code = 0;
};
void RunFrame(Loop& L);

// state_dump.cpp
std::string state_json(const AppState& st, const Worker& worker, const std::string& banner, ImVec4 bg, ImVec2 scale,
                       int fb_w, int fb_h);
void write_state_dump(const std::string& path, const std::string& content);

}  // namespace attnlab::app
