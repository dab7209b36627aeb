#include "models/hf_model.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/attention.hpp"
#include "attention/block.hpp"
#include "core/gemm.hpp"
#include "attention/masks.hpp"
#include "analysis/metrics.hpp"
#include "attention/positional.hpp"
#include "core/files.hpp"
#include "core/json_input.hpp"
#include "models/safetensors.hpp"
#include "core/utf8.hpp"

namespace fs = std::filesystem;

namespace attnlab {

struct HfModel::Layer {
  RowVector ln1_g, ln1_b, ln2_g, ln2_b, attn_b, proj_b, fc_b, fc_proj_b;
  Matrix attn_w, proj_w, fc_w, fc_proj_w;  // Conv1D: (in, out), y = x W + b
  Matrix up_w;                             // llama: SwiGLU's up projection (gate in fc_w)
};

HfModel::HfModel() = default;
HfModel::~HfModel() = default;

namespace {

// Tensors by name across the single file or the shards of an index.
struct TensorFiles {
  std::vector<std::unique_ptr<SafeTensors>> files;
  std::map<std::string, const SafeTensors*> where;
  std::string prefix;  // "transformer." in GPT2LMHeadModel checkpoints, "" in GPT2Model ones

  bool open(const std::string& dir, std::string& error) {
    const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
    std::vector<std::string> names;
    if (fs::exists(single)) {
      names.push_back("model.safetensors");
    } else if (fs::exists(index)) {
      std::string text;
      nlohmann::json j;
      if (!read_file_limited(index, kMaxTokenizerFileBytes, text, error, "an index file")) return false;
      if (!parse_json_input(text, j, error)) {
        error = index + ": " + error;
        return false;
      }
      if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
        error = index + ": 'weight_map' must be an object of tensor name -> shard file";
        return false;
      }
      std::set<std::string> shards;
      for (const auto& [t, file] : j["weight_map"].items()) {
        if (!file.is_string()) {
          error = index + ": the shard of '" + t.substr(0, 60) + "' must be a file name, not " + json_excerpt(file);
          return false;
        }
        const std::string name = file.get<std::string>();
        if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos) {
          error = index + ": shard '" + name + "' must be a file in the model folder";
          return false;
        }
        shards.insert(name);
      }
      names.assign(shards.begin(), shards.end());
    } else {
      error = dir + ": no model.safetensors (or model.safetensors.index.json with its shards)";
      return false;
    }
    for (const auto& n : names) {
      auto t = SafeTensors::open(dir + "/" + n, error);
      if (!t) return false;
      for (const auto& [name, info] : t->tensors()) where[name] = t.get();
      files.push_back(std::move(t));
    }
    if (!where.count("wte.weight") && where.count("transformer.wte.weight")) prefix = "transformer.";
    if (!where.count("embeddings.word_embeddings.weight") && where.count("bert.embeddings.word_embeddings.weight"))
      prefix = "bert.";
    return true;
  }

  bool matrix(const std::string& name, std::int64_t rows, std::int64_t cols, Matrix& out, std::string& error) const {
    const auto it = where.find(prefix + name);
    if (it == where.end()) {
      error = "missing tensor '" + prefix + name + "' (" + std::to_string(files.size()) + " safetensors file(s))";
      return false;
    }
    std::vector<float> v;
    const std::vector<std::int64_t> shape{rows, cols};
    if (!it->second->read(prefix + name, v, error, &shape)) return false;
    out = Eigen::Map<const Matrix>(v.data(), rows, cols);
    return true;
  }

  std::string stored_dtype() const {  // the narrowest dtype among the tensors, as the model is described
    std::string d = "F32";
    for (const auto& f : files)
      for (const auto& [name, info] : f->tensors())
        d = info.dtype == TensorDtype::bf16 ? "BF16" : info.dtype == TensorDtype::f16 ? "F16" : d;
    return d;
  }

  bool vector(const std::string& name, std::int64_t n, RowVector& out, std::string& error) const {
    auto it = where.find(prefix + name);
    if (it == where.end() && name.find("LayerNorm.") != std::string::npos) {  // the original BERT checkpoints' names
      std::string alias = name;
      if (alias.ends_with(".weight")) alias.replace(alias.size() - 6, 6, "gamma");
      else if (alias.ends_with(".bias")) alias.replace(alias.size() - 4, 4, "beta");
      if (where.count(prefix + alias)) return vector(alias, n, out, error);
    }
    if (it == where.end()) {
      error = "missing tensor '" + prefix + name + "'";
      return false;
    }
    std::vector<float> v;
    const std::vector<std::int64_t> shape{n};
    if (!it->second->read(prefix + name, v, error, &shape)) return false;
    out = Eigen::Map<const RowVector>(v.data(), n);
    return true;
  }
};

// The model's own attention pattern: causal (GPT-2, Llama) or full (BERT).
std::shared_ptr<MaskMatrix> pattern(int n, bool causal) {
  auto m = std::make_shared<MaskMatrix>(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) (*m)(i, j) = !causal || j <= i;
  return m;
}

// Loading progress, one call per tensor read: advances the bar, stops on cancel.
struct Steps {
  std::atomic<float>* progress;
  const std::atomic<bool>* cancel;
  int total;
  std::string& error;
  int done = 0;
  bool operator()() {
    if (progress) progress->store(static_cast<float>(++done) / total);
    if (cancel && cancel->load()) {
      error = "cancelled";
      return false;
    }
    return true;
  }
};

Matrix layer_norm(const Matrix& x, const RowVector& g, const RowVector& b, double eps) {
  Matrix y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const double mean = x.row(i).cast<double>().mean();
    const double var = (x.row(i).cast<double>().array() - mean).square().mean();
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    y.row(i) = ((x.row(i).array() - static_cast<float>(mean)) * inv * g.array() + b.array()).matrix();
  }
  return y;
}

Matrix affine(const Matrix& x, const Matrix& w, const RowVector& b) {
  Matrix y;
  matmul(x, w, y);  // OpenBLAS when built with it
  y.rowwise() += b;
  return y;
}

// A required whole-number config key in [lo, hi], with a message naming the file and the key.
bool get(const nlohmann::json& j, const char* key, int& out, long long lo, long long hi, const std::string& where,
         std::string& error) {
  return json_get(j, key, out, lo, hi, error, where, true);
}

// Epsilons of real checkpoints lie between 1e-12 and 1e-5; a non-positive one divides by zero.
constexpr double kMinEps = 1e-30, kMaxEps = 1.0;

// Reads a model folder's JSON file (config.json, tokenizer_config.json) with every check.
bool read_json_file(const std::string& path, nlohmann::json& out, std::string& error) {
  std::string text;
  if (!read_file_limited(path, kMaxConfigFileBytes, text, error, "a configuration file")) return false;
  if (!parse_json_input(text, out, error)) {
    error = path + ": " + error;
    return false;
  }
  if (!out.is_object()) {
    error = path + ": must be a JSON object, not " + json_excerpt(out);
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<HfModel> HfModel::load(const std::string& dir, std::string& error, std::atomic<float>* progress,
                                       const std::atomic<bool>* cancel) {
  auto m = std::unique_ptr<HfModel>(new HfModel);
  ModelInfo& in = m->info_;
  in.dir = dir;
  const std::string cfg_path = dir + "/config.json";
  nlohmann::json cfg;
  if (!fs::exists(fs::symlink_status(cfg_path))) {
    error = cfg_path + ": cannot open (is " + dir + " a model folder?)";
    return nullptr;
  }
  if (!read_json_file(cfg_path, cfg, error) || !json_get(cfg, "model_type", in.model_type, error, cfg_path, true))
    return nullptr;
  m->bert_ = in.model_type == "bert";
  m->llama_ = in.model_type == "llama";
  if (in.model_type != "gpt2" && !m->bert_ && !m->llama_) {
    error = cfg_path + ": model_type '" + utf8_sanitize(in.model_type) + "' is not supported yet (gpt2, bert, llama)";
    return nullptr;
  }
  if (m->llama_) return load_llama(std::move(m), cfg, cfg_path, error, progress, cancel);
  // the two families name the same things differently
  const char* k_d = m->bert_ ? "hidden_size" : "n_embd";
  const char* k_h = m->bert_ ? "num_attention_heads" : "n_head";
  if (!get(cfg, k_d, in.d_model, 1, 16384, cfg_path, error) || !get(cfg, k_h, in.n_heads, 1, 256, cfg_path, error) ||
      !get(cfg, m->bert_ ? "num_hidden_layers" : "n_layer", in.n_layers, 1, 128, cfg_path, error) ||
      !get(cfg, m->bert_ ? "max_position_embeddings" : "n_positions", in.n_positions, 1, 1 << 20, cfg_path, error) ||
      !get(cfg, "vocab_size", in.vocab_size, 1, 1 << 22, cfg_path, error))
    return nullptr;
  if (in.d_model % in.n_heads != 0) {
    error = cfg_path + ": " + k_d + " " + std::to_string(in.d_model) + " is not divisible by " + k_h + " " +
            std::to_string(in.n_heads);
    return nullptr;
  }
  int type_vocab = 0;
  if (m->bert_) {
    if (!get(cfg, "intermediate_size", in.d_inner, 1, 1 << 20, cfg_path, error) ||
        !get(cfg, "type_vocab_size", type_vocab, 1, 1 << 10, cfg_path, error))
      return nullptr;
    in.layer_norm_eps = 1e-12;
    std::string act = "gelu";
    if (!json_get(cfg, "layer_norm_eps", in.layer_norm_eps, kMinEps, kMaxEps, error, cfg_path) ||
        !json_get(cfg, "hidden_act", act, error, cfg_path))
      return nullptr;
    if (act != "gelu") {
      error = cfg_path + ": hidden_act '" + utf8_sanitize(act) + "' is not supported (gelu)";
      return nullptr;
    }
    m->wordpiece_ = WordPiece::load(dir, error);
    if (!m->wordpiece_) return nullptr;
    if (m->wordpiece_->max_id() >= in.vocab_size) {
      error = dir + "/vocab.txt: has " + std::to_string(m->wordpiece_->max_id() + 1) + " tokens, more than vocab_size " +
              std::to_string(in.vocab_size) + " in config.json";
      return nullptr;
    }
  } else {
    in.layer_norm_eps = 1e-5;
    in.d_inner = 4 * in.d_model;
    if (!json_get(cfg, "layer_norm_epsilon", in.layer_norm_eps, kMinEps, kMaxEps, error, cfg_path) ||
        !json_get(cfg, "n_inner", in.d_inner, 1, 1 << 20, error, cfg_path))
      return nullptr;
    m->tokenizer_ = ByteBpe::load(dir, error);
    if (!m->tokenizer_) return nullptr;
    if (m->tokenizer_->max_id() >= in.vocab_size) {
      error = dir + ": the tokenizer's ids go up to " + std::to_string(m->tokenizer_->max_id()) + ", past vocab_size " +
              std::to_string(in.vocab_size) + " in config.json";
      return nullptr;
    }
  }

  TensorFiles t;
  if (!t.open(dir, error)) return nullptr;
  in.dtype = t.stored_dtype();
  const int d = in.d_model, total = 2 + 12 * in.n_layers;
  Steps step{progress, cancel, total, error};
  auto fail = [&](const std::string& e) {
    error = dir + ": " + e;
    return nullptr;
  };
  std::string e;
  if (m->bert_) {
    Matrix types;
    const bool ok = t.matrix("embeddings.word_embeddings.weight", in.vocab_size, d, m->wte_, e) && step() &&
                    t.matrix("embeddings.position_embeddings.weight", in.n_positions, d, m->wpe_, e) &&
                    t.matrix("embeddings.token_type_embeddings.weight", type_vocab, d, types, e) &&
                    t.vector("embeddings.LayerNorm.weight", d, m->emb_ln_g_, e) &&
                    t.vector("embeddings.LayerNorm.bias", d, m->emb_ln_b_, e) && step();
    if (!ok) return error == "cancelled" ? nullptr : fail(e);
    m->type0_ = types.row(0);
    m->layers_.resize(in.n_layers);
    for (int l = 0; l < in.n_layers; ++l) {
      Layer& L = m->layers_[l];
      const std::string p = "encoder.layer." + std::to_string(l) + ".";
      Matrix q, k, v, o, i, out;  // nn.Linear: (out, in), y = x W^T + b
      RowVector qb, kb, vb;
      const bool ok2 = t.matrix(p + "attention.self.query.weight", d, d, q, e) && t.vector(p + "attention.self.query.bias", d, qb, e) &&
                       step() && t.matrix(p + "attention.self.key.weight", d, d, k, e) &&
                       t.vector(p + "attention.self.key.bias", d, kb, e) && step() &&
                       t.matrix(p + "attention.self.value.weight", d, d, v, e) &&
                       t.vector(p + "attention.self.value.bias", d, vb, e) && step() &&
                       t.matrix(p + "attention.output.dense.weight", d, d, o, e) &&
                       t.vector(p + "attention.output.dense.bias", d, L.proj_b, e) && step() &&
                       t.vector(p + "attention.output.LayerNorm.weight", d, L.ln1_g, e) &&
                       t.vector(p + "attention.output.LayerNorm.bias", d, L.ln1_b, e) && step() &&
                       t.matrix(p + "intermediate.dense.weight", in.d_inner, d, i, e) &&
                       t.vector(p + "intermediate.dense.bias", in.d_inner, L.fc_b, e) && step() &&
                       t.matrix(p + "output.dense.weight", d, in.d_inner, out, e) &&
                       t.vector(p + "output.dense.bias", d, L.fc_proj_b, e) && step() &&
                       t.vector(p + "output.LayerNorm.weight", d, L.ln2_g, e) && t.vector(p + "output.LayerNorm.bias", d, L.ln2_b, e) &&
                       step() && step() && step() && step() && step();
      if (!ok2) return error == "cancelled" ? nullptr : fail(e);
      L.attn_w.resize(d, 3 * d);  // fused as GPT-2's c_attn: [Q | K | V], (in, out)
      L.attn_w << q.transpose(), k.transpose(), v.transpose();
      L.attn_b.resize(3 * d);
      L.attn_b << qb, kb, vb;
      L.proj_w = o.transpose();
      L.fc_w = i.transpose();
      L.fc_proj_w = out.transpose();
    }
    return m;
  }
  if (!t.matrix("wte.weight", in.vocab_size, d, m->wte_, e) || !step()) return error == "cancelled" ? nullptr : fail(e);
  if (!t.matrix("wpe.weight", in.n_positions, d, m->wpe_, e) || !step()) return error == "cancelled" ? nullptr : fail(e);
  m->layers_.resize(in.n_layers);
  for (int l = 0; l < in.n_layers; ++l) {
    Layer& L = m->layers_[l];
    const std::string p = "h." + std::to_string(l) + ".";
    const bool ok = t.vector(p + "ln_1.weight", d, L.ln1_g, e) && step() && t.vector(p + "ln_1.bias", d, L.ln1_b, e) && step() &&
                    t.matrix(p + "attn.c_attn.weight", d, 3 * d, L.attn_w, e) && step() &&
                    t.vector(p + "attn.c_attn.bias", 3 * d, L.attn_b, e) && step() &&
                    t.matrix(p + "attn.c_proj.weight", d, d, L.proj_w, e) && step() &&
                    t.vector(p + "attn.c_proj.bias", d, L.proj_b, e) && step() && t.vector(p + "ln_2.weight", d, L.ln2_g, e) &&
                    step() && t.vector(p + "ln_2.bias", d, L.ln2_b, e) && step() &&
                    t.matrix(p + "mlp.c_fc.weight", d, in.d_inner, L.fc_w, e) && step() &&
                    t.vector(p + "mlp.c_fc.bias", in.d_inner, L.fc_b, e) && step() &&
                    t.matrix(p + "mlp.c_proj.weight", in.d_inner, d, L.fc_proj_w, e) && step() &&
                    t.vector(p + "mlp.c_proj.bias", d, L.fc_proj_b, e) && step();
    if (!ok) return error == "cancelled" ? nullptr : fail(e);
  }
  return m;
}

std::unique_ptr<HfModel> HfModel::load_llama(std::unique_ptr<HfModel> m, const nlohmann::json& cfg,
                                             const std::string& cfg_path, std::string& error,
                                             std::atomic<float>* progress, const std::atomic<bool>* cancel) {
  ModelInfo& in = m->info_;
  const std::string& dir = in.dir;
  if (!get(cfg, "hidden_size", in.d_model, 1, 16384, cfg_path, error) ||
      !get(cfg, "num_attention_heads", in.n_heads, 1, 256, cfg_path, error) ||
      !get(cfg, "num_hidden_layers", in.n_layers, 1, 256, cfg_path, error) ||
      !get(cfg, "intermediate_size", in.d_inner, 1, 1 << 20, cfg_path, error) ||
      !get(cfg, "max_position_embeddings", in.n_positions, 1, 1 << 22, cfg_path, error) ||
      !get(cfg, "vocab_size", in.vocab_size, 1, 1 << 22, cfg_path, error))
    return nullptr;
  in.n_kv_heads = in.n_heads;
  if (!json_get(cfg, "num_key_value_heads", in.n_kv_heads, 1, in.n_heads, error, cfg_path)) return nullptr;
  if (in.n_heads % in.n_kv_heads != 0) {
    error = cfg_path + ": num_attention_heads " + std::to_string(in.n_heads) + " is not a multiple of num_key_value_heads " +
            std::to_string(in.n_kv_heads);
    return nullptr;
  }
  in.d_head = in.d_model / in.n_heads;
  if (!json_get(cfg, "head_dim", in.d_head, 2, 1024, error, cfg_path)) return nullptr;
  if (in.d_head % 2 != 0 || (!cfg.contains("head_dim") && in.d_model % in.n_heads != 0)) {
    error = cfg_path + ": the head width " + std::to_string(in.d_head) + " must be even and divide hidden_size";
    return nullptr;
  }
  in.layer_norm_eps = 1e-6;
  in.rope_theta = 10000.0;
  bool attention_bias = false;
  std::string act = "silu";
  if (!json_get(cfg, "rms_norm_eps", in.layer_norm_eps, kMinEps, kMaxEps, error, cfg_path) ||
      !json_get(cfg, "rope_theta", in.rope_theta, 1.0, 1e12, error, cfg_path) ||
      !json_get(cfg, "attention_bias", attention_bias, error, cfg_path) || !json_get(cfg, "hidden_act", act, error, cfg_path))
    return nullptr;
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    error = cfg_path + ": rope_scaling " + json_excerpt(cfg["rope_scaling"]) + " is not supported yet";
    return nullptr;
  }
  if (attention_bias || act != "silu") {
    error = cfg_path + ": only hidden_act silu without attention biases is supported";
    return nullptr;
  }
  m->tokenizer_ = ByteBpe::load(dir, error);
  if (!m->tokenizer_) return nullptr;
  if (m->tokenizer_->max_id() >= in.vocab_size) {
    error = dir + ": the tokenizer's ids go up to " + std::to_string(m->tokenizer_->max_id()) + ", past vocab_size " +
            std::to_string(in.vocab_size) + " in config.json";
    return nullptr;
  }
  // BOS first as the tokenizer would add it: SentencePiece-style (TinyLlama) by default, a
  // byte-level one (SmolLM, a GPT-2 tokenizer) only when tokenizer_config.json says add_bos_token
  bool add_bos = m->tokenizer_->metaspace();
  if (const std::string tc = dir + "/tokenizer_config.json"; fs::exists(fs::symlink_status(tc))) {
    nlohmann::json j;
    if (!read_json_file(tc, j, error) || !json_get(j, "add_bos_token", add_bos, error, tc)) return nullptr;
  }
  int bos = -1;
  if (!json_get(cfg, "bos_token_id", bos, 0, in.vocab_size - 1, error, cfg_path)) return nullptr;
  if (add_bos) m->bos_id_ = bos;

  TensorFiles t;
  if (!t.open(dir, error)) return nullptr;
  in.dtype = t.stored_dtype();
  const int d = in.d_model, qd = in.n_heads * in.d_head, kvd = in.n_kv_heads * in.d_head, total = 1 + 9 * in.n_layers;
  Steps step{progress, cancel, total, error};
  std::string e;
  auto fail = [&]() {
    if (error != "cancelled") error = dir + ": " + e;
    return nullptr;
  };
  if (!t.matrix("model.embed_tokens.weight", in.vocab_size, d, m->wte_, e) || !step()) return fail();
  m->layers_.resize(in.n_layers);
  for (int l = 0; l < in.n_layers; ++l) {
    Layer& L = m->layers_[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Matrix q, k, v, o, gate, up, down;  // nn.Linear: (out, in)
    const bool ok = t.vector(p + "input_layernorm.weight", d, L.ln1_g, e) && step() &&
                    t.matrix(p + "self_attn.q_proj.weight", qd, d, q, e) && step() &&
                    t.matrix(p + "self_attn.k_proj.weight", kvd, d, k, e) && step() &&
                    t.matrix(p + "self_attn.v_proj.weight", kvd, d, v, e) && step() &&
                    t.matrix(p + "self_attn.o_proj.weight", d, qd, o, e) && step() &&
                    t.vector(p + "post_attention_layernorm.weight", d, L.ln2_g, e) && step() &&
                    t.matrix(p + "mlp.gate_proj.weight", in.d_inner, d, gate, e) && step() &&
                    t.matrix(p + "mlp.up_proj.weight", in.d_inner, d, up, e) && step() &&
                    t.matrix(p + "mlp.down_proj.weight", d, in.d_inner, down, e) && step();
    if (!ok) return fail();
    L.attn_w.resize(d, qd + 2 * kvd);  // [Q | K | V], (in, out)
    L.attn_w << q.transpose(), k.transpose(), v.transpose();
    L.proj_w = o.transpose();
    L.fc_w = gate.transpose();
    L.up_w = up.transpose();
    L.fc_proj_w = down.transpose();
  }
  return m;
}

std::string Intervention::describe() const {
  if (!enabled) return "";
  char t[48];
  std::snprintf(t, sizeof t, "temperature %.3g", temperature);
  std::string s = layer < 0 ? "every layer: " : "layer " + std::to_string(layer) + ": ";
  if (replace_mask) s += std::string("mask ") + name(mask.kind) + (mask.causal ? " + causal" : "") + ", ";
  return s + t;
}

namespace {
// Masks the raw logits (-inf where not allowed) and normalises them: the model's own mask, or an
// intervention's mask and temperature on its layer.
void finish_head(HeadResult& hr, const std::shared_ptr<MaskMatrix>& own, const Intervention& iv, int layer,
                 const std::vector<Token>& tokens) {
  const bool here = iv.enabled && (iv.layer < 0 || iv.layer == layer);
  std::shared_ptr<const MaskMatrix> allowed = own;
  if (here && iv.replace_mask)
    allowed = std::make_shared<const MaskMatrix>(build_mask(iv.mask, static_cast<int>(tokens.size()), tokens, 0));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (Eigen::Index i = 0; i < hr.logits.rows(); ++i)
    for (Eigen::Index j = 0; j < hr.logits.cols(); ++j)
      if (!(*allowed)(i, j)) hr.logits(i, j) = neg_inf;
  hr.allowed = allowed;
  masked_softmax(hr.logits, *allowed, here ? static_cast<float>(iv.temperature) : 1.0f, hr.weights);
  hr.output = hr.weights * hr.v;
}
}  // namespace

Outcome HfModel::compute(const std::string& text, const std::atomic<bool>* cancel, ComputeOptions options,
                         const Intervention& iv) const {
  Outcome out;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = std::make_shared<Result>();
  std::vector<int> ids;
  std::string error;
  if (!(bert_ ? wordpiece_->encode(text, ids, r->tokens, error) : tokenizer_->encode(text, ids, r->tokens, error))) {
    out.problems.push_back(error);
    return out;
  }
  if (llama_ && bos_id_ >= 0) {
    ids.insert(ids.begin(), bos_id_);
    r->tokens.insert(r->tokens.begin(), Token{"<s>", 0, 0});
  }
  const int n = static_cast<int>(ids.size()), d = info_.d_model, H = info_.n_heads;
  const int dh = llama_ ? info_.d_head : d / H;
  if (n == 0) {
    out.problems.push_back("the text has no tokens");
    return out;
  }
  if (n > info_.n_positions) {
    out.problems.push_back("the text has " + std::to_string(n) + " tokens; this model takes at most " +
                           std::to_string(info_.n_positions));
    return out;
  }
  for (int id : ids)
    if (id < 0 || id >= info_.vocab_size) {
      out.problems.push_back("token id " + std::to_string(id) + " is outside the embedding table (" +
                             std::to_string(info_.vocab_size) + " rows)");
      return out;
    }
  // the Result describes what ran: a causal, pre-LN stack with learned positions
  Session& s = r->session;
  s.text = text;
  s.model.d_model = d;
  s.model.n_heads = H;
  s.model.n_layers = info_.n_layers;
  s.model.block = bert_ ? BlockKind::attention : BlockKind::pre_ln;  // BERT is post-LN: Q, K, V read the stream itself
  s.positional.kind = PositionalKind::learned;
  s.attention.mask.kind = bert_ ? MaskKind::none : MaskKind::causal;
  r->d_head = dh;

  // the positions as the model applies them, for the positional views
  r->positions.kind = llama_ ? PositionalKind::rope : PositionalKind::learned;
  if (llama_) {
    r->positions.rope_base = info_.rope_theta;
    r->positions.source = "the model's RoPE (rotate_half, rope_theta " + std::to_string(info_.rope_theta) + ")";
  } else {
    r->positions.table = wpe_.topRows(n);
    r->positions.source = bert_ ? "the model's embeddings.position_embeddings (learned), added before the embedding LayerNorm"
                                : "the model's wpe.weight (learned), added to the token embeddings";
  }
  if (llama_) {
    s.positional.kind = PositionalKind::rope;
    s.positional.rope_base = info_.rope_theta;
    s.model.kv_sharing = info_.n_kv_heads == H ? KvSharing::mha : info_.n_kv_heads == 1 ? KvSharing::mqa : KvSharing::gqa;
    s.model.n_kv_heads = info_.n_kv_heads;
    r->intervention = iv.describe();
    return compute_llama(std::move(r), ids, cancel, options, t0, iv);
  }
  r->intervention = iv.describe();
  Matrix x(n, d);
  for (int i = 0; i < n; ++i) x.row(i) = wte_.row(ids[i]) + wpe_.row(i);
  if (bert_) {
    x.rowwise() += type0_;
    x = layer_norm(x, emb_ln_g_, emb_ln_b_, info_.layer_norm_eps);
  }
  const auto allowed = pattern(n, !bert_);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  for (int l = 0; l < info_.n_layers; ++l) {
    if (cancel && cancel->load()) {
      out.cancelled = true;
      return out;
    }
    if (options.progress) options.progress->store(float(l) / float(info_.n_layers + 1));
    const Layer& L = layers_[l];
    LayerResult layer;
    layer.input = x;
    layer.attention_input = bert_ ? x : layer_norm(x, L.ln1_g, L.ln1_b, info_.layer_norm_eps);
    const Matrix qkv = affine(layer.attention_input, L.attn_w, L.attn_b);
    layer.heads.resize(H);
    Matrix concat(n, d);
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < H; ++h) {
      HeadResult& hr = layer.heads[h];
      hr.kv_head = h;
      hr.q = qkv.middleCols(h * dh, dh);
      hr.k = qkv.middleCols(d + h * dh, dh);
      hr.v = qkv.middleCols(2 * d + h * dh, dh);
      hr.logits = hr.q * hr.k.transpose() * scale;
      finish_head(hr, allowed, iv, l, r->tokens);
      concat.middleCols(h * dh, dh) = hr.output;
    }
    layer.attention_output = affine(concat, L.proj_w, L.proj_b);
    if (bert_) {  // post-LN (Devlin et al. 2019): LN(x + sublayer(x)), exact GELU
      x = layer_norm(x + layer.attention_output, L.ln1_g, L.ln1_b, info_.layer_norm_eps);
      Matrix inter = affine(x, L.fc_w, L.fc_b);
      inter = inter.unaryExpr([](float v) { return gelu(v); });
      x = layer_norm(x + affine(inter, L.fc_proj_w, L.fc_proj_b), L.ln2_g, L.ln2_b, info_.layer_norm_eps);
      layer.output = x;
      r->layers.push_back(std::move(layer));
      continue;
    }
    x += layer.attention_output;
    Matrix hidden = affine(layer_norm(x, L.ln2_g, L.ln2_b, info_.layer_norm_eps), L.fc_w, L.fc_b);
    {  // gelu_new: GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016), sqrt(2 / pi) = 0.79788...
      auto a = hidden.array();
      hidden = (0.5f * a * (1.0f + (0.7978845608028654f * (a + 0.044715f * a.cube())).tanh())).matrix();
    }
    x += affine(hidden, L.fc_proj_w, L.fc_proj_b);
    layer.output = x;
    r->layers.push_back(std::move(layer));
  }
  add_analyses(*r, true, true, options.metrics);
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

Outcome HfModel::compute_llama(std::shared_ptr<Result> r, const std::vector<int>& ids, const std::atomic<bool>* cancel,
                               ComputeOptions options, std::chrono::steady_clock::time_point t0,
                               const Intervention& iv) const {
  Outcome out;
  const int n = static_cast<int>(ids.size()), d = info_.d_model, H = info_.n_heads, KV = info_.n_kv_heads;
  const int dh = info_.d_head, qd = H * dh, kvd = KV * dh, group = H / KV;
  r->d_head = dh;
  auto rms = [&](const Matrix& x, const RowVector& g) {  // Zhang & Sennrich 2019: x / sqrt(mean(x^2) + eps) * g
    Matrix y(x.rows(), x.cols());
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      const double ms = x.row(i).cast<double>().squaredNorm() / x.cols();
      y.row(i) = (x.row(i).array() * static_cast<float>(1.0 / std::sqrt(ms + info_.layer_norm_eps)) * g.array()).matrix();
    }
    return y;
  };
  Matrix x(n, d);
  for (int i = 0; i < n; ++i) x.row(i) = wte_.row(ids[i]);
  const auto allowed = pattern(n, true);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  const RowVector zero_q = RowVector::Zero(qd + 2 * kvd), zero_d = RowVector::Zero(d), zero_i = RowVector::Zero(info_.d_inner);
  for (int l = 0; l < info_.n_layers; ++l) {
    if (cancel && cancel->load()) {
      out.cancelled = true;
      return out;
    }
    if (options.progress) options.progress->store(float(l) / float(info_.n_layers + 1));
    const Layer& L = layers_[l];
    LayerResult layer;
    layer.input = x;
    layer.attention_input = rms(x, L.ln1_g);
    const Matrix qkv = affine(layer.attention_input, L.attn_w, zero_q);
    std::vector<Matrix> ks(KV), vs(KV);
    for (int g = 0; g < KV; ++g) {  // keys turned by RoPE once per K/V head
      ks[g] = qkv.middleCols(qd + g * dh, dh);
      vs[g] = qkv.middleCols(qd + kvd + g * dh, dh);
      rope_rotate(ks[g], info_.rope_theta, 1.0, RopeConvention::rotate_half);
    }
    layer.heads.resize(H);
    Matrix concat(n, qd);
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < H; ++h) {
      HeadResult& hr = layer.heads[h];
      hr.kv_head = h / group;
      hr.q = qkv.middleCols(h * dh, dh);
      rope_rotate(hr.q, info_.rope_theta, 1.0, RopeConvention::rotate_half);
      hr.k = ks[hr.kv_head];
      hr.v = vs[hr.kv_head];
      hr.logits = hr.q * hr.k.transpose() * scale;
      finish_head(hr, allowed, iv, l, r->tokens);
      concat.middleCols(h * dh, dh) = hr.output;
    }
    layer.attention_output = affine(concat, L.proj_w, zero_d);
    x += layer.attention_output;
    const Matrix m = rms(x, L.ln2_g);
    Matrix gate = affine(m, L.fc_w, zero_i);
    const Matrix up = affine(m, L.up_w, zero_i);
    gate = (gate.array() / (1.0f + (-gate.array()).exp()) * up.array()).matrix();  // SwiGLU: silu(gate) * up
    x += affine(gate, L.fc_proj_w, zero_d);
    layer.output = x;
    r->layers.push_back(std::move(layer));
  }
  add_analyses(*r, true, true, options.metrics);
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

}  // namespace attnlab
