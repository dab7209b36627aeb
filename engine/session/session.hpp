// The user's whole configuration as one value, read from and written to JSON.
// docs/session-format.md documents the format; session_options() is the one table of every
// option with its allowed values and ranges (used by parsing, validation, the CLI and the UI).
#pragma once

#include <array>
#include <map>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mask_kinds.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

enum class TokenizerKind { words, chars };
enum class PositionalKind { none, sinusoidal, learned, rope, alibi, t5 };
enum class RopeConvention { rotate_half, interleaved };
enum class ScoreKind { scaled_dot, dot, additive, general, cosine };
enum class NormalizerKind { softmax, sparsemax, sigmoid };
enum class KvSharing { mha, mqa, gqa };
enum class BlockKind { attention, pre_ln };
enum class KernelKind { exact, flash, linear, performer, linformer, nystrom };
// allowed[i][j], i = query, j = key (docs/variants.md has each pattern's definition and source).
// MaskKind and kMaskKinds (name, causal by construction, defined for cross-attention, options
// read) are generated from engine/attention/mask_kinds.json.

struct Session {
  std::string text = "The cat sat on the mat because it was tired.";
  struct Tokenizer {
    TokenizerKind kind = TokenizerKind::words;
    bool operator==(const Tokenizer&) const = default;
  } tokenizer;
  struct Model {
    int d_model = 64;
    int n_heads = 4;
    std::uint64_t seed = 42;
    KvSharing kv_sharing = KvSharing::mha;  // query head h reads K/V head h / (n_heads / n_kv_heads)
    int n_kv_heads = 2;                     // for gqa (mha: n_heads, mqa: 1)
    int n_layers = 1;
    BlockKind block = BlockKind::attention;  // a bare attention layer, or a pre-LN transformer block
    int ffn_mult = 4;                        // pre_ln: FFN width = ffn_mult * d_model
    int kv_heads() const {
      return kv_sharing == KvSharing::mha ? n_heads : kv_sharing == KvSharing::mqa ? 1 : n_kv_heads;
    }
    bool operator==(const Model&) const = default;
  } model;
  struct Positional {
    PositionalKind kind = PositionalKind::sinusoidal;
    double rope_base = 10000;     // theta
    double rope_fraction = 1.0;   // share of d_head rotated (rounded down to an even count)
    RopeConvention rope_convention = RopeConvention::rotate_half;
    int t5_num_buckets = 32;
    int t5_max_distance = 128;
    bool t5_bidirectional = true;
    bool operator==(const Positional&) const = default;
  } positional;
  struct Attention {
    struct Score {
      ScoreKind kind = ScoreKind::scaled_dot;
      double cosine_temperature = 0.1;  // cosine: logits = cos(q, k) / this
      bool operator==(const Score&) const = default;
    } score;
    struct Normalizer {
      NormalizerKind kind = NormalizerKind::softmax;
      double temperature = 1.0;
      bool sigmoid_bias_auto = true;  // sigmoid bias -log n_k (Ramapuram et al. 2024)
      double sigmoid_bias = 0.0;      // used when not auto
      bool operator==(const Normalizer&) const = default;
    } normalizer;
    struct Sink {  // gpt-oss: a learned logit per head, a key with no value that softmax also normalises over
      bool enabled = false;
      double logit = 0.0;  // on the scale of the logits (divided by the temperature like them)
      bool operator==(const Sink&) const = default;
    } sink;
    struct Differential {  // DIFF Transformer (Ye et al. 2024): two softmax maps of half the head, A1 - lambda A2
      bool enabled = false;
      double lambda = 0.2;  // the paper's lambda_init for the first layer: 0.8 - 0.6 exp(0)
      bool operator==(const Differential&) const = default;
    } differential;
    double dropout = 0.0;  // probability of dropping a weight (inverted scaling by 1 / (1 - p))
    struct Kernel {  // how attention is computed: exactly, tiled ("flash"), or approximated
      KernelKind kind = KernelKind::exact;
      int block_rows = 4;        // flash B_r
      int block_cols = 4;        // flash B_c
      int features = 64;         // performer m
      bool orthogonal = true;    // performer: orthogonal random features
      int projected_length = 4;  // linformer k
      int landmarks = 4;         // nystrom m
      bool operator==(const Kernel&) const = default;
    } kernel;
    struct Mask {
      MaskKind kind = MaskKind::causal;
      int window = 2;                  // w: keys each side (sliding), or back (causal sliding)
      int dilation = 2;                // d: dilated sliding window
      std::vector<int> globals = {0};  // global positions (Longformer, BigBird)
      int random_keys = 2;             // r: BigBird random keys per non-global query
      int block = 4;                   // b: block-local
      int stride = 4;                  // l: Sparse Transformer stride / block
      int summary = 1;                 // c: Sparse Transformer fixed summary columns
      int n_buckets = 4;               // LSH buckets (even)
      int n_rounds = 1;                // LSH hashing rounds, unioned
      int sinks = 4;                   // s: StreamingLLM attention sinks, the first s tokens
      bool causal = false;             // intersect with causal (where the kind is not causal already)
      std::string pad_token = "[PAD]";
      std::vector<std::array<int, 2>> cells;  // custom: allowed (query, key) cells
      std::string expression = "k <= q";       // expression: allowed where non-zero (attention/expression.hpp)
      std::map<std::string, double> parameters;  // expression: named numbers it reads
      bool operator==(const Mask&) const = default;
    } mask;
    struct ScoreMod {  // FlexAttention's score_mod: the cell's score replaced by an expression of it
      std::string expression;  // empty: none
      std::map<std::string, double> parameters;
      bool operator==(const ScoreMod&) const = default;
    } score_mod;
    bool operator==(const Attention&) const = default;
  } attention;
  struct Context {  // cross-attention: this text supplies the keys and values
    bool enabled = false;
    std::string text = "The tired cat slept on a warm mat.";
    bool operator==(const Context&) const = default;
  } context;
  struct Analysis {
    bool rollout_residual = true;  // attention rollout with the residual term (Abnar & Zuidema 2020)
    int sink_tokens = 4;           // sink mass: the weight on the first s tokens (StreamingLLM's 4)
    bool operator==(const Analysis&) const = default;
  } analysis;

  int d_head() const { return n_heads_ok() ? model.d_model / model.n_heads : 0; }
  bool n_heads_ok() const { return model.n_heads > 0 && model.d_model % model.n_heads == 0; }
  bool operator==(const Session&) const = default;
};

// Mask kinds that may be intersected with causal (the others are causal by definition or would
// gain nothing).
bool mask_combines_with_causal(MaskKind k);
// The pattern in force allows no key after its query: causal by construction, or intersected.
bool mask_is_causal(const Session::Attention::Mask& m);

// One option of the session format.
struct OptionSpec {
  std::string path;                  // dotted JSON path, e.g. "attention.mask.kind"
  std::string type;                  // "string", "enum", "int", "uint64", "number"
  std::vector<std::string> choices;  // for "enum"
  double min = 0, max = 0;           // for "int", "number" (inclusive); "string": max bytes
  std::string default_value;         // as JSON text
  std::string help;
  std::string applies;               // "" = always, else "mask.kind in ..." (documentation)
};
const std::vector<OptionSpec>& session_options();
const OptionSpec& option(std::string_view path);
std::string options_json();      // every option as a JSON document (attnlab-cli options)
std::string options_markdown();  // the same as a Markdown table (docs/session-format.md)

// Generic access by path, for editors that draw a widget per option (values as JSON text).
bool option_relevant(const Session& s, std::string_view path);  // is this option in force?
std::string option_get(const Session& s, std::string_view path);
std::string option_set(Session& s, std::string_view path, std::string_view json_value);  // problem, or ""

// Limits that keep a session computable on a desktop.
inline constexpr std::size_t kMaxTextBytes = 1 << 20;
inline constexpr std::size_t kMaxExpressionBytes = 4096;  // a mask or score_mod expression
inline constexpr std::size_t kMaxTokens = 8192;
// The attention field (attention/field.hpp) holds O(n d) per layer, not n^2: its sessions may be
// this long, and memory is what limits them (pipeline.hpp: Engine::compute_field).
inline constexpr std::size_t kMaxFieldTokens = 131072;
enum class ComputePath { dense, field };
// Time and memory limits: cost.hpp (validate() applies them).

// Enum <-> name, as written in JSON.
const char* name(TokenizerKind k);
const char* name(PositionalKind k);
const char* name(RopeConvention k);
const char* name(ScoreKind k);
const char* name(NormalizerKind k);
const char* name(KvSharing k);
const char* name(BlockKind k);
const char* name(KernelKind k);
// Approximations replace the score and the normalizer: softmax(q.k / sqrt(d_head)) is what they approximate.
inline bool kernel_is_approximation(KernelKind k) { return k != KernelKind::exact && k != KernelKind::flash; }
const char* name(MaskKind k);

struct SessionParse {
  std::optional<Session> session;    // set when the JSON was read without problems
  std::vector<std::string> problems;  // every problem found, each a sentence a user can act on
};
// Reads a session; missing keys take their defaults, unknown keys and wrong types are problems.
// Range checks are validate()'s job, so a parsed session may still be invalid.
SessionParse parse_session(std::string_view json_text);
std::string to_json(const Session& s);  // pretty JSON, every key written

class CellExpression;
struct Validation {
  std::vector<std::string> problems;
  // the mask (kind expression) and score_mod compiled, when they are fine
  std::shared_ptr<const CellExpression> mask_expression, score_mod;
  std::vector<Token> tokens;      // the tokenized text, when the text itself is fine
  std::vector<Token> key_tokens;  // the tokenized context (cross-attention), else empty
  bool ok() const { return problems.empty(); }
};
// Every problem of a session, each with its value and the rule it breaks.
Validation validate(const Session& s, ComputePath path = ComputePath::dense);

// The options a problem of validate() is about (its paths), so a window can show it beside the
// controls that cause it: the option named in it, or the kind a rule concerns.
std::vector<std::string> problem_options(const std::string& problem);

std::vector<Token> tokenize(const Session& s);
std::vector<Token> tokenize_context(const Session& s);  // the context text, with the same tokenizer

// Mask kinds defined between two different sequences (cross-attention).
bool mask_allows_cross(MaskKind k);

}  // namespace attnlab
