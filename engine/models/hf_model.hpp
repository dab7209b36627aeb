// Pretrained models from a Hugging Face folder (config.json, model.safetensors or shards with
// model.safetensors.index.json, tokenizer files). The forward pass keeps every layer's per-head
// q, k, v, logits, weights and outputs in the same Result the random-weight engine produces.
// The families (GPT-2, BERT, Llama) are files of their own under engine/models/ (family.hpp);
// this class finds the family from config.json and runs it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/cancel.hpp"
#include "models/family.hpp"
#include "pipeline.hpp"

namespace attnlab {

// Activation patching (Vig et al. 2020; Meng et al. 2022; Wang et al. 2023): the clean text's
// run with one piece taken from the run of a corrupted text of as many tokens (noising), or the
// corrupted run with one piece from the clean run (denoising), for every piece: each head's
// output (a layers x heads grid) or the residual stream entering a layer at one position (layers
// x positions). Each cell is the metric read at one position of the patched run.
struct PatchRequest {
  std::string clean, corrupted;
  enum class Grid { heads, residual } grid = Grid::heads;
  // noising: which pieces are necessary (the metric falls from clean); denoising: which are
  // sufficient (it rises from corrupted)
  enum class Direction { noising, denoising } direction = Direction::noising;
  enum class Metric { logit_diff, prob } metric = Metric::logit_diff;
  // logit_diff: logit(a) - logit(b); prob: softmax p(a). -1: a the clean run's top token, b the
  // corrupted run's (its second when they agree)
  int token_a = -1, token_b = -1;
  int position = -1;  // where the metric is read; -1: the last token
};
struct PatchGrid {
  PatchRequest request;  // with position and tokens resolved
  Eigen::MatrixXd values;  // (layers, heads) or (layers, positions)
  double clean = 0, corrupted = 0;  // the metric on the unpatched runs
  std::vector<Token> tokens, corrupted_tokens;
  std::string token_a_text, token_b_text;
  int runs = 0;          // forward passes (each from the patched layer on: the prefix is the unpatched run's)
  double layers_run = 0;  // their layers, in units of a whole forward pass
};

// Generation (causal families): tokens appended one at a time, each from the output after the
// last one, greedily (the most likely; the lowest id on a tie) or drawn as Result::Sample says
// (draw t from uniform t of the seed's stream "sample.next"). With the KV cache (the default)
// the text runs once and each new token runs alone against the cached keys and values.
struct GenerateOptions {
  int tokens = 20;
  bool greedy = true;
  Result::Sample sample;  // temperature, top_k, top_p, seed when not greedy
  bool use_cache = true;
};
struct Generation {
  std::vector<int> ids;                       // the text's, then the generated ones
  std::vector<Result::NextToken> generated;   // each with its probability (of the distribution it came from)
  std::string text;                           // the text, then the generated tokens' texts
  bool cached = false;                        // the KV cache was used
  std::string note;                           // why it stopped early or ran without the cache
};

class HfModel {
 public:
  // Reads and checks everything (config values, every tensor's name and shape) before it
  // returns; `progress` (0..1) advances per tensor, `cancel` stops it (failure.cancelled).
  static std::unique_ptr<HfModel> load(const std::string& dir, Failure& failure, std::atomic<float>* progress = nullptr,
                                       const CancelFlag* cancel = nullptr);
  ~HfModel();

  const ModelInfo& info() const { return info_; }
  // The ids the model is run on (BOS included where the folder's tokenizer adds it), and tokens.
  bool tokenize(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const {
    return tokenizer_.encode(text, ids, tokens, error);
  }
  // The text through the model. Problems (too many tokens, invalid UTF-8) come back in Outcome.
  Outcome compute(const std::string& text, const CancelFlag* cancel = nullptr, ComputeOptions options = {},
                  const Intervention& intervention = {}) const;
  bool generate(const std::string& text, const GenerateOptions& options, Generation& out, std::string& error,
                std::atomic<float>* progress = nullptr, const CancelFlag* cancel = nullptr) const;
  // The id of a text that is one token of the vocabulary (a BOS the tokenizer adds not counted).
  bool single_token(const std::string& text, int& id, std::string& error) const;
  std::string token_text(int id) const { return tokenizer_.token_text(id); }
  // The patching grid; false with the reason (or cancelled: error empty). `progress` 0..1.
  bool patch(const PatchRequest& request, PatchGrid& out, std::string& error, std::atomic<float>* progress = nullptr,
             const CancelFlag* cancel = nullptr) const;

  // The top k of softmax(unembed(hidden)) per row of final hidden states (Result::final_hidden's
  // rows); note says why there are none (no output head); false when cancelled.
  bool next_tokens(const Matrix& hidden, int k, std::vector<std::vector<Result::NextToken>>& out, std::string& note,
                   const CancelFlag* cancel = nullptr) const;

 private:
  HfModel();
  // logits: (1, vocab); the draw is uniform `draw` of the seed's stream
  Result::Sample sample_next(const Matrix& logits, const Result::Sample& ask, std::uint64_t draw = 0) const;
  // ids of a text the model can run (checked: not empty, within the context and the vocabulary)
  bool model_ids(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
  // the metric of a patch request on one row of a final residual stream
  bool patch_metric(const Matrix& hidden_row, const PatchRequest& q, double& value, std::string& why) const;
  ModelInfo info_;
  const Family* family_ = nullptr;
  ModelTokenizer tokenizer_;
  Weights weights_;
};

}  // namespace attnlab
