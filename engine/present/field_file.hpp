// A long sequence's Result (an attention field) as one safetensors file: what `attnlab-cli
// compute` writes above kDenseMaxTokens tokens instead of n^2 JSON numbers. Keys (F32, row-major;
// q and k F16 when the field holds them so, above the memory budget - metadata qk_dtype):
//   layers.L.heads.H.q / .k / .v      (n, d_head) / (n_k, d_head): q and k after positional rotation
//   layers.L.heads.H.output           (n, d_head): the head's weights times v
//   layers.L.heads.H.row_max / .row_lse  (n): of logits / temperature over the allowed keys
//                                     (-inf for a row with none); w_ij = exp(l_ij / T - row_lse_i),
//   layers.L.heads.H.row_log_sum      (n): row_lse - row_max before rounding; the exacter form
//                                     w_ij = exp((l_ij / T - row_max_i) - row_log_sum_i),
//                                     l_ij = softcap tanh(alpha q_i k_j / softcap) (softcap 0: alpha q_i k_j)
//   layers.L.heads.H.overview_max / .overview_mean  the pooled weights (rows and columns pooled
//                                     by metadata "pool_rows" / "pool_cols"; mean counts masked as 0)
//   layers.L.output                   (n, d_model): the layer's attention output through W_O
// __metadata__ (strings): format "attnlab.field", version "1", n_tokens, n_keys, n_layers, n_heads,
// d_head, qk_dtype ("F32" or "F16"), alpha (the score scale), softcap (Gemma 2's logit soft-capping, 0: none), temperature, mask, positional, pool_rows, pool_cols, tokens
// (a JSON array of the token texts), key_tokens, metrics (JSON: per layer, per head, the field's
// metrics), head_similarity (JSON, when metrics were computed: per layer {"rows": the query rows
// it was taken over, "js": the n_heads x n_heads Jensen-Shannon divergences}) and session (the
// session JSON).
#pragma once

#include "core/files.hpp"
#include "pipeline.hpp"

namespace attnlab {

bool write_field_safetensors(const Result& r, const Put& put);

}  // namespace attnlab
