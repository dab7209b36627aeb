// attnlab: the window. Short and boring on purpose: options, the session to start on, set up,
// then one frame per loop (window.hpp says where each phase lives).
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
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <execinfo.h>
#include <signal.h>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "example_session.hpp"  // generated: kExampleSession (assets/sessions/example.json)
#include "present/export.hpp"
#include "core/files.hpp"
#include "core/strings.hpp"
#include "core/gemm.hpp"
#include "core/memory.hpp"
#include "render/heatmap.hpp"
#include "tokenizers/tokenize.hpp"
#include "ui.hpp"
#include "window.hpp"
#include "views/view.hpp"

namespace fs = std::filesystem;
using namespace attnlab;
using namespace attnlab::app;

namespace {

// Reads a session file; on failure returns the one-line reason.
std::optional<Session> load_session(const std::string& path, std::string& error) {
  std::string text;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, error, "a session file")) return std::nullopt;
  auto p = parse_session(text);
  if (!p.session) error = path + ": " + join(p.problems);
  return p.session;
}

// A crash says where it happened on stderr before the process dies with its signal: the
// backtrace (function names, or binary+offset for addr2line) is what a report or a CI log can
// act on. Only async-signal-safe calls; backtrace() is primed at start, so it allocates nothing here.
void OnFatalSignal(int sig) {
  const char* what = sig == SIGSEGV ? "segmentation fault" : sig == SIGBUS ? "bus error" : sig == SIGFPE ? "arithmetic error"
                   : sig == SIGILL ? "illegal instruction" : "abort";
  const char head[] = "attnlab: crashed (";
  (void)!::write(STDERR_FILENO, head, sizeof head - 1);
  (void)!::write(STDERR_FILENO, what, std::strlen(what));
  const char tail[] = "); backtrace:\n";
  (void)!::write(STDERR_FILENO, tail, sizeof tail - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void InstallCrashReport() {
  void* prime[1];
  backtrace(prime, 1);  // loads libgcc's unwinder now, not inside the handler
  static std::vector<char> alt(1 << 16);  // a stack overflow still reports: the handler's own stack
  stack_t ss {};
  ss.ss_sp = alt.data();
  ss.ss_size = alt.size();
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnFatalSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
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

// The command line. False: exit with `exit_code` (help printed, or a bad option explained).
bool ParseOptions(int argc, char** argv, Options& opt, int& exit_code) {
  CLI::App cli{"attnlab: a laboratory for the attention mechanism"};
  cli.add_option("--session", opt.session_path, "session JSON to open (default: the built-in example)");
  cli.add_option("--screenshot", opt.screenshot_path, "write the window as PNG once the result is shown, then exit");
  cli.add_option("--frames", opt.frames, "frames to render before --screenshot")->check(CLI::Range(1, 10000));
  cli.add_option("--state-file", opt.state_path, "keep a JSON of what is shown (for tests)");
  cli.add_option("--width", opt.width, "window width")->check(CLI::Range(320, 16384));
  cli.add_option("--height", opt.height, "window height")->check(CLI::Range(240, 16384));
  cli.add_flag("--no-mouse", opt.no_mouse, "ignore the mouse (reproducible screenshots)");
  cli.add_flag("--first-result-before-first-frame", opt.result_first,
               "for tests: the first frame starts once the first result is computed, and uploads it whole");
  cli.add_option("--view", opt.views, "open a view window (repeatable): " + join(view_ids(), ", "))
      ->check(CLI::IsMember(view_ids()));
  cli.add_flag("--example", opt.example, "start on the built-in example, not where the last run left off");
  cli.add_option("--font-scale", opt.font_scale, "font scale, 1 to 3")->check(CLI::Range(1.0, 3.0));
  cli.add_flag("--light", opt.light, "light, high-contrast theme");
  cli.add_option("--step", opt.step, "with --view pipeline: start on this step (input, q, k, v, scores, scaled, biased, masked, weights, context, output)");
  cli.add_option("--model-b", opt.model_b_dir, "open a second model folder as Compare A / B's B (one text through two models)");
  cli.add_option("--model", opt.model_dir, "open a Hugging Face model folder (GPT-2, BERT, Llama, Qwen2, Mistral, Phi-3, GPT-NeoX or Gemma 2): its attention on the text");
  cli.add_option("--head", opt.head, "the head opened large (and walked through by the pipeline)");
  cli.add_option("--lesson", opt.lesson, "open lesson N (1 = the first of the Lessons menu)")->check(CLI::Range(1, 1000));
  cli.add_option("--lesson-step", opt.lesson_step, "with --lesson: start on step K (1 = the first)")->check(CLI::Range(1, 1000));
  cli.add_flag("--present", opt.present, "start in presentation mode (F5)");
  cli.add_option("--rows", opt.rows, "with --head: show these query rows, A:B (B not included)");
  cli.add_option("--cols", opt.cols, "with --head: show these key columns, C:D (D not included)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = cli.exit(e);
    return false;
  }
  return true;
}

// The session to start on (the example, the last one unless the last run crashed, or --session),
// the preferences, lessons and stale temporaries. False: a scripted run cannot go on.
bool PrepareState(AppState& st, const Options& opt, std::string& banner) {
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
      return false;
    } else {
      banner = "could not open " + err + " - showing the built-in example";
    }
  }

  if (!opt.screenshot_path.empty()) {  // scripted figures: an invalid session is an error, not a picture
    // long texts are computed as a field (pipeline.hpp): valid when either path takes them
    if (auto v = validate(st.session); !v.ok() && !validate(st.session, ComputePath::field).ok()) {
      std::fprintf(stderr, "attnlab: %s: %s\n", opt.session_path.empty() ? "example" : opt.session_path.c_str(),
                   join(v.problems).c_str());
      return false;
    }
  }
  st.opened = st.committed = st.session;
  st.pending_step = opt.step;
  st.detail_head = opt.head;
  st.span_rows = opt.rows, st.span_cols = opt.cols;
  st.span_pending = !opt.rows.empty() || !opt.cols.empty();
  for (const auto& id : opt.views) st.*(find_view(id)->open) = true;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  attnlab::choose_blas_kernels(argv);  // first: it may run the process again
  attnlab::tune_allocator();
  InstallCrashReport();
  Options opt;
  if (int code = 0; !ParseOptions(argc, argv, opt, code)) return code;
  AppState st;
  std::string banner;  // a problem opening the requested session, shown in the window
  if (!PrepareState(st, opt, banner)) return 1;
  GLFWwindow* window = OpenWindow(opt);
  if (!window) return 1;
  SetUpImGui(st, window, opt);
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
    if (!opt.model_b_dir.empty()) {
      Failure err;
      if (auto m = HfModel::load(opt.model_b_dir, err)) {
        st.model_b = std::shared_ptr<const HfModel>(std::move(m));
      } else if (!opt.screenshot_path.empty()) {
        std::fprintf(stderr, "attnlab: %s\n", err.message.c_str());
        return 1;
      } else {
        banner = "B's model not loaded: " + err.message;
      }
    }
    if (opt.lesson > 0) {
      if (opt.lesson <= static_cast<int>(st.lessons.size())) GoToLessonStep(st, worker, opt.lesson - 1, opt.lesson_step - 1);
      else banner = "there is no lesson " + std::to_string(opt.lesson) + " (" + std::to_string(st.lessons.size()) + " lessons)";
    }
    if (opt.present) TogglePresentation(st, window, opt);
    st.posted = worker.post(st.session, st.display);
    if (opt.result_first)  // what a fast machine does by chance: the result is there in frame 0
      for (int i = 0; i < 1000 && !worker.latest(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    Loop loop{st, worker, worker_b, renderer, window, opt, banner};
    loop.applied_light = !st.light;
    while (!glfwWindowShouldClose(window)) RunFrame(loop);
    exit_code = loop.exit_code;
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
