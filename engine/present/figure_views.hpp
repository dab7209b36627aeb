// The window's views as figure panels, for PNG export and `attnlab-cli render`.
#pragma once

#include <string>
#include <vector>

#include "present/figure.hpp"
#include "pipeline.hpp"

namespace attnlab {

enum class FigureView { heads, detail, model, mask, positional, gallery, similarity, step };

// Every figure view, in the order the window's export offers them: its id (`attnlab-cli render
// --view`), a label, and the heatmap side its panels get (0: FigureStyle's default).
struct FigureViewInfo {
  FigureView view;
  const char* id;
  const char* label;
  int panel_side;
};
const std::vector<FigureViewInfo>& figure_views();
const char* name(FigureView v);
bool parse_figure_view(const std::string& s, FigureView& out);
std::string figure_view_ids();  // "heads, detail, ..." for messages
// The style a view is drawn with by default: its panel side; the model view a row per layer.
void apply_view_layout(FigureView v, int n_heads, FigureStyle& style);

struct ViewRequest {
  FigureView view = FigureView::heads;
  int layer = 0, head = 0;
  bool logits = false;   // heads / detail / model: logits instead of weights
  std::string step;      // step view: a head_steps id ("scores", "weights", ...)
};

// Panels and a title for the view; false with a one-line reason (layer out of range, a view
// that does not apply, as positional views under cross-attention).
bool view_panels(const Result& r, const ViewRequest& q, std::vector<FigurePanel>& panels, std::string& title,
                 std::string& error);

}  // namespace attnlab
