#include "present/figure_views.hpp"

#include <cmath>
#include <numbers>

#include "tokenizers/tokenize.hpp"
#include "core/strings.hpp"
#include "present/panels.hpp"

namespace attnlab {

const std::vector<FigureViewInfo>& figure_views() {
  static const std::vector<FigureViewInfo> all = {
      {FigureView::heads, "heads", "heads (this layer)", 0},
      {FigureView::detail, "detail", "head detail", 560},
      {FigureView::model, "model", "model (all layers)", 160},
      {FigureView::mask, "mask", "mask", 0},
      {FigureView::positional, "positional", "positional", 0},
      {FigureView::step, "step", "pipeline step", 560},
      {FigureView::gallery, "gallery", "mask gallery", 0},
      {FigureView::similarity, "similarity", "head similarity", 0},
  };
  return all;
}

const char* name(FigureView v) {
  for (const auto& f : figure_views())
    if (f.view == v) return f.id;
  return "heads";
}

bool parse_figure_view(const std::string& s, FigureView& out) {
  for (const auto& f : figure_views())
    if (s == f.id) {
      out = f.view;
      return true;
    }
  return false;
}

std::string figure_view_ids() {
  std::vector<std::string> ids;
  for (const auto& f : figure_views()) ids.push_back(f.id);
  return join(ids, ", ");
}

void apply_view_layout(FigureView v, int n_heads, FigureStyle& style) {
  for (const auto& f : figure_views())
    if (f.view == v && f.panel_side > 0) style.panel_side = f.panel_side;
  if (v == FigureView::model && style.columns == 0) style.columns = n_heads;
}

bool view_panels(const Result& r, const ViewRequest& q, std::vector<FigurePanel>& panels, std::string& title,
                 std::string& error) {
  panels.clear();
  const int n_layers = r.n_layers();
  if (q.layer < 0 || q.layer >= n_layers) {
    error = "layer " + std::to_string(q.layer) + " out of range (the session has " + std::to_string(n_layers) + ")";
    return false;
  }
  const int n_heads = r.n_heads();
  if (q.head < 0 || q.head >= n_heads) {
    error = "head " + std::to_string(q.head) + " out of range (the session has " + std::to_string(n_heads) + ")";
    return false;
  }
  if (r.is_field() && (q.logits || q.view == FigureView::similarity || q.view == FigureView::step)) {
    error = std::to_string(r.tokens.size()) + " tokens are computed as an attention field: its heads are drawn as overviews "
            "of the weights (no logits, steps or head similarity above " + std::to_string(kDenseMaxTokens) +
            " tokens; attnlab-cli export --rows A:B --cols C:D writes any block exactly)";
    return false;
  }
  const std::string what = q.logits ? "logits" : r.is_field() ? "attention weights (overview: block max)" : "attention weights";
  switch (q.view) {
    case FigureView::heads:
      title = what + ", layer " + std::to_string(q.layer) + " (" + name(r.session.attention.mask.kind) + " mask)";
      for (int h = 0; h < n_heads; ++h) panels.push_back(head_panel(r, q.layer, h, q.logits));
      return true;
    case FigureView::detail:
      title = what + ", layer " + std::to_string(q.layer) + " head " + std::to_string(q.head);
      panels.push_back(head_panel(r, q.layer, q.head, q.logits));
      return true;
    case FigureView::model:
      title = what + ": every layer x every head";
      for (int l = 0; l < n_layers; ++l)
        for (int h = 0; h < n_heads; ++h) panels.push_back(head_panel(r, l, h, q.logits));
      return true;
    case FigureView::mask:
      title = std::string("mask: ") + name(r.session.attention.mask.kind);
      panels = mask_panels(r, q.layer);
      if (panels.size() == 1) panels[0].title = title;
      return true;
    case FigureView::gallery: {
      if (!r.key_tokens.empty()) {
        error = "the mask gallery is for self-attention (this session attends to a context)";
        return false;
      }
      title = "every mask kind for these tokens";
      panels = gallery_panels(r);
      return true;
    }
    case FigureView::positional: {
      if (!r.key_tokens.empty()) {
        error = "positional views are for self-attention (this session attends to a context)";
        return false;
      }
      title = "positional encoding: " + r.positions.source;
      panels = positional_panels(r);
      if (panels.empty()) {
        error = std::string("the '") + name(r.session.positional.kind) + "' positional encoding has nothing to draw";
        return false;
      }
      return true;
    }
    case FigureView::similarity: {
      if (r.metrics.empty()) {
        error = "head similarity needs the per-head metrics (in the window: open View, Metrics)";
        return false;
      }
      title = "head similarity (Jensen-Shannon divergence, nats), layer " + std::to_string(q.layer);
      panels = {std::move(similarity_panels(r).at(q.layer))};
      panels[0].title = "layer " + std::to_string(q.layer);
      return true;
    }
    case FigureView::step: {
      for (FigurePanel& p : step_panels(r, q.layer, q.head)) {
        if (p.id != q.step) continue;
        title = p.title + "  (layer " + std::to_string(q.layer) + ", head " + std::to_string(q.head) + ")";
        panels.push_back(std::move(p));
        return true;
      }
      error = "no step '" + q.step + "' (input, q, k, v, scores, scaled, biased, masked, weights, context, output)";
      return false;
    }
  }
  return false;
}

}  // namespace attnlab
