#include "attention/expression.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include <muParser.h>

namespace attnlab {

namespace {

constexpr int kBulk = 1024;  // cells evaluated per muparser call

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// `and`, `or`, `not` as muparser's &&, ||, !; map[i] = the byte of the user's text that byte i
// of the result came from (one past the end for the end).
std::string rewrite_words(const std::string& text, std::vector<int>& map) {
  std::string out;
  map.clear();
  for (std::size_t i = 0; i < text.size();) {
    if (is_name_char(text[i])) {
      std::size_t j = i;
      while (j < text.size() && is_name_char(text[j])) ++j;
      const std::string word = text.substr(i, j - i);
      const char* op = word == "and" ? "&&" : word == "or" ? "||" : word == "not" ? "!" : nullptr;
      const std::string put = op ? std::string(op) : word;
      for (std::size_t c = 0; c < put.size(); ++c) map.push_back(static_cast<int>(op ? i : i + c));
      out += put;
      i = j;
    } else {
      out += text[i];
      map.push_back(static_cast<int>(i));
      ++i;
    }
  }
  map.push_back(static_cast<int>(text.size()));
  return out;
}

// the code point a byte offset of UTF-8 text falls in
int char_index(const std::string& text, int byte) {
  int chars = 0;
  for (int i = 0; i < byte && i < static_cast<int>(text.size()); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++chars;
  return chars;
}

double fn_floor(double x) { return std::floor(x); }
double fn_ceil(double x) { return std::ceil(x); }
double fn_mod(double a, double b) { return b == 0 ? std::nan("") : a - b * std::floor(a / b); }
double fn_not(double x) { return x == 0 ? 1.0 : 0.0; }
double lookup(const std::vector<double>& v, double x) {
  if (!(x >= 0) || x >= static_cast<double>(v.size())) return std::nan("");  // outside the tokens
  return v[static_cast<std::size_t>(x)];
}
double fn_doc(void* facts, double x) { return lookup(static_cast<const TokenFacts*>(facts)->doc, x); }
double fn_special(void* facts, double x) { return lookup(static_cast<const TokenFacts*>(facts)->special, x); }

const char* const kReserved[] = {"q", "k", "h", "n_q", "n_k", "score", "doc", "is_special", "floor", "ceil", "mod",
                                 "true", "false", "and", "or", "not"};

// The parser for one expression: its variables point at `cells` (q, k, h, score arrays of kBulk).
struct Cells {
  std::vector<double> q, k, h, score;
  Cells() : q(kBulk), k(kBulk), h(kBulk), score(kBulk) {}
};

void set_up(mu::Parser& p, const CellExpression& e, Cells& c, int n_q, int n_k) {
  p.DefineVar("q", c.q.data());
  p.DefineVar("k", c.k.data());
  p.DefineVar("h", c.h.data());
  if (e.role() == ExpressionRole::score_mod) p.DefineVar("score", c.score.data());
  p.DefineConst("n_q", n_q);
  p.DefineConst("n_k", n_k);
  p.DefineConst("true", 1);
  p.DefineConst("false", 0);
  for (const auto& [name, value] : e.parameters()) p.DefineConst(name, value);
  p.DefineFun("floor", fn_floor);
  p.DefineFun("ceil", fn_ceil);
  p.DefineFun("mod", fn_mod);
  p.DefineOprt("%", fn_mod, mu::prMUL_DIV, mu::oaLEFT, true);
  p.DefineInfixOprt("!", fn_not);
  p.DefineFunUserData("doc", fn_doc, const_cast<TokenFacts*>(&e.facts()));
  p.DefineFunUserData("is_special", fn_special, const_cast<TokenFacts*>(&e.facts()));
  p.SetExpr(e.parsed());
}

}  // namespace

TokenFacts token_facts(std::string_view text, const std::vector<Token>& tokens, const std::string& pad_token) {
  TokenFacts f;
  f.doc.resize(tokens.size());
  f.special.resize(tokens.size());
  // blank lines: a second newline with only whitespace since the first; a break at byte b
  // separates what begins after b from what came before
  std::vector<std::size_t> breaks;
  bool line_blank = false;  // since the last newline, only whitespace
  bool seen_newline = false;
  for (std::size_t b = 0; b < text.size(); ++b) {
    const char c = text[b];
    if (c == '\n') {
      if (seen_newline && line_blank) breaks.push_back(b);
      seen_newline = true, line_blank = true;
    } else if (c != ' ' && c != '\t' && c != '\r') {
      line_blank = false;
    }
  }
  double specials_before = 0;
  std::size_t next_break = 0;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    while (next_break < breaks.size() && breaks[next_break] < tokens[t].begin) ++next_break;
    f.doc[t] = static_cast<double>(next_break) + specials_before;
    f.special[t] = !pad_token.empty() && tokens[t].text == pad_token ? 1.0 : 0.0;
    specials_before += f.special[t];  // a special token ends its document
  }
  return f;
}

std::shared_ptr<const CellExpression> CellExpression::compile(const std::string& text, ExpressionRole role,
                                                              const std::map<std::string, double>& parameters,
                                                              TokenFacts facts, ExpressionProblem& problem) {
  problem = {};
  auto e = std::make_shared<CellExpression>();
  e->text_ = text;
  e->role_ = role;
  e->facts_ = std::move(facts);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    problem = {role == ExpressionRole::mask ? "the mask expression is empty: write one, e.g. k <= q"
                                            : "the score_mod expression is empty: write one, e.g. score - abs(q - k)",
               0};
    return nullptr;
  }
  static const std::regex name_re("[A-Za-z_][A-Za-z0-9_]*");
  for (const auto& [name, value] : parameters) {
    if (!std::regex_match(name, name_re)) {
      problem = {"parameter '" + name + "' is not a name (letters, digits and _, not starting with a digit)", -1};
      return nullptr;
    }
    if (std::find(std::begin(kReserved), std::end(kReserved), name) != std::end(kReserved)) {
      problem = {"parameter '" + name + "' is a name expressions already read; choose another", -1};
      return nullptr;
    }
    if (!std::isfinite(value)) {
      problem = {"parameter '" + name + "' must be a finite number", -1};
      return nullptr;
    }
  }
  e->parameters_ = parameters;
  std::vector<int> map;
  e->parsed_ = rewrite_words(text, map);
  Cells cells;
  mu::Parser p;
  try {
    set_up(p, *e, cells, 1, 1);
    const int results = [&] { int n = 0; p.Eval(n); return n; }();  // parses: unknown names throw here
    // (GetUsedVar accepts unknown names: asked only once the expression is known to be good)
    mu::Parser names;
    Cells c2;
    set_up(names, *e, c2, 1, 1);
    for (const auto& [name, ptr] : names.GetUsedVar()) {
      (void)ptr;
      if (name == "h") e->reads_head_ = true;
    }
    if (results != 1) {
      problem = {"the expression gives " + std::to_string(results) + " values (commas); it must give one", -1};
      return nullptr;
    }
  } catch (const mu::Parser::exception_type& err) {
    std::string msg = err.GetMsg();
    const int pos = err.GetPos();
    // (past its end: muparser pads the text; "unexpected end" is then the end of the user's)
    const int byte = pos < 0 ? -1 : pos < static_cast<int>(map.size()) ? map[pos] : static_cast<int>(text.size());
    // muparser says where in its own (rewritten) text; the user is told the character of theirs
    msg = std::regex_replace(msg, std::regex(" ?(found )?at position [0-9]+"), "");
    if (!msg.empty() && msg.back() == '.') msg.pop_back();
    const std::string token = err.GetToken();
    if (role == ExpressionRole::mask && token == "score")
      msg = "a mask cannot read score (only attention.score_mod can)";
    problem = {msg, byte >= 0 ? char_index(text, byte) : -1};
    if (problem.position >= 0) problem.message += " at character " + std::to_string(problem.position + 1);
    return nullptr;
  }
  return e;
}

struct ExpressionEvaluator::Impl {
  std::shared_ptr<const CellExpression> e;
  Cells cells;
  mu::Parser parser;
  std::vector<double> out = std::vector<double>(kBulk);
  bool ok = false;
};

ExpressionEvaluator::ExpressionEvaluator(std::shared_ptr<const CellExpression> e, int n_q, int n_k)
    : impl_(std::make_unique<Impl>()) {
  impl_->e = std::move(e);
  // compile() parsed it already; should muparser still refuse (nothing may leave an OpenMP
  // region), the evaluator gives 0: masked cells, zero scores
  try {
    set_up(impl_->parser, *impl_->e, impl_->cells, n_q, n_k);
    int n = 0;
    impl_->parser.Eval(n);
    impl_->ok = true;
  } catch (const mu::Parser::exception_type&) {
    impl_->ok = false;
  }
}

void ExpressionEvaluator::eval(int m) {
  if (impl_->ok) {
    try {
      impl_->parser.Eval(impl_->out.data(), m);
      return;
    } catch (const mu::Parser::exception_type&) {
      impl_->ok = false;
    }
  }
  std::fill(impl_->out.begin(), impl_->out.begin() + m, 0.0);
}

ExpressionEvaluator::~ExpressionEvaluator() = default;

void ExpressionEvaluator::mask_row(int q, int h, int k0, int k1, std::uint8_t* out) {
  Cells& c = impl_->cells;
  std::fill(c.q.begin(), c.q.end(), double(q));
  std::fill(c.h.begin(), c.h.end(), double(h));
  for (int j0 = k0; j0 < k1; j0 += kBulk) {
    const int m = std::min(kBulk, k1 - j0);
    for (int t = 0; t < m; ++t) c.k[t] = j0 + t;
    eval(m);
    for (int t = 0; t < m; ++t) {
      const double v = impl_->out[t];
      out[j0 - k0 + t] = v != 0 && !std::isnan(v) ? 1 : 0;
    }
  }
}

void ExpressionEvaluator::modify_scores(int q0, int rows, int k0, int cols, int h, float* scores, int ld) {
  Cells& c = impl_->cells;
  std::fill(c.h.begin(), c.h.end(), double(h));
  for (int i = 0; i < rows; ++i) {
    std::fill(c.q.begin(), c.q.end(), double(q0 + i));
    float* row = scores + std::size_t(i) * ld;
    for (int j0 = 0; j0 < cols; j0 += kBulk) {
      const int m = std::min(kBulk, cols - j0);
      for (int t = 0; t < m; ++t) c.k[t] = k0 + j0 + t, c.score[t] = row[j0 + t];
      eval(m);
      for (int t = 0; t < m; ++t) row[j0 + t] = static_cast<float>(impl_->out[t]);
    }
  }
}

bool expression_reads_head(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == 'h' && (i == 0 || !is_name_char(text[i - 1])) && (i + 1 == text.size() || !is_name_char(text[i + 1])))
      return true;
  return false;
}

MaskMatrix expression_mask(const CellExpression& e, int n_q, int n_k, int head) {
  MaskMatrix m(n_q, n_k);
  std::shared_ptr<const CellExpression> shared(std::shared_ptr<const CellExpression>{}, &e);  // not owned
#pragma omp parallel
  {
    ExpressionEvaluator ev(shared, n_q, n_k);
#pragma omp for schedule(dynamic, 16)
    for (int i = 0; i < n_q; ++i) ev.mask_row(i, head, 0, n_k, m.row(i).data());
  }
  return m;
}

std::shared_ptr<const CellExpression> mask_expression_of(const Session::Attention::Mask& m, std::string_view text,
                                                         const std::vector<Token>& tokens) {
  if (m.kind != MaskKind::expression) return nullptr;
  ExpressionProblem problem;
  return CellExpression::compile(m.expression, ExpressionRole::mask, m.parameters, token_facts(text, tokens, m.pad_token),
                                 problem);
}

std::shared_ptr<const CellExpression> score_mod_of(const Session& s, const std::vector<Token>& tokens) {
  if (s.attention.score_mod.expression.empty()) return nullptr;
  ExpressionProblem problem;
  return CellExpression::compile(s.attention.score_mod.expression, ExpressionRole::score_mod,
                                 s.attention.score_mod.parameters,
                                 token_facts(s.text, tokens, s.attention.mask.pad_token), problem);
}

const std::vector<ExpressionPreset>& expression_presets() {
  using R = ExpressionRole;
  static const std::vector<ExpressionPreset> presets = {
      // masks: attention-gym's catalogue (and xFormers' bias families), each as a formula
      {"causal", R::mask, "k <= q", "{}", "causal", "each query sees itself and the keys before it"},
      {"sliding_window", R::mask, "abs(q - k) <= window", R"({"window": 2})", "sliding_window",
       "keys within window positions either side (Longformer)"},
      {"causal_sliding_window", R::mask, "k <= q and q - k <= window", R"({"window": 2})", "causal_sliding_window",
       "the last window + 1 keys (Mistral)"},
      {"dilated_sliding_window", R::mask, "abs(q - k) <= window * dilation and (q - k) % dilation == 0",
       R"({"window": 2, "dilation": 2})", "dilated", "window steps of dilation (Longformer)"},
      {"block_local", R::mask, "floor(q / block) == floor(k / block)", R"({"block": 4})", "block_local",
       "block-diagonal: queries see the keys of their own block (xFormers BlockDiagonalMask)"},
      {"strided", R::mask, "k <= q and (q - k < stride or (q - k) % stride == 0)", R"({"stride": 4})", "strided",
       "Sparse Transformer strided pattern"},
      {"fixed", R::mask, "k <= q and (floor(k / stride) == floor(q / stride) or k % stride >= stride - summary)",
       R"({"stride": 4, "summary": 1})", "fixed", "Sparse Transformer fixed pattern"},
      {"streaming_llm", R::mask, "k <= q and (k < sinks or q - k <= window)", R"({"sinks": 4, "window": 2})",
       "streaming_llm", "attention sinks plus a causal window (StreamingLLM)"},
      {"prefix_lm", R::mask, "k <= q or k < prefix", R"({"prefix": 4})", "",
       "the prefix is seen by every query; the rest is causal (attention-gym prefix_lm)"},
      {"document", R::mask, "doc(q) == doc(k) and k <= q", "{}", "",
       "causal within each document: blank lines and special tokens separate them"},
      {"natten_1d", R::mask, "abs(min(max(q, window), n_k - 1 - window) - k) <= window", R"({"window": 2})", "",
       "neighbourhood attention: a window of 2 window + 1 keys, shifted inward at the edges (NATTEN)"},
      {"tiled_natten_1d", R::mask, "floor(q / tile) == floor(k / tile) or abs(q - k) <= window",
       R"({"tile": 8, "window": 2})", "", "tiles plus a neighbourhood window"},
      {"block_causal", R::mask, "floor(k / block) <= floor(q / block)", R"({"block": 4})", "",
       "causal between blocks, full inside one"},
      {"bottom_right_causal", R::mask, "k <= q + n_k - n_q", "{}", "",
       "causal aligned to the last key: fewer queries than keys (xFormers LowerTriangularFromBottomRightMask)"},
      {"local_from_bottom_right", R::mask, "k <= q + n_k - n_q and q + n_k - n_q - k <= window", R"({"window": 2})", "",
       "causal window aligned to the last key (xFormers LocalAttentionFromBottomRightMask)"},
      {"alternating_local_global", R::mask, "k <= q and (h % 2 == 1 or q - k <= window)", R"({"window": 4})", "",
       "even heads local, odd heads global (the layer pattern of Gemma 2 and Mistral, by head)"},
      // score modifiers
      {"alibi", R::score_mod, "score - 2^(-8 * (h + 1) / n_heads) * abs(q - k)", R"({"n_heads": 4})", "",
       "ALiBi: a linear penalty by distance, slope 2^(-8(h+1)/H) per head"},
      {"soft_cap", R::score_mod, "cap * tanh(score / cap)", R"({"cap": 50})", "",
       "Gemma 2 logit soft-capping: tanh(s / c) c"},
      {"relative_position", R::score_mod, "score + bias * (k - q)", R"({"bias": 0.1})", "",
       "a bias linear in the relative position k - q (attention-gym relative_positional)"},
  };
  return presets;
}

}  // namespace attnlab
