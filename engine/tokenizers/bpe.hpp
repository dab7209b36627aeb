// BPE tokenizers as Hugging Face folders ship them. Byte-level (GPT-2, Radford et al. 2019; the
// reference encoder.py): text is cut into pieces by the pre-tokenizer the files give
// (pretokenizer.hpp: tokenizer.json's pre_tokenizer; GPT-2's ByteLevel for vocab.json +
// merges.txt), each piece's UTF-8 bytes are mapped to printable code points, and the merges are
// applied in rank order.
// Metaspace with byte fallback (the Llama 2 / TinyLlama tokenizer.json, SentencePiece-style):
// "▁" is prepended and replaces every space, merges apply to code points, and a symbol outside
// the vocabulary becomes its UTF-8 bytes as <0xNN> tokens. Reads vocab.json + merges.txt, or
// tokenizer.json (its normalizer tells the two apart).
//
// Merging is the priority-queue form (lowest rank first, leftmost first among equal ranks, as
// Hugging Face tokenizers' Word::merge_all): O(m log m) for a piece of m symbols, so a 1 MB
// metaspace text, which is one piece, costs milliseconds, not minutes. Byte-level pieces are
// cached by their text.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizers/pretokenizer.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

class ByteBpe {
 public:
  // From a model folder: vocab.json + merges.txt, else tokenizer.json (model.vocab, model.merges).
  // Every file is checked (regular file, size, JSON, types) and a problem names the file.
  static std::unique_ptr<ByteBpe> load(const std::string& dir, std::string& error);
  static std::unique_ptr<ByteBpe> from_strings(const std::string& vocab_json, const std::string& merges_txt,
                                               std::string& error);
  static std::unique_ptr<ByteBpe> from_tokenizer_json(const std::string& tokenizer_json, std::string& error);

  // ids and tokens (text: the bytes the token stands for, as readable UTF-8; offsets into `text`)
  bool encode(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
  bool metaspace() const { return metaspace_; }
  int id(const std::string& token) const {  // -1 when absent
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
  }
  int max_id() const { return max_id_; }  // the largest id in the vocabulary, -1 when empty
  // What token `id` stands for, as text: byte-level symbols back to their bytes, metaspace's
  // U+2581 as a space and <0xNN> byte-fallback pieces as that byte (a lone byte of a multi-byte
  // character stays a byte: the caller's JSON writer shows it as U+FFFD); "" outside the vocabulary.
  std::string token_text(int id) const;
  // tokenizer.json's post_processor adds special tokens around the sequence (TemplateProcessing,
  // BertProcessing, RobertaProcessing): the family's own BOS rule must then not add one again.
  bool adds_special_tokens() const { return !prefix_.empty() || !suffix_.empty(); }

 private:
  struct Piece {  // a symbol of a piece: its vocabulary id (-1: not in the vocabulary), the source
    int id;         // bytes it covers, and the initial symbol it grew from (the leftmost)
    std::size_t bytes;
    int first = 0;
  };
  void merge(std::vector<Piece>& word) const;  // the merges, lowest rank first
  bool encode_metaspace(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens,
                        std::string& error) const;
  bool encode_bytes(const std::string& text, std::vector<int>& ids, std::vector<Token>& tokens, std::string& error) const;
  bool encode_segment(const std::string& text, std::size_t at, std::vector<int>& ids, std::vector<Token>& tokens,
                      std::string& error) const;  // one stretch between added tokens, offsets + at
  bool read_specials(const nlohmann::json& j, std::string& error);  // added_tokens, post_processor
  bool finish(std::string& error);  // byte symbols, the largest id
  // Hugging Face's rule: a merge's parts and its result must all be in the vocabulary
  bool add_merge(const std::string& a, const std::string& b, int rank, std::string& error);

  // tokenizer.json's added_tokens, matched in the typed text before anything else (Hugging Face's
  // AddedVocabulary): the longest at the leftmost position; lstrip / rstrip take the whitespace
  // beside it into the token, single_word needs no word character on either side.
  struct Added {
    std::string content;
    int id;
    bool lstrip, rstrip, single_word;
  };
  std::vector<Added> added_;
  std::vector<int> added_by_byte_[256];  // indices into added_, by their first byte
  struct Special {
    std::string text;
    int id;
  };
  std::vector<Special> prefix_, suffix_;  // the post-processor's tokens before and after the sequence
  bool ignore_merges_ = false;  // model.ignore_merges: a piece that is a vocabulary entry is that one token
  bool metaspace_ = false;  // Llama style (see above) instead of byte-level
  std::unique_ptr<PreTokenizer> pre_;  // byte-level: the pieces, from the tokenizer files
  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> pieces_;  // id -> vocabulary string
  std::unordered_map<std::string, unsigned char> symbol_byte_;  // byte-level symbol -> its byte
  int max_id_ = -1;
  struct Merge {
    int rank, result;  // result: the merged symbol's id
  };
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::string byte_to_symbol_[256];
  int byte_id_[256] = {};  // vocabulary id of each byte's symbol, -1 when absent

  // byte-level: pieces seen before, by their text (bounded: cleared when full)
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<Piece>> cache_;
};

}  // namespace attnlab
