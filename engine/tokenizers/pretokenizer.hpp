// The pre-tokenizer of a tokenizer.json (Hugging Face tokenizers): how a text is cut into the
// pieces a model tokenizes within. Read from the file's "pre_tokenizer" - Split (a regex or a
// string, with its delimiter behaviour), ByteLevel (GPT-2's pattern, which the tokenizers library
// defines, when use_regex is true), Digits, Whitespace (\w+|[^\w\s]+ with Unicode's word
// characters), WhitespaceSplit, BertPreTokenizer, Punctuation, CharDelimiterSplit, Metaspace and
// Sequence of these - with Unicode regexes by PCRE2 (UTF and UCP: \p{L}, \p{N} and \s are
// Unicode's). A folder with vocab.json and merges.txt (no tokenizer.json) is ByteLevel.
//
// Metaspace (and ByteLevel's add_prefix_space) change the text as well as cutting it: the caller
// splits with the steps before it, applies `rewrite()` to each piece, and splits each with the
// steps from it on.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace attnlab {

class PreTokenizer {
 public:
  // From tokenizer.json's "pre_tokenizer" value; null with a one-line reason for a type or an
  // option we do not implement (never a silent approximation).
  static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json& pre, std::string& error);
  // GPT-2's ByteLevel: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  static std::unique_ptr<PreTokenizer> byte_level();
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // The pieces of valid UTF-8 `text`, as byte ranges [begin, end) in order (Removed delimiters
  // leave gaps). False when a pattern needs more backtracking than kMatchLimit allows on this
  // text (a hostile tokenizer.json's "(a+)+$" must not hang the window).
  // The steps before the rewrite (Metaspace / ByteLevel's prefix space), the steps from it on, or all.
  enum class Steps { all, before_rewrite, after_rewrite };
  bool split(const std::string& text, std::vector<std::pair<std::size_t, std::size_t>>& pieces, std::string& error,
             Steps steps = Steps::all) const;
  std::vector<std::pair<std::size_t, std::size_t>> split(const std::string& text) const;  // tests: no limit hit
  static constexpr unsigned kMatchLimit = 10'000'000;

  enum class Behavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };

  // What Metaspace / ByteLevel(add_prefix_space) do to the text before splitting it: every space
  // becomes `space` (when not empty), then `prefix` is put in front unless the text already
  // starts with it - for every stretch (always), only for the stretch at the start of the
  // original text (first), or never.
  struct Rewrite {
    std::string space, prefix;
    enum class When { always, first, never } when = When::never;
  };
  const Rewrite& rewrite() const { return rewrite_; }
  bool rewrites() const { return rewrite_.when != Rewrite::When::never || !rewrite_.space.empty(); }
  bool is_byte_level() const { return byte_level_; }  // a ByteLevel step: the model works on byte symbols

 private:
  PreTokenizer() = default;
  struct Step;
  bool add_split(const std::string& pattern, bool literal, Behavior behavior, bool invert, std::string& error);
  bool add(const nlohmann::json& pre, std::string& error, int depth);
  std::vector<std::unique_ptr<Step>> steps_;
  Rewrite rewrite_;
  std::size_t rewrite_step_ = 0;  // the rewrite applies to each piece of the steps before this one
  bool byte_level_ = false;
};

}  // namespace attnlab
