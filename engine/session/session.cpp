#include "session/session.hpp"

#include "attention/expression.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "session/cost.hpp"
#include "core/json_input.hpp"
#include "core/strings.hpp"
#include "core/utf8.hpp"

namespace attnlab {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {
const std::vector<std::string> kTokenizers = {"words", "chars"};
const std::vector<std::string> kPositionals = {"none", "sinusoidal", "learned", "rope", "alibi", "t5"};
const std::vector<std::string> kRopeConventions = {"rotate_half", "interleaved"};
const std::vector<std::string> kScores = {"scaled_dot", "dot", "additive", "general", "cosine"};
const std::vector<std::string> kNormalizers = {"softmax", "sparsemax", "sigmoid"};
const std::vector<std::string> kKvSharing = {"mha", "mqa", "gqa"};
const std::vector<std::string> kBlocks = {"attention", "pre_ln"};
const std::vector<std::string> kKernels = {"exact", "flash", "linear", "performer", "linformer", "nystrom"};
const std::vector<std::string> kMasks = [] {
  std::vector<std::string> v;
  for (const MaskKindInfo& k : kMaskKinds) v.push_back(k.name);
  return v;
}();
}  // namespace

const char* name(TokenizerKind k) { return kTokenizers[int(k)].c_str(); }
const char* name(PositionalKind k) { return kPositionals[int(k)].c_str(); }
const char* name(RopeConvention k) { return kRopeConventions[int(k)].c_str(); }
const char* name(ScoreKind k) { return kScores[int(k)].c_str(); }
const char* name(NormalizerKind k) { return kNormalizers[int(k)].c_str(); }
const char* name(KvSharing k) { return kKvSharing[int(k)].c_str(); }
const char* name(BlockKind k) { return kBlocks[int(k)].c_str(); }
const char* name(KernelKind k) { return kKernels[int(k)].c_str(); }
const char* name(MaskKind k) { return kMasks[int(k)].c_str(); }

bool mask_combines_with_causal(MaskKind k) { return !kMaskKinds[int(k)].causal; }
bool mask_is_causal(const Session::Attention::Mask& m) {
  return kMaskKinds[int(m.kind)].causal || m.causal;  // the flag intersects every other kind with j <= i
}

namespace {

// One row of the options table: its documentation, how to read and write it on a Session, and
// when it is relevant (written to JSON and range-checked only then).
struct Field {
  OptionSpec spec;
  std::function<json(const Session&)> get;
  std::function<std::string(Session&, const json&)> set;  // returns a problem, or ""
  std::function<bool(const Session&)> relevant;
};

using Rel = std::function<bool(const Session&)>;
const Rel kAlways = [](const Session&) { return true; };

// The mask kinds that read attention.mask.<param>, from the mask-kinds table.
std::vector<MaskKind> mask_kinds_reading(const std::string& param) {
  std::vector<MaskKind> out;
  for (std::size_t k = 0; k < std::size(kMaskKinds); ++k)
    if (std::string_view(kMaskKinds[k].params).find(" " + param + " ") != std::string_view::npos)
      out.push_back(MaskKind(k));
  return out;
}
Rel mask_reads(const std::string& param) {
  const std::vector<MaskKind> v = mask_kinds_reading(param);
  return [v](const Session& s) { return std::find(v.begin(), v.end(), s.attention.mask.kind) != v.end(); };
}
Rel positional_is(PositionalKind k) {
  return [k](const Session& s) { return s.positional.kind == k; };
}

std::string mask_list(const std::string& param) {
  std::string out = "attention.mask.kind in ";
  bool first = true;
  for (auto k : mask_kinds_reading(param)) out += (first ? "" : ", ") + std::string(name(k)), first = false;
  return out;
}


std::string describe(const json& v) { return json_excerpt(v); }

std::string fmt_number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// A whole number that does not fit an int is refused as written (18446744073709551615, not -1).
bool fits_int(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<int>::max());
  const long long x = v.get<long long>();
  return x >= std::numeric_limits<int>::min() && x <= std::numeric_limits<int>::max();
}

template <class E, class Ref>
Field enum_field(std::string path, const std::vector<std::string>& choices, std::string help, Ref ref,
                 Rel rel = kAlways, std::string applies = "") {
  Field f;
  f.spec = {path, "enum", choices, 0, 0, "", std::move(help), std::move(applies)};
  f.get = [ref, &choices](const Session& s) { return json(choices[int(ref(s))]); };
  f.set = [ref, path, &choices](Session& s, const json& v) -> std::string {
    if (!v.is_string()) return path + " must be a string, one of " + join(choices, ", ");
    const auto x = v.get<std::string>();
    for (std::size_t i = 0; i < choices.size(); ++i)
      if (choices[i] == x) return ref(s) = static_cast<E>(i), "";
    return path + " '" + utf8_sanitize(x) + "' is not one of " + join(choices, ", ");
  };
  f.relevant = std::move(rel);
  return f;
}

template <class Ref>
Field int_field(std::string path, double min, double max, std::string help, Ref ref, Rel rel = kAlways,
                std::string applies = "") {
  Field f;
  f.spec = {path, "int", {}, min, max, "", std::move(help), std::move(applies)};
  f.get = [ref](const Session& s) { return json(ref(s)); };
  f.set = [ref, path, min, max](Session& s, const json& v) -> std::string {
    if (!v.is_number_integer()) return path + " must be a whole number, not " + describe(v);
    // values beyond int are refused here, as written; validate() checks the range of the rest
    if (!fits_int(v)) return path + " (" + v.dump() + ") must be between " + fmt_number(min) + " and " + fmt_number(max);
    ref(s) = static_cast<int>(v.get<long long>());
    return "";
  };
  f.relevant = std::move(rel);
  return f;
}

template <class Ref>
Field number_field(std::string path, double min, double max, std::string help, Ref ref, Rel rel = kAlways,
                   std::string applies = "") {
  Field f;
  f.spec = {path, "number", {}, min, max, "", std::move(help), std::move(applies)};
  f.get = [ref](const Session& s) { return json(ref(s)); };
  f.set = [ref, path](Session& s, const json& v) -> std::string {
    if (!v.is_number()) return path + " must be a number, not " + describe(v);
    ref(s) = v.get<double>();
    return "";
  };
  f.relevant = std::move(rel);
  return f;
}

template <class Ref>
Field bool_field(std::string path, std::string help, Ref ref, Rel rel = kAlways, std::string applies = "") {
  Field f;
  f.spec = {path, "bool", {}, 0, 1, "", std::move(help), std::move(applies)};
  f.get = [ref](const Session& s) { return json(ref(s)); };
  f.set = [ref, path](Session& s, const json& v) -> std::string {
    if (!v.is_boolean()) return path + " must be true or false, not " + describe(v);
    ref(s) = v.get<bool>();
    return "";
  };
  f.relevant = std::move(rel);
  return f;
}

template <class Ref>
Field string_field(std::string path, double max_bytes, std::string help, Ref ref, Rel rel = kAlways,
                   std::string applies = "") {
  Field f;
  f.spec = {path, "string", {}, 0, max_bytes, "", std::move(help), std::move(applies)};
  f.get = [ref](const Session& s) { return json(ref(s)); };
  f.set = [ref, path](Session& s, const json& v) -> std::string {
    if (!v.is_string()) return path + " must be a string, not " + std::string(v.type_name());
    ref(s) = v.get<std::string>();
    return "";
  };
  f.relevant = std::move(rel);
  return f;
}

// A JSON object of named numbers ({"window": 4}): an expression's parameters.
template <class Ref>
Field parameters_field(std::string path, std::string help, Ref ref, Rel rel = kAlways, std::string applies = "") {
  Field f;
  f.spec = {path, "parameters", {}, -1e300, 1e300, "", std::move(help), std::move(applies)};
  f.get = [ref](const Session& s) {
    json o = json::object();
    for (const auto& [k, v] : ref(s)) o[k] = v;
    return o;
  };
  f.set = [ref, path](Session& s, const json& v) -> std::string {
    if (!v.is_object()) return path + " must be an object of named numbers, e.g. {\"window\": 4}, not " + describe(v);
    if (v.size() > 64) return path + " has " + std::to_string(v.size()) + " entries; the limit is 64";
    std::map<std::string, double> out;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string k = it.key();
      const json& x = it.value();
      if (!x.is_number()) return path + "." + utf8_sanitize(k) + " must be a number, not " + describe(x);
      if (!std::isfinite(x.get<double>())) return path + "." + utf8_sanitize(k) + " must be finite";
      out[k] = x.get<double>();
    }
    ref(s) = std::move(out);
    return "";
  };
  f.relevant = std::move(rel);
  return f;
}

// Options table: the text, its tokenizer and the random-weight model.
void add_text_and_model(std::vector<Field>& f) {
  f.push_back(string_field("text", double(kMaxTextBytes), "the text to attend over (UTF-8)",
                           [](auto& s) -> auto& { return s.text; }));
  f.push_back(enum_field<TokenizerKind>(
      "tokenizer.kind", kTokenizers,
      "words: runs of letters, digits and _ (every non-ASCII code point that is not a space or punctuation counts "
      "as a letter), an inner apostrophe kept (don't), every other character its own token, whitespace dropped; "
      "chars: one token per Unicode code point, whitespace included",
      [](auto& s) -> auto& { return s.tokenizer.kind; }));
  f.push_back(int_field("model.d_model", 1, 4096, "width of embeddings and projections",
                        [](auto& s) -> auto& { return s.model.d_model; }));
  f.push_back(int_field("model.n_heads", 1, 128, "attention heads; must divide d_model (d_head = d_model / n_heads)",
                        [](auto& s) -> auto& { return s.model.n_heads; }));
  {
    Field seed;
    seed.spec = {"model.seed", "uint64", {}, 0, 18446744073709551615.0, "",
                 "seeds the token embeddings, the weights and every random pattern", ""};
    seed.get = [](const Session& s) { return json(s.model.seed); };
    seed.set = [](Session& s, const json& v) -> std::string {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<long long>() >= 0))
        return "model.seed must be a whole number from 0 to 18446744073709551615, not " + describe(v);
      s.model.seed = v.get<std::uint64_t>();
      return "";
    };
    seed.relevant = kAlways;
    f.push_back(seed);
  }
  f.push_back(enum_field<KvSharing>(
      "model.kv_sharing", kKvSharing,
      "mha: every head its own K and V; mqa: one K/V head for all (Shazeer 2019); gqa: n_kv_heads groups "
      "(Ainslie et al. 2023)",
      [](auto& s) -> auto& { return s.model.kv_sharing; }));
  f.push_back(int_field("model.n_kv_heads", 1, 128, "K/V heads for gqa; must divide n_heads",
                        [](auto& s) -> auto& { return s.model.n_kv_heads; },
                        [](const Session& s) { return s.model.kv_sharing == KvSharing::gqa; }, "model.kv_sharing = gqa"));
  f.push_back(int_field("model.n_layers", 1, 24, "layers, each with its own seeded weights",
                        [](auto& s) -> auto& { return s.model.n_layers; }));
  f.push_back(enum_field<BlockKind>(
      "model.block", kBlocks,
      "attention: each layer is multi-head attention alone; pre_ln: x + MHA(LN(x)), then x + FFN(LN(x)) with GELU",
      [](auto& s) -> auto& { return s.model.block; }));
  f.push_back(int_field("model.ffn_mult", 1, 8, "pre_ln: FFN hidden width = ffn_mult * d_model",
                        [](auto& s) -> auto& { return s.model.ffn_mult; },
                        [](const Session& s) { return s.model.block == BlockKind::pre_ln; }, "model.block = pre_ln"));
}

// Options table: positional encodings: RoPE, T5 buckets.
void add_positional(std::vector<Field>& f) {
  f.push_back(enum_field<PositionalKind>(
      "positional.kind", kPositionals,
      "none; sinusoidal or learned absolute (added to the embeddings); rope (rotates q and k); alibi or t5 "
      "(biases added to the logits)",
      [](auto& s) -> auto& { return s.positional.kind; }));
  f.push_back(number_field("positional.rope_base", 1, 1e9, "RoPE base theta: frequencies theta^(-2m/d_rot)",
                           [](auto& s) -> auto& { return s.positional.rope_base; },
                           positional_is(PositionalKind::rope), "positional.kind = rope"));
  f.push_back(number_field("positional.rope_fraction", 0, 1,
                           "share of d_head that is rotated (rounded down to an even number of dimensions)",
                           [](auto& s) -> auto& { return s.positional.rope_fraction; },
                           positional_is(PositionalKind::rope), "positional.kind = rope"));
  f.push_back(enum_field<RopeConvention>(
      "positional.rope_convention", kRopeConventions,
      "rotate_half: pairs (x_m, x_{m+d/2}) as GPT-NeoX and Llama; interleaved: pairs (x_2m, x_2m+1) as RoFormer",
      [](auto& s) -> auto& { return s.positional.rope_convention; }, positional_is(PositionalKind::rope),
      "positional.kind = rope"));
  f.push_back(int_field("positional.t5_num_buckets", 2, 1024, "T5 relative-position buckets",
                        [](auto& s) -> auto& { return s.positional.t5_num_buckets; },
                        positional_is(PositionalKind::t5), "positional.kind = t5"));
  f.push_back(int_field("positional.t5_max_distance", 1, 1000000,
                        "T5: distances from here on share the last bucket",
                        [](auto& s) -> auto& { return s.positional.t5_max_distance; },
                        positional_is(PositionalKind::t5), "positional.kind = t5"));
  f.push_back(bool_field("positional.t5_bidirectional", "T5 buckets: separate buckets for keys after the query",
                         [](auto& s) -> auto& { return s.positional.t5_bidirectional; },
                         positional_is(PositionalKind::t5), "positional.kind = t5"));
}

// Options table: scores, normalizers, temperature, dropout.
void add_score_and_normalizer(std::vector<Field>& f) {
  f.push_back(enum_field<ScoreKind>(
      "attention.score.kind", kScores,
      "scaled_dot: q.k / sqrt(d_head); dot: q.k; additive: v^T tanh(W q + U k) (Bahdanau); general: q^T W k "
      "(Luong); cosine: cos(q, k) / temperature",
      [](auto& s) -> auto& { return s.attention.score.kind; },
      [](const Session& s) { return !kernel_is_approximation(s.attention.kernel.kind); },
      "attention.kernel.kind in exact, flash"));
  f.push_back(number_field("attention.score.cosine_temperature", 0.01, 10, "cosine score: cos(q, k) / temperature",
                           [](auto& s) -> auto& { return s.attention.score.cosine_temperature; },
                           [](const Session& s) {
                             return s.attention.score.kind == ScoreKind::cosine &&
                                    !kernel_is_approximation(s.attention.kernel.kind);
                           },
                           "attention.score.kind = cosine"));
  f.push_back(enum_field<NormalizerKind>(
      "attention.normalizer.kind", kNormalizers,
      "softmax; sparsemax: Euclidean projection onto the simplex, exact zeros (Martins & Astudillo 2016); "
      "sigmoid: each weight sigmoid(logit + bias) on its own",
      [](auto& s) -> auto& { return s.attention.normalizer.kind; },
      [](const Session& s) { return !kernel_is_approximation(s.attention.kernel.kind); },
      "attention.kernel.kind in exact, flash"));
  f.push_back(number_field("attention.normalizer.temperature", 0.01, 100,
                           "divides the logits before normalizing: low is sharp, high is flat",
                           [](auto& s) -> auto& { return s.attention.normalizer.temperature; },
                           [](const Session& s) { return !kernel_is_approximation(s.attention.kernel.kind); },
                           "attention.kernel.kind in exact, flash"));
  f.push_back(bool_field("attention.normalizer.sigmoid_bias_auto", "sigmoid bias -log(n_k), so rows start near weight 1/n_k",
                         [](auto& s) -> auto& { return s.attention.normalizer.sigmoid_bias_auto; },
                         [](const Session& s) {
                           return s.attention.normalizer.kind == NormalizerKind::sigmoid &&
                                  !kernel_is_approximation(s.attention.kernel.kind);
                         },
                         "attention.normalizer.kind = sigmoid"));
  f.push_back(number_field("attention.normalizer.sigmoid_bias", -100, 100, "sigmoid bias b: weight = sigmoid(logit / T + b)",
                           [](auto& s) -> auto& { return s.attention.normalizer.sigmoid_bias; },
                           [](const Session& s) {
                             return s.attention.normalizer.kind == NormalizerKind::sigmoid &&
                                    !s.attention.normalizer.sigmoid_bias_auto &&
                                    !kernel_is_approximation(s.attention.kernel.kind);
                           },
                           "attention.normalizer.kind = sigmoid and sigmoid_bias_auto = false"));
  const Rel sink_applies = [](const Session& s) {
    return s.attention.normalizer.kind == NormalizerKind::softmax &&
           (s.attention.kernel.kind == KernelKind::exact || s.attention.kernel.kind == KernelKind::flash);
  };
  f.push_back(bool_field("attention.sink.enabled",
                         "a learned sink logit (gpt-oss): softmax over the row and one more key with no value, so "
                         "the row sums to 1 - p_sink",
                         [](auto& s) -> auto& { return s.attention.sink.enabled; }, sink_applies,
                         "attention.normalizer.kind = softmax and attention.kernel.kind = exact"));
  f.push_back(number_field("attention.sink.logit", -100, 100, "the sink's logit s: p_sink = exp(s / T) / (sum_j exp(l_j / T) + exp(s / T))",
                           [](auto& s) -> auto& { return s.attention.sink.logit; },
                           [sink_applies](const Session& s) { return sink_applies(s) && s.attention.sink.enabled; },
                           "attention.sink.enabled"));
  const Rel diff_applies = [](const Session& s) {
    return s.attention.normalizer.kind == NormalizerKind::softmax && s.attention.kernel.kind == KernelKind::exact &&
           (s.attention.score.kind == ScoreKind::scaled_dot || s.attention.score.kind == ScoreKind::dot);
  };
  f.push_back(bool_field("attention.differential.enabled",
                         "differential attention (DIFF Transformer): each head's q and k split in halves, two softmax "
                         "maps, weights A1 - lambda A2 (signed; rows sum to 1 - lambda)",
                         [](auto& s) -> auto& { return s.attention.differential.enabled; }, diff_applies,
                         "attention.normalizer.kind = softmax, attention.kernel.kind = exact, score scaled_dot or dot"));
  f.push_back(number_field("attention.differential.lambda", 0, 1, "lambda: how much of the second map is subtracted",
                           [](auto& s) -> auto& { return s.attention.differential.lambda; },
                           [diff_applies](const Session& s) { return diff_applies(s) && s.attention.differential.enabled; },
                           "attention.differential.enabled"));
  f.push_back(number_field("attention.dropout", 0, 0.9,
                           "drop each weight with this probability and scale the kept ones by 1 / (1 - p) (seeded)",
                           [](auto& s) -> auto& { return s.attention.dropout; },
                           [](const Session& s) { return s.attention.kernel.kind == KernelKind::exact; },
                           "attention.kernel.kind = exact"));
}

// Options table: kernels: flash tiles and the approximations.
void add_kernel(std::vector<Field>& f) {
  auto kernel_is = [](KernelKind k) { return [k](const Session& s) { return s.attention.kernel.kind == k; }; };
  f.push_back(enum_field<KernelKind>(
      "attention.kernel.kind", kKernels,
      "exact; flash: tiled online softmax, exact (Dao et al. 2022); linear (Katharopoulos et al. 2020), performer "
      "(Choromanski et al. 2021), linformer (Wang et al. 2020), nystrom (Xiong et al. 2021) approximate "
      "softmax(q.k / sqrt(d_head)) and show their error",
      [](auto& s) -> auto& { return s.attention.kernel.kind; }));
  f.push_back(int_field("attention.kernel.block_rows", 1, 1024, "flash: query rows per tile (B_r)",
                        [](auto& s) -> auto& { return s.attention.kernel.block_rows; }, kernel_is(KernelKind::flash),
                        "attention.kernel.kind = flash"));
  f.push_back(int_field("attention.kernel.block_cols", 1, 1024, "flash: keys per tile (B_c)",
                        [](auto& s) -> auto& { return s.attention.kernel.block_cols; }, kernel_is(KernelKind::flash),
                        "attention.kernel.kind = flash"));
  f.push_back(int_field("attention.kernel.features", 1, 8192, "performer: random features m",
                        [](auto& s) -> auto& { return s.attention.kernel.features; },
                        kernel_is(KernelKind::performer), "attention.kernel.kind = performer"));
  f.push_back(bool_field("attention.kernel.orthogonal", "performer: orthogonal random features (lower variance)",
                         [](auto& s) -> auto& { return s.attention.kernel.orthogonal; },
                         kernel_is(KernelKind::performer), "attention.kernel.kind = performer"));
  f.push_back(int_field("attention.kernel.projected_length", 1, 4096, "linformer: keys and values projected to length k",
                        [](auto& s) -> auto& { return s.attention.kernel.projected_length; },
                        kernel_is(KernelKind::linformer), "attention.kernel.kind = linformer"));
  f.push_back(int_field("attention.kernel.landmarks", 1, 1024, "nystrom: landmarks m (segment means; at most n)",
                        [](auto& s) -> auto& { return s.attention.kernel.landmarks; },
                        kernel_is(KernelKind::nystrom), "attention.kernel.kind = nystrom"));
}

// Options table: mask kinds and their parameters (which kind reads which: the mask-kinds table).
void add_mask(std::vector<Field>& f) {
  f.push_back(enum_field<MaskKind>("attention.mask.kind", kMasks,
                                   "which keys each query may attend to (docs/variants.md)",
                                   [](auto& s) -> auto& { return s.attention.mask.kind; }));
  f.push_back(int_field("attention.mask.window", 0, double(kMaxTokens),
                        "w: sliding windows attend |i - j| <= w (causal: 0 <= i - j <= w; dilated: w steps)",
                        [](auto& s) -> auto& { return s.attention.mask.window; }, mask_reads("window"), mask_list("window")));
  f.push_back(int_field("attention.mask.dilation", 1, 1024, "d: dilated window keeps every d-th key",
                        [](auto& s) -> auto& { return s.attention.mask.dilation; }, mask_reads("dilation"), mask_list("dilation")));
  {
    Field g;
    g.spec = {"attention.mask.globals", "int_list", {}, 0, double(kMaxTokens - 1), "",
              "global positions: attend to every key and are attended by every query (past the text: ignored)",
              mask_list("globals")};
    g.get = [](const Session& s) { return json(s.attention.mask.globals); };
    g.set = [](Session& s, const json& v) -> std::string {
      if (!v.is_array()) return "attention.mask.globals must be a list of positions, not " + describe(v);
      std::vector<int> out;
      for (const auto& x : v) {
        if (!x.is_number_integer()) return "attention.mask.globals must hold whole numbers, not " + describe(x);
        if (!fits_int(x)) return "attention.mask.globals: position " + x.dump() + " is outside 0.." + std::to_string(kMaxTokens - 1);
        out.push_back(static_cast<int>(x.get<long long>()));
      }
      s.attention.mask.globals = out;
      return "";
    };
    g.relevant = mask_reads("globals");
    f.push_back(g);
  }
  f.push_back(int_field("attention.mask.random_keys", 0, double(kMaxTokens),
                        "r: random keys per non-global query (BigBird), drawn from model.seed",
                        [](auto& s) -> auto& { return s.attention.mask.random_keys; }, mask_reads("random_keys"), mask_list("random_keys")));
  f.push_back(int_field("attention.mask.block", 1, double(kMaxTokens), "b: block size of block-local attention",
                        [](auto& s) -> auto& { return s.attention.mask.block; }, mask_reads("block"), mask_list("block")));
  f.push_back(int_field("attention.mask.stride", 1, double(kMaxTokens),
                        "l: Sparse Transformer stride (strided) or block length (fixed)",
                        [](auto& s) -> auto& { return s.attention.mask.stride; }, mask_reads("stride"), mask_list("stride")));
  f.push_back(int_field("attention.mask.summary", 1, double(kMaxTokens),
                        "c: summary columns at the end of each block (fixed), at most l",
                        [](auto& s) -> auto& { return s.attention.mask.summary; }, mask_reads("summary"), mask_list("summary")));
  f.push_back(int_field("attention.mask.n_buckets", 2, 1024, "LSH hash buckets (even)",
                        [](auto& s) -> auto& { return s.attention.mask.n_buckets; }, mask_reads("n_buckets"),
                        mask_list("n_buckets")));
  f.push_back(int_field("attention.mask.n_rounds", 1, 16, "LSH hashing rounds; a pair in one bucket in any round attends",
                        [](auto& s) -> auto& { return s.attention.mask.n_rounds; }, mask_reads("n_rounds"),
                        mask_list("n_rounds")));
  f.push_back(int_field("attention.mask.sinks", 0, double(kMaxTokens),
                        "s: StreamingLLM attention sinks, the first s tokens, which every later query attends",
                        [](auto& s) -> auto& { return s.attention.mask.sinks; }, mask_reads("sinks"),
                        mask_list("sinks")));
  // always in force: both tokenizers keep it whole, whatever the mask (so it is always saved)
  f.push_back(string_field("attention.mask.pad_token", 64,
                           "a token the tokenizers keep whole; with mask padding, keys equal to it are masked",
                           [](auto& s) -> auto& { return s.attention.mask.pad_token; }));
  {
    Field c;
    c.spec = {"attention.mask.cells", "cell_list", {}, 0, double(kMaxTokens - 1), "",
              "custom: the allowed (query, key) cells, as [[i, j], ...]", mask_list("cells")};
    c.get = [](const Session& s) { return json(s.attention.mask.cells); };
    c.set = [](Session& s, const json& v) -> std::string {
      const std::string bad = "attention.mask.cells must be a list of [query, key] pairs";
      if (!v.is_array()) return bad + ", not " + describe(v);
      std::vector<std::array<int, 2>> out;
      for (const auto& x : v) {
        if (!x.is_array() || x.size() != 2 || !x[0].is_number_integer() || !x[1].is_number_integer())
          return bad + " of whole numbers, not " + describe(x);
        if (!fits_int(x[0]) || !fits_int(x[1]))
          return "custom cell " + describe(x) + " is outside 0.." + std::to_string(kMaxTokens - 1);
        out.push_back({static_cast<int>(x[0].get<long long>()), static_cast<int>(x[1].get<long long>())});
      }
      s.attention.mask.cells = out;
      return "";
    };
    c.relevant = mask_reads("cells");
    f.push_back(c);
  }
  f.push_back(string_field("attention.mask.expression", double(kMaxExpressionBytes),
                           "expression: allowed where this formula of q, k, h, n_q, n_k, doc(x), is_special(x) and "
                           "the parameters is non-zero, e.g. k <= q and q - k <= window (docs/expressions.md)",
                           [](auto& s) -> auto& { return s.attention.mask.expression; }, mask_reads("expression"),
                           mask_list("expression")));
  f.push_back(parameters_field("attention.mask.parameters", "expression: the named numbers the mask expression reads",
                               [](auto& s) -> auto& { return s.attention.mask.parameters; }, mask_reads("parameters"),
                               mask_list("parameters")));
}

// Options table: the score modifier (FlexAttention's score_mod) as an expression.
void add_score_mod(std::vector<Field>& f) {
  const Rel exact = [](const Session& s) { return !kernel_is_approximation(s.attention.kernel.kind); };
  f.push_back(string_field("attention.score_mod.expression", double(kMaxExpressionBytes),
                           "each cell's score (scaled, positional bias added) replaced by this formula of score, q, k, "
                           "h, n_q, n_k, doc(x), is_special(x) and the parameters, before the mask; empty: none "
                           "(e.g. cap * tanh(score / cap))",
                           [](auto& s) -> auto& { return s.attention.score_mod.expression; }, exact,
                           "attention.kernel.kind in exact, flash"));
  f.push_back(parameters_field("attention.score_mod.parameters", "the named numbers the score_mod expression reads",
                               [](auto& s) -> auto& { return s.attention.score_mod.parameters; },
                               [](const Session& s) {
                                 return !kernel_is_approximation(s.attention.kernel.kind) &&
                                        !s.attention.score_mod.expression.empty();
                               },
                               "attention.score_mod.expression is set"));
}

// Options table: cross-attention, rollout, and the causal intersection.
void add_context_and_analysis(std::vector<Field>& f) {
  f.push_back(bool_field("context.enabled",
                         "cross-attention: queries from the text, keys and values from the context text",
                         [](auto& s) -> auto& { return s.context.enabled; }));
  f.push_back(string_field("context.text", double(kMaxTextBytes), "the text that supplies keys and values (UTF-8)",
                           [](auto& s) -> auto& { return s.context.text; },
                           [](const Session& s) { return s.context.enabled; }, "context.enabled = true"));
  f.push_back(bool_field("analysis.rollout_residual",
                         "attention rollout: mix each layer's head-averaged weights half and half with the identity "
                         "(the residual connection) before multiplying across layers",
                         [](auto& s) -> auto& { return s.analysis.rollout_residual; }));
  f.push_back(int_field("analysis.sink_tokens", 1, 4096,
                        "sink mass: the metric sums each row's weight on the first s tokens (StreamingLLM's "
                        "attention sinks, 4 in the paper)",
                        [](auto& s) -> auto& { return s.analysis.sink_tokens; }));
  f.push_back(bool_field("attention.mask.causal", "also apply the causal mask (intersection)",
                         [](auto& s) -> auto& { return s.attention.mask.causal; },
                         [](const Session& s) { return mask_combines_with_causal(s.attention.mask.kind); },
                         [] {
                           std::string out = "attention.mask.kind not in ";
                           for (const MaskKindInfo& k : kMaskKinds)
                             if (k.causal) out += std::string(out.back() == ' ' ? "" : ", ") + k.name;
                           return out;
                         }()));
}
std::vector<Field> make_fields() {
  std::vector<Field> f;  // in the order the options are listed (docs, `attnlab-cli options`)
  add_text_and_model(f);
  add_positional(f);
  add_score_and_normalizer(f);
  add_kernel(f);
  add_mask(f);
  add_score_mod(f);
  add_context_and_analysis(f);
  // defaults, as JSON text, from a default Session
  const Session d;
  for (auto& x : f) x.spec.default_value = x.get(d).dump();
  return f;
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = make_fields();
  return table;
}

}  // namespace

const std::vector<OptionSpec>& session_options() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> out;
    for (const auto& f : fields()) out.push_back(f.spec);
    return out;
  }();
  return specs;
}

const OptionSpec& option(std::string_view path) {
  for (const auto& o : session_options())
    if (o.path == path) return o;
  throw std::logic_error("no session option " + std::string(path));
}

namespace {
const Field& field(std::string_view path) {
  for (const auto& f : fields())
    if (f.spec.path == path) return f;
  throw std::logic_error("no session option " + std::string(path));
}
}  // namespace

bool option_relevant(const Session& s, std::string_view path) { return field(path).relevant(s); }
std::string option_get(const Session& s, std::string_view path) {
  return field(path).get(s).dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string option_set(Session& s, std::string_view path, std::string_view json_value) {
  json v;
  std::string error;
  if (!parse_json_input(json_value, v, error)) return std::string(path) + ": " + error;
  return field(path).set(s, v);
}

std::string options_json() {
  ojson out = ojson::object();
  out["format"] = "attnlab.options";
  out["version"] = 1;
  ojson list = ojson::array();
  for (const auto& o : session_options()) {
    ojson j = {{"path", o.path}, {"type", o.type}, {"default", ojson::parse(o.default_value)}, {"help", o.help}};
    if (o.type == "enum") j["choices"] = o.choices;
    if (o.type == "int" || o.type == "int_list" || o.type == "cell_list") {
      j["min"] = static_cast<long long>(o.min);
      j["max"] = static_cast<long long>(o.max);
    }
    if (o.type == "number") j["min"] = o.min, j["max"] = o.max;
    if (o.type == "uint64") j["min"] = 0, j["max"] = std::numeric_limits<std::uint64_t>::max();
    if (o.type == "string") j["max_bytes"] = static_cast<long long>(o.max);
    if (!o.applies.empty()) j["applies_when"] = o.applies;
    list.push_back(j);
  }
  out["options"] = list;
  ojson presets = ojson::array();
  for (const ExpressionPreset& x : expression_presets()) {
    ojson j = {{"name", x.name},
               {"role", x.role == ExpressionRole::mask ? "mask" : "score_mod"},
               {"expression", x.expression},
               {"parameters", ojson::parse(x.parameters)},
               {"description", x.description}};
    if (*x.equals_kind) j["equals_kind"] = x.equals_kind;
    presets.push_back(j);
  }
  out["presets"] = presets;
  out["limits"] = {{"max_tokens", kMaxTokens},
                   {"max_memory_bytes", memory_budget_bytes()},
                   {"max_compute_seconds", kMaxComputeSeconds},
                   {"rule", "the estimated memory of a session (logits, weights and masks of every head, weights of "
                            "every layer, rollout) must fit max_memory_bytes, and its estimated time max_compute_seconds"}};
  return out.dump(2);
}

std::string options_markdown() {
  auto code = [](const std::string& x) { return "`" + x + "`"; };
  auto fmt_number = [](double x) {  // whole numbers in full (1048576, not 1.04858e+06)
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", x);
    return std::string(buf);
  };
  std::string out =
      "<!-- generated by `attnlab-cli options --markdown` from the options table (engine/session/session.cpp); "
      "tests/cli/test_docs.py checks that this section equals it -->\n\n"
      "| path | values | default | in force when | meaning |\n|---|---|---|---|---|\n";
  for (const auto& o : session_options()) {
    std::string values;
    if (o.type == "enum") {
      for (const auto& c : o.choices) values += (values.empty() ? "" : ", ") + code(c);
    } else if (o.type == "int") {
      values = fmt_number(o.min) + " to " + fmt_number(o.max) + ", whole";
    } else if (o.type == "number") {
      values = fmt_number(o.min) + " to " + fmt_number(o.max);
    } else if (o.type == "bool") {
      values = "`true`, `false`";
    } else if (o.type == "uint64") {
      values = "0 to 2^64 - 1, whole";
    } else if (o.type == "string") {
      values = "UTF-8 string, at most " + fmt_number(o.max) + " bytes";
    } else if (o.type == "int_list") {
      values = "list of positions, " + fmt_number(o.min) + " to " + fmt_number(o.max);
    } else if (o.type == "cell_list") {
      values = "list of [query, key] pairs, each " + fmt_number(o.min) + " to " + fmt_number(o.max);
    } else if (o.type == "parameters") {
      values = "object of named numbers, at most 64";
    }
    std::string help = o.help;
    for (std::size_t at = 0; (at = help.find('|', at)) != std::string::npos; at += 2) help.replace(at, 1, "\\|");
    std::string def = o.default_value.size() > 40 ? "(the cat sentence)" : code(o.default_value);
    out += "| " + code(o.path) + " | " + values + " | " + def + " | " + (o.applies.empty() ? "always" : o.applies) + " | " +
           help + " |\n";
  }
  char limits[300];
  std::snprintf(limits, sizeof limits,
                "\nLimits: at most %zu tokens and %zu bytes of text; a session whose estimated memory exceeds the "
                "memory budget (6 GiB, or 60%% of physical memory when that is less) or whose estimated time exceeds "
                "%.0f s is refused with the figures (`attnlab-cli estimate SESSION` prints them).\n",
                kMaxTokens, kMaxTextBytes, kMaxComputeSeconds);
  out += limits;
  out += "\nExpression presets (`attention.mask.kind` `expression`, or `attention.score_mod`), each with the "
         "parameters it reads; a preset marked with a kind allows exactly the cells of that built-in kind:\n\n"
         "| preset | role | expression | parameters | equals |\n|---|---|---|---|---|\n";
  for (const ExpressionPreset& x : expression_presets()) {
    std::string e = x.expression;
    for (std::size_t at = 0; (at = e.find('|', at)) != std::string::npos; at += 2) e.replace(at, 1, "\\|");
    out += "| " + code(x.name) + " | " + (x.role == ExpressionRole::mask ? "mask" : "score_mod") + " | " + code(e) +
           " | " + code(x.parameters) + " | " + (*x.equals_kind ? code(x.equals_kind) : std::string("")) + " |\n";
  }
  return out;
}

SessionParse parse_session(std::string_view json_text) {
  SessionParse out;
  json j;
  std::string error;
  if (!parse_json_input(json_text, j, error)) {  // also refuses duplicate keys, deep nesting, 1e400
    out.problems.push_back(error);
    return out;
  }
  Session s;
  auto& p = out.problems;
  // Walks objects; a key is a field, a group of fields, format/version at the top, or unknown.
  std::function<void(const json&, const std::string&)> walk = [&](const json& obj, const std::string& prefix) {
    if (!obj.is_object()) {
      p.push_back((prefix.empty() ? "the session" : prefix) + " must be a JSON object, not " +
                  std::string(obj.type_name()));
      return;
    }
    for (const auto& [key, value] : obj.items()) {
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      if (prefix.empty() && key == "format") {
        if (value != "attnlab.session") p.push_back("format must be \"attnlab.session\", not " + describe(value));
        continue;
      }
      if (prefix.empty() && key == "version") {
        if (value != 1) p.push_back("version " + describe(value) + " is not supported (this attnlab reads version 1)");
        continue;
      }
      auto field = std::find_if(fields().begin(), fields().end(), [&](const Field& f) { return f.spec.path == path; });
      if (field != fields().end()) {
        if (auto problem = field->set(s, value); !problem.empty()) p.push_back(problem);
        continue;
      }
      const bool group = std::any_of(fields().begin(), fields().end(),
                                     [&](const Field& f) { return f.spec.path.rfind(path + ".", 0) == 0; });
      if (group) {
        walk(value, path);
        continue;
      }
      std::vector<std::string> known;  // the keys that exist at this level
      if (prefix.empty()) known = {"format", "version"};
      for (const auto& f : fields()) {
        const std::string& fp = f.spec.path;
        if (!prefix.empty() && fp.rfind(prefix + ".", 0) != 0) continue;
        const std::string rest = prefix.empty() ? fp : fp.substr(prefix.size() + 1);
        const std::string next = rest.substr(0, rest.find('.'));
        if (std::find(known.begin(), known.end(), next) == known.end()) known.push_back(next);
      }
      p.push_back("unknown key '" + utf8_sanitize(key) + "' in " + (prefix.empty() ? "the session" : prefix) +
                  " (known keys: " + join(known, ", ") + ")");
    }
  };
  walk(j, "");
  if (p.empty()) out.session = s;
  return out;
}

std::string to_json(const Session& s) {
  ojson j = {{"format", "attnlab.session"}, {"version", 1}};
  for (const auto& f : fields()) {
    if (!f.relevant(s)) continue;  // parameters of kinds not in force are left out
    ojson* at = &j;
    std::string path = f.spec.path;
    for (std::size_t dot; (dot = path.find('.')) != std::string::npos; path = path.substr(dot + 1)) {
      at = &(*at)[path.substr(0, dot)];
    }
    (*at)[path] = ojson::parse(f.get(s).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  // Invalid UTF-8 in the text would make dump() throw; replace it so a session can always be saved.
  return j.dump(2, ' ', false, ojson::error_handler_t::replace);
}

namespace {
std::vector<Token> tokenize_text(const Session& s, const std::string& text) {
  const std::vector<std::string> specials = {s.attention.mask.pad_token};
  return s.tokenizer.kind == TokenizerKind::words ? tokenize_words(text, specials) : tokenize_chars(text, specials);
}
}  // namespace

std::vector<Token> tokenize(const Session& s) { return tokenize_text(s, s.text); }
std::vector<Token> tokenize_context(const Session& s) { return tokenize_text(s, s.context.text); }

std::vector<std::string> problem_options(const std::string& problem) {
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  auto has = [&](const char* part) { return problem.find(part) != std::string::npos; };
  for (const auto& o : session_options()) {
    const std::string last = o.path.substr(o.path.rfind('.') + 1);
    // the full path, or a name distinctive enough to stand for it ("n_kv_heads", "t5_max_distance")
    if (has(o.path.c_str()) || (last.size() >= 7 && last != "enabled" && last != "expression" && last != "parameters" && problem.find(last) != std::string::npos))
      add(o.path);
  }
  if (has("kernel '") || has("flash computes")) add("attention.kernel.kind");
  if (has("mask '") || has("supports mask")) add("attention.mask.kind");
  if (has("normalizer '")) add("attention.normalizer.kind");
  if (has(" bias to its scores")) add("positional.kind");
  if (has("is not divisible by")) add("model.d_model"), add("model.n_heads");
  if (has("summary columns")) add("attention.mask.summary");
  if (has("the text ") || problem.starts_with("text ")) add("text");
  if (has("the context ") || problem.starts_with("context ")) add("context.text");
  if (has("of memory") || has("s on this machine")) {  // the budget: what makes a session large
    add("model.n_heads"), add("model.n_layers"), add("model.d_model");
    if (has("features")) add("attention.kernel.features");
    if (has("landmarks")) add("attention.kernel.landmarks");
    if (has("projection")) add("attention.kernel.projected_length");
  }
  return out;
}

bool mask_allows_cross(MaskKind k) { return kMaskKinds[int(k)].cross; }


Validation validate(const Session& s, ComputePath path) {
  Validation v;
  auto& p = v.problems;
  // ranges of every relevant numeric option, from the table
  for (const auto& f : fields()) {
    const OptionSpec& o = f.spec;
    if (!f.relevant(s) || (o.type != "int" && o.type != "number" && o.type != "int_list")) continue;
    const json value = f.get(s);
    const std::vector<json> values = value.is_array() ? std::vector<json>(value.begin(), value.end())
                                                      : std::vector<json>{value};
    for (const auto& x : values) {
      const double d = x.is_number() ? x.get<double>() : std::nan("");
      if (!(d >= o.min && d <= o.max)) {  // also catches NaN
        p.push_back(o.path + " (" + fmt_number(d) + ") must be between " + fmt_number(o.min) + " and " +
                    fmt_number(o.max));
      }
    }
  }
  if (s.model.d_model >= 1 && s.model.n_heads >= 1 && s.model.d_model % s.model.n_heads != 0) {
    p.push_back("d_model " + std::to_string(s.model.d_model) + " is not divisible by " +
                std::to_string(s.model.n_heads) + " heads (d_head = d_model / n_heads must be whole)");
  }
  if (s.attention.differential.enabled && s.model.d_model >= 1 && s.model.n_heads >= 1 &&
      s.model.d_model % s.model.n_heads == 0 && s.d_head() % 2 != 0 && s.attention.kernel.kind == KernelKind::exact &&
      s.attention.normalizer.kind == NormalizerKind::softmax &&
      (s.attention.score.kind == ScoreKind::scaled_dot || s.attention.score.kind == ScoreKind::dot))
    p.push_back("differential attention splits each head in two: d_head (" + std::to_string(s.d_head()) +
                ") must be even (attention.differential.enabled)");
  if (s.model.kv_sharing == KvSharing::gqa && s.model.n_kv_heads >= 1 && s.model.n_heads >= 1 &&
      s.model.n_heads % s.model.n_kv_heads != 0) {
    p.push_back("n_kv_heads (" + std::to_string(s.model.n_kv_heads) + ") must divide n_heads (" +
                std::to_string(s.model.n_heads) + ")");
  }
  const auto& m = s.attention.mask;
  if (m.kind == MaskKind::fixed && m.summary > m.stride)
    p.push_back("summary columns c (" + std::to_string(m.summary) + ") must be at most the block length l (" +
                std::to_string(m.stride) + ")");
  if (m.kind == MaskKind::lsh && m.n_buckets % 2 != 0)
    p.push_back("n_buckets (" + std::to_string(m.n_buckets) +
                ") must be even: LSH takes the argmax over [xR, -xR] with n_buckets / 2 rotations");
  if (m.kind == MaskKind::padding && m.pad_token.empty()) p.push_back("pad_token must not be empty");
  if (m.kind == MaskKind::custom) {
    for (const auto& c : m.cells) {
      if (c[0] < 0 || c[1] < 0 || c[0] >= int(kMaxTokens) || c[1] >= int(kMaxTokens)) {
        p.push_back("custom cell [" + std::to_string(c[0]) + ", " + std::to_string(c[1]) +
                    "] is outside 0.." + std::to_string(kMaxTokens - 1));
        break;
      }
    }
  }
  const auto& pos = s.positional;
  if (pos.kind == PositionalKind::t5) {
    const int max_exact = (pos.t5_bidirectional ? pos.t5_num_buckets / 2 : pos.t5_num_buckets) / 2;
    if (max_exact < 1)
      p.push_back("t5_num_buckets (" + std::to_string(pos.t5_num_buckets) + ") leaves no bucket for exact distances: use at least " +
                  (pos.t5_bidirectional ? "4 with separate buckets for keys after the query" : "2"));
    else if (pos.t5_max_distance <= max_exact)
      p.push_back("t5_max_distance (" + std::to_string(pos.t5_max_distance) +
                  ") must exceed the exact buckets (" + std::to_string(max_exact) + ")");
  }

  const auto& kern = s.attention.kernel;
  if (kern.kind == KernelKind::flash) {
    if (s.attention.normalizer.kind != NormalizerKind::softmax)
      p.push_back(std::string("flash computes softmax; normalizer '") + name(s.attention.normalizer.kind) +
                  "' needs the exact kernel");
  } else if (kernel_is_approximation(kern.kind)) {
    const bool causal_ok = kern.kind == KernelKind::linear || kern.kind == KernelKind::performer;
    const bool mask_ok = m.kind == MaskKind::none ? !m.causal || causal_ok
                                                  : m.kind == MaskKind::causal && causal_ok;
    if (!mask_ok)
      p.push_back(std::string("kernel '") + name(kern.kind) + "' supports mask " +
                  (causal_ok ? "none or causal" : "none") + ", not '" + name(m.kind) + (m.causal ? " + causal" : "") + "'");
    if (s.positional.kind == PositionalKind::alibi || s.positional.kind == PositionalKind::t5)
      p.push_back(std::string("kernel '") + name(kern.kind) + "' cannot add the " + name(s.positional.kind) +
                  " bias to its scores; use none, sinusoidal, learned or rope");
  }
  const bool cross = s.context.enabled;
  if (cross && !mask_allows_cross(m.kind)) {
    p.push_back(std::string("cross-attention: mask '") + name(m.kind) +
                "' needs queries and keys from one sequence; use none, padding or custom");
  }

  // the text (and the context), checked the same way
  auto check_text = [&](const std::string& text, const char* what, std::vector<Token>& tokens) {
    if (text.size() > kMaxTextBytes) {
      p.push_back(std::string(what) + " is " + std::to_string(text.size()) + " bytes; the limit is " +
                  std::to_string(kMaxTextBytes));
      return false;
    }
    if (auto bad = utf8_first_invalid(text)) {
      p.push_back(std::string(what) + " is not valid UTF-8 at byte " + std::to_string(*bad));
      return false;
    }
    tokens = what == std::string("text") ? tokenize(s) : tokenize_context(s);
    if (tokens.empty()) {
      p.push_back(std::string("the ") + what + " has no tokens: type something to attend " +
                  (what == std::string("text") ? "over" : "to"));
      return false;
    }
    const std::size_t limit = path == ComputePath::field ? kMaxFieldTokens : kMaxTokens;
    if (tokens.size() > limit) {
      p.push_back(std::string("the ") + what + " has " + std::to_string(tokens.size()) + " tokens; the limit is " +
                  std::to_string(limit) + (path == ComputePath::field ? "" : " (" + std::to_string(kMaxFieldTokens) +
                                                                              " for a block or an overview of the field)"));
      return false;
    }
    return true;
  };
  const bool text_ok = check_text(s.text, "text", v.tokens);
  const bool context_ok = !cross || check_text(s.context.text, "context", v.key_tokens);
  // expressions: compiled here, so that a problem names its character; the engine runs what
  // compiled (Validation::mask_expression, score_mod)
  const bool mask_expr = m.kind == MaskKind::expression;
  const auto& sm = s.attention.score_mod;
  // (an approximate kernel has no scores to modify: there the score_mod is not in force, and a
  // saved session leaves it out, as dropout outside the exact kernel)
  if (text_ok && (mask_expr || !sm.expression.empty())) {
    const TokenFacts facts = token_facts(s.text, v.tokens, m.pad_token);
    auto compile = [&](const std::string& path, const std::string& text, ExpressionRole role,
                       const std::map<std::string, double>& params) -> std::shared_ptr<const CellExpression> {
      if (text.size() > kMaxExpressionBytes) {
        p.push_back(path + " is " + std::to_string(text.size()) + " bytes; the limit is " +
                    std::to_string(kMaxExpressionBytes));
        return nullptr;
      }
      if (auto bad = utf8_first_invalid(text)) {
        p.push_back(path + " is not valid UTF-8 at byte " + std::to_string(*bad));
        return nullptr;
      }
      ExpressionProblem problem;
      auto e = CellExpression::compile(text, role, params, facts, problem);
      if (!e) p.push_back(path + ": " + problem.message);
      return e;
    };
    if (mask_expr)
      v.mask_expression = compile("attention.mask.expression", m.expression, ExpressionRole::mask, m.parameters);
    if (!sm.expression.empty() && !kernel_is_approximation(kern.kind))
      v.score_mod = compile("attention.score_mod.expression", sm.expression, ExpressionRole::score_mod, sm.parameters);
  }
  if (text_ok && context_ok && p.empty() && path == ComputePath::dense) {
    // what it costs, before anything is computed: time and memory (cost.hpp); the field's
    // budget depends on its mask's allowed cells (Engine::compute_field checks it)
    const int n = static_cast<int>(v.tokens.size());
    const int n_k = cross ? static_cast<int>(v.key_tokens.size()) : n;
    if (auto problem = budget_problem(s, n, n_k, CostUse::compute); !problem.empty()) p.push_back(problem);
  }
  return v;
}

}  // namespace attnlab
