#include "training/model.hpp"

#include <algorithm>
#include <cmath>

#include "attention/positional.hpp"
#include "core/rng.hpp"

#if ATTNLAB_HAVE_CBLAS
#include <cblas.h>
#endif

namespace attnlab::train {

const char* pos_name(PosKind k) {
  switch (k) {
    case PosKind::learned: return "learned";
    case PosKind::sinusoidal: return "sinusoidal";
    case PosKind::rope: return "rope";
    case PosKind::alibi: return "alibi";
    case PosKind::t5: return "t5";
    case PosKind::none: return "none";
  }
  return "?";
}
const char* mask_name(MaskRule k) { return k == MaskRule::causal ? "causal" : "sliding_window"; }
const char* norm_name(AttnNorm k) { return k == AttnNorm::softmax ? "softmax" : "sigmoid"; }
bool parse_pos(const std::string& s, PosKind& k) {
  for (PosKind c : {PosKind::learned, PosKind::sinusoidal, PosKind::rope, PosKind::alibi, PosKind::t5, PosKind::none})
    if (s == pos_name(c)) return k = c, true;
  return false;
}
bool parse_mask(const std::string& s, MaskRule& k) {
  for (MaskRule c : {MaskRule::causal, MaskRule::sliding_window})
    if (s == mask_name(c)) return k = c, true;
  return false;
}
bool parse_norm(const std::string& s, AttnNorm& k) {
  for (AttnNorm c : {AttnNorm::softmax, AttnNorm::sigmoid})
    if (s == norm_name(c)) return k = c, true;
  return false;
}

bool check_spec(const ModelSpec& s, std::string& error) {
  auto bad = [&](const std::string& what) {
    error = what;
    return false;
  };
  if (s.vocab < 2 || s.vocab > 65536) return bad("vocab (" + std::to_string(s.vocab) + ") must be 2..65536");
  if (s.context < 2 || s.context > 1024) return bad("sequence length (" + std::to_string(s.context) + ") must be 2..1024");
  if (s.n_layers < 1 || s.n_layers > 4) return bad("layers (" + std::to_string(s.n_layers) + ") must be 1..4");
  if (s.n_heads < 1 || s.n_heads > 8) return bad("heads (" + std::to_string(s.n_heads) + ") must be 1..8");
  if (s.d_model < 16 || s.d_model > 256) return bad("d_model (" + std::to_string(s.d_model) + ") must be 16..256");
  if (s.d_model % s.n_heads)
    return bad("heads (" + std::to_string(s.n_heads) + ") must divide d_model (" + std::to_string(s.d_model) + ")");
  if (s.n_kv_heads < 1 || s.n_heads % s.n_kv_heads)
    return bad("kv_heads (" + std::to_string(s.n_kv_heads) + ") must divide heads (" + std::to_string(s.n_heads) + ")");
  if (s.pos == PosKind::rope && s.d_head() % 2)
    return bad("RoPE needs an even head size, not " + std::to_string(s.d_head()));
  if (s.mask == MaskRule::sliding_window && (s.window < 1 || s.window > s.context))
    return bad("window (" + std::to_string(s.window) + ") must be 1.." + std::to_string(s.context));
  if (s.d_ff < 0 || s.d_ff > 4096) return bad("d_ff (" + std::to_string(s.d_ff) + ") must be 0..4096");
  if (!(s.rope_base > 1.0 && s.rope_base < 1e9)) return bad("rope_base must be in (1, 1e9)");
  return true;
}

template <class S>
void Params<S>::zeros_like(const Params& other) {
  wte.setZero(other.wte.rows(), other.wte.cols());
  wpe.setZero(other.wpe.rows(), other.wpe.cols());
  t5_bias.setZero(other.t5_bias.rows(), other.t5_bias.cols());
  layers.resize(other.layers.size());
  lnf_g.setZero(other.lnf_g.rows(), other.lnf_g.cols());
  lnf_b.setZero(other.lnf_b.rows(), other.lnf_b.cols());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerParams<S>& o = other.layers[l];
    LayerParams<S>& p = layers[l];
    for (auto [dst, src] : {std::pair{&p.ln1_g, &o.ln1_g}, {&p.ln1_b, &o.ln1_b}, {&p.wq, &o.wq}, {&p.bq, &o.bq},
                            {&p.wk, &o.wk}, {&p.bk, &o.bk}, {&p.wv, &o.wv}, {&p.bv, &o.bv}, {&p.wo, &o.wo},
                            {&p.bo, &o.bo}, {&p.ln2_g, &o.ln2_g}, {&p.ln2_b, &o.ln2_b}, {&p.fc, &o.fc},
                            {&p.fc_b, &o.fc_b}, {&p.proj, &o.proj}, {&p.proj_b, &o.proj_b}})
      dst->setZero(src->rows(), src->cols());
  }
}

template <class S>
std::int64_t Params<S>::count() const {
  std::int64_t n = 0;
  each([&](const std::string&, const Mat<S>& m) { n += m.size(); });
  return n;
}

namespace {

// c = alpha op(a) op(b) + beta c, op a transpose when asked; c resized when beta is 0.
template <class S>
void gemm(bool ta, bool tb, const Mat<S>& a, const Mat<S>& b, Mat<S>& c, S alpha = 1, S beta = 0) {
  const int m = static_cast<int>(ta ? a.cols() : a.rows()), k = static_cast<int>(ta ? a.rows() : a.cols());
  const int n = static_cast<int>(tb ? b.rows() : b.cols());
  if (beta == S(0)) c.resize(m, n);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    c *= beta;
    return;
  }
#if ATTNLAB_HAVE_CBLAS
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<S, float>)
    cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, alpha, a.data(), static_cast<int>(a.cols()), b.data(),
                static_cast<int>(b.cols()), beta, c.data(), n);
  else
    cblas_dgemm(CblasRowMajor, TA, TB, m, n, k, alpha, a.data(), static_cast<int>(a.cols()), b.data(),
                static_cast<int>(b.cols()), beta, c.data(), n);
#else
  Mat<S> prod;
  if (ta && tb) prod.noalias() = a.transpose() * b.transpose();
  else if (ta) prod.noalias() = a.transpose() * b;
  else if (tb) prod.noalias() = a * b.transpose();
  else prod.noalias() = a * b;
  if (beta == S(0)) c = alpha * prod;
  else c = beta * c + alpha * prod;
#endif
}

template <class S>
void add_row(Mat<S>& x, const Mat<S>& bias) {  // x (N, c) += bias (1, c) on every row
  x.rowwise() += bias.row(0);
}

constexpr double kNormEps = 1e-5;

// y (N, d) = (x - mean) / sqrt(var + eps) * g + b, per row; keeps mean and rstd (N, 1)
template <class S>
void layernorm_forward(const Mat<S>& x, const Mat<S>& g, const Mat<S>& b, Mat<S>& y, Mat<S>& mean, Mat<S>& rstd) {
  const Eigen::Index n = x.rows(), d = x.cols();
  y.resize(n, d), mean.resize(n, 1), rstd.resize(n, 1);
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < n; ++r) {
    const S mu = x.row(r).sum() / S(d);
    const S var = (x.row(r).array() - mu).square().sum() / S(d);
    const S rs = S(1) / std::sqrt(var + S(kNormEps));
    mean(r, 0) = mu, rstd(r, 0) = rs;
    y.row(r) = ((x.row(r).array() - mu) * rs * g.row(0).array() + b.row(0).array()).matrix();
  }
}
// dx (N, d) += d loss / d x; dg, db (1, d) += their gradients
template <class S>
void layernorm_backward(const Mat<S>& dy, const Mat<S>& x, const Mat<S>& mean, const Mat<S>& rstd, const Mat<S>& g,
                        Mat<S>& dx, Mat<S>& dg, Mat<S>& db) {
  const Eigen::Index n = x.rows(), d = x.cols();
  Mat<S> xhat(n, d);
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < n; ++r) {
    xhat.row(r) = ((x.row(r).array() - mean(r, 0)) * rstd(r, 0)).matrix();
    const auto dxhat = (dy.row(r).array() * g.row(0).array()).eval();
    const S m1 = dxhat.sum() / S(d), m2 = (dxhat * xhat.row(r).array()).sum() / S(d);
    dx.row(r).array() += rstd(r, 0) * (dxhat - m1 - xhat.row(r).array() * m2);
  }
  dg += (dy.array() * xhat.array()).colwise().sum().matrix();
  db += dy.colwise().sum();
}

// RoPE on every head of x (N, heads d_head), rows r at position r % T: pairs (i, i + d_head/2)
// rotated by t theta_i (GPT-NeoX's rotate-half); sign -1 rotates back (the gradient's way).
template <class S>
void rope(Mat<S>& x, int heads, int dh, int T, const std::vector<S>& cs, const std::vector<S>& sn, int sign) {
  const int half = dh / 2;
  const Eigen::Index n = x.rows();
#pragma omp parallel for schedule(static)
  for (Eigen::Index r = 0; r < n; ++r) {
    const int t = static_cast<int>(r % T);
    S* row = x.row(r).data();
    for (int h = 0; h < heads; ++h) {
      S* v = row + h * dh;
      for (int i = 0; i < half; ++i) {
        const S c = cs[t * half + i], s = sign * sn[t * half + i];
        const S a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

template <class S>
Model<S>::Model(const ModelSpec& spec) : spec_(spec) {
  const int d = spec.d_model, T = spec.context;
  if (spec.pos == PosKind::sinusoidal) {  // Vaswani et al. 2017
    sinusoid_.resize(T, d);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < d; i += 2) {
        const double angle = t / std::pow(10000.0, static_cast<double>(i) / d);
        sinusoid_(t, i) = static_cast<S>(std::sin(angle));
        if (i + 1 < d) sinusoid_(t, i + 1) = static_cast<S>(std::cos(angle));
      }
  }
  if (spec.pos == PosKind::alibi)
    for (double s : attnlab::alibi_slopes(spec.n_heads)) slopes_.push_back(static_cast<S>(s));
  if (spec.pos == PosKind::t5)
    for (int n = 0; n < T; ++n) bucket_.push_back(t5_bucket(-n, false, kT5Buckets, kT5MaxDistance));
  if (spec.pos == PosKind::rope) {
    const int half = spec.d_head() / 2;
    cos_.resize(static_cast<std::size_t>(T) * half), sin_.resize(cos_.size());
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < half; ++i) {
        const double theta = std::pow(spec.rope_base, -2.0 * i / spec.d_head());
        cos_[t * half + i] = static_cast<S>(std::cos(t * theta));
        sin_[t * half + i] = static_cast<S>(std::sin(t * theta));
      }
  }
  const int kv = spec.d_kv(), f = spec.ff();
  params.wte.setZero(spec.vocab, d);
  if (spec.pos == PosKind::learned) params.wpe.setZero(T, d);
  if (spec.pos == PosKind::t5) params.t5_bias.setZero(spec.n_heads, kT5Buckets);
  params.layers.resize(spec.n_layers);
  for (LayerParams<S>& p : params.layers) {
    p.ln1_g.setOnes(1, d), p.ln1_b.setZero(1, d);
    p.wq.setZero(d, d), p.bq.setZero(1, d);
    p.wk.setZero(d, kv), p.bk.setZero(1, kv), p.wv.setZero(d, kv), p.bv.setZero(1, kv);
    p.wo.setZero(d, d), p.bo.setZero(1, d);
    if (spec.mlp) {
      p.ln2_g.setOnes(1, d), p.ln2_b.setZero(1, d);
      p.fc.setZero(d, f), p.fc_b.setZero(1, f), p.proj.setZero(f, d), p.proj_b.setZero(1, d);
    }
  }
  params.lnf_g.setOnes(1, d), params.lnf_b.setZero(1, d);
}

template <class S>
void Model<S>::init(std::uint64_t seed) {
  const float proj_std = 0.02f / std::sqrt(2.0f * spec_.n_layers);
  params.each([&](const std::string& name, Mat<S>& m) {
    const bool is_matrix = m.rows() > 1;
    if (!is_matrix) {  // norms' gains 1, biases 0
      const bool gain = name.ends_with("_g");
      m.setConstant(gain ? S(1) : S(0));
      return;
    }
    const bool out_proj = name.ends_with(".wo") || name.ends_with(".proj");
    std::vector<float> draws(static_cast<std::size_t>(m.size()));
    fill_normal(stream_key(seed, "train.init." + name), out_proj ? proj_std : 0.02f, draws);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<S>(draws[static_cast<std::size_t>(i)]);
  });
}

template <class S>
Metrics Model<S>::forward(const Batch& batch, Cache<S>& cache) const {
  const int B = batch.size, T = batch.length, N = B * T, d = spec_.d_model, H = spec_.n_heads, Hk = spec_.n_kv_heads;
  const int dh = spec_.d_head(), V = spec_.vocab, rep = H / Hk;
  const S scale = S(1) / std::sqrt(S(dh));
  const S sigmoid_bias = -std::log(S(T));
  // embeddings: x0 (N, d)
  cache.x0.resize(N, d);
  for (int r = 0; r < N; ++r) {
    const int t = r % T;
    cache.x0.row(r) = params.wte.row(batch.ids[r]);
    if (spec_.pos == PosKind::learned) cache.x0.row(r) += params.wpe.row(t);
    if (spec_.pos == PosKind::sinusoidal) cache.x0.row(r) += sinusoid_.row(t);
  }
  cache.layers.resize(spec_.n_layers);
  Mat<S> cur = cache.x0;  // (N, d) the residual stream
  for (int l = 0; l < spec_.n_layers; ++l) {
    const LayerParams<S>& p = params.layers[l];
    LayerCache<S>& c = cache.layers[l];
    c.x = cur;
    // pass 1: LN1 and the projections q (N, d), k, v (N, d_kv)
    layernorm_forward(c.x, p.ln1_g, p.ln1_b, c.a, c.mean1, c.rstd1);
    gemm(false, false, c.a, p.wq, c.q), add_row(c.q, p.bq);
    gemm(false, false, c.a, p.wk, c.k), add_row(c.k, p.bk);
    gemm(false, false, c.a, p.wv, c.v), add_row(c.v, p.bv);
    if (spec_.pos == PosKind::rope) {
      rope(c.q, H, dh, T, cos_, sin_, 1);
      rope(c.k, Hk, dh, T, cos_, sin_, 1);
    }
    // pass 2: per sequence and head, scores, the normalizer over allowed keys, p v
    c.p.resize(static_cast<std::size_t>(B) * H);
    c.ctx.resize(N, d);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; ++bh) {
      const int b = bh / H, h = bh % H, g = h / rep;
      Mat<S>& P = c.p[bh];  // (T, T)
      P.noalias() = c.q.block(b * T, h * dh, T, dh) * c.k.block(b * T, g * dh, T, dh).transpose();
      for (int i = 0; i < T; ++i) {
        const int lo = spec_.mask == MaskRule::sliding_window ? std::max(0, i - spec_.window + 1) : 0;
        S* row = P.row(i).data();
        for (int j = lo; j <= i; ++j) {
          row[j] *= scale;
          if (!slopes_.empty()) row[j] -= slopes_[h] * S(i - j);
          if (!bucket_.empty()) row[j] += params.t5_bias(h, bucket_[i - j]);
        }
        if (spec_.norm == AttnNorm::softmax) {
          S mx = row[lo];
          for (int j = lo + 1; j <= i; ++j) mx = std::max(mx, row[j]);
          auto seg = P.row(i).segment(lo, i - lo + 1).array();
          seg = (seg - mx).exp();  // vectorised
          seg /= seg.sum();
        } else {
          auto seg = P.row(i).segment(lo, i - lo + 1).array();
          seg = S(1) / (S(1) + (-(seg + sigmoid_bias)).exp());
        }
        for (int j = 0; j < lo; ++j) row[j] = 0;
        for (int j = i + 1; j < T; ++j) row[j] = 0;
      }
      c.ctx.block(b * T, h * dh, T, dh).noalias() = P * c.v.block(b * T, g * dh, T, dh);
    }
    // pass 3: output projection and residual; the MLP
    c.mid = c.x;
    gemm(false, false, c.ctx, p.wo, c.mid, S(1), S(1));
    add_row(c.mid, p.bo);
    cur = c.mid;
    if (spec_.mlp) {
      layernorm_forward(c.mid, p.ln2_g, p.ln2_b, c.m, c.mean2, c.rstd2);
      gemm(false, false, c.m, p.fc, c.h_pre), add_row(c.h_pre, p.fc_b);
      // gelu (tanh form), vectorised: t = tanh(c (x + 0.044715 x^3)) kept for the backward pass
      c.t = (S(0.7978845608028654) * (c.h_pre.array() + S(0.044715) * c.h_pre.array().cube())).tanh().matrix();
      c.h = (S(0.5) * c.h_pre.array() * (S(1) + c.t.array())).matrix();
      gemm(false, false, c.h, p.proj, cur, S(1), S(1));
      add_row(cur, p.proj_b);
    }
  }
  cache.out = std::move(cur);
  // the output: LNf, logits (N, V) = xf wte^T, softmax, cross-entropy on weighted targets
  layernorm_forward(cache.out, params.lnf_g, params.lnf_b, cache.xf, cache.meanf, cache.rstdf);
  gemm(false, true, cache.xf, params.wte, cache.probs);
  Metrics m;
  std::vector<double> loss(N, 0.0), right(N, 0.0);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    S* row = cache.probs.row(r).data();
    int best = 0;
    S mx = row[0];
    for (int j = 1; j < V; ++j)
      if (row[j] > mx) mx = row[j], best = j;
    S sum = 0;
    for (int j = 0; j < V; ++j) sum += row[j] = std::exp(row[j] - mx);
    for (int j = 0; j < V; ++j) row[j] /= sum;
    const float w = batch.weight[r];
    if (w > 0) {
      const int y = batch.targets[r];
      loss[r] = -w * std::log(std::max(static_cast<double>(row[y]), 1e-300));
      right[r] = best == y ? w : 0.0;
    }
  }
  for (int r = 0; r < N; ++r) m.loss += loss[r], m.accuracy += right[r], m.weight += batch.weight[r];
  if (m.weight > 0) m.loss /= m.weight, m.accuracy /= m.weight;
  return m;
}

template <class S>
void Model<S>::backward(const Batch& batch, const Cache<S>& cache, Params<S>& grad) const {
  const int B = batch.size, T = batch.length, N = B * T, d = spec_.d_model, H = spec_.n_heads, Hk = spec_.n_kv_heads;
  const int dh = spec_.d_head(), rep = H / Hk;
  const S scale = S(1) / std::sqrt(S(dh));
  grad.zeros_like(params);
  double wsum = 0;
  for (int r = 0; r < N; ++r) wsum += batch.weight[r];
  // dlogits (N, V) = (probs - onehot) w_r / sum w
  Mat<S> dlogits = cache.probs;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const S w = wsum > 0 ? S(batch.weight[r] / wsum) : S(0);
    if (w == S(0)) {
      dlogits.row(r).setZero();
      continue;
    }
    dlogits(r, batch.targets[r]) -= S(1);
    dlogits.row(r) *= w;
  }
  // logits = xf wte^T: dwte (V, d) = dlogits^T xf, dxf (N, d) = dlogits wte
  gemm(true, false, dlogits, cache.xf, grad.wte);
  Mat<S> dxf;
  gemm(false, false, dlogits, params.wte, dxf);
  Mat<S> dx = Mat<S>::Zero(N, d);  // d loss / d (the current layer's output)
  layernorm_backward(dxf, cache.out, cache.meanf, cache.rstdf, params.lnf_g, dx, grad.lnf_g, grad.lnf_b);
  for (int l = spec_.n_layers - 1; l >= 0; --l) {
    const LayerParams<S>& p = params.layers[l];
    LayerParams<S>& gp = grad.layers[l];
    const LayerCache<S>& c = cache.layers[l];
    // out = mid + gelu(LN2(mid) fc + fc_b) proj + proj_b: dx stays as d mid's residual part
    if (spec_.mlp) {
      gemm(true, false, c.h, dx, gp.proj);  // (f, d)
      gp.proj_b = dx.colwise().sum();
      Mat<S> dh_;
      gemm(false, true, dx, p.proj, dh_);  // (N, f)
      {  // gelu'(x) = (1 + t) / 2 + x (1 - t^2) c (1 + 3 0.044715 x^2) / 2
        const auto x = c.h_pre.array(), t = c.t.array();
        dh_.array() *= S(0.5) * (S(1) + t) +
                       S(0.5) * x * (S(1) - t * t) * S(0.7978845608028654) * (S(1) + S(3 * 0.044715) * x * x);
      }
      gemm(true, false, c.m, dh_, gp.fc);  // (d, f)
      gp.fc_b = dh_.colwise().sum();
      Mat<S> dm;
      gemm(false, true, dh_, p.fc, dm);  // (N, d)
      layernorm_backward(dm, c.mid, c.mean2, c.rstd2, p.ln2_g, dx, gp.ln2_g, gp.ln2_b);
    }
    // mid = x + ctx wo + bo
    gemm(true, false, c.ctx, dx, gp.wo);
    gp.bo = dx.colwise().sum();
    Mat<S> dctx;
    gemm(false, true, dx, p.wo, dctx);  // (N, d)
    // the heads: dq (N, d), dk, dv (N, d_kv); a kv head's gradient summed over its query heads
    Mat<S> dq(N, d), dk = Mat<S>::Zero(N, spec_.d_kv()), dv = Mat<S>::Zero(N, spec_.d_kv());
    // T5: each (sequence, kv group)'s share of the bias table's gradient, summed after the loop
    std::vector<Mat<S>> dbias(bucket_.empty() ? 0 : static_cast<std::size_t>(B * Hk), Mat<S>::Zero(H, kT5Buckets));
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * Hk; ++bg) {
      const int b = bg / Hk, g = bg % Hk;
      Mat<S> dP, dS;
      for (int h = g * rep; h < (g + 1) * rep; ++h) {
        const Mat<S>& P = c.p[static_cast<std::size_t>(b) * H + h];
        const auto dO = dctx.block(b * T, h * dh, T, dh);
        dP.noalias() = dO * c.v.block(b * T, g * dh, T, dh).transpose();  // (T, T)
        dv.block(b * T, g * dh, T, dh).noalias() += P.transpose() * dO;
        dS.resize(T, T);
        for (int i = 0; i < T; ++i) {
          if (spec_.norm == AttnNorm::softmax) {
            const S dot = P.row(i).dot(dP.row(i));
            dS.row(i) = (P.row(i).array() * (dP.row(i).array() - dot)).matrix();
          } else {
            dS.row(i) = (dP.row(i).array() * P.row(i).array() * (S(1) - P.row(i).array())).matrix();
          }
        }
        if (!bucket_.empty()) {  // d s / d b_h[bucket(j - i)] = 1 on allowed cells (dS is 0 elsewhere)
          Mat<S>& db = dbias[static_cast<std::size_t>(bg)];
          for (int i = 0; i < T; ++i)
            for (int j = 0; j <= i; ++j) db(h, bucket_[i - j]) += dS(i, j);
        }
        dS *= scale;
        dq.block(b * T, h * dh, T, dh).noalias() = dS * c.k.block(b * T, g * dh, T, dh);
        dk.block(b * T, g * dh, T, dh).noalias() += dS.transpose() * c.q.block(b * T, h * dh, T, dh);
      }
    }
    for (const Mat<S>& db : dbias) grad.t5_bias += db;
    if (spec_.pos == PosKind::rope) {
      rope(dq, H, dh, T, cos_, sin_, -1);
      rope(dk, Hk, dh, T, cos_, sin_, -1);
    }
    // q = a wq + bq (and k, v): the weights' gradients and d a (N, d)
    gemm(true, false, c.a, dq, gp.wq), gp.bq = dq.colwise().sum();
    gemm(true, false, c.a, dk, gp.wk), gp.bk = dk.colwise().sum();
    gemm(true, false, c.a, dv, gp.wv), gp.bv = dv.colwise().sum();
    Mat<S> da;
    gemm(false, true, dq, p.wq, da);
    gemm(false, true, dk, p.wk, da, S(1), S(1));
    gemm(false, true, dv, p.wv, da, S(1), S(1));
    layernorm_backward(da, c.x, c.mean1, c.rstd1, p.ln1_g, dx, gp.ln1_g, gp.ln1_b);
  }
  // x0 = wte[id] + wpe[t]
  for (int r = 0; r < N; ++r) {
    grad.wte.row(batch.ids[r]) += dx.row(r);
    if (spec_.pos == PosKind::learned) grad.wpe.row(r % T) += dx.row(r);
  }
}

template struct Params<float>;
template struct Params<double>;
template class Model<float>;
template class Model<double>;

}  // namespace attnlab::train
