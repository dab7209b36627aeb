// Phi-3 (Abdin et al. 2024; model_type "phi3"): the Llama block with its projections fused, as
// the checkpoints store them: self_attn.qkv_proj ([q | k | v] along the output) and
// mlp.gate_up_proj ([gate | up]); `partial_rotary_factor` (Phi-4-mini: 0.75) turns only the first
// int(head_dim * factor) dimensions of each head; `sliding_window` (Phi-3-mini: 2047) is a causal
// window on every layer, the query's own key included. rope_scaling types other than linear,
// dynamic, llama3 and yarn (Phi-3's longrope / su) are refused by name.
#include "core/json_input.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"
#include "models/llama_like.hpp"

namespace attnlab {
namespace {

bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  if (!read_llama_config(cfg, path, in, error)) return false;
  double factor = 1.0;
  if (!json_get(cfg, "partial_rotary_factor", factor, 1e-6, 1.0, error, path)) return false;
  in.rope_dims = static_cast<int>(in.d_head * factor);
  if (in.rope_dims < 2 || in.rope_dims % 2 != 0) {
    error = path + ": partial_rotary_factor " + json_excerpt(cfg["partial_rotary_factor"]) + " turns " +
            std::to_string(in.rope_dims) + " of the head's " + std::to_string(in.d_head) +
            " dimensions; RoPE needs an even number, at least 2";
    return false;
  }
  if (in.rope_dims == in.d_head) in.rope_dims = 0;
  if (cfg.contains("sliding_window") && !cfg["sliding_window"].is_null() &&
      !json_get(cfg, "sliding_window", in.sliding_window, 1, 1 << 24, error, path))
    return false;
  return true;
}

std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner, qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head;
  const std::string p = "model.layers.{l}.";
  return {
      {"wte", "model.embed_tokens.weight", in.vocab_size, d},
      {"ln1.g", p + "input_layernorm.weight", d, 0, true},
      {"qkv.w", p + "self_attn.qkv_proj.weight", qd + 2 * kvd, d, true, true},
      {"o.w", p + "self_attn.o_proj.weight", d, qd, true, true},
      {"ln2.g", p + "post_attention_layernorm.weight", d, 0, true},
      {"gate_up.w", p + "mlp.gate_up_proj.weight", 2 * f, d, true, true},
      {"down.w", p + "mlp.down_proj.weight", d, f, true, true},
      {"norm.g", "model.norm.weight", d, 0, false, false, true},
      {"lm_head", "lm_head.weight", in.vocab_size, d, false, false, true},
  };
}

bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size()), f = in.d_inner;
  Matrix x = embed(w.get("wte"), fi.ids);
  const auto own = fi.field || fi.cache ? nullptr : own_pattern(n, true, in.sliding_window);
  HeadLayout heads{in.n_heads, in.n_kv_heads, in.d_head, in.rope_theta, in.rope_scaling};
  heads.rope_dims = in.rope_dims;
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    LayerResult layer;
    layer.input = x;
    layer.attention_input = rms_norm(x, w.row(l, "ln1.g"), in.layer_norm_eps);
    const Matrix qkv = affine(layer.attention_input, w.get(l, "qkv.w"));  // already [Q | K | V]
    FieldLayer field;
    const Matrix heads_out = causal_attention(fi, qkv, heads, own, in.sliding_window, l, r, layer, field);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = affine(heads_out, w.get(l, "o.w"));
    x += layer.attention_output;
    const Matrix gu = affine(rms_norm(x, w.row(l, "ln2.g"), in.layer_norm_eps), w.get(l, "gate_up.w"));
    x += affine(swiglu(gu.leftCols(f), gu.rightCols(f)), w.get(l, "down.w"));
    layer.output = x;
    keep_layer(fi, r, layer, field);
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

}  // namespace

const Family kPhi3Family{"phi3", read_config, read_llama_tokenizer, "model.embed_tokens.weight", {}, tensors,
                         describe_llama, forward, unembed_llama};

}  // namespace attnlab
