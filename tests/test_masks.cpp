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
