#include "tokenizers/normalizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/json_input.hpp"
#include "core/utf8.hpp"

namespace attnlab {

namespace {

struct Cp {  // a code point of the text being normalized and the source span it came from
  char32_t c;
  std::uint32_t b, e;
};
using Cps = std::vector<Cp>;

Cps decode(const Normalized& n) {
  Cps v;
  v.reserve(n.text.size());
  for (const CodePoint& cp : utf8_decode(n.text)) v.push_back({cp.value, n.begin[cp.begin], n.end[cp.end - 1]});
  return v;
}

Normalized encode(const Cps& v) {
  Normalized n;
  n.text.reserve(v.size());
  for (const Cp& cp : v) {
    const std::string bytes = utf8_encode(cp.c);
    n.text += bytes;
    n.begin.insert(n.begin.end(), bytes.size(), cp.b);
    n.end.insert(n.end.end(), bytes.size(), cp.e);
  }
  return n;
}

utf8proc_category_t category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }
bool is_mark(char32_t c) {
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

// Can a normalization form's composition or reordering reach back across the start of c? Not
// when c's decomposition begins with a starter (combining class 0) that is never the second
// part of a composition: every composition's second part is a combining mark or a Hangul
// medial vowel / final consonant. Segments cut before such code points normalize independently.
bool starts_segment(char32_t c, utf8proc_option_t options) {
  if (c < 0x80) return true;
  utf8proc_int32_t first[32];
  int boundclass = 0;
  const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), first, 32, options, &boundclass);
  const char32_t d = n > 0 ? static_cast<char32_t>(first[0]) : c;
  if (utf8proc_get_property(static_cast<utf8proc_int32_t>(d))->combining_class != 0 || is_mark(d)) return false;
  return !((d >= 0x1161 && d <= 0x1175) || (d >= 0x11A8 && d <= 0x11C2));
}

// NFC / NFD / NFKC / NFKD; each segment's output takes the segment's whole source span
void unicode_form(Cps& v, bool compose, bool compat) {
  const utf8proc_option_t options = static_cast<utf8proc_option_t>(
      UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) | (compat ? UTF8PROC_COMPAT : 0));
  Cps out;
  out.reserve(v.size());
  std::vector<utf8proc_int32_t> buf(64);
  std::string seg;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i + 1;
    while (j < v.size() && !starts_segment(v[j].c, options)) ++j;
    if (j == i + 1 && v[i].c < 0x80) {
      out.push_back(v[i++]);
      continue;
    }
    seg.clear();
    for (std::size_t k = i; k < j; ++k) seg += utf8_encode(v[k].c);
    auto decompose = [&] {
      return utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(seg.data()), static_cast<utf8proc_ssize_t>(seg.size()),
                                buf.data(), static_cast<utf8proc_ssize_t>(buf.size()), options);
    };
    auto n = decompose();
    if (n > static_cast<utf8proc_ssize_t>(buf.size())) {
      buf.resize(static_cast<std::size_t>(n));
      n = decompose();
    }
    if (n < 0) {  // cannot happen on valid UTF-8; keep the segment as it is
      out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(i), v.begin() + static_cast<std::ptrdiff_t>(j));
      i = j;
      continue;
    }
    if (compose) n = utf8proc_normalize_utf32(buf.data(), n, options);
    const std::uint32_t b = v[i].b, e = v[j - 1].e;
    for (utf8proc_ssize_t k = 0; k < n; ++k) out.push_back({static_cast<char32_t>(buf[k]), b, e});
    i = j;
  }
  v = std::move(out);
}

void lowercase(Cps& v) {
  Cps out;
  out.reserve(v.size());
  for (const Cp& cp : v) {
    if (cp.c == 0x130) {  // the one unconditional full lower-case mapping of more than one code point
      out.push_back({U'i', cp.b, cp.e});
      out.push_back({0x307, cp.b, cp.e});
    } else {
      out.push_back({static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp.c))), cp.b, cp.e});
    }
  }
  v = std::move(out);
}

template <class Drop>
void filter(Cps& v, Drop drop) {
  v.erase(std::remove_if(v.begin(), v.end(), [&](const Cp& cp) { return drop(cp.c); }), v.end());
}

bool is_chinese(char32_t c) {  // the CJK blocks BERT pads with spaces
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_other(char32_t c) {  // general category C: Cc, Cf, Cn, Co, Cs
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CN ||
         k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
}

Cps to_cps(const std::string& s) {
  Cps v;
  for (const CodePoint& cp : utf8_decode(s)) v.push_back({cp.value, 0, 0});
  return v;
}

}  // namespace

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

Normalized Normalized::of(const std::string& source, std::size_t at) {
  Normalized n;
  n.text = source;
  n.begin.resize(source.size());
  n.end.resize(source.size());
  for (std::size_t k = 0; k < source.size(); ++k)
    n.begin[k] = static_cast<std::uint32_t>(at + k), n.end[k] = static_cast<std::uint32_t>(at + k + 1);
  return n;
}

std::pair<std::size_t, std::size_t> Normalized::source_span(std::size_t b, std::size_t e) const {
  if (text.empty()) return {0, 0};
  if (b >= e) {
    const std::size_t at = b < text.size() ? begin[b] : end.back();
    return {at, at};
  }
  return {begin[b], end[e - 1]};
}

struct Normalizer::Step {
  enum class Kind { nfc, nfd, nfkc, nfkd, lowercase, strip_accents, strip, replace, prepend, nmt, bert } kind;
  bool left = true, right = true;  // Strip
  std::string literal;             // Replace (a String pattern); Prepend's text
  Cps content;                     // Replace's content
  pcre2_code* re = nullptr;        // Replace (a Regex pattern)
  bool clean_text = true, chinese = true, strip_marks = true, lower = true;  // BertNormalizer
  ~Step() { pcre2_code_free(re); }
  bool apply(Cps& v, std::string& error) const;
};

Normalizer::~Normalizer() = default;

bool Normalizer::Step::apply(Cps& v, std::string& error) const {
  switch (kind) {
    case Kind::nfc: unicode_form(v, true, false); return true;
    case Kind::nfd: unicode_form(v, false, false); return true;
    case Kind::nfkc: unicode_form(v, true, true); return true;
    case Kind::nfkd: unicode_form(v, false, true); return true;
    case Kind::lowercase: lowercase(v); return true;
    case Kind::strip_accents: filter(v, is_mark); return true;
    case Kind::strip: {
      std::size_t b = 0, e = v.size();
      if (left)
        while (b < e && is_unicode_whitespace(v[b].c)) ++b;
      if (right)
        while (e > b && is_unicode_whitespace(v[e - 1].c)) --e;
      v = Cps(v.begin() + static_cast<std::ptrdiff_t>(b), v.begin() + static_cast<std::ptrdiff_t>(e));
      return true;
    }
    case Kind::prepend: {
      if (v.empty()) return true;
      Cps p = to_cps(literal);
      for (Cp& cp : p) cp.b = cp.e = v.front().b;
      v.insert(v.begin(), p.begin(), p.end());
      return true;
    }
    case Kind::nmt:
      filter(v, [](char32_t c) { return (c >= 1 && c <= 8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F; });
      for (Cp& cp : v) {
        const char32_t c = cp.c;
        if (c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0x1680 || (c >= 0x200B && c <= 0x200F) || c == 0x2028 ||
            c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
          cp.c = U' ';
      }
      return true;
    case Kind::bert: {
      if (clean_text) {
        filter(v, [](char32_t c) { return c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other(c)); });
        for (Cp& cp : v)
          if (is_unicode_whitespace(cp.c)) cp.c = U' ';
      }
      if (chinese) {
        Cps out;
        out.reserve(v.size());
        for (const Cp& cp : v) {
          if (!is_chinese(cp.c)) {
            out.push_back(cp);
            continue;
          }
          out.push_back({U' ', cp.b, cp.b});
          out.push_back(cp);
          out.push_back({U' ', cp.e, cp.e});
        }
        v = std::move(out);
      }
      if (strip_marks) {
        unicode_form(v, false, false);
        filter(v, [](char32_t c) { return category(c) == UTF8PROC_CATEGORY_MN; });
      }
      if (lower) lowercase(v);
      return true;
    }
    case Kind::replace: {
      // every non-overlapping match, left to right, becomes `content` (covering the match's span)
      Normalized n = encode(v);
      std::vector<std::pair<std::size_t, std::size_t>> matches;
      if (!re) {
        if (literal.empty()) return true;
        for (std::size_t at = n.text.find(literal); at != std::string::npos; at = n.text.find(literal, at + literal.size()))
          matches.push_back({at, at + literal.size()});
      } else {
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
        pcre2_match_context* mc = pcre2_match_context_create(nullptr);
        pcre2_set_match_limit(mc, 10'000'000);
        pcre2_set_depth_limit(mc, 10'000'000);
        std::size_t at = 0;
        int rc = 0;
        while (at <= n.text.size()) {
          rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(n.text.data()), n.text.size(), at, PCRE2_NO_UTF_CHECK, md, mc);
          if (rc < 0) break;
          const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
          if (ov[1] == ov[0]) {  // an empty match replaces nothing: step over one code point
            at = ov[0] + 1;
            while (at < n.text.size() && (static_cast<unsigned char>(n.text[at]) & 0xC0) == 0x80) ++at;
            continue;
          }
          matches.push_back({ov[0], ov[1]});
          at = ov[1];
        }
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          error = "the tokenizer's normalizer Replace pattern backtracks too much on this text";
          return false;
        }
      }
      if (matches.empty()) return true;
      Cps out;
      out.reserve(v.size());
      std::size_t from = 0;
      auto copy = [&](std::size_t b, std::size_t e) {
        if (b >= e) return;
        Normalized part;
        part.text = n.text.substr(b, e - b);
        part.begin.assign(n.begin.begin() + static_cast<std::ptrdiff_t>(b), n.begin.begin() + static_cast<std::ptrdiff_t>(e));
        part.end.assign(n.end.begin() + static_cast<std::ptrdiff_t>(b), n.end.begin() + static_cast<std::ptrdiff_t>(e));
        const Cps p = decode(part);
        out.insert(out.end(), p.begin(), p.end());
      };
      for (const auto& [b, e] : matches) {
        copy(from, b);
        const auto [sb, se] = n.source_span(b, e);
        for (Cp cp : content) {
          cp.b = static_cast<std::uint32_t>(sb), cp.e = static_cast<std::uint32_t>(se);
          out.push_back(cp);
        }
        from = e;
      }
      copy(from, n.text.size());
      v = std::move(out);
      return true;
    }
  }
  return true;
}

bool Normalizer::add(const nlohmann::json& j, std::string& error, int depth) {
  if (j.is_null()) return true;
  if (depth > 8) {
    error = "normalizer: Sequence nested too deeply";
    return false;
  }
  std::string type;
  if (!j.is_object() || !json_get(j, "type", type, error, "normalizer", true)) {
    if (error.empty()) error = "normalizer must be an object with a type, not " + json_excerpt(j);
    return false;
  }
  using K = Step::Kind;
  auto step = std::make_unique<Step>();
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      error = "normalizer: a Sequence needs a 'normalizers' list";
      return false;
    }
    for (const auto& s : j["normalizers"])
      if (!add(s, error, depth + 1)) return false;
    return true;
  }
  const std::pair<const char*, K> simple[] = {{"NFC", K::nfc},       {"NFD", K::nfd},
                                              {"NFKC", K::nfkc},     {"NFKD", K::nfkd},
                                              {"Lowercase", K::lowercase}, {"StripAccents", K::strip_accents},
                                              {"Nmt", K::nmt}};
  for (const auto& [name, kind] : simple)
    if (type == name) {
      step->kind = kind;
      steps_.push_back(std::move(step));
      return true;
    }
  if (type == "Strip") {
    step->kind = K::strip;
    if (!json_get(j, "strip_left", step->left, error, "normalizer (Strip)") ||
        !json_get(j, "strip_right", step->right, error, "normalizer (Strip)"))
      return false;
  } else if (type == "Prepend") {
    step->kind = K::prepend;
    if (!json_get(j, "prepend", step->literal, error, "normalizer (Prepend)", true)) return false;
  } else if (type == "Replace") {
    step->kind = K::replace;
    const auto pat = j.find("pattern");
    std::string content;
    if (!json_get(j, "content", content, error, "normalizer (Replace)", true)) return false;
    if (utf8_first_invalid(content)) {
      error = "normalizer (Replace): content is not valid UTF-8";
      return false;
    }
    step->content = to_cps(content);
    if (pat != j.end() && pat->is_object() && pat->contains("String") && (*pat)["String"].is_string()) {
      step->literal = (*pat)["String"].get<std::string>();
    } else if (pat != j.end() && pat->is_object() && pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      const std::string p = (*pat)["Regex"].get<std::string>();
      int code = 0;
      PCRE2_SIZE offset = 0;
      step->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
      if (!step->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        error = "normalizer (Replace): pattern " + json_excerpt(nlohmann::json(p)) + " does not compile at offset " +
                std::to_string(offset) + ": " + reinterpret_cast<const char*>(msg);
        return false;
      }
      pcre2_jit_compile(step->re, PCRE2_JIT_COMPLETE);
    } else {
      error = "normalizer (Replace): pattern must be {\"String\": ...} or {\"Regex\": ...}, not " +
              json_excerpt(pat == j.end() ? nlohmann::json() : *pat);
      return false;
    }
  } else if (type == "BertNormalizer") {
    step->kind = K::bert;
    if (!json_get(j, "clean_text", step->clean_text, error, "normalizer (BertNormalizer)") ||
        !json_get(j, "handle_chinese_chars", step->chinese, error, "normalizer (BertNormalizer)") ||
        !json_get(j, "lowercase", step->lower, error, "normalizer (BertNormalizer)"))
      return false;
    step->strip_marks = step->lower;  // strip_accents null: as lowercase
    if (const auto sa = j.find("strip_accents"); sa != j.end() && !sa->is_null()) {
      if (!sa->is_boolean()) {
        error = "normalizer (BertNormalizer): strip_accents must be true, false or null, not " + json_excerpt(*sa);
        return false;
      }
      step->strip_marks = sa->get<bool>();
    }
  } else if (type == "Precompiled") {
    error = "normalizer Precompiled (SentencePiece's compiled character map) is not implemented";
    return false;
  } else {
    error = "normalizer type '" + utf8_sanitize(type) +
            "' is not implemented (NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, Nmt, "
            "BertNormalizer, Sequence)";
    return false;
  }
  steps_.push_back(std::move(step));
  return true;
}

std::unique_ptr<Normalizer> Normalizer::from_json(const nlohmann::json& j, std::string& error) {
  auto n = std::unique_ptr<Normalizer>(new Normalizer);
  if (!n->add(j, error, 0)) return nullptr;
  return n;
}

bool Normalizer::apply(Normalized& n, std::string& error) const {
  if (steps_.empty() || n.text.empty()) return true;
  Cps v = decode(n);
  for (const auto& s : steps_)
    if (!s->apply(v, error)) return false;
  n = encode(v);
  return true;
}

std::string Normalizer::apply(const std::string& text) const {
  Normalized n = Normalized::of(text);
  std::string error;
  apply(n, error);
  return n.text;
}

}  // namespace attnlab
