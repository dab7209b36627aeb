// Text -> tokens. Each token keeps its byte span in the source text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab {

struct Token {
  std::string text;
  std::size_t begin = 0;  // byte offsets into the session text, [begin, end)
  std::size_t end = 0;
};

// `words`: maximal runs of word characters (letters, digits, marks, any non-ASCII code point that
// is not punctuation or space), with an inner apostrophe kept ("don't", "it's"); every other
// non-space character is a token of its own. Whitespace separates and is dropped.
// `specials` (e.g. the pad token "[PAD]") are kept whole wherever they occur, in both tokenizers.
std::vector<Token> tokenize_words(std::string_view text, const std::vector<std::string>& specials = {});

// `chars`: one token per Unicode code point, whitespace included.
std::vector<Token> tokenize_chars(std::string_view text, const std::vector<std::string>& specials = {});

// How a token reads in the UI: whitespace made visible (space as U+2423, newline as U+23CE).
std::string token_label(std::string_view token_text);

}  // namespace attnlab
