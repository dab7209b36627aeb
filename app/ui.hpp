// UI state and panels. Panels read the immutable Snapshot and write only UI state; every edit
// of the session is posted to the worker at once (no Apply button).
#pragma once

#include <imgui.h>

#include <map>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "render/heatmap.hpp"
#include "worker.hpp"

namespace attnlab::app {

enum class Quantity { weights, logits };

struct HeadRect {  // where a head's heatmap was drawn this frame, in framebuffer pixels
  int head = 0;
  float x = 0, y = 0, w = 0, h = 0;
  int n_q = 0, n_k = 0;
};

struct Hover {  // the cell under the mouse this frame
  int head = -1, query = -1, key = -1;
};

struct AppState {
  Session session;           // the configuration being edited
  Session opened;            // as it was opened, to mark edits
  std::string session_path;  // where it came from ("" = built-in example)

  std::shared_ptr<const Snapshot> shown;     // last good result, drawn
  std::shared_ptr<const Snapshot> newest;    // newest finished, possibly with problems
  std::shared_ptr<const Snapshot> incoming;  // newest good result, its textures uploading
  struct Textures {
    std::vector<Heatmap> weights, logits, masks, gallery, positional, analysis;
  };
  Textures tex;          // of `shown`
  Textures in_tex;       // of `incoming`, filled a few per frame
  std::size_t in_next = 0;  // next texture of `incoming` to upload
  std::vector<std::string> labels;      // token labels of `shown` (whitespace made visible)
  std::vector<std::string> key_labels;  // key token labels: the context's in cross-attention, else = labels
  float longest_label = 0;          // widest of the first 512 labels, in pixels
  std::uint64_t posted = 0;

  Quantity quantity = Quantity::weights;
  int detail_head = -1;  // head opened large, -1 = none

  // filled while drawing, read by the state dump
  std::vector<HeadRect> head_rects;
  Hover hover;
  std::map<std::string, ImVec4> widgets;  // named widget rects this frame (x, y, w, h), for tests

  // views
  bool show_mask = false, show_gallery = false, show_positional = false, show_metrics = false, show_flash = false;
  int flash_head = 0, flash_step = 0;  // flash teaching view: which head, how many tiles done
  int layer = 0;           // the layer the head grid shows
  int mask_head = 0;       // which head's pattern the mask view shows, when they differ
  int paint = 0;           // custom mask painting: 0 idle, 1 adding, -1 erasing
  ImVec4 text_box{0, 0, 0, 0};  // x, y, w, h

  bool problems_current() const {  // the newest edit was rejected
    return newest && newest->generation == posted && !newest->problems.empty();
  }
};

// panels/controls.cpp
void ShowTextPanel(AppState& st, Worker& worker);
void ShowControlsPanel(AppState& st, Worker& worker);

// panels/views.cpp
void ShowMaskWindow(AppState& st, Worker& worker);
void ShowGalleryWindow(AppState& st, Worker& worker);
void ShowPositionalWindow(AppState& st);
void ShowMetricsWindow(AppState& st);
void ShowFlashWindow(AppState& st);
// Draws a prepared matrix with its texture; returns the hovered (row, col) or (-1, -1).
std::pair<int, int> DrawImage(const AppState& st, const ImageData& img, const Heatmap& tex, ImVec2 origin,
                              ImVec2 size, bool labels, ImVec4* cells_rect = nullptr);

// panels/heads.cpp
void ShowHeadGrid(AppState& st);
void ShowHeadDetail(AppState& st);

// One heatmap with token labels, hover tooltip and highlight. Returns true when clicked.
bool DrawHeatmap(const AppState& st, int head, ImVec2 origin, ImVec2 size, HeadRect* rect_out, Hover* hover_out);
void DrawColorBar(ImVec2 origin, float height, float vmin, float vmax, const char* label,
                  const char* colormap_name = "viridis");
// Text read bottom to top from `pos`.
void AddTextVertical(ImDrawList* dl, ImVec2 pos, ImU32 col, const char* text);
std::string FitLabel(std::string s, float max_width);
// Remembers a widget's rect under `name` (the last item drawn) for the state dump.
void RecordWidget(AppState& st, const std::string& name);

}  // namespace attnlab::app
