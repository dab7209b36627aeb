// BPE tokenizers as Hugging Face folders ship them. Byte-level (GPT-2, Radford et al. 2019; the
// reference encoder.py): text is split by GPT-2's pre-tokenising pattern, each piece's UTF-8
// bytes are mapped to printable code points, and the merges are applied in rank order.
// Metaspace with byte fallback (the Llama 2 / TinyLlama tokenizer.json, SentencePiece-style):
// "▁" is prepended and replaces every space, merges apply to code points, and a symbol outside
// the vocabulary becomes its UTF-8 bytes as <0xNN> tokens. Reads vocab.json + merges.txt, or
// tokenizer.json (its normalizer tells the two apart).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenize.hpp"

namespace attnlab {

class ByteBpe {
 public:
  // From a model folder: vocab.json + merges.txt, else tokenizer.json (model.vocab, model.merges).
  static std::unique_ptr<ByteBpe> load(const std::string& dir, std::string& error);
  static std::unique_ptr<ByteBpe> from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                               std::string& error);

  // ids and tokens (text: the bytes the token stands for, as readable UTF-8; offsets into `text`)
  bool encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
  bool metaspace() const { return metaspace_; }
  int id(const std::string& token) const {  // -1 when absent
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
  }

  // GPT-2's pre-tokenisation pattern, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
  // with \p{L} taken as ASCII letters and every non-ASCII code point that is not a space, and
  // \p{N} as ASCII digits. Returns byte ranges [begin, end).
  static std::vector<std::pair<std::size_t, std::size_t>> pre_tokenize(const std::string& text);

 private:
  bool encode_metaspace(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                        std::string& error) const;
  bool metaspace_ = false;  // Llama style (see above) instead of byte-level
  std::unordered_map<std::string, int> vocab_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  std::string byte_to_symbol_[256];
  std::unordered_map<std::string, unsigned char> symbol_to_byte_;
};

}  // namespace attnlab
