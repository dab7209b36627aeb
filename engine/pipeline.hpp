// Session in, Result out: the one seam the CLI, the tests and the app all use.
#pragma once

#include <atomic>
#include <optional>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "attention/attention.hpp"
#include "attention/field.hpp"
#include "attention/block.hpp"
#include "analysis/metrics.hpp"
#include "session/session.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

struct LayerMetrics {
  std::vector<HeadMetrics> heads;  // per head
  Matrix head_similarity;          // (n_heads, n_heads) Jensen-Shannon divergence
  int sink_tokens = 4;             // the heads' sink_mass is their weight on the first sink_tokens keys
  long similarity_rows = -1;       // a field's: the query rows it was taken over (a sample above
                                   // kFieldSimilarityCells cells); -1: every row (dense)
};

// The positions as they were applied, so that views draw what ran (a loaded model's own table,
// its RoPE), never a table re-derived from a session.
struct Positions {
  PositionalKind kind = PositionalKind::none;
  Matrix table;        // (n, d_model) the rows added to the token embeddings (sinusoidal, learned), else empty
  std::string source;  // what the table or rotation is, as the views caption it
  double rope_base = 10000, rope_fraction = 1.0;
  RopeConvention rope_convention = RopeConvention::rotate_half;
};

// Sessions above this many tokens are computed as an attention field (Result::fields) wherever
// the field covers the session (field_supports); at or below it, as dense matrices.
inline constexpr int kDenseMaxTokens = 2048;
// A field's positional views show its first positions (the table is O(n d), the similarity n^2).
inline constexpr int kFieldPositionalRows = 512;

struct Result {
  Session session;
  Positions positions;
  std::vector<Token> tokens;      // queries (and keys in self-attention)
  std::vector<Token> key_tokens;  // cross-attention: the context's tokens (keys and values), else empty
  std::vector<LayerResult> layers;  // dense: one per layer; empty for a field
  // long sequences: one attention field per layer (O(n d) per head, tiles exact on demand), in
  // place of `layers`; its metrics come from the field's streaming pass (no head similarity)
  std::vector<FieldLayer> fields;
  bool is_field() const { return !fields.empty(); }
  int n_layers() const { return static_cast<int>(is_field() ? fields.size() : layers.size()); }
  int n_heads() const;
  int kv_head(int layer, int head) const;
  double bytes() const;  // what its matrices hold (the status bar's memory figure)
  std::vector<LayerMetrics> metrics;  // one per layer; empty when computed without metrics
  std::vector<Matrix> rollout;        // per layer l: attention rollout through layers 0..l (n, n); empty for cross
  const std::vector<Token>& keys() const { return key_tokens.empty() ? tokens : key_tokens; }
  int d_head = 0;
  std::string intervention;  // a pretrained model changed by the user: what was changed, else ""
  // A pretrained model's prediction after each position: the top k tokens by probability (softmax
  // of the final logits at temperature 1), most likely first; empty for sessions and for models
  // without an output head.
  struct NextToken {
    int id = 0;
    std::string token;  // its text (bytes as readable UTF-8)
    float p = 0;
  };
  std::vector<std::vector<NextToken>> next_tokens;
  // with ComputeOptions::next_tokens_last: the final hidden states (n, d_model; before the final
  // norm), from which HfModel::next_tokens gives any other position's list on demand
  Matrix final_hidden;
  std::string next_tokens_note;  // why a model's Result has no next tokens (no output head in the checkpoint)
  // The logit lens (ComputeOptions::logit_lens): each layer's output residual stream through the
  // final norm and unembedding, the top token per position: [layer][position]. Dense Results only.
  std::vector<std::vector<NextToken>> logit_lens;
  // Sampling the token after the last position (ComputeOptions::sample): the output distribution
  // at `temperature`, cut to the `top_k` most likely (0: all) and to the smallest set whose
  // probability reaches `top_p`, renormalised (most likely first), and the token drawn from it.
  struct Sample {
    double temperature = 1, top_p = 1;
    int top_k = 0;
    std::uint64_t seed = 0;
    std::vector<NextToken> distribution;
    NextToken token;
  };
  std::optional<Sample> sample;
  double compute_ms = 0;  // wall time of Engine::compute, for the status bar
};

struct Outcome {
  std::shared_ptr<const Result> result;  // null when invalid or cancelled
  std::vector<std::string> problems;      // why the session is invalid
  bool cancelled = false;
};

struct ComputeOptions {
  bool metrics = true;  // per-head metrics and head similarity (about 5 ms at n = 256, 12 heads)
  std::atomic<float>* progress = nullptr;  // 0..1 as the layers and their row blocks finish (null: not reported)
  bool dense = false;   // dense matrices even above kDenseMaxTokens, where they fit (CLI --dense)
  int top_k = 10;       // pretrained models: next tokens kept per position (Result::next_tokens; 0: none)
  // pretrained models: next tokens of the last position only (the others' lists empty) and
  // Result::final_hidden kept - the window, where every position's unembedding was a quarter of an
  // edit of 512 tokens through GPT-2 small (2 x 512 x 768 x 50257 FLOPs)
  bool next_tokens_last = false;
  bool logit_lens = false;  // pretrained models: Result::logit_lens (up to kDenseMaxTokens)
  std::optional<Result::Sample> sample;  // pretrained models: sample the next token with these settings
  FieldOptions field;   // the overview's size, for a field
  int sink_tokens = 4;  // pretrained models: sink_mass over the first sink_tokens keys (sessions: analysis.sink_tokens)
  // a self-attention field of at most kFieldRolloutMaxTokens tokens also gets Result::rollout,
  // every layer's (n, n), as a dense result has it (when it fits the memory budget)
  bool field_rollout = false;
};

// One layer of a session as an attention field (attention/field.hpp), for sessions too long for
// dense matrices: the layers before it run as fields too, and are dropped as soon as the next
// one has its input.
struct FieldRun {
  std::vector<Token> tokens, key_tokens;
  int layer = 0;
  FieldLayer field;
};

// Computes sessions, keeping what does not change between keystrokes (projection weights,
// token embeddings) so that an edit of the text only pays for the attention itself.
// Not thread-safe: one Engine per worker thread.
class Engine {
 public:
  Outcome compute(const Session& s, const CancelFlag* cancel = nullptr, ComputeOptions options = {});

  // (n, d_model) embeddings of the tokens plus the positional encoding.
  Matrix layer_input(const Session& s, const std::vector<Token>& tokens);
  // `layer` of session `s` as a field: validated for the field path, refused with the figures
  // when even its O(n d) state or its time does not fit. False with problems, or when cancelled.
  bool compute_field(const Session& s, int layer, const FieldOptions& opt, FieldRun& out,
                     std::vector<std::string>& problems, const CancelFlag* cancel = nullptr,
                     std::atomic<float>* progress = nullptr);
  // Layers 0..last of `s` as fields, all kept (keep_all) or only the last; tokens from `v`.
  bool run_fields(const Session& s, Validation& v, int last, bool keep_all, const FieldOptions& opt,
                  std::vector<FieldLayer>& out, std::vector<std::string>& problems, const CancelFlag* cancel,
                  std::atomic<float>* progress, float progress_end = 1.0f);
  // Layer `layer`'s projection weights (seeded; cached).
  const LayerWeights& weights(const Session& s, int layer);

 private:
  Outcome compute_as_field(const Session& s, Validation v, const CancelFlag* cancel, const ComputeOptions& options,
                           std::chrono::steady_clock::time_point t0);
  Positions positions_of(const Session& s, int n) const;  // after layer_input filled the tables
  const FfnWeights& ffn(const Session& s, int layer);

  std::uint64_t cache_seed_ = 0;
  int cache_d_model_ = -1;
  int cache_kv_dim_ = -1;
  int cache_ffn_mult_ = -1;
  std::vector<std::unique_ptr<LayerWeights>> weights_;  // per layer, made on first use
  std::vector<std::unique_ptr<FfnWeights>> ffn_;
  std::unordered_map<std::string, std::vector<float>> embeddings_;
  Matrix sinusoidal_;  // (rows >= n, d_model) grown on demand: the table depends on n and d only
  Matrix learned_;     // (rows >= n, d_model) for the cached (seed, d_model)
};

// The analyses every Result carries once its layers are in: attention rollout (self-attention
// only, with or without the residual term) and, when asked, per-head metrics and head similarity.
void add_analyses(Result& r, bool rollout, bool residual, bool metrics, int sink_tokens = 4);

// A field's per-head metrics as LayerMetrics, from the streaming pass (add_field_metrics adds the rest).
std::vector<LayerMetrics> field_metrics(const std::vector<FieldLayer>& fields);
// A field Result's metrics: the streaming pass's per head, the sink size they were taken over,
// and each layer's head similarity (analysis/metrics.hpp field_head_similarity), the progress
// going from progress_from to 1 over the layers. False when cancelled.
bool add_field_metrics(Result& r, int sink_tokens, const CancelFlag* cancel = nullptr, std::atomic<float>* progress = nullptr,
                       float progress_from = 0, float progress_to = 1);
// A field Result's whole rollout (attention/field.hpp field_rollout) when it is self-attention of
// at most kFieldRolloutMaxTokens tokens and every layer's n x n fits the memory budget beside the
// Result; otherwise nothing (rows are then computed by field_rollout_rows). False when cancelled.
bool add_field_rollout(Result& r, const CancelFlag* cancel = nullptr, std::atomic<float>* progress = nullptr,
                       float progress_from = 0, float progress_to = 1);
// Whether add_field_rollout computes for this Result, and if not, why (empty: it does).
std::string field_rollout_refusal(const Result& r);

// The attention layers' configuration a session asks for (tokens, context and progress are the
// caller's to set).
AttentionConfig attention_config(const Session& s);

// One-shot convenience for tools and tests.
Outcome compute(const Session& s);

}  // namespace attnlab
