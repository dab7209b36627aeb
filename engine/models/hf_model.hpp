// Pretrained models from a Hugging Face folder (config.json, model.safetensors or shards with
// model.safetensors.index.json, tokenizer files). The forward pass keeps every layer's per-head
// q, k, v, logits, weights and outputs in the same Result the random-weight engine produces.
// Supported: GPT-2 family (model_type "gpt2": learned positions, pre-LN, Conv1D weights (in, out),
// causal, byte-level BPE) and BERT family (model_type "bert": post-LN, bidirectional, token type
// 0, nn.Linear weights (out, in), WordPiece with [CLS]/[SEP]) and Llama family (model_type "llama":
// RMSNorm, RoPE (rotate_half, rope_theta), grouped-query attention, SwiGLU, causal; tokenizer.json
// BPE, byte-level (SmolLM) or metaspace with byte fallback (TinyLlama), BOS first).
#pragma once

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "tokenizers/bpe.hpp"
#include "tokenizers/wordpiece.hpp"
#include "pipeline.hpp"

namespace attnlab {

struct ModelInfo {
  std::string dir, model_type;
  int n_layers = 0, n_heads = 0, d_model = 0, n_positions = 0, vocab_size = 0, d_inner = 0;
  int n_kv_heads = 0, d_head = 0;  // llama: grouped-query attention; d_head may differ from d_model / n_heads
  double rope_theta = 10000;
  double layer_norm_eps = 1e-5;
  std::string dtype;  // of the weights as stored (F32, F16, BF16)
};

// An intervention on a loaded model: on one layer (or all), a different mask (any kind of
// masks.hpp, replacing the model's own) and/or a softmax temperature. The Result says so.
struct Intervention {
  bool enabled = false;
  int layer = -1;  // -1: every layer
  double temperature = 1.0;
  bool replace_mask = false;
  Session::Attention::Mask mask;
  std::string describe() const;  // "layer 1: mask none, temperature 0.5"
  bool operator==(const Intervention&) const = default;
};

class HfModel {
 public:
  // Reads and checks everything (config values, every tensor's name and shape) before it
  // returns; `progress` (0..1) advances per tensor, `cancel` stops it (error "cancelled").
  static std::unique_ptr<HfModel> load(const std::string& dir, std::string& error, std::atomic<float>* progress = nullptr,
                                       const std::atomic<bool>* cancel = nullptr);
  ~HfModel();

  const ModelInfo& info() const { return info_; }
  // The text through the model. Problems (too many tokens, invalid UTF-8) come back in Outcome.
  Outcome compute(const std::string& text, const std::atomic<bool>* cancel = nullptr, ComputeOptions options = {},
                  const Intervention& intervention = {}) const;

 private:
  HfModel();
  static std::unique_ptr<HfModel> load_llama(std::unique_ptr<HfModel> m, const nlohmann::json& cfg, const std::string& cfg_path,
                                             std::string& error, std::atomic<float>* progress, const std::atomic<bool>* cancel);
  Outcome compute_llama(std::shared_ptr<Result> r, const std::vector<int>& ids, const std::atomic<bool>* cancel,
                        ComputeOptions options, std::chrono::steady_clock::time_point t0, const Intervention& iv) const;
  struct Layer;
  ModelInfo info_;
  std::unique_ptr<ByteBpe> tokenizer_;
  std::unique_ptr<WordPiece> wordpiece_;
  bool bert_ = false, llama_ = false;
  int bos_id_ = -1;  // llama: prepended to every text
  Matrix wte_, wpe_;  // (vocab, d), (n_positions, d)
  RowVector type0_, emb_ln_g_, emb_ln_b_;  // BERT: token type 0's embedding, the embedding LayerNorm
  std::vector<Layer> layers_;
};

}  // namespace attnlab
