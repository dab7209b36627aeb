#include "attention.hpp"

#include "gemm.hpp"
#include "positional.hpp"

#include <cmath>
#include <limits>

namespace attnlab {

float score_scale(ScoreKind kind, int d_head) {
  return kind == ScoreKind::scaled_dot ? 1.0f / std::sqrt(static_cast<float>(d_head)) : 1.0f;
}

void masked_softmax(const Matrix& logits, const MaskMatrix& allowed, float temperature, Matrix& weights) {
  const Eigen::Index n_q = logits.rows(), n_k = logits.cols();
  weights.resize(n_q, n_k);
  const float inv_t = 1.0f / temperature;
  for (Eigen::Index i = 0; i < n_q; ++i) {
    // pass 1: row max over allowed cells (masked cells hold -inf, so maxCoeff ignores them)
    const float m = logits.row(i).maxCoeff();
    auto w = weights.row(i);
    if (m == -std::numeric_limits<float>::infinity()) {
      w.setZero();  // fully masked row: nothing to attend to, no NaN
      continue;
    }
    // pass 2: exp and zero the masked cells exactly (vectorised exp of -inf is tiny, not 0)
    w = ((logits.row(i).array() - m) * inv_t).exp().matrix();
    float* wp = w.data();
    const std::uint8_t* ap = allowed.row(i).data();
    for (Eigen::Index j = 0; j < n_k; ++j) wp[j] = ap[j] ? wp[j] : 0.0f;
    // pass 3: normalise; the max cell contributes exp(0) = 1, so the sum is >= 1
    w /= w.sum();
  }
}

namespace {

// The keys a block of query rows may attend to lie in [c0, c1); `dense` when every cell of the
// block inside that span is allowed (no per-cell masking needed).
struct RowBlock {
  int r0, r1, c0, c1;
  bool dense;
};

std::vector<RowBlock> row_blocks(const MaskMatrix& allowed, int rows_per_block) {
  const int n_q = static_cast<int>(allowed.rows()), n_k = static_cast<int>(allowed.cols());
  std::vector<RowBlock> blocks;
  for (int r0 = 0; r0 < n_q; r0 += rows_per_block) {
    const int r1 = std::min(n_q, r0 + rows_per_block);
    int c0 = n_k, c1 = 0;
    for (int i = r0; i < r1; ++i) {
      const std::uint8_t* a = allowed.row(i).data();
      int lo = 0, hi = n_k;
      while (lo < n_k && !a[lo]) ++lo;
      while (hi > lo && !a[hi - 1]) --hi;
      if (lo < hi) c0 = std::min(c0, lo), c1 = std::max(c1, hi);
    }
    if (c0 >= c1) c0 = c1 = 0;  // a block of fully masked rows
    bool dense = true;
    for (int i = r0; i < r1 && dense; ++i)
      for (int j = c0; j < c1 && dense; ++j) dense = allowed(i, j) != 0;
    blocks.push_back({r0, r1, c0, c1, dense});
  }
  return blocks;
}

// One block of one head: logits, masked softmax and the weighted sum of values, for rows
// [r0, r1), computing only the key span [c0, c1) (Vaswani et al. 2017, eq. 1, row by row).
// `bias` (length 2 n_k - 1, may be empty): added to logit (i, j) at index j - i + n_k - 1.
void attend_block(HeadResult& r, const RowBlock& b, const MaskMatrix& allowed, float scale, float inv_t,
                  const std::vector<float>& bias) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int rows = b.r1 - b.r0, span = b.c1 - b.c0, n_k = static_cast<int>(r.k.rows());
  auto logits = r.logits.middleRows(b.r0, rows);    // (rows, n_k)
  auto weights = r.weights.middleRows(b.r0, rows);  // (rows, n_k)
  if (b.c0 > 0) logits.leftCols(b.c0).setConstant(neg_inf), weights.leftCols(b.c0).setZero();
  if (b.c1 < n_k) logits.rightCols(n_k - b.c1).setConstant(neg_inf), weights.rightCols(n_k - b.c1).setZero();
  if (span == 0) {
    r.output.middleRows(b.r0, rows).setZero();
    return;
  }
  auto l = logits.middleCols(b.c0, span);
  auto w = weights.middleCols(b.c0, span);
  const int d_head = static_cast<int>(r.q.cols());
  gemm_nt(rows, span, d_head, scale, &r.q(b.r0, 0), d_head, &r.k(b.c0, 0), d_head, &l(0, 0), n_k);
  if (!bias.empty()) {
    for (int i = 0; i < rows; ++i)  // a Toeplitz bias: row i reads a contiguous run
      l.row(i) += Eigen::Map<const RowVector>(&bias[b.c0 - (b.r0 + i) + n_k - 1], span);
  }
  for (int i = 0; i < rows; ++i) {
    float* lp = &l(i, 0);
    float* wp = &w(i, 0);
    const std::uint8_t* ap = allowed.row(b.r0 + i).data() + b.c0;
    if (!b.dense)
      for (int j = 0; j < span; ++j) lp[j] = ap[j] ? lp[j] : neg_inf;
    // pass 1: row max; pass 2: exp, exact zeros where masked; pass 3: normalise
    const float m = l.row(i).maxCoeff();
    if (m == neg_inf) {
      w.row(i).setZero();
      continue;
    }
    w.row(i) = ((l.row(i).array() - m) * inv_t).exp().matrix();
    if (!b.dense)
      for (int j = 0; j < span; ++j) wp[j] = ap[j] ? wp[j] : 0.0f;
    w.row(i) /= w.row(i).sum();
  }
  gemm_nn(rows, d_head, span, &w(0, 0), n_k, &r.v(b.c0, 0), d_head, &r.output(b.r0, 0), d_head);
}

}  // namespace

bool attention_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out,
                     const std::atomic<bool>* cancel) {
  const int n = static_cast<int>(x.rows());
  const int d_model = static_cast<int>(x.cols());
  const int n_heads = cfg.n_heads;
  const int d_head = d_model / n_heads;
  const float scale = score_scale(cfg.score, d_head);
  const float inv_t = static_cast<float>(1.0 / cfg.temperature);
  auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };

  out.input = x;
  // Q, K and V in one GEMM over both cores: (n, d_model) x (d_model, 3 d_model).
  Matrix qkv;
  if (w.w_qkv.size()) {
    matmul(x, w.w_qkv, qkv);
  } else {
    qkv.resize(n, 3 * d_model);
    qkv << x * w.w_q, x * w.w_k, x * w.w_v;
  }
  if (cancelled()) return false;

  // Every buffer is allocated here, on the calling thread, before the parallel loop.
  out.heads.resize(n_heads);
  for (HeadResult& r : out.heads) {
    r.q.resize(n, d_head);
    r.k.resize(n, d_head);
    r.v.resize(n, d_head);
    r.logits.resize(n, n);
    r.weights.resize(n, n);
    r.output.resize(n, d_head);
  }
  const bool lsh = cfg.mask.kind == MaskKind::lsh;
  const bool rope = cfg.positional.kind == PositionalKind::rope;
#pragma omp parallel for
  for (int h = 0; h < n_heads; ++h) {  // each head keeps its own slices of Q, K and V
    HeadResult& r = out.heads[h];
    r.q = qkv.middleCols(h * d_head, d_head);
    r.k = qkv.middleCols(d_model + h * d_head, d_head);
    r.v = qkv.middleCols(2 * d_model + h * d_head, d_head);
    if (rope) {
      rope_rotate(r.q, cfg.positional.rope_base, cfg.positional.rope_fraction, cfg.positional.rope_convention);
      rope_rotate(r.k, cfg.positional.rope_base, cfg.positional.rope_fraction, cfg.positional.rope_convention);
    }
    if (lsh) {
      // Reformer shared-QK attention (Kitaev et al. 2020, sec. 2): keys are the unit queries
      r.k = r.q;
      for (int i = 0; i < n; ++i)
        if (const float norm = r.k.row(i).norm(); norm > 0) r.k.row(i) /= norm;
    }
  }
  if (cancelled()) return false;

  // One mask shared by all heads, or one per head (LSH buckets depend on each head's queries).
  static const std::vector<Token> no_tokens;
  std::vector<std::shared_ptr<const MaskMatrix>> masks(n_heads);
  std::vector<std::vector<RowBlock>> blocks(n_heads);
  if (!lsh) {
    auto shared = std::make_shared<const MaskMatrix>(build_mask(cfg.mask, n, cfg.tokens ? *cfg.tokens : no_tokens, cfg.seed));
    // 64 query rows at a time: a block's logits and weights (64 x n_k) stay in cache from the
    // score GEMM through softmax to the weighted sum.
    const auto shared_blocks = row_blocks(*shared, 64);
    for (int h = 0; h < n_heads; ++h) masks[h] = shared, blocks[h] = shared_blocks;
  } else {
#pragma omp parallel for
    for (int h = 0; h < n_heads; ++h) {
      masks[h] = std::make_shared<const MaskMatrix>(lsh_mask(out.heads[h].q, cfg.mask, cfg.seed, cfg.layer, h));
      blocks[h] = row_blocks(*masks[h], 64);
    }
  }
  std::vector<std::vector<float>> bias(n_heads);
  for (int h = 0; h < n_heads; ++h) {
    out.heads[h].allowed = masks[h];
    bias[h] = relative_bias(cfg.positional, cfg.seed, h, n_heads, n);
  }

  // (head, row block) tasks over both cores; causal blocks differ in cost, hence dynamic.
  const int n_blocks = static_cast<int>(blocks[0].size());
  const int n_tasks = n_heads * n_blocks;
  std::atomic<bool> stop{false};
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < n_tasks; ++t) {
    if (stop.load(std::memory_order_relaxed)) continue;
    if ((t % n_blocks) == 0 && cancelled()) {
      stop = true;
      continue;
    }
    const int h = t / n_blocks;
    attend_block(out.heads[h], blocks[h][t % n_blocks], *masks[h], scale, inv_t, bias[h]);
  }
  if (stop || cancelled()) return false;

  Matrix concat(n, d_model);  // (n, n_heads * d_head)
#pragma omp parallel for
  for (int h = 0; h < n_heads; ++h) concat.middleCols(h * d_head, d_head) = out.heads[h].output;
  matmul(concat, w.w_o, out.output);
  return true;
}

}  // namespace attnlab
