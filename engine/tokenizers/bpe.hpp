// Tokenizers as Hugging Face folders ship them: vocab.json + merges.txt (GPT-2's byte-level BPE),
// or tokenizer.json's whole pipeline - added tokens, normalizer (normalizer.hpp), pre-tokenizer
// (pretokenizer.hpp), model, post-processor - with the model one of
//  - byte-level BPE (GPT-2, Radford et al. 2019; the reference encoder.py) when the pre-tokenizer
//    has a ByteLevel step: each piece's UTF-8 bytes are mapped to printable code points and the
//    merges are applied in rank order;
//  - BPE over code points otherwise (SentencePiece-style: Llama 2, Mistral, Gemma), a symbol
//    outside the vocabulary becoming its UTF-8 bytes as <0xNN> tokens (byte_fallback) or the
//    unknown token (fused when fuse_unk);
//  - WordPiece (BERT, Devlin et al. 2019): greedy longest match first, continuations prefixed
//    "##", a word with no split the unknown token;
//  - Unigram (Kudo 2018; SentencePiece, T5, ALBERT): the segmentation of highest total score
//    (Viterbi over a trie of the pieces), a character no piece covers the unknown token at the
//    lowest score less 10, consecutive unknowns fused, byte fallback after;
//  - WordLevel (attnlab's trained task models): each pre-tokenized piece one vocabulary entry,
//    or the unknown token.
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

#include "tokenizers/normalizer.hpp"
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
  bool metaspace() const { return metaspace_; }  // BPE over code points (SentencePiece-style)
  bool wordpiece() const { return wordpiece_; }
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
  struct Sub {  // a token of one piece: id, bytes [b, e) of the piece, and its text when not those bytes
    int id;
    std::size_t b, e;
    std::string text;
  };
  // the model on one piece of normalized, pre-tokenized text
  bool encode_piece(const std::string& piece, std::vector<Sub>& out, std::string& error) const;
  bool encode_chars(const std::string& piece, std::vector<Sub>& out, std::string& error) const;
  bool encode_bytes(const std::string& piece, std::vector<Sub>& out, std::string& error) const;
  void encode_wordpiece(const std::string& piece, std::vector<Sub>& out) const;
  bool encode_unigram(const std::string& piece, std::vector<Sub>& out, std::string& error) const;
  // source[b, e): a stretch between raw added tokens, normalized, then split at normalized added
  // tokens; each stretch between those is rewritten, pre-tokenized and tokenized
  bool encode_segment(const std::string& source, std::size_t b, std::size_t e, std::vector<int>& ids,
                      std::vector<Token>& tokens, std::string& error) const;
  bool encode_stretch(const std::string& source, Normalized stretch, std::vector<int>& ids, std::vector<Token>& tokens,
                      std::string& error) const;
  bool read_specials(const nlohmann::json& j, std::string& error);
  bool read_unigram(const nlohmann::json& model, std::string& error);  // model.vocab [[piece, score]], unk_id  // added_tokens, post_processor
  bool finish(std::string& error);  // byte symbols, the largest id
  // Hugging Face's rule: a merge's parts and its result must all be in the vocabulary
  bool add_merge(const std::string& a, const std::string& b, int rank, std::string& error);

  // tokenizer.json's added_tokens, matched before anything else (Hugging Face's AddedVocabulary):
  // the longest at the leftmost position; lstrip / rstrip take the whitespace beside it into the
  // token, single_word needs no word character on either side. Tokens with normalized: false are
  // found in the typed text, the others in the normalizer's output (their content normalized too).
  struct Added {
    std::string content;
    int id;
    bool lstrip, rstrip, single_word;
  };
  struct AddedSet {
    std::vector<Added> tokens;
    std::vector<int> by_byte[256];  // indices into tokens, by their first byte
  };
  AddedSet raw_added_, normalized_added_;
  struct AddedMatch {
    const Added* token;
    std::size_t at, b0, b1;  // where the content starts; the span with the whitespace stripped into it
  };
  // the next added token of `set` in t at or after pos (its span not reaching before `from`)
  static bool next_added(const AddedSet& set, const std::string& t, std::size_t from, std::size_t pos, AddedMatch& m);
  struct Special {
    std::string text;
    int id;
  };
  std::vector<Special> prefix_, suffix_;  // the post-processor's tokens before and after the sequence
  bool ignore_merges_ = false;  // model.ignore_merges: a piece that is a vocabulary entry is that one token
  bool metaspace_ = false;  // BPE over code points instead of byte-level
  bool byte_fallback_ = false, fuse_unk_ = false;
  std::string continuing_bpe_, word_suffix_;  // BPE's continuing_subword_prefix, end_of_word_suffix
  int unk_ = -1;  // the unknown token's id, -1 when the model has none
  bool wordpiece_ = false;
  bool wordlevel_ = false;  // WordLevel: a piece is looked up whole
  bool unigram_ = false;
  std::vector<double> scores_;  // Unigram: each id's log probability
  double min_score_ = 0;
  std::unordered_map<std::uint64_t, int> trie_;  // Unigram: (node << 8 | byte) -> child node; node 0 the root
  std::vector<int> trie_id_;                      // the id of the piece ending at each node, -1: none
  std::string continuing_ = "##";  // WordPiece's continuation prefix
  std::size_t max_word_chars_ = 100;  // WordPiece: a longer word is the unknown token
  std::unique_ptr<Normalizer> norm_;  // null: none
  std::unique_ptr<PreTokenizer> pre_;  // the pieces, from the tokenizer files
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
