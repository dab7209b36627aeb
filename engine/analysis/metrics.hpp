// Per-head summaries of attention weights and how alike the heads are.
#pragma once

#include <functional>
#include <vector>

#include "attention/attention.hpp"
#include "attention/field.hpp"
#include "core/cancel.hpp"
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
HeadMetrics head_metrics(const HeadResult& h, int sink_tokens = kSinkTokens);  // sink_mass over the first sink_tokens

// (n_heads, n_heads): mean over rows of the Jensen-Shannon divergence (nats, 0..ln 2) between
// head a's and head b's distributions of that row (Lin 1991).
Matrix head_similarity(const std::vector<HeadResult>& heads);

// The same over row blocks another source provides (a field's exact tiles): block_weights(b, h, w)
// sets w to head h's weights of row block b, the same rows and columns for every head of a block
// (called from both cores at once). The mean runs over the blocks' rows; rows_read gets how
// many there were. Empty (0 x 0) when cancelled.
Matrix head_similarity_blocks(int n_heads, int n_blocks, const std::function<void(int, int, Matrix&)>& block_weights,
                              const CancelFlag* cancel = nullptr, long* rows_read = nullptr);

// Head similarity of a layer of a long sequence (an attention field) from its exact tiles, in
// blocks of 32 query rows whose columns span the rows' allowed keys only: every block when these
// blocks hold at most max_cells cells in all, else evenly spaced blocks (the first and the last
// among them) of about max_cells cells - a sample of the rows, which rows_read states. Empty
// when cancelled.
inline constexpr long long kFieldSimilarityCells = 1ll << 22;  // 0.3 s a layer of 12 heads (bench)
Matrix field_head_similarity(const FieldLayer& f, long long max_cells = kFieldSimilarityCells, long* rows_read = nullptr,
                             const CancelFlag* cancel = nullptr);

}  // namespace attnlab
