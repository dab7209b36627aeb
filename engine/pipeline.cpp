#include "pipeline.hpp"

#include <cstdio>

#include "session/cost.hpp"

#include <algorithm>
#include <chrono>

#include "attention/positional.hpp"

namespace attnlab {

namespace {
constexpr std::size_t kMaxCachedEmbeddings = 1 << 16;
}

const LayerWeights& Engine::weights(const Session& s, int layer) {
  const int kv_dim = s.model.kv_heads() * s.d_head();
  if (s.model.seed != cache_seed_ || s.model.d_model != cache_d_model_ || kv_dim != cache_kv_dim_) {
    cache_seed_ = s.model.seed;
    cache_d_model_ = s.model.d_model;
    cache_kv_dim_ = kv_dim;
    weights_.clear();
    ffn_.clear();
    embeddings_.clear();
    learned_.resize(0, 0);
  }
  if (static_cast<int>(weights_.size()) <= layer) weights_.resize(layer + 1);
  if (!weights_[layer])
    weights_[layer] = std::make_unique<LayerWeights>(layer_weights(s.model.seed, layer, s.model.d_model, kv_dim));
  return *weights_[layer];
}

const FfnWeights& Engine::ffn(const Session& s, int layer) {
  weights(s, layer);  // keys the caches to (seed, d_model, kv_dim)
  if (s.model.ffn_mult != cache_ffn_mult_) ffn_.clear(), cache_ffn_mult_ = s.model.ffn_mult;
  if (static_cast<int>(ffn_.size()) <= layer) ffn_.resize(layer + 1);
  if (!ffn_[layer])
    ffn_[layer] = std::make_unique<FfnWeights>(ffn_weights(s.model.seed, layer, s.model.d_model, s.model.ffn_mult));
  return *ffn_[layer];
}

Matrix Engine::layer_input(const Session& s, const std::vector<Token>& tokens) {
  weights(s, 0);  // keys the embedding cache to (seed, d_model)
  const int n = static_cast<int>(tokens.size());
  const int d = s.model.d_model;
  if (embeddings_.size() > kMaxCachedEmbeddings) embeddings_.clear();
  Matrix x(n, d);
  for (int i = 0; i < n; ++i) {
    auto [it, fresh] = embeddings_.try_emplace(tokens[i].text);
    if (fresh) {
      it->second.resize(d);
      embed_token(s.model.seed, tokens[i].text, it->second.data(), d);
    }
    x.row(i) = Eigen::Map<const RowVector>(it->second.data(), d);
  }
  if (s.positional.kind == PositionalKind::sinusoidal) {
    if (sinusoidal_.rows() < n || sinusoidal_.cols() != d) sinusoidal_ = sinusoidal_encoding(std::max(n, 256), d);
    x += sinusoidal_.topRows(n);
  } else if (s.positional.kind == PositionalKind::learned) {
    // the table is keyed to (seed, d_model) like the other caches
    if (learned_.rows() < n || learned_.cols() != d) learned_ = learned_encoding(s.model.seed, std::max(n, 256), d);
    x += learned_.topRows(n);
  }
  return x;
}

Positions Engine::positions_of(const Session& s, int n) const {
  Positions p;
  p.kind = s.positional.kind;
  switch (s.positional.kind) {
    case PositionalKind::sinusoidal:
      p.table = sinusoidal_.topRows(n);
      p.source = "sinusoidal (Vaswani et al. 2017), added to the token embeddings";
      break;
    case PositionalKind::learned:
      p.table = learned_.topRows(n);
      p.source = "learned absolute positions (a seeded table), added to the token embeddings";
      break;
    case PositionalKind::rope:
      p.rope_base = s.positional.rope_base;
      p.rope_fraction = s.positional.rope_fraction;
      p.rope_convention = s.positional.rope_convention;
      p.source = "RoPE: q and k rotated by position";
      break;
    case PositionalKind::alibi: p.source = "ALiBi: a linear distance penalty on the logits"; break;
    case PositionalKind::t5: p.source = "T5: a learned bias per distance bucket on the logits"; break;
    case PositionalKind::none: p.source = "no positional encoding"; break;
  }
  return p;
}

AttentionConfig attention_config(const Session& s) {
  AttentionConfig cfg;
  cfg.n_heads = s.model.n_heads;
  cfg.n_kv_heads = s.model.kv_heads();
  cfg.score = s.attention.score.kind;
  cfg.cosine_temperature = s.attention.score.cosine_temperature;
  cfg.normalizer = s.attention.normalizer.kind;
  cfg.temperature = s.attention.normalizer.temperature;
  cfg.sigmoid_bias_auto = s.attention.normalizer.sigmoid_bias_auto;
  cfg.sigmoid_bias = s.attention.normalizer.sigmoid_bias;
  cfg.dropout = s.attention.kernel.kind == KernelKind::exact ? s.attention.dropout : 0.0;
  cfg.sink = s.attention.sink.enabled && s.attention.normalizer.kind == NormalizerKind::softmax &&
             (s.attention.kernel.kind == KernelKind::exact || s.attention.kernel.kind == KernelKind::flash);
  cfg.sink_logit = s.attention.sink.logit;
  cfg.differential = s.attention.differential.enabled && s.attention.normalizer.kind == NormalizerKind::softmax &&
                     s.attention.kernel.kind == KernelKind::exact &&
                     (s.attention.score.kind == ScoreKind::scaled_dot || s.attention.score.kind == ScoreKind::dot);
  cfg.diff_lambda = s.attention.differential.lambda;
  cfg.kernel = s.attention.kernel;
  if (kernel_is_approximation(s.attention.kernel.kind)) {
    // approximations stand in for softmax(q.k / sqrt(d_head)): that is the reference they are measured against
    cfg.score = ScoreKind::scaled_dot;
    cfg.normalizer = NormalizerKind::softmax;
    cfg.temperature = 1.0;
  }
  cfg.mask = s.attention.mask;
  cfg.score_mod_set = !s.attention.score_mod.expression.empty() && !kernel_is_approximation(s.attention.kernel.kind);
  cfg.positional = s.positional;
  cfg.seed = s.model.seed;
  return cfg;
}

Outcome Engine::compute(const Session& s, const CancelFlag* cancel, ComputeOptions options) {
  const auto t0 = std::chrono::steady_clock::now();
  Outcome out;
  // long sequences: the attention field, where it covers the session (dense matrices would be n^2)
  if (!options.dense && field_supports(attention_config(s))) {
    Validation fv = validate(s, ComputePath::field);
    if (fv.ok() && static_cast<int>(std::max(fv.tokens.size(), fv.key_tokens.size())) > kDenseMaxTokens)
      return compute_as_field(s, std::move(fv), cancel, options, t0);
  }
  Validation v = validate(s);
  if (!v.ok()) {
    out.problems = std::move(v.problems);
    return out;
  }
  auto r = std::make_shared<Result>();
  r->session = s;
  r->tokens = std::move(v.tokens);
  r->key_tokens = std::move(v.key_tokens);
  r->d_head = s.d_head();

  AttentionConfig cfg = attention_config(s);
  cfg.tokens = &r->tokens;
  cfg.mask_expression = v.mask_expression;
  cfg.score_mod = v.score_mod;
  Matrix x = layer_input(s, r->tokens);  // the residual stream
  r->positions = positions_of(s, static_cast<int>(r->tokens.size()));
  // cross-attention: every layer attends to the context's embeddings (+ positions), the
  // "memory" of an encoder-decoder model (Vaswani et al. 2017, sec. 3.2.3)
  Matrix context, context_ln;
  if (s.context.enabled) {
    context = layer_input(s, r->key_tokens);
    if (s.model.block == BlockKind::pre_ln) context_ln = layer_norm(context);
    cfg.kv_input = s.model.block == BlockKind::pre_ln ? &context_ln : &context;
    cfg.key_tokens = &r->key_tokens;
  }
  r->layers.resize(s.model.n_layers);
  cfg.progress = options.progress;
  const float L = static_cast<float>(s.model.n_layers) + 0.25f;  // the last quarter: rollout and metrics
  for (int l = 0; l < s.model.n_layers; ++l) {
    cfg.layer = l;
    cfg.progress_from = float(l) / L;
    cfg.progress_to = float(l + 1) / L;
    LayerResult& layer = r->layers[l];
    if (s.model.block == BlockKind::attention) {
      if (!attention_layer(x, weights(s, l), cfg, layer, cancel)) return out.cancelled = true, out;
      x = layer.output;
    } else {
      // pre-LN block (Xiong et al. 2020): x + MHA(LN(x)), then x + FFN(LN(x))
      if (!attention_layer(layer_norm(x), weights(s, l), cfg, layer, cancel)) return out.cancelled = true, out;
      layer.input = x;
      x += layer.attention_output;
      x += attnlab::ffn(layer_norm(x), ffn(s, l));
      layer.output = x;
    }
  }
  if (cancel_requested(cancel)) return out.cancelled = true, out;
  add_analyses(*r, !s.context.enabled, s.analysis.rollout_residual, options.metrics, s.analysis.sink_tokens);
  if (options.progress) options.progress->store(1.0f);
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

Outcome Engine::compute_as_field(const Session& s, Validation v, const CancelFlag* cancel, const ComputeOptions& options,
                                 std::chrono::steady_clock::time_point t0) {
  Outcome out;
  auto r = std::make_shared<Result>();
  r->session = s;
  r->d_head = s.d_head();
  // the head similarity after the layers: the last sixth of the progress bar (before the last
  // fifth when the whole rollout follows)
  const bool rollout = options.field_rollout && !s.context.enabled && v.tokens.size() <= std::size_t(kFieldRolloutMaxTokens);
  const float rollout_from = rollout ? 0.8f : 1.0f, layers_end = options.metrics ? 0.85f * rollout_from : rollout_from;
  FieldOptions field_opt = options.field;
  field_opt.sink_tokens = s.analysis.sink_tokens;
  if (!run_fields(s, v, s.model.n_layers - 1, true, field_opt, r->fields, out.problems, cancel, options.progress,
                  layers_end)) {
    out.cancelled = out.problems.empty();
    return out;
  }
  r->tokens = std::move(v.tokens);
  r->key_tokens = std::move(v.key_tokens);
  // the positional views show the table's first rows (the whole table is O(n d), as big as a layer)
  r->positions = positions_of(s, std::min(static_cast<int>(r->tokens.size()), kFieldPositionalRows));
  if (options.metrics && !add_field_metrics(*r, s.analysis.sink_tokens, cancel, options.progress, layers_end, rollout_from))
    return out.cancelled = true, out;
  if (rollout && !add_field_rollout(*r, cancel, options.progress, rollout_from, 1.0f)) return out.cancelled = true, out;
  r->compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  out.result = std::move(r);
  return out;
}

bool Engine::compute_field(const Session& s, int layer, const FieldOptions& opt, FieldRun& out,
                           std::vector<std::string>& problems, const CancelFlag* cancel, std::atomic<float>* progress) {
  Validation v = validate(s, ComputePath::field);
  if (!v.ok()) {
    problems = std::move(v.problems);
    return false;
  }
  if (layer < 0 || layer >= s.model.n_layers) {
    problems.push_back("layer " + std::to_string(layer) + " out of range (the session has " + std::to_string(s.model.n_layers) + ")");
    return false;
  }
  std::vector<FieldLayer> fields;
  if (!run_fields(s, v, layer, false, opt, fields, problems, cancel, progress)) return false;
  out.tokens = std::move(v.tokens);
  out.key_tokens = std::move(v.key_tokens);
  out.layer = layer;
  out.field = std::move(fields.back());
  return true;
}

bool Engine::run_fields(const Session& s, Validation& v, int last, bool keep_all, const FieldOptions& opt,
                        std::vector<FieldLayer>& out, std::vector<std::string>& problems, const CancelFlag* cancel,
                        std::atomic<float>* progress, float progress_end) {
  AttentionConfig cfg = attention_config(s);
  if (!field_supports(cfg)) {
    problems.push_back("the attention field covers the scaled_dot and dot scores, softmax (a learned sink too), no "
                       "dropout, no score modifier or differential attention, the exact and flash kernels and every mask but lsh; this session needs the dense path (at most " +
                       std::to_string(kMaxTokens) + " tokens)");
    return false;
  }
  const int n = static_cast<int>(v.tokens.size());
  const int n_k = s.context.enabled ? static_cast<int>(v.key_tokens.size()) : n;
  // what it costs: O(n d) buffers per layer alive at once (every layer's when all are kept), and
  // the allowed cells' arithmetic
  cfg.mask_expression = v.mask_expression;
  // one rule serves every layer (an expression's is every cell evaluated once)
  // (an expression's evaluates the formula once: the first tenth of the progress, and a cancel point)
  const bool expression = cfg.mask.kind == MaskKind::expression;
  cfg.field_rule = std::make_shared<const MaskRule>(cfg.mask, n, n_k, s.context.enabled ? &v.key_tokens : &v.tokens,
                                                    cfg.seed, cfg.mask_expression, 0, cancel, progress, 0.1f);
  if (cfg.field_rule->cancelled()) return false;
  const float progress_start = expression ? 0.1f : 0.0f;
  const MaskRule& rule = *cfg.field_rule;
  const double d = s.model.d_model, kv = double(s.model.kv_heads()) * s.d_head();
  const double per_layer = 4.0 * (double(n) * d * 3 + double(n_k) * 2 * d) +
                           double(s.model.n_heads) * (2.0 * 4 * opt.overview * opt.overview);
  const double bytes = 4.0 * (double(n) * d * 3 + double(n_k) * (2 * kv + kv * 2)) + 4.0 * 4 * d * d +
                       per_layer * (keep_all ? last + 1 : 1);
  const double flops = double(last + 1) * (8.0 * n * d * d + 4.0 * double(rule.allowed_cells()) * s.d_head() * s.model.n_heads);
  const double seconds = flops / 40e9;  // a conservative rate for these 2 cores
  // above the budget, q and k as F16 save 2 bytes a number; refused only when even that does not fit
  const double half_saving = 2.0 * (double(n) * d + double(n_k) * d) * (keep_all ? last + 1 : 1);
  FieldOptions o = opt;
  char buf[360];
  if (bytes > memory_budget_bytes()) {
    if (bytes - half_saving > memory_budget_bytes()) {
      std::snprintf(buf, sizeof buf, "%d tokens need about %s for the field of %d layer%s, with q and k as F16; the memory budget is %s (use fewer tokens or layers, or a smaller d_model)",
                    n, human_bytes(bytes - half_saving).c_str(), keep_all ? last + 1 : 1, keep_all && last ? "s" : "",
                    human_bytes(memory_budget_bytes()).c_str());
      problems.push_back(buf);
      return false;
    }
    o.half_qk = true;
  }
  if (seconds > 10 * kMaxComputeSeconds) {
    std::snprintf(buf, sizeof buf, "the field up to layer %d needs about %.3g TFLOP, about %.0f s on this machine; the limit is %.0f s (use a sparser mask, fewer tokens or an earlier layer)",
                  last, flops / 1e12, seconds, 10 * kMaxComputeSeconds);
    problems.push_back(buf);
    return false;
  }
  cfg.tokens = &v.tokens;
  Matrix x = layer_input(s, v.tokens), context, context_ln;
  if (s.context.enabled) {
    context = layer_input(s, v.key_tokens);
    if (s.model.block == BlockKind::pre_ln) context_ln = layer_norm(context);
    cfg.kv_input = s.model.block == BlockKind::pre_ln ? &context_ln : &context;
    cfg.key_tokens = &v.key_tokens;
  }
  cfg.progress = progress;
  out.clear();
  for (int l = 0; l <= last; ++l) {
    cfg.layer = l;
    cfg.progress_from = progress_start + (progress_end - progress_start) * float(l) / float(last + 1);
    cfg.progress_to = progress_start + (progress_end - progress_start) * float(l + 1) / float(last + 1);
    FieldLayer f;
    const bool pre = s.model.block == BlockKind::pre_ln;
    if (!field_layer(pre ? layer_norm(x) : x, weights(s, l), cfg, o, f, cancel)) return false;
    if (l < last) {
      if (pre) {
        x += f.output;
        x += attnlab::ffn(layer_norm(x), ffn(s, l));
      } else {
        x = f.output;
      }
    }
    if (keep_all || l == last) out.push_back(std::move(f));
  }
  if (progress) progress->store(progress_end);
  return !cancel_requested(cancel);
}

bool add_field_metrics(Result& r, int sink_tokens, const CancelFlag* cancel, std::atomic<float>* progress,
                       float progress_from, float progress_to) {
  r.metrics = field_metrics(r.fields);
  // the head-similarity matrix from exact tiles, over a bounded sample of rows at length
  for (std::size_t l = 0; l < r.fields.size(); ++l) {
    long rows = 0;
    r.metrics[l].sink_tokens = sink_tokens;
    r.metrics[l].head_similarity = field_head_similarity(r.fields[l], kFieldSimilarityCells, &rows, cancel);
    if (cancel_requested(cancel)) return false;
    r.metrics[l].similarity_rows = rows;
    if (progress) progress->store(progress_from + (progress_to - progress_from) * float(l + 1) / float(r.fields.size()));
  }
  return true;
}

std::string field_rollout_refusal(const Result& r) {
  if (!r.is_field() || !r.key_tokens.empty()) return "rollout is for self-attention";
  const double n = double(r.tokens.size());
  if (n > kFieldRolloutMaxTokens)
    return "above " + std::to_string(kFieldRolloutMaxTokens) + " tokens the n x n rollout is not kept";
  // every layer's rollout, and the layer's A and the product being built
  const double need = 4.0 * n * n * double(r.fields.size() + 2);
  if (need + r.bytes() > memory_budget_bytes())
    return "the n x n rollout of every layer (" + human_bytes(need) + ") does not fit the memory budget of " +
           human_bytes(memory_budget_bytes()) + " beside the field";
  return "";
}

bool add_field_rollout(Result& r, const CancelFlag* cancel, std::atomic<float>* progress, float progress_from,
                       float progress_to) {
  if (!field_rollout_refusal(r).empty()) return true;
  r.rollout = field_rollout(r.fields, r.session.analysis.rollout_residual, cancel, progress, progress_from, progress_to);
  return !cancel_requested(cancel);
}

std::vector<LayerMetrics> field_metrics(const std::vector<FieldLayer>& fields) {
  std::vector<LayerMetrics> out;
  for (const FieldLayer& f : fields) {
    LayerMetrics m;
    for (const HeadField& h : f.heads) {
      const FieldMetrics& fm = h.metrics;
      m.heads.push_back({fm.entropy, fm.entropy_normalized, fm.mean_distance, fm.max_weight, fm.first_token, fm.density,
                         fm.sink_mass});
    }
    out.push_back(std::move(m));
  }
  return out;
}

int Result::n_heads() const {
  if (is_field()) return static_cast<int>(fields[0].heads.size());
  return layers.empty() ? 0 : static_cast<int>(layers[0].heads.size());
}

double Result::bytes() const {
  auto m = [](const Matrix& x) { return 4.0 * double(x.size()); };
  double b = 0;
  for (const FieldLayer& L : fields) {
    b += m(L.output);
    for (const HeadField& f : L.heads)
      b += field_qk_bytes(f) + m(f.v) + m(f.output) + m(f.overview_max) + m(f.overview_mean) + 12.0 * f.row_lse.size();
  }
  for (const LayerResult& L : layers) {
    b += m(L.input) + m(L.attention_input) + m(L.attention_output) + m(L.output);
    for (const HeadResult& h : L.heads)
      b += m(h.q) + m(h.k) + m(h.v) + m(h.logits) + m(h.weights) + m(h.output) + (h.allowed ? double(h.allowed->size()) : 0.0);
  }
  for (const Matrix& x : rollout) b += m(x);
  return b;
}

int Result::kv_head(int layer, int head) const {
  return is_field() ? fields.at(layer).heads.at(head).kv_head : layers.at(layer).heads.at(head).kv_head;
}

void add_analyses(Result& r, bool rollout, bool residual, bool metrics, int sink_tokens) {
  std::vector<Matrix> mean_weights;
  for (const LayerResult& layer : r.layers) {
    Matrix m = Matrix::Zero(layer.heads[0].weights.rows(), layer.heads[0].weights.cols());
    for (const HeadResult& h : layer.heads) m += h.weights;
    mean_weights.push_back(m / static_cast<float>(layer.heads.size()));
  }
  if (rollout) r.rollout = attention_rollout(mean_weights, residual);
  if (!metrics) return;
  for (const LayerResult& layer : r.layers) {
    LayerMetrics m;
    for (const HeadResult& h : layer.heads) m.heads.push_back(head_metrics(h, sink_tokens));
    m.sink_tokens = sink_tokens;
    m.head_similarity = head_similarity(layer.heads);
    r.metrics.push_back(std::move(m));
  }
}

Outcome compute(const Session& s) {
  Engine e;
  return e.compute(s);
}

}  // namespace attnlab
