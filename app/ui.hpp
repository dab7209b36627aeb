// UI state and panels. Panels read the immutable Snapshot and write only UI state; every edit
// of the session is posted to the worker at once (no Apply button).
#pragma once

#include <imgui.h>

#include <array>
#include <chrono>
#include <future>
#include <atomic>
#include <map>
#include <thread>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "analysis/blocks.hpp"
#include "analysis/decode.hpp"
#include "render/window_fonts.hpp"
#include "render/heatmap.hpp"
#include "tiles.hpp"
#include "worker.hpp"

namespace attnlab::app {

enum class Quantity { weights, logits };

struct PatchJob;     // views/patching.cpp: an activation-patching grid on its own thread
struct GenerateJob;  // panels/controls.cpp: generation on its own thread

struct HeadRect {  // where a head's heatmap was drawn this frame, in framebuffer pixels
  int head = 0;
  float x = 0, y = 0, w = 0, h = 0;
  int n_q = 0, n_k = 0;
};

struct Hover {  // the cell under the mouse this frame
  int head = -1, query = -1, key = -1;
};

struct Lesson {  // assets/lessons/*.json
  std::string title;
  struct Step {
    std::string title, text;
    Session session;
    std::string view;  // a window to open with the step: pipeline, lines, mask, positional, model, ...
    std::string training;  // the Training view: reset, start, start_until_phase_change or pause
  };
  std::vector<Step> steps;
};

struct FileBrowser {  // the in-app open / save dialog
  bool open = false, saving = false;
  std::string dir, name, error;
  bool model = false;  // choosing a model folder
  bool for_b = false;  // ... for compare's B
};

struct ModelLoad {  // a Hugging Face folder loading on its own thread
  std::string dir;
  bool for_b = false;  // compare's B model, not A's
  std::atomic<float> progress{0};
  std::atomic<bool> cancel{false}, done{false};
  std::unique_ptr<HfModel> model;
  Failure error;
  std::thread thread;
  ~ModelLoad() {
    cancel = true;
    if (thread.joinable()) thread.join();
  }
};

struct TrainingRun;  // views/training.cpp: the training thread and what it publishes

struct AppState {
  WindowFonts fonts;         // the atlas, with the glyphs the texts on screen need
  std::string text_needed;   // the session text as last handed to fonts.need
  Session session;           // the configuration being edited
  Session opened;            // as it was opened, to mark edits
  std::string session_path;  // where it came from ("" = built-in example)

  std::shared_ptr<const Snapshot> shown;     // last good result, drawn
  std::shared_ptr<const Snapshot> newest;    // newest finished, possibly with problems
  std::shared_ptr<const Snapshot> incoming;  // newest good result, its textures uploading
  struct Textures {
    std::vector<Heatmap> weights, logits;
    std::map<std::string, std::vector<Heatmap>> views;  // by view id, as Snapshot::views
  };
  Textures tex;          // of `shown`
  Textures in_tex;       // of `incoming`, filled a few per frame
  std::vector<char> in_ready_w, in_ready_l;  // which head textures of in_tex hold `incoming`'s weights, logits
  std::size_t in_views_next = 0;             // next view texture of `incoming` to upload
  std::vector<char> ready_w, ready_l;        // which head textures of tex hold `shown`'s (the rest follow its swap)
  std::vector<std::string> labels;      // token labels of `shown` (whitespace made visible)
  std::vector<std::string> key_labels;  // key token labels: the context's in cross-attention, else = labels
  bool labels_measured = true;      // longest_label_em follows labels (measured in a frame)
  float longest_label_em = 0;       // widest of the first 512 labels, in font sizes (so it follows the font scale)
  float longest_label() const { return longest_label_em * ImGui::GetFontSize(); }
  std::uint64_t posted = 0;
  // an edit's latency: from its post to the frame that swaps its pictures in (the state dump's
  // edit_to_picture_ms, the last edit's; -1 before the first)
  std::chrono::steady_clock::time_point edit_posted_at;
  std::uint64_t edit_generation = 0;
  double edit_to_picture_ms = -1;

  Quantity quantity = Quantity::weights;
  int detail_head = -1;  // head opened large, -1 = none
  DisplayOptions display;  // colormap, range mode, log scale, the pipeline's head
  bool numbers = true;     // values printed in cells big enough to hold them

  // history: every session edit can be undone (typing within a second is one step)
  std::vector<Session> undo, redo;
  Session committed;  // the session as of the last history entry
  double last_text_edit = -10;

  // files and preferences
  std::string config_dir;               // $XDG_CONFIG_HOME/attnlab (or ~/.config/attnlab)
  std::vector<std::string> recent;      // most recent first
  std::string last_session;             // the session JSON left at the last exit (prefs)
  FileBrowser browser;
  std::string status;                   // the last file operation's outcome, shown in the menu bar
  bool status_error = false;

  float budget_gb = 0;  // the memory budget the user set (0: the default), kept in prefs
  bool offer_restore = false;  // the last run did not exit cleanly: its session is offered, not restored

  // classroom
  bool light = false, hide_controls = false, fullscreen = false;
  float font_scale = 1.0f, applied_font_scale = 0.0f;
  std::vector<Lesson> lessons;
  int lesson = -1, lesson_step = 0;
  float lesson_top = 0;    // where the lesson strip starts (screen y), 0 when none
  float lesson_text_scale = 1;  // the lesson text's size relative to the font (below 1 only when it must be, to fit)
  std::string place_view;  // a view a lesson step just opened, placed above the strip on its next frames
  int place_frames = 0;
  std::string lesson_view;   // the view the current lesson step placed
  float lesson_view_top = 0;  // the strip's top when it was placed

  // views
  bool show_model = false, show_pipeline = false, show_lines = false, show_compare = false, show_help = false,
       show_export = false;
  int pipeline_step = 0;                // index into Snapshot::steps
  std::string pending_step;             // --step: chosen by id once the steps arrive
  int lines_head = -1;                  // line view: -1 all heads, else one
  int lines_token = -1;                 // line view: hovered token (query side), isolates its lines
  int lines_drawn = 0;                  // line view: lines drawn this frame
  float zoom = 1.0f;                    // head detail: cells per view divided, >= 1
  ImVec2 pan{0, 0};                     // head detail: first visible (col, row), in cells
  int export_scale = 1;                 // export dialog
  std::string export_path;
  int export_what = 0;

  // a pretrained model (File > Open model folder): loading, then in use
  std::unique_ptr<ModelLoad> loading;
  std::string next_model_b;  // a folder to load as compare's B once A's load is done (two checkpoints)
  std::shared_ptr<const HfModel> model;
  bool intervene = false, intervene_mask = true;  // an intervention on the model's heads
  int intervene_layer = -1;                       // -1: every layer
  std::string ablate_text;                        // heads ablated, "L.H, L.H" as typed
  std::string ablate_error;                       // why ablate_text is not used ("" when it is)
  // the expression fields' problem as the panel points at it (for tests: path -> message, character, x)
  struct ExpressionMark {
    std::string message;
    int position = -1;
    float x = 0;
  };
  std::map<std::string, ExpressionMark> expression_marks;
  std::string new_parameter;  // the name typed into a parameters field's "add" box
  std::vector<std::pair<int, int>> ablate;        // the last valid ablate_text
  int ablate_mode = 0;                            // 0 zero, 1 mean over positions
  int next_pos = -1;                              // the position whose next tokens are listed (-1: the last)
  // next tokens of positions the worker left to be asked for (NextTokensAt), for next_of's Result
  mutable std::map<int, std::vector<Result::NextToken>> next_asked;
  mutable std::weak_ptr<const Result> next_of;
  // generation (Model section): tokens appended to the text by the model, on its own thread
  int gen_tokens = 10;
  bool gen_sample = false;
  float gen_temperature = 1.0f, gen_top_p = 1.0f;
  int gen_seed = 0;
  std::shared_ptr<GenerateJob> gen_job;
  std::string gen_error, gen_done;  // why the last one failed; what the last one appended
  // activation patching (views/patching.cpp): inputs, the grid running and the last one finished
  bool show_patching = false;
  bool show_training = false;  // the training view (views/training.cpp)
  std::shared_ptr<TrainingRun> training;  // its run, made when the view first opens; joined on exit
  std::string training_action;            // a lesson step's, done when the Training view next draws
  std::vector<Heatmap> training_tex;      // its probe heads, uploaded when a new view of the run arrives
  std::uint64_t training_tex_of = 0;      // the serial of the published view they show
  bool show_lens = false;   // the logit lens view (a model's residual stream through its output head)
  std::uint64_t lens_asked = 0;  // the generation a logit lens was last asked for
  std::array<float, 4> lens_grid{};  // where the lens's cells were drawn (x, y, w, h), for the state dump
  std::array<int, 2> lens_hover{-1, -1};  // (layer, position) under the pointer
  std::string patch_corrupted, patch_token_a, patch_token_b, patch_error;
  int patch_grid = 0, patch_metric = 0;  // heads / residual; logit difference / probability
  int patch_direction = 0;                // noising (the clean run, corrupted pieces) / denoising
  std::shared_ptr<PatchJob> patch_job, patch_shown;
  std::pair<int, int> patch_hover{-1, -1};
  Intervention intervention;                      // A's, as last given to the worker (the Model section)
  // compare: a second session B, computed by its own worker; with a model open B runs that model
  // (or, unticked, the random-weight engine) with interventions of its own
  Session session_b;
  bool b_uses_model = true;
  std::shared_ptr<const HfModel> model_b;  // B's own model folder (null: A's model); one text through two models
  Intervention b_intervention;
  std::string b_ablate_text, b_ablate_error;
  int b_ablate_mode = 0;
  int diff_layer = -1;                  // the layer B - A was computed for
  std::string compare_differs, compare_alignment;  // what the window says, for the state dump
  bool edit_b = false;                  // the side panel edits B
  std::shared_ptr<const Snapshot> b_shown;
  std::vector<Heatmap> b_tex;           // weights of B's layer 0..: as tex.weights
  std::vector<Heatmap> diff_tex;        // B - A per head, when the shapes match
  std::vector<ImageData> diff_img;
  std::uint64_t b_posted = 0;
  Worker* worker_b = nullptr;
  int compare_head = 0;
  Hover compare_hover;                  // linked: the same cell highlighted in A, B and B - A
  float diff_max = 0;                   // max |B - A| of the compared head

  // a long sequence's zoomed head: exact tiles computed on their own thread
  std::unique_ptr<TileCache> tiles = std::make_unique<TileCache>();
  std::string span_rows, span_cols, find_text;  // span navigation and token search (head detail)
  std::vector<int> find_hits;
  bool span_pending = false;  // --rows / --cols or an axis drag: shown by the span controls next frame
  std::pair<int, int> axis_drag{0, 0};  // dragging along an axis: 1 rows, 2 columns; where it began
  std::string find_done;  // the text find_hits are for

  // filled while drawing, read by the state dump
  std::vector<HeadRect> head_rects;
  Hover hover;
  float hover_weight = 0, hover_logit = 0;  // a field's hovered cell, computed exactly
  int tile_level = -1, tiles_drawn = 0;     // the zoomed field's pyramid level and its tiles drawn
  bool ruler = false, labels_drawn = false; // a ruler / token labels were drawn this frame
  std::map<std::string, ImVec4> widgets;  // named widget rects this frame (x, y, w, h), for tests
  int labels_cut = 0;                     // token labels shortened with "..." in the last frame
  std::array<int, 4> window_rect{};       // the OS window: x, y, w, h
  std::chrono::steady_clock::time_point frame_start;
  std::vector<float> frame_ms, busy_frame_ms, idle_frame_ms;  // the last 600 frames' times; those while the worker computed; the others

  // views
  bool show_decode = false;
  // the decode view: prefill length (0: half the tokens), step, the shown Result's plan and last step
  struct DecodeState {
    int prefill = 0, step = 0, chunk = 1;
    std::uint64_t generation = ~0ull;
    // the plan scans every head's n x n mask (60 ms at 2048 tokens x 12 x 12): a thread of
    // its own prepares it while the window says so, and the last plan stays until it is ready
    std::future<DecodePlan> pending;
    std::uint64_t pending_generation = ~0ull;
    DecodePlan plan;
    DecodeStep last;
  } decode;
  // the Metrics view's rollout of chosen query rows for a long sequence (a field): computed on a
  // thread of its own, with progress and cancel; shown for the Result and layer it was asked for
  struct FieldRolloutState {
    std::string rows;  // "a:b", empty: the last four rows
    std::future<Matrix> pending;
    std::shared_ptr<std::atomic<bool>> cancel;
    std::shared_ptr<std::atomic<float>> progress;
    std::uint64_t generation = ~0ull, pending_generation = ~0ull;
    int layer = -1, pending_layer = -1, r0 = 0, pending_r0 = 0;
    Matrix values;  // (rows, n): row s is query r0 + s's rollout over every token
    // from values once, not every frame: the largest value off each row's own token, each row's
    // six largest keys, and the rows pooled by max to strip_px columns (strip: rows x strip_px)
    float top = 0;
    std::vector<std::vector<int>> most;
    std::vector<float> strip;
    int strip_px = 0;
    double ms = 0;
    std::chrono::steady_clock::time_point started;
    ~FieldRolloutState() {  // a computation under way stops (the future's destructor waits for it)
      if (cancel) *cancel = true;
    }
  } field_rollout;
  bool show_mask = false, show_gallery = false, show_positional = false, show_metrics = false, show_flash = false;
  int flash_head = 0, flash_step = 0;  // flash teaching view: which head, how many tiles done
  int layer = 0;           // the layer the head grid shows
  int mask_head = 0;       // which head's pattern the mask view shows, when they differ
  // the mask view's block map (analysis/blocks.hpp): the block side (0: automatic) and the map
  // of the shown result, computed once per result, head and side
  int block_size = 0;
  struct BlockCache {
    std::uint64_t generation = ~0ull;
    int head = -1, block = -1;
    std::shared_ptr<const BlockMap> map;
  } blocks;
  int paint = 0;           // custom mask painting: 0 idle, 1 adding, -1 erasing
  ImVec4 text_box{0, 0, 0, 0};  // x, y, w, h

  bool problems_current() const {  // the newest edit was rejected
    return newest && newest->generation == posted && !newest->problems.empty();
  }
};

// app_ops.cpp: every session edit goes through Edited (history, then the worker)
void Edited(AppState& st, Worker& worker, bool text_edit = false);
void Repost(AppState& st, Worker& worker);  // display options changed: same session, new pictures
// The shown Result's next tokens after position pos: the worker's (the last position's, or every
// one's while the logit lens is open), else computed here from its final hidden state through the
// model that computed it (one position: ~20 ms for GPT-2's vocabulary) and kept; null when the
// Result has none.
const std::vector<Result::NextToken>* NextTokensAt(const AppState& st, int pos);
void PostB(AppState& st, const Session& b);  // compare's B, with its model and intervention
void Undo(AppState& st, Worker& worker);
void Redo(AppState& st, Worker& worker);
bool OpenSessionFile(AppState& st, Worker& worker, const std::string& path);  // false: st.status says why
bool SaveSessionFile(AppState& st, const std::string& path);
void LoadPrefs(AppState& st);
void SavePrefs(const AppState& st);
void LoadLessons(AppState& st, const std::string& dir);
void ShowFileBrowser(AppState& st, Worker& worker);
void StartModelLoad(AppState& st, const std::string& dir, bool for_b = false);
// Compare's B with the sink masked (sink_masked over kSinkTokens keys, models/family.hpp): is it,
// and turn it on or off (an ablation stays)
bool SinkMasked(const Intervention& iv, const HfModel& m);
void SetSinkMasked(Intervention& iv, const HfModel& m, bool on);  // for_b: compare's B model
void ShowModelLoad(AppState& st, Worker& worker);  // progress, cancel, then hand the model to the worker
void CloseModel(AppState& st, Worker& worker);
void ForgetPatching(AppState& st);  // views/patching.cpp: the grid (and one running) of a model going away
void ShowLessonWindow(AppState& st, Worker& worker);
// Lesson `lesson` at `step`: its session, and its view opened (placed clear of the lesson strip).
void GoToLessonStep(AppState& st, Worker& worker, int lesson, int step);
void LessonKeys(AppState& st, Worker& worker, int glfw_key);  // clicker keys: next / previous step
void PlaceLessonView(AppState& st, const char* view_id);       // call before that view's Begin
void ShowExportWindow(AppState& st);
void CopyHoveredToClipboard(AppState& st);

// panels/display.cpp
void ShowDisplaySection(AppState& st, Worker& worker);

// panels/controls.cpp
void ShowTextPanel(AppState& st, Worker& worker);
void ShowControlsPanel(AppState& st, Worker& worker);

// The views (app/views/, one file each) are listed in app/views/view.hpp.

// panels/images.cpp
// Draws a prepared matrix with its texture; returns the hovered (row, col) or (-1, -1).
std::pair<int, int> DrawImage(const AppState& st, const ImageData& img, const Heatmap& tex, ImVec2 origin,
                              ImVec2 size, bool labels, ImVec4* cells_rect = nullptr);

// panels/heads.cpp
void ShowHeadGrid(AppState& st);
// A computation running longer than 200 ms: its progress over the heads, and Cancel (or Esc).
void ShowProgress(AppState& st, Worker& worker);
void ShowHeadDetail(AppState& st);
void ShowSpanControls(AppState& st);
bool ParseSpan(const std::string& text, int n, int& a, int& b);

// One heatmap with token labels, hover tooltip and highlight. Returns true when clicked.
// `layer` -1: the grid's layer. zoomable: the mouse wheel zooms and dragging pans (detail view).
// A grid's shared geometry: one cell size for every tile, the label gutter, and which sides of
// this tile carry labels (small multiples label the first column's rows and the first row's keys).
struct CellLayout {
  float cell = 0, gutter = 0;
  bool row_labels = true, col_labels = true;
};
bool DrawHeatmap(AppState& st, int head, ImVec2 origin, ImVec2 size, HeadRect* rect_out, Hover* hover_out,
                 int layer = -1, bool zoomable = false, const CellLayout* fixed = nullptr);
// The colour range a head is drawn with (display mode, quantity) and the colour bar's label.
ValueRange RangeFor(const AppState& st, const Snapshot& snap, int layer, int head);
std::string RangeLabel(const AppState& st, const Snapshot& snap);
void DrawColorBar(ImVec2 origin, float height, float vmin, float vmax, const char* label,
                  const char* colormap_name = "viridis");
// Text read bottom to top from `pos`.
void AddTextVertical(ImDrawList* dl, ImVec2 pos, ImU32 col, const char* text);
std::string FitLabel(std::string s, float max_width);
int TakeLabelsCut();  // how many labels FitLabel shortened since the last call
// At most max_code_points of s, "..." after a cut: labels and tooltips of a token that may be a
// megabyte long (a pasted text with no space is one token; the exports keep the whole text).
std::string Clip(std::string_view s, std::size_t max_code_points);
// A token's text as shown: a piece of a multi-byte character as its bytes in hex ("<E6>"), never '?'
std::string Readable(const std::string& t);
// prefix + i ("head 3"): written this way because GCC 12 warns falsely (-Wrestrict) on "..." + to_string
inline std::string Numbered(const char* prefix, int i) { return std::to_string(i).insert(0, prefix); }
// Remembers a widget's rect under `name` (the last item drawn) for the state dump.
void RecordWidget(AppState& st, const std::string& name);

// The 99th percentile of frame times in ms (0 for none), as the state dump reports them.
float frame_p99(std::vector<float> ms);
float frame_quantile(std::vector<float> ms, double q);  // q in [0, 1]; 0 for no frames

}  // namespace attnlab::app
