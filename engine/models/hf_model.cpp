#include "models/hf_model.hpp"
#include "models/layers.hpp"

#include "session/cost.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <filesystem>

#include "core/json_input.hpp"
#include "core/rng.hpp"
#include "core/utf8.hpp"
#include "models/checkpoint.hpp"

namespace fs = std::filesystem;

namespace attnlab {

HfModel::HfModel() = default;
HfModel::~HfModel() = default;

int ModelTokenizer::max_id() const { return bpe ? bpe->max_id() : -1; }

bool ModelTokenizer::encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                            std::string& error) const {
  if (!bpe->encode(text, ids, tokens, error)) return false;
  if (bos_id >= 0) {
    ids.insert(ids.begin(), bos_id);
    tokens.insert(tokens.begin(), Token{bos_text, 0, 0});
  }
  return true;
}

std::string ModelTokenizer::token_text(int id) const {
  return bpe ? bpe->token_text(id) : std::string();
}

bool Intervention::ablated(int l, int h) const {
  return std::find(ablate.begin(), ablate.end(), std::pair{l, h}) != ablate.end();
}

Intervention sink_masked(const ModelInfo& info, int sinks) {
  Intervention iv;
  mask_sink(iv, info, sinks);
  return iv;
}

void mask_sink(Intervention& iv, const ModelInfo& info, int sinks) {
  iv.enabled = true;
  iv.temperature = 1.0;
  iv.layer = -1;
  iv.replace_mask = true;
  iv.mask.kind = MaskKind::expression;
  iv.mask.expression = info.model_type == "bert" ? "k >= sinks or k == q" : "k <= q and (k >= sinks or k == q)";
  iv.mask.parameters = {{"sinks", double(std::max(0, sinks))}};
}

std::string Intervention::describe() const {
  std::string s;
  if (enabled) {
    char t[48];
    std::snprintf(t, sizeof t, "temperature %.3g", temperature);
    s = layer < 0 ? "every layer: " : "layer " + std::to_string(layer) + ": ";
    if (replace_mask)
      s += std::string("mask ") + name(mask.kind) + (mask.kind == MaskKind::expression ? " \"" + mask.expression + "\"" : "") +
           (mask.causal ? " + causal" : "") + ", ";
    s += t;
  }
  if (!ablate.empty()) {
    if (!s.empty()) s += "; ";
    s += "ablate";
    for (std::size_t i = 0; i < ablate.size(); ++i)
      s += (i ? ", " : " ") + std::to_string(ablate[i].first) + "." + std::to_string(ablate[i].second);
    s += ablate_mode == AblateMode::zero   ? " (zero)"
         : ablate_mode == AblateMode::mean ? " (mean over positions)"
                                           : " (from the corrupted text \"" + utf8_sanitize(corrupted_text.substr(0, 60)) +
                                                 (corrupted_text.size() > 60 ? "...\")" : "\")");
  }
  return s;
}

bool parse_ablate(const std::string& spec, int n_layers, int n_heads, std::vector<std::pair<int, int>>& out,
                  std::string& error) {
  out.clear();
  std::size_t at = 0;
  while (at <= spec.size()) {
    const std::size_t end = std::min(spec.find(',', at), spec.size());
    const std::string item = spec.substr(at, end - at);
    // two integers around a dot; one too large for a long long is no head at all (-1)
    long long l = -1, h = -1;
    const char *p = item.data(), *e = p + item.size();
    auto number = [&](long long& v) {
      const auto r = std::from_chars(p, e, v);
      if (r.ec == std::errc::invalid_argument) return false;
      if (r.ec == std::errc::result_out_of_range) v = -1;
      p = r.ptr;
      return true;
    };
    const bool ok = number(l) && p < e && *p++ == '.' && number(h) && p == e;
    if (!ok) {
      error = "ablate: '" + item + "' is not LAYER.HEAD (e.g. 0.3)";
      return false;
    }
    if (l < 0 || l >= n_layers || h < 0 || h >= n_heads) {
      error = "ablate: head " + item + " does not exist (the model has " + std::to_string(n_layers) + " layers of " +
              std::to_string(n_heads) + " heads, counted from 0)";
      return false;
    }
    const std::pair<int, int> head{static_cast<int>(l), static_cast<int>(h)};
    if (std::find(out.begin(), out.end(), head) == out.end()) out.push_back(head);
    at = end + 1;
  }
  return true;
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

Result::Sample HfModel::sample_next(const Matrix& logits, const Result::Sample& ask, std::uint64_t draw) const {
  Result::Sample s = ask;
  const int V = static_cast<int>(logits.cols());
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  const float* l = logits.data();
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  // softmax of logits / T, in order; then top-k, then the top-p nucleus (the token that crosses
  // top_p is kept), renormalised
  const double m = l[order[0]] / s.temperature;
  std::vector<double> p(V);
  for (int t = 0; t < V; ++t) p[t] = std::exp(l[order[t]] / s.temperature - m);
  int keep = s.top_k > 0 ? std::min(s.top_k, V) : V;
  double kept = 0;
  for (int t = 0; t < keep; ++t) kept += p[t];
  if (s.top_p < 1) {
    double acc = 0;
    for (int t = 0; t < keep; ++t)
      if ((acc += p[t] / kept) >= s.top_p) {
        keep = t + 1;
        break;
      }
  }
  double total = 0;
  for (int t = 0; t < keep; ++t) total += p[t];
  for (int t = 0; t < keep; ++t)
    s.distribution.push_back({order[t], tokenizer_.token_text(order[t]), static_cast<float>(p[t] / total)});
  // the draw: one uniform from the seed's stream, through the cumulative distribution
  const double u = uniform(stream_key(s.seed, "sample.next"), draw);
  double acc = 0;
  s.token = s.distribution.back();
  for (int t = 0; t < keep; ++t)
    if (u < (acc += p[t] / total)) {
      s.token = s.distribution[t];
      break;
    }
  return s;
}

bool HfModel::next_tokens(const Matrix& hidden, int k, std::vector<std::vector<Result::NextToken>>& out,
                          std::string& note, const CancelFlag* cancel) const {
  out.assign(hidden.rows(), {});
  k = std::min(k, info_.vocab_size);
  if (k <= 0) return true;
  // rows of logits a chunk at a time: (rows, vocab) floats, never (n, vocab) at length
  constexpr int kRows = 256;
  Matrix logits;
  for (Eigen::Index r0 = 0; r0 < hidden.rows(); r0 += kRows) {
    if (cancel_requested(cancel)) return false;
    const Eigen::Index rows = std::min<Eigen::Index>(kRows, hidden.rows() - r0);
    if (!family_->unembed(info_, weights_, hidden.middleRows(r0, rows), logits, note)) {
      out.clear();
      return true;  // no head: the Result says why
    }
    // each row: the softmax's sum (float exps, vectorised, summed in double) and the k largest
    // logits in one pass (larger first, the lower id on a tie); rows split over the cores
    const int V = info_.vocab_size;
#pragma omp parallel for schedule(static) if (rows >= 8)
    for (Eigen::Index i = 0; i < rows; ++i) {
      const float* l = &logits(i, 0);
      const Eigen::Map<const Eigen::ArrayXf> row(l, V);
      const float m = row.maxCoeff();
      const double sum = (row - m).exp().cast<double>().sum();
      auto better = [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
      std::vector<int> top;
      if (k <= 64) {  // insertion into the k best so far
        top.reserve(std::size_t(k) + 1);
        for (int v = 0; v < V; ++v) {
          if (static_cast<int>(top.size()) == k && !better(v, top.back())) continue;
          auto at = top.end();
          while (at != top.begin() && better(v, *(at - 1))) --at;
          top.insert(at, v);
          if (static_cast<int>(top.size()) > k) top.pop_back();
        }
      } else {
        top.resize(std::size_t(V));
        std::iota(top.begin(), top.end(), 0);
        std::partial_sort(top.begin(), top.begin() + k, top.end(), better);
        top.resize(std::size_t(k));
      }
      auto& out_row = out[r0 + i];
      for (int t : top)
        out_row.push_back({t, tokenizer_.token_text(t), static_cast<float>(std::exp(double(l[t]) - m) / sum)});
    }
  }
  return true;
}

Outcome HfModel::compute(const std::string& text, const CancelFlag* cancel, ComputeOptions options,
                         const Intervention& iv) const {
  Outcome out;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = std::make_shared<Result>();
  std::vector<int> ids;
  std::string error;
  if (!model_ids(text, ids, r->tokens, error)) {
    out.problems.push_back(error);
    return out;
  }
  const int n = static_cast<int>(ids.size());
  // a head ablated with its output on a corrupted text: that text's run first
  Intervention with_outputs;
  if (iv.ablate_mode == AblateMode::corrupted && !iv.ablate.empty() && !iv.corrupted_outputs) {
    ComputeOptions plain;
    plain.dense = options.dense;
    plain.top_k = 0;
    plain.metrics = false;
    const Outcome c = compute(iv.corrupted_text, cancel, plain);
    if (!c.result) {
      out.cancelled = c.cancelled;
      if (!c.problems.empty()) out.problems.push_back("the corrupted text: " + c.problems[0]);
      return out;
    }
    if (c.result->tokens.size() != std::size_t(n)) {
      out.problems.push_back("the corrupted text has " + std::to_string(c.result->tokens.size()) + " tokens and this one " +
                             std::to_string(n) + ": a head's output is taken position by position, so they must match");
      return out;
    }
    auto outputs = std::make_shared<HeadOutputs>(std::size_t(info_.n_layers));
    for (int l = 0; l < info_.n_layers; ++l)
      for (int h = 0; h < info_.n_heads; ++h)
        (*outputs)[l].push_back(c.result->is_field() ? c.result->fields[l].heads[h].output : c.result->layers[l].heads[h].output);
    with_outputs = iv;
    with_outputs.corrupted_outputs = std::move(outputs);
    return compute(text, cancel, options, with_outputs);
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
  bool field_half = false;
  if (field && iv.enabled && iv.replace_mask && !MaskRule::supports(iv.mask.kind)) {
    out.problems.push_back(std::string("the intervention's mask '") + name(iv.mask.kind) + "' needs at most " +
                           std::to_string(kDenseMaxTokens) + " tokens (the attention field of a long text takes every other mask)");
    return out;
  }
  if (field) {
    const double per_layer = 4.0 * n * (double(info_.n_heads) * info_.d_head * 4 + info_.d_model) +
                             info_.n_heads * 2.0 * 4 * kFieldOverviewSide * kFieldOverviewSide;
    const double bytes = per_layer * info_.n_layers + 4.0 * n * info_.d_model * 8;
    // above the budget q and k as F16 (2 bytes a number instead of 4); refused when even that does not fit
    const double half = bytes - 2.0 * n * double(info_.n_heads) * info_.d_head * 2 * info_.n_layers;
    if (half > memory_budget_bytes()) {
      out.problems.push_back(std::to_string(n) + " tokens need about " + human_bytes(half) + " for the fields of " +
                             std::to_string(info_.n_layers) + " layers, with q and k as F16; the memory budget is " +
                             human_bytes(memory_budget_bytes()) + " (use a shorter text, or raise the budget)");
      return out;
    }
    field_half = bytes > memory_budget_bytes();
  }
  Matrix hidden;
  ForwardInput fi{ids, cancel, options, iv, field};
  fi.field_half = field_half;
  fi.hidden = options.top_k > 0 ? &hidden : nullptr;
  if (!family_->forward(info_, weights_, fi, *r)) {
    out.cancelled = true;
    return out;
  }
  if (options.top_k > 0 && options.next_tokens_last && hidden.rows() > 0) {
    std::vector<std::vector<Result::NextToken>> last;
    if (!next_tokens(hidden.bottomRows(1), options.top_k, last, r->next_tokens_note, cancel)) {
      out.cancelled = true;
      return out;
    }
    if (!last.empty()) {  // (empty: no output head, the note says why)
      r->next_tokens.assign(hidden.rows(), {});
      r->next_tokens.back() = std::move(last.front());
    }
  } else if (options.top_k > 0 && !next_tokens(hidden, options.top_k, r->next_tokens, r->next_tokens_note, cancel)) {
    out.cancelled = true;
    return out;
  }
  if (options.sample && hidden.rows() > 0) {
    Matrix logits;
    std::string why;
    if (family_->unembed(info_, weights_, hidden.bottomRows(1), logits, why)) r->sample = sample_next(logits, *options.sample);
  }
  if (options.top_k > 0 && options.next_tokens_last && !r->next_tokens.empty()) r->final_hidden = std::move(hidden);
  if (options.logit_lens && field)  // the field keeps no layer's residual stream
    r->next_tokens_note += std::string(r->next_tokens_note.empty() ? "" : "; ") + "the logit lens is computed up to " +
                           std::to_string(kDenseMaxTokens) + " tokens (this text is an attention field)";
  if (options.logit_lens && !field && !r->layers.empty() && r->layers[0].output.size()) {
    r->logit_lens.resize(r->layers.size());
    std::string why;
    for (std::size_t l = 0; l < r->layers.size(); ++l) {
      std::vector<std::vector<Result::NextToken>> top;
      if (!next_tokens(r->layers[l].output, 1, top, why, cancel)) {
        out.cancelled = true;
        return out;
      }
      if (top.empty()) {  // no output head
        r->logit_lens.clear();
        break;
      }
      for (auto& row : top) r->logit_lens[l].push_back(row.front());
    }
  }
  if (field) {
    if (options.metrics && !add_field_metrics(*r, options.sink_tokens, cancel)) return out.cancelled = true, out;
    if (options.field_rollout && !add_field_rollout(*r, cancel)) return out.cancelled = true, out;
  } else {
    add_analyses(*r, true, true, options.metrics, options.sink_tokens);
  }
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

bool HfModel::model_ids(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                        std::string& error) const {
  if (!tokenizer_.encode(text, ids, tokens, error)) return false;
  const int n = static_cast<int>(ids.size());
  if (n == 0) {
    error = "the text has no tokens";
    return false;
  }
  if (n > info_.n_positions) {
    error = "the text has " + std::to_string(n) + " tokens; this model takes at most " + std::to_string(info_.n_positions);
    return false;
  }
  for (int id : ids)
    if (id < 0 || id >= info_.vocab_size) {
      error = "token id " + std::to_string(id) + " is outside the embedding table (" + std::to_string(info_.vocab_size) +
              " rows)";
      return false;
    }
  return true;
}

bool HfModel::generate(const std::string& text, const GenerateOptions& opt, Generation& out, std::string& error,
                       std::atomic<float>* progress, const CancelFlag* cancel) const {
  out = Generation{};
  std::vector<Token> tokens;
  if (!model_ids(text, out.ids, tokens, error)) return false;
  if (info_.model_type == "bert") {
    error = "BERT is bidirectional: it predicts masked positions, it does not generate (use a causal model)";
    return false;
  }
  if (opt.tokens < 0 || opt.tokens > 100000) {
    error = "tokens to generate: " + std::to_string(opt.tokens) + " is outside 0..100000";
    return false;
  }
  out.text = text;
  // dynamic NTK scaling turns every key by frequencies of the whole length: cached keys would be stale
  out.cached = opt.use_cache && info_.rope_scaling.kind != RopeScaling::Kind::dynamic;
  if (opt.use_cache && !out.cached) out.note = "without the KV cache: dynamic rope_scaling changes every key as the text grows";
  if (!out.cached && static_cast<int>(out.ids.size()) + opt.tokens > kDenseMaxTokens) {
    error = "without the KV cache generation reruns the whole text: at most " + std::to_string(kDenseMaxTokens) + " tokens";
    return false;
  }
  ComputeOptions plain;
  plain.top_k = 0;
  plain.metrics = false;
  const Intervention none;
  KvCache cache;
  Matrix hidden;
  std::string why;
  // the rows of `ids` from `from` through the model: with the cache in chunks (at most 256 queries
  // against the cached keys at a time), else the whole text again
  auto run = [&](std::size_t from) {
    Result r;
    if (!out.cached) {
      ForwardInput fi{out.ids, cancel, plain, none, false};
      fi.hidden = &hidden;
      return family_->forward(info_, weights_, fi, r);
    }
    constexpr std::size_t kChunk = 256;
    for (std::size_t a = from; a < out.ids.size(); a += kChunk) {
      const std::vector<int> part(out.ids.begin() + a, out.ids.begin() + std::min(out.ids.size(), a + kChunk));
      ForwardInput fi{part, cancel, plain, none, false};
      fi.hidden = &hidden;
      fi.cache = &cache;
      if (!family_->forward(info_, weights_, fi, r)) return false;
      cache.positions += static_cast<int>(part.size());
    }
    return true;
  };
  if (!run(0)) return false;
  for (int t = 0; t < opt.tokens; ++t) {
    if (progress) progress->store(float(t) / float(std::max(1, opt.tokens)));
    if (static_cast<int>(out.ids.size()) >= info_.n_positions) {
      out.note = "stopped at the model's context of " + std::to_string(info_.n_positions) + " tokens";
      break;
    }
    Matrix logits;
    if (!family_->unembed(info_, weights_, hidden.bottomRows(1), logits, why)) {
      error = "generation needs the output head: " + why;
      return false;
    }
    Result::NextToken next;
    if (opt.greedy) {
      Eigen::Index best = 0;
      logits.row(0).maxCoeff(&best);  // the first maximum: the lowest id on a tie
      const double m = logits(0, best);
      double sum = 0;
      for (Eigen::Index v = 0; v < logits.cols(); ++v) sum += std::exp(double(logits(0, v)) - m);
      next = {static_cast<int>(best), tokenizer_.token_text(static_cast<int>(best)), static_cast<float>(1.0 / sum)};
    } else {
      next = sample_next(logits, opt.sample, std::uint64_t(t)).token;
    }
    out.generated.push_back(next);
    out.text += next.token;
    const std::size_t from = out.ids.size();
    out.ids.push_back(next.id);
    if (t + 1 < opt.tokens && !run(from)) return false;
  }
  if (progress) progress->store(1.0f);
  return true;
}

bool HfModel::single_token(const std::string& text, int& id, std::string& error) const {
  std::vector<int> ids;
  std::vector<Token> tokens;
  if (!tokenizer_.encode(text, ids, tokens, error)) return false;
  if (!ids.empty() && tokenizer_.bos_id >= 0 && ids.front() == tokenizer_.bos_id) ids.erase(ids.begin());
  if (ids.size() != 1) {
    error = "'" + utf8_sanitize(text) + "' is " + std::to_string(ids.size()) + " tokens, not one";
    return false;
  }
  id = ids[0];
  return true;
}

bool HfModel::patch_metric(const Matrix& row, const PatchRequest& q, double& value, std::string& why) const {
  Matrix logits;
  if (!family_->unembed(info_, weights_, row, logits, why)) return false;
  if (q.metric == PatchRequest::Metric::logit_diff) {
    value = double(logits(0, q.token_a)) - double(logits(0, q.token_b));
  } else {
    const double m = logits.row(0).maxCoeff();
    double sum = 0;
    for (Eigen::Index v = 0; v < logits.cols(); ++v) sum += std::exp(double(logits(0, v)) - m);
    value = std::exp(double(logits(0, q.token_a)) - m) / sum;
  }
  return true;
}

bool HfModel::patch(const PatchRequest& request, PatchGrid& out, std::string& error, std::atomic<float>* progress,
                    const CancelFlag* cancel) const {
  out = PatchGrid{};
  PatchRequest q = request;
  std::vector<int> clean_ids, bad_ids;
  if (!model_ids(q.clean, clean_ids, out.tokens, error)) return false;
  if (!model_ids(q.corrupted, bad_ids, out.corrupted_tokens, error)) {
    error = "the corrupted text: " + error;
    return false;
  }
  const int n = static_cast<int>(clean_ids.size()), L = info_.n_layers, H = info_.n_heads;
  if (bad_ids.size() != clean_ids.size()) {
    error = "the corrupted text has " + std::to_string(bad_ids.size()) + " tokens and the clean one " + std::to_string(n) +
            ": patching takes the corrupted run position by position, so they must match";
    return false;
  }
  if (n > kDenseMaxTokens) {
    error = "patching runs up to " + std::to_string(kDenseMaxTokens) + " tokens (this text has " + std::to_string(n) + ")";
    return false;
  }
  if (q.position < -1 || q.position >= n) {
    error = "position " + std::to_string(q.position) + " is outside the text's " + std::to_string(n) + " tokens";
    return false;
  }
  if (q.position < 0) q.position = n - 1;
  for (int t : {q.token_a, q.token_b})
    if (t < -1 || t >= info_.vocab_size) {
      error = "token id " + std::to_string(t) + " is outside the vocabulary (" + std::to_string(info_.vocab_size) + ")";
      return false;
    }
  ComputeOptions plain;
  plain.top_k = 0;
  plain.metrics = false;
  // one forward pass from layer `first` (its input given) to the final stream's row q.position
  auto run = [&](const std::vector<int>& ids, const Intervention& iv, int first, const Matrix* input, Result& r,
                 Matrix& hidden) {
    r.tokens = out.tokens;
    ForwardInput fi{ids, cancel, plain, iv, false};
    fi.hidden = &hidden;
    fi.first_layer = first;
    fi.first_input = input;
    return family_->forward(info_, weights_, fi, r);
  };
  Result clean, bad;
  Matrix clean_h, bad_h;
  if (!run(clean_ids, {}, 0, nullptr, clean, clean_h) || !run(bad_ids, {}, 0, nullptr, bad, bad_h)) return false;
  // the tokens the metric compares: the clean run's top token and the corrupted run's
  Matrix logits;
  std::string why;
  if (!family_->unembed(info_, weights_, clean_h.row(q.position), logits, why)) {
    error = "patching needs the output head: " + why;
    return false;
  }
  Eigen::Index top_clean = 0, top_bad = 0;
  logits.row(0).maxCoeff(&top_clean);
  if (q.token_a < 0) q.token_a = static_cast<int>(top_clean);
  if (q.metric == PatchRequest::Metric::logit_diff && q.token_b < 0) {
    Matrix bad_logits;
    family_->unembed(info_, weights_, bad_h.row(q.position), bad_logits, why);
    bad_logits.row(0).maxCoeff(&top_bad);
    if (top_bad == q.token_a) {  // the runs agree: the clean run's second choice
      logits(0, q.token_a) = -std::numeric_limits<float>::infinity();
      logits.row(0).maxCoeff(&top_bad);
    }
    q.token_b = static_cast<int>(top_bad);
  }
  out.token_a_text = tokenizer_.token_text(q.token_a);
  if (q.token_b >= 0) out.token_b_text = tokenizer_.token_text(q.token_b);
  if (!patch_metric(clean_h.row(q.position), q, out.clean, why) || !patch_metric(bad_h.row(q.position), q, out.corrupted, why)) {
    error = why;
    return false;
  }
  out.request = q;
  const bool heads = q.grid == PatchRequest::Grid::heads;
  const int cols = heads ? H : n, total = L * cols;
  out.values.resize(L, cols);
  // noising runs the clean text with the corrupted run's pieces; denoising the other way round
  const bool denoise = q.direction == PatchRequest::Direction::denoising;
  const Result& base = denoise ? bad : clean;
  const Result& donor = denoise ? clean : bad;
  const std::vector<int>& base_ids = denoise ? bad_ids : clean_ids;
  auto outputs = std::make_shared<HeadOutputs>(std::size_t(L));
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) (*outputs)[l].push_back(donor.layers[l].heads[h].output);
  for (int l = 0, done = 0; l < L; ++l)
    for (int c = 0; c < cols; ++c, ++done) {
      if (progress) progress->store(float(done) / float(total));
      Intervention iv;
      Matrix input = base.layers[l].input;  // the unpatched run up to layer l is reused, not recomputed
      if (heads) {
        iv.ablate = {{l, c}};
        iv.ablate_mode = AblateMode::corrupted;  // the head's output replaced by the donor run's
        iv.corrupted_outputs = outputs;
      } else {
        input.row(c) = donor.layers[l].input.row(c);  // the residual stream entering layer l, at position c
      }
      Result r;
      Matrix hidden;
      if (!run(base_ids, iv, l, &input, r, hidden)) return false;  // cancelled
      if (!patch_metric(hidden.row(q.position), q, out.values(l, c), why)) {
        error = why;
        return false;
      }
      ++out.runs;
      out.layers_run += double(L - l) / L;
    }
  if (progress) progress->store(1.0f);
  return true;
}

}  // namespace attnlab
