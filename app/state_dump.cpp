// The state dump: what the window shows, as JSON, rewritten when it changes (--state-file). The
// GUI tests read it: where each head was drawn, what is open, the problems, the labels.
#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/utf8.hpp"
#include "tokenizers/tokenize.hpp"
#include "views/view.hpp"
#include "window.hpp"

namespace fs = std::filesystem;

namespace attnlab::app {

float frame_p99(std::vector<float> ms) { return frame_quantile(std::move(ms), 0.99); }

float frame_quantile(std::vector<float> ms, double q) {
  if (ms.empty()) return 0.0f;
  const auto k = ms.begin() + static_cast<std::ptrdiff_t>(q * double(ms.size() - 1));
  std::nth_element(ms.begin(), k, ms.end());
  return *k;
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

// What tests read: where each head was drawn (framebuffer pixels), what is shown, the problems.
std::string state_json(const AppState& st, const Worker& worker, const std::string& banner, ImVec4 bg, ImVec2 scale,
                       int fb_w, int fb_h) {
  nlohmann::json j;
  j["posted"] = st.posted;
  j["busy"] = worker.busy() || st.incoming != nullptr;  // computing, or uploading textures
  j["computing"] = worker.busy();
  j["progress"] = worker.progress();
  j["cancelled"] = worker.cancelled();
  j["computations"] = worker.computations();
  j["frame"] = ImGui::GetFrameCount();
  const auto p99 = frame_p99;
  j["frame_ms_p99"] = p99(st.frame_ms);
  j["busy_frame_ms_p99"] = p99(st.busy_frame_ms);
  j["busy_frames"] = st.busy_frame_ms.size();
  j["idle_frame_ms_p99"] = p99(st.idle_frame_ms);
  j["edit_to_picture_ms"] = st.edit_to_picture_ms;
  // where it went: the shown Result's compute and the worker's pictures of it (the rest: the
  // textures' upload and the frames that drew them)
  j["shown_compute_ms"] = st.shown && st.shown->result ? st.shown->result->compute_ms : 0.0;
  j["shown_prepare_ms"] = st.shown ? st.shown->prepare_ms : 0.0;
  j["labels_cut"] = st.labels_cut;
  j["lesson_text_scale"] = st.lesson_text_scale;
  j["window_rect"] = st.window_rect;
  j["offer_restore"] = st.offer_restore;
  j["banner"] = banner;
  j["framebuffer"] = {fb_w, fb_h};
  j["background"] = {int(bg.x * 255 + 0.5f), int(bg.y * 255 + 0.5f), int(bg.z * 255 + 0.5f)};
  j["text_box"] = {st.text_box.x * scale.x, st.text_box.y * scale.y, st.text_box.z * scale.x, st.text_box.w * scale.y};
  j["quantity"] = st.quantity == Quantity::weights ? "weights" : "logits";
  j["shown_logits"] = st.shown && st.shown->display.logits;  // the shown heads' logits images were made
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
  if (st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
    j["intervention"] = r.intervention;
    if (!r.next_tokens.empty()) {  // the list the Next token section shows
      const int n = static_cast<int>(r.next_tokens.size());
      const int pos = st.next_pos < 0 || st.next_pos >= n ? n - 1 : st.next_pos;
      nlohmann::json list = nlohmann::json::array();
      if (const auto* shown = NextTokensAt(st, pos))
        for (const auto& t : *shown) list.push_back({{"id", t.id}, {"token", utf8_sanitize(t.token)}, {"p", t.p}});
      j["next_tokens"] = list;
      j["next_pos"] = pos;
    }
  }
  j["ablate_error"] = st.ablate_error;
  j["generate"] = {{"running", st.gen_job != nullptr}, {"error", st.gen_error}, {"done", st.gen_done}};
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
  nlohmann::json marks = nlohmann::json::object();
  for (const auto& [path, m] : st.expression_marks)
    marks[path] = {{"message", m.message}, {"position", m.position}, {"x", m.x * scale.x}};
  j["expression_marks"] = marks;
  j["mask_expression"] = st.session.attention.mask.expression;
  j["score_mod"] = st.session.attention.score_mod.expression;
  if (st.shown && st.shown->result) {
    const Result& r = *st.shown->result;
    j["shown_generation"] = st.shown->generation;
    j["signed_weights"] = st.shown->signed_weights;
    j["shown_display"] = {{"colormap", st.shown->display.colormap}, {"range", name(st.shown->display.range)},
                          {"log", st.shown->display.log}};
    j["mask"] = name(r.session.attention.mask.kind);
    j["positional"] = name(r.session.positional.kind);
    std::vector<std::string> allowed;  // head 0's pattern, a string per row (up to 64 tokens)
    if (!r.is_field()) {
      const MaskMatrix& a = *r.layers[0].heads[0].allowed;
      for (Eigen::Index i = 0; i < a.rows() && a.rows() <= 64; ++i) {
        std::string row;
        for (Eigen::Index c = 0; c < a.cols(); ++c) row += a(i, c) ? '1' : '0';
        allowed.push_back(row);
      }
    }
    j["allowed"] = allowed;
    j["field"] = r.is_field();
    j["pool"] = st.shown->display.pool_mean ? "mean" : "max";
    j["tile_level"] = st.tile_level;
    j["tiles_drawn"] = st.tiles_drawn;
    j["tiles_ready"] = st.tiles ? st.tiles->ready_tiles() : 0;
    j["tiles_busy"] = st.tiles && st.tiles->busy();
    j["ruler"] = st.ruler;
    j["labels_drawn"] = st.labels_drawn;
    j["hover_weight"] = st.hover_weight;
    j["hover_logit"] = st.hover_logit;
    j["find_hits"] = st.find_hits;
    if (r.is_field()) {
      const HeadField& f = r.fields[0].heads[0];
      j["overview"] = {f.overview_max.rows(), f.overview_max.cols(), f.fr, f.fc};
      j["field_qk_dtype"] = f.half ? "F16" : "F32";
    }
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
    j["n_layers"] = r.n_layers();
    std::vector<int> kv;
    for (int h = 0; h < r.n_heads(); ++h) kv.push_back(r.kv_head(0, h));
    j["kv_heads"] = kv;
    j["kernel"] = name(r.session.attention.kernel.kind);
    nlohmann::json approx = nlohmann::json::array();
    for (std::size_t h = 0; !r.is_field() && h < r.layers[0].heads.size(); ++h) {
      const auto& a = r.layers[0].heads[h].approx;
      approx.push_back(a ? nlohmann::json{a->max_weight_error, a->output_error} : nlohmann::json());
    }
    j["approximation"] = approx;
  }
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace attnlab::app
