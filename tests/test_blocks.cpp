// The block map of a mask (analysis/blocks.hpp): counts derived by hand, and the rule's
// difference-array count equal to counting the dense mask cell by cell, for every kind.
#include <doctest/doctest.h>

#include <string>

#include "analysis/blocks.hpp"
#include "attention/masks.hpp"
#include "pipeline.hpp"

using namespace attnlab;

namespace {
Session::Attention::Mask mask_of(MaskKind kind) {
  Session::Attention::Mask m;
  m.kind = kind;
  return m;
}
}  // namespace

TEST_CASE("blocks: causal 1024 in 128-blocks and a window of 50 in 100-blocks, by hand") {
  const MaskRule causal(mask_of(MaskKind::causal), 1024, 1024, nullptr, 0);
  const BlockMap c = block_map(causal, 128, 128);
  CHECK(c.rows == 8);
  CHECK(c.cols == 8);
  CHECK(c.full == 28);     // under the diagonal: 8 * 7 / 2
  CHECK(c.partial == 8);   // the diagonal
  CHECK(c.empty == 28);
  CHECK(c.allowed == 1024LL * 1025 / 2);
  CHECK(c.computed == 36LL * 128 * 128);
  CHECK(c.saving() == doctest::Approx(28.0 / 64));
  CHECK(c.at(0, 0) == BlockState::partial);
  CHECK(c.at(7, 0) == BlockState::full);
  CHECK(c.at(0, 7) == BlockState::empty);
  auto w = mask_of(MaskKind::sliding_window);
  w.window = 50;
  const BlockMap s = block_map(MaskRule(w, 1000, 1000, nullptr, 0), 100, 100);
  CHECK(s.full == 0);               // no 100 x 100 block lies inside |i - j| <= 50
  CHECK(s.partial == 10 + 2 * 9);   // the diagonal and its two neighbours
  CHECK(s.empty == 100 - 28);
  // a last block smaller than the rest: n = 10 in blocks of 4 (4, 4, 2)
  const BlockMap t = block_map(MaskRule(mask_of(MaskKind::none), 10, 10, nullptr, 0), 4, 4);
  CHECK(t.rows == 3);
  CHECK(t.full == 9);
  CHECK(t.computed == 100);
  CHECK(t.saving() == doctest::Approx(0.0));
}

TEST_CASE("blocks: the rule's count equals the dense mask's, cell by cell, for every kind and expressions") {
  const int n = 300;
  for (const auto& [kind, label] : std::vector<std::pair<MaskKind, std::string>>{
           {MaskKind::none, "none"}, {MaskKind::causal, "causal"}, {MaskKind::sliding_window, "sliding_window"},
           {MaskKind::causal_sliding_window, "causal_sliding_window"}, {MaskKind::dilated, "dilated"},
           {MaskKind::longformer, "longformer"}, {MaskKind::bigbird, "bigbird"}, {MaskKind::block_local, "block_local"},
           {MaskKind::strided, "strided"}, {MaskKind::fixed, "fixed"}, {MaskKind::streaming_llm, "streaming_llm"},
           {MaskKind::expression, "expression"}}) {
    const std::string name = label;  // (clang 14: a lambda - doctest's INFO - cannot capture a structured binding)
    auto m = mask_of(kind);
    m.window = 9;
    m.globals = {0, 150};
    m.expression = "k <= q and (k % 7 == 0 or q - k < 20)";
    const MaskRule rule(m, n, n, nullptr, 3);
    const MaskMatrix dense = build_mask(m, n, {}, 3);
    for (const auto& size : std::vector<std::pair<int, int>>{{1, 1}, {7, 13}, {64, 64}, {128, 32}, {300, 300}, {512, 512}}) {
      const int bq = size.first, bk = size.second;
      const BlockMap a = block_map(rule, bq, bk), b = block_map(dense, bq, bk);
      INFO(name << " blocks " << bq << " x " << bk);
      CHECK(a.kind == b.kind);
      CHECK(a.allowed == b.allowed);
      CHECK(a.full == b.full);
      CHECK(a.partial == b.partial);
      CHECK(a.computed == b.computed);
      CHECK(a.full + a.partial + a.empty == (long long)a.rows * a.cols);
    }
  }
}

TEST_CASE("blocks: StreamingLLM at 131,072 tokens from its rule, without an n x n bitmap") {
  auto m = mask_of(MaskKind::streaming_llm);
  m.sinks = 4;
  m.window = 127;
  const BlockMap b = block_map(MaskRule(m, 131072, 131072, nullptr, 0), 128, 128);
  CHECK(b.rows == 1024);
  // the diagonal (1024), the block before it (1023), the sinks' column from block row 2 on (1022)
  CHECK(b.partial == 1024 + 1023 + 1022);
  CHECK(b.full == 0);
  CHECK(b.saving() > 0.997);
}
