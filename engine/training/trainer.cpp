#include "training/trainer.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/files.hpp"

namespace attnlab::train {

namespace {
constexpr int kRepeatedProbes = 16;  // sequences the scores average over

// sequences b0 .. b0 + count - 1 of a batch: evaluation runs in pieces of the training batch's
// size, so that its attention cache is never larger than training's (64 validation sequences of
// 1024 tokens at once held 8.6 GB of weights)
Batch slice(const Batch& all, int b0, int count) {
  Batch out;
  out.size = count, out.length = all.length;
  const auto from = static_cast<std::ptrdiff_t>(b0) * all.length, to = from + static_cast<std::ptrdiff_t>(count) * all.length;
  out.ids.assign(all.ids.begin() + from, all.ids.begin() + to);
  out.targets.assign(all.targets.begin() + from, all.targets.begin() + to);
  out.weight.assign(all.weight.begin() + from, all.weight.begin() + to);
  return out;
}
}  // namespace

Trainer::Trainer(const TrainSpec& spec, Task task) : spec_(spec), task_(std::move(task)), model_(spec.model) {}

std::unique_ptr<Trainer> Trainer::make(const TrainSpec& spec_in, std::string& error) {
  Task task;
  if (!Task::make(spec_in.task, task, error)) return nullptr;
  TrainSpec spec = spec_in;
  spec.model.vocab = task.vocab();
  spec.model.context = task.length();
  if (!check_spec(spec.model, error)) {
    error = "model: " + error;
    return nullptr;
  }
  // the attention weights kept for the backward pass: layers x batch x heads x T x T floats
  const double attn_bytes = 4.0 * spec.model.n_layers * spec.training.batch * spec.model.n_heads * task.length() * task.length();
  if (attn_bytes > 4e9) {
    error = "training: batch (" + std::to_string(spec.training.batch) + ") x heads x length^2 x layers needs " +
            std::to_string(static_cast<long long>(attn_bytes / 1e9)) + " GB of attention weights (at most 4 GB)";
    return nullptr;
  }
  auto t = std::unique_ptr<Trainer>(new Trainer(spec, std::move(task)));
  t->model_.init(spec.training.seed);
  t->m_.zeros_like(t->model_.params);
  t->v_.zeros_like(t->model_.params);
  t->task_.validation(spec.training.val_sequences, t->val_);
  t->task_.repeated_probe(kRepeatedProbes, t->repeated_);
  return t;
}

double Trainer::lr_at(int step) const {
  const TrainingOptions& o = spec_.training;
  if (o.warmup > 0 && step < o.warmup) return o.lr * (step + 1) / o.warmup;
  const double span = std::max(1.0, o.steps - o.warmup);
  const double progress = std::clamp((step - o.warmup) / span, 0.0, 1.0);
  const double lo = o.lr * o.min_lr_ratio;
  return lo + 0.5 * (o.lr - lo) * (1.0 + std::cos(M_PI * progress));
}

void Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainingOptions& o = spec_.training;
  task_.sample(o.seed, static_cast<std::uint64_t>(step_) * o.batch, o.batch, batch_);
  const Metrics m = model_.forward(batch_, cache_);
  model_.backward(batch_, cache_, grad_);
  // global norm clipping
  double norm2 = 0;
  grad_.each([&](const std::string&, const Mat<float>& g) { norm2 += g.cast<double>().squaredNorm(); });
  const double norm = std::sqrt(norm2);
  const float clip = o.clip > 0 && norm > o.clip ? static_cast<float>(o.clip / norm) : 1.0f;
  // AdamW: decoupled weight decay on matrices (embeddings included), not on gains and biases
  const double lr = lr_at(step_);
  const int t = step_ + 1;
  const double c1 = 1.0 - std::pow(o.beta1, t), c2 = 1.0 - std::pow(o.beta2, t);
  std::vector<Mat<float>*> ps, gs, ms, vs;
  model_.params.each([&](const std::string&, Mat<float>& x) { ps.push_back(&x); });
  grad_.each([&](const std::string&, Mat<float>& x) { gs.push_back(&x); });
  m_.each([&](const std::string&, Mat<float>& x) { ms.push_back(&x); });
  v_.each([&](const std::string&, Mat<float>& x) { vs.push_back(&x); });
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    Mat<float>& p = *ps[i];
    const bool decay = p.rows() > 1;
    const float wd = decay ? static_cast<float>(o.weight_decay) : 0.0f;
    float* pd = p.data();
    const float* gd = gs[i]->data();
    float* md = ms[i]->data();
    float* vd = vs[i]->data();
    const Eigen::Index n = p.size();
    const float flr = static_cast<float>(lr), fc1 = static_cast<float>(c1), fc2 = static_cast<float>(c2);
    const float eps = static_cast<float>(o.eps);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (Eigen::Index j = 0; j < n; ++j) {
      const float g = gd[j] * clip;
      md[j] = b1 * md[j] + (1 - b1) * g;
      vd[j] = b2 * vd[j] + (1 - b2) * g * g;
      const float mh = md[j] / fc1, vh = vd[j] / fc2;
      pd[j] -= flr * (mh / (std::sqrt(vh) + eps) + wd * pd[j]);
    }
  }
  last_loss_ = m.loss, last_accuracy_ = m.accuracy, last_norm_ = norm;
  ++step_;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Trainer::scores(const Params<float>& params, std::vector<double>& induction, std::vector<double>& prev,
                     Cache<float>* scratch) const {
  Model<float> m(spec_.model);
  m.params = params;
  const int L = spec_.model.n_layers, H = spec_.model.n_heads, T = repeated_.length, B = repeated_.size;
  const int half = (T + 2) / 2, chunk = std::max(1, spec_.training.batch);
  std::vector<double> ind(static_cast<std::size_t>(L) * H, 0.0), pt(ind.size(), 0.0);
  Cache<float> local;
  Cache<float>& c = scratch ? *scratch : local;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const Batch part = slice(repeated_, b0, std::min(chunk, B - b0));
    m.forward(part, c);
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h)
        for (int b = 0; b < part.size; ++b) {
          const Mat<float>& P = c.layers[l].p[static_cast<std::size_t>(b) * H + h];
          for (int i = half; i < T; ++i) ind[l * H + h] += P(i, i - half + 1);
          for (int i = 1; i < T; ++i) pt[l * H + h] += P(i, i - 1);
        }
  }
  induction.resize(ind.size()), prev.resize(ind.size());
  for (std::size_t k = 0; k < ind.size(); ++k) {
    induction[k] = ind[k] / (static_cast<double>(B) * (T - half));
    prev[k] = pt[k] / (static_cast<double>(B) * (T - 1));
  }
}

const LogRow& Trainer::evaluate() {
  LogRow row;
  row.step = step_;
  row.lr = lr_at(std::max(0, step_ - 1));
  row.train_loss = last_loss_, row.train_accuracy = last_accuracy_, row.grad_norm = last_norm_;
  Cache<float>& c = cache_;  // training's buffers, free between steps: no second set
  Metrics v;  // the weighted means over every piece
  const int chunk = std::max(1, spec_.training.batch);
  for (int b0 = 0; b0 < val_.size; b0 += chunk) {
    const Metrics part = model_.forward(slice(val_, b0, std::min(chunk, val_.size - b0)), c);
    v.loss += part.loss * part.weight, v.accuracy += part.accuracy * part.weight, v.weight += part.weight;
  }
  if (v.weight > 0) v.loss /= v.weight, v.accuracy /= v.weight;
  if (step_ == 0) row.train_loss = v.loss, row.train_accuracy = v.accuracy;  // nothing trained yet
  row.val_loss = v.loss, row.val_accuracy = v.accuracy;
  scores(model_.params, row.induction, row.prev_token, &cache_);
  row.seconds = seconds_;
  log_.push_back(std::move(row));
  return log_.back();
}

void Trainer::keep_checkpoint() {
  if (!checkpoints_.empty() && checkpoints_.back().step == step_) return;
  checkpoints_.push_back({step_, model_.params});
}

void Trainer::run(const std::atomic<bool>* cancel, const std::function<void(const LogRow&)>& progress,
                  bool stop_at_phase_change) {
  const TrainingOptions& o = spec_.training;
  if (log_.empty()) {
    evaluate();
    keep_checkpoint();
    if (progress) progress(log_.back());
  }
  while (!done() && !(cancel && cancel->load())) {
    train_step();
    bool changed = false;
    if (step_ % o.eval_every == 0 || done()) {
      evaluate();
      if (progress) progress(log_.back());
      changed = stop_at_phase_change && phase_change_step() >= 0;
    }
    if (step_ % o.checkpoint_every == 0 || done() || changed) keep_checkpoint();
    if (changed) break;
  }
}

ProbeAttention Trainer::probe(const Params<float>& params) const {
  Batch b;
  task_.probe(b);
  Model<float> m(spec_.model);
  m.params = params;
  Cache<float> c;
  m.forward(b, c);
  ProbeAttention out;
  out.ids = b.ids;
  for (int id : b.ids) out.tokens.push_back(task_.tokens()[static_cast<std::size_t>(id)]);
  out.weights.resize(spec_.model.n_layers);
  for (int l = 0; l < spec_.model.n_layers; ++l) out.weights[l] = c.layers[l].p;
  return out;
}

int Trainer::phase_change_step() const {
  if (log_.empty()) return -1;
  std::size_t first = 0;
  while (first + 1 < log_.size() && log_[first].step < spec_.training.warmup) ++first;
  const double plateau = log_[first].val_loss;
  const int L = spec_.model.n_layers, H = spec_.model.n_heads, layer = std::min(1, L - 1);
  for (std::size_t i = first; i < log_.size(); ++i) {
    double best = 0;
    for (int h = 0; h < H; ++h) best = std::max(best, log_[i].induction[static_cast<std::size_t>(layer * H + h)]);
    if (log_[i].val_loss < 0.5 * plateau && best > 0.5) return log_[i].step;
  }
  return -1;
}

double Trainer::flops_per_step() const {
  const ModelSpec& s = spec_.model;
  const double N = static_cast<double>(spec_.training.batch) * task_.length(), T = task_.length();
  const double d = s.d_model, kv = s.d_kv(), f = s.ff(), V = s.vocab;
  double per_token = 2 * d * (d + 2 * kv + d);  // q, k, v, o
  if (s.mlp) per_token += 2 * 2 * d * f;
  per_token *= s.n_layers;
  per_token += 2 * d * V;                                  // unembedding
  const double attention = s.n_layers * 2.0 * 2 * T * s.d_model;  // q k^T and p v per token (T keys, all heads)
  return 3.0 * N * (per_token + attention);               // forward, and twice it backward
}

std::string Trainer::log_csv() const {
  std::ostringstream o;
  o.precision(7);
  o << "step,lr,train_loss,train_accuracy,val_loss,val_accuracy,grad_norm,seconds";
  const int L = spec_.model.n_layers, H = spec_.model.n_heads;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) o << ",induction_score_l" << l << "h" << h;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) o << ",prev_token_score_l" << l << "h" << h;
  o << "\n";
  for (const LogRow& r : log_) {
    o << r.step << "," << r.lr << "," << r.train_loss << "," << r.train_accuracy << "," << r.val_loss << ","
      << r.val_accuracy << "," << r.grad_norm << "," << r.seconds;
    for (double v : r.induction) o << "," << v;
    for (double v : r.prev_token) o << "," << v;
    o << "\n";
  }
  return o.str();
}

bool Trainer::hf_layout(std::string& family, std::string& why) const {
  const ModelSpec& s = spec_.model;
  if (s.norm != AttnNorm::softmax) {
    why = "sigmoid attention has no Hugging Face family";
    return false;
  }
  if (s.mask != MaskRule::causal) {
    why = "a sliding window has no Hugging Face family with LayerNorm and GELU blocks (Mistral's are RMSNorm and SwiGLU)";
    return false;
  }
  if (s.pos == PosKind::alibi || s.pos == PosKind::t5) {
    why = std::string(s.pos == PosKind::alibi ? "ALiBi" : "T5 relative") + " positions have no decoder-only Hugging Face family attnlab reads";
    return false;
  }
  family = s.pos == PosKind::rope ? "gpt_neox" : "gpt2";
  if (family == "gpt_neox" && s.mlp) {
    why = "GPT-NeoX's MLP uses exact GELU; this model's uses GPT-2's tanh form";
    return false;
  }
  return true;
}

namespace {

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> data;
};
Tensor tensor(const std::string& name, const Mat<float>& m, bool vector = false) {
  Tensor t{name, {}, std::vector<float>(m.data(), m.data() + m.size())};
  if (vector) t.shape = {m.size()};
  else t.shape = {m.rows(), m.cols()};
  return t;
}
Tensor transposed(const std::string& name, const Mat<float>& m) {  // a Linear's (out, in)
  return tensor(name, Mat<float>(m.transpose()));
}

bool write_safetensors(const std::string& path, const std::vector<Tensor>& tensors, const nlohmann::json& metadata,
                       std::string& error) {
  nlohmann::json header = nlohmann::json::object();
  std::size_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::size_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = metadata;
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  return write_file_atomic(
      path,
      [&](const Put& put) {
        std::uint64_t n = text.size();
        char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
        if (!put(std::string_view(len, 8)) || !put(text)) return false;
        for (const Tensor& t : tensors)
          if (!put(std::string_view(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float))))
            return false;
        return true;
      },
      error);
}

// WordLevel over the task's tokens: whitespace-separated symbols, or every character of a text
nlohmann::json tokenizer_json(const Task& task) {
  nlohmann::json vocab = nlohmann::json::object();
  for (std::size_t i = 0; i < task.tokens().size(); ++i) vocab[task.tokens()[i]] = i;
  nlohmann::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = {{{"id", task.vocab() - 1}, {"content", "<unk>"}, {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", false}, {"special", true}}};
  j["normalizer"] = nullptr;
  if (task.spec().kind == TaskKind::text)
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "[\\s\\S]"}}}, {"behavior", "Isolated"}, {"invert", false}};
  else
    j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  j["post_processor"] = nullptr;
  j["decoder"] = nullptr;
  j["model"] = {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}};
  return j;
}

}  // namespace

bool Trainer::save(const std::string& dir, std::string& error) const { return save(dir, model_.params, error); }

bool Trainer::save(const std::string& dir, const Params<float>& p, std::string& error) const {
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    error = dir + ": " + std::strerror(errno);
    return false;
  }
  const std::string at = dir + "/";
  if (!write_file_atomic(at + "train_log.csv", log_csv(), error) ||
      !write_file_atomic(at + "task.json", train_spec_json(spec_).dump(2) + "\n", error))
    return false;
  std::string family, why;
  if (!hf_layout(family, why)) {
    error = "the model cannot be saved in the Hugging Face layout: " + why + " (train_log.csv and task.json were written)";
    return false;
  }
  const ModelSpec& s = spec_.model;
  const int d = s.d_model, H = s.n_heads, dh = s.d_head(), rep = s.n_heads / s.n_kv_heads, T = task_.length();
  const int f = s.mlp ? s.ff() : 1;  // attention-only: a zero MLP of width 1 (it adds exactly 0)
  // k and v of every query head (a GQA / MQA group's shared head repeated): MHA, the same function
  auto full_heads = [&](const Mat<float>& w) {
    Mat<float> out(w.rows(), d);
    for (int h = 0; h < H; ++h) out.middleCols(h * dh, dh) = w.middleCols((h / rep) * dh, dh);
    return out;
  };
  std::vector<Tensor> ts;
  nlohmann::json config;
  const Mat<float> zero_fc = Mat<float>::Zero(d, f), zero_fcb = Mat<float>::Zero(1, f), zero_proj = Mat<float>::Zero(f, d);
  const Mat<float> zero_d = Mat<float>::Zero(1, d), ones_d = Mat<float>::Ones(1, d);
  if (family == "gpt2") {
    Mat<float> wpe = Mat<float>::Zero(T, d);
    if (s.pos == PosKind::learned) wpe = p.wpe;
    if (s.pos == PosKind::sinusoidal) {
      Model<float> m(s);  // its table, through the forward pass of a zero model
      Batch b;
      b.size = 1, b.length = T, b.ids.assign(T, 0), b.targets.assign(T, 0), b.weight.assign(T, 0.0f);
      m.params.wte.setZero();
      Cache<float> c;
      m.forward(b, c);
      wpe = c.x0;
    }
    ts.push_back(tensor("wte.weight", p.wte));
    ts.push_back(tensor("wpe.weight", wpe));
    for (int l = 0; l < s.n_layers; ++l) {
      const LayerParams<float>& L = p.layers[l];
      const std::string n = "h." + std::to_string(l) + ".";
      Mat<float> w(d, 3 * d), b(1, 3 * d);
      w << L.wq, full_heads(L.wk), full_heads(L.wv);
      b << L.bq, full_heads(L.bk), full_heads(L.bv);
      ts.push_back(tensor(n + "ln_1.weight", L.ln1_g, true));
      ts.push_back(tensor(n + "ln_1.bias", L.ln1_b, true));
      ts.push_back(tensor(n + "attn.c_attn.weight", w));
      ts.push_back(tensor(n + "attn.c_attn.bias", b, true));
      ts.push_back(tensor(n + "attn.c_proj.weight", L.wo));
      ts.push_back(tensor(n + "attn.c_proj.bias", L.bo, true));
      ts.push_back(tensor(n + "ln_2.weight", s.mlp ? L.ln2_g : ones_d, true));
      ts.push_back(tensor(n + "ln_2.bias", s.mlp ? L.ln2_b : zero_d, true));
      ts.push_back(tensor(n + "mlp.c_fc.weight", s.mlp ? L.fc : zero_fc));
      ts.push_back(tensor(n + "mlp.c_fc.bias", s.mlp ? L.fc_b : zero_fcb, true));
      ts.push_back(tensor(n + "mlp.c_proj.weight", s.mlp ? L.proj : zero_proj));
      ts.push_back(tensor(n + "mlp.c_proj.bias", s.mlp ? L.proj_b : zero_d, true));
    }
    ts.push_back(tensor("ln_f.weight", p.lnf_g, true));
    ts.push_back(tensor("ln_f.bias", p.lnf_b, true));
    config = {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"vocab_size", s.vocab},
              {"n_positions", T}, {"n_ctx", T}, {"n_embd", d}, {"n_layer", s.n_layers}, {"n_head", H},
              {"n_inner", f}, {"activation_function", "gelu_new"}, {"layer_norm_epsilon", 1e-5},
              {"resid_pdrop", 0.0}, {"embd_pdrop", 0.0}, {"attn_pdrop", 0.0}, {"tie_word_embeddings", true},
              {"scale_attn_weights", true}, {"bos_token_id", s.vocab - 1}, {"eos_token_id", s.vocab - 1}};
  } else {  // gpt_neox: RoPE on the whole head, sequential residual, attention-only
    ts.push_back(tensor("gpt_neox.embed_in.weight", p.wte));
    for (int l = 0; l < s.n_layers; ++l) {
      const LayerParams<float>& L = p.layers[l];
      const std::string n = "gpt_neox.layers." + std::to_string(l) + ".";
      const Mat<float> wk = full_heads(L.wk), wv = full_heads(L.wv), bk = full_heads(L.bk), bv = full_heads(L.bv);
      Mat<float> w(3 * d, d), b(1, 3 * d);  // (out, in), per head [q_h | k_h | v_h]
      for (int h = 0; h < H; ++h) {
        w.middleRows((3 * h + 0) * dh, dh) = L.wq.middleCols(h * dh, dh).transpose();
        w.middleRows((3 * h + 1) * dh, dh) = wk.middleCols(h * dh, dh).transpose();
        w.middleRows((3 * h + 2) * dh, dh) = wv.middleCols(h * dh, dh).transpose();
        b.middleCols((3 * h + 0) * dh, dh) = L.bq.middleCols(h * dh, dh);
        b.middleCols((3 * h + 1) * dh, dh) = bk.middleCols(h * dh, dh);
        b.middleCols((3 * h + 2) * dh, dh) = bv.middleCols(h * dh, dh);
      }
      ts.push_back(tensor(n + "input_layernorm.weight", L.ln1_g, true));
      ts.push_back(tensor(n + "input_layernorm.bias", L.ln1_b, true));
      ts.push_back(tensor(n + "post_attention_layernorm.weight", ones_d, true));
      ts.push_back(tensor(n + "post_attention_layernorm.bias", zero_d, true));
      ts.push_back(tensor(n + "attention.query_key_value.weight", w));
      ts.push_back(tensor(n + "attention.query_key_value.bias", b, true));
      ts.push_back(transposed(n + "attention.dense.weight", L.wo));
      ts.push_back(tensor(n + "attention.dense.bias", L.bo, true));
      ts.push_back(transposed(n + "mlp.dense_h_to_4h.weight", zero_fc));
      ts.push_back(tensor(n + "mlp.dense_h_to_4h.bias", zero_fcb, true));
      ts.push_back(transposed(n + "mlp.dense_4h_to_h.weight", zero_proj));
      ts.push_back(tensor(n + "mlp.dense_4h_to_h.bias", zero_d, true));
    }
    ts.push_back(tensor("gpt_neox.final_layer_norm.weight", p.lnf_g, true));
    ts.push_back(tensor("gpt_neox.final_layer_norm.bias", p.lnf_b, true));
    ts.push_back(tensor("embed_out.weight", p.wte));
    config = {{"model_type", "gpt_neox"}, {"architectures", {"GPTNeoXForCausalLM"}}, {"vocab_size", s.vocab},
              {"hidden_size", d}, {"num_hidden_layers", s.n_layers}, {"num_attention_heads", H},
              {"intermediate_size", f}, {"max_position_embeddings", T}, {"rotary_pct", 1.0},
              {"rotary_emb_base", s.rope_base}, {"use_parallel_residual", false}, {"hidden_act", "gelu"},
              {"layer_norm_eps", 1e-5}, {"attention_bias", true}, {"tie_word_embeddings", false},
              {"hidden_dropout", 0.0}, {"attention_dropout", 0.0},
              {"bos_token_id", s.vocab - 1}, {"eos_token_id", s.vocab - 1}};
  }
  config["attnlab_training"] = train_spec_json(spec_);
  nlohmann::json tok_config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"unk_token", "<unk>"},
                               {"model_max_length", T}, {"clean_up_tokenization_spaces", false}};
  return write_safetensors(at + "model.safetensors", ts, {{"format", "pt"}, {"written_by", "attnlab train"}}, error) &&
         write_file_atomic(at + "config.json", config.dump(2) + "\n", error) &&
         write_file_atomic(at + "tokenizer.json", tokenizer_json(task_).dump(2) + "\n", error) &&
         write_file_atomic(at + "tokenizer_config.json", tok_config.dump(2) + "\n", error);
}

}  // namespace attnlab::train
