#include <doctest/doctest.h>
#include <set>

#include "attention/masks.hpp"
#include "pipeline.hpp"
#include "test_util.hpp"

using namespace attnlab;

namespace {
MaskSpec spec_from(const nlohmann::json& j) {
  nlohmann::json session = {{"attention", {{"mask", j}}}};
  auto p = parse_session(session.dump());
  REQUIRE_MESSAGE(p.session, "mask does not parse: " << j.dump());
  return p.session->attention.mask;
}

std::string rows(const MaskMatrix& m) {
  std::string s;
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) s += m(i, j) ? '1' : '0';
    s += '\n';
  }
  return s;
}
}  // namespace

TEST_CASE("masks: every pattern matches the reference on several (n, params) and edge cases") {
  const auto g = test::golden("masks.json");
  int checked = 0;
  for (const auto& c : g["cases"]) {
    const int n = c["n"];
    const MaskSpec spec = spec_from(c["mask"]);
    std::vector<Token> tokens;
    if (c.contains("tokens"))
      for (const auto& t : c["tokens"]) tokens.push_back({t.get<std::string>(), 0, 0});
    const MaskMatrix m = build_mask(spec, n, tokens, c["seed"].get<std::uint64_t>());
    std::string expected;
    for (const auto& r : c["allowed"]) expected += r.get<std::string>() + "\n";
    INFO("n " << n << ", mask " << c["mask"].dump());
    CHECK(rows(m) == expected);
    ++checked;
  }
  CHECK(checked > 120);
}

TEST_CASE("masks: by hand - causal sliding window of 1 and strided stride 2 at n = 4") {
  MaskSpec s;
  s.kind = MaskKind::causal_sliding_window;
  s.window = 1;
  CHECK(rows(build_mask(s, 4, {}, 0)) == "1000\n1100\n0110\n0011\n");
  s.kind = MaskKind::strided;
  s.stride = 2;  // i - j < 2 or (i - j) even
  CHECK(rows(build_mask(s, 4, {}, 0)) == "1000\n1100\n1110\n0111\n");
  s.kind = MaskKind::fixed;
  s.stride = 2;
  s.summary = 1;  // same block of 2, or j odd
  CHECK(rows(build_mask(s, 4, {}, 0)) == "1000\n1100\n0110\n0111\n");
}

TEST_CASE("masks: BigBird's random keys are the same for the same seed and differ for another") {
  CHECK(bigbird_random_keys(5, 3, 20, 4) == bigbird_random_keys(5, 3, 20, 4));
  CHECK(bigbird_random_keys(5, 3, 20, 4) != bigbird_random_keys(6, 3, 20, 4));
  const auto keys = bigbird_random_keys(5, 3, 20, 20);
  CHECK(std::set<int>(keys.begin(), keys.end()).size() == 20);  // r >= n: every key, once
}

TEST_CASE("masks: density and score computations") {
  MaskSpec s;
  s.kind = MaskKind::causal;
  const MaskMatrix m = build_mask(s, 4, {}, 0);
  CHECK(mask_cells(m) == 10);
  CHECK(mask_density(m) == doctest::Approx(10.0 / 16));
}

TEST_CASE("masks: weights are exactly 0 outside every pattern, rows sum to 1, empty rows are zeros") {
  const auto& kinds = option("attention.mask.kind").choices;
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    for (bool causal : {false, true}) {
      Session s;
      s.text = "every mask keeps some keys and drops the others [PAD] [PAD]";
      s.model = {16, 2, 3};
      s.attention.mask.kind = static_cast<MaskKind>(k);
      s.attention.mask.causal = causal;
      s.attention.mask.globals = {1, 11};
      s.attention.mask.cells = {{0, 0}, {2, 1}, {2, 2}, {5, 0}};  // rows 1, 3, 4, ... fully masked
      s.attention.mask.summary = 2;
      Outcome o = compute(s);
      INFO("mask " << kinds[k] << (causal ? " + causal" : ""));
      REQUIRE(o.result);
      for (const auto& h : o.result->layers[0].heads) {
        const MaskMatrix& a = *h.allowed;
        for (Eigen::Index i = 0; i < a.rows(); ++i) {
          const bool any = a.row(i).any();
          if (any) CHECK(h.weights.row(i).sum() == doctest::Approx(1.0).epsilon(1e-5));
          else CHECK(h.weights.row(i).isZero(0));
          for (Eigen::Index j = 0; j < a.cols(); ++j) {
            if (!a(i, j)) {
              CHECK(h.weights(i, j) == 0.0f);
              CHECK(std::isinf(h.logits(i, j)));
            }
            if (causal && j > i) CHECK(a(i, j) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("masks: StreamingLLM by hand - 2 sinks and a window of 1 at n = 6") {
  MaskSpec s;
  s.kind = MaskKind::streaming_llm;
  s.sinks = 2;
  s.window = 1;  // keys j <= i with j < 2 or i - j <= 1: self and one before (Xiao et al. 2023, sec. 3.2)
  CHECK(rows(build_mask(s, 6, {}, 0)) == "100000\n110000\n111000\n111100\n110110\n110011\n");
}

TEST_CASE("masks: StreamingLLM keeps its sinks for every later query and a causal window otherwise") {
  for (int sinks : {0, 1, 4}) {
    for (int window : {0, 3, 50}) {
      MaskSpec s;
      s.kind = MaskKind::streaming_llm;
      s.sinks = sinks;
      s.window = window;
      const int n = 40;
      const MaskMatrix m = build_mask(s, n, {}, 0);
      INFO("sinks " << sinks << ", window " << window);
      for (int i = 0; i < n; ++i) {
        int row = 0;
        for (int j = 0; j < n; ++j) {
          row += m(i, j);
          if (j > i) CHECK(m(i, j) == 0);                      // causal by construction
          else if (j < sinks || i - j <= window) CHECK(m(i, j) == 1);  // a sink or in the window
          else CHECK(m(i, j) == 0);
        }
        // a query attends at most s + w + 1 keys: the cache StreamingLLM keeps
        CHECK(row == std::min(i + 1, std::min(sinks, i + 1) + std::min(window + 1, std::max(0, i + 1 - sinks))));
      }
    }
  }
  // the kinds table says it is causal already, so the causal option is not offered
  Session session;
  session.attention.mask.kind = MaskKind::streaming_llm;
  CHECK_FALSE(option_relevant(session, "attention.mask.causal"));
  CHECK(option_relevant(session, "attention.mask.sinks"));
  CHECK(option_relevant(session, "attention.mask.window"));
  session.attention.mask.kind = MaskKind::sliding_window;
  CHECK_FALSE(option_relevant(session, "attention.mask.sinks"));
}

TEST_CASE("masks: under StreamingLLM, changing a later token leaves earlier rows unchanged") {
  Session a;
  a.text = "one two three four five six seven eight nine ten";
  a.attention.mask.kind = MaskKind::streaming_llm;
  a.attention.mask.sinks = 2;
  a.attention.mask.window = 2;
  Session b = a;
  b.text = "one two three four five six seven eight nine TEN";
  Engine e;
  const Outcome oa = e.compute(a), ob = e.compute(b);
  REQUIRE(oa.result);
  REQUIRE(ob.result);
  for (std::size_t h = 0; h < oa.result->layers[0].heads.size(); ++h) {
    const Matrix& wa = oa.result->layers[0].heads[h].weights;
    const Matrix& wb = ob.result->layers[0].heads[h].weights;
    // rows 0..8 never see token 9: the same path computes them, so they are bit-identical
    CHECK(wa.topRows(9) == wb.topRows(9));
    CHECK(wa.row(9) != wb.row(9));
  }
}
