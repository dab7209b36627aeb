// The normalizer of a tokenizer.json (Hugging Face tokenizers): what the text becomes before it
// is cut into pieces. NFC, NFD, NFKC, NFKD (Unicode normalization forms, UAX #15, by utf8proc),
// Lowercase (full case mapping, as Rust's char::to_lowercase), StripAccents (drops combining
// marks), Strip, Replace (a string or a regex, PCRE2), Prepend, Nmt, BertNormalizer (clean_text,
// handle_chinese_chars, strip_accents, lowercase) and Sequence of these. Precompiled
// (SentencePiece's compiled character map) and ByteLevel are refused by name.
//
// Every step keeps, for each byte of its output, the span of the original text it came from, so
// a token's offsets still point into what the user typed (a composed "é" from "e" + U+0301 covers
// both source code points; a prepended "▁" covers none).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace attnlab {

struct Normalized {
  std::string text;
  std::vector<std::uint32_t> begin, end;  // per byte of text: its source span [begin, end)
  // `source` unchanged, each byte its own span, offsets shifted by `at`
  static Normalized of(const std::string& source, std::size_t at = 0);
  // the source span of text's bytes [b, e) (b < e); for b == e, the empty span where it stands
  std::pair<std::size_t, std::size_t> source_span(std::size_t b, std::size_t e) const;
};

class Normalizer {
 public:
  // From tokenizer.json's "normalizer" (null: nothing to do, a normalizer with no steps).
  // Null result with a one-line reason for a type or option we do not implement.
  static std::unique_ptr<Normalizer> from_json(const nlohmann::json& j, std::string& error);
  ~Normalizer();
  Normalizer(const Normalizer&) = delete;
  Normalizer& operator=(const Normalizer&) = delete;
  bool empty() const { return steps_.empty(); }
  // Applies every step to valid UTF-8 `n` (the result is valid UTF-8). False only when a Replace
  // regex backtracks beyond its limit.
  bool apply(Normalized& n, std::string& error) const;
  std::string apply(const std::string& text) const;  // tests and added tokens: text only

  struct Step;

 private:
  Normalizer() = default;
  bool add(const nlohmann::json& j, std::string& error, int depth);
  std::vector<std::unique_ptr<Step>> steps_;
};

// Unicode helpers the pre-tokenizers and models share (utf8proc's tables)
bool is_unicode_whitespace(char32_t c);  // the White_Space property (Rust's char::is_whitespace)

}  // namespace attnlab
