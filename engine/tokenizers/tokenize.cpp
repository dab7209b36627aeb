#include "tokenizers/tokenize.hpp"

#include "core/utf8.hpp"

namespace attnlab {

namespace {
bool is_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0x85 ||
         c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Punctuation and symbols outside ASCII that read as separate tokens.
bool is_unicode_punct(char32_t c) {
  return (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) ||  // general punctuation
         c == 0xA1 || c == 0xAB || c == 0xBB || c == 0xBF || c == 0xB7 ||  // ¡ « » ¿ ·
         (c >= 0x3000 && c <= 0x303F) ||                                   // CJK punctuation
         (c >= 0xFF01 && c <= 0xFF0F);                                     // full-width ! to /
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return !is_space(c) && !is_unicode_punct(c);
}

bool is_apostrophe(char32_t c) { return c == '\'' || c == 0x2019; }

// The special token that starts at byte `at`, if any (longest first).
std::size_t special_at(std::string_view text, std::size_t at, const std::vector<std::string>& specials) {
  std::size_t best = 0;
  for (const auto& sp : specials)
    if (!sp.empty() && sp.size() > best && text.substr(at, sp.size()) == sp) best = sp.size();
  return best;
}

// Index of the first code point at or after byte `end`.
std::size_t skip_to(const std::vector<CodePoint>& cps, std::size_t i, std::size_t end) {
  while (i < cps.size() && cps[i].begin < end) ++i;
  return i;
}
}  // namespace

std::vector<Token> tokenize_words(std::string_view text, const std::vector<std::string>& specials) {
  const auto cps = utf8_decode(text);
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < cps.size()) {
    const char32_t c = cps[i].value;
    if (const std::size_t len = special_at(text, cps[i].begin, specials)) {
      const std::size_t b = cps[i].begin;
      out.push_back({std::string(text.substr(b, len)), b, b + len});
      i = skip_to(cps, i, b + len);
      continue;
    }
    if (is_space(c)) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    if (is_word_char(c)) {
      while (j < cps.size()) {
        if (special_at(text, cps[j].begin, specials)) break;
        if (is_word_char(cps[j].value)) {
          ++j;
        } else if (is_apostrophe(cps[j].value) && j + 1 < cps.size() && is_word_char(cps[j + 1].value)) {
          j += 2;
        } else {
          break;
        }
      }
    }
    const std::size_t b = cps[i].begin, e = cps[j - 1].end;
    out.push_back({std::string(text.substr(b, e - b)), b, e});
    i = j;
  }
  return out;
}

std::vector<Token> tokenize_chars(std::string_view text, const std::vector<std::string>& specials) {
  const auto cps = utf8_decode(text);
  std::vector<Token> out;
  for (std::size_t i = 0; i < cps.size();) {
    std::size_t len = special_at(text, cps[i].begin, specials);
    if (len == 0) len = cps[i].end - cps[i].begin;
    out.push_back({std::string(text.substr(cps[i].begin, len)), cps[i].begin, cps[i].begin + len});
    i = skip_to(cps, i, cps[i].begin + len);
  }
  return out;
}

std::string token_label(std::string_view token_text) {
  std::string out;
  for (const auto& cp : utf8_decode(token_text)) {
    switch (cp.value) {
      case ' ': out += "\u2423"; break;
      case '\n': out += "\u23CE"; break;
      case '\t': out += "\u21E5"; break;
      case '\r': out += "\u240D"; break;
      default: out += token_text.substr(cp.begin, cp.end - cp.begin);
    }
  }
  return out;
}

}  // namespace attnlab
