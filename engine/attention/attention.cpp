#include "attention/attention.hpp"

#include "attention/positional.hpp"
#include "core/gemm.hpp"
#include "core/rng.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace attnlab {

float score_scale(ScoreKind kind, int d_head) {
  return kind == ScoreKind::scaled_dot ? 1.0f / std::sqrt(static_cast<float>(d_head)) : 1.0f;
}

void sparsemax(const float* z, const std::uint8_t* allowed, int n, float* out) {
  std::vector<float> sorted;
  for (int j = 0; j < n; ++j)
    if (allowed[j]) sorted.push_back(z[j]);
  std::fill(out, out + n, 0.0f);
  if (sorted.empty()) return;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  // k(z) = max{k : 1 + k z_(k) > sum_{j <= k} z_(j)}; tau = (sum_{j <= k(z)} z_(j) - 1) / k(z)
  double cumulative = 0, tau = 0;
  for (std::size_t k = 1; k <= sorted.size(); ++k) {
    cumulative += sorted[k - 1];
    if (1.0 + k * double(sorted[k - 1]) > cumulative) tau = (cumulative - 1.0) / double(k);
  }
  for (int j = 0; j < n; ++j) out[j] = allowed[j] ? std::max(0.0f, static_cast<float>(z[j] - tau)) : 0.0f;
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

// What one head needs for its blocks: the score, the normalizer and its parameters.
struct HeadPlan {
  const Matrix* qs = nullptr;  // score-space queries (n_q, d): q, q W (general) or unit q (cosine)
  const Matrix* ks = nullptr;  // score-space keys (n_k, d)
  Matrix qs_own, ks_own;       // general and cosine: the transformed queries / keys qs, ks point to
  float alpha = 1.0f;          // logits = alpha qs ks^T
  bool additive = false;       // logits = v^T tanh(A_i + B_j) instead
  Matrix a, b;                 // additive: A = q W^T (n_q, d), B = k U^T (n_k, d)
  RowVector va;                // additive: v (d)
  std::vector<float> bias;     // positional bias by j - i (empty: none)
  std::shared_ptr<const CellExpression> score_mod;  // replaces each score after the bias (null: none)
  int head = 0;
  const MaskMatrix* allowed = nullptr;
  NormalizerKind normalizer = NormalizerKind::softmax;
  float inv_t = 1.0f;
  float sigmoid_bias = 0.0f;
  bool sink = false;
  float sink_logit = 0.0f;
  float dropout = 0.0f;
  std::uint64_t dropout_key = 0;
};

// The one scoring routine, used by the exact row blocks and by flash's tiles: raw scores of
// query rows [r0, r0 + rows) against keys [c0, c0 + cols), the positional bias added, written
// to out[i * ld + j] (no mask, no temperature yet).
void score_tile(const HeadPlan& p, int n_q, int r0, int rows, int c0, int cols, float* out, int ld) {
  if (p.additive) {
    // Bahdanau et al. 2015, eq. (A.1.2): e_ij = v^T tanh(W q_i + U k_j)
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j)
        out[std::size_t(i) * ld + j] = (p.va.array() * (p.a.row(r0 + i) + p.b.row(c0 + j)).array().tanh()).sum();
  } else {
    const int d = static_cast<int>(p.qs->cols());
    gemm_nt(rows, cols, d, p.alpha, &(*p.qs)(r0, 0), d, &(*p.ks)(c0, 0), d, out, ld);
  }
  if (!p.bias.empty())
    for (int i = 0; i < rows; ++i)  // a Toeplitz bias: row i reads a contiguous run
      Eigen::Map<RowVector>(out + std::size_t(i) * ld, cols) +=
          Eigen::Map<const RowVector>(&p.bias[c0 - (r0 + i) + n_q - 1], cols);
  if (p.score_mod) {  // FlexAttention's score_mod, on the scaled and biased score
    ExpressionEvaluator ev(p.score_mod, n_q, static_cast<int>(p.ks ? p.ks->rows() : p.b.rows()));
    ev.modify_scores(r0, rows, c0, cols, p.head, out, ld);
  }
}

// One block of one head: logits, normalizer and the weighted sum of values for rows [r0, r1),
// computing only the key span [c0, c1) (Vaswani et al. 2017, eq. 1, row by row).
void attend_block(HeadResult& r, const RowBlock& b, const HeadPlan& plan) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int rows = b.r1 - b.r0, span = b.c1 - b.c0, n_k = static_cast<int>(r.k.rows());
  const int n_q = static_cast<int>(r.q.rows());
  auto logits = r.logits.middleRows(b.r0, rows);    // (rows, n_k)
  auto weights = r.weights.middleRows(b.r0, rows);  // (rows, n_k)
  if (b.c0 > 0) logits.leftCols(b.c0).setConstant(neg_inf), weights.leftCols(b.c0).setZero();
  if (b.c1 < n_k) logits.rightCols(n_k - b.c1).setConstant(neg_inf), weights.rightCols(n_k - b.c1).setZero();
  const int d_head = static_cast<int>(r.v.cols());
  if (span == 0) {
    r.output.middleRows(b.r0, rows).setZero();
    return;
  }
  auto l = logits.middleCols(b.c0, span);
  auto w = weights.middleCols(b.c0, span);
  score_tile(plan, n_q, b.r0, rows, b.c0, span, &l(0, 0), n_k);
  for (int i = 0; i < rows; ++i) {
    float* lp = &l(i, 0);
    float* wp = &w(i, 0);
    const std::uint8_t* ap = plan.allowed->row(b.r0 + i).data() + b.c0;
    if (!b.dense)
      for (int j = 0; j < span; ++j) lp[j] = ap[j] ? lp[j] : neg_inf;
    switch (plan.normalizer) {
      case NormalizerKind::softmax: {
        // pass 1: row max; pass 2: exp, exact zeros where masked; pass 3: normalise (with the
        // learned sink, gpt-oss: one more term exp((s - m) / T) in the sum, and no value)
        const float lm = l.row(i).maxCoeff();
        if (lm == neg_inf) {
          w.row(i).setZero();
          if (plan.sink) r.sink_weight[b.r0 + i] = 1.0f;  // nothing else to attend: all on the sink
          break;
        }
        const float m = plan.sink ? std::max(lm, plan.sink_logit) : lm;
        w.row(i) = ((l.row(i).array() - m) * plan.inv_t).exp().matrix();
        if (!b.dense)
          for (int j = 0; j < span; ++j) wp[j] = ap[j] ? wp[j] : 0.0f;
        const double e_sink = plan.sink ? std::exp(double(plan.sink_logit - m) * plan.inv_t) : 0.0;
        const double total = double(w.row(i).sum()) + e_sink;
        w.row(i) /= static_cast<float>(total);
        if (plan.sink) r.sink_weight[b.r0 + i] = static_cast<float>(e_sink / total);
        break;
      }
      case NormalizerKind::sparsemax: {
        std::vector<float> z(span);
        for (int j = 0; j < span; ++j) z[j] = ap[j] ? lp[j] * plan.inv_t : 0.0f;
        sparsemax(z.data(), ap, span, wp);
        break;
      }
      case NormalizerKind::sigmoid:
        // Ramapuram et al. 2024: each weight sigmoid(logit + b) on its own; rows need not sum to 1
        for (int j = 0; j < span; ++j)
          wp[j] = ap[j] ? 1.0f / (1.0f + std::exp(-(lp[j] * plan.inv_t + plan.sigmoid_bias))) : 0.0f;
        break;
    }
    if (plan.dropout > 0) {
      // inverted dropout (Srivastava et al. 2014): keep with probability 1 - p, scale by 1 / (1 - p)
      const float keep = 1.0f / (1.0f - plan.dropout);
      const std::uint64_t row = static_cast<std::uint64_t>(b.r0 + i) * n_k + b.c0;
      for (int j = 0; j < span; ++j) wp[j] = uniform(plan.dropout_key, row + j) < plan.dropout ? 0.0f : wp[j] * keep;
    }
  }
  gemm_nn(rows, d_head, span, &w(0, 0), n_k, &r.v(b.c0, 0), d_head, &r.output(b.r0, 0), d_head);
}

// The sizes of one layer's attention.
struct Shape {
  int n, n_k, d_model, n_heads, n_kv, d_head, kv_dim, group;
  bool cross;
};

Shape shape_of(const Matrix& x, const AttentionConfig& cfg) {
  Shape s;
  s.n = static_cast<int>(x.rows());  // queries
  s.cross = cfg.kv_input != nullptr;
  s.n_k = s.cross ? static_cast<int>(cfg.kv_input->rows()) : s.n;
  s.d_model = static_cast<int>(x.cols());
  s.n_heads = cfg.n_heads;
  s.n_kv = cfg.n_kv_heads > 0 ? cfg.n_kv_heads : cfg.n_heads;
  s.d_head = s.d_model / s.n_heads;
  s.kv_dim = s.n_kv * s.d_head;
  s.group = s.n_heads / s.n_kv;  // query heads per K/V head
  return s;
}

// Rows a product is computed in when it is copied straight into the heads (see project_heads).
constexpr int kProjectionChunk = 2048;

// Phase 1, project and slice heads: Q, K and V in one GEMM over both cores, (n, d_model) x
// (d_model, d_model + 2 kv_dim) (cross-attention projects the queries and the context's keys and
// values separately); each head keeps its slices, turned by RoPE, and LSH's shared-QK keys.
// Every buffer is allocated here, on the calling thread, before the parallel loops.
void project_heads(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, const Shape& sh,
                   LayerResult& out, bool dense) {
  out.heads.resize(sh.n_heads);
  for (HeadResult& r : out.heads) {
    r.q.resize(sh.n, sh.d_head);
    r.k.resize(sh.n_k, sh.d_head);
    r.v.resize(sh.n_k, sh.d_head);
    if (dense) r.logits.resize(sh.n, sh.n_k), r.weights.resize(sh.n, sh.n_k);
    r.output.resize(sh.n, sh.d_head);
    r.sink_weight.assign(cfg.sink && dense ? sh.n : 0, 1.0f);  // a row that attends nothing is all sink
  }
  const int dh = sh.d_head;
  for (int h = 0; h < sh.n_heads; ++h) out.heads[h].kv_head = h / sh.group;
  if (sh.cross) {
    Matrix q_all, kv_all;
    matmul(x, w.w_q, q_all);
    Matrix w_kv(sh.d_model, 2 * sh.kv_dim);
    w_kv << w.w_k, w.w_v;
    matmul(*cfg.kv_input, w_kv, kv_all);
#pragma omp parallel for
    for (int h = 0; h < sh.n_heads; ++h) {
      HeadResult& r = out.heads[h];
      r.q = q_all.middleCols(h * dh, dh);
      r.k = kv_all.middleCols(r.kv_head * dh, dh);
      r.v = kv_all.middleCols(sh.kv_dim + r.kv_head * dh, dh);
    }
  } else {
    Matrix stacked;
    if (!w.w_qkv.size()) {
      stacked.resize(sh.d_model, sh.d_model + 2 * sh.kv_dim);
      stacked << w.w_q, w.w_k, w.w_v;
    }
    const Matrix& fused = w.w_qkv.size() ? w.w_qkv : stacked;
    // Without dense matrices (the field) and above a chunk of rows, the product runs chunk by
    // chunk through one reused buffer straight into the heads: the whole (n, d_model + 2 kv_dim)
    // product is never held, nor its pages faulted in (at 131,072 tokens that product and its
    // copy were 1.0-1.6 s of a 10 s layer).
    const int chunk = !dense && sh.n > kProjectionChunk ? kProjectionChunk : sh.n;
    const int cols = static_cast<int>(fused.cols()), dm = static_cast<int>(x.cols());
    Matrix buf(chunk, cols);
    for (int r0 = 0; r0 < sh.n; r0 += chunk) {
      const int rows = std::min(sh.n, r0 + chunk) - r0;
      gemm_nn(rows, cols, dm, &x(r0, 0), dm, fused.data(), cols, buf.data(), cols);
#pragma omp parallel for
      for (int h = 0; h < sh.n_heads; ++h) {
        HeadResult& r = out.heads[h];
        const auto b = buf.topRows(rows);
        r.q.middleRows(r0, rows) = b.middleCols(h * dh, dh);
        r.k.middleRows(r0, rows) = b.middleCols(sh.d_model + r.kv_head * dh, dh);
        r.v.middleRows(r0, rows) = b.middleCols(sh.d_model + sh.kv_dim + r.kv_head * dh, dh);
      }
    }
  }
  const bool lsh = cfg.mask.kind == MaskKind::lsh;
  const bool rope = cfg.positional.kind == PositionalKind::rope;
#pragma omp parallel for
  for (int h = 0; h < sh.n_heads; ++h) {
    HeadResult& r = out.heads[h];
    if (rope) {
      rope_rotate(r.q, cfg.positional.rope_base, cfg.positional.rope_fraction, cfg.positional.rope_convention);
      rope_rotate(r.k, cfg.positional.rope_base, cfg.positional.rope_fraction, cfg.positional.rope_convention);
    }
    if (lsh) {
      // Reformer shared-QK attention (Kitaev et al. 2020, sec. 2): keys are the unit queries
      r.k = r.q;
      for (int i = 0; i < sh.n; ++i)
        if (const float norm = r.k.row(i).norm(); norm > 0) r.k.row(i) /= norm;
    }
  }
}

// Phase 2, masks: one shared by all heads, or one per head (LSH buckets depend on each head's
// queries), each cut into blocks of 64 query rows (a block's logits and weights, 64 x n_k, stay
// in cache from the score GEMM through the normalizer to the weighted sum).
std::vector<std::vector<RowBlock>> build_masks(const AttentionConfig& cfg, const Shape& sh, LayerResult& out) {
  static const std::vector<Token> no_tokens;
  std::vector<std::vector<RowBlock>> blocks(sh.n_heads);
  if (cfg.mask.kind == MaskKind::expression && cfg.mask_expression && cfg.mask_expression->reads_head() && !sh.cross) {
    // a pattern of h: one mask per head
    for (int h = 0; h < sh.n_heads; ++h) {
      out.heads[h].allowed = std::make_shared<const MaskMatrix>(
          build_mask(cfg.mask, sh.n, cfg.tokens ? *cfg.tokens : no_tokens, cfg.seed, cfg.mask_expression.get(), h));
      blocks[h] = row_blocks(*out.heads[h].allowed, 64);
    }
  } else if (cfg.mask.kind != MaskKind::lsh) {
    auto shared = std::make_shared<const MaskMatrix>(
        sh.cross ? build_cross_mask(cfg.mask, sh.n, sh.n_k, cfg.key_tokens ? *cfg.key_tokens : no_tokens)
                 : build_mask(cfg.mask, sh.n, cfg.tokens ? *cfg.tokens : no_tokens, cfg.seed,
                              cfg.mask_expression.get()));
    const auto shared_blocks = row_blocks(*shared, 64);
    for (int h = 0; h < sh.n_heads; ++h) out.heads[h].allowed = shared, blocks[h] = shared_blocks;
  } else {
#pragma omp parallel for
    for (int h = 0; h < sh.n_heads; ++h) {
      out.heads[h].allowed =
          std::make_shared<const MaskMatrix>(lsh_mask(out.heads[h].q, cfg.mask, cfg.seed, cfg.layer, h));
      blocks[h] = row_blocks(*out.heads[h].allowed, 64);
    }
  }
  return blocks;
}

// Phase 3, plan each head: its score space, positional bias and normalizer.
std::vector<HeadPlan> plan_heads(const AttentionConfig& cfg, const Shape& sh, const LayerResult& out) {
  std::vector<HeadPlan> plans(sh.n_heads);
  const std::string prefix = "layer" + std::to_string(cfg.layer) + ".head";
  const int dh = sh.d_head;
  for (int h = 0; h < sh.n_heads; ++h) {
    const HeadResult& r = out.heads[h];
    HeadPlan& p = plans[h];
    p.bias = relative_bias(cfg.positional, cfg.seed, h, sh.n_heads, sh.n, sh.n_k);
    p.score_mod = cfg.score_mod;
    p.head = h;
    p.allowed = r.allowed.get();
    p.qs = &r.q;
    p.ks = &r.k;
    p.alpha = score_scale(cfg.score, dh);
    const std::string hp = prefix + std::to_string(h) + ".";
    switch (cfg.score) {
      case ScoreKind::scaled_dot:
      case ScoreKind::dot:
        break;
      case ScoreKind::general:  // Luong et al. 2015, eq. (8): q^T W_a k
        p.qs_own = r.q * glorot_normal(cfg.seed, hp + "W_general", dh, dh);
        p.qs = &p.qs_own;
        break;
      case ScoreKind::cosine: {  // cos(q, k) / tau
        p.qs_own = r.q;
        p.ks_own = r.k;
        for (Matrix* m : {&p.qs_own, &p.ks_own})
          for (Eigen::Index i = 0; i < m->rows(); ++i)
            if (const float norm = m->row(i).norm(); norm > 0) m->row(i) /= norm;
        p.qs = &p.qs_own;
        p.ks = &p.ks_own;
        p.alpha = static_cast<float>(1.0 / cfg.cosine_temperature);
        break;
      }
      case ScoreKind::additive: {  // Bahdanau et al. 2015: v^T tanh(W q + U k), W, U (d_head, d_head)
        p.additive = true;
        p.a = r.q * glorot_normal(cfg.seed, hp + "W_additive_q", dh, dh).transpose();
        p.b = r.k * glorot_normal(cfg.seed, hp + "W_additive_k", dh, dh).transpose();
        p.va = glorot_normal(cfg.seed, hp + "v_additive", 1, dh);
        break;
      }
    }
    p.normalizer = cfg.normalizer;
    p.inv_t = static_cast<float>(1.0 / cfg.temperature);
    p.sink = cfg.sink, p.sink_logit = static_cast<float>(cfg.sink_logit);
    p.sigmoid_bias =
        static_cast<float>(cfg.sigmoid_bias_auto ? -std::log(static_cast<double>(sh.n_k)) : cfg.sigmoid_bias);
    p.dropout = static_cast<float>(cfg.dropout);
    p.dropout_key = stream_key(cfg.seed, "dropout." + hp.substr(0, hp.size() - 1));
  }
  return plans;
}

void report(const AttentionConfig& cfg, float share_done) {
  if (cfg.progress)
    cfg.progress->store(cfg.progress_from + (cfg.progress_to - cfg.progress_from) * share_done,
                        std::memory_order_relaxed);
}

// Phase 4, run the exact blocks: (head, row block) tasks over both cores; causal blocks differ
// in cost, hence dynamic. False when cancelled.
bool run_blocks(const AttentionConfig& cfg, const std::vector<std::vector<RowBlock>>& blocks,
                const std::vector<HeadPlan>& plans, LayerResult& out, const CancelFlag* cancel) {
  const int n_heads = static_cast<int>(plans.size());
  const int n_blocks = static_cast<int>(blocks[0].size());
  const int n_tasks = n_heads * n_blocks;
  // the exact pass is most of a layer; approximations and the output projection follow
  const float share = kernel_is_approximation(cfg.kernel.kind) || cfg.kernel.kind == KernelKind::flash ? 0.5f : 0.9f;
  std::atomic<bool> stop{false};
  std::atomic<int> done{0};
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < n_tasks; ++t) {
    if (stop.load(std::memory_order_relaxed)) continue;
    if ((t % n_blocks) == 0 && cancel_requested(cancel)) {
      stop = true;
      continue;
    }
    const int h = t / n_blocks;
    attend_block(out.heads[h], blocks[h][t % n_blocks], plans[h]);
    report(cfg, share * float(++done) / float(n_tasks));
  }
  return !stop && !cancel_requested(cancel);
}

// Phase 5, a kernel other than exact: flash (exact, tile by tile, scored by score_tile) or an
// approximation, which replaces the weights and outputs and records its error against exact.
void run_kernel(const AttentionConfig& cfg, const Shape& sh, const std::vector<HeadPlan>& plans, LayerResult& out) {
  const auto& kn = cfg.kernel;
  const bool causal_kernel = mask_is_causal(cfg.mask);
  const std::string lp = "layer" + std::to_string(cfg.layer) + ".";
#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < sh.n_heads; ++h) {
    HeadResult& r = out.heads[h];
    const HeadPlan& p = plans[h];
    const Matrix exact_w = r.weights, exact_o = r.output;
    Matrix w, o;
    switch (kn.kind) {
      case KernelKind::flash: {
        const float neg_inf = -std::numeric_limits<float>::infinity();
        auto tile = [&](int r0, int rows, int c0, int cols, Matrix& sc) {  // scored, masked, over T
          sc.resize(rows, cols);
          score_tile(p, sh.n, r0, rows, c0, cols, sc.data(), cols);
          for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) sc(i, j) = (*p.allowed)(r0 + i, c0 + j) ? sc(i, j) * p.inv_t : neg_inf;
        };
        const float sink = p.sink_logit * p.inv_t;  // the sink's logit over T, as the tiles' scores are
        flash_attention(sh.n, sh.n_k, r.v, kn.block_rows, kn.block_cols, tile, w, o,
                        sh.n <= kMaxFlashTraceTokens && sh.n_k <= kMaxFlashTraceTokens ? &r.flash_trace : nullptr,
                        p.sink ? &sink : nullptr, p.sink ? &r.sink_weight : nullptr);
        break;
      }
      case KernelKind::linear:
        linear_attention(r.q, r.k, r.v, causal_kernel, w, o);
        break;
      case KernelKind::performer: {
        const Matrix omega = performer_features(stream_key(cfg.seed, lp + "head" + std::to_string(h) + ".performer"),
                                                kn.features, sh.d_head, kn.orthogonal);
        performer_attention(r.q, r.k, r.v, omega, causal_kernel, w, o);
        break;
      }
      case KernelKind::linformer:
        linformer_attention(r.q, r.k, r.v, kn.projected_length, stream_key(cfg.seed, lp + "linformer.E"),
                            stream_key(cfg.seed, lp + "linformer.F"), w, o);
        break;
      case KernelKind::nystrom:
        nystrom_attention(r.q, r.k, r.v, kn.landmarks, w, o);
        break;
      case KernelKind::exact:
        break;
    }
    r.approx = approx_error(w, o, exact_w, exact_o);
    report(cfg, 0.5f + 0.4f * float(h + 1) / float(sh.n_heads));
    r.weights = std::move(w);
    r.output = std::move(o);
  }
}

// Differential attention (Ye et al. 2024, DIFF Transformer, eq. 1): each head's q and k split into
// halves [q1 q2], [k1 k2]; A_p = softmax(q_p k_p^T / sqrt(d_head / 2) + bias) over the allowed keys
// (at temperature T), weights A1 - lambda A2 (signed, rows summing to 1 - lambda), output that
// times V. The logits kept are the first map's. The paper's GroupNorm and (1 - lambda_init) output
// scale, and its learned reparameterisation of lambda, are left out: lambda is a knob here.
void differential_heads(const AttentionConfig& cfg, const Shape& sh, const std::vector<HeadPlan>& plans, LayerResult& out) {
  const int half = sh.d_head / 2;
  const float scale = cfg.score == ScoreKind::scaled_dot ? 1.0f / std::sqrt(float(half)) : 1.0f;
  const float lambda = static_cast<float>(cfg.diff_lambda), neg_inf = -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < sh.n_heads; ++h) {
    HeadResult& r = out.heads[h];
    const HeadPlan& p = plans[h];
    const MaskMatrix& allowed = *p.allowed;
    Matrix maps[2];
    for (int part = 0; part < 2; ++part) {
      Matrix l = (r.q.middleCols(part * half, half) * r.k.middleCols(part * half, half).transpose()) * scale;
      Matrix& a = maps[part];
      a = Matrix::Zero(sh.n, sh.n_k);
      for (int i = 0; i < sh.n; ++i) {
        float m = neg_inf;
        for (int j = 0; j < sh.n_k; ++j) {
          if (!p.bias.empty()) l(i, j) += p.bias[j - i + sh.n - 1];
          if (!allowed(i, j)) l(i, j) = neg_inf;
          m = std::max(m, l(i, j));
        }
        if (m == neg_inf) continue;  // nothing allowed: a zero row
        double sum = 0;
        for (int j = 0; j < sh.n_k; ++j)
          if (allowed(i, j)) sum += a(i, j) = std::exp((l(i, j) - m) * p.inv_t);
        a.row(i) /= static_cast<float>(sum);
      }
      if (part == 0) r.logits = std::move(l);
    }
    r.weights = maps[0] - lambda * maps[1];
    r.output = r.weights * r.v;
  }
}

}  // namespace

void project_heads(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out, bool dense) {
  project_heads(x, w, cfg, shape_of(x, cfg), out, dense);
}

bool attention_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out,
                     const CancelFlag* cancel) {
  const Shape sh = shape_of(x, cfg);
  out.input = x;
  project_heads(x, w, cfg, sh, out, true);
  if (cancel_requested(cancel)) return false;
  const auto blocks = build_masks(cfg, sh, out);
  const std::vector<HeadPlan> plans = plan_heads(cfg, sh, out);
  if (!run_blocks(cfg, blocks, plans, out, cancel)) return false;
  if (cfg.kernel.kind != KernelKind::exact) run_kernel(cfg, sh, plans, out);
  if (cfg.differential && sh.d_head % 2 == 0) differential_heads(cfg, sh, plans, out);
  Matrix concat(sh.n, sh.d_model);  // (n, n_heads * d_head)
#pragma omp parallel for
  for (int h = 0; h < sh.n_heads; ++h) concat.middleCols(h * sh.d_head, sh.d_head) = out.heads[h].output;
  matmul(concat, w.w_o, out.output);
  out.attention_input = out.input;
  out.attention_output = out.output;
  return true;
}

}  // namespace attnlab
