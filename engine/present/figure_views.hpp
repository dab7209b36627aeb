// The window's views as figure panels, for PNG export and `attnlab-cli render`.
#pragma once

#include <string>
#include <vector>

#include "present/figure.hpp"
#include "pipeline.hpp"

namespace attnlab {

enum class FigureView { heads, detail, model, mask, positional, gallery, similarity, step };
const char* name(FigureView v);
bool parse_figure_view(const std::string& s, FigureView& out);

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
