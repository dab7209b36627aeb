#include "attention/expression.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <regex>
#include <tuple>

#include <muParser.h>

namespace attnlab {

namespace {


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

// The parser for one expression: its variables point at one cell's coordinates. (muparser's
// bulk mode parses the formula again on every call - 170 ns a cell in runs of 64 keys, against
// 20 for one Eval a cell, which runs the bytecode only.)
struct Cells {
  double q = 0, k = 0, h = 0, score = 0;
};

void set_up(mu::Parser& p, const CellExpression& e, Cells& c, int n_q, int n_k) {
  p.DefineVar("q", &c.q);
  p.DefineVar("k", &c.k);
  p.DefineVar("h", &c.h);
  if (e.role() == ExpressionRole::score_mod) p.DefineVar("score", &c.score);
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

// ---- bounds: the formula over a block of cells, by interval arithmetic --------------------------
// A value over the block lies in [lo, hi], may be NaN (nan), and is computed without rounding
// (exact: integers of integer operations, below 2^52) or not (then comparisons keep a margin, so
// that a rounding difference between this evaluation and muparser's never decides a block).

namespace {

struct Range {
  double lo = -HUGE_VAL, hi = HUGE_VAL;
  bool nan = true, exact = false;
  bool quotient = false;  // a / b of exact a and b: its floor and ceil are exact
};

constexpr double kExactLimit = 4503599627370496.0;  // 2^52

Range top() { return {}; }
Range point(double v) {
  const bool ex = std::isfinite(v) && v == std::floor(v) && std::abs(v) < kExactLimit;
  return {v, v, false, ex, false};
}
Range span(double lo, double hi, bool exact) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) return top();
  return {lo, hi, false, exact && std::abs(lo) < kExactLimit && std::abs(hi) < kExactLimit, false};
}
Range boolean(bool can_false, bool can_true) { return {can_false ? 0.0 : 1.0, can_true ? 1.0 : 0.0, false, true, false}; }
double margin(const Range& a, const Range& b) {
  if (a.exact && b.exact) return 0;
  const double m = std::max({1.0, std::abs(a.lo), std::abs(a.hi), std::abs(b.lo), std::abs(b.hi)});
  return 1e-9 * m;
}
// truthiness as muparser's && || ?: read it (NaN is true); ! gives 0 for NaN
bool can_zero(const Range& a) {
  const double e = a.exact ? 0 : 1e-9 * std::max({1.0, std::abs(a.lo), std::abs(a.hi)});
  return a.lo - e <= 0 && 0 <= a.hi + e;
}
bool can_nonzero(const Range& a) { return a.nan || !a.exact || a.lo != 0 || a.hi != 0; }

enum class Op {
  number, q, k, h, n_q, n_k, neg, pos, lnot, add, sub, mul, div, mod, pow, lt, le, gt, ge, eq, ne, land, lor, cond, call
};

struct Node {
  Op op = Op::number;
  double value = 0;
  std::string fn;
  std::vector<int> kids;
};

}  // namespace

struct CellExpression::Bounds {
  std::vector<Node> nodes;
  int root = -1;
  std::vector<double> doc;           // per token, non-decreasing
  std::vector<int> specials_before;  // prefix counts of special tokens (size n + 1)

  struct Cells {
    int q0, q1, k0, k1, h, n_q, n_k;
  };
  Range eval(int at, const Cells& c) const;
  Range call(const Node& nd, const Cells& c) const;
};

namespace {

// A recursive-descent reading of the (rewritten) formula with muparser's precedence: ?: lowest
// (right to left), ||, &&, the comparisons, + -, * / %, the signs + - ! (tighter than * / %),
// ^ (tightest). Anything else - and a second ^, whose grouping is muparser's business - leaves
// the bounds out: the mask is then evaluated cell by cell, as before.
class BoundsParser {
 public:
  BoundsParser(const std::string& text, const std::map<std::string, double>& params, std::vector<Node>& nodes)
      : t_(text), params_(params), nodes_(nodes) {}
  bool parse(int& root) {
    if (std::count(t_.begin(), t_.end(), '^') > 1) return false;
    root = ternary();
    skip();
    return ok_ && root >= 0 && i_ == t_.size();
  }

 private:
  const std::string& t_;
  const std::map<std::string, double>& params_;
  std::vector<Node>& nodes_;
  std::size_t i_ = 0;
  bool ok_ = true;
  int depth_ = 0;

  int add(Op op, std::vector<int> kids, double value = 0, std::string fn = "") {
    nodes_.push_back({op, value, std::move(fn), std::move(kids)});
    return static_cast<int>(nodes_.size()) - 1;
  }
  void skip() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
  }
  bool eat(const char* s) {
    skip();
    const std::size_t n = std::strlen(s);
    if (t_.compare(i_, n, s) != 0) return false;
    // '<' must not eat the first half of '<=', '!' not that of '!=', '&' and '|' are doubled
    if (n == 1 && (s[0] == '<' || s[0] == '>' || s[0] == '!' || s[0] == '=') && i_ + 1 < t_.size() && t_[i_ + 1] == '=')
      return false;
    i_ += n;
    return true;
  }
  int fail() {
    ok_ = false;
    return -1;
  }
  int ternary() {
    if (++depth_ > 200) return fail();  // what muparser parsed, this reads no deeper than 200 levels
    const int c = lor();
    int out = c;
    if (ok_ && eat("?")) {
      const int a = ternary();
      if (!eat(":")) return fail();
      const int b = ternary();
      out = add(Op::cond, {c, a, b});
    }
    --depth_;
    return ok_ ? out : -1;
  }
  int lor() {
    int a = land();
    while (ok_ && eat("||")) a = add(Op::lor, {a, land()});
    return a;
  }
  int land() {
    int a = cmp();
    while (ok_ && eat("&&")) a = add(Op::land, {a, cmp()});
    return a;
  }
  int cmp() {
    int a = sum();
    while (ok_) {
      Op op;
      if (eat("<=")) op = Op::le;
      else if (eat(">=")) op = Op::ge;
      else if (eat("==")) op = Op::eq;
      else if (eat("!=")) op = Op::ne;
      else if (eat("<")) op = Op::lt;
      else if (eat(">")) op = Op::gt;
      else break;
      a = add(op, {a, sum()});
    }
    return a;
  }
  int sum() {
    int a = product();
    while (ok_) {
      if (eat("+")) a = add(Op::add, {a, product()});
      else if (eat("-")) a = add(Op::sub, {a, product()});
      else break;
    }
    return a;
  }
  int product() {
    int a = sign();
    while (ok_) {
      if (eat("*")) a = add(Op::mul, {a, sign()});
      else if (eat("/")) a = add(Op::div, {a, sign()});
      else if (eat("%")) a = add(Op::mod, {a, sign()});
      else break;
    }
    return a;
  }
  int sign() {
    if (++depth_ > 200) return fail();
    int out;
    if (eat("-")) out = add(Op::neg, {sign()});
    else if (eat("+")) out = add(Op::pos, {sign()});
    else if (eat("!")) out = add(Op::lnot, {sign()});
    else out = power();
    --depth_;
    return ok_ ? out : -1;
  }
  int power() {
    const int a = primary();
    if (ok_ && eat("^")) return add(Op::pow, {a, sign()});
    return a;
  }
  int primary() {
    skip();
    if (i_ >= t_.size()) return fail();
    const char c = t_[i_];
    if (c == '(') {
      ++i_;
      const int a = ternary();
      if (!eat(")")) return fail();
      return a;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      std::size_t j = i_;
      while (j < t_.size() && std::isdigit(static_cast<unsigned char>(t_[j]))) ++j;
      if (j < t_.size() && t_[j] == '.') ++j;
      while (j < t_.size() && std::isdigit(static_cast<unsigned char>(t_[j]))) ++j;
      if (j < t_.size() && (t_[j] == 'e' || t_[j] == 'E')) {
        std::size_t e = j + 1;
        if (e < t_.size() && (t_[e] == '+' || t_[e] == '-')) ++e;
        if (e < t_.size() && std::isdigit(static_cast<unsigned char>(t_[e]))) {
          j = e;
          while (j < t_.size() && std::isdigit(static_cast<unsigned char>(t_[j]))) ++j;
        }
      }
      const std::string num = t_.substr(i_, j - i_);
      i_ = j;
      char* end = nullptr;
      const double v = std::strtod(num.c_str(), &end);
      if (!end || *end) return fail();
      return add(Op::number, {}, v);
    }
    if (is_name_char(c) && !std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t j = i_;
      while (j < t_.size() && is_name_char(t_[j])) ++j;
      const std::string name = t_.substr(i_, j - i_);
      i_ = j;
      if (eat("(")) {  // a function call
        std::vector<int> args;
        skip();
        if (!eat(")")) {
          do args.push_back(ternary());
          while (ok_ && eat(","));
          if (!eat(")")) return fail();
        }
        return add(Op::call, std::move(args), 0, name);
      }
      if (name == "q") return add(Op::q, {});
      if (name == "k") return add(Op::k, {});
      if (name == "h") return add(Op::h, {});
      if (name == "n_q") return add(Op::n_q, {});
      if (name == "n_k") return add(Op::n_k, {});
      if (name == "true") return add(Op::number, {}, 1);
      if (name == "false") return add(Op::number, {}, 0);
      if (name == "_pi") return add(Op::number, {}, 3.141592653589793238462643);
      if (name == "_e") return add(Op::number, {}, 2.718281828459045235360287);
      const auto it = params_.find(name);
      if (it != params_.end()) return add(Op::number, {}, it->second);
      return fail();  // a name these bounds do not know
    }
    return fail();
  }
};

Range monotone(const Range& a, double (*f)(double), bool exact) {
  if (a.nan) return top();
  return span(f(a.lo), f(a.hi), exact);
}

}  // namespace

namespace {
// floored a % b over ranges, as fn_mod: a - b floor(a / b), NaN for b = 0
Range floored_mod(const Range& a, const Range& b) {
  if (a.nan || b.nan || b.lo != b.hi || b.lo == 0 || !a.exact || !b.exact) {
    if (!a.nan && !b.nan && b.lo > 0) return span(0, b.hi, false);  // [0, b) for a positive divisor
    return top();
  }
  const double d = b.lo;
  const double f0 = std::floor(a.lo / d), f1 = std::floor(a.hi / d);
  if (f0 == f1) return span(a.lo - d * f0, a.hi - d * f0, true);  // one period: a shift
  return d > 0 ? span(0, d - 1, true) : span(d + 1, 0, true);
}
}  // namespace

Range CellExpression::Bounds::call(const Node& nd, const Cells& c) const {
  std::vector<Range> a;
  for (int kid : nd.kids) a.push_back(eval(kid, c));
  const std::string& f = nd.fn;
  const bool one = a.size() == 1;
  // floor and ceil of exact / exact are exact: a correctly rounded quotient of integers below
  // 2^52 never crosses the integer its true value lies above
  if (f == "floor" && one) return monotone(a[0], [](double x) { return std::floor(x); }, a[0].exact || a[0].quotient);
  if (f == "ceil" && one) return monotone(a[0], [](double x) { return std::ceil(x); }, a[0].exact || a[0].quotient);
  if (f == "abs" && one) {
    const Range& x = a[0];
    if (x.nan) return top();
    if (x.lo >= 0) return span(x.lo, x.hi, x.exact);
    if (x.hi <= 0) return span(-x.hi, -x.lo, x.exact);
    return span(0, std::max(-x.lo, x.hi), x.exact);
  }
  if ((f == "min" || f == "max") && !a.empty()) {
    Range r = a[0];
    for (std::size_t i = 1; i < a.size(); ++i) {
      if (a[i].nan || r.nan) return top();
      r = f == "min" ? span(std::min(r.lo, a[i].lo), std::min(r.hi, a[i].hi), r.exact && a[i].exact)
                     : span(std::max(r.lo, a[i].lo), std::max(r.hi, a[i].hi), r.exact && a[i].exact);
    }
    return r;
  }
  if (f == "mod" && a.size() == 2) return floored_mod(a[0], a[1]);
  if ((f == "doc" || f == "is_special") && one) {
    const Range& x = a[0];
    const int n = static_cast<int>(doc.size());
    if (x.nan || !(x.lo >= 0) || !(x.hi < n)) return top();  // outside the tokens: NaN
    const int lo = static_cast<int>(x.lo), hi = static_cast<int>(x.hi);  // the engine truncates
    if (f == "doc") return span(doc[lo], doc[hi], true);
    const int specials = specials_before[hi + 1] - specials_before[lo];
    return specials == 0 ? point(0) : specials == hi - lo + 1 ? point(1) : span(0, 1, true);
  }
  if (f == "sqrt" && one && !a[0].nan && a[0].lo >= 0) return monotone(a[0], [](double x) { return std::sqrt(x); }, false);
  if (f == "exp" && one) return monotone(a[0], [](double x) { return std::exp(x); }, false);
  if (f == "tanh" && one) return monotone(a[0], [](double x) { return std::tanh(x); }, false);
  if ((f == "sin" || f == "cos") && one && !a[0].nan) return span(-1, 1, false);
  return top();  // a function these bounds do not follow
}

Range CellExpression::Bounds::eval(int at, const Cells& c) const {
  const Node& nd = nodes[at];
  auto kid = [&](int i) { return eval(nd.kids[i], c); };
  switch (nd.op) {
    case Op::number: return point(nd.value);
    case Op::q: return span(c.q0, c.q1, true);
    case Op::k: return span(c.k0, c.k1, true);
    case Op::h: return point(c.h);
    case Op::n_q: return point(c.n_q);
    case Op::n_k: return point(c.n_k);
    case Op::pos: return kid(0);
    case Op::neg: {
      const Range a = kid(0);
      if (a.nan) return top();
      return span(-a.hi, -a.lo, a.exact);
    }
    case Op::lnot: {
      const Range a = kid(0);
      return boolean(can_nonzero(a), can_zero(a));  // !NaN is 0
    }
    case Op::add: case Op::sub: {
      const Range a = kid(0), b = kid(1);
      if (a.nan || b.nan) return top();
      return nd.op == Op::add ? span(a.lo + b.lo, a.hi + b.hi, a.exact && b.exact)
                              : span(a.lo - b.hi, a.hi - b.lo, a.exact && b.exact);
    }
    case Op::mul: {
      const Range a = kid(0), b = kid(1);
      if (a.nan || b.nan) return top();
      const double p[4] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi};
      return span(*std::min_element(p, p + 4), *std::max_element(p, p + 4), a.exact && b.exact);
    }
    case Op::div: {
      const Range a = kid(0), b = kid(1);
      if (a.nan || b.nan || (b.lo <= 0 && b.hi >= 0)) return top();
      const double p[4] = {a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi};
      Range r = span(*std::min_element(p, p + 4), *std::max_element(p, p + 4), false);
      r.quotient = !r.nan && a.exact && b.exact;
      return r;
    }
    case Op::mod: return floored_mod(kid(0), kid(1));
    case Op::pow: {
      const Range a = kid(0), b = kid(1);
      if (a.nan || b.nan || a.lo != a.hi || b.lo != b.hi) return top();
      const double v = std::pow(a.lo, b.lo);
      Range r = point(v);
      if (!(a.exact && b.exact && b.lo >= 0)) r.exact = false;
      if (std::isnan(v)) return top();
      return r;
    }
    case Op::lt: case Op::le: case Op::gt: case Op::ge: {
      Range a = kid(0), b = kid(1);
      if (nd.op == Op::gt || nd.op == Op::ge) std::swap(a, b);  // a > b is b < a
      const bool strict = nd.op == Op::lt || nd.op == Op::gt;
      const double e = margin(a, b);
      const bool nan = a.nan || b.nan;
      // NaN compares false: it can make a comparison false, never true
      const bool always = !nan && (strict ? a.hi < b.lo - e : a.hi <= b.lo - e);
      const bool never = strict ? a.lo >= b.hi + e : a.lo > b.hi + e;
      return boolean(!always, !never);
    }
    case Op::eq: case Op::ne: {
      const Range a = kid(0), b = kid(1);
      const double e = margin(a, b);
      const bool nan = a.nan || b.nan;
      const bool disjoint = !nan ? (a.hi < b.lo - e || a.lo > b.hi + e) : false;
      const bool same = !nan && a.exact && b.exact && a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
      // NaN == x is false, NaN != x true
      if (nd.op == Op::eq) return boolean(!same, !disjoint);
      return boolean(!disjoint, !same);
    }
    case Op::land: {
      const Range a = kid(0), b = kid(1);
      return boolean(can_zero(a) || can_zero(b), can_nonzero(a) && can_nonzero(b));
    }
    case Op::lor: {
      const Range a = kid(0), b = kid(1);
      return boolean(can_zero(a) && can_zero(b), can_nonzero(a) || can_nonzero(b));
    }
    case Op::cond: {
      const Range t = kid(0);
      if (!can_zero(t)) return kid(1);
      if (!can_nonzero(t)) return kid(2);
      const Range a = kid(1), b = kid(2);
      if (a.nan || b.nan) return top();
      return span(std::min(a.lo, b.lo), std::max(a.hi, b.hi), a.exact && b.exact);
    }
    case Op::call: return call(nd, c);
  }
  return top();
}

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
    if (role == ExpressionRole::mask) {  // the bounds that let blocks of cells be decided at once
      auto b = std::make_shared<Bounds>();
      if (BoundsParser(e->parsed_, e->parameters_, b->nodes).parse(b->root)) {
        b->doc = e->facts_.doc;
        b->specials_before.assign(e->facts_.special.size() + 1, 0);
        for (std::size_t t = 0; t < e->facts_.special.size(); ++t)
          b->specials_before[t + 1] = b->specials_before[t] + (e->facts_.special[t] != 0);
        e->bounds_ = std::move(b);
      }
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
  bool ok = false;
};

ExpressionEvaluator::ExpressionEvaluator(std::shared_ptr<const CellExpression> e, int n_q, int n_k)
    : impl_(std::make_unique<Impl>()) {
  impl_->e = std::move(e);
  // compile() parsed it already; should muparser still refuse (nothing may leave an OpenMP
  // region), the evaluator gives 0: masked cells, zero scores
  try {
    set_up(impl_->parser, *impl_->e, impl_->cells, n_q, n_k);
    impl_->parser.Eval();
    impl_->ok = true;
  } catch (const mu::Parser::exception_type&) {
    impl_->ok = false;
  }
}

ExpressionEvaluator::~ExpressionEvaluator() = default;

void ExpressionEvaluator::mask_row(int q, int h, int k0, int k1, std::uint8_t* out) {
  Cells& c = impl_->cells;
  c.q = q, c.h = h;
  int j = k0;
  if (impl_->ok) {
    try {
      for (; j < k1; ++j) {
        c.k = j;
        const double v = impl_->parser.Eval();
        out[j - k0] = v != 0 && !std::isnan(v) ? 1 : 0;
      }
    } catch (const mu::Parser::exception_type&) {
      impl_->ok = false;
    }
  }
  for (; j < k1; ++j) out[j - k0] = 0;
}

void ExpressionEvaluator::modify_scores(int q0, int rows, int k0, int cols, int h, float* scores, int ld) {
  Cells& c = impl_->cells;
  c.h = h;
  for (int i = 0; i < rows; ++i) {
    c.q = q0 + i;
    float* row = scores + std::size_t(i) * ld;
    int j = 0;
    if (impl_->ok) {
      try {
        for (; j < cols; ++j) {
          c.k = k0 + j, c.score = row[j];
          row[j] = static_cast<float>(impl_->parser.Eval());
        }
      } catch (const mu::Parser::exception_type&) {
        impl_->ok = false;
      }
    }
    for (; j < cols; ++j) row[j] = 0;
  }
}

bool expression_reads_head(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == 'h' && (i == 0 || !is_name_char(text[i - 1])) && (i + 1 == text.size() || !is_name_char(text[i + 1])))
      return true;
  return false;
}

CellExpression::Block CellExpression::classify(int q0, int q1, int k0, int k1, int h, int n_q, int n_k) const {
  if (!bounds_ || role_ != ExpressionRole::mask) return Block::unknown;
  const Range r = bounds_->eval(bounds_->root, {q0, q1, k0, k1, h, n_q, n_k});
  // a cell is allowed where the value is non-zero and not NaN
  const bool can_allow = !(r.exact && !r.nan && r.lo == 0 && r.hi == 0);
  const bool can_mask = r.nan || can_zero(r);
  return !can_allow ? Block::empty : !can_mask ? Block::full : Block::unknown;
}

namespace {
constexpr int kStripe = 64, kLeaf = 64;  // rows per stripe; the narrowest block of keys decided at once

// the blocks of keys of rows [r0, r1] (inclusive), in order: decided halves, down to kLeaf keys
void key_blocks(const CellExpression& e, int r0, int r1, int k0, int k1, int head, int n_q, int n_k,
                std::vector<std::tuple<int, int, CellExpression::Block>>& out) {
  const auto b = e.classify(r0, r1, k0, k1, head, n_q, n_k);
  if (b != CellExpression::Block::unknown || k1 - k0 + 1 <= kLeaf) {
    out.emplace_back(k0, k1, b);
    return;
  }
  const int mid = k0 + (k1 - k0) / 2;
  key_blocks(e, r0, r1, k0, mid, head, n_q, n_k, out);
  key_blocks(e, r0, r1, mid + 1, k1, head, n_q, n_k, out);
}
}  // namespace

void expression_rows(const std::shared_ptr<const CellExpression>& e, int n_q, int n_k, int head,
                     const std::function<void(int, const std::vector<std::pair<int, int>>&)>& emit,
                     long long* evaluated, const CancelFlag* cancel, std::atomic<float>* progress, float progress_to) {
  long long cells = 0;
  const int stripes = (n_q + kStripe - 1) / kStripe;
  std::atomic<int> done{0};
#pragma omp parallel reduction(+ : cells)
  {
    ExpressionEvaluator ev(e, n_q, n_k);
    std::vector<std::tuple<int, int, CellExpression::Block>> blocks;
    std::vector<std::uint8_t> row(n_k);
    std::vector<std::pair<int, int>> spans;
    auto append = [&](int a, int b) {  // [a, b), merged with the span it continues
      if (!spans.empty() && spans.back().second == a) spans.back().second = b;
      else spans.push_back({a, b});
    };
#pragma omp for schedule(dynamic, 1)
    for (int s = 0; s < stripes; ++s) {
      if (cancel_requested(cancel)) continue;
      const int r0 = s * kStripe, r1 = std::min(n_q, r0 + kStripe) - 1;
      blocks.clear();
      if (n_k > 0) key_blocks(*e, r0, r1, 0, n_k - 1, head, n_q, n_k, blocks);
      for (int i = r0; i <= r1; ++i) {
        spans.clear();
        for (const auto& [k0, k1, b] : blocks) {
          if (b == CellExpression::Block::full) append(k0, k1 + 1);
          if (b != CellExpression::Block::unknown) continue;
          ev.mask_row(i, head, k0, k1 + 1, row.data());
          cells += k1 - k0 + 1;
          for (int j = k0; j <= k1;) {
            if (!row[j - k0]) {
              ++j;
              continue;
            }
            int t = j;
            while (t <= k1 && row[t - k0]) ++t;
            append(j, t);
            j = t;
          }
        }
        emit(i, spans);
      }
      if (progress) progress->store(progress_to * float(++done) / float(stripes), std::memory_order_relaxed);
    }
  }
  if (evaluated) *evaluated = cells;
}

MaskMatrix expression_mask(const CellExpression& e, int n_q, int n_k, int head) {
  MaskMatrix m = MaskMatrix::Zero(n_q, n_k);
  std::shared_ptr<const CellExpression> shared(std::shared_ptr<const CellExpression>{}, &e);  // not owned
  expression_rows(shared, n_q, n_k, head, [&](int i, const std::vector<std::pair<int, int>>& spans) {
    for (const auto& [a, b] : spans) std::fill(m.row(i).data() + a, m.row(i).data() + b, std::uint8_t(1));
  });
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
