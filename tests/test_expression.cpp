// Programmable attention: masks and score modifiers typed as expressions (attention/expression.hpp).
// Every preset that names a built-in kind allows exactly its cells, dense and as the field's
// rule; errors name the character; hostile expressions are refused, never crash. The numpy
// reference (tests/reference/make_golden.py) covers whole sessions in attention.json / masks.json.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <random>
#include <thread>
#include <string>

#include "attention/expression.hpp"
#include "attention/field.hpp"
#include "attention/masks.hpp"
#include "pipeline.hpp"
#include "test_util.hpp"

using namespace attnlab;

namespace {

Session::Attention::Mask mask_from(const nlohmann::json& j) {
  const nlohmann::json session = {{"attention", {{"mask", j}}}};
  auto p = parse_session(session.dump());
  REQUIRE_MESSAGE(p.session, "mask does not parse: " << j.dump() << " " << (p.problems.empty() ? "" : p.problems[0]));
  return p.session->attention.mask;
}

std::shared_ptr<const CellExpression> compile_mask(const std::string& text, const std::map<std::string, double>& params,
                                                   ExpressionProblem& problem) {
  return CellExpression::compile(text, ExpressionRole::mask, params, {}, problem);
}

// the first row and column where two masks differ, or "" when they are equal
std::string first_difference(const MaskMatrix& a, const MaskMatrix& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return "shapes differ";
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j)
      if (a(i, j) != b(i, j))
        return "(" + std::to_string(i) + ", " + std::to_string(j) + "): " + std::to_string(int(a(i, j))) + " vs " +
               std::to_string(int(b(i, j)));
  return "";
}

}  // namespace

TEST_CASE("expression: every preset that names a built-in kind equals it cell for cell, dense and as a rule, n = 1 ... 4096") {
  int presets = 0;
  for (const ExpressionPreset& p : expression_presets()) {
    if (p.role != ExpressionRole::mask || !*p.equals_kind) continue;
    ++presets;
    const nlohmann::json params = nlohmann::json::parse(p.parameters);
    // the preset's parameters, and others: edges (0, 1) and a wide one
    std::vector<nlohmann::json> variants = {params};
    for (const auto& [key, value] : params.items()) {
      (void)value;
      for (int v : {1, 3, 7}) {
        nlohmann::json x = params;
        x[key] = v;
        if (key == "summary" && v > int(x.value("stride", 4))) continue;  // fixed: summary <= stride
        variants.push_back(x);
      }
    }
    for (const nlohmann::json& vp : variants) {
      nlohmann::json builtin = vp;
      builtin["kind"] = p.equals_kind;
      const auto kind_mask = mask_from(builtin);
      const auto expr_mask = mask_from({{"kind", "expression"}, {"expression", p.expression}, {"parameters", vp}});
      ExpressionProblem problem;
      const auto e = compile_mask(p.expression, expr_mask.parameters, problem);
      REQUIRE_MESSAGE(e, p.name << ": " << problem.message);
      const bool first = &vp == &variants.front();
      for (int n : {1, 2, 3, 5, 8, 17, 64, 129, 1000, 4096}) {
        if (n == 4096 && !first) continue;  // the largest for the preset's own parameters
        INFO(p.name << " " << vp.dump() << " n = " << n);
        const MaskMatrix want = build_mask(kind_mask, n, {}, 7);
        const MaskMatrix got = build_mask(expr_mask, n, {}, 7, e.get());
        CHECK_MESSAGE(first_difference(want, got).empty(), first_difference(want, got));
        // the field's rule: the same spans, row by row
        const MaskRule rk(kind_mask, n, n, nullptr, 7), re(expr_mask, n, n, nullptr, 7, e);
        std::vector<std::pair<int, int>> a, b;
        int bad_row = -1;
        for (int i = 0; i < n && bad_row < 0; ++i) {
          rk.spans(i, a);
          re.spans(i, b);
          if (a != b) bad_row = i;
        }
        CHECK_MESSAGE(bad_row == -1, "spans differ at row " << bad_row);
      }
    }
  }
  CHECK(presets == 8);
}

TEST_CASE("expression: a fragmented expression's rule (k % 2 == 0) keeps bits, and its spans are the cells") {
  const auto m = mask_from({{"kind", "expression"}, {"expression", "(k % 2 == 0 and k <= q) or k == 2 * floor(q / 3) + 1"}});
  ExpressionProblem problem;
  const auto e = compile_mask(m.expression, {}, problem);
  REQUIRE(e);
  for (int n : {1, 63, 64, 65, 700}) {
    const MaskMatrix dense = build_mask(m, n, {}, 0, e.get());
    const MaskRule rule(m, n, n, nullptr, 0, e);
    long long cells = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        // by hand: even keys up to the query, and key 2 floor(q / 3) + 1
        const bool want = (j % 2 == 0 && j <= i) || j == 2 * (i / 3) + 1;
        REQUIRE_MESSAGE(bool(dense(i, j)) == want, "n " << n << " (" << i << ", " << j << ")");
        REQUIRE_MESSAGE(rule.allowed(i, j) == want, "rule, n " << n << " (" << i << ", " << j << ")");
        cells += want;
      }
    CHECK(rule.allowed_cells() == cells);
  }
}

TEST_CASE("expression: and, or, not, %, doc() and is_special() by hand") {
  ExpressionProblem problem;
  // doc: blank lines and special tokens separate documents
  const std::string text = "a b\n\nc [PAD] d";
  const std::vector<Token> tokens = {{"a", 0, 1}, {"b", 2, 3}, {"c", 5, 6}, {"[PAD]", 7, 12}, {"d", 13, 14}};
  const TokenFacts f = token_facts(text, tokens, "[PAD]");
  CHECK(f.doc == std::vector<double>{0, 0, 1, 1, 2});
  CHECK(f.special == std::vector<double>{0, 0, 0, 1, 0});
  auto e = CellExpression::compile("doc(q) == doc(k) and not is_special(k)", ExpressionRole::mask, {}, f, problem);
  REQUIRE_MESSAGE(e, problem.message);
  const MaskMatrix m = expression_mask(*e, 5, 5, 0);
  std::string rows;
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) rows += m(i, j) ? '1' : '0';
    rows += '\n';
  }
  CHECK(rows == "11000\n11000\n00100\n00100\n00001\n");
  // floored modulo: (q - k) % 3 for q < k is never negative (muparser's own fmod would be)
  e = CellExpression::compile("(q - k) % 3 == 2", ExpressionRole::mask, {}, {}, problem);
  REQUIRE(e);
  const MaskMatrix m2 = expression_mask(*e, 1, 4, 0);  // q = 0: (0 - k) % 3 = 0, 2, 1, 0
  CHECK(int(m2(0, 0)) == 0);
  CHECK(int(m2(0, 1)) == 1);
  CHECK(int(m2(0, 2)) == 0);
  CHECK(int(m2(0, 3)) == 0);
  // a score modifier: soft-capping, by hand
  auto s = CellExpression::compile("cap * tanh(score / cap)", ExpressionRole::score_mod, {{"cap", 2.0}}, {}, problem);
  REQUIRE(s);
  ExpressionEvaluator ev(s, 1, 3);
  float scores[3] = {0.5f, -4.0f, 100.0f};
  ev.modify_scores(0, 1, 0, 3, 0, scores, 3);
  CHECK(scores[0] == doctest::Approx(2 * std::tanh(0.25)).epsilon(1e-6));
  CHECK(scores[1] == doctest::Approx(2 * std::tanh(-2.0)).epsilon(1e-6));
  CHECK(scores[2] == doctest::Approx(2.0).epsilon(1e-6));
  CHECK(!s->reads_head());
  CHECK(CellExpression::compile("h % 2 == 0", ExpressionRole::mask, {}, {}, problem)->reads_head());
}

TEST_CASE("expression: errors say what and at which character; hostile expressions are refused") {
  ExpressionProblem problem;
  CHECK(!compile_mask("k <= qq", {}, problem));
  CHECK(problem.position == 5);
  CHECK(problem.message.find("qq") != std::string::npos);
  CHECK(problem.message.find("at character 6") != std::string::npos);
  CHECK(!compile_mask("k <= q and", {}, problem));  // 'and' is rewritten to &&: the position is the user's
  CHECK(problem.position >= 7);
  CHECK(problem.position <= 10);
  CHECK(!compile_mask("é + (k <= q", {}, problem));  // positions count characters, not bytes
  CHECK(problem.position == 0);
  CHECK(!compile_mask("(k <= q", {}, problem));
  CHECK(problem.position >= 0);
  CHECK(!compile_mask("score > 0", {}, problem));
  CHECK(problem.message.find("mask cannot read score") != std::string::npos);
  CHECK(!compile_mask("   ", {}, problem));
  CHECK(problem.message.find("empty") != std::string::npos);
  CHECK(!compile_mask("k, q", {}, problem));
  CHECK(!compile_mask("k <= q", {{"q", 1}}, problem));
  CHECK(problem.message.find("parameter 'q'") != std::string::npos);
  CHECK(!compile_mask("k <= q", {{"2x", 1}}, problem));
  CHECK(!compile_mask("k <= q", {{"w", std::nan("")}}, problem));
  // deep parentheses and a long chain: an answer, not a stack overflow
  const std::string deep = std::string(2000, '(') + "k <= q" + std::string(2000, ')');
  const auto d = compile_mask(deep, {}, problem);
  if (d) CHECK(int(expression_mask(*d, 2, 2, 0)(0, 1)) == 0);
  else CHECK(!problem.message.empty());
  std::string chain = "k";
  for (int i = 0; i < 1000; ++i) chain += " + 1";
  CHECK(compile_mask(chain + " > q", {}, problem));
  // NaN and infinities mask the cell; division by zero too
  const auto nan = compile_mask("sqrt(-1) + k", {}, problem);
  REQUIRE(nan);
  CHECK(int(expression_mask(*nan, 2, 2, 0).cast<int>().sum()) == 0);
  const auto div = compile_mask("mod(k, 0) == 0 or k / 0 > 1", {}, problem);
  REQUIRE(div);
  CHECK(int(expression_mask(*div, 2, 2, 0).cast<int>().sum()) == 2);  // key 1: 1 / 0 = inf > 1; key 0: 0 / 0 is NaN
}

TEST_CASE("expression: sessions validate expressions with their character, and save and load them") {
  Session s;
  s.text = "one two three four";
  s.attention.mask.kind = MaskKind::expression;
  s.attention.mask.expression = "k <= q and q - k <= w";
  s.attention.mask.parameters = {{"w", 1}};
  s.attention.score_mod.expression = "score - 0.5 * abs(q - k)";
  Validation v = validate(s);
  REQUIRE_MESSAGE(v.ok(), v.problems[0]);
  CHECK(v.mask_expression);
  CHECK(v.score_mod);
  auto p = parse_session(to_json(s));
  REQUIRE(p.session);
  CHECK(p.session->attention.mask.expression == s.attention.mask.expression);
  CHECK(p.session->attention.mask.parameters == s.attention.mask.parameters);
  CHECK(p.session->attention.score_mod == s.attention.score_mod);
  s.attention.mask.expression = "k <= q and q - k <= ww";
  v = validate(s);
  REQUIRE(!v.ok());
  CHECK(v.problems[0].find("attention.mask.expression") == 0);
  CHECK(v.problems[0].find("at character 21") != std::string::npos);
  s.attention.mask.expression = std::string(kMaxExpressionBytes + 1, 'k');
  v = validate(s);
  REQUIRE(!v.ok());
  CHECK(v.problems[0].find("limit is 4096") != std::string::npos);
  // an approximate kernel has no scores to modify: the score_mod is not in force there, and not saved
  s.attention.mask.expression = "k <= q";
  s.attention.kernel.kind = KernelKind::linear;
  v = validate(s);
  INFO((v.problems.empty() ? "" : v.problems[0]));
  CHECK(!v.score_mod);
  CHECK(to_json(s).find("score_mod") == std::string::npos);
}

TEST_CASE("expression: a score modifier of h changes each head as written; the causal flag cuts an expression") {
  Session s;
  s.text = "a few words to attend over here";
  s.model.d_model = 8;
  s.model.n_heads = 2;
  s.attention.mask.kind = MaskKind::none;
  Engine e;
  const auto base = e.compute(s).result;
  REQUIRE(base);
  s.attention.score_mod.expression = "score + 3 * h * (k == 0)";  // head 1: key 0 gets +3
  const auto mod = e.compute(s).result;
  REQUIRE(mod);
  const Matrix& l0 = base->layers[0].heads[1].logits;
  const Matrix& l1 = mod->layers[0].heads[1].logits;
  for (Eigen::Index i = 0; i < l0.rows(); ++i) {
    CHECK(l1(i, 0) == doctest::Approx(l0(i, 0) + 3).epsilon(1e-5));
    CHECK(l1(i, 1) == doctest::Approx(l0(i, 1)).epsilon(1e-6));
  }
  CHECK((mod->layers[0].heads[0].logits - base->layers[0].heads[0].logits).cwiseAbs().maxCoeff() < 1e-6);
  s.attention.score_mod = {};
  s.attention.mask.kind = MaskKind::expression;
  s.attention.mask.expression = "1";
  s.attention.mask.causal = true;
  const auto causal = e.compute(s).result;
  REQUIRE(causal);
  const MaskMatrix& a = *causal->layers[0].heads[0].allowed;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) CHECK(bool(a(i, j)) == (j <= i));
}

namespace {
// A random formula over the names and operators masks use, for the bounds' property test.
struct RandomFormula {
  std::mt19937 rng;
  explicit RandomFormula(unsigned seed) : rng(seed) {}
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  std::string value(int depth) {
    if (depth <= 0 || pick(4) == 0) {
      switch (pick(8)) {
        case 0: return "q";
        case 1: return "k";
        case 2: return "h";
        case 3: return "w";
        case 4: return "n_k";
        case 5: return std::to_string(pick(9) - 2);
        case 6: return "0.5";
        default: return pick(2) ? "q" : "k";
      }
    }
    switch (pick(14)) {
      case 0: return "(" + value(depth - 1) + " + " + value(depth - 1) + ")";
      case 1: return "(" + value(depth - 1) + " - " + value(depth - 1) + ")";
      case 2: return value(depth - 1) + " * " + value(depth - 1);
      case 3: return "floor(" + value(depth - 1) + " / " + std::to_string(pick(7) + 1) + ")";
      case 4: return "(" + value(depth - 1) + ") % " + std::to_string(pick(6) + 1);
      case 5: return "abs(" + value(depth - 1) + ")";
      case 6: return "min(" + value(depth - 1) + ", " + value(depth - 1) + ")";
      case 7: return "max(" + value(depth - 1) + ", " + value(depth - 1) + ")";
      case 8: return "doc(" + value(depth - 1) + ")";
      case 9: return "is_special(" + value(depth - 1) + ")";
      case 10: return "-(" + value(depth - 1) + ")";
      case 11: return value(depth - 1) + " / " + value(depth - 1);
      case 12: return "mod(" + value(depth - 1) + ", " + value(depth - 1) + ")";
      default: return "(" + test(depth - 1) + " ? " + value(depth - 1) + " : " + value(depth - 1) + ")";
    }
  }
  std::string test(int depth) {
    static const char* cmp[] = {" < ", " <= ", " > ", " >= ", " == ", " != "};
    switch (depth <= 0 ? 0 : pick(5)) {
      case 0: case 1: return value(depth) + cmp[pick(6)] + value(depth);
      case 2: return "(" + test(depth - 1) + " and " + test(depth - 1) + ")";
      case 3: return "(" + test(depth - 1) + " or " + test(depth - 1) + ")";
      default: return "not (" + test(depth - 1) + ")";
    }
  }
};
}  // namespace

TEST_CASE("expression: blocks decided by the bounds equal the cells evaluated one by one, for 400 random formulas") {
  RandomFormula gen(20261203);
  // tokens with documents and specials: doc(x) and is_special(x) have something to read
  const int n_tokens = 300;
  std::string text;
  std::vector<Token> tokens;
  for (int t = 0; t < n_tokens; ++t) {
    const std::string word = t % 37 == 5 ? "[PAD]" : "w" + std::to_string(t);
    const std::size_t begin = text.size();
    text += word;
    tokens.push_back({word, begin, text.size()});
    text += t % 53 == 20 ? "\n\n" : " ";
  }
  const TokenFacts facts = token_facts(text, tokens, "[PAD]");
  int decided_somewhere = 0;
  for (int c = 0; c < 400; ++c) {
    const std::string f = gen.pick(3) ? gen.test(3) : gen.value(3);
    const int n = 1 + gen.pick(n_tokens), head = gen.pick(3);
    ExpressionProblem problem;
    const auto e = CellExpression::compile(f, ExpressionRole::mask, {{"w", double(gen.pick(9))}}, facts, problem);
    REQUIRE_MESSAGE(e, f << ": " << problem.message);
    long long evaluated = 0;
    MaskMatrix blocks = MaskMatrix::Zero(n, n);
    expression_rows(e, n, n, head, [&](int i, const std::vector<std::pair<int, int>>& spans) {
      for (const auto& [a, b] : spans)
        for (int j = a; j < b; ++j) blocks(i, j) = 1;
    }, &evaluated);
    MaskMatrix cells(n, n);
    ExpressionEvaluator ev(e, n, n);
    for (int i = 0; i < n; ++i) ev.mask_row(i, head, 0, n, cells.row(i).data());
    INFO(f << " (n " << n << ", head " << head << ", bounds " << e->has_bounds() << ")");
    CHECK_MESSAGE(first_difference(cells, blocks).empty(), first_difference(cells, blocks));
    CHECK(e->has_bounds());
    decided_somewhere += evaluated < (long long)n * n;
  }
  CHECK(decided_somewhere > 100);  // the bounds decide blocks of many formulas, not none
}

TEST_CASE("expression: the bounds decide the presets' blocks - the cells evaluated one by one follow the boundary") {
  const int n = 4096;
  for (const ExpressionPreset& p : expression_presets()) {
    if (p.role != ExpressionRole::mask || std::string(p.name) == "document") continue;
    std::map<std::string, double> params;
    const nlohmann::json pj = nlohmann::json::parse(p.parameters);
    for (auto it = pj.begin(); it != pj.end(); ++it) params[it.key()] = it.value().get<double>();
    ExpressionProblem problem;
    const auto e = compile_mask(p.expression, params, problem);
    REQUIRE(e);
    long long evaluated = 0;
    expression_rows(e, n, n, 0, [](int, const std::vector<std::pair<int, int>>&) {}, &evaluated);
    INFO(std::string(p.name) << ": " << evaluated << " of " << (long long)n * n << " cells evaluated one by one");
    CHECK(e->has_bounds());
    const std::string name = p.name;
    if (name == "strided" || name == "fixed") {
      // every 64 x 64 block under the diagonal holds allowed and masked cells (a column every
      // stride keys): no block but those above the diagonal can be decided
      CHECK(evaluated <= (long long)n * (n + 2 * 64) / 2);
    } else {
      CHECK(evaluated <= (long long)n * n / 8);
    }
  }
}

TEST_CASE("expression: a rule the bounds cannot decide stops at a cancel, and the field computation says cancelled") {
  Session s;
  s.text.reserve(65536 * 2);
  for (int i = 0; i < 65536; ++i) s.text += "a ";
  s.model = {32, 2, 3};
  s.attention.mask.kind = MaskKind::expression;
  s.attention.mask.expression = "(q + k) % 3 == 0";  // periodic: every block partial, 4.3e9 cells one by one
  std::vector<Token> tokens(65536);
  CancelFlag stop{true};
  const MaskRule r(s.attention.mask, 65536, 65536, &tokens, 0, nullptr, 0, &stop);
  CHECK(r.cancelled());
  // cancelled from another thread while the rule is being evaluated: compute returns, cancelled
  CancelFlag later{false};
  std::atomic<float> progress{0};
  std::thread t([&] {
    while (progress.load() <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    later = true;
  });
  Engine e;
  ComputeOptions opt;
  opt.progress = &progress;
  const Outcome o = e.compute(s, &later, opt);
  t.join();
  CHECK(o.cancelled);
  CHECK_FALSE(o.result);
  CHECK(progress.load() <= 0.1f);  // the rule's share of the bar: its first tenth
}
