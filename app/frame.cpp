// One frame of the window: the newest result in (textures uploaded a few at a time), the menu
// bar, the main window, every view of the registry, the dialogs, then render and the state dump.
#include <glad/gl.h>
// glad before GLFW
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <imgui_internal.h>  // ErrorCheckEndFrameRecover: a frame that threw is closed cleanly

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "session/cost.hpp"
#include "tokenizers/tokenize.hpp"
#include "views/view.hpp"
#include "window.hpp"

namespace fs = std::filesystem;

namespace attnlab::app {
namespace {

// Every view's remembered selection, clamped to what the shown Result has (a head chosen before
// n_heads went down must not be read past the end).
void ClampSelections(AppState& st) {
  if (!st.shown || !st.shown->result) return;
  const Result& r = *st.shown->result;
  const int layers = r.n_layers();
  st.layer = std::clamp(st.layer, 0, std::max(0, layers - 1));
  const int heads = layers ? r.n_heads() : 0;
  if (st.detail_head >= heads) st.detail_head = -1;
  if (st.lines_head >= heads) st.lines_head = -1;
  st.compare_head = std::clamp(st.compare_head, 0, std::max(0, heads - 1));
  st.flash_head = std::clamp(st.flash_head, 0, std::max(0, heads - 1));
  st.mask_head = std::clamp(st.mask_head, 0, std::max(0, heads - 1));
  if (st.lines_token >= static_cast<int>(r.tokens.size())) st.lines_token = -1;
  st.pipeline_step = std::max(0, st.pipeline_step);
}

// One head's weights or logits texture of snapshot s into t.
void upload_head(const Snapshot& s, AppState::Textures& t, std::size_t k, bool logits, const HeatmapRenderer& renderer) {
  const HeadImage& img = s.images[k];
  const bool own = s.display.range == RangeMode::per_head;
  if (logits) {
    if (img.logits_rg.empty()) return;
    const ValueRange l = own ? s.head_logit_range[k] : s.logit_range[k / s.n_heads];
    t.logits[k].update(renderer, img.width, img.height, img.logits_rg, l.lo, l.hi, s.display.colormap);
  } else {
    const ValueRange w = own ? s.head_weight_range[k] : s.weight_range[k / s.n_heads];
    t.weights[k].update(renderer, img.width, img.height, img.weights_rg, w.lo, w.hi,
                        s.signed_weights ? std::string("rdbu_diverging") : s.display.colormap);
  }
}

// The heads a result is shown with: the layer on screen and layer 0 (the flash view's heads);
// a model's other layers (11 of GPT-2's 12, 29 of SmolLM's 30) go up after it is shown.
bool head_first(const AppState& st, const Snapshot& s, std::size_t k) {
  const int layer = static_cast<int>(k / std::size_t(std::max(1, s.n_heads)));
  return layer == 0 || layer == std::clamp(st.layer, 0, std::max(0, s.n_layers - 1));
}

// The heads of head_first not yet in t (ready flags rw, rl): weights, and logits while they are
// shown. False when `over` said the time was up before they were all there.
template <class Over>
bool upload_first_heads(const AppState& st, const Snapshot& s, AppState::Textures& t, std::vector<char>& rw,
                        std::vector<char>& rl, const HeatmapRenderer& renderer, Over over) {
  const bool logits_shown = st.quantity == Quantity::logits;
  for (std::size_t k = 0; k < s.images.size(); ++k) {
    if (!head_first(st, s, k)) continue;
    for (const bool logits : {false, true}) {
      if (logits && (!logits_shown || s.images[k].logits_rg.empty())) continue;
      char& ready = logits ? rl[k] : rw[k];
      if (ready) continue;
      if (over()) return false;
      upload_head(s, t, k, logits, renderer);
      ready = 1;
    }
  }
  return true;
}

// The shown result's head textures left for after its swap, when they are to be drawn: those of
// the layer on screen (the user moved to another layer: 12 textures, ~13 ms, in that frame), the
// logits while they are what the heads show. Layers nobody looks at are never uploaded: in the
// background they took the cores from the next keystroke's computation.
void upload_late_heads(AppState& st, const HeatmapRenderer& renderer) {
  if (!st.shown || st.ready_w.size() != st.shown->images.size() || st.ready_l.size() != st.shown->images.size()) return;
  upload_first_heads(st, *st.shown, st.tex, st.ready_w, st.ready_l, renderer, [] { return false; });
}

// Uploads the textures of st.incoming for about `budget_ms` (at least one texture), into the
// second texture set; when the first ones are done, the new result replaces the shown one in one
// swap. So a large result never stalls a frame, and what is drawn is always one whole result.
// First: the heads of the layer on screen and of layer 0 (their logits too when those are
// shown), then every open view's images in registry order. Then it is shown; another layer's
// heads and the logits go up when they are drawn (upload_late_heads): at 512 tokens through
// GPT-2 small, 12 x 12 heads, an edit waited for 144 textures where 12 are on screen.
void upload_some(AppState& st, const HeatmapRenderer& renderer, double budget_ms) {
  if (!st.incoming) return;
  const Snapshot& s = *st.incoming;
  auto& t = st.in_tex;
  const std::size_t heads = s.images.size();
  t.weights.resize(heads);
  t.logits.resize(heads);
  st.in_ready_w.resize(heads, 0);
  st.in_ready_l.resize(heads, 0);
  std::vector<std::pair<const std::vector<ImageData>*, std::vector<Heatmap>*>> lists;  // the views' images
  std::size_t views_total = 0;
  for (auto& [id, images] : s.views) {
    auto& tex = t.views[id];
    tex.resize(images.size());
    lists.push_back({&images, &tex});
    views_total += images.size();
  }
  for (auto it = t.views.begin(); it != t.views.end();)  // views with nothing this time
    it = s.views.count(it->first) ? std::next(it) : t.views.erase(it);
  const std::string& cmap = s.display.colormap;
  const auto t0 = std::chrono::steady_clock::now();
  auto over = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() > budget_ms; };
  bool first_done = upload_first_heads(st, s, t, st.in_ready_w, st.in_ready_l, renderer, over);
  while (first_done && st.in_views_next < views_total) {
    if (over()) {
      first_done = false;
      break;
    }
    std::size_t k = st.in_views_next;
    for (auto& [images, tex] : lists) {
      if (k >= images->size()) {
        k -= images->size();
        continue;
      }
      const ImageData& img = (*images)[k];
      (*tex)[k].update(renderer, img.width, img.height, img.rg, img.vmin, img.vmax, img.diverging ? "rdbu_diverging" : cmap);
      break;
    }
    ++st.in_views_next;
  }
  if (first_done) {
    st.shown = std::move(st.incoming);
    st.incoming.reset();
    if (st.shown->generation == st.edit_generation)
      st.edit_to_picture_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - st.edit_posted_at).count();
    std::swap(st.tex, st.in_tex);
    st.ready_w = std::move(st.in_ready_w), st.ready_l = std::move(st.in_ready_l);
    st.in_ready_w.clear(), st.in_ready_l.clear();
    // labels change only with the result: build and measure them once here, not every frame
    st.labels.clear();
    for (const auto& tok : st.shown->result->tokens) {
      st.labels.push_back(to_ui(Clip(token_label(tok.text), 40)));
      st.fonts.need(st.labels.back());
    }
    st.key_labels.clear();
    for (const auto& tok : st.shown->result->keys()) {
      st.key_labels.push_back(to_ui(Clip(token_label(tok.text), 40)));
      st.fonts.need(st.key_labels.back());
    }
    st.labels_measured = false;
  }
}

// The widest label, measured inside a frame: before the first NewFrame ImGui has no current font
// (a first result small enough to upload in frame 0 crashed the app at start: CI, twice), and
// after the atlas is rebuilt the old one is gone until the next NewFrame.
void MeasureLabels(AppState& st) {
  if (st.labels_measured) return;
  st.labels_measured = true;
  st.longest_label_em = 0;
  for (const auto* list : {&st.labels, &st.key_labels})
    for (std::size_t i = 0; i < list->size() && i < 512; ++i)
      st.longest_label_em = std::max(st.longest_label_em, ImGui::CalcTextSize((*list)[i].c_str()).x / ImGui::GetFontSize());
}

// Before drawing: the newest result and its textures, theme and fonts, what the views ask the
// worker for, dropped files, compare's B and B - A.
void PrepareFrame(Loop& L) {
  AppState& st = L.st;
  Worker& worker = L.worker;
  Worker& worker_b = L.worker_b;
  const HeatmapRenderer& renderer = L.renderer;
  const Options& opt = L.opt;
  bool& applied_light = L.applied_light;
  float& pending_font_scale = L.pending_font_scale;
  const Snapshot*& diff_a = L.diff_a;
  const Snapshot*& diff_b = L.diff_b;
  // input wakes the loop at once; without it, 5 frames a second while the worker computes (a
  // progress bar needs no more, and on a software renderer a 1080p frame is ~60 ms of CPU taken
  // from the computation: 12 heads at 32k tokens took 100 s instead of 51 at full frame rate),
  // 20 while tiles arrive, fast only while textures upload
  const bool tiles_busy = st.tiles && st.tiles->busy();
  const double idle_wait = worker.busy() ? 0.2 : tiles_busy ? 0.05 : 0.1;
  if (opt.screenshot_path.empty()) glfwWaitEventsTimeout(st.incoming ? 0.004 : idle_wait);
  else if (worker.busy() || tiles_busy) glfwWaitEventsTimeout(idle_wait);
  else glfwPollEvents();
  st.frame_start = std::chrono::steady_clock::now();  // the frame's own work starts here

  if (auto snap = worker.latest(); snap && snap != st.newest) {
    st.newest = snap;
    if (snap->result) {
      st.incoming = snap;  // replaces one still uploading: the newest wins
      st.in_views_next = 0;
      st.in_ready_w.clear(), st.in_ready_l.clear();
    }
  }
  {  // only the open views are prepared: opening one asks for its pictures (from the Result in
     // hand: the worker does not compute again)
    std::vector<std::string> open;
    for (const View* v : views())
      if (st.*(v->open) && v->prepare) open.push_back(v->id);
    if (open != st.display.views_open) {
      st.display.views_open = std::move(open);
      if (st.shown && st.shown->result) Repost(st, worker);
    } else if (st.shown && st.shown->result && st.shown->display.views_open != st.display.views_open && !worker.busy() &&
               !st.incoming && st.newest == st.shown) {
      Repost(st, worker);  // shown before the windows' list reached the worker (the first result)
    }
  }
  // the heads' logits images are made while logits are shown; switched to them, the Result in hand
  // is pictured again with them (switched back, the next results leave them out)
  if (const bool logits = st.quantity == Quantity::logits; logits != st.display.logits) {
    st.display.logits = logits;
    if (logits && st.shown && st.shown->result && !st.shown->display.logits) Repost(st, worker);
  }
  // an edit's new heads go up in one frame where they can (12 heads of 2048 tokens take ~13 ms
  // here: in 8 ms slices a second frame, 15-20 ms on llvmpipe, came before the picture); other
  // uploads (a display change, late textures) in slices that keep frames short
  const bool edit = st.incoming && st.incoming->generation == st.edit_generation;
  upload_some(st, renderer, opt.result_first && ImGui::GetFrameCount() == 0 ? 1e9 : edit ? 24.0 : 8.0);
  if (!st.incoming) upload_late_heads(st, renderer);
  if (st.tiles) st.tiles->upload(renderer, 4.0);
  worker.set_want_metrics(st.show_metrics || st.show_compare);
  worker.set_want_logit_lens(st.show_lens && st.model);
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
    if (!st.b_posted) {  // B starts as A: its text, its model, its intervention
      st.session_b = st.session;
      st.b_intervention = st.intervention;
      PostB(st, st.session_b);
    }
    if (auto b = worker_b.latest(); b && b->result && b != st.b_shown) st.b_shown = b;
    // the layer compared: the head grid's, within both
    const int layer = st.b_shown && st.shown && st.shown->result
                          ? std::clamp(st.layer, 0, std::max(0, std::min(st.shown->n_layers, st.b_shown->n_layers) - 1))
                          : 0;
    if (st.b_shown && st.shown && st.shown->result && !st.shown->field && !st.b_shown->field &&
        (diff_a != st.shown.get() || diff_b != st.b_shown.get() || st.diff_layer != layer)) {
      diff_a = st.shown.get();
      diff_b = st.b_shown.get();
      st.diff_layer = layer;
      const Snapshot& b = *st.b_shown;
      st.b_tex.resize(b.n_heads);
      for (int h = 0; h < b.n_heads; ++h) {
        const HeadImage& img = b.images[std::size_t(layer) * b.n_heads + h];
        const ValueRange w = st.shown->weight_range[std::size_t(layer)];
        st.b_tex[h].update(renderer, img.width, img.height, img.weights_rg, w.lo, w.hi, b.display.colormap);
      }
      st.diff_img.clear();
      st.diff_tex.resize(std::min(b.n_heads, st.shown->n_heads));
      for (int h = 0; h < int(st.diff_tex.size()); ++h) {
        const Matrix& wa = st.shown->result->layers[layer].heads[h].weights;
        const Matrix& wb = b.result->layers[layer].heads[h].weights;
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
  if (st.show_lens && st.model && st.shown && st.shown->result && st.shown->result->logit_lens.empty() &&
      !st.shown->result->is_field() && st.lens_asked != st.shown->generation && !st.incoming && !worker.busy() &&
      st.newest == st.shown) {
    st.lens_asked = st.shown->generation;  // once per result: a model without an output head has none
    st.posted = worker.post(st.session, st.display);  // the logit lens was asked for: compute it now
  }

}

// The menu bar: File, Edit, View (from the view registry), Lessons, Present, Help.
void ShowMenuBar(Loop& L) {
  AppState& st = L.st;
  Worker& worker = L.worker;
  GLFWwindow* window = L.window;
  const Options& opt = L.opt;
  float& pending_font_scale = L.pending_font_scale;
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
}

// The window under the menu bar: status line, banners, the side panel and the head grid.
void ShowMainWindow(Loop& L) {
  AppState& st = L.st;
  Worker& worker = L.worker;
  std::string& banner = L.banner;
  if (!st.hide_controls) {  // presenting: the picture gets the line
    ImGui::TextUnformatted("attnlab");
    ImGui::SameLine();
    if (st.model)  // a model's folder is what is open, whatever session the text came from
      ImGui::TextDisabled("model %s", st.model->info().dir.c_str());
    else
      ImGui::TextDisabled("%s%s", st.session_path.empty() ? "built-in example" : st.session_path.c_str(),
                          st.session == st.opened ? "" : "  (edited)");
    if (worker.busy() || st.incoming) {
      ImGui::SameLine();
      ImGui::TextColored(ImVec4(0.9f, 0.8f, 0.3f, 1), "computing...");
    }
    if (st.shown && st.shown->result) {  // what the result holds against the budget (Display: memory budget)
      const Result& r = *st.shown->result;
      ImGui::SameLine(0, ImGui::GetFontSize() * 1.5f);
      ImGui::TextDisabled("%s  memory %s of %s", !r.is_field() ? "dense" : r.fields[0].heads[0].half ? "field (q, k F16 above the budget; v F32)" : "field (q, k, v F32)", human_bytes(r.bytes()).c_str(),
                          human_bytes(memory_budget_bytes()).c_str());
      RecordWidget(st, "status.memory");
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
}

// After drawing: render, the state dump for tests, and --screenshot once the result settled.
void FinishFrame(Loop& L) {
  AppState& st = L.st;
  Worker& worker = L.worker;
  GLFWwindow* window = L.window;
  const Options& opt = L.opt;
  std::string& banner = L.banner;
  const auto started = L.started;
  int& ready_frames = L.ready_frames;
  std::string& last_state = L.last_state;
  int& exit_code = L.exit_code;
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

  // the tests' state dump is not part of a frame the user waits for (at 32k tokens its text and
  // tokens take 5-10 ms to serialise): its time is left out of the frame times below
  double dump_ms = 0;
  if (!opt.state_path.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string s = state_json(st, worker, banner, bg, ImGui::GetIO().DisplayFramebufferScale, fb_w, fb_h);
    if (s != last_state) write_state_dump(opt.state_path, s), last_state = std::move(s);
    dump_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!opt.screenshot_path.empty()) {
    const bool settled = st.newest && st.newest->generation == st.posted && !worker.busy() && !st.incoming &&
                         !(st.tiles && st.tiles->busy());
    ready_frames = settled ? ready_frames + 1 : 0;
    if (ready_frames >= opt.frames) {
      if (!write_screenshot(opt.screenshot_path, fb_w, fb_h)) {
        std::fprintf(stderr, "attnlab: cannot write %s\n", opt.screenshot_path.c_str());
        exit_code = 1;
      }
      glfwSetWindowShouldClose(window, 1);
    } else if (std::chrono::steady_clock::now() - started > std::chrono::seconds(300)) {
      std::fprintf(stderr, "attnlab: no result within 300 s; no screenshot written\n");
      exit_code = 1;
      glfwSetWindowShouldClose(window, 1);
    }
  }
  glfwSwapBuffers(window);
  // how long frames take (prepare, draw, render, swap), kept for the state dump's p99, and
  // separately those drawn while the worker computes
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - st.frame_start).count() - dump_ms;
  auto keep = [&](std::vector<float>& ring) {
    if (ring.size() >= 600) ring.erase(ring.begin());
    ring.push_back(static_cast<float>(ms));
  };
  keep(st.frame_ms);
  keep(worker.busy() ? st.busy_frame_ms : st.idle_frame_ms);
}

}  // namespace

// One frame. Nothing that goes wrong while drawing may take the window down: the frame is
// closed cleanly, the problem is shown, and the last good state stays.
void RunFrame(Loop& L) {
  AppState& st = L.st;
  PrepareFrame(L);
  ClampSelections(st);
  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
  MeasureLabels(st);
  st.hover = {};
  st.widgets.clear();
  st.ruler = st.labels_drawn = false;
  if (st.detail_head < 0) st.tile_level = -1, st.tiles_drawn = 0;
  try {
    const ImGuiViewport* vp = ImGui::GetMainViewport();
    ImGui::SetNextWindowPos(vp->Pos);
    ImGui::SetNextWindowSize(vp->Size);
    ImGui::Begin("attnlab", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoBringToFrontOnFocus |
                     ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_MenuBar |
                     ImGuiWindowFlags_NoBackground);  // glClear paints WindowBg: a second full-screen fill
                                                      // was half of llvmpipe's time per frame at 1080p
    ShowMenuBar(L);
    ShowMainWindow(L);
    ImGui::End();
    ShowHeadDetail(st);
    const ViewContext views_context{L.worker, L.worker_b, L.renderer};
    for (const View* v : views()) v->draw(st, views_context);
    // a view restored (imgui.ini) where a larger screen had it is brought back on screen; when it
    // appears with settings from imgui.ini, the whole of it (moved left / up, and made smaller when
    // larger than the screen); a view's own first-use place is left as the view chose it
    const ImVec2 screen = ImGui::GetMainViewport()->Size;
    for (const View* v : views()) {
      ImGuiWindow* w = ImGui::FindWindowByName((std::string("###") + v->id).c_str());
      if (!w || !(w->Active || w->WasActive)) continue;
      const float margin = ImGui::GetFontSize() * 4;
      if (w->Active && w->Appearing && w->SettingsOffset != -1 && (w->Pos.x + w->Size.x > screen.x || w->Pos.y + w->Size.y > screen.y)) {
        const ImVec2 size(std::min(w->Size.x, screen.x), std::min(w->Size.y, screen.y));
        ImGui::SetWindowSize(w, size);
        ImGui::SetWindowPos(w, ImVec2(std::clamp(w->Pos.x, 0.0f, screen.x - size.x), std::clamp(w->Pos.y, 0.0f, screen.y - size.y)));
      } else if (w->Pos.x > screen.x - margin || w->Pos.y > screen.y - margin) {
        ImGui::SetWindowPos(w, ImVec2(std::clamp(screen.x - w->Size.x, 0.0f, screen.x - margin),
                                      std::clamp(screen.y - w->Size.y, 0.0f, screen.y - margin)));
      }
    }
    ShowLessonWindow(st, L.worker);
    ShowExportWindow(st);
    ShowFileBrowser(st, L.worker);
    ShowModelLoad(st, L.worker);
    HandleShortcuts(st, L.worker, L.window, L.opt);
  } catch (const std::exception& e) {
    ImGui::ErrorCheckEndFrameRecover(nullptr);
    L.banner = std::string("a problem while drawing was caught (the window keeps the last good state): ") + e.what();
  }
  FinishFrame(L);
}

}  // namespace attnlab::app
