// What the Llama-shaped families share (Llama, Qwen2, Mistral in llama.cpp; Phi-3 and Gemma 2 in
// their own files): the config keys, rope_scaling, the tokenizer with its BOS, and the Result's
// description of what ran.
#pragma once

#include "models/family.hpp"

namespace attnlab {

// hidden_size, num_attention_heads, num_key_value_heads, head_dim, intermediate_size,
// rms_norm_eps, rope_theta, rope_scaling, tie_word_embeddings; hidden_act silu and no
// attention_bias (a family with other values erases those keys and checks its own).
bool read_llama_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error);
// rope_scaling: {"rope_type" (or "type"): linear | dynamic | llama3 | yarn, "factor", ...}; every
// other key or type refused by name (never approximated).
bool read_rope_scaling(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error);
// tokenizer.json BPE; BOS first as the tokenizer would add it: SentencePiece-style (TinyLlama) by
// default, a byte-level one (SmolLM, a GPT-2 tokenizer) only when tokenizer_config.json says
// add_bos_token.
bool read_llama_tokenizer(const std::string& dir, const nlohmann::json& cfg, const ModelInfo& in, ModelTokenizer& tok,
                          std::string& error);
// Pre-LN, causal (a sliding window when the model has one), RoPE with its scaling, the K/V sharing.
void describe_llama(const ModelInfo& in, Result& r);
// The output head: model.norm (RMSNorm), then lm_head.weight, or the embeddings when tied.
bool unembed_llama(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why);

}  // namespace attnlab
