// One multi-head attention layer, stage by stage, keeping every intermediate.
#pragma once

#include <atomic>
#include <optional>
#include <memory>
#include <vector>

#include "attention/embed.hpp"
#include "attention/kernels.hpp"
#include "attention/expression.hpp"
#include "attention/masks.hpp"
#include "session/session.hpp"
#include "core/cancel.hpp"
#include "core/tensor.hpp"

namespace attnlab {

class MaskRule;  // attention/field.hpp

struct HeadResult {
  int kv_head = 0;  // the K/V head this query head reads (mqa, gqa share them)
  Matrix q, k, v;   // (n_q, d_head), (n_k, d_head), (n_k, d_head)
  Matrix logits;    // (n_q, n_k) score (+ positional bias), -inf where masked (temperature not applied)
  Matrix weights;   // (n_q, n_k) normalizer(logits / temperature), after dropout; exactly 0 where masked
  std::vector<float> sink_weight;  // per query row, the weight the learned sink took (empty: no sink); rows sum to 1 - it
  Matrix output;    // (n_q, d_head) weights * v
  std::shared_ptr<const MaskMatrix> allowed;  // (n_q, n_k) 1 = attended
  // with a kernel other than exact: weights and output are the kernel's (effective weights for
  // approximations), compared with exact softmax attention here
  std::optional<ApproxError> approx;
  std::vector<FlashTile> flash_trace;  // flash, for up to kMaxFlashTraceTokens queries
};

inline constexpr int kMaxFlashTraceTokens = 256;

struct LayerResult {
  Matrix input;                   // (n, d_model) the residual stream entering the layer (layer 0: embeddings + positions)
  Matrix attention_input;         // (n, d_model) what Q, K and V project: input, or LN(input) in a pre_ln block
  std::vector<HeadResult> heads;  // n_heads
  Matrix attention_output;        // (n, d_model) concat(head outputs) * W_O
  Matrix output;                  // (n, d_model) attention_output, or the pre_ln block's output
};


struct AttentionConfig {
  int n_heads = 1;
  int n_kv_heads = 0;  // 0: n_heads (mha)
  ScoreKind score = ScoreKind::scaled_dot;
  double cosine_temperature = 0.1;
  NormalizerKind normalizer = NormalizerKind::softmax;
  double temperature = 1.0;
  bool sigmoid_bias_auto = true;
  double sigmoid_bias = 0.0;
  bool differential = false;  // DIFF Transformer: weights A1 - lambda A2 of the two halves of each head
  double diff_lambda = 0.2;
  bool sink = false;         // gpt-oss's learned sink logit (softmax, exact kernel)
  double sink_logit = 0.0;
  double dropout = 0.0;
  Session::Attention::Kernel kernel;
  Session::Attention::Mask mask;   // kind and parameters (default: causal)
  // compiled expressions (Validation's): the mask of kind expression, and the score modifier
  std::shared_ptr<const CellExpression> mask_expression, score_mod;
  bool score_mod_set = false;  // the session has a score_mod (compiled or not)
  // the field's mask rule for this session's shape, built once for every layer (null: each layer builds it)
  std::shared_ptr<const MaskRule> field_rule;
  Session::Positional positional;  // rope, alibi and t5 act inside the layer; others are ignored here
  std::uint64_t seed = 0;          // BigBird random keys, LSH rotations, T5 bias table
  int layer = 0;
  const std::vector<Token>* tokens = nullptr;  // for the padding mask
  // cross-attention: keys and values come from this (n_k, d_model) input instead of x
  const Matrix* kv_input = nullptr;
  const std::vector<Token>* key_tokens = nullptr;
  // progress: this layer's share [progress_from, progress_to) of the whole, advanced per row block
  std::atomic<float>* progress = nullptr;
  float progress_from = 0, progress_to = 1;
};

// 1/sqrt(d_head) for scaled_dot (Vaswani et al. 2017, eq. 1), 1 for dot.
float score_scale(ScoreKind kind, int d_head);

// Sparsemax (Martins & Astudillo 2016, Alg. 1) of z over the cells where `allowed`: the
// Euclidean projection onto the probability simplex; weights outside the support are exactly 0.
void sparsemax(const float* z, const std::uint8_t* allowed, int n, float* out);

// Row-wise softmax(logits / temperature) over the allowed cells, max subtracted first.
// Masked cells get exactly 0; a row with no allowed cell is all zeros.
void masked_softmax(const Matrix& logits, const MaskMatrix& allowed, float temperature, Matrix& weights);

// x (n_q, d_model) -> every intermediate (keys and values from cfg.kv_input when set). Heads run in parallel (OpenMP). Returns false when
// `cancel` became true part way (the layer is then incomplete and must be dropped).
bool attention_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out,
                     const CancelFlag* cancel = nullptr);

// The first phase of attention_layer alone: out.heads get q, k (after RoPE; LSH's shared keys),
// v and an output buffer; logits and weights (n_q x n_k) only when `dense`.
void project_heads(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out, bool dense);

}  // namespace attnlab
