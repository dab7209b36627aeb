// Per-head summaries of attention weights and how alike the heads are.
#pragma once

#include <vector>

#include "attention/attention.hpp"
#include "core/tensor.hpp"

namespace attnlab {

// Each row is read as a distribution p_i = w_i / sum_j w_ij (rows with zero sum are skipped), so
// sigmoid attention and dropout are summarised on the same footing as softmax. Effective
// weights below zero (Linformer, Nystromformer) count as zero.
struct HeadMetrics {
  double entropy = 0;             // mean_i -sum_j p_ij ln p_ij (nats)
  double entropy_normalized = 0;  // mean_i H_i / ln(allowed_i), over rows with >= 2 allowed keys (0..1)
  double mean_distance = 0;       // mean_i sum_j p_ij |i - j| (tokens)
  double max_weight = 0;          // mean_i max_j p_ij
  double first_token = 0;         // mean_i p_i0 (attention "sinks" on token 0)
  double density = 0;             // allowed cells / (n_q n_k)
  double sink_mass = 0;           // mean_i sum_{j < kSinkTokens} p_ij: the weight StreamingLLM's sinks hold
};
inline constexpr int kSinkTokens = 4;  // StreamingLLM's attention sinks: the first four tokens (Xiao et al. 2023)
HeadMetrics head_metrics(const HeadResult& h);

// (n_heads, n_heads): mean over rows of the Jensen-Shannon divergence (nats, 0..ln 2) between
// head a's and head b's distributions of that row (Lin 1991).
Matrix head_similarity(const std::vector<HeadResult>& heads);

}  // namespace attnlab
