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

 private:
  HfModel();
  // top k of softmax(unembed(hidden)) per row; note says why there are none; false when cancelled
  Result::Sample sample_next(const Matrix& logits, const Result::Sample& ask) const;  // logits: (1, vocab)
  bool next_tokens(const Matrix& hidden, int k, std::vector<std::vector<Result::NextToken>>& out, std::string& note,
                   const CancelFlag* cancel) const;
  ModelInfo info_;
  const Family* family_ = nullptr;
  ModelTokenizer tokenizer_;
  Weights weights_;
};

}  // namespace attnlab
