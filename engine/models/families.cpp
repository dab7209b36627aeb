// The pretrained families attnlab reads, in the order they are offered.
#include <cstdio>

#include "core/json_input.hpp"
#include "core/strings.hpp"
#include "models/family.hpp"

namespace attnlab {

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> all = {&kGpt2Family, &kBertFamily, &kLlamaFamily, &kQwen2Family,
                                                 &kMistralFamily, &kPhi3Family, &kGptNeoXFamily, &kGemma2Family};
  return all;
}

const Family* find_family(const std::string& model_type) {
  for (const Family* f : families())
    if (model_type == f->model_type) return f;
  return nullptr;
}

bool read_sizes(const nlohmann::json& cfg, const std::string& path, const SizeKeys& k, ModelInfo& in, std::string& error) {
  if (!json_get(cfg, k.d_model, in.d_model, 1, 16384, error, path, true) ||
      !json_get(cfg, k.n_heads, in.n_heads, 1, 256, error, path, true) ||
      !json_get(cfg, k.n_layers, in.n_layers, 1, k.max_layers, error, path, true) ||
      !json_get(cfg, k.n_positions, in.n_positions, 1, k.max_positions, error, path, true) ||
      !json_get(cfg, "vocab_size", in.vocab_size, 1, 1 << 22, error, path, true))
    return false;
  if (k.heads_divide && in.d_model % in.n_heads != 0) {
    error = path + ": " + k.d_model + " " + std::to_string(in.d_model) + " is not divisible by " + k.n_heads + " " +
            std::to_string(in.n_heads);
    return false;
  }
  in.n_kv_heads = in.n_heads;
  in.d_head = in.d_model / in.n_heads;
  return true;
}

std::string describe_architecture(const ModelInfo& in) {
  const std::string& t = in.model_type;
  if (t == "bert") return "bidirectional, post-LN, learned positions, WordPiece";
  if (t == "gpt2") return "causal, pre-LN, learned positions, byte-level BPE";
  std::vector<std::string> parts = {"causal"};
  if (in.sliding_window > 0) {
    int local = 0;
    for (char c : in.sliding_layers) local += c;
    parts.push_back("a window of " + std::to_string(in.sliding_window) + " keys on " +
                    (in.sliding_layers.empty() ? std::string("every layer")
                                               : std::to_string(local) + " of " + std::to_string(in.n_layers) + " layers"));
  }
  parts.push_back(t == "gpt_neox" ? "LayerNorm" : t == "gemma2" ? "RMSNorm (1 + w), before and after" : "RMSNorm");
  parts.push_back(in.rope_dims > 0 ? "RoPE on " + std::to_string(in.rope_dims) + " of " + std::to_string(in.d_head) + " dims"
                                   : "RoPE");
  if (in.n_kv_heads < in.n_heads) parts.push_back("grouped-query attention");
  if (in.qkv_bias) parts.push_back("q/k/v biases");
  if (in.attn_softcap > 0) {
    char cap[32];
    std::snprintf(cap, sizeof cap, "%g", in.attn_softcap);
    parts.push_back(std::string("logits soft-capped at ") + cap);
  }
  if (t == "phi3") parts.push_back("fused qkv and gate_up");
  if (t == "gpt_neox") parts.push_back(in.parallel_residual ? "parallel residual, GELU" : "GELU");
  else parts.push_back(t == "gemma2" ? "GeGLU" : "SwiGLU");
  return join(parts, ", ");
}

std::string family_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->model_type);
  return join(names, ", ");
}

}  // namespace attnlab
