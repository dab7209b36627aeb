// A pretrained model family (GPT-2, BERT, Llama, ...): one file each under engine/models/, declaring
// its config keys, its tensor table and its forward pass over the shared layers of layers.hpp.
// Adding a family is a new file and a line in families.cpp.
#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/positional.hpp"
#include "core/cancel.hpp"
#include "models/checkpoint.hpp"
#include "pipeline.hpp"
#include "tokenizers/bpe.hpp"
#include "tokenizers/wordpiece.hpp"

namespace attnlab {

// Norm epsilons of real checkpoints lie between 1e-12 and 1e-5; a non-positive one divides by zero.
inline constexpr double kMinNormEps = 1e-30, kMaxNormEps = 1.0;

struct ModelInfo {
  std::string dir, model_type;
  int n_layers = 0, n_heads = 0, d_model = 0, n_positions = 0, vocab_size = 0, d_inner = 0;
  int n_kv_heads = 0, d_head = 0;  // grouped-query attention; d_head may differ from d_model / n_heads
  int type_vocab = 0;              // BERT: token types
  double rope_theta = 10000;
  RopeScaling rope_scaling;  // Llama family: config.json's rope_scaling
  double layer_norm_eps = 1e-5;
  bool tie_embeddings = false;  // Llama family: tie_word_embeddings (the output head is the embeddings)
  bool qkv_bias = false;        // Qwen2: biases on q_proj, k_proj, v_proj (not o_proj)
  int sliding_window = 0;       // Mistral: each query sees its last sliding_window keys (0: all)
  std::vector<char> sliding_layers;  // Gemma 2: the layers the window applies to (empty: every layer)
  int rope_dims = 0;            // the leading dimensions of a head RoPE turns (GPT-NeoX, Phi-3); 0: all
  bool parallel_residual = false;  // GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
  double query_scale = 0;          // Gemma 2: logits scaled 1 / sqrt(query_pre_attn_scalar); 0: 1 / sqrt(d_head)
  double attn_softcap = 0, final_softcap = 0;  // Gemma 2: c tanh(x / c) on attention logits, on output logits
  bool uses_window(int layer) const {
    return sliding_window > 0 && (sliding_layers.empty() || sliding_layers[std::size_t(layer)]);
  }
  std::string dtype;  // of the weights as stored (F32, F16, BF16)
};

// An intervention on a loaded model: on one layer (or all), a different mask (any kind of
// masks.hpp, replacing the model's own) and/or a softmax temperature (`enabled`); and, whatever
// `enabled` says, heads ablated: their output (what the head adds through the output
// projection) replaced by zeros, by its mean over the text's positions, or by its output on a
// corrupted text. The Result says so.
// `corrupted`: the head's output on a second text of as many tokens (activation patching),
// given in corrupted_outputs (HfModel::compute runs corrupted_text to fill it when empty).
enum class AblateMode { zero, mean, corrupted };
using HeadOutputs = std::vector<std::vector<Matrix>>;  // [layer][head] (n, d_head)
struct Intervention {
  bool enabled = false;
  int layer = -1;  // -1: every layer
  double temperature = 1.0;
  bool replace_mask = false;
  Session::Attention::Mask mask;
  std::vector<std::pair<int, int>> ablate;  // (layer, head)
  AblateMode ablate_mode = AblateMode::zero;
  std::string corrupted_text;                             // AblateMode::corrupted: the second text
  std::shared_ptr<const HeadOutputs> corrupted_outputs;   // its heads' outputs
  bool ablated(int l, int h) const;
  std::string describe() const;  // "layer 1: mask none, temperature 0.5; ablate 0.1, 1.0 (zero)"
  bool operator==(const Intervention&) const = default;
};
// StreamingLLM's observation as an intervention (Xiao et al. 2023): every layer's mask replaced
// by the model's own (causal, or all keys for BERT) without the first `sinks` keys - each row
// keeps its own token, so that none is left empty. The model's sliding window, if any, is not in
// it (texts shorter than the window are unchanged by that).
Intervention sink_masked(const ModelInfo& info, int sinks);
void mask_sink(Intervention& iv, const ModelInfo& info, int sinks);  // the same onto iv (its ablation kept)

// "L.H,L.H" -> (layer, head) pairs, each checked against the model's shape; false with a message
bool parse_ablate(const std::string& spec, int n_layers, int n_heads, std::vector<std::pair<int, int>>& out,
                  std::string& error);

// The tokenizer a family reads from the folder (byte-level BPE, BPE on code points or WordPiece,
// bpe.hpp), and the BOS id put first (-1: none).
struct ModelTokenizer {
  std::unique_ptr<ByteBpe> bpe;
  int bos_id = -1;
  std::string bos_text = "<s>";
  int max_id() const;
  std::string token_text(int id) const;  // what id stands for (ByteBpe::token_text)
  bool encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
};

struct KvCache;  // layers.hpp

// What a forward pass is given besides the weights.
struct ForwardInput {
  const std::vector<int>& ids;
  const CancelFlag* cancel;
  const ComputeOptions& options;
  const Intervention& intervention;
  bool field = false;  // a long text (above kDenseMaxTokens): layers as attention fields, in Result::fields
  bool field_half = false;  // ... with q and k as F16 (above the memory budget)
  Matrix* hidden = nullptr;  // set: the residual stream after the last layer, (n, d_model)
  // resume: run layers first_layer.. only, from first_input as their residual stream (the
  // input of layer first_layer); r.layers then holds those layers. Patching reuses the prefix.
  int first_layer = 0;
  const Matrix* first_input = nullptr;
  // generation: ids are the tokens after the cache's positions; each layer's new keys and values
  // are appended to it, only `hidden` is filled (no r.layers), interventions are not applied
  KvCache* cache = nullptr;
};

struct Family {
  const char* model_type;  // config.json's model_type
  // config.json -> info (every key type- and range-checked, messages naming the file and key)
  bool (*read_config)(const nlohmann::json& cfg, const std::string& cfg_path, ModelInfo& info, std::string& error);
  // the tokenizer files of the folder
  bool (*read_tokenizer)(const std::string& dir, const nlohmann::json& cfg, const ModelInfo& info,
                         ModelTokenizer& tok, std::string& error);
  // the checkpoint's name prefixes ("transformer.", "bert.") and a tensor to probe them with
  const char* probe;
  std::vector<std::string> prefixes;
  // every tensor, its shape from the config
  std::vector<TensorSpec> (*tensors)(const ModelInfo& info);
  // what ran, as a Session and positions (the Result describes the model's computation)
  void (*describe)(const ModelInfo& info, Result& r);
  // the layers into r.layers; false when cancelled
  bool (*forward)(const ModelInfo& info, const Weights& w, const ForwardInput& in, Result& r);
  // the output head on rows of the final residual stream: final norm, unembedding -> (rows,
  // vocab_size) logits; false (with the reason) when the checkpoint has no head
  bool (*unembed)(const ModelInfo& info, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why);
};

// The config keys a family names its sizes by (GPT-2 "n_embd", BERT and Llama "hidden_size",
// ...): read, range-checked and, unless the family gives a head width of its own, checked that
// the heads divide the width. families.cpp.
struct SizeKeys {
  const char* d_model;
  const char* n_heads;
  const char* n_layers;
  const char* n_positions;
  int max_layers = 128, max_positions = 1 << 20;
  bool heads_divide = true;
};
bool read_sizes(const nlohmann::json& cfg, const std::string& path, const SizeKeys& keys, ModelInfo& info,
                std::string& error);

const std::vector<const Family*>& families();  // families.cpp
const Family* find_family(const std::string& model_type);
std::string family_names();  // "gpt2, bert, llama, ..."
// One line on what the loaded architecture does ("causal, a window of 4096 keys on 13 of 26
// layers, RMSNorm (1 + w), ..."), for the window and the CLI.
std::string describe_architecture(const ModelInfo& in);

extern const Family kGpt2Family, kBertFamily, kLlamaFamily, kQwen2Family, kMistralFamily, kPhi3Family, kGptNeoXFamily,
    kGemma2Family;

}  // namespace attnlab
