// Efficient attention kernels: flash (exact, tiled) and four approximations of
// softmax(q k^T / sqrt(d)). Each gives its effective weights (n_q, n_k) and its output
// (n_q, d_head); docs/variants.md has the formulas, sources and costs.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab {

// After tile (row block, column block) of flash attention: each row's running max m and
// running sum l of exp(s - m) (Dao et al. 2022, Algorithm 1, lines 9-11).
struct FlashTile {
  int r0, r1, c0, c1;
  std::vector<float> m, l;  // rows r0..r1-1
};

// How an approximation compares with exact softmax attention on the same q, k, v and mask.
struct ApproxError {
  double max_weight_error = 0;  // max_ij |w_ij - w_exact_ij|
  double output_error = 0;      // ||O - O_exact||_F / ||O_exact||_F
};
ApproxError approx_error(const Matrix& w, const Matrix& out, const Matrix& w_exact, const Matrix& out_exact);

// Flash attention: scores come tile by tile from `score_tile(r0, rows, c0, cols, S)` (already
// scaled, biased and masked to -inf, temperature applied); the output is accumulated with the
// online softmax; weights are recomputed from the final m and l. `trace` gets every tile.
// With `sink` (gpt-oss's learned sink logit over T), every row's running max and sum start from
// the sink's term, exp(sink - m) with no value, as if it were one more key: the weights then sum to
// 1 - the sink's share, which `sink_weight` receives per row (a row with nothing allowed: 1).
using ScoreTile = std::function<void(int r0, int rows, int c0, int cols, Matrix& s)>;
void flash_attention(int n_q, int n_k, const Matrix& v, int block_rows, int block_cols, const ScoreTile& score_tile,
                     Matrix& weights, Matrix& output, std::vector<FlashTile>* trace, const float* sink = nullptr,
                     std::vector<float>* sink_weight = nullptr);

// Katharopoulos et al. 2020, eq. 6-9: phi(x) = elu(x) + 1; causal by prefix sums (eq. 10-12).
void linear_attention(const Matrix& q, const Matrix& k, const Matrix& v, bool causal, Matrix& weights, Matrix& output);

// Choromanski et al. 2021 (FAVOR+, Lemma 1): phi(x) = exp(w_i . x - |x|^2 / 2) / sqrt(m) on
// x = q / d^(1/4), w_i ~ N(0, I) from stream `key` (orthogonal: Gram-Schmidt per block of d,
// rows rescaled by chi(d) norms), so E[phi(q) . phi(k)] = exp(q . k / sqrt d).
Matrix performer_features(std::uint64_t key, int m, int d, bool orthogonal);  // (m, d)
void performer_attention(const Matrix& q, const Matrix& k, const Matrix& v, const Matrix& omega, bool causal,
                         Matrix& weights, Matrix& output);

// Wang et al. 2020, eq. 7: P = softmax(Q (E K)^T / sqrt d), O = P (F V); E, F (k, n_k) with
// N(0, 1/k) entries from streams key_e, key_f. Effective weights P F.
void linformer_attention(const Matrix& q, const Matrix& k, const Matrix& v, int projected, std::uint64_t key_e,
                         std::uint64_t key_f, Matrix& weights, Matrix& output);

// Xiong et al. 2021, eq. 13-14: landmarks are segment means of Q and K (m = min(landmarks,
// n_q, n_k) segments [floor(s n / m), floor((s+1) n / m))); S^ = F A^+ B with the
// Moore-Penrose inverse A^+ (double precision, cutoff 1e-6 sigma_max).
void nystrom_attention(const Matrix& q, const Matrix& k, const Matrix& v, int landmarks, Matrix& weights,
                       Matrix& output);

}  // namespace attnlab
