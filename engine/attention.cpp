#include "attention.hpp"

#include <cmath>
#include <limits>

namespace attnlab {

MaskMatrix build_mask(MaskKind kind, int n_q, int n_k) {
  MaskMatrix m(n_q, n_k);
  switch (kind) {
    case MaskKind::none: m.setOnes(); break;
    case MaskKind::causal:
      for (int i = 0; i < n_q; ++i)
        for (int j = 0; j < n_k; ++j) m(i, j) = j <= i;
      break;
  }
  return m;
}

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

bool attention_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, LayerResult& out,
                     const std::atomic<bool>* cancel) {
  const int n = static_cast<int>(x.rows());
  const int d_model = static_cast<int>(x.cols());
  const int n_heads = cfg.n_heads;
  const int d_head = d_model / n_heads;
  const float scale = score_scale(cfg.score, d_head);
  const float temperature = static_cast<float>(cfg.temperature);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };

  out.input = x;
  // Projections as three GEMMs that Eigen spreads over both cores.
  const Matrix q_all = x * w.w_q;  // (n, d_model)
  const Matrix k_all = x * w.w_k;
  const Matrix v_all = x * w.w_v;
  if (cancelled()) return false;

  auto allowed = std::make_shared<const MaskMatrix>(build_mask(cfg.mask, n, n));
  out.heads.assign(n_heads, {});
  Matrix concat(n, d_model);  // (n, n_heads * d_head)
  std::atomic<bool> stop{false};

#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < n_heads; ++h) {
    if (stop.load(std::memory_order_relaxed)) continue;
    if (cancelled()) {
      stop = true;
      continue;
    }
    HeadResult& r = out.heads[h];
    r.allowed = allowed;
    r.q = q_all.middleCols(h * d_head, d_head);
    r.k = k_all.middleCols(h * d_head, d_head);
    r.v = v_all.middleCols(h * d_head, d_head);
    r.logits.resize(n, n);
    r.logits.noalias() = r.q * r.k.transpose();
    r.logits *= scale;
    const MaskMatrix& a = *allowed;
    for (int i = 0; i < n; ++i) {
      float* lp = r.logits.row(i).data();
      const std::uint8_t* ap = a.row(i).data();
      for (int j = 0; j < n; ++j) lp[j] = ap[j] ? lp[j] : neg_inf;
    }
    masked_softmax(r.logits, a, temperature, r.weights);
    r.output.noalias() = r.weights * r.v;
    concat.middleCols(h * d_head, d_head) = r.output;
  }
  if (stop || cancelled()) return false;
  out.output.noalias() = concat * w.w_o;
  return true;
}

}  // namespace attnlab
