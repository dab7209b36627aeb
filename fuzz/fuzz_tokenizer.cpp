// Fuzz target: tokenizer files and text from arbitrary bytes. The first byte picks the format
// (tokenizer.json, vocab.json + merges.txt, vocab.txt, or the built-in words/chars tokenizers);
// the rest is split at the first two 0x00 bytes into the file(s) and the text to encode.
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizers/bpe.hpp"
#include "tokenizers/tokenize.hpp"
#include "core/utf8.hpp"
#include "tokenizers/wordpiece.hpp"

namespace {
std::vector<std::string> split3(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (int k = 0; k < 2; ++k) {
    const std::size_t z = s.find('\0', at);
    if (z == std::string::npos) break;
    out.push_back(s.substr(at, z - at));
    at = z + 1;
  }
  out.push_back(s.substr(at));
  while (out.size() < 3) out.push_back("");
  return out;
}

void check_tokens(const std::string& text, const std::vector<int>& ids, const std::vector<attnlab::Token>& tokens) {
  if (ids.size() != tokens.size()) __builtin_trap();
  for (const auto& t : tokens)
    if (t.begin > t.end || t.end > text.size()) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace attnlab;
  if (size == 0) return 0;
  const auto parts = split3(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  std::string error;
  std::vector<int> ids;
  std::vector<Token> tokens;
  switch (data[0] % 4) {
    case 0: {  // tokenizer.json, text
      auto b = ByteBpe::from_tokenizer_json(parts[0], error);
      if (!b) return error.empty() ? (__builtin_trap(), 0) : 0;
      if (b->encode(parts[1] + parts[2], ids, tokens, error)) check_tokens(parts[1] + parts[2], ids, tokens);
      break;
    }
    case 1: {  // vocab.json, merges.txt, text
      auto b = ByteBpe::from_strings(parts[0], parts[1], error);
      if (!b) return error.empty() ? (__builtin_trap(), 0) : 0;
      if (b->encode(parts[2], ids, tokens, error)) check_tokens(parts[2], ids, tokens);
      break;
    }
    case 2: {  // vocab.txt, text
      BertVocabOptions o;
      o.lower_case = data[0] & 4;
      if (data[0] & 8) o.strip_accents = (data[0] & 16) != 0;
      auto w = bert_vocab_tokenizer(parts[0], o, error);
      if (!w) return error.empty() ? (__builtin_trap(), 0) : 0;
      if (w->encode(parts[1] + parts[2], ids, tokens, error)) check_tokens(parts[1] + parts[2], ids, tokens);
      break;
    }
    case 3: {  // the session tokenizers on any valid UTF-8, with a special token
      const std::string text = parts[1] + parts[2];
      if (utf8_first_invalid(text)) return 0;
      for (const auto& t : tokenize_words(text, {parts[0]}))
        if (t.end > text.size() || text.substr(t.begin, t.end - t.begin) != t.text) __builtin_trap();
      for (const auto& t : tokenize_chars(text, {parts[0]}))
        if (t.end > text.size() || text.substr(t.begin, t.end - t.begin) != t.text) __builtin_trap();
      break;
    }
  }
  return 0;
}
