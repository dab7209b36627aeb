#include "models/layers.hpp"

#include <cmath>
#include <limits>

#include "attention/attention.hpp"
#include "attention/block.hpp"
#include "attention/masks.hpp"
#include "attention/positional.hpp"
#include "core/gemm.hpp"

namespace attnlab {

Matrix layer_norm(const Matrix& x, const RowVector& g, const RowVector& b, double eps) {
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).cast<double>().mean();
    const double var = (x.row(i).cast<double>().array() - mean).square().mean();
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    y.row(i) = ((x.row(i).array() - static_cast<float>(mean)) * inv * g.array() + b.array()).matrix();
  }
  return y;
}

Matrix rms_norm(const Matrix& x, const RowVector& g, double eps) {
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double ms = x.row(i).cast<double>().squaredNorm() / static_cast<double>(x.cols());
    y.row(i) = (x.row(i).array() * static_cast<float>(1.0 / std::sqrt(ms + eps)) * g.array()).matrix();
  }
  return y;
}

Matrix affine(const Matrix& x, const Matrix& w) {
  Matrix y;
  matmul(x, w, y);  // OpenBLAS when built with it
  return y;
}

Matrix affine(const Matrix& x, const Matrix& w, const RowVector& b) {
  Matrix y = affine(x, w);
  y.rowwise() += b;
  return y;
}

Matrix unembed_rows(const Matrix& normed, const Matrix& table) {
  Matrix logits(normed.rows(), table.rows());
  if (normed.rows() && table.rows())
    gemm_nt(static_cast<int>(normed.rows()), static_cast<int>(table.rows()), static_cast<int>(normed.cols()), 1.0f,
            normed.data(), static_cast<int>(normed.cols()), table.data(), static_cast<int>(table.cols()), logits.data(),
            static_cast<int>(table.rows()));
  return logits;
}

const Matrix* output_table(const ModelInfo& in, const Weights& w, const char* stored, std::string& why) {
  if (in.tie_embeddings) return &w.get("wte");
  if (w.global.count("lm_head")) return &w.get("lm_head");
  why = std::string("the checkpoint has no ") + stored + " and config.json's tie_word_embeddings is false";
  return nullptr;
}

Matrix gelu_tanh(const Matrix& x) {  // sqrt(2 / pi) = 0.79788...
  const auto a = x.array();
  return (0.5f * a * (1.0f + (0.7978845608028654f * (a + 0.044715f * a.cube())).tanh())).matrix();
}

Matrix gelu_exact(const Matrix& x) { return x.unaryExpr([](float v) { return gelu(v); }); }

Matrix swiglu(const Matrix& gate, const Matrix& up) {
  return (gate.array() / (1.0f + (-gate.array()).exp()) * up.array()).matrix();
}

Matrix embed(const Matrix& wte, const std::vector<int>& ids, const Matrix* wpe, int first_position) {
  Matrix x(static_cast<Eigen::Index>(ids.size()), wte.cols());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    x.row(i) = wte.row(ids[i]);
    if (wpe) x.row(i) += wpe->row(first_position + static_cast<int>(i));
  }
  return x;
}

bool next_layer(const ForwardInput& fi, int l, int n_layers) {
  if (cancel_requested(fi.cancel)) return false;
  if (fi.options.progress) fi.options.progress->store(float(l) / float(n_layers + 1));
  return true;
}

std::shared_ptr<MaskMatrix> own_pattern(int n, bool causal, int window) {
  auto m = std::make_shared<MaskMatrix>(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) (*m)(i, j) = (!causal || j <= i) && (window <= 0 || i - j < window);
  return m;
}

namespace {
// The RoPE frequencies of a layout's heads (none without rotary positions).
std::vector<double> head_rope(const HeadLayout& lay, int n) {
  if (lay.rope_theta <= 0) return {};
  return rope_frequencies(lay.rope_dims > 0 ? lay.rope_dims : lay.d_head, lay.rope_theta, lay.scaling, n);
}

float head_scale(const HeadLayout& lay) {
  return lay.scale > 0 ? static_cast<float>(lay.scale) : 1.0f / std::sqrt(static_cast<float>(lay.d_head));
}

// An ablated head's output: zeros, every position given the mean over the text's positions, or
// the head's output on the corrupted text (HfModel::compute checked that it has as many tokens).
void ablate_output(Matrix& out, const Intervention& iv, int layer, int head) {
  const AblateMode mode = iv.ablate_mode;
  if (mode == AblateMode::corrupted && iv.corrupted_outputs) {
    out = (*iv.corrupted_outputs)[std::size_t(layer)][std::size_t(head)];
  } else if (mode == AblateMode::zero) {
    out.setZero();
  } else {
    const RowVector mean = out.colwise().mean();
    out.rowwise() = mean;
  }
}

// Masks the raw logits (-inf where not allowed) and normalises them: the model's own mask, or an
// intervention's mask and temperature on its layer.
void finish_head(HeadResult& hr, const std::shared_ptr<MaskMatrix>& own, const Intervention& iv, int layer,
                 const std::vector<Token>& tokens) {
  const bool here = iv.enabled && (iv.layer < 0 || iv.layer == layer);
  std::shared_ptr<const MaskMatrix> allowed = own;
  if (here && iv.replace_mask)
    allowed = std::make_shared<const MaskMatrix>(build_mask(iv.mask, static_cast<int>(tokens.size()), tokens, 0));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (Eigen::Index i = 0; i < hr.logits.rows(); ++i)
    for (Eigen::Index j = 0; j < hr.logits.cols(); ++j)
      if (!(*allowed)(i, j)) hr.logits(i, j) = neg_inf;
  hr.allowed = allowed;
  masked_softmax(hr.logits, *allowed, here ? static_cast<float>(iv.temperature) : 1.0f, hr.weights);
  matmul(hr.weights, hr.v, hr.output);  // OpenBLAS (an Eigen product was 13 % of GPT-2's forward at 1024 tokens)
}
}  // namespace

Matrix attend(const Matrix& qkv, const HeadLayout& lay, const std::shared_ptr<MaskMatrix>& own, const Intervention& iv,
              int layer_index, const std::vector<Token>& tokens, LayerResult& layer) {
  const int H = lay.n_heads, KV = lay.n_kv_heads, dh = lay.d_head, qd = H * dh, kvd = KV * dh, group = H / KV;
  const Eigen::Index n = qkv.rows();
  std::vector<Matrix> ks(KV), vs(KV);
  const std::vector<double> theta = head_rope(lay, int(n));
  const double mscale = rope_attention_factor(lay.scaling);
  for (int g = 0; g < KV; ++g) {  // keys turned by RoPE once per K/V head
    ks[g] = qkv.middleCols(qd + g * dh, dh);
    vs[g] = qkv.middleCols(qd + kvd + g * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(ks[g], theta, mscale);
  }
  const float scale = head_scale(lay);
  layer.heads.resize(H);
  Matrix concat(n, qd);
#pragma omp parallel for schedule(dynamic)
  for (int h = 0; h < H; ++h) {
    HeadResult& hr = layer.heads[h];
    hr.kv_head = h / group;
    hr.q = qkv.middleCols(h * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(hr.q, theta, mscale);
    hr.k = ks[hr.kv_head];
    hr.v = vs[hr.kv_head];
    hr.logits.resize(n, hr.k.rows());  // q k^T / sqrt(d_head) by the blocked GEMM (OpenBLAS), not an Eigen expression
    gemm_nt(static_cast<int>(n), static_cast<int>(hr.k.rows()), dh, scale, hr.q.data(), dh, hr.k.data(), dh, hr.logits.data(),
            static_cast<int>(hr.k.rows()));
    if (lay.softcap > 0) soft_cap(hr.logits, static_cast<float>(lay.softcap));
    finish_head(hr, own, iv, layer_index, tokens);
    if (iv.ablated(layer_index, h)) ablate_output(hr.output, iv, layer_index, h);
    concat.middleCols(h * dh, dh) = hr.output;
  }
  return concat;
}

Matrix causal_attention(const ForwardInput& fi, const Matrix& qkv, const HeadLayout& lay, const std::shared_ptr<MaskMatrix>& own,
                        int window, int l, Result& r, LayerResult& layer, FieldLayer& field) {
  if (fi.cache) return attend_cached(qkv, lay, window, l, *fi.cache);
  if (fi.field) return attend_field(qkv, lay, true, fi.intervention, l, r.tokens, field, fi.cancel, window, fi.field_half,
                                   fi.options.sink_tokens);
  return attend(qkv, lay, own, fi.intervention, l, r.tokens, layer);
}

void keep_layer(const ForwardInput& fi, Result& r, LayerResult& layer, FieldLayer& field) {
  // a field keeps the heads' fields, not the layer's (n, d_model) streams (0.57 GB at SmolLM's 8192 tokens)
  if (fi.cache) return;
  if (fi.field) r.fields.push_back(std::move(field));
  else r.layers.push_back(std::move(layer));
}

Matrix attend_cached(const Matrix& qkv, const HeadLayout& lay, int window, int layer_index, KvCache& cache) {
  const int H = lay.n_heads, KV = lay.n_kv_heads, dh = lay.d_head, qd = H * dh, kvd = KV * dh, group = H / KV;
  const int m = static_cast<int>(qkv.rows()), p0 = cache.positions, total = p0 + m;
  if (cache.k.size() <= std::size_t(layer_index)) cache.k.resize(layer_index + 1), cache.v.resize(layer_index + 1);
  auto& ks = cache.k[layer_index];
  auto& vs = cache.v[layer_index];
  ks.resize(KV), vs.resize(KV);
  const std::vector<double> theta = head_rope(lay, total);
  const double mscale = rope_attention_factor(lay.scaling);
  for (int g = 0; g < KV; ++g) {
    Matrix k = qkv.middleCols(qd + g * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(k, theta, mscale, p0);
    ks[g].conservativeResize(total, dh);
    vs[g].conservativeResize(total, dh);
    ks[g].bottomRows(m) = k;
    vs[g].bottomRows(m) = qkv.middleCols(qd + kvd + g * dh, dh);
  }
  const float scale = head_scale(lay), neg_inf = -std::numeric_limits<float>::infinity();
  Matrix concat(m, qd);
  for (int h = 0; h < H; ++h) {
    Matrix q = qkv.middleCols(h * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(q, theta, mscale, p0);
    const Matrix& k = ks[h / group];
    Matrix logits(m, total);
    gemm_nt(m, total, dh, scale, q.data(), dh, k.data(), dh, logits.data(), total);
    if (lay.softcap > 0) soft_cap(logits, static_cast<float>(lay.softcap));
    for (int i = 0; i < m; ++i)  // causal, within the window
      for (int j = 0; j < total; ++j)
        if (j > p0 + i || (window > 0 && p0 + i - j >= window)) logits(i, j) = neg_inf;
    for (int i = 0; i < m; ++i) {
      auto row = logits.row(i);
      const float mx = row.maxCoeff();
      row = (row.array() - mx).exp().matrix();
      row /= row.sum();
    }
    concat.middleCols(h * dh, dh) = logits * vs[h / group];
  }
  return concat;
}

Matrix attend_field(const Matrix& qkv, const HeadLayout& lay, bool causal, const Intervention& iv, int layer_index,
                    const std::vector<Token>& tokens, FieldLayer& out, const CancelFlag* cancel, int window, bool half_qk,
                    int sink_tokens) {
  const int H = lay.n_heads, KV = lay.n_kv_heads, dh = lay.d_head, qd = H * dh, kvd = KV * dh, group = H / KV;
  const int n = static_cast<int>(qkv.rows());
  const bool here = iv.enabled && (iv.layer < 0 || iv.layer == layer_index);
  Session::Attention::Mask own;
  own.kind = causal ? MaskKind::causal : MaskKind::none;
  if (causal && window > 0) own.kind = MaskKind::causal_sliding_window, own.window = window - 1;  // w back + itself
  out.rule = std::make_shared<const MaskRule>(here && iv.replace_mask ? iv.mask : own, n, n, &tokens, 0);
  out.heads.assign(H, {});
  out.biases.assign(H, {});
  out.specs.assign(H, {});
  std::vector<Matrix> ks(KV), vs(KV);
  const std::vector<double> theta = head_rope(lay, n);
  const double mscale = rope_attention_factor(lay.scaling);
  for (int g = 0; g < KV; ++g) {
    ks[g] = qkv.middleCols(qd + g * dh, dh);
    vs[g] = qkv.middleCols(qd + kvd + g * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(ks[g], theta, mscale);
  }
  Matrix concat(n, qd);
  FieldOptions opt;
  opt.half_qk = half_qk;
  opt.sink_tokens = sink_tokens;
  for (int h = 0; h < H; ++h) {  // each head's row blocks run over both cores
    HeadField& f = out.heads[h];
    FieldHeadSpec& sp = out.specs[h];
    sp.alpha = head_scale(lay);
    sp.softcap = static_cast<float>(lay.softcap);
    sp.inv_t = here ? static_cast<float>(1.0 / iv.temperature) : 1.0f;
    sp.bias = &out.biases[h];
    sp.rule = out.rule.get();
    f.kv_head = h / group;
    f.q = qkv.middleCols(h * dh, dh);
    if (lay.rope_theta > 0) rope_rotate(f.q, theta, mscale);
    f.k = ks[f.kv_head];
    f.v = vs[f.kv_head];
    if (!build_head_field(f, sp, opt, cancel)) return Matrix();
    if (iv.ablated(layer_index, h)) ablate_output(f.output, iv, layer_index, h);
    concat.middleCols(h * dh, dh) = f.output;
  }
  return concat;
}

}  // namespace attnlab
