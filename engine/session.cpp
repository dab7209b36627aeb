#include "session.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "utf8.hpp"

namespace attnlab {

using nlohmann::json;

const char* name(TokenizerKind k) { return k == TokenizerKind::words ? "words" : "chars"; }
const char* name(PositionalKind k) { return k == PositionalKind::none ? "none" : "sinusoidal"; }
const char* name(ScoreKind k) { return k == ScoreKind::scaled_dot ? "scaled_dot" : "dot"; }
const char* name(NormalizerKind) { return "softmax"; }
const char* name(MaskKind k) { return k == MaskKind::none ? "none" : "causal"; }

const std::vector<OptionSpec>& session_options() {
  static const std::vector<OptionSpec> table = {
      {"text", "string", {}, 0, double(kMaxTextBytes), "\"The cat sat on the mat because it was tired.\"",
       "the text to attend over (UTF-8)"},
      {"tokenizer.kind", "enum", {"words", "chars"}, 0, 0, "\"words\"",
       "words: words and punctuation as separate tokens; chars: one token per character"},
      {"model.d_model", "int", {}, 1, 4096, "64", "width of embeddings and projections"},
      {"model.n_heads", "int", {}, 1, 128, "4", "attention heads; must divide d_model (d_head = d_model / n_heads)"},
      {"model.seed", "uint64", {}, 0, 18446744073709551615.0, "42",
       "seeds the token embeddings and the projection weights"},
      {"positional.kind", "enum", {"none", "sinusoidal"}, 0, 0, "\"sinusoidal\"",
       "none, or sinusoidal (Vaswani et al. 2017) added to the embeddings"},
      {"attention.score.kind", "enum", {"scaled_dot", "dot"}, 0, 0, "\"scaled_dot\"",
       "scaled_dot: q.k / sqrt(d_head); dot: q.k"},
      {"attention.normalizer.kind", "enum", {"softmax"}, 0, 0, "\"softmax\"", "softmax(logits / temperature)"},
      {"attention.normalizer.temperature", "number", {}, 0.01, 100, "1.0",
       "divides the logits before softmax: low is sharp, high is flat"},
      {"attention.mask.kind", "enum", {"none", "causal"}, 0, 0, "\"causal\"",
       "none: every query sees every key; causal: query i sees keys j <= i"},
  };
  return table;
}

const OptionSpec& option(std::string_view path) {
  for (const auto& o : session_options())
    if (o.path == path) return o;
  throw std::logic_error("no session option " + std::string(path));
}

std::string options_json() {
  json out = json::object();
  out["format"] = "attnlab.options";
  out["version"] = 1;
  json list = json::array();
  for (const auto& o : session_options()) {
    json j = {{"path", o.path}, {"type", o.type}, {"default", json::parse(o.default_value)}, {"help", o.help}};
    if (o.type == "enum") j["choices"] = o.choices;
    if (o.type == "int" || o.type == "number") {
      j["min"] = o.min;
      j["max"] = o.max;
      if (o.type == "int") {
        j["min"] = static_cast<long long>(o.min);
        j["max"] = static_cast<long long>(o.max);
      }
    }
    if (o.type == "uint64") {
      j["min"] = 0;
      j["max"] = std::numeric_limits<std::uint64_t>::max();
    }
    if (o.type == "string") j["max_bytes"] = static_cast<long long>(o.max);
    list.push_back(j);
  }
  out["options"] = list;
  out["limits"] = {{"max_tokens", kMaxTokens},
                   {"max_attention_bytes", kMaxAttentionBytes},
                   {"rule", "n_heads * n_tokens^2 * 8 bytes (logits and weights) must not exceed max_attention_bytes"}};
  return out.dump(2);
}

namespace {

// Walks a JSON object, reading known keys and reporting unknown ones and wrong types.
class Reader {
 public:
  explicit Reader(std::vector<std::string>& problems) : problems_(problems) {}

  // Reads object `j` at `path`: calls fn(key, value, child_path) for each key in `known`.
  template <class Fn>
  void object(const json& j, const std::string& path, std::initializer_list<const char*> known, Fn fn) {
    const std::string where = path.empty() ? "the session" : path;
    if (!j.is_object()) {
      problems_.push_back(where + " must be a JSON object, not " + std::string(j.type_name()));
      return;
    }
    for (const auto& [key, value] : j.items()) {
      const std::string child = path.empty() ? key : path + "." + key;
      if (std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) == known.end()) {
        std::string list;
        for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
        problems_.push_back("unknown key '" + key + "' in " + where + " (known keys: " + list + ")");
        continue;
      }
      fn(key, value, child);
    }
  }

  template <class Enum>
  void enumeration(const json& v, const std::string& path, Enum& out) {
    const auto& spec = option(path);
    if (!v.is_string()) {
      problems_.push_back(path + " must be a string, one of " + choices(spec));
      return;
    }
    const auto s = v.get<std::string>();
    for (std::size_t i = 0; i < spec.choices.size(); ++i) {
      if (spec.choices[i] == s) {
        out = static_cast<Enum>(i);
        return;
      }
    }
    problems_.push_back(path + " '" + s + "' is not one of " + choices(spec));
  }

  void integer(const json& v, const std::string& path, int& out) {
    if (!v.is_number_integer()) {
      problems_.push_back(path + " must be a whole number, not " + v.dump());
      return;
    }
    const auto x = v.get<long long>();
    // Out-of-int values are clamped to a value that validate() will report against the range.
    out = static_cast<int>(std::clamp<long long>(x, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  }

  void uint64(const json& v, const std::string& path, std::uint64_t& out) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<long long>() >= 0)) {
      problems_.push_back(path + " must be a whole number from 0 to 18446744073709551615, not " + v.dump());
      return;
    }
    out = v.get<std::uint64_t>();
  }

  void number(const json& v, const std::string& path, double& out) {
    if (!v.is_number()) {
      problems_.push_back(path + " must be a number, not " + v.dump());
      return;
    }
    out = v.get<double>();
  }

 private:
  static std::string choices(const OptionSpec& spec) {
    std::string s;
    for (const auto& c : spec.choices) s += (s.empty() ? "" : ", ") + c;
    return s;
  }
  std::vector<std::string>& problems_;
};

}  // namespace

SessionParse parse_session(std::string_view json_text) {
  SessionParse out;
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    std::string msg = e.what();
    const auto at = msg.find("parse error");
    // the message quotes the input it stopped at, which may hold invalid UTF-8
    out.problems.push_back("not valid JSON: " + utf8_sanitize(at == std::string::npos ? msg : msg.substr(at)));
    return out;
  }
  Session s;
  auto& p = out.problems;
  Reader r(p);
  r.object(j, "", {"format", "version", "text", "tokenizer", "model", "positional", "attention"},
           [&](const std::string& key, const json& v, const std::string& path) {
             if (key == "format") {
               if (v != "attnlab.session") p.push_back("format must be \"attnlab.session\", not " + v.dump());
             } else if (key == "version") {
               if (v != 1) p.push_back("version " + v.dump() + " is not supported (this attnlab reads version 1)");
             } else if (key == "text") {
               if (v.is_string()) s.text = v.get<std::string>();
               else p.push_back("text must be a string, not " + std::string(v.type_name()));
             } else if (key == "tokenizer") {
               r.object(v, path, {"kind"}, [&](auto&, const json& x, const std::string& xp) {
                 r.enumeration(x, xp, s.tokenizer.kind);
               });
             } else if (key == "model") {
               r.object(v, path, {"d_model", "n_heads", "seed"}, [&](const std::string& k, const json& x, const std::string& xp) {
                 if (k == "d_model") r.integer(x, xp, s.model.d_model);
                 else if (k == "n_heads") r.integer(x, xp, s.model.n_heads);
                 else r.uint64(x, xp, s.model.seed);
               });
             } else if (key == "positional") {
               r.object(v, path, {"kind"}, [&](auto&, const json& x, const std::string& xp) {
                 r.enumeration(x, xp, s.positional.kind);
               });
             } else if (key == "attention") {
               r.object(v, path, {"score", "normalizer", "mask"}, [&](const std::string& k, const json& x, const std::string& xp) {
                 if (k == "score") {
                   r.object(x, xp, {"kind"}, [&](auto&, const json& y, const std::string& yp) {
                     r.enumeration(y, yp, s.attention.score.kind);
                   });
                 } else if (k == "normalizer") {
                   r.object(x, xp, {"kind", "temperature"}, [&](const std::string& kk, const json& y, const std::string& yp) {
                     if (kk == "kind") r.enumeration(y, yp, s.attention.normalizer.kind);
                     else r.number(y, yp, s.attention.normalizer.temperature);
                   });
                 } else {
                   r.object(x, xp, {"kind"}, [&](auto&, const json& y, const std::string& yp) {
                     r.enumeration(y, yp, s.attention.mask.kind);
                   });
                 }
               });
             }
           });
  if (p.empty()) out.session = s;
  return out;
}

std::string to_json(const Session& s) {
  nlohmann::ordered_json j = {
      {"format", "attnlab.session"},
      {"version", 1},
      {"text", s.text},
      {"tokenizer", {{"kind", name(s.tokenizer.kind)}}},
      {"model", {{"d_model", s.model.d_model}, {"n_heads", s.model.n_heads}, {"seed", s.model.seed}}},
      {"positional", {{"kind", name(s.positional.kind)}}},
      {"attention",
       {{"score", {{"kind", name(s.attention.score.kind)}}},
        {"normalizer", {{"kind", name(s.attention.normalizer.kind)}, {"temperature", s.attention.normalizer.temperature}}},
        {"mask", {{"kind", name(s.attention.mask.kind)}}}}},
  };
  // Invalid UTF-8 in the text would make dump() throw; replace it so a session can always be saved.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::vector<Token> tokenize(const Session& s) {
  return s.tokenizer.kind == TokenizerKind::words ? tokenize_words(s.text) : tokenize_chars(s.text);
}

namespace {
std::string fmt_number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

void check_range(std::vector<std::string>& p, const char* path, double value) {
  const auto& o = option(path);
  if (!(value >= o.min && value <= o.max)) {  // also catches NaN
    p.push_back(std::string(path) + " (" + fmt_number(value) + ") must be between " + fmt_number(o.min) + " and " +
                fmt_number(o.max));
  }
}
}  // namespace

Validation validate(const Session& s) {
  Validation v;
  auto& p = v.problems;
  check_range(p, "model.d_model", s.model.d_model);
  check_range(p, "model.n_heads", s.model.n_heads);
  check_range(p, "attention.normalizer.temperature", s.attention.normalizer.temperature);
  if (s.model.d_model >= 1 && s.model.n_heads >= 1 && s.model.d_model % s.model.n_heads != 0) {
    p.push_back("d_model " + std::to_string(s.model.d_model) + " is not divisible by " +
                std::to_string(s.model.n_heads) + " heads (d_head = d_model / n_heads must be whole)");
  }

  bool text_ok = true;
  if (s.text.size() > kMaxTextBytes) {
    p.push_back("text is " + std::to_string(s.text.size()) + " bytes; the limit is " + std::to_string(kMaxTextBytes));
    text_ok = false;
  } else if (auto bad = utf8_first_invalid(s.text)) {
    p.push_back("text is not valid UTF-8 at byte " + std::to_string(*bad));
    text_ok = false;
  }
  if (!text_ok) return v;

  v.tokens = tokenize(s);
  const std::size_t n = v.tokens.size();
  if (n == 0) {
    p.push_back("the text has no tokens: type something to attend over");
  } else if (n > kMaxTokens) {
    p.push_back("the text has " + std::to_string(n) + " tokens; the limit is " + std::to_string(kMaxTokens));
  } else if (s.model.n_heads >= 1) {
    const double bytes = double(s.model.n_heads) * double(n) * double(n) * 8.0;
    if (bytes > kMaxAttentionBytes) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "%zu tokens x %d heads need %.1f GB of attention matrices; the limit is %.1f GB (use fewer heads or "
                    "shorter text)",
                    n, s.model.n_heads, bytes / 1e9, kMaxAttentionBytes / 1e9);
      p.push_back(buf);
    }
  }
  return v;
}

}  // namespace attnlab
