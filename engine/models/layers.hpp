// Layers the pretrained families share: norms, affine maps, activations, and multi-head
// attention with the model's own mask or an intervention's.
#pragma once

#include "attention/field.hpp"

#include <memory>
#include <vector>

#include "core/tensor.hpp"
#include "models/family.hpp"

namespace attnlab {

// Ba et al. 2016, with gain and bias: (x - mean) / sqrt(var + eps) * g + b, per row.
Matrix layer_norm(const Matrix& x, const RowVector& g, const RowVector& b, double eps);
// Zhang & Sennrich 2019: x / sqrt(mean(x^2) + eps) * g, per row.
Matrix rms_norm(const Matrix& x, const RowVector& g, double eps);
Matrix affine(const Matrix& x, const Matrix& w);                     // x W
Matrix affine(const Matrix& x, const Matrix& w, const RowVector& b);  // x W + b
Matrix unembed_rows(const Matrix& normed, const Matrix& table);     // normed table^T: (rows, vocab) logits
// The output head's table: the stored one (role "lm_head", checkpoint name `stored`) or, when
// config.json ties them, the embeddings; null with the reason when neither applies.
const Matrix* output_table(const ModelInfo& in, const Weights& w, const char* stored, std::string& why);
// GPT-2's gelu_new: the tanh approximation of GELU (Hendrycks & Gimpel 2016).
Matrix gelu_tanh(const Matrix& x);
Matrix gelu_exact(const Matrix& x);
// Llama's SwiGLU (Shazeer 2020): silu(gate) * up.
Matrix swiglu(const Matrix& gate, const Matrix& up);

// Token embeddings: rows `ids` of `wte`, plus rows first_position.. of `wpe` (learned positions) when given.
Matrix embed(const Matrix& wte, const std::vector<int>& ids, const Matrix* wpe = nullptr, int first_position = 0);
// The start of layer l of a forward pass: progress advanced; false when cancelled.
bool next_layer(const ForwardInput& fi, int l, int n_layers);

// The model's own attention pattern: causal (GPT-2, Llama) or full (BERT).
// The model's own mask: causal or not, and (Mistral) a causal window of `window` keys, the
// query's own included (Hugging Face's sliding_window: key j allowed when i - window < j <= i).
std::shared_ptr<MaskMatrix> own_pattern(int n, bool causal, int window = 0);

// Multi-head attention of one layer from the fused projection qkv = [Q | K | V] (n, (H + 2 KV) dh):
// heads read K/V head h / (H / KV); RoPE (theta > 0) turns queries and keys; logits q k^T / sqrt(dh)
// (or scale q k^T, soft-capped) are masked by the model's pattern or the intervention's, then normalised. Fills layer.heads and
// returns the heads' outputs side by side (n, H dh).
struct HeadLayout {
  int n_heads = 0, n_kv_heads = 0, d_head = 0;
  double rope_theta = 0;  // 0: no rotary positions
  RopeScaling scaling;    // rope_scaling (linear, dynamic, llama3, yarn)
  int rope_dims = 0;      // the leading dimensions RoPE turns (GPT-NeoX rotary_pct, Phi-3 partial_rotary_factor); 0: all
  double scale = 0;       // logits = scale q k^T; 0: 1 / sqrt(d_head) (Gemma 2: 1 / sqrt(query_pre_attn_scalar))
  double softcap = 0;     // Gemma 2: logits c tanh(logits / c) before the mask; 0: none
};
Matrix attend(const Matrix& qkv, const HeadLayout& layout, const std::shared_ptr<MaskMatrix>& own,
              const Intervention& iv, int layer_index, const std::vector<Token>& tokens, LayerResult& layer);

// The keys (after RoPE) and values of the positions run so far, per layer and K/V head: a
// forward pass given a cache runs only the new tokens, their queries against every cached key
// and their own (generation, one token at a time, without recomputing the text).
struct KvCache {
  std::vector<std::vector<Matrix>> k, v;  // [layer][kv head]: (positions, d_head)
  int positions = 0;                      // positions cached (the new tokens' first position)
};
// Causal attention of new rows (positions cache.positions ..) over the cached keys and their own,
// within `window` (0: all); appends the new keys and values to the cache's layer. Returns the
// heads' outputs side by side (new rows, n_heads d_head).
Matrix attend_cached(const Matrix& qkv, const HeadLayout& layout, int window, int layer_index, KvCache& cache);

// A causal layer's attention by the path the pass takes: the cache (generation), the field (a
// long text) or dense heads into `layer`. Empty when cancelled.
Matrix causal_attention(const ForwardInput& fi, const Matrix& qkv, const HeadLayout& layout,
                        const std::shared_ptr<MaskMatrix>& own, int window, int layer_index, Result& r, LayerResult& layer,
                        FieldLayer& field);
// The layer into r by the same path: its field, its matrices, or nothing (generation).
void keep_layer(const ForwardInput& fi, Result& r, LayerResult& layer, FieldLayer& field);

// The same for a long text, as an attention field (attention/field.hpp): per head q and k (after
// RoPE), v, the output and the row statistics, the model's mask (causal or none) or the
// intervention's as a rule, never n x n. Returns concat(head outputs) (n, n_heads d_head), empty
// when cancelled; `out` gets the heads (its `output` is the caller's to set, after W_O).
Matrix attend_field(const Matrix& qkv, const HeadLayout& layout, bool causal, const Intervention& iv, int layer_index,
                    const std::vector<Token>& tokens, FieldLayer& out, const CancelFlag* cancel, int window = 0,
                    bool half_qk = false, int sink_tokens = 4);

}  // namespace attnlab
