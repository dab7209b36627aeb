// The attention field (long sequences): per head only what is O(n d) - q and k after positional
// rotation, v, the output - and per query row the softmax statistics (row max and log-sum-exp,
// from one tiled online pass, the flash algorithm's), with the mask as a rule, never an n x n
// bitmap. Any tile of logits or weights is then exact on demand: w_ij = exp(l_ij / T - lse_i)
// on allowed cells. A pooled overview (max and mean) of bounded size is built in the same pass.
// Compute and memory scale with the allowed cells of the mask, not with n^2.
//
// Covers the scaled_dot and dot scores, softmax, every mask but lsh, and every positional
// encoding (ALiBi and T5 as the bias by j - i). Other variants stay on the dense path.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "attention/attention.hpp"
#include "core/cancel.hpp"
#include "core/tensor.hpp"
#include "session/session.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

// The mask as a rule: the allowed keys of query i as sorted, disjoint column spans [a, b), for
// n_q queries and n_k keys of one sequence (n_q == n_k) or of a context (none, padding, custom).
class MaskRule {
 public:
  // an expression mask evaluates `expr` (null: the spec's, compiled against the tokens alone),
  // for head `head` when it reads h
  // An expression's rule evaluates the formula once (seconds at 128k tokens for a formula the
  // bounds cannot decide): `cancel` stops it (cancelled() then says so and the rule is not to be
  // used), `progress` goes from 0 to progress_to meanwhile.
  MaskRule(const Session::Attention::Mask& spec, int n_q, int n_k, const std::vector<Token>* key_tokens,
           std::uint64_t seed, std::shared_ptr<const CellExpression> expr = nullptr, int head = 0,
           const CancelFlag* cancel = nullptr, std::atomic<float>* progress = nullptr, float progress_to = 1.0f);
  bool cancelled() const { return cancelled_; }
  static bool supports(MaskKind kind) { return kind != MaskKind::lsh; }
  void spans(int i, std::vector<std::pair<int, int>>& out) const;
  bool allowed(int i, int j) const;
  long long allowed_cells() const;  // sum over rows (O(n) rows, each O(its spans))
  int n_q() const { return n_q_; }
  int n_k() const { return n_k_; }

 private:
  Session::Attention::Mask spec_;
  int n_q_, n_k_;
  std::uint64_t seed_;
  bool causal_;                                 // intersect with j <= i
  std::vector<int> pads_;                       // padding: masked key columns, sorted
  std::vector<std::vector<int>> custom_rows_;   // custom: allowed columns per row, sorted
  std::vector<char> global_;                    // longformer, bigbird: global positions
  std::vector<std::vector<std::pair<int, int>>> expression_rows_;  // expression: each row's spans, evaluated once
  std::vector<std::vector<std::uint64_t>> expression_bits_;  // ... or, for a fragmented row, its bits (else empty)
  bool cancelled_ = false;
};

// The mask at a bounded resolution: the fraction of allowed cells in each block of fr x fc cells
// (1: all allowed, 0: all masked), from the rule's spans, O(n + spans + blocks) - a pattern at
// 128k tokens without an n^2 bitmap.
struct MaskOverview {
  int fr = 1, fc = 1;
  Matrix density;          // (ceil(n_q / fr), ceil(n_k / fc))
  long long cells = 0;     // allowed cells in all
};
MaskOverview mask_overview(const MaskRule& rule, int side);

// The side of the overviews the views draw a long sequence's heads and masks at.
inline constexpr int kFieldOverviewSide = 512;

struct FieldOptions {
  int overview = kFieldOverviewSide;   // the overview's side at most (rows and columns pooled to it)
  int rows_per_block = 64;
  // heads whose rows allow tall_from keys or more on average run in blocks of this many rows
  // (OpenBLAS packs the keys once per call: 512 rows share what 64 would pack 8 times)
  int tall_rows_per_block = 512;
  int tall_from = 8192;
  // a block of more scores than chunk_above is computed cols_per_chunk key columns at a time
  // (a row's softmax online across them), so that its scores stay in the core's L2 through
  // every pass (at 32k keys 512 rows would be 64 MB); smaller blocks are one chunk, whose rows
  // are pooled into the overview elementwise
  long long chunk_above = 64 * 4096;
  int cols_per_chunk = 512;
  // q and k kept as F16 (IEEE half) instead of F32: what a field above the memory budget does.
  // They are rounded to F16 before the pass, so the statistics, the output and every tile are
  // exact for the stored values (against the F32 field: the rounding of q and k, ~1e-3 relative)
  bool half_qk = false;
  int sink_tokens = 4;  // the metric sink_mass: weight on the first sink_tokens keys
};

// Per-head metrics from the same pass, as analysis/metrics.hpp defines them (means over the
// rows that attend to something): no n x n storage.
struct FieldMetrics {
  double entropy = 0, entropy_normalized = 0, mean_distance = 0, max_weight = 0, first_token = 0, density = 0;
  double sink_mass = 0;  // mean over rows of the weight on the first FieldOptions::sink_tokens keys
};

// One head's field.
struct HeadField {
  int kv_head = 0;
  Matrix q, k, v;            // (n_q, d), (n_k, d), (n_k, d): q and k after RoPE; q and k empty when half
  bool half = false;         // q and k held as F16 in q16, k16 (row-major, d per row) - read them with
  std::vector<Eigen::half> q16, k16;  // field_q_rows / field_k_rows
  int d_qk = 0;              // columns of q and k (as stored either way)
  Matrix output;             // (n_q, d)
  std::vector<float> row_max, row_lse;  // of l_ij / T over allowed cells; -inf for an empty row
  std::vector<float> row_log_sum;       // ln sum_j exp(l_ij / T - row_max_i) = row_lse - row_max, unrounded
  long long cells = 0;       // scores computed (allowed cells)
  // gpt-oss's learned sink (FieldHeadSpec::sink): per query row the weight it takes, so that the
  // row's weights sum to 1 - it (row_lse counts its term); empty without a sink
  std::vector<float> sink_weight;
  // overview: (ov_rows, ov_cols), cell (a, b) pools rows [a fr, (a + 1) fr) x cols [b fc, ...)
  int fr = 1, fc = 1;
  Matrix overview_max, overview_mean;  // max / mean of the weights (masked cells count as 0 in the mean)
  FieldMetrics metrics;
};

// What a field head needs besides q, k, v: score scale, temperature, bias by j - i, the rule.
struct FieldHeadSpec {
  float alpha = 1;            // logits = cap(alpha q k^T) + bias
  float softcap = 0;          // cap(x) = softcap tanh(x / softcap) (Gemma 2's attn_logit_softcapping); 0: x
  float inv_t = 1;
  const std::vector<float>* bias = nullptr;  // length n_q + n_k - 1, entry (j - i) + n_q - 1; may be empty
  const MaskRule* rule = nullptr;
  // gpt-oss's learned sink: one more term exp(sink_logit / T) in every row's softmax sum, with no
  // value (attention/attention.hpp AttentionConfig::sink); the weights then sum to 1 - its share
  bool sink = false;
  float sink_logit = 0;
};

// Rows [a, b) of a head's q or k as F32, however they are stored; how many rows there are.
Matrix field_q_rows(const HeadField& f, int a, int b);
Matrix field_k_rows(const HeadField& f, int a, int b);
inline int field_n_q(const HeadField& f) { return f.half ? static_cast<int>(f.q16.size() / std::max(1, f.d_qk)) : static_cast<int>(f.q.rows()); }
inline int field_n_k(const HeadField& f) { return f.half ? static_cast<int>(f.k16.size() / std::max(1, f.d_qk)) : static_cast<int>(f.k.rows()); }
inline double field_qk_bytes(const HeadField& f) {
  return f.half ? 2.0 * double(f.q16.size() + f.k16.size()) : 4.0 * double(f.q.size() + f.k.size());
}

// The weight of query i's allowed cell with l_ij / T = x: exp((x - max_i) - ln S_i). The same
// value as exp(x - lse_i), but the rounding of lse_i (one ulp of |lse| ~ 5e-7 at lse ~ 6) is
// not in it: near the row's max, x - max_i is exact.
inline float field_weight(const HeadField& f, int i, float x) {
  return std::exp((x - f.row_max[i]) - f.row_log_sum[i]);
}

// Soft-capping of logits, c tanh(l / c), in place (Gemma 2; c > 0).
void soft_cap(Matrix& logits, float c);

// The field of one head from q, k, v (moved in). False when cancelled.
bool build_head_field(HeadField& f, const FieldHeadSpec& spec, const FieldOptions& opt, const CancelFlag* cancel);

// Exact logits (masked: -inf) or weights (masked: 0) of rows [r0, r1) x columns [c0, c1).
Matrix field_tile(const HeadField& f, const FieldHeadSpec& spec, int r0, int r1, int c0, int c1, bool logits);

// A whole layer as a field: the heads of `attention_layer` (projection, GQA, RoPE) without any
// n x n buffer; heads run over both cores. Only what the field covers (see above); `out_spec`
// keeps each head's spec (its bias vectors live in `biases`) for later tiles.
struct FieldLayer {
  std::vector<HeadField> heads;
  std::vector<std::vector<float>> biases;
  std::vector<FieldHeadSpec> specs;
  std::shared_ptr<const MaskRule> rule;
  Matrix output;  // (n, d_model): the heads' outputs through W_O

  FieldLayer() = default;
  FieldLayer(FieldLayer&&) = default;
  FieldLayer& operator=(FieldLayer&&) = default;
  // a copy's specs point at its own biases
  FieldLayer(const FieldLayer& o) : heads(o.heads), biases(o.biases), specs(o.specs), rule(o.rule), output(o.output) {
    for (std::size_t h = 0; h < specs.size(); ++h) specs[h].bias = &biases[h], specs[h].rule = rule.get();
  }
  FieldLayer& operator=(const FieldLayer& o) {
    if (this != &o) *this = FieldLayer(o);
    return *this;
  }
};
bool field_supports(const AttentionConfig& cfg);
bool field_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, const FieldOptions& opt,
                 FieldLayer& out, const CancelFlag* cancel = nullptr);

}  // namespace attnlab

namespace attnlab {

// Attention rollout (as attention_rollout in attention/block.hpp) of chosen query rows through
// layers 0..layer of a field, without any n x n matrix: rows R_l[S, :] = A_l[S, :] A_{l-1} ... A_0,
// computed left to right as vector x matrix products whose matrices are streamed in row blocks of
// exact tiles (mean over heads, (A + I) / 2 with the residual, rows renormalised). Work: the
// layers' allowed cells times d_head and heads, like computing the fields; memory O(|S| n).
// Empty when cancelled; `progress` goes from 0 to 1 over the layers' row blocks.
Matrix field_rollout_rows(const std::vector<FieldLayer>& fields, int layer, const std::vector<int>& rows, bool residual,
                          const CancelFlag* cancel = nullptr, std::atomic<float>* progress = nullptr);

// The whole rollout, every layer's (n, n) R_l = A_l R_{l-1} as attention_rollout, of a
// self-attention field of at most kFieldRolloutMaxTokens tokens (64 MB a layer there): A_l built
// from exact tiles 64 rows at a time over both cores, the products 512 rows at a time (2 n^3 a
// layer above the first). Empty when cancelled; `progress` from progress_from to progress_to.
inline constexpr int kFieldRolloutMaxTokens = 4096;
std::vector<Matrix> field_rollout(const std::vector<FieldLayer>& fields, bool residual, const CancelFlag* cancel = nullptr,
                                  std::atomic<float>* progress = nullptr, float progress_from = 0, float progress_to = 1);

}  // namespace attnlab
