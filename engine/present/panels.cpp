#include "present/panels.hpp"

#include <cmath>
#include <cstdio>
#include <numbers>

#include "analysis/steps.hpp"
#include "attention/field.hpp"
#include "attention/masks.hpp"
#include "pipeline.hpp"
#include "present/views.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

namespace {

std::vector<std::string> labels(const std::vector<Token>& tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  for (const auto& t : tokens) out.push_back(token_label(t.text));
  return out;
}

std::vector<std::string> numbered(int n, const char* prefix) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    char buf[32];  // snprintf: GCC 12 warns falsely (-Wrestrict) on string concatenation here
    std::snprintf(buf, sizeof buf, "%s%d", prefix, i);
    out.emplace_back(buf);
  }
  return out;
}

FigurePanel mask_panel(const MaskMatrix& m, std::string title, const Result& r) {
  FigurePanel p;
  p.title = std::move(title);
  p.values = Matrix::Ones(m.rows(), m.cols());
  p.shown = m;
  p.row_labels = query_labels(r);
  p.col_labels = key_labels(r);
  p.token_rows = p.token_cols = true;
  p.non_negative = true;
  p.fixed_range = true;
  p.lo = 0, p.hi = 1;
  p.density = mask_density(m);
  p.cells = static_cast<long long>(mask_cells(m));
  char buf[128];
  std::snprintf(buf, sizeof buf, "density %.3f   %lld of %lld scores", p.density, p.cells, static_cast<long long>(m.size()));
  p.caption = buf;
  return p;
}

// A long sequence's mask from its rule, at a bounded resolution: each cell the fraction of its
// block allowed (the same overview the field draws its heads with).
FigurePanel mask_overview_panel(const MaskRule& rule, std::string title) {
  const MaskOverview o = mask_overview(rule, kFieldOverviewSide);
  FigurePanel p;
  p.title = std::move(title);
  p.values = o.density;
  p.shown.resize(o.density.rows(), o.density.cols());
  for (Eigen::Index i = 0; i < o.density.rows(); ++i)
    for (Eigen::Index j = 0; j < o.density.cols(); ++j) p.shown(i, j) = o.density(i, j) > 0;
  p.non_negative = true;
  p.fixed_range = true;
  p.lo = 0, p.hi = 1;
  const double all = double(rule.n_q()) * rule.n_k();
  p.density = all > 0 ? double(o.cells) / all : 0;
  p.cells = o.cells;
  p.pooled_r = o.fr, p.pooled_c = o.fc;
  char buf[200];
  std::snprintf(buf, sizeof buf, "density %.3g   %lld of %.4g scores   (a cell: the allowed fraction of %d x %d)", p.density,
                p.cells, all, o.fr, o.fc);
  p.caption = buf;
  return p;
}

// A panel of signed values on the diverging map, its own symmetric range.
FigurePanel signed_panel(const Result& r, const Matrix& m, std::string title, std::string caption, bool token_cols) {
  FigurePanel p;
  p.title = std::move(title);
  p.caption = std::move(caption);
  p.values = m;
  p.row_labels = query_labels(r);
  if (token_cols) p.col_labels = query_labels(r);
  p.token_rows = true;
  p.token_cols = token_cols;
  p.diverging = true;
  p.own_range = true;
  return p;
}

}  // namespace

std::vector<std::string> query_labels(const Result& r) { return labels(r.tokens); }
std::vector<std::string> key_labels(const Result& r) { return labels(r.keys()); }

FigurePanel head_panel(const Result& r, int layer, int head, bool logits) {
  if (r.is_field()) {  // a long sequence: the head's overview, max-pooled weights (logits: refused upstream)
    const HeadField& f = r.fields.at(layer).heads.at(head);
    FigurePanel p;
    p.title = "layer " + std::to_string(layer) + "  head " + std::to_string(head);
    if (f.kv_head != head) p.title += "  K/V " + std::to_string(f.kv_head);
    p.values = f.overview_max;
    p.shown.resize(p.values.rows(), p.values.cols());
    for (Eigen::Index i = 0; i < p.values.rows(); ++i)
      for (Eigen::Index j = 0; j < p.values.cols(); ++j) p.shown(i, j) = p.values(i, j) > 0;
    p.non_negative = true;
    p.pooled_r = f.fr, p.pooled_c = f.fc;
    char buf[96];
    std::snprintf(buf, sizeof buf, "a cell: the max weight of %d x %d", f.fr, f.fc);
    p.caption = buf;
    return p;
  }
  const HeadResult& h = r.layers[layer].heads[head];
  FigurePanel p;
  p.title = "layer " + std::to_string(layer) + "  head " + std::to_string(head);
  if (h.kv_head != head) p.title += "  K/V " + std::to_string(h.kv_head);
  p.values = logits ? h.logits : h.weights;
  p.shown = *h.allowed;
  p.row_labels = query_labels(r);
  p.col_labels = key_labels(r);
  p.token_rows = p.token_cols = true;
  p.non_negative = !logits;
  return p;
}

std::vector<FigurePanel> mask_panels(const Result& r, int layer) {
  if (r.is_field()) return {mask_overview_panel(*r.fields.at(layer).rule, name(r.session.attention.mask.kind))};
  const auto& heads = r.layers.at(layer).heads;
  bool per_head = false;  // LSH: each head hashes its own queries
  for (const auto& h : heads) per_head |= h.allowed != heads[0].allowed;
  std::vector<FigurePanel> out;
  for (std::size_t h = 0; h < (per_head ? heads.size() : 1); ++h)
    out.push_back(mask_panel(*heads[h].allowed,
                             per_head ? "head " + std::to_string(h) : std::string(name(r.session.attention.mask.kind)), r));
  return out;
}

std::vector<FigurePanel> gallery_panels(const Result& r) {
  std::vector<FigurePanel> out;
  if (!r.key_tokens.empty()) return out;  // every pattern is defined for one sequence
  if (r.is_field()) {  // long: each pattern from its rule (LSH hashes queries: dense sessions only)
    const int n = static_cast<int>(r.tokens.size());
    for (std::size_t k = 0; k < std::size(kMaskKinds); ++k) {
      const auto kind = static_cast<MaskKind>(k);
      if (!MaskRule::supports(kind)) continue;
      Session::Attention::Mask m = r.session.attention.mask;
      m.kind = kind;
      std::string title = name(kind);
      if (m.causal && mask_combines_with_causal(kind)) title += " + causal";
      const MaskRule rule(m, n, n, &r.tokens, r.session.model.seed);
      // a pattern of single-column spans (strided, dilated, random keys) costs its spans: past
      // about 10^8 of them (strided with a short stride at 128k) it is left out, not waited for
      std::vector<std::pair<int, int>> sp;
      rule.spans(n - 1, sp);
      if (double(sp.size()) * n > 1e8) continue;
      out.push_back(mask_overview_panel(rule, title));
    }
    return out;
  }
  for (auto& e : mask_gallery(r.session, r.tokens, &r.layers[0].heads[0].q)) {
    std::string title = name(e.kind);
    if (r.session.attention.mask.causal && mask_combines_with_causal(e.kind)) title += " + causal";
    out.push_back(mask_panel(e.allowed, title, r));
  }
  return out;
}

std::vector<FigurePanel> positional_panels(const Result& r) {
  std::vector<FigurePanel> out;
  if (!r.key_tokens.empty()) return out;  // positions of one sequence
  const PositionalView v = positional_view(r);
  if (v.encoding.size()) out.push_back(signed_panel(r, v.encoding, "encoding (positions x dimensions)", r.positions.source, false));
  if (v.similarity.size())
    out.push_back(signed_panel(r, v.similarity, "position-to-position similarity",
                               r.positions.kind == PositionalKind::rope
                                   ? "mean over pairs of cos((p - q) theta_m): depends on p - q only"
                                   : "cosine of the encoding rows",
                               true));
  if (v.rope_angles.size()) {
    FigurePanel p;
    p.title = "RoPE angle p theta_m mod 2 pi (positions x dimension pairs)";
    p.caption = "fast pairs on the left, slow on the right";
    p.values = v.rope_angles;
    p.row_labels = query_labels(r);
    p.token_rows = true;
    p.non_negative = p.own_range = p.fixed_range = true;
    p.lo = 0, p.hi = static_cast<float>(2 * std::numbers::pi);
    out.push_back(std::move(p));
  }
  for (std::size_t h = 0; h < v.bias.size(); ++h) {
    char caption[96];
    if (!v.slopes.empty()) std::snprintf(caption, sizeof caption, "-m |i - j|, slope m = %.5g", v.slopes[h]);
    else std::snprintf(caption, sizeof caption, "T5 bucket bias B[bucket(j - i), %zu]", h);
    out.push_back(signed_panel(r, v.bias[h], "bias, head " + std::to_string(h), caption, true));
  }
  return out;
}

std::vector<FigurePanel> similarity_panels(const Result& r) {
  std::vector<FigurePanel> out;
  for (std::size_t l = 0; l < r.metrics.size(); ++l) {  // empty unless metrics were computed
    if (r.metrics[l].head_similarity.size() == 0) continue;
    FigurePanel p;
    p.title = "head similarity (Jensen-Shannon divergence, nats), layer " + std::to_string(l);
    p.caption = "0: the heads attend alike; ln 2: disjoint";
    // a long sequence's: over a sample of its rows, said so
    const long rows = r.metrics[l].similarity_rows, n_q = static_cast<long>(r.tokens.size());
    if (rows >= 0 && rows < n_q)
      p.caption += "; over " + std::to_string(rows) + " of " + std::to_string(n_q) + " query rows (evenly spaced blocks of 32)";
    p.values = r.metrics[l].head_similarity;
    p.row_labels = p.col_labels = numbered(static_cast<int>(p.values.rows()), "h");
    p.non_negative = p.fixed_range = true;
    p.lo = 0, p.hi = static_cast<float>(std::log(2.0));  // the largest JS divergence, in nats
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<FigurePanel> rollout_panels(const Result& r) {
  std::vector<FigurePanel> out;
  for (std::size_t l = 0; l < r.rollout.size(); ++l) {
    FigurePanel p;
    p.title = "attention rollout through layer " + std::to_string(l);
    p.caption = r.session.analysis.rollout_residual ? "with the residual term (A + I) / 2" : "without the residual term";
    p.values = r.rollout[l];
    p.row_labels = p.col_labels = query_labels(r);
    p.token_rows = p.token_cols = true;
    p.non_negative = true;
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<FigurePanel> step_panels(const Result& r, int layer, int head) {
  std::vector<FigurePanel> out;
  for (Step& s : head_steps(r, layer, head)) {
    FigurePanel p;
    p.id = s.id;
    p.title = s.title;
    p.caption = s.formula;
    p.values = std::move(s.values);
    // weights: masked cells blank, as in the head grid (they are exactly 0 but not attended)
    if (s.id == "weights") p.shown = *r.layers[layer].heads[head].allowed;
    p.row_labels = axis_labels(r, s.rows, static_cast<int>(p.values.rows()));
    p.col_labels = axis_labels(r, s.cols, static_cast<int>(p.values.cols()));
    p.token_rows = s.rows != Axis::dims;
    p.token_cols = s.cols != Axis::dims;
    p.diverging = s.signed_values;
    p.non_negative = !s.signed_values;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace attnlab
