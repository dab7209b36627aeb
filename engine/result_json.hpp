// Result -> JSON, streamed (a 1024-token result is hundreds of MB; no DOM is built).
// Keys (read by other tools, keep them): format, version, session, tokens, token_spans,
// n_tokens, d_model, n_heads, d_head, layers[l].{input, output, heads[h].{q, k, v, logits,
// weights, allowed, output}}. Masked logits are null.
#pragma once

#include <ostream>

#include "pipeline.hpp"

namespace attnlab {

void write_result_json(std::ostream& os, const Result& r);

}  // namespace attnlab
