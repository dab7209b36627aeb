#include "tokenizers/pretokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/json_input.hpp"
#include "core/utf8.hpp"

namespace attnlab {

namespace {

// The pattern the tokenizers library's ByteLevel pre-tokenizer uses when use_regex is true
// (GPT-2, Radford et al. 2019, encoder.py).
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Range = std::pair<std::size_t, std::size_t>;

std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct PreTokenizer::Step {
  pcre2_code* re = nullptr;
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  ~Step() { pcre2_code_free(re); }
};

PreTokenizer::~PreTokenizer() = default;

bool PreTokenizer::add_split(const std::string& pattern, bool literal, Behavior behavior, bool invert, std::string& error) {
  const std::string p = literal ? escape_literal(pattern) : pattern;
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &code, &offset,
                                 nullptr);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    error = "pre_tokenizer pattern " + json_excerpt(nlohmann::json(pattern)) + " does not compile at offset " +
            std::to_string(offset) + ": " + reinterpret_cast<const char*>(msg);
    return false;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // faster where the JIT exists; works without it
  auto step = std::make_unique<Step>();
  step->re = re;
  step->behavior = behavior;
  step->invert = invert;
  steps_.push_back(std::move(step));
  return true;
}

bool PreTokenizer::add(const nlohmann::json& pre, std::string& error, int depth) {
  if (depth > 8) {
    error = "pre_tokenizer: Sequence nested too deeply";
    return false;
  }
  if (pre.is_null()) return true;
  std::string type;
  if (!pre.is_object() || !json_get(pre, "type", type, error, "pre_tokenizer", true)) {
    if (error.empty()) error = "pre_tokenizer must be an object, not " + json_excerpt(pre);
    return false;
  }
  if (type == "Sequence") {
    if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array()) {
      error = "pre_tokenizer: a Sequence needs a 'pretokenizers' list";
      return false;
    }
    for (const auto& p : pre["pretokenizers"])
      if (!add(p, error, depth + 1)) return false;
    return true;
  }
  if (type == "ByteLevel") {
    bool use_regex = true, add_prefix_space = false;
    if (!json_get(pre, "use_regex", use_regex, error, "pre_tokenizer (ByteLevel)") ||
        !json_get(pre, "add_prefix_space", add_prefix_space, error, "pre_tokenizer (ByteLevel)"))
      return false;
    byte_level_ = true;
    if (add_prefix_space) {  // a space in front of each piece that does not start with one
      if (rewrite_.when != Rewrite::When::never || !rewrite_.space.empty()) {
        error = "pre_tokenizer: two rewriting pre-tokenizers (Metaspace, ByteLevel with add_prefix_space) are not supported";
        return false;
      }
      rewrite_ = {"", " ", Rewrite::When::always};
      rewrite_step_ = steps_.size();
    }
    return !use_regex || add_split(kGpt2Pattern, false, Behavior::isolated, false, error);
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81", scheme;
    bool split = true, add_prefix_space = true;
    if (!json_get(pre, "replacement", replacement, error, "pre_tokenizer (Metaspace)") ||
        !json_get(pre, "split", split, error, "pre_tokenizer (Metaspace)") ||
        !json_get(pre, "prepend_scheme", scheme, error, "pre_tokenizer (Metaspace)") ||
        !json_get(pre, "add_prefix_space", add_prefix_space, error, "pre_tokenizer (Metaspace)"))
      return false;
    if (replacement.empty() || utf8_first_invalid(replacement) || utf8_decode(replacement).size() != 1) {
      error = "pre_tokenizer (Metaspace): replacement must be one character, not " + json_excerpt(pre["replacement"]);
      return false;
    }
    if (rewrite_.when != Rewrite::When::never || !rewrite_.space.empty() || byte_level_) {
      error = "pre_tokenizer: Metaspace with ByteLevel or a second Metaspace is not supported";
      return false;
    }
    rewrite_step_ = steps_.size();
    Rewrite::When when = add_prefix_space ? Rewrite::When::always : Rewrite::When::never;  // files before prepend_scheme
    if (scheme == "always") when = Rewrite::When::always;
    else if (scheme == "first") when = Rewrite::When::first;
    else if (scheme == "never") when = Rewrite::When::never;
    else if (!scheme.empty()) {
      error = "pre_tokenizer (Metaspace): prepend_scheme '" + utf8_sanitize(scheme) + "' is not always, first or never";
      return false;
    }
    rewrite_ = {replacement, replacement, when};
    return !split || add_split(replacement, true, Behavior::merged_with_next, false, error);
  }
  // Unicode's word characters as Rust's regex \w has them (UTS #18), and its whitespace
  static const std::string kWord = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
  // BERT's punctuation: Unicode's P categories and every ASCII punctuation character ($, +, <, ...)
  static const std::string kPunct = R"([\p{P}\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}])";
  if (type == "Whitespace") return add_split("[" + kWord + "]+|[^" + kWord + R"(\p{White_Space}]+)", false, Behavior::removed, true, error);
  if (type == "WhitespaceSplit") return add_split(R"(\p{White_Space})", false, Behavior::removed, false, error);
  if (type == "BertPreTokenizer")
    return add_split(R"(\p{White_Space})", false, Behavior::removed, false, error) &&
           add_split(kPunct, false, Behavior::isolated, false, error);
  if (type == "CharDelimiterSplit") {
    std::string delimiter;
    if (!json_get(pre, "delimiter", delimiter, error, "pre_tokenizer (CharDelimiterSplit)", true)) return false;
    if (delimiter.empty() || utf8_first_invalid(delimiter) || utf8_decode(delimiter).size() != 1) {
      error = "pre_tokenizer (CharDelimiterSplit): delimiter must be one character";
      return false;
    }
    return add_split(delimiter, true, Behavior::removed, false, error);
  }
  if (type == "Digits") {
    bool individual = false;
    if (!json_get(pre, "individual_digits", individual, error, "pre_tokenizer (Digits)")) return false;
    return add_split(individual ? R"(\p{N})" : R"(\p{N}+)", false, Behavior::isolated, false, error);
  }
  auto behavior_of = [&](const std::string& name, Behavior& b) {
    const std::pair<const char*, Behavior> names[] = {{"Isolated", Behavior::isolated},
                                                      {"Removed", Behavior::removed},
                                                      {"MergedWithPrevious", Behavior::merged_with_previous},
                                                      {"MergedWithNext", Behavior::merged_with_next},
                                                      {"Contiguous", Behavior::contiguous}};
    for (const auto& [n, v] : names)
      if (name == n) return b = v, true;
    error = "pre_tokenizer: " + type + " behavior '" + utf8_sanitize(name) +
            "' is not one of Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous";
    return false;
  };
  if (type == "Punctuation") {
    std::string name = "Isolated";
    Behavior b{};
    if (!json_get(pre, "behavior", name, error, "pre_tokenizer (Punctuation)") || !behavior_of(name, b)) return false;
    return add_split(kPunct, false, b, false, error);
  }
  if (type == "Split") {
    const nlohmann::json pat = pre.value("pattern", nlohmann::json());
    std::string pattern, behavior_name = "Isolated";
    bool literal = false, invert = false;
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      pattern = pat["Regex"].get<std::string>();
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      pattern = pat["String"].get<std::string>(), literal = true;
    } else {
      error = "pre_tokenizer: a Split's pattern must be {\"Regex\": ...} or {\"String\": ...}, not " + json_excerpt(pat);
      return false;
    }
    Behavior b{};
    if (!json_get(pre, "behavior", behavior_name, error, "pre_tokenizer (Split)") ||
        !json_get(pre, "invert", invert, error, "pre_tokenizer (Split)") || !behavior_of(behavior_name, b))
      return false;
    return add_split(pattern, literal, b, invert, error);
  }
  error = "pre_tokenizer type '" + utf8_sanitize(type) +
          "' is not implemented (Split, ByteLevel, Digits, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation, "
          "CharDelimiterSplit, Metaspace, Sequence)";
  return false;
}

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& pre, std::string& error) {
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer);
  if (!p->add(pre, error, 0)) return nullptr;
  return p;
}

std::unique_ptr<PreTokenizer> PreTokenizer::byte_level() {
  std::string error;
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer);
  p->add_split(kGpt2Pattern, false, Behavior::isolated, false, error);
  return p;
}

namespace {

// One Split over one piece [b0, b1) of `text` (the tokenizers library's split with a delimiter
// behaviour): the matches are the delimiters; `invert` makes the gaps the delimiters.
bool split_piece(const pcre2_code* re, PreTokenizer::Behavior behavior, bool invert, const std::string& text,
                 std::size_t b0, std::size_t b1, pcre2_match_data* md, pcre2_match_context* mc, std::vector<Range>& out) {
  // (range, is delimiter) in order, covering the piece
  // each piece is matched as a string of its own, as the tokenizers library does: a lookahead at
  // its end sees the end, not the next piece
  std::vector<std::pair<Range, bool>> parts;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + b0);
  std::size_t at = b0, last = b0;
  while (at <= b1) {
    const int rc = pcre2_match(re, subject, b1 - b0, at - b0, PCRE2_NO_UTF_CHECK, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return false;  // the match or depth limit: a pattern that backtracks without end
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    std::size_t s = b0 + ov[0], e = b0 + ov[1];
    if (e == s) {  // an empty match: step over one code point
      if (s >= b1) break;
      at = s + 1;
      while (at < b1 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      continue;
    }
    if (s > last) parts.push_back({{last, s}, invert});
    parts.push_back({{s, e}, !invert});
    last = at = e;
  }
  if (last < b1) parts.push_back({{last, b1}, invert});
  using B = PreTokenizer::Behavior;
  std::vector<Range> pieces;
  bool pending_next = false;  // merged_with_next: a delimiter waiting for the piece after it
  std::size_t pending_start = 0;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const auto [r, delim] = parts[k];
    if (!delim) {
      if (pending_next) pieces.push_back({pending_start, r.second}), pending_next = false;
      else pieces.push_back(r);
      continue;
    }
    switch (behavior) {
      case B::isolated: pieces.push_back(r); break;
      case B::removed: break;
      case B::merged_with_previous:
        if (!pieces.empty() && pieces.back().second == r.first && k > 0 && !parts[k - 1].second) pieces.back().second = r.second;
        else pieces.push_back(r);
        break;
      case B::merged_with_next:
        if (pending_next) pieces.push_back({pending_start, r.first});
        pending_next = true, pending_start = r.first;
        break;
      case B::contiguous:
        if (k > 0 && parts[k - 1].second && !pieces.empty() && pieces.back().second == r.first) pieces.back().second = r.second;
        else pieces.push_back(r);
        break;
    }
  }
  if (pending_next) pieces.push_back({pending_start, b1});
  out.insert(out.end(), pieces.begin(), pieces.end());
  return true;
}

}  // namespace

bool PreTokenizer::split(const std::string& text, std::vector<Range>& pieces, std::string& error, Steps steps) const {
  pieces.clear();
  if (text.empty()) return true;
  pieces.push_back({0, text.size()});
  const std::size_t first = steps == Steps::after_rewrite ? rewrite_step_ : 0;
  const std::size_t last = steps == Steps::before_rewrite ? rewrite_step_ : steps_.size();
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(mc, kMatchLimit);
  pcre2_set_depth_limit(mc, kMatchLimit);
  bool ok = true;
  for (std::size_t k = first; k < last; ++k) {
    const auto& step = steps_[k];
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(step->re, nullptr);
    std::vector<Range> next;
    for (const auto& [b0, b1] : pieces)
      if (!(ok = split_piece(step->re, step->behavior, step->invert, text, b0, b1, md, mc, next))) break;
    pcre2_match_data_free(md);
    if (!ok) break;
    pieces = std::move(next);
  }
  pcre2_match_context_free(mc);
  if (!ok) error = "the tokenizer's pre_tokenizer pattern backtracks too much on this text (over " +
                   std::to_string(kMatchLimit) + " steps); it cannot be split";
  return ok;
}

std::vector<Range> PreTokenizer::split(const std::string& text) const {
  std::vector<Range> pieces;
  std::string error;
  split(text, pieces, error);
  return pieces;
}

}  // namespace attnlab
