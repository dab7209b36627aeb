#include "present/figure_views.hpp"

#include <cmath>
#include <numbers>

#include "attention/masks.hpp"
#include "analysis/steps.hpp"
#include "tokenizers/tokenize.hpp"
#include "present/views.hpp"

namespace attnlab {

const char* name(FigureView v) {
  switch (v) {
    case FigureView::heads: return "heads";
    case FigureView::detail: return "detail";
    case FigureView::model: return "model";
    case FigureView::mask: return "mask";
    case FigureView::positional: return "positional";
    case FigureView::gallery: return "gallery";
    case FigureView::similarity: return "similarity";
    case FigureView::step: return "step";
  }
  return "heads";
}

bool parse_figure_view(const std::string& s, FigureView& out) {
  for (FigureView v : {FigureView::heads, FigureView::detail, FigureView::model, FigureView::mask, FigureView::positional,
                       FigureView::gallery, FigureView::similarity, FigureView::step})
    if (s == name(v)) {
      out = v;
      return true;
    }
  return false;
}

namespace {

std::vector<std::string> labels(const std::vector<Token>& tokens) {
  std::vector<std::string> out;
  for (const auto& t : tokens) out.push_back(token_label(t.text));
  return out;
}

std::vector<std::string> numbered(int n, const char* prefix) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string s = std::to_string(i);  // (not prefix + ...: GCC 12 warns falsely, -Wrestrict)
    s.insert(0, prefix);
    out.push_back(std::move(s));
  }
  return out;
}

FigurePanel head_panel(const Result& r, int layer, int head, bool logits) {
  const HeadResult& h = r.layers[layer].heads[head];
  FigurePanel p;
  p.title = "layer " + std::to_string(layer) + "  head " + std::to_string(head);
  if (h.kv_head != head) p.title += "  K/V " + std::to_string(h.kv_head);
  p.values = logits ? h.logits : h.weights;
  p.shown = *h.allowed;
  p.row_labels = labels(r.tokens);
  p.col_labels = labels(r.keys());
  p.non_negative = !logits;
  return p;
}

FigurePanel mask_panel(const MaskMatrix& m, std::string title, const Result& r) {
  FigurePanel p;
  p.title = std::move(title);
  p.values = Matrix::Ones(m.rows(), m.cols());
  p.shown = m;
  p.row_labels = labels(r.tokens);
  p.col_labels = labels(r.keys());
  p.non_negative = true;
  char buf[96];
  std::snprintf(buf, sizeof buf, "density %.3f", mask_density(m));
  p.caption = buf;
  return p;
}

}  // namespace

bool view_panels(const Result& r, const ViewRequest& q, std::vector<FigurePanel>& panels, std::string& title,
                 std::string& error) {
  panels.clear();
  const int n_layers = static_cast<int>(r.layers.size());
  if (q.layer < 0 || q.layer >= n_layers) {
    error = "layer " + std::to_string(q.layer) + " out of range (the session has " + std::to_string(n_layers) + ")";
    return false;
  }
  const int n_heads = static_cast<int>(r.layers[q.layer].heads.size());
  if (q.head < 0 || q.head >= n_heads) {
    error = "head " + std::to_string(q.head) + " out of range (the session has " + std::to_string(n_heads) + ")";
    return false;
  }
  const std::string what = q.logits ? "logits" : "attention weights";
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
    case FigureView::mask: {
      title = std::string("mask: ") + name(r.session.attention.mask.kind);
      const auto& heads = r.layers[q.layer].heads;
      bool per_head = false;
      for (const auto& h : heads) per_head |= h.allowed != heads[0].allowed;
      for (int h = 0; h < (per_head ? n_heads : 1); ++h)
        panels.push_back(mask_panel(*heads[h].allowed, per_head ? "head " + std::to_string(h) : title, r));
      return true;
    }
    case FigureView::gallery: {
      if (!r.key_tokens.empty()) {
        error = "the mask gallery is for self-attention (this session attends to a context)";
        return false;
      }
      title = "every mask kind for these tokens";
      for (auto& e : mask_gallery(r.session, r.tokens, &r.layers[0].heads[0].q)) panels.push_back(mask_panel(e.allowed, name(e.kind), r));
      return true;
    }
    case FigureView::positional: {
      if (!r.key_tokens.empty()) {
        error = "positional views are for self-attention (this session attends to a context)";
        return false;
      }
      title = "positional encoding: " + r.positions.source;
      const PositionalView v = positional_view(r);
      auto add = [&](const Matrix& m, std::string t, bool token_cols, bool diverging) {
        FigurePanel p;
        p.title = std::move(t);
        p.values = m;
        p.row_labels = labels(r.tokens);
        if (token_cols) p.col_labels = labels(r.tokens);
        p.diverging = diverging;
        p.non_negative = !diverging;
        p.own_range = true;
        panels.push_back(std::move(p));
      };
      if (v.encoding.size()) add(v.encoding, "encoding (positions x dimensions)", false, true);
      if (v.similarity.size()) add(v.similarity, "position-to-position similarity", true, true);
      if (v.rope_angles.size()) add(v.rope_angles, "RoPE angle p theta_m mod 2 pi", false, false);
      for (std::size_t h = 0; h < v.bias.size(); ++h) add(v.bias[h], "bias, head " + std::to_string(h), true, true);
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
      FigurePanel p;
      p.title = "layer " + std::to_string(q.layer);
      p.values = r.metrics[q.layer].head_similarity;
      p.row_labels = p.col_labels = numbered(n_heads, "h");
      p.non_negative = true;
      panels.push_back(std::move(p));
      return true;
    }
    case FigureView::step: {
      for (Step& s : head_steps(r, q.layer, q.head)) {
        if (s.id != q.step) continue;
        title = s.title + "  (layer " + std::to_string(q.layer) + ", head " + std::to_string(q.head) + ")";
        FigurePanel p;
        p.title = s.title;
        p.caption = s.formula;
        p.values = std::move(s.values);
        p.row_labels = axis_labels(r, s.rows, static_cast<int>(p.values.rows()));
        p.col_labels = axis_labels(r, s.cols, static_cast<int>(p.values.cols()));
        p.diverging = s.signed_values;
        p.non_negative = !s.signed_values;
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
