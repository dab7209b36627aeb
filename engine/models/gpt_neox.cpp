// GPT-NeoX (Black et al. 2022; model_type "gpt_neox": Pythia, GPT-NeoX-20B): LayerNorm with
// biases; one fused query_key_value laid out per head ([q_h | k_h | v_h] for head 0, then head
// 1, ...); RoPE (rotate_half) on the first int(head_size * rotary_pct) dimensions of each head;
// exact GELU; the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) when use_parallel_residual
// (the default), else x + attn(ln1(x)) then + mlp(ln2(.)); the output head embed_out after
// final_layer_norm. Byte-level BPE from tokenizer.json.
#include "core/json_input.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"
#include "models/llama_like.hpp"

namespace attnlab {
namespace {

bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  SizeKeys keys{"hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings"};
  keys.max_layers = 256, keys.max_positions = 1 << 22;
  if (!read_sizes(cfg, path, keys, in, error) ||
      !json_get(cfg, "intermediate_size", in.d_inner, 1, 1 << 20, error, path, true))
    return false;
  // the names moved between transformers versions: rotary_pct / partial_rotary_factor,
  // rotary_emb_base / rope_theta
  double pct = 0.25;
  const char* pct_key = cfg.contains("partial_rotary_factor") ? "partial_rotary_factor" : "rotary_pct";
  const char* base_key = cfg.contains("rope_theta") ? "rope_theta" : "rotary_emb_base";
  in.rope_theta = 10000;
  in.layer_norm_eps = 1e-5;
  in.parallel_residual = true;
  bool bias = true;
  std::string act = "gelu";
  if (!json_get(cfg, pct_key, pct, 1e-6, 1.0, error, path) || !json_get(cfg, base_key, in.rope_theta, 1.0, 1e12, error, path) ||
      !json_get(cfg, "layer_norm_eps", in.layer_norm_eps, kMinNormEps, kMaxNormEps, error, path) ||
      !json_get(cfg, "use_parallel_residual", in.parallel_residual, error, path) ||
      !json_get(cfg, "attention_bias", bias, error, path) || !json_get(cfg, "hidden_act", act, error, path) ||
      !json_get(cfg, "tie_word_embeddings", in.tie_embeddings, error, path))
    return false;
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null() && !read_rope_scaling(cfg, path, in, error))
    return false;
  if (act != "gelu") {
    error = path + ": hidden_act '" + act + "' is not supported (gelu)";
    return false;
  }
  if (!bias) {
    error = path + ": attention_bias false is not supported (GPT-NeoX's projections have biases)";
    return false;
  }
  in.rope_dims = static_cast<int>(in.d_head * pct);
  if (in.rope_dims < 2 || in.rope_dims % 2 != 0) {
    error = path + ": " + pct_key + " " + json_excerpt(cfg.value(pct_key, nlohmann::json(pct))) + " turns " +
            std::to_string(in.rope_dims) + " of the head's " + std::to_string(in.d_head) +
            " dimensions; RoPE needs an even number, at least 2";
    return false;
  }
  if (in.rope_dims == in.d_head) in.rope_dims = 0;
  return true;
}

std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner;
  const std::string p = "layers.{l}.";
  return {
      {"wte", "embed_in.weight", in.vocab_size, d},
      {"ln1.g", p + "input_layernorm.weight", d, 0, true},
      {"ln1.b", p + "input_layernorm.bias", d, 0, true},
      {"qkv.w", p + "attention.query_key_value.weight", 3 * d, d, true, true},
      {"qkv.b", p + "attention.query_key_value.bias", 3 * d, 0, true},
      {"o.w", p + "attention.dense.weight", d, d, true, true},
      {"o.b", p + "attention.dense.bias", d, 0, true},
      {"ln2.g", p + "post_attention_layernorm.weight", d, 0, true},
      {"ln2.b", p + "post_attention_layernorm.bias", d, 0, true},
      {"fc.w", p + "mlp.dense_h_to_4h.weight", f, d, true, true},
      {"fc.b", p + "mlp.dense_h_to_4h.bias", f, 0, true},
      {"proj.w", p + "mlp.dense_4h_to_h.weight", d, f, true, true},
      {"proj.b", p + "mlp.dense_4h_to_h.bias", d, 0, true},
      // the output head: final_layer_norm inside the model, embed_out beside it (GPTNeoXForCausalLM)
      {"lnf.g", "final_layer_norm.weight", d, 0, false, false, true},
      {"lnf.b", "final_layer_norm.bias", d, 0, false, false, true},
      {"lm_head", "embed_out.weight", in.vocab_size, d, false, false, true, true},
  };
}

void describe(const ModelInfo& in, Result& r) {
  describe_llama(in, r);
  r.session.model.block = BlockKind::pre_ln;
}

// The fused projection's per-head columns [q_h | k_h | v_h] regrouped as [Q | K | V].
Matrix regroup_per_head(const Matrix& fused, int n_heads, int d_head) {
  Matrix out(fused.rows(), fused.cols());
  const Eigen::Index width = Eigen::Index(n_heads) * d_head;
  for (int h = 0; h < n_heads; ++h)
    for (int t = 0; t < 3; ++t)
      out.middleCols(t * width + h * d_head, d_head) = fused.middleCols((3 * h + t) * d_head, d_head);
  return out;
}

bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size());
  Matrix x = embed(w.get("wte"), fi.ids);
  const auto own = fi.field || fi.cache ? nullptr : own_pattern(n, true);
  HeadLayout heads{in.n_heads, in.n_heads, in.d_head, in.rope_theta, in.rope_scaling};
  heads.rope_dims = in.rope_dims;
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    LayerResult layer;
    layer.input = x;
    layer.attention_input = layer_norm(x, w.row(l, "ln1.g"), w.row(l, "ln1.b"), in.layer_norm_eps);
    const Matrix qkv =
        regroup_per_head(affine(layer.attention_input, w.get(l, "qkv.w"), w.row(l, "qkv.b")), in.n_heads, in.d_head);
    FieldLayer field;
    const Matrix heads_out = causal_attention(fi, qkv, heads, own, 0, l, r, layer, field);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = affine(heads_out, w.get(l, "o.w"), w.row(l, "o.b"));
    // the MLP reads x before the attention is added (parallel) or after (sequential)
    if (!in.parallel_residual) x += layer.attention_output;
    const Matrix m = layer_norm(x, w.row(l, "ln2.g"), w.row(l, "ln2.b"), in.layer_norm_eps);
    x += affine(gelu_exact(affine(m, w.get(l, "fc.w"), w.row(l, "fc.b"))), w.get(l, "proj.w"), w.row(l, "proj.b"));
    if (in.parallel_residual) x += layer.attention_output;
    layer.output = x;
    keep_layer(fi, r, layer, field);
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

bool unembed(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why) {
  if (!w.global.count("lnf.g") || !w.global.count("lnf.b")) {
    why = "the checkpoint has no final_layer_norm.weight / .bias";
    return false;
  }
  const Matrix* table = output_table(in, w, "embed_out.weight", why);
  if (!table) return false;
  logits = unembed_rows(layer_norm(hidden, w.get("lnf.g").row(0), w.get("lnf.b").row(0), in.layer_norm_eps),
                        *table);
  return true;
}

}  // namespace

const Family kGptNeoXFamily{"gpt_neox", read_config, read_llama_tokenizer, "embed_in.weight", {"gpt_neox."}, tensors,
                            describe, forward, unembed};

}  // namespace attnlab
