// Training (issue 13): a small transformer trained live on a task, on its own thread over both
// cores, while this window shows the loss and accuracy curves, each head's induction and
// previous-token scores over the steps (the phase change a visible kink), and every head's
// attention on a probe sequence, redrawn as training runs. Start / pause / step / reset, and a
// scrubber over the checkpoints to replay how the heads formed; the trained model saved as a
// Hugging Face folder the model view opens.
#include <imgui.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "background.hpp"
#include "present/colormap.hpp"
#include "training/trainer.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace fs = std::filesystem;

// What the training thread publishes for the window: immutable once made.
struct TrainingView {
  train::TrainSpec spec;
  std::string task;  // the task described
  std::vector<train::LogRow> log;
  std::vector<int> checkpoints;  // their steps
  train::ProbeAttention probe;   // the live model's, or the scrubbed checkpoint's
  int scrub = -1;                // checkpoint index shown; -1 the live model
  int step = 0, steps = 0, phase_change = -1;
  bool running = false, done = false;
  double seconds = 0, steps_per_second = 0, gflops = 0;
  std::int64_t parameters = 0;
  std::string error, saved;
  std::uint64_t serial = 0;  // 1, 2, ... in publishing order
  // two checkpoints saved for Compare A / B (the window opens them): their folders, the probe's
  // text, what went wrong; compare_serial counts the requests done
  std::string compare_a, compare_b, compare_text, compare_error;
  std::uint64_t compare_serial = 0;
};

struct TrainingRun {
  std::mutex mu;
  std::condition_variable cv;
  std::thread thread;
  // asked by the window (under mu)
  bool quit = false, reset = true, save = false;
  std::atomic<bool> running{false};
  int single_steps = 0, scrub = -1;
  bool stop_at_phase_change = false;
  train::TrainSpec spec;
  std::string save_dir;
  bool compare = false;             // save checkpoints compare_with[0] and [1] under compare_root
  std::array<int, 2> compare_with{-1, -1};
  std::string compare_root;
  // published (under mu)
  std::shared_ptr<const TrainingView> shown;

  explicit TrainingRun(const train::TrainSpec& s) : spec(s) { thread = std::thread([this] {
    run_below_the_ui();
    Loop();
  }); }
  ~TrainingRun() {
    {
      std::lock_guard<std::mutex> lk(mu);
      quit = true;
      running = false;
    }
    cv.notify_all();
    thread.join();
  }
  std::shared_ptr<const TrainingView> View() {
    std::lock_guard<std::mutex> lk(mu);
    return shown;
  }
  void Ask(const std::function<void(TrainingRun&)>& f) {
    {
      std::lock_guard<std::mutex> lk(mu);
      f(*this);
    }
    cv.notify_all();
  }

 private:
  std::unique_ptr<train::Trainer> trainer_;
  std::string error_, saved_;
  int scrub_shown_ = -2;
  std::uint64_t serial_ = 0;
  std::string compare_a_, compare_b_, compare_text_, compare_error_;
  std::uint64_t compare_serial_ = 0;

  void Publish(int scrub) {
    auto v = std::make_shared<TrainingView>();
    v->serial = ++serial_;
    if (trainer_) {
      const train::Trainer& t = *trainer_;
      v->spec = t.spec(), v->task = t.task().describe(), v->log = t.log();
      for (const auto& c : t.checkpoints()) v->checkpoints.push_back(c.step);
      if (scrub >= static_cast<int>(t.checkpoints().size())) scrub = -1;
      v->scrub = scrub;
      v->probe = scrub >= 0 ? t.probe(t.checkpoints()[static_cast<std::size_t>(scrub)].params) : t.probe();
      v->probe.step = scrub >= 0 ? t.checkpoints()[static_cast<std::size_t>(scrub)].step : t.step();
      v->step = t.step(), v->steps = t.spec().training.steps, v->phase_change = t.phase_change_step();
      v->done = t.done(), v->seconds = t.seconds();
      v->steps_per_second = t.seconds() > 0 ? t.step() / t.seconds() : 0;
      v->gflops = t.seconds() > 0 ? t.flops_per_step() * t.step() / t.seconds() / 1e9 : 0;
      v->parameters = t.model().params.count();
    }
    v->running = running;
    v->error = error_, v->saved = saved_;
    v->compare_a = compare_a_, v->compare_b = compare_b_, v->compare_text = compare_text_;
    v->compare_error = compare_error_, v->compare_serial = compare_serial_;
    std::lock_guard<std::mutex> lk(mu);
    shown = std::move(v);
  }

  // Checkpoints pair[0] and pair[1] saved as model folders under root (step-N each), with the
  // probe's text, for the window to open as Compare A / B's two models.
  void Compare(const std::array<int, 2>& pair, const std::string& root) {
    const auto& cps = trainer_->checkpoints();
    compare_error_.clear();
    std::string dirs[2], why;
    for (int side = 0; side < 2; ++side) {
      const int c = pair[side];
      if (c < 0 || c >= static_cast<int>(cps.size())) {
        compare_error_ = "no checkpoint " + std::to_string(c);
        break;
      }
      dirs[side] = root + "/step-" + std::to_string(cps[static_cast<std::size_t>(c)].step);
      std::error_code ec;
      std::filesystem::create_directories(root, ec);
      if (ec) {
        compare_error_ = root + ": " + ec.message();
        break;
      }
      if (!trainer_->save(dirs[side], cps[static_cast<std::size_t>(c)].params, why)) {
        compare_error_ = why;
        break;
      }
    }
    // the probe in the saved tokenizer's terms: symbols between spaces, a text's characters as they are
    const train::ProbeAttention p = trainer_->probe();
    const bool chars = trainer_->spec().task.kind == train::TaskKind::text;
    std::string text;
    for (const std::string& t : p.tokens) text += (text.empty() || chars ? "" : " ") + t;
    compare_a_ = dirs[0], compare_b_ = dirs[1], compare_text_ = text;
    ++compare_serial_;
  }

  void Loop() {
    // below the window's thread (nice 10, inherited by the OpenMP and OpenBLAS threads this thread
    // starts): both cores train, and a frame still gets a core when it needs one
    setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
    for (;;) {
      bool do_reset = false, do_save = false, stop_at = false, do_compare = false;
      int steps = 0, scrub = -1;
      std::array<int, 2> pair{-1, -1};
      train::TrainSpec spec;
      std::string dir, root;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait_for(lk, std::chrono::milliseconds(250), [&] {
          return quit || reset || save || compare || single_steps > 0 || scrub != scrub_shown_ ||
                 (running && trainer_ && !trainer_->done());
        });
        if (quit) return;
        do_reset = reset, reset = false, spec = this->spec;
        do_save = save, save = false, dir = save_dir;
        do_compare = compare, compare = false, pair = compare_with, root = compare_root;
        steps = single_steps, single_steps = 0;
        scrub = this->scrub, stop_at = stop_at_phase_change;
      }
      if (do_reset) {
        std::string why;
        auto t = train::Trainer::make(spec, why);
        if (t) {
          trainer_ = std::move(t);
          trainer_->evaluate();
          trainer_->keep_checkpoint();
          error_.clear(), saved_.clear();
        } else {
          error_ = why;  // the last good trainer stays
        }
      }
      if (trainer_ && (running || steps > 0) && !trainer_->done()) {
        // ~150 ms of steps between refreshes (the 200 ms), fewer when asked for single steps
        const auto t0 = std::chrono::steady_clock::now();
        const train::TrainingOptions& o = trainer_->spec().training;
        do {
          trainer_->train_step();
          const bool eval = trainer_->step() % o.eval_every == 0 || trainer_->done() || steps > 0;
          if (eval) trainer_->evaluate();
          if (trainer_->step() % o.checkpoint_every == 0 || trainer_->done()) trainer_->keep_checkpoint();
          if (eval && stop_at && trainer_->phase_change_step() >= 0) {
            trainer_->keep_checkpoint();
            running = false;
          }
          if (steps > 0 && --steps == 0) break;
        } while ((running || steps > 0) && !trainer_->done() &&
                 std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(150));
        if (trainer_->done()) running = false;
      }
      if (do_save && trainer_) {
        std::string why;
        const auto& cps = trainer_->checkpoints();
        const bool ok = scrub >= 0 && scrub < static_cast<int>(cps.size())
                            ? trainer_->save(dir, cps[static_cast<std::size_t>(scrub)].params, why)
                            : trainer_->save(dir, why);
        saved_ = ok ? "saved to " + dir + " (open it with File > Open model folder)" : why;
      }
      if (do_compare && trainer_) Compare(pair, root);
      scrub_shown_ = scrub;
      Publish(scrub);
    }
  }
};

namespace {

const ImU32 kSeries[] = {IM_COL32(86, 180, 233, 255), IM_COL32(230, 159, 0, 255), IM_COL32(0, 158, 115, 255),
                         IM_COL32(204, 121, 167, 255), IM_COL32(240, 228, 66, 255), IM_COL32(213, 94, 0, 255),
                         IM_COL32(0, 114, 178, 255), IM_COL32(200, 200, 200, 255)};

struct Series {
  std::string name;
  std::vector<float> x, y;
  ImU32 colour;
};

// A line chart of some series over the steps, y from lo to hi, the phase change marked; returns its rect.
ImVec4 Chart(const char* title, const std::vector<Series>& series, float x_max, float lo, float hi, int phase_step,
             int marker_step, ImVec2 size) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 o = ImGui::GetCursorScreenPos();
  const float font = ImGui::GetFontSize();
  const ImU32 frame = ImGui::GetColorU32(ImGuiCol_Border), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  dl->AddText(o, ImGui::GetColorU32(ImGuiCol_Text), title);
  const float left = o.x + font * 2.6f, top = o.y + font * 1.3f, right = o.x + size.x - 4, bottom = o.y + size.y - font * 1.2f;
  dl->AddRect(ImVec2(left, top), ImVec2(right, bottom), frame);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", hi);
  dl->AddText(ImVec2(o.x, top - font * 0.5f), dim, buf);
  std::snprintf(buf, sizeof buf, "%.3g", lo);
  dl->AddText(ImVec2(o.x, bottom - font * 0.5f), dim, buf);
  std::snprintf(buf, sizeof buf, "step %d", static_cast<int>(x_max));
  dl->AddText(ImVec2(right - ImGui::CalcTextSize(buf).x, bottom + 2), dim, buf);
  dl->AddText(ImVec2(left, bottom + 2), dim, "0");
  auto X = [&](float x) { return left + (right - left) * (x_max > 0 ? x / x_max : 0); };
  auto Y = [&](float y) { return bottom - (bottom - top) * (hi > lo ? (std::clamp(y, lo, hi) - lo) / (hi - lo) : 0); };
  if (phase_step >= 0) {
    dl->AddLine(ImVec2(X(static_cast<float>(phase_step)), top), ImVec2(X(static_cast<float>(phase_step)), bottom),
                IM_COL32(255, 80, 80, 200), 1.5f);
    const float px = X(static_cast<float>(phase_step)), tw = ImGui::CalcTextSize("phase change").x;
    dl->AddText(ImVec2(px + 3 + tw < right ? px + 3 : px - 3 - tw, top + 1), IM_COL32(255, 110, 110, 255), "phase change");
  }
  if (marker_step >= 0)
    dl->AddLine(ImVec2(X(static_cast<float>(marker_step)), top), ImVec2(X(static_cast<float>(marker_step)), bottom),
                IM_COL32(255, 255, 255, 140), 1.0f);
  float lx = left + 4;
  for (const Series& s : series) {
    std::vector<ImVec2> pts;
    for (std::size_t i = 0; i < s.x.size(); ++i) pts.push_back(ImVec2(X(s.x[i]), Y(s.y[i])));
    if (pts.size() >= 2) dl->AddPolyline(pts.data(), static_cast<int>(pts.size()), s.colour, 0, 1.8f);
    if (!s.name.empty() && lx < right - font * 4) {  // the legend, along the top inside the frame
      dl->AddText(ImVec2(lx, bottom - font * 1.2f), s.colour, s.name.c_str());
      lx += ImGui::CalcTextSize(s.name.c_str()).x + font;
    }
  }
  ImGui::Dummy(size);
  return ImVec4(left, top, right - left, bottom - top);
}

struct UiState {  // the window's own state
  train::TrainSpec edit;
  bool live = true;
  int scrub = 0;
  bool stop_at_phase_change = false;
  char save_dir[512] = "trained-model";
  std::array<float, 4> heads_rect{}, loss_rect{};
  std::array<int, 3> hover{-1, -1, -1};  // (layer * heads + head, query, key)
  std::string edit_error;
  int compare_with = -1;                  // the checkpoint B of "Compare in A / B" (-1: the last, whichever it is)
  const void* compare_run = nullptr;      // the run and the compare request last opened
  std::uint64_t compare_seen = 0;
  std::vector<float> running_frame_ms;  // the last 600 frames drawn while the run trained
};
UiState& Ui() {
  static UiState ui;
  return ui;
}

template <class E>
bool EnumCombo(const char* label, E& value, std::initializer_list<E> values, const char* (*name)(E)) {
  bool changed = false;
  if (ImGui::BeginCombo(label, name(value))) {
    for (E v : values)
      if (ImGui::Selectable(name(v), v == value)) value = v, changed = true;
    ImGui::EndCombo();
  }
  return changed;
}

void SpecEditor(UiState& ui) {
  train::TrainSpec& s = ui.edit;
  const float w = ImGui::GetFontSize() * 7;
  ImGui::PushItemWidth(w);
  EnumCombo("task", s.task.kind,
            {train::TaskKind::induction, train::TaskKind::copy, train::TaskKind::reverse, train::TaskKind::sort,
             train::TaskKind::modular_addition, train::TaskKind::parentheses, train::TaskKind::text},
            train::task_name);
  ImGui::SameLine();
  ImGui::InputInt("length", &s.task.length, 0);
  ImGui::SameLine();
  if (s.task.kind == train::TaskKind::modular_addition) ImGui::InputInt("modulus", &s.task.modulus, 0);
  else ImGui::InputInt("symbols", &s.task.symbols, 0);
  ImGui::InputInt("layers", &s.model.n_layers, 0);
  ImGui::SameLine();
  ImGui::InputInt("heads", &s.model.n_heads, 0);
  ImGui::SameLine();
  ImGui::InputInt("kv heads", &s.model.n_kv_heads, 0);
  ImGui::SameLine();
  ImGui::InputInt("d_model", &s.model.d_model, 0);
  ImGui::SameLine();
  ImGui::Checkbox("MLP", &s.model.mlp);
  EnumCombo("positions", s.model.pos,
            {train::PosKind::learned, train::PosKind::sinusoidal, train::PosKind::rope, train::PosKind::alibi,
             train::PosKind::t5, train::PosKind::none},
            train::pos_name);
  ImGui::SameLine();
  EnumCombo("mask", s.model.mask, {train::MaskRule::causal, train::MaskRule::sliding_window}, train::mask_name);
  if (s.model.mask == train::MaskRule::sliding_window) {
    ImGui::SameLine();
    ImGui::InputInt("window", &s.model.window, 0);
  }
  ImGui::SameLine();
  EnumCombo("normalizer", s.model.norm, {train::AttnNorm::softmax, train::AttnNorm::sigmoid}, train::norm_name);
  ImGui::InputInt("steps", &s.training.steps, 0);
  ImGui::SameLine();
  ImGui::InputInt("batch", &s.training.batch, 0);
  ImGui::SameLine();
  float lr = static_cast<float>(s.training.lr);
  if (ImGui::InputFloat("lr", &lr, 0, 0, "%.5f")) s.training.lr = std::clamp(lr, 1e-7f, 1.0f);
  ImGui::SameLine();
  int seed = static_cast<int>(s.training.seed);
  if (ImGui::InputInt("seed", &seed, 0)) s.training.seed = static_cast<std::uint64_t>(std::max(0, seed));
  ImGui::PopItemWidth();
  s.training.steps = std::clamp(s.training.steps, 1, 10000000);
  s.training.batch = std::clamp(s.training.batch, 1, 4096);
}

void Heads(AppState& st, UiState& ui, const TrainingView& v) {
  const train::ProbeAttention& p = v.probe;
  if (p.weights.empty()) return;
  const int L = static_cast<int>(p.weights.size()), H = static_cast<int>(p.weights[0].size());
  const int T = static_cast<int>(p.ids.size());
  const float font = ImGui::GetFontSize();
  const float avail = ImGui::GetContentRegionAvail().x;
  const float side = std::clamp((avail - font * (H - 1)) / H, font * 4, font * 16);
  const float cell = side / T;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 o = ImGui::GetCursorScreenPos();
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  ui.hover = {-1, -1, -1};
  if (st.training_tex_of != v.serial || st.training_tex.size() != static_cast<std::size_t>(L * H)) {
    // one texture per head (sqrt of the weight through viridis; cells above the diagonal transparent)
    st.training_tex.resize(static_cast<std::size_t>(L * H));
    std::vector<float> rg(static_cast<std::size_t>(2 * T * T));
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        const train::Mat<float>& w = p.weights[l][h];
        for (int i = 0; i < T; ++i)
          for (int j = 0; j < T; ++j) {
            rg[2 * (i * T + j)] = std::sqrt(std::max(0.0f, w(i, j)));
            rg[2 * (i * T + j) + 1] = j <= i ? 1.0f : 0.0f;
          }
        st.training_tex[static_cast<std::size_t>(l * H + h)].update_on_cpu(T, T, rg, 0.0f, 1.0f, "viridis");
      }
    st.training_tex_of = v.serial;
  }
  const train::LogRow* row = nullptr;  // the scores at the shown step
  for (const train::LogRow& r : v.log)
    if (r.step <= p.step) row = &r;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const ImVec2 a(o.x + h * (side + font), o.y + l * (side + font * 2.4f) + font * 1.2f);
      char title[96];
      if (row)
        std::snprintf(title, sizeof title, "L%d H%d  ind %.2f  prev %.2f", l, h,
                      row->induction[static_cast<std::size_t>(l * H + h)], row->prev_token[static_cast<std::size_t>(l * H + h)]);
      else
        std::snprintf(title, sizeof title, "L%d H%d", l, h);
      if (row && ImGui::CalcTextSize(title).x > side)  // narrow: the short form
        std::snprintf(title, sizeof title, "L%dH%d i%.2f p%.2f", l, h, row->induction[static_cast<std::size_t>(l * H + h)],
                      row->prev_token[static_cast<std::size_t>(l * H + h)]);
      dl->AddText(ImVec2(a.x, a.y - font * 1.15f), ImGui::GetColorU32(ImGuiCol_Text), title);
      const unsigned tex = st.training_tex[static_cast<std::size_t>(l * H + h)].texture();
      dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<std::intptr_t>(tex)), a, ImVec2(a.x + side, a.y + side));
      dl->AddRect(a, ImVec2(a.x + side, a.y + side), ImGui::GetColorU32(ImGuiCol_Border));
      if (mouse.x >= a.x && mouse.x < a.x + side && mouse.y >= a.y && mouse.y < a.y + side && ImGui::IsWindowHovered())
        ui.hover = {l * H + h, static_cast<int>((mouse.y - a.y) / cell), static_cast<int>((mouse.x - a.x) / cell)};
    }
  const ImVec2 size(H * (side + font), L * (side + font * 2.4f) + font * 0.5f);
  ui.heads_rect = {o.x, o.y + font * 1.2f, H * (side + font) - font, L * (side + font * 2.4f)};
  ImGui::Dummy(size);
  RecordWidget(st, "training.heads");
  if (ui.hover[0] >= 0) {
    const int l = ui.hover[0] / H, h = ui.hover[0] % H, i = ui.hover[1], j = ui.hover[2];
    if (i >= 0 && i < T && j >= 0 && j < T) {
      ImGui::BeginTooltip();
      ImGui::Text("layer %d, head %d: query %d \"%s\" -> key %d \"%s\"", l, h, i, Readable(p.tokens[i]).c_str(), j,
                  Readable(p.tokens[j]).c_str());
      ImGui::Text("weight %.4f", static_cast<double>(p.weights[l][h](i, j)));
      ImGui::EndTooltip();
    }
  }
}

void ShowTrainingWindow(AppState& st) {
  if (!st.show_training) return;
  UiState& ui = Ui();
  const ImVec2 vs = ImGui::GetMainViewport()->Size;
  const float font = ImGui::GetFontSize(), x = std::min(font * 22, vs.x * 0.3f), y = font * 3;
  ImGui::SetNextWindowSize(ImVec2(std::min(font * 84, vs.x - x - 8), vs.y - y - 8), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(x, y), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "training");
  // the scrollbar always there: the heads keep their size as the content grows
  if (!ImGui::Begin("Training###training", &st.show_training, ImGuiWindowFlags_AlwaysVerticalScrollbar)) {
    ImGui::End();
    return;
  }
  RecordWidget(st, "training.window");
  if (!st.training) st.training = std::make_shared<TrainingRun>(ui.edit);  // assets/training/induction.json's run
  TrainingRun* run = st.training.get();
  if (!st.training_action.empty()) {  // a lesson step's
    const std::string a = st.training_action;
    st.training_action.clear();
    if (a == "reset") {
      ui.edit = train::TrainSpec();
      ui.live = true;
      const train::TrainSpec s = ui.edit;
      run->Ask([&](TrainingRun& r) { r.spec = s, r.reset = true, r.running = false, r.scrub = -1; });
    } else {
      ui.stop_at_phase_change = a == "start_until_phase_change";
      const bool stop = ui.stop_at_phase_change, go = a != "pause";
      run->Ask([&](TrainingRun& r) { r.stop_at_phase_change = stop, r.running = go; });
    }
  }
  const std::shared_ptr<const TrainingView> vp = run->View();
  if (ImGui::CollapsingHeader("Task, model and training", ImGuiTreeNodeFlags_None)) SpecEditor(ui);
  // controls
  const bool running = vp && vp->running;
  if (running && !st.frame_ms.empty()) {  // the frame before this one, drawn while training
    if (ui.running_frame_ms.size() >= 600) ui.running_frame_ms.erase(ui.running_frame_ms.begin());
    ui.running_frame_ms.push_back(st.frame_ms.back());
  }
  if (ImGui::Button(running ? "Pause" : (vp && vp->step > 0 ? "Resume" : "Start"), ImVec2(font * 6, 0)))
    run->Ask([&](TrainingRun& r) { r.running = !running; });
  RecordWidget(st, "training.start");
  ImGui::SameLine();
  if (ImGui::Button("Step")) run->Ask([](TrainingRun& r) { r.running = false, ++r.single_steps; });
  RecordWidget(st, "training.step");
  ImGui::SameLine();
  if (ImGui::Button("Reset")) {
    const train::TrainSpec s = ui.edit;
    run->Ask([&](TrainingRun& r) { r.spec = s, r.reset = true, r.running = false; });
    ui.live = true;
  }
  RecordWidget(st, "training.reset");
  ImGui::SameLine();
  if (ImGui::Checkbox("stop at the phase change", &ui.stop_at_phase_change))
    run->Ask([&](TrainingRun& r) { r.stop_at_phase_change = ui.stop_at_phase_change; });
  if (!vp) {
    ImGui::TextDisabled("preparing...");
    ImGui::End();
    return;
  }
  const TrainingView& v = *vp;
  if (!v.error.empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s (the last good run is kept)", v.error.c_str());
  ImGui::Text("step %d / %d   %.0f steps/s   %.1f GFLOP/s   %.1f s   %lld parameters", v.step, v.steps,
              v.steps_per_second, v.gflops, v.seconds, static_cast<long long>(v.parameters));
  ImGui::TextDisabled("%s", v.task.c_str());
  if (v.phase_change >= 0)
  {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1, 0.5f, 0.5f, 1));
    ImGui::TextWrapped("phase change at step %d: validation loss below half its plateau and a layer-1 head's induction "
                       "score above 0.5", v.phase_change);
    ImGui::PopStyleColor();
  }
  // curves
  std::vector<Series> loss(2), acc(1), ind, prev;
  loss[0] = {"train loss", {}, {}, kSeries[1]}, loss[1] = {"validation loss", {}, {}, kSeries[0]};
  acc[0] = {"validation accuracy", {}, {}, kSeries[2]};
  const int L = v.spec.model.n_layers, H = v.spec.model.n_heads;
  const int ind_layer = std::min(1, L - 1);
  for (int h = 0; h < H; ++h) {
    ind.push_back({"L" + std::to_string(ind_layer) + "H" + std::to_string(h), {}, {}, kSeries[h % 8]});
    prev.push_back({"L0H" + std::to_string(h), {}, {}, kSeries[h % 8]});
  }
  float loss_hi = 0;
  for (const train::LogRow& r : v.log) {
    const float s = static_cast<float>(r.step);
    loss[0].x.push_back(s), loss[0].y.push_back(static_cast<float>(r.train_loss));
    loss[1].x.push_back(s), loss[1].y.push_back(static_cast<float>(r.val_loss));
    acc[0].x.push_back(s), acc[0].y.push_back(static_cast<float>(r.val_accuracy));
    loss_hi = std::max({loss_hi, static_cast<float>(r.train_loss), static_cast<float>(r.val_loss)});
    for (int h = 0; h < H; ++h) {
      ind[h].x.push_back(s), ind[h].y.push_back(static_cast<float>(r.induction[static_cast<std::size_t>(ind_layer * H + h)]));
      prev[h].x.push_back(s), prev[h].y.push_back(static_cast<float>(r.prev_token[static_cast<std::size_t>(h)]));
    }
  }
  const float cw = (ImGui::GetContentRegionAvail().x - font) / 2, chh = font * 9;
  const float x_max = static_cast<float>(std::max(v.steps, 1));
  const int marker = v.scrub >= 0 ? v.probe.step : -1;
  const ImVec4 lr = Chart("loss", loss, x_max, 0, std::max(loss_hi, 1e-3f), v.phase_change, marker, ImVec2(cw, chh));
  ui.loss_rect = {lr.x, lr.y, lr.z, lr.w};
  RecordWidget(st, "training.loss");
  ImGui::SameLine();
  Chart("validation accuracy", acc, x_max, 0, 1, v.phase_change, marker, ImVec2(cw, chh));
  Chart(("induction score, layer " + std::to_string(ind_layer)).c_str(), ind, x_max, 0, 1, v.phase_change, marker, ImVec2(cw, chh));
  ImGui::SameLine();
  Chart("previous-token score, layer 0", prev, x_max, 0, 1, v.phase_change, marker, ImVec2(cw, chh));
  // the scrubber over checkpoints
  if (!v.checkpoints.empty()) {
    if (ImGui::Checkbox("live", &ui.live)) {
      const int s = ui.live ? -1 : ui.scrub;
      run->Ask([s](TrainingRun& r) { r.scrub = s; });
    }
    ImGui::SameLine();
    const int last = static_cast<int>(v.checkpoints.size()) - 1;
    ui.scrub = std::clamp(ui.scrub, 0, last);
    char fmt[48];
    std::snprintf(fmt, sizeof fmt, "checkpoint at step %d", v.checkpoints[static_cast<std::size_t>(ui.scrub)]);
    ImGui::SetNextItemWidth(std::max(font * 10, ImGui::GetContentRegionAvail().x - font * 12));
    if (ImGui::SliderInt("##scrub", &ui.scrub, 0, last, fmt)) {
      ui.live = false;
      const int s = ui.scrub;
      run->Ask([s](TrainingRun& r) { r.scrub = s; });
    }
    RecordWidget(st, "training.scrub");
    if (ui.live) ui.scrub = last;
    // two checkpoints side by side in one step: this one as A, the one chosen here as B, saved
    // as model folders and opened in Compare A / B over the probe's text
    {  // drawn from the first checkpoint on, so that the heads below keep their place
      const int with = ui.compare_with < 0 || ui.compare_with > last ? last : ui.compare_with;  // -1 follows the last
      ImGui::TextUnformatted("Compare this checkpoint (A) with");
      ImGui::SameLine();
      ImGui::SetNextItemWidth(font * 9);
      const std::string preview = "step " + std::to_string(v.checkpoints[static_cast<std::size_t>(with)]) +
                                  (ui.compare_with < 0 ? " (the last)" : "");
      if (ImGui::BeginCombo("##compare_with", preview.c_str())) {
        for (int c = 0; c <= last; ++c)
          if (ImGui::Selectable(("step " + std::to_string(v.checkpoints[static_cast<std::size_t>(c)])).c_str(), c == with))
            ui.compare_with = c == last ? -1 : c;
        ImGui::EndCombo();
      }
      RecordWidget(st, "training.compare_with");
      ImGui::SameLine();
      ImGui::BeginDisabled(st.loading != nullptr || last < 1);
      if (ImGui::Button("in Compare A / B")) {
        const std::array<int, 2> pair{ui.live ? last : ui.scrub, with};
        const std::string root = (st.config_dir.empty() ? fs::temp_directory_path().string() + "/attnlab" : st.config_dir) +
                                 "/compare-checkpoints";
        run->Ask([pair, root](TrainingRun& r) { r.compare = true, r.compare_with = pair, r.compare_root = root; });
      }
      ImGui::EndDisabled();
      RecordWidget(st, "training.compare");
    }
  }
  // a compare request done: A's model is loaded, then B's (ShowModelLoad), over the probe's text
  if (v.compare_serial && (ui.compare_run != run || ui.compare_seen != v.compare_serial)) {
    ui.compare_run = run, ui.compare_seen = v.compare_serial;
    if (!v.compare_error.empty()) {
      st.status = "could not compare the checkpoints: " + v.compare_error;
      st.status_error = true;
    } else if (!st.loading) {
      st.session.text = v.compare_text;
      st.next_model_b = v.compare_b;
      StartModelLoad(st, v.compare_a);
      st.show_compare = true;
    }
  }
  ImGui::Text("attention on a probe (step %d; colour: sqrt of the weight):", v.probe.step);
  ImGui::SameLine();
  std::string probe_text;
  for (std::size_t i = 0; i < v.probe.tokens.size() && i < 40; ++i) probe_text += v.probe.tokens[i] + " ";
  ImGui::TextDisabled("%s%s", probe_text.c_str(), v.probe.tokens.size() > 40 ? "..." : "");
  Heads(st, ui, v);
  // save
  ImGui::SetNextItemWidth(font * 16);
  ImGui::InputText("##savedir", ui.save_dir, sizeof ui.save_dir);
  ImGui::SameLine();
  if (ImGui::Button(v.scrub >= 0 ? "Save this checkpoint" : "Save model")) {
    const std::string dir = ui.save_dir;
    run->Ask([dir](TrainingRun& r) { r.save = true, r.save_dir = dir; });
  }
  if (!v.saved.empty()) {
    ImGui::SameLine();
    ImGui::TextWrapped("%s", v.saved.c_str());
  }
  ImGui::End();
}

}  // namespace

extern const View kTrainingView{"training", "View", "Training", &AppState::show_training, true, nullptr,
    [](AppState& st, const ViewContext&) { ShowTrainingWindow(st); },
    [](const AppState& st, nlohmann::json& j) {
      const UiState& ui = Ui();
      nlohmann::json t = {{"open", st.show_training}};
      if (st.training)
        if (const auto v = st.training->View()) {
          t["step"] = v->step, t["steps"] = v->steps, t["running"] = v->running, t["done"] = v->done;
          t["log_rows"] = v->log.size(), t["phase_change_step"] = v->phase_change, t["probe_step"] = v->probe.step;
          t["scrub"] = v->scrub, t["checkpoints"] = v->checkpoints, t["error"] = v->error, t["saved"] = v->saved;
          t["val_loss"] = v->log.empty() ? 0.0 : v->log.back().val_loss;
          t["steps_per_second"] = v->steps_per_second;
        }
      t["heads_rect"] = ui.heads_rect, t["loss_rect"] = ui.loss_rect, t["hover"] = ui.hover;
      t["frames_while_training"] = ui.running_frame_ms.size();
      t["frame_ms_p99"] = frame_p99(ui.running_frame_ms);
      t["frame_ms_p50"] = frame_quantile(ui.running_frame_ms, 0.5);
      j["training"] = t;
    }};

}  // namespace attnlab::app
