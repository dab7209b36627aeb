// Result -> JSON, streamed (a 1024-token result is hundreds of MB; no DOM is built).
// Keys (read by other tools, keep them): format, version, session, tokens, token_spans,
// key_tokens (cross-attention; empty otherwise), n_tokens, n_keys, d_model, n_heads, d_head,
// intervention (a pretrained model changed by the user: what changed; absent otherwise),
// layers[l].{input, output, attention_input, attention_output, rollout (self-attention only),
// head_similarity, heads[h].{q, k, v, logits, weights, allowed, output, kv_head, metrics,
// approximation (kernel other than exact: kernel, max_weight_error, output_error)}}.
// Masked logits are null.
#pragma once

#include "core/files.hpp"
#include "pipeline.hpp"

namespace attnlab {

// Hands the JSON to `put` in pieces of about a megabyte; false when put failed.
bool write_result_json(const Result& r, const Put& put);

}  // namespace attnlab
