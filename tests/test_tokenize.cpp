#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tokenize.hpp"
#include "utf8.hpp"

using namespace attnlab;

namespace {
std::vector<std::string> texts(const std::vector<Token>& t) {
  std::vector<std::string> out;
  for (const auto& x : t) out.push_back(x.text);
  return out;
}
}  // namespace

TEST_CASE("tokenize: words splits punctuation off and keeps inner apostrophes") {
  using V = std::vector<std::string>;
  CHECK(texts(tokenize_words("The cat sat on the mat.")) == V{"The", "cat", "sat", "on", "the", "mat", "."});
  CHECK(texts(tokenize_words("I don't know, do you?")) == V{"I", "don't", "know", ",", "do", "you", "?"});
  CHECK(texts(tokenize_words("  'quoted'  ")) == V{"'", "quoted", "'"});
  CHECK(texts(tokenize_words("a--b...c")) == V{"a", "-", "-", "b", ".", ".", ".", "c"});
  CHECK(texts(tokenize_words("x2 = 3.5")) == V{"x2", "=", "3", ".", "5"});
  CHECK(texts(tokenize_words("café «déjà» vu—ok")) == V{"café", "«", "déjà", "»", "vu", "—", "ok"});
  CHECK(texts(tokenize_words("日本語、です")) == V{"日本語", "、", "です"});
  CHECK(tokenize_words("").empty());
  CHECK(tokenize_words(" \n\t ").empty());
}

TEST_CASE("tokenize: words keeps byte spans into the text") {
  const std::string s = "hé, yo";
  const auto t = tokenize_words(s);
  REQUIRE(t.size() == 3);
  CHECK(t[0].begin == 0);
  CHECK(t[0].end == 3);  // 'h' + two bytes of 'é'
  CHECK(t[1].begin == 3);
  CHECK(t[2].begin == 5);
  for (const auto& x : t) CHECK(s.substr(x.begin, x.end - x.begin) == x.text);
}

TEST_CASE("tokenize: chars gives one token per code point, spaces included") {
  using V = std::vector<std::string>;
  CHECK(texts(tokenize_chars("a b")) == V{"a", " ", "b"});
  CHECK(texts(tokenize_chars("né😀")) == V{"n", "é", "😀"});
}

TEST_CASE("tokenize: labels make whitespace visible") {
  CHECK(token_label(" ") == "\u2423");
  CHECK(token_label("\n") == "\u23CE");
  CHECK(token_label("cat") == "cat");
}

TEST_CASE("utf8: invalid sequences are found at their byte offset") {
  CHECK_FALSE(utf8_first_invalid("plain ascii").has_value());
  CHECK_FALSE(utf8_first_invalid("é😀日").has_value());
  CHECK(utf8_first_invalid("ab\xff").value() == 2);
  CHECK(utf8_first_invalid("\xc3").value() == 0);           // truncated
  CHECK(utf8_first_invalid("a\xc0\xaf").value() == 1);      // overlong '/'
  CHECK(utf8_first_invalid("\xed\xa0\x80").value() == 0);   // surrogate U+D800
  CHECK(utf8_first_invalid("\xf4\x90\x80\x80").value() == 0);  // above U+10FFFF
  CHECK(utf8_encode(0x1F600) == "😀");
  CHECK(utf8_sanitize("a\xff" "b\xc3") == "a\uFFFD" "b\uFFFD");
  CHECK(utf8_sanitize("é ok") == "é ok");
}
