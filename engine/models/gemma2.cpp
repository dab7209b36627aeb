// Gemma 2 (Gemma Team 2024; model_type "gemma2"): the Llama block with
//  - the embeddings times sqrt(hidden_size), and RMSNorm with gain (1 + w);
//  - logits q k^T / sqrt(query_pre_attn_scalar), soft-capped c tanh(l / c) with c =
//    attn_logit_softcapping before the mask;
//  - local and global layers: a causal window of sliding_window keys (the query's own
//    included) on the layers `layer_types` calls "sliding_attention" (by default the even
//    ones: 0, 2, ...), full causal attention on the others;
//  - norms after the attention and after the MLP as well as before each (four per layer);
//  - GeGLU: gelu_pytorch_tanh(gate) * up;
//  - the tied output head, its logits soft-capped by final_logit_softcapping.
#include <cmath>

#include "core/json_input.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"
#include "models/llama_like.hpp"

namespace attnlab {
namespace {

// A soft-capping key: a number above 0, or null for none; absent: Gemma2Config's default.
bool read_cap(const nlohmann::json& cfg, const std::string& path, const char* key, double def, double& out,
              std::string& error) {
  out = def;
  if (cfg.contains(key) && cfg[key].is_null()) {
    out = 0;
    return true;
  }
  return json_get(cfg, key, out, 1e-6, 1e9, error, path);
}

bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  std::string act = "gelu_pytorch_tanh";
  const char* act_key = cfg.contains("hidden_activation") && !cfg["hidden_activation"].is_null() ? "hidden_activation" : "hidden_act";
  if (!json_get(cfg, act_key, act, error, path)) return false;
  if (act != "gelu_pytorch_tanh" && act != "gelu_new") {
    error = path + ": " + act_key + " '" + act + "' is not supported (gelu_pytorch_tanh)";
    return false;
  }
  nlohmann::json plain = cfg;  // the Llama keys, with Gemma2Config's defaults where Llama's differ
  for (const char* k : {"hidden_act", "hidden_activation", "sliding_window", "layer_types"}) plain.erase(k);
  if (!plain.contains("head_dim")) plain["head_dim"] = 256;
  if (!read_llama_config(plain, path, in, error)) return false;
  in.tie_embeddings = true;
  double scalar = 256;
  in.sliding_window = 4096;
  if (!json_get(cfg, "tie_word_embeddings", in.tie_embeddings, error, path) ||
      !json_get(cfg, "query_pre_attn_scalar", scalar, 1e-6, 1e9, error, path) ||
      !read_cap(cfg, path, "attn_logit_softcapping", 50.0, in.attn_softcap, error) ||
      !read_cap(cfg, path, "final_logit_softcapping", 30.0, in.final_softcap, error))
    return false;
  in.query_scale = 1.0 / std::sqrt(scalar);
  if (cfg.contains("sliding_window") && cfg["sliding_window"].is_null()) in.sliding_window = 0;
  else if (!json_get(cfg, "sliding_window", in.sliding_window, 1, 1 << 24, error, path)) return false;
  in.sliding_layers.assign(std::size_t(in.n_layers), 0);
  for (int l = 0; l < in.n_layers; ++l) in.sliding_layers[std::size_t(l)] = l % 2 == 0;
  if (cfg.contains("layer_types")) {
    const nlohmann::json& t = cfg["layer_types"];
    if (!t.is_array() || t.size() != std::size_t(in.n_layers)) {
      error = path + ": layer_types must be a list of " + std::to_string(in.n_layers) + " entries, not " + json_excerpt(t);
      return false;
    }
    for (int l = 0; l < in.n_layers; ++l) {
      const nlohmann::json& e = t[std::size_t(l)];
      if (e != "sliding_attention" && e != "full_attention") {
        error = path + ": layer_types[" + std::to_string(l) + "] " + json_excerpt(e) +
                " is neither \"sliding_attention\" nor \"full_attention\"";
        return false;
      }
      in.sliding_layers[std::size_t(l)] = e == "sliding_attention";
    }
  }
  return true;
}

std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner, qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head;
  const std::string p = "model.layers.{l}.";
  return {
      {"wte", "model.embed_tokens.weight", in.vocab_size, d},
      {"ln1.g", p + "input_layernorm.weight", d, 0, true},
      {"q.w", p + "self_attn.q_proj.weight", qd, d, true, true},
      {"k.w", p + "self_attn.k_proj.weight", kvd, d, true, true},
      {"v.w", p + "self_attn.v_proj.weight", kvd, d, true, true},
      {"o.w", p + "self_attn.o_proj.weight", d, qd, true, true},
      {"post_attn.g", p + "post_attention_layernorm.weight", d, 0, true},
      {"pre_ff.g", p + "pre_feedforward_layernorm.weight", d, 0, true},
      {"post_ff.g", p + "post_feedforward_layernorm.weight", d, 0, true},
      {"gate.w", p + "mlp.gate_proj.weight", f, d, true, true},
      {"up.w", p + "mlp.up_proj.weight", f, d, true, true},
      {"down.w", p + "mlp.down_proj.weight", d, f, true, true},
      {"norm.g", "model.norm.weight", d, 0, false, false, true},
      {"lm_head", "lm_head.weight", in.vocab_size, d, false, false, true},
  };
}

// Gemma's RMSNorm: x / rms(x) * (1 + w).
Matrix gemma_norm(const Matrix& x, const RowVector& w, double eps) {
  return rms_norm(x, (w.array() + 1.0f).matrix(), eps);
}

bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size()), qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head;
  Matrix x = embed(w.get("wte"), fi.ids) * static_cast<float>(std::sqrt(double(in.d_model)));
  std::shared_ptr<MaskMatrix> local, global;  // the two patterns, built when a layer needs them
  HeadLayout heads{in.n_heads, in.n_kv_heads, in.d_head, in.rope_theta, in.rope_scaling};
  heads.scale = in.query_scale;
  heads.softcap = in.attn_softcap;
  const double eps = in.layer_norm_eps;
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    const int window = in.uses_window(l) ? in.sliding_window : 0;
    std::shared_ptr<MaskMatrix>& own = window ? local : global;
    if (!fi.field && !fi.cache && !own) own = own_pattern(n, true, window);
    LayerResult layer;
    layer.input = x;
    layer.attention_input = gemma_norm(x, w.row(l, "ln1.g"), eps);
    Matrix qkv(n, qd + 2 * kvd);
    qkv << affine(layer.attention_input, w.get(l, "q.w")), affine(layer.attention_input, w.get(l, "k.w")),
        affine(layer.attention_input, w.get(l, "v.w"));
    FieldLayer field;
    const Matrix heads_out = causal_attention(fi, qkv, heads, own, window, l, r, layer, field);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = gemma_norm(affine(heads_out, w.get(l, "o.w")), w.row(l, "post_attn.g"), eps);
    x += layer.attention_output;
    const Matrix m = gemma_norm(x, w.row(l, "pre_ff.g"), eps);
    const Matrix gate = gelu_tanh(affine(m, w.get(l, "gate.w")));
    const Matrix hidden = (gate.array() * affine(m, w.get(l, "up.w")).array()).matrix();
    x += gemma_norm(affine(hidden, w.get(l, "down.w")), w.row(l, "post_ff.g"), eps);
    layer.output = x;
    keep_layer(fi, r, layer, field);
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

void describe(const ModelInfo& in, Result& r) {
  describe_llama(in, r);
  if (in.sliding_window > 0) {
    int local = 0;
    for (char s : in.sliding_layers) local += s;
    r.positions.source += "; a window of " + std::to_string(in.sliding_window) + " keys on " + std::to_string(local) +
                          " of " + std::to_string(in.n_layers) + " layers";
  }
}

bool unembed(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why) {
  if (!w.global.count("norm.g")) {
    why = "the checkpoint has no model.norm.weight (the final RMSNorm)";
    return false;
  }
  const Matrix* table = output_table(in, w, "lm_head.weight", why);
  if (!table) return false;
  logits = unembed_rows(gemma_norm(hidden, w.get("norm.g").row(0), in.layer_norm_eps), *table);
  if (in.final_softcap > 0) soft_cap(logits, static_cast<float>(in.final_softcap));
  return true;
}

}  // namespace

const Family kGemma2Family{"gemma2", read_config, read_llama_tokenizer, "model.embed_tokens.weight", {}, tensors, describe,
                           forward, unembed};

}  // namespace attnlab
