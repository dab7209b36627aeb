// A small decoder-only transformer that attnlab trains (issue 13), in llm.c's manner: one forward
// function per component and one backward function beside it, every buffer's shape in a comment.
// Templated on the scalar: float for training, double for the gradient checks (finite
// differences need the precision).
//
// The block is GPT-2's (pre-LN, learned or other positions, tied unembedding):
//   x0 = wte[id] + pos(t)                     (pos: learned wpe, sinusoidal table, or none)
//   a  = LN1(x);  q = a Wq + bq, k = a Wk + bk, v = a Wv + bv   (k, v: n_kv_heads heads, GQA/MQA)
//   q, k rotated (RoPE, GPT-NeoX's rotate-half pairs) when pos = rope
//   s_ij = q_i . k_j / sqrt(d_head) (- slope_h (i - j) for ALiBi, + b_h[bucket(j - i)] for T5: one
//          learned table of 32 unidirectional buckets up to distance 128, shared by the layers,
//          Raffel et al. 2020), for the allowed j (causal,
//          or within a sliding window of `window` keys ending at i)
//   p = softmax_j(s) or sigmoid(s - ln T) (Ramapuram et al. 2024), 0 where not allowed
//   x += (p v) Wo + bo;  when mlp: x += gelu_tanh(LN2(x) Wfc + bfc) Wproj + bproj
//   logits = LNf(x) wte^T;  loss = mean over weighted targets of -log softmax(logits)[target]
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::train {

enum class PosKind { learned, sinusoidal, rope, alibi, t5, none };
enum class MaskRule { causal, sliding_window };
enum class AttnNorm { softmax, sigmoid };

const char* pos_name(PosKind k);
const char* mask_name(MaskRule k);
const char* norm_name(AttnNorm k);
bool parse_pos(const std::string& s, PosKind& k);
bool parse_mask(const std::string& s, MaskRule& k);
bool parse_norm(const std::string& s, AttnNorm& k);

struct ModelSpec {
  int vocab = 0;      // from the task
  int context = 64;   // positions: the task's sequence length
  int d_model = 64, n_layers = 2, n_heads = 4, n_kv_heads = 4;
  bool mlp = false;   // false: attention-only
  int d_ff = 0;       // MLP width; 0: 4 d_model
  PosKind pos = PosKind::learned;
  double rope_base = 10000.0;
  MaskRule mask = MaskRule::causal;
  int window = 8;     // sliding_window: keys i - window + 1 .. i
  AttnNorm norm = AttnNorm::softmax;
  int d_head() const { return d_model / n_heads; }
  int d_kv() const { return n_kv_heads * d_head(); }
  int ff() const { return d_ff > 0 ? d_ff : 4 * d_model; }
};
// The limits the issue sets (1-4 layers, 1-8 heads, d_model 16-256), with the rule broken.
bool check_spec(const ModelSpec& s, std::string& error);

template <class S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class S>
struct LayerParams {
  Mat<S> ln1_g, ln1_b;     // (1, d)
  Mat<S> wq, bq;           // (d, d), (1, d)
  Mat<S> wk, bk, wv, bv;   // (d, d_kv), (1, d_kv)
  Mat<S> wo, bo;           // (d, d), (1, d)
  Mat<S> ln2_g, ln2_b;     // (1, d)            mlp only (else empty)
  Mat<S> fc, fc_b;         // (d, f), (1, f)    mlp only
  Mat<S> proj, proj_b;     // (f, d), (1, d)    mlp only
};

template <class S>
struct Params {
  Mat<S> wte;  // (V, d), also the unembedding
  Mat<S> wpe;  // (T, d) learned positions only (else empty)
  Mat<S> t5_bias;  // (H, 32) T5 positions only: each head's bias per relative-position bucket
  std::vector<LayerParams<S>> layers;
  Mat<S> lnf_g, lnf_b;  // (1, d)
  // Every tensor with a name ("wte", "layers.0.wq", ...), in a fixed order; empty ones skipped.
  template <class F>
  void each(F&& f);
  template <class F>
  void each(F&& f) const;
  void zeros_like(const Params& other);  // same shapes, all zero
  std::int64_t count() const;            // parameters
};

// Sequences of one batch: inputs and next-token targets, weight 0 where the loss ignores a target.
struct Batch {
  int size = 0, length = 0;   // sequences, tokens per sequence
  std::vector<int> ids;       // (size * length)
  std::vector<int> targets;   // (size * length)
  std::vector<float> weight;  // (size * length)
};

struct Metrics {
  double loss = 0;      // mean over weighted targets
  double accuracy = 0;  // argmax == target over weighted targets
  double weight = 0;
};

// What the forward pass keeps for the backward pass (rows r = b * T + t).
template <class S>
struct LayerCache {
  Mat<S> x;              // (B T, d) the layer's input
  Mat<S> a;              // (B T, d) LN1(x)
  Mat<S> mean1, rstd1;   // (B T, 1)
  Mat<S> q, k, v;        // (B T, d), (B T, d_kv) x2: after RoPE
  std::vector<Mat<S>> p; // (B H) of (T, T): attention weights
  Mat<S> ctx;            // (B T, d) heads' outputs p v, concatenated
  Mat<S> mid;            // (B T, d) x + attention
  Mat<S> m, mean2, rstd2;  // LN2(mid) (B T, d) and its statistics
  Mat<S> h_pre, t, h;    // (B T, f) before gelu, its tanh, after
};
template <class S>
struct Cache {
  Mat<S> x0;             // (B T, d)
  std::vector<LayerCache<S>> layers;
  Mat<S> out;            // (B T, d) the last layer's output
  Mat<S> xf, meanf, rstdf;  // LNf(out)
  Mat<S> probs;          // (B T, V) softmax of the logits
};

template <class S>
class Model {
 public:
  explicit Model(const ModelSpec& spec);
  const ModelSpec& spec() const { return spec_; }
  // N(0, 0.02) weights (output projections 0.02 / sqrt(2 L), GPT-2's), unit norms, zero biases,
  // from the seed's streams "train.init.<name>".
  void init(std::uint64_t seed);
  // Loss and accuracy of the batch; the cache holds what backward needs.
  Metrics forward(const Batch& batch, Cache<S>& cache) const;
  // d loss / d params of the last forward (grad is resized and overwritten).
  void backward(const Batch& batch, const Cache<S>& cache, Params<S>& grad) const;
  Params<S> params;

 private:
  ModelSpec spec_;
  Mat<S> sinusoid_;           // (T, d) for PosKind::sinusoidal
  std::vector<S> slopes_;     // ALiBi, per head
  std::vector<int> bucket_;   // T5: the bucket of distance i - j, for i - j = 0 .. T - 1
  std::vector<S> cos_, sin_;  // RoPE (T, d_head / 2)
};

inline constexpr int kT5Buckets = 32, kT5MaxDistance = 128;

template <class S>
template <class F>
void Params<S>::each(F&& f) {
  auto one = [&](const std::string& name, Mat<S>& m) {
    if (m.size()) f(name, m);
  };
  one("wte", wte);
  one("wpe", wpe);
  one("t5_bias", t5_bias);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    LayerParams<S>& p = layers[l];
    const std::string at = "layers." + std::to_string(l) + ".";
    one(at + "ln1_g", p.ln1_g), one(at + "ln1_b", p.ln1_b), one(at + "wq", p.wq), one(at + "bq", p.bq);
    one(at + "wk", p.wk), one(at + "bk", p.bk), one(at + "wv", p.wv), one(at + "bv", p.bv);
    one(at + "wo", p.wo), one(at + "bo", p.bo), one(at + "ln2_g", p.ln2_g), one(at + "ln2_b", p.ln2_b);
    one(at + "fc", p.fc), one(at + "fc_b", p.fc_b), one(at + "proj", p.proj), one(at + "proj_b", p.proj_b);
  }
  one("lnf_g", lnf_g);
  one("lnf_b", lnf_b);
}
template <class S>
template <class F>
void Params<S>::each(F&& f) const {
  const_cast<Params*>(this)->each([&](const std::string& name, Mat<S>& m) { f(name, static_cast<const Mat<S>&>(m)); });
}

extern template class Model<float>;
extern template class Model<double>;

}  // namespace attnlab::train
