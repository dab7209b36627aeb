// BERT's tokenizer (Devlin et al. 2019; Hugging Face BertTokenizer): clean and split on
// whitespace and punctuation, lower-case and strip accents when the model is uncased, then
// WordPiece's greedy longest-match-first with "##" continuations; [CLS] ... [SEP] around it.
// Accent stripping covers Latin-1 and Latin Extended-A letters (a table, not full NFD).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizers/tokenize.hpp"

namespace attnlab {

class WordPiece {
 public:
  // vocab.txt (one token a line, id = line number); do_lower_case from tokenizer_config.json (default true)
  static std::unique_ptr<WordPiece> load(const std::string& dir, std::string& error);
  static std::unique_ptr<WordPiece> from_vocab(const std::string& vocab_txt, bool lower_case, std::string& error);
  bool encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
  int max_id() const { return static_cast<int>(vocab_.size()) - 1; }  // ids are line numbers
  std::string token_text(int id) const {  // the vocabulary's line ("##ing" as written); "" outside it
    return id >= 0 && id < static_cast<int>(lines_.size()) ? lines_[id] : std::string();
  }

 private:
  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> lines_;
  bool lower_ = true;
  int unk_ = -1, cls_ = -1, sep_ = -1;
};

}  // namespace attnlab
