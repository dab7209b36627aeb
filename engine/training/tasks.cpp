#include "training/tasks.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/rng.hpp"
#include "core/utf8.hpp"
#include "training_text.hpp"

namespace attnlab::train {

const char* task_name(TaskKind k) {
  switch (k) {
    case TaskKind::copy: return "copy";
    case TaskKind::reverse: return "reverse";
    case TaskKind::sort: return "sort";
    case TaskKind::induction: return "induction";
    case TaskKind::modular_addition: return "modular_addition";
    case TaskKind::parentheses: return "parentheses";
    case TaskKind::text: return "text";
  }
  return "?";
}
bool parse_task(const std::string& s, TaskKind& k) {
  for (TaskKind c : {TaskKind::copy, TaskKind::reverse, TaskKind::sort, TaskKind::induction, TaskKind::modular_addition,
                     TaskKind::parentheses, TaskKind::text})
    if (s == task_name(c)) return k = c, true;
  return false;
}

const std::string& builtin_text() {
  static const std::string text(kTrainingText);
  return text;
}

namespace {
// symbol names: single letters and digits while they last, then s62, s63, ...
std::string symbol_name(int i) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  if (i < 62) return std::string(1, kAlphabet[i]);
  return "s" + std::to_string(i);
}
// draw j of stream key as an integer in [0, n)
int draw(std::uint64_t key, std::uint64_t j, int n) {
  return std::min(n - 1, static_cast<int>(uniform(key, j) * n));
}
constexpr std::uint64_t kValidationSeed = 0x5EEDull << 32;  // a stream no training seed below 2^32 shares
}  // namespace

bool Task::make(const TaskSpec& spec, Task& t, std::string& error) {
  t = Task();
  t.spec_ = spec;
  auto bad = [&](const std::string& what) {
    error = std::string(task_name(spec.kind)) + ": " + what;
    return false;
  };
  const int T = spec.length;
  if (spec.kind != TaskKind::modular_addition && (T < 4 || T > 1024))
    return bad("length (" + std::to_string(T) + ") must be 4..1024");
  switch (spec.kind) {
    case TaskKind::copy:
    case TaskKind::reverse:
    case TaskKind::sort:
    case TaskKind::induction:
      if (spec.symbols < 2 || spec.symbols > 512) return bad("symbols (" + std::to_string(spec.symbols) + ") must be 2..512");
      if (spec.kind != TaskKind::induction && T % 2) return bad("length (" + std::to_string(T) + ") must be even: k symbols, '|', k symbols");
      for (int i = 0; i < spec.symbols; ++i) t.tokens_.push_back(symbol_name(i));
      if (spec.kind != TaskKind::induction) t.sep_ = static_cast<int>(t.tokens_.size()), t.tokens_.push_back("|");
      t.length_ = T;
      break;
    case TaskKind::modular_addition: {
      const int p = spec.modulus;
      if (p < 2 || p > 256) return bad("modulus (" + std::to_string(p) + ") must be 2..256");
      if (!(spec.train_fraction > 0.0 && spec.train_fraction < 1.0)) return bad("train_fraction must be in (0, 1)");
      for (int i = 0; i < p; ++i) t.tokens_.push_back(std::to_string(i));
      t.plus_ = p, t.equals_ = p + 1;
      t.tokens_.push_back("+"), t.tokens_.push_back("=");
      t.length_ = 4;  // a + b = -> c
      // pairs split by a fixed draw: the same held-out pairs for every seed
      const std::uint64_t key = stream_key(kValidationSeed, "train.task.pairs");
      for (int a = 0; a < p; ++a)
        for (int b = 0; b < p; ++b)
          (uniform(key, static_cast<std::uint64_t>(a) * p + b) < spec.train_fraction ? t.train_pairs_ : t.val_pairs_)
              .push_back({a, b});
      if (t.train_pairs_.empty() || t.val_pairs_.empty()) return bad("the modulus is too small to hold pairs out");
      break;
    }
    case TaskKind::parentheses:
      if (T % 2 == 0) return bad("length (" + std::to_string(T) + ") must be odd: a string of even length, then '='");
      t.open_ = 0, t.close_ = 1, t.equals_ = 2, t.yes_ = 3, t.no_ = 4;
      t.tokens_ = {"(", ")", "=", "yes", "no"};
      t.length_ = T;
      break;
    case TaskKind::text: {
      const std::string& text = spec.text.empty() ? builtin_text() : spec.text;
      if (const auto at = utf8_first_invalid(text))
        return bad(spec.text_name + " is not valid UTF-8 (at byte " + std::to_string(*at) + ")");
      std::vector<std::string> chars;
      for (const auto& cp : utf8_decode(text)) chars.push_back(text.substr(cp.begin, cp.end - cp.begin));
      if (chars.size() < static_cast<std::size_t>(4 * (T + 1)))
        return bad(spec.text_name + " has " + std::to_string(chars.size()) + " characters; length " + std::to_string(T) +
                   " needs at least " + std::to_string(4 * (T + 1)));
      std::set<std::string> unique(chars.begin(), chars.end());
      if (unique.size() > 4096) return bad(spec.text_name + " has " + std::to_string(unique.size()) + " distinct characters (at most 4096)");
      t.tokens_.assign(unique.begin(), unique.end());
      std::map<std::string, int> id;
      for (std::size_t i = 0; i < t.tokens_.size(); ++i) id[t.tokens_[i]] = static_cast<int>(i);
      for (const std::string& c : chars) t.text_ids_.push_back(id[c]);
      // the last tenth (at least two windows) is held out
      const std::size_t held = std::max<std::size_t>(chars.size() / 10, 2 * static_cast<std::size_t>(T + 1));
      t.text_split_ = chars.size() - held;
      t.length_ = T;
      break;
    }
  }
  // the symbols a random probe draws from, then the unknown token every tokenizer needs
  t.content_ = spec.kind == TaskKind::modular_addition ? spec.modulus
               : spec.kind == TaskKind::parentheses    ? 2
               : spec.kind == TaskKind::text           ? t.vocab()
                                                       : spec.symbols;
  t.tokens_.push_back("<unk>");
  return true;
}

void Task::sequence(std::uint64_t key, std::vector<int>& seq, std::vector<float>& w) const {
  const int T = length_;
  seq.assign(T + 1, 0);
  w.assign(T, 0.0f);
  std::uint64_t j = 0;
  switch (spec_.kind) {
    case TaskKind::copy:
    case TaskKind::reverse:
    case TaskKind::sort: {
      const int k = T / 2;
      std::vector<int> a(k);
      for (int& s : a) s = draw(key, j++, spec_.symbols);
      std::vector<int> b = a;
      if (spec_.kind == TaskKind::reverse) std::reverse(b.begin(), b.end());
      if (spec_.kind == TaskKind::sort) std::sort(b.begin(), b.end());
      std::copy(a.begin(), a.end(), seq.begin());
      seq[k] = sep_;
      std::copy(b.begin(), b.end(), seq.begin() + k + 1);
      for (int t = k; t < T; ++t) w[t] = 1.0f;  // targets seq[k + 1 ..]
      break;
    }
    case TaskKind::induction: {
      // a random segment of P symbols repeated through the sequence, P drawn from 4 .. T/2 + 1
      // for each sequence (a fixed period would be learnt as a position, not as induction)
      const int P = 4 + draw(key, j++, T / 2 - 2);
      for (int t = 0; t <= T; ++t) seq[t] = t < P ? draw(key, j++, spec_.symbols) : seq[t - P];
      for (int t = P; t < T; ++t) w[t] = 1.0f;  // target seq[t + 1] follows seq[t], seen at t - P
      break;
    }
    case TaskKind::modular_addition:
    case TaskKind::text:
      break;  // drawn from pairs / windows in sample() and validation()
    case TaskKind::parentheses: {
      const int k = T - 1;  // the string; then '=' at T - 1, the answer at T
      // half balanced (a random Dyck word), half a random string (balanced by chance or not)
      const bool want_balanced = uniform(key, j++) < 0.5;
      if (want_balanced) {
        int open_left = k / 2, depth = 0;
        for (int t = 0; t < k; ++t) {
          const bool can_open = open_left > 0, can_close = depth > 0;
          const bool open = can_open && (!can_close || uniform(key, j++) < 0.5);
          if (open) seq[t] = open_, --open_left, ++depth;
          else seq[t] = close_, --depth;
        }
      } else {
        for (int t = 0; t < k; ++t) seq[t] = uniform(key, j++) < 0.5 ? open_ : close_;
      }
      int depth = 0;
      bool ok = true;
      for (int t = 0; t < k; ++t) {
        depth += seq[t] == open_ ? 1 : -1;
        ok &= depth >= 0;
      }
      ok &= depth == 0;
      seq[k] = equals_;
      seq[T] = ok ? yes_ : no_;
      w[T - 1] = 1.0f;
      break;
    }
  }
}

namespace {
void put(Batch& out, int b, const std::vector<int>& seq, const std::vector<float>& w) {
  const int T = out.length;
  for (int t = 0; t < T; ++t) {
    out.ids[b * T + t] = seq[t];
    out.targets[b * T + t] = seq[t + 1];
    out.weight[b * T + t] = w[t];
  }
}
void shape(Batch& out, int count, int T) {
  out.size = count, out.length = T;
  out.ids.assign(static_cast<std::size_t>(count) * T, 0);
  out.targets.assign(out.ids.size(), 0);
  out.weight.assign(out.ids.size(), 0.0f);
}
}  // namespace

void Task::sample(std::uint64_t seed, std::uint64_t index0, int count, Batch& out) const {
  shape(out, count, length_);
  std::vector<int> seq;
  std::vector<float> w;
  for (int b = 0; b < count; ++b) {
    const std::uint64_t index = index0 + static_cast<std::uint64_t>(b);
    const std::uint64_t key = stream_key(seed, "train.task." + std::to_string(index));
    if (spec_.kind == TaskKind::modular_addition) {
      const auto& [a, c] = train_pairs_[static_cast<std::size_t>(draw(key, 0, static_cast<int>(train_pairs_.size())))];
      seq = {a, plus_, c, equals_, (a + c) % spec_.modulus};
      w = {0, 0, 0, 1};
    } else if (spec_.kind == TaskKind::text) {
      const int starts = static_cast<int>(text_split_) - length_;  // windows wholly before the split
      const int s = draw(key, 0, starts);
      seq.assign(text_ids_.begin() + s, text_ids_.begin() + s + length_ + 1);
      w.assign(length_, 1.0f);
    } else {
      sequence(key, seq, w);
    }
    put(out, b, seq, w);
  }
}

void Task::validation(int count, Batch& out) const {
  std::vector<int> seq;
  std::vector<float> w;
  if (spec_.kind == TaskKind::modular_addition) {  // every held-out pair, whatever count says
    shape(out, static_cast<int>(val_pairs_.size()), length_);
    for (std::size_t i = 0; i < val_pairs_.size(); ++i) {
      const auto& [a, c] = val_pairs_[i];
      put(out, static_cast<int>(i), {a, plus_, c, equals_, (a + c) % spec_.modulus}, {0, 0, 0, 1});
    }
    return;
  }
  if (spec_.kind == TaskKind::text) {  // consecutive windows of the held-out tail
    const int T = length_;
    const int room = static_cast<int>((text_ids_.size() - text_split_ - 1) / static_cast<std::size_t>(T));
    count = std::max(1, std::min(count, room));
    shape(out, count, T);
    for (int b = 0; b < count; ++b) {
      const std::size_t s = text_split_ + static_cast<std::size_t>(b) * T;
      seq.assign(text_ids_.begin() + static_cast<std::ptrdiff_t>(s), text_ids_.begin() + static_cast<std::ptrdiff_t>(s) + T + 1);
      put(out, b, seq, std::vector<float>(T, 1.0f));
    }
    return;
  }
  shape(out, count, length_);
  for (int b = 0; b < count; ++b) {
    sequence(stream_key(kValidationSeed, "train.task.validation." + std::to_string(b)), seq, w);
    put(out, b, seq, w);
  }
}

void Task::probe(Batch& out) const {
  Batch all;
  validation(1, all);
  shape(out, 1, length_);
  std::copy(all.ids.begin(), all.ids.begin() + length_, out.ids.begin());
  std::copy(all.targets.begin(), all.targets.begin() + length_, out.targets.begin());
  std::copy(all.weight.begin(), all.weight.begin() + length_, out.weight.begin());
}

void Task::repeated_probe(int count, Batch& out) const {
  const int T = length_, m = (T + 2) / 2;
  shape(out, count, T);
  const int V = content_;
  for (int b = 0; b < count; ++b) {
    const std::uint64_t key = stream_key(kValidationSeed, "train.task.repeated." + std::to_string(b));
    std::vector<int> seq(T + 1);
    for (int t = 0; t < m; ++t) seq[t] = draw(key, t, V);
    for (int t = m; t <= T; ++t) seq[t] = seq[t - m];
    std::vector<float> w(T, 0.0f);
    for (int t = m; t < T; ++t) w[t] = 1.0f;
    put(out, b, seq, w);
  }
}

std::string Task::describe() const {
  const int T = length_;
  switch (spec_.kind) {
    case TaskKind::copy: return "copy: " + std::to_string(T / 2) + " of " + std::to_string(spec_.symbols) + " symbols, '|', the same again";
    case TaskKind::reverse: return "reverse: " + std::to_string(T / 2) + " symbols, '|', them reversed";
    case TaskKind::sort: return "sort: " + std::to_string(T / 2) + " symbols, '|', them sorted";
    case TaskKind::induction:
      return "induction: a random segment of 4.." + std::to_string(T / 2 + 1) + " symbols of " +
             std::to_string(spec_.symbols) + " repeated; each repetition is predicted";
    case TaskKind::modular_addition:
      return "modular addition: a + b = (a + b) mod " + std::to_string(spec_.modulus) + ", " +
             std::to_string(train_pairs_.size()) + " pairs trained on, " + std::to_string(val_pairs_.size()) + " held out";
    case TaskKind::parentheses: return "balanced parentheses: " + std::to_string(T - 1) + " of ( and ), '=', yes or no";
    case TaskKind::text:
      return "characters of " + spec_.text_name + ": " + std::to_string(text_ids_.size()) + " characters, " +
             std::to_string(content_) + " distinct, the last tenth held out";
  }
  return "";
}

// --- task files ---------------------------------------------------------------------------------

namespace {
bool only_keys(const nlohmann::json& obj, std::initializer_list<const char*> keys, const std::string& where, std::string& error) {
  if (!obj.is_object()) {
    error = where + " must be an object, not " + json_excerpt(obj);
    return false;
  }
  for (const auto& [k, v] : obj.items()) {
    (void)v;
    bool known = false;
    for (const char* key : keys) known |= k == key;
    if (!known) {
      std::string list;
      for (const char* key : keys) list += std::string(list.empty() ? "" : ", ") + key;
      error = where + ": unknown key '" + utf8_sanitize(k) + "' (known: " + list + ")";
      return false;
    }
  }
  return true;
}
template <class E>
bool get_enum(const nlohmann::json& obj, const char* key, const std::string& where, std::string& error,
              bool (*parse)(const std::string&, E&), E& out, const char* allowed) {
  std::string s;
  if (!json_get(obj, key, s, error, where)) return false;
  if (s.empty()) return true;
  if (!parse(s, out)) {
    error = where + ": '" + key + "' must be " + allowed + ", not '" + utf8_sanitize(s) + "'";
    return false;
  }
  return true;
}
}  // namespace

bool read_train_spec(const nlohmann::json& j, const std::string& where, const std::string& base_dir, TrainSpec& out,
                     std::string& error) {
  out = TrainSpec();
  if (!only_keys(j, {"task", "model", "training"}, where, error)) return false;
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& task = j.contains("task") ? j["task"] : none;
  const nlohmann::json& model = j.contains("model") ? j["model"] : none;
  const nlohmann::json& training = j.contains("training") ? j["training"] : none;
  const std::string wt = where + ": task", wm = where + ": model", wr = where + ": training";
  TaskSpec& t = out.task;
  if (!only_keys(task, {"kind", "length", "symbols", "modulus", "train_fraction", "text_file"}, wt, error) ||
      !get_enum(task, "kind", wt, error, parse_task, t.kind,
                "copy, reverse, sort, induction, modular_addition, parentheses or text") ||
      !json_get(task, "length", t.length, 4, 1024, error, wt) || !json_get(task, "symbols", t.symbols, 2, 512, error, wt) ||
      !json_get(task, "modulus", t.modulus, 2, 256, error, wt) ||
      !json_get(task, "train_fraction", t.train_fraction, 0.01, 0.99, error, wt))
    return false;
  std::string text_file;
  if (!json_get(task, "text_file", text_file, error, wt)) return false;
  if (!text_file.empty()) {
    const std::string path = text_file.front() == '/' || base_dir.empty() ? text_file : base_dir + "/" + text_file;
    std::string why;
    if (!read_file_limited(path, 64u << 20, t.text, why, "a text file")) {
      error = wt + ": text_file: " + why;
      return false;
    }
    t.text_name = text_file;
    t.kind = TaskKind::text;
  }
  ModelSpec& m = out.model;
  if (!only_keys(model, {"layers", "heads", "kv_heads", "d_model", "mlp", "d_ff", "positional", "rope_base", "mask",
                         "window", "normalizer"},
                 wm, error) ||
      !json_get(model, "layers", m.n_layers, 1, 4, error, wm) || !json_get(model, "heads", m.n_heads, 1, 8, error, wm) ||
      !json_get(model, "d_model", m.d_model, 16, 256, error, wm) || !json_get(model, "mlp", m.mlp, error, wm) ||
      !json_get(model, "d_ff", m.d_ff, 0, 4096, error, wm) ||
      !json_get(model, "rope_base", m.rope_base, 2.0, 1e8, error, wm) ||
      !json_get(model, "window", m.window, 1, 1024, error, wm) ||
      !get_enum(model, "positional", wm, error, parse_pos, m.pos, "learned, sinusoidal, rope, alibi, t5 or none") ||
      !get_enum(model, "mask", wm, error, parse_mask, m.mask, "causal or sliding_window") ||
      !get_enum(model, "normalizer", wm, error, parse_norm, m.norm, "softmax or sigmoid"))
    return false;
  m.n_kv_heads = m.n_heads;
  if (!json_get(model, "kv_heads", m.n_kv_heads, 1, 8, error, wm)) return false;
  TrainingOptions& o = out.training;
  int seed = 0;
  if (!only_keys(training, {"steps", "batch", "lr", "min_lr_ratio", "warmup", "weight_decay", "beta1", "beta2", "eps",
                            "clip", "seed", "eval_every", "checkpoint_every", "val_sequences"},
                 wr, error) ||
      !json_get(training, "steps", o.steps, 1, 10000000, error, wr) ||
      !json_get(training, "batch", o.batch, 1, 4096, error, wr) || !json_get(training, "lr", o.lr, 1e-7, 1.0, error, wr) ||
      !json_get(training, "min_lr_ratio", o.min_lr_ratio, 0.0, 1.0, error, wr) ||
      !json_get(training, "warmup", o.warmup, 0.0, 1e7, error, wr) ||
      !json_get(training, "weight_decay", o.weight_decay, 0.0, 10.0, error, wr) ||
      !json_get(training, "beta1", o.beta1, 0.0, 0.9999, error, wr) ||
      !json_get(training, "beta2", o.beta2, 0.0, 0.99999, error, wr) ||
      !json_get(training, "eps", o.eps, 1e-12, 1.0, error, wr) || !json_get(training, "clip", o.clip, 0.0, 1e6, error, wr) ||
      !json_get(training, "seed", seed, 0, 2147483647LL, error, wr) ||
      !json_get(training, "eval_every", o.eval_every, 1, 1000000, error, wr) ||
      !json_get(training, "checkpoint_every", o.checkpoint_every, 1, 1000000, error, wr) ||
      !json_get(training, "val_sequences", o.val_sequences, 1, 4096, error, wr))
    return false;
  o.seed = static_cast<std::uint64_t>(seed);
  if (static_cast<long long>(o.batch) * t.length > (1 << 20)) {
    error = wr + ": batch (" + std::to_string(o.batch) + ") x length (" + std::to_string(t.length) + ") must be at most 1048576 tokens";
    return false;
  }
  return true;
}

nlohmann::json train_spec_json(const TrainSpec& s) {
  nlohmann::json j;
  j["task"] = {{"kind", task_name(s.task.kind)}, {"length", s.task.length}, {"symbols", s.task.symbols},
               {"modulus", s.task.modulus}, {"train_fraction", s.task.train_fraction}};
  j["model"] = {{"layers", s.model.n_layers}, {"heads", s.model.n_heads}, {"kv_heads", s.model.n_kv_heads},
                {"d_model", s.model.d_model}, {"mlp", s.model.mlp}, {"d_ff", s.model.d_ff},
                {"positional", pos_name(s.model.pos)}, {"rope_base", s.model.rope_base},
                {"mask", mask_name(s.model.mask)}, {"window", s.model.window}, {"normalizer", norm_name(s.model.norm)}};
  const TrainingOptions& o = s.training;
  j["training"] = {{"steps", o.steps}, {"batch", o.batch}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio},
                   {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2},
                   {"eps", o.eps}, {"clip", o.clip}, {"seed", o.seed}, {"eval_every", o.eval_every},
                   {"checkpoint_every", o.checkpoint_every}, {"val_sequences", o.val_sequences}};
  return j;
}

}  // namespace attnlab::train
