#include "models/hf_model.hpp"

#include "session/cost.hpp"

#include <chrono>
#include <filesystem>

#include "core/json_input.hpp"
#include "core/utf8.hpp"
#include "models/checkpoint.hpp"

namespace fs = std::filesystem;

namespace attnlab {

HfModel::HfModel() = default;
HfModel::~HfModel() = default;

int ModelTokenizer::max_id() const { return bpe ? bpe->max_id() : wordpiece ? wordpiece->max_id() : -1; }

bool ModelTokenizer::encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                            std::string& error) const {
  if (!(bpe ? bpe->encode(text, ids, tokens, error) : wordpiece->encode(text, ids, tokens, error))) return false;
  if (bos_id >= 0) {
    ids.insert(ids.begin(), bos_id);
    tokens.insert(tokens.begin(), Token{bos_text, 0, 0});
  }
  return true;
}

std::string Intervention::describe() const {
  if (!enabled) return "";
  char t[48];
  std::snprintf(t, sizeof t, "temperature %.3g", temperature);
  std::string s = layer < 0 ? "every layer: " : "layer " + std::to_string(layer) + ": ";
  if (replace_mask) s += std::string("mask ") + name(mask.kind) + (mask.causal ? " + causal" : "") + ", ";
  return s + t;
}

std::unique_ptr<HfModel> HfModel::load(const std::string& dir, Failure& failure, std::atomic<float>* progress,
                                       const CancelFlag* cancel) {
  failure = {};
  std::string& error = failure.message;
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
  m->family_ = find_family(in.model_type);
  if (!m->family_) {
    error = cfg_path + ": model_type '" + utf8_sanitize(in.model_type) + "' is not supported yet (" + family_names() + ")";
    return nullptr;
  }
  const Family& fam = *m->family_;
  if (!fam.read_config(cfg, cfg_path, in, error) || !fam.read_tokenizer(dir, cfg, in, m->tokenizer_, error)) return nullptr;
  if (m->tokenizer_.max_id() >= in.vocab_size) {
    error = dir + ": the tokenizer's ids go up to " + std::to_string(m->tokenizer_.max_id()) + ", past vocab_size " +
            std::to_string(in.vocab_size) + " in config.json";
    return nullptr;
  }
  Checkpoint ckpt;
  if (!ckpt.open(dir, error)) return nullptr;
  ckpt.choose_prefix(fam.probe, fam.prefixes);
  in.dtype = ckpt.stored_dtype();
  if (!ckpt.read(fam.tensors(in), in.n_layers, m->weights_, failure, progress, cancel)) {
    if (!failure.cancelled) error = dir + ": " + error;
    return nullptr;
  }
  return m;
}

Outcome HfModel::compute(const std::string& text, const CancelFlag* cancel, ComputeOptions options,
                         const Intervention& iv) const {
  Outcome out;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = std::make_shared<Result>();
  std::vector<int> ids;
  std::string error;
  if (!tokenizer_.encode(text, ids, r->tokens, error)) {
    out.problems.push_back(error);
    return out;
  }
  const int n = static_cast<int>(ids.size());
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
  // the Result describes what ran
  Session& s = r->session;
  s.text = text;
  s.model.d_model = info_.d_model;
  s.model.n_heads = info_.n_heads;
  s.model.n_layers = info_.n_layers;
  r->d_head = info_.d_head;
  family_->describe(info_, *r);
  r->intervention = iv.describe();
  // a long text: every layer as an attention field (O(n d) per head), within the memory budget
  const bool field = n > kDenseMaxTokens && !options.dense;
  if (field && iv.enabled && iv.replace_mask && !MaskRule::supports(iv.mask.kind)) {
    out.problems.push_back(std::string("the intervention's mask '") + name(iv.mask.kind) + "' needs at most " +
                           std::to_string(kDenseMaxTokens) + " tokens (the attention field of a long text takes every other mask)");
    return out;
  }
  if (field) {
    const double per_layer = 4.0 * n * (double(info_.n_heads) * info_.d_head * 4 + info_.d_model) +
                             info_.n_heads * 2.0 * 4 * kFieldOverviewSide * kFieldOverviewSide;
    const double bytes = per_layer * info_.n_layers + 4.0 * n * info_.d_model * 8;
    if (bytes > memory_budget_bytes()) {
      out.problems.push_back(std::to_string(n) + " tokens need about " + human_bytes(bytes) + " for the fields of " +
                             std::to_string(info_.n_layers) + " layers; the memory budget is " +
                             human_bytes(memory_budget_bytes()) + " (use a shorter text, or raise the budget)");
      return out;
    }
  }
  if (!family_->forward(info_, weights_, ForwardInput{ids, cancel, options, iv, field}, *r)) {
    out.cancelled = true;
    return out;
  }
  if (field) {
    if (options.metrics) r->metrics = field_metrics(r->fields);
  } else {
    add_analyses(*r, true, true, options.metrics);
  }
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

}  // namespace attnlab
