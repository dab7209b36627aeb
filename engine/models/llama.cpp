// Llama (Touvron et al. 2023; model_type "llama"): RMSNorm, RoPE (rotate_half, rope_theta) on
// queries and keys, grouped-query attention, SwiGLU, causal, no biases, nn.Linear weights
// stored (out, in); tokenizer.json BPE (byte-level as SmolLM, or metaspace with byte fallback
// as TinyLlama), BOS first. Two families share it: Qwen2 ("qwen2": biases on q, k and v; its
// sliding window is off unless use_sliding_window) and Mistral ("mistral": a causal sliding
// window of sliding_window keys on every layer).
#include <filesystem>

#include "core/json_input.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"
#include "models/llama_like.hpp"

namespace fs = std::filesystem;

namespace attnlab {

bool read_rope_scaling(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  const nlohmann::json& rs = cfg["rope_scaling"];
  const std::string key = path + ": rope_scaling";
  if (!rs.is_object()) {
    error = key + " must be an object (or null), not " + json_excerpt(rs);
    return false;
  }
  std::string type;
  const char* type_key = rs.contains("rope_type") ? "rope_type" : "type";
  if (!json_get(rs, type_key, type, error, key, true)) return false;
  RopeScaling& sc = in.rope_scaling;
  using K = RopeScaling::Kind;
  const std::vector<std::string> allowed =
      type == "linear" || type == "dynamic" ? std::vector<std::string>{"rope_type", "type", "factor"}
      : type == "llama3" ? std::vector<std::string>{"rope_type", "type", "factor", "original_max_position_embeddings",
                                                    "low_freq_factor", "high_freq_factor"}
      : type == "yarn"   ? std::vector<std::string>{"rope_type", "type", "factor", "original_max_position_embeddings",
                                                    "beta_fast", "beta_slow", "attention_factor"}
                         : std::vector<std::string>{};
  if (allowed.empty()) {
    error = key + "." + type_key + " '" + type + "' is not supported (linear, dynamic, llama3, yarn)";
    return false;
  }
  for (const auto& [k, v] : rs.items())
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      error = key + "." + k + " is not supported for rope_type " + type;
      return false;
    }
  sc.kind = type == "linear" ? K::linear : type == "dynamic" ? K::dynamic : type == "llama3" ? K::llama3 : K::yarn;
  sc.original = in.n_positions;
  if (!json_get(rs, "factor", sc.factor, 1.0, 1e6, error, key, true) ||
      !json_get(rs, "original_max_position_embeddings", sc.original, 1.0, 1e9, error, key) ||
      !json_get(rs, "low_freq_factor", sc.low_freq_factor, 1e-6, 1e6, error, key) ||
      !json_get(rs, "high_freq_factor", sc.high_freq_factor, 1e-6, 1e6, error, key) ||
      !json_get(rs, "beta_fast", sc.beta_fast, 1e-6, 1e6, error, key) ||
      !json_get(rs, "beta_slow", sc.beta_slow, 1e-6, 1e6, error, key) ||
      !json_get(rs, "attention_factor", sc.attention_factor, 1e-6, 1e6, error, key))
    return false;
  // yarn with original_max_position_embeddings: the stretch is max_position_embeddings / original
  // whatever factor says (as transformers computes it, for DeepSeek-V3-style configs)
  if (sc.kind == K::yarn && rs.contains("original_max_position_embeddings")) sc.factor = in.n_positions / sc.original;
  if (sc.kind == K::llama3 && sc.high_freq_factor <= sc.low_freq_factor) {
    error = key + ": high_freq_factor must be above low_freq_factor";
    return false;
  }
  // dynamic NTK scaling stretches the trained context by its factor: texts up to that length
  if (sc.kind == K::dynamic) in.n_positions = static_cast<int>(std::min(double(1 << 22), in.n_positions * sc.factor));
  return true;
}

namespace {
bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  return read_llama_config(cfg, path, in, error);
}

bool read_qwen2_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  bool sliding = false;
  if (!json_get(cfg, "use_sliding_window", sliding, error, path)) return false;
  if (sliding) {  // Qwen2's window applies from max_window_layers on: not implemented, so refused by name
    error = path + ": use_sliding_window true is not supported yet (Qwen2's per-layer window)";
    return false;
  }
  nlohmann::json plain = cfg;
  plain.erase("use_sliding_window");
  plain.erase("sliding_window");
  plain.erase("max_window_layers");
  plain.erase("attention_bias");  // Qwen2 has no such key: its q, k, v biases are always there
  if (!read_config(plain, path, in, error)) return false;
  in.qkv_bias = true;
  return true;
}

bool read_mistral_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  nlohmann::json plain = cfg;
  plain.erase("sliding_window");
  if (!read_config(plain, path, in, error)) return false;
  in.sliding_window = 4096;  // MistralConfig's default; null: no window
  if (cfg.contains("sliding_window") && cfg["sliding_window"].is_null()) in.sliding_window = 0;
  else if (!json_get(cfg, "sliding_window", in.sliding_window, 1, 1 << 24, error, path)) return false;
  return true;
}

}  // namespace

bool read_llama_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  SizeKeys keys{"hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings"};
  keys.max_layers = 256, keys.max_positions = 1 << 22;
  keys.heads_divide = false;  // head_dim may be given; checked below
  if (!read_sizes(cfg, path, keys, in, error) ||
      !json_get(cfg, "intermediate_size", in.d_inner, 1, 1 << 20, error, path, true))
    return false;
  in.n_kv_heads = in.n_heads;
  if (!json_get(cfg, "num_key_value_heads", in.n_kv_heads, 1, in.n_heads, error, path)) return false;
  if (in.n_heads % in.n_kv_heads != 0) {
    error = path + ": num_attention_heads " + std::to_string(in.n_heads) + " is not a multiple of num_key_value_heads " +
            std::to_string(in.n_kv_heads);
    return false;
  }
  in.d_head = in.d_model / in.n_heads;
  if (!json_get(cfg, "head_dim", in.d_head, 2, 1024, error, path)) return false;
  if (in.d_head % 2 != 0 || (!cfg.contains("head_dim") && in.d_model % in.n_heads != 0)) {
    error = path + ": the head width " + std::to_string(in.d_head) + " must be even and divide hidden_size";
    return false;
  }
  in.layer_norm_eps = 1e-6;
  in.rope_theta = 10000.0;
  bool attention_bias = false;
  std::string act = "silu";
  if (!json_get(cfg, "rms_norm_eps", in.layer_norm_eps, kMinNormEps, kMaxNormEps, error, path) ||
      !json_get(cfg, "rope_theta", in.rope_theta, 1.0, 1e12, error, path) ||
      !json_get(cfg, "attention_bias", attention_bias, error, path) || !json_get(cfg, "hidden_act", act, error, path) ||
      !json_get(cfg, "tie_word_embeddings", in.tie_embeddings, error, path))
    return false;
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null() && !read_rope_scaling(cfg, path, in, error))
    return false;
  if (attention_bias || act != "silu") {
    error = path + ": only hidden_act silu without attention biases is supported";
    return false;
  }
  return true;
}

bool read_llama_tokenizer(const std::string& dir, const nlohmann::json& cfg, const ModelInfo& in, ModelTokenizer& tok,
                    std::string& error) {
  tok.bpe = ByteBpe::load(dir, error);
  if (!tok.bpe) return false;
  bool add_bos = tok.bpe->metaspace();
  if (const std::string tc = dir + "/tokenizer_config.json"; fs::exists(fs::symlink_status(tc))) {
    nlohmann::json j;
    if (!read_json_file(tc, j, error) || !json_get(j, "add_bos_token", add_bos, error, tc)) return false;
  }
  int bos = -1;
  if (!json_get(cfg, "bos_token_id", bos, 0, in.vocab_size - 1, error, dir + "/config.json")) return false;
  // a post-processor that adds its own (TemplateProcessing's <s>) already gives the BOS
  if (add_bos && !tok.bpe->adds_special_tokens()) tok.bos_id = bos;
  return true;
}

namespace {
std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner, qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head;
  const std::string p = "model.layers.{l}.";
  std::vector<TensorSpec> t = {
      {"wte", "model.embed_tokens.weight", in.vocab_size, d},
      {"ln1.g", p + "input_layernorm.weight", d, 0, true},
      {"q.w", p + "self_attn.q_proj.weight", qd, d, true, true},
      {"k.w", p + "self_attn.k_proj.weight", kvd, d, true, true},
      {"v.w", p + "self_attn.v_proj.weight", kvd, d, true, true},
      {"o.w", p + "self_attn.o_proj.weight", d, qd, true, true},
      {"ln2.g", p + "post_attention_layernorm.weight", d, 0, true},
      {"gate.w", p + "mlp.gate_proj.weight", f, d, true, true},
      {"up.w", p + "mlp.up_proj.weight", f, d, true, true},
      {"down.w", p + "mlp.down_proj.weight", d, f, true, true},
      // the output head: the final RMSNorm, then lm_head (or the embeddings when tied)
      {"norm.g", "model.norm.weight", d, 0, false, false, true},
      {"lm_head", "lm_head.weight", in.vocab_size, d, false, false, true},
  };
  if (in.qkv_bias)  // Qwen2: q, k and v have biases (o_proj has none)
    t.insert(t.end(), {TensorSpec{"q.b", p + "self_attn.q_proj.bias", qd, 0, true},
                       TensorSpec{"k.b", p + "self_attn.k_proj.bias", kvd, 0, true},
                       TensorSpec{"v.b", p + "self_attn.v_proj.bias", kvd, 0, true}});
  return t;
}

}  // namespace

void describe_llama(const ModelInfo& in, Result& r) {
  Session& s = r.session;
  s.model.block = BlockKind::pre_ln;
  s.attention.mask.kind = MaskKind::causal;
  // a window on every layer is the session's mask; on some layers (Gemma 2) each layer's heads carry their own
  if (in.sliding_window > 0 && in.sliding_layers.empty())
    s.attention.mask.kind = MaskKind::causal_sliding_window, s.attention.mask.window = in.sliding_window - 1;
  s.positional.kind = PositionalKind::rope;
  s.positional.rope_base = in.rope_theta;
  s.model.kv_sharing = in.n_kv_heads == in.n_heads ? KvSharing::mha : in.n_kv_heads == 1 ? KvSharing::mqa : KvSharing::gqa;
  s.model.n_kv_heads = in.n_kv_heads;
  r.positions.kind = PositionalKind::rope;
  r.positions.rope_base = in.rope_theta;
  r.positions.source = "the model's RoPE (rotate_half, rope_theta " + std::to_string(in.rope_theta) + ")";
  if (in.rope_dims > 0 && in.rope_dims < in.d_head) {
    s.positional.rope_fraction = r.positions.rope_fraction = double(in.rope_dims) / in.d_head;
    r.positions.source += " on the first " + std::to_string(in.rope_dims) + " of " + std::to_string(in.d_head) +
                          " dimensions of each head";
  }
  if (in.rope_scaling.kind != RopeScaling::Kind::none) {
    using K = RopeScaling::Kind;
    const K k = in.rope_scaling.kind;
    r.positions.source += std::string(", rope_scaling ") +
                          (k == K::linear ? "linear" : k == K::dynamic ? "dynamic" : k == K::llama3 ? "llama3" : "yarn") +
                          " factor " + std::to_string(in.rope_scaling.factor) +
                          " (the positional view draws unscaled RoPE)";
  }
}

namespace {
bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size());
  Matrix x = embed(w.get("wte"), fi.ids);
  const auto own = fi.field || fi.cache ? nullptr : own_pattern(n, true, in.sliding_window);  // a field's mask is a rule
  const HeadLayout heads{in.n_heads, in.n_kv_heads, in.d_head, in.rope_theta, in.rope_scaling};
  const int qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head;
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    LayerResult layer;
    layer.input = x;
    layer.attention_input = rms_norm(x, w.row(l, "ln1.g"), in.layer_norm_eps);
    Matrix qkv(n, qd + 2 * kvd);
    if (in.qkv_bias)
      qkv << affine(layer.attention_input, w.get(l, "q.w"), w.row(l, "q.b")),
          affine(layer.attention_input, w.get(l, "k.w"), w.row(l, "k.b")),
          affine(layer.attention_input, w.get(l, "v.w"), w.row(l, "v.b"));
    else
      qkv << affine(layer.attention_input, w.get(l, "q.w")), affine(layer.attention_input, w.get(l, "k.w")),
          affine(layer.attention_input, w.get(l, "v.w"));
    FieldLayer field;
    const Matrix heads_out = causal_attention(fi, qkv, heads, own, in.sliding_window, l, r, layer, field);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = affine(heads_out, w.get(l, "o.w"));
    x += layer.attention_output;
    const Matrix m = rms_norm(x, w.row(l, "ln2.g"), in.layer_norm_eps);
    x += affine(swiglu(affine(m, w.get(l, "gate.w")), affine(m, w.get(l, "up.w"))), w.get(l, "down.w"));
    layer.output = x;
    keep_layer(fi, r, layer, field);
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

}  // namespace

bool unembed_llama(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why) {
  if (!w.global.count("norm.g")) {
    why = "the checkpoint has no model.norm.weight (the final RMSNorm)";
    return false;
  }
  const Matrix* table = output_table(in, w, "lm_head.weight", why);
  if (!table) return false;
  logits = unembed_rows(rms_norm(hidden, w.get("norm.g").row(0), in.layer_norm_eps), *table);
  return true;
}

const Family kLlamaFamily{"llama", read_config, read_llama_tokenizer, "model.embed_tokens.weight", {}, tensors,
                          describe_llama, forward, unembed_llama};
const Family kQwen2Family{"qwen2", read_qwen2_config, read_llama_tokenizer, "model.embed_tokens.weight", {}, tensors,
                          describe_llama, forward, unembed_llama};
const Family kMistralFamily{"mistral", read_mistral_config, read_llama_tokenizer, "model.embed_tokens.weight", {},
                            tensors, describe_llama, forward, unembed_llama};

}  // namespace attnlab
