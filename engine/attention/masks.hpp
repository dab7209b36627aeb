// Attention masks and sparse patterns: allowed[i][j] = 1 when query i may attend to key j
// (0-based). docs/variants.md gives each definition with its source, parameters and cost.
#pragma once

#include <cstdint>
#include <vector>

#include "session/session.hpp"
#include "core/tensor.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

class CellExpression;

using MaskSpec = Session::Attention::Mask;

// Every kind but lsh, whose buckets depend on each head's queries (see lsh_mask). `tokens`
// serve the padding mask; `seed` the BigBird random keys. Applies `spec.causal` (intersection)
// where mask_combines_with_causal(kind).
// An expression mask evaluates `expr` (for `head`); without it, the spec's expression compiled
// against the tokens alone (documents then split at special tokens only; none when it fails).
MaskMatrix build_mask(const MaskSpec& spec, int n, const std::vector<Token>& tokens, std::uint64_t seed,
                      const CellExpression* expr = nullptr, int head = 0);

// Cross-attention (n_q queries, n_k keys of another text): none, padding (on the key tokens) and
// custom are defined; other kinds need one sequence (validate() rejects them).
MaskMatrix build_cross_mask(const MaskSpec& spec, int n_q, int n_k, const std::vector<Token>& key_tokens);

// BigBird's r random keys of query row i: r distinct keys of 0..n-1 by a partial Fisher-Yates
// shuffle driven by stream "mask.bigbird.row<i>" (uniform draws 0..r-1).
std::vector<int> bigbird_random_keys(std::uint64_t seed, int row, int n, int r);

// Reformer LSH (Kitaev et al. 2020, sec. 2): for each round, a seeded random rotation R
// (d_head, n_buckets / 2) from stream "mask.lsh.layer<l>.head<h>.round<r>"; bucket(x) =
// argmax([x R, -x R]); i attends j when they share a bucket in any round. q: (n, d_head).
std::vector<int> lsh_buckets(const Matrix& q, int n_buckets, std::uint64_t seed, int layer, int head, int round);
MaskMatrix lsh_mask(const Matrix& q, const MaskSpec& spec, std::uint64_t seed, int layer, int head);

// Cells allowed / n^2, and the score computations the pattern needs (= allowed cells).
double mask_density(const MaskMatrix& m);
std::int64_t mask_cells(const MaskMatrix& m);

}  // namespace attnlab
