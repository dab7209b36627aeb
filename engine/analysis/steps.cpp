#include "analysis/steps.hpp"

#include <cmath>
#include <limits>

#include "attention/attention.hpp"
#include "attention/positional.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

std::vector<Step> head_steps(const Result& r, int layer, int head) {
  const LayerResult& L = r.layers.at(layer);
  const HeadResult& h = L.heads.at(head);
  const Session& s = r.session;
  const int n_q = static_cast<int>(h.logits.rows()), n_k = static_cast<int>(h.logits.cols());
  const int n_heads = static_cast<int>(L.heads.size());
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const bool rope = s.positional.kind == PositionalKind::rope;
  std::vector<Step> out;

  const bool additive = s.positional.kind == PositionalKind::sinusoidal || s.positional.kind == PositionalKind::learned;
  std::string input_formula =
      layer > 0 ? "The residual stream leaving layer " + std::to_string(layer - 1) + "."
      : additive ? "Each token's embedding plus its position's encoding (" + std::string(name(s.positional.kind)) + ")."
      : s.positional.kind == PositionalKind::none
          ? std::string("Each token's embedding; no positions: attention sees a bag of words.")
          : "Each token's embedding; " + std::string(name(s.positional.kind)) + " adds position inside attention, not here.";
  if (s.model.block == BlockKind::pre_ln) input_formula += " Q, K and V project LayerNorm(X) in a pre-LN block.";
  out.push_back({"input", "X (tokens x d_model)", input_formula,
                 s.model.block == BlockKind::pre_ln ? L.attention_input : L.input, Axis::queries, Axis::dims});
  const std::string rope_note = rope ? " RoPE then turns each pair of dimensions by its position's angle." : "";
  out.push_back({"q", "Q = X W_Q", "Each token asks a question: its query vector." + rope_note, h.q, Axis::queries,
                 Axis::dims});
  out.push_back({"k", "K = X W_K",
                 "Each token offers a key to be matched against the queries" +
                     std::string(h.kv_head != head ? " (shared K/V head " + std::to_string(h.kv_head) + ")." : ".") +
                     rope_note,
                 h.k, Axis::keys, Axis::dims});
  out.push_back({"v", "V = X W_V", "What each token passes on when attended to.", h.v, Axis::keys, Axis::dims});

  const std::vector<float> bias = relative_bias(s.positional, s.model.seed, head, n_heads, n_q, n_k);
  const bool dot = s.attention.score.kind == ScoreKind::dot || s.attention.score.kind == ScoreKind::scaled_dot;
  Matrix scores(n_q, n_k);
  if (dot) {
    scores = h.q * h.k.transpose();
  } else {  // the score function's value where it was computed
    for (int i = 0; i < n_q; ++i)
      for (int j = 0; j < n_k; ++j)
        scores(i, j) = (*h.allowed)(i, j) ? h.logits(i, j) - (bias.empty() ? 0.0f : bias[j - i + n_q - 1]) : neg_inf;
  }
  const std::string score_name(name(s.attention.score.kind));
  out.push_back({"scores", dot ? "Q K^T" : "score(q_i, k_j): " + score_name,
                 dot ? "Every query against every key: a dot product per pair, large when they point the same way."
                     : "The " + score_name + " score of each query against each key (shown where computed).",
                 scores, Axis::queries, Axis::keys});

  const float alpha = score_scale(s.attention.score.kind, r.d_head);
  char buf[160];
  if (s.attention.score.kind == ScoreKind::scaled_dot)
    std::snprintf(buf, sizeof buf, "Divided by sqrt(d_head) = sqrt(%d) = %.3g, so the softmax does not saturate as d grows.",
                  r.d_head, 1.0 / alpha);
  else
    std::snprintf(buf, sizeof buf, "No scaling for the %s score.", score_name.c_str());
  Matrix scaled = dot ? Matrix(scores * alpha) : scores;
  out.push_back({"scaled", s.attention.score.kind == ScoreKind::scaled_dot ? "Q K^T / sqrt(d_head)" : "scaled (x 1)", buf,
                 scaled, Axis::queries, Axis::keys});

  Matrix biased = scaled;
  if (!bias.empty())
    for (int i = 0; i < n_q; ++i)
      for (int j = 0; j < n_k; ++j)
        if (std::isfinite(biased(i, j))) biased(i, j) += bias[j - i + n_q - 1];
  const std::string bias_formula =
      s.positional.kind == PositionalKind::alibi ? "ALiBi adds -m |i - j|: a penalty growing with distance, slope m per head."
      : s.positional.kind == PositionalKind::t5  ? "T5 adds a learned bias per distance bucket, per head."
                                                 : "No positional bias for " + std::string(name(s.positional.kind)) + ".";
  out.push_back({"biased", bias.empty() ? "+ bias (none)" : "+ positional bias", bias_formula, biased, Axis::queries,
                 Axis::keys});

  Matrix masked = biased;
  for (int i = 0; i < n_q; ++i)
    for (int j = 0; j < n_k; ++j)
      if (!(*h.allowed)(i, j)) masked(i, j) = neg_inf;
  out.push_back({"masked", "masked: -inf where not allowed (" + std::string(name(s.attention.mask.kind)) + ")",
                 "Forbidden cells become -inf, so they get exactly zero weight.", masked, Axis::queries, Axis::keys});

  std::string norm;
  switch (s.attention.normalizer.kind) {
    case NormalizerKind::softmax:
      std::snprintf(buf, sizeof buf, "softmax(row / T), T = %.3g: each row becomes weights that sum to 1.",
                    s.attention.normalizer.temperature);
      norm = buf;
      break;
    case NormalizerKind::sparsemax: norm = "sparsemax: the closest point on the simplex; small scores become exactly 0."; break;
    case NormalizerKind::sigmoid: norm = "sigmoid(x / T + b) per cell: rows need not sum to 1."; break;
  }
  if (h.approx) norm += " Here the " + std::string(name(s.attention.kernel.kind)) + " kernel's effective weights.";
  Step w{"weights", "A = normalise(masked)", norm, h.weights, Axis::queries, Axis::keys};
  w.signed_values = false;
  out.push_back(std::move(w));
  out.push_back({"context", "A V", "Each query's output: the values mixed by its row of weights.", h.output,
                 Axis::queries, Axis::dims});
  out.push_back({"output", "Concat(head_1..head_h) W_O",
                 "All heads' outputs side by side, projected back to d_model: the layer's attention output.",
                 L.attention_output, Axis::queries, Axis::dims});
  return out;
}

std::vector<std::string> axis_labels(const Result& r, Axis a, int count) {
  std::vector<std::string> out;
  const auto& tokens = a == Axis::keys ? r.keys() : r.tokens;
  for (int i = 0; i < count; ++i) {
    if (a != Axis::dims) {
      out.push_back(token_label(tokens.at(i).text));
      continue;
    }
    std::string d = std::to_string(i);  // (not "d" + ...: GCC 12 warns falsely, -Wrestrict)
    d.insert(d.begin(), 'd');
    out.push_back(std::move(d));
  }
  return out;
}

bool step_matrix(const Result& r, int layer, int head, const std::string& id, LabeledMatrix& out, std::string& error) {
  if (layer < 0 || layer >= static_cast<int>(r.layers.size())) {
    error = "layer " + std::to_string(layer) + " out of range";
    return false;
  }
  if (head < 0 || head >= static_cast<int>(r.layers[layer].heads.size())) {
    error = "head " + std::to_string(head) + " out of range";
    return false;
  }
  for (Step& s : head_steps(r, layer, head)) {
    if (s.id != id) continue;
    out = {s.id, std::move(s.values), {}, {}};
    out.row_labels = axis_labels(r, s.rows, static_cast<int>(out.values.rows()));
    out.col_labels = axis_labels(r, s.cols, static_cast<int>(out.values.cols()));
    return true;
  }
  error = "unknown matrix '" + id + "' (input, q, k, v, scores, scaled, biased, masked, weights, context, output)";
  return false;
}

}  // namespace attnlab
