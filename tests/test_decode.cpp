// The decode step (analysis/decode.hpp): what the KV cache holds at each generated token, by hand.
#include <doctest/doctest.h>

#include "analysis/decode.hpp"

using namespace attnlab;

namespace {
std::shared_ptr<const Result> run(Session s) {
  s.text = "one two three four five six seven eight nine ten eleven twelve";
  s.model.d_model = 16;
  s.model.n_heads = 4;
  Engine e;
  auto o = e.compute(s);
  REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
  return o.result;
}
}  // namespace

TEST_CASE("decode: the cache at each step - causal keeps all, a window evicts, sinks stay, GQA shares") {
  Session s;  // causal, 4 heads of d_head 4
  auto r = run(s);
  DecodePlan plan = decode_plan(*r);
  CHECK(plan.causal);
  DecodeStep d = decode_step(*r, plan, 4, 3);
  CHECK(d.query == 6);
  REQUIRE(d.layers.size() == 1);
  CHECK(d.layers[0].kept == 7);
  CHECK(d.layers[0].evicted == 0);
  CHECK(d.layers[0].state.back() == 2);  // the new token
  CHECK(d.layers[0].kv_heads == 4);
  CHECK(d.layers[0].bytes == 2.0 * 7 * 4 * 4 * 4);
  CHECK(decode_step(*r, plan, 4, 100).query == 11);  // clamped to the last token
  CHECK(decode_step(*r, plan, 4, 0).query == 3);     // the prefill's last row

  s.attention.mask.kind = MaskKind::causal_sliding_window;  // the last w + 1 = 3 keys
  s.attention.mask.window = 2;
  r = run(s);
  plan = decode_plan(*r);
  d = decode_step(*r, plan, 1, 6);  // query 6 reads keys 4, 5, 6
  CHECK(d.layers[0].kept == 3);
  CHECK(d.layers[0].evicted == 4);
  CHECK(d.layers[0].state == std::vector<std::uint8_t>{0, 0, 0, 0, 1, 1, 2});

  s.attention.mask.kind = MaskKind::streaming_llm;  // 2 sinks and the last 3 keys
  s.attention.mask.sinks = 2;
  r = run(s);
  plan = decode_plan(*r);
  d = decode_step(*r, plan, 1, 8);
  CHECK(d.layers[0].kept == 2 + 3);
  CHECK(d.layers[0].state == std::vector<std::uint8_t>{1, 1, 0, 0, 0, 0, 1, 1, 2});

  s.attention.mask.kind = MaskKind::causal;  // GQA: 4 query heads over 2 K/V heads, half the bytes
  s.model.kv_sharing = KvSharing::gqa;
  s.model.n_kv_heads = 2;
  r = run(s);
  plan = decode_plan(*r);
  d = decode_step(*r, plan, 4, 3);
  CHECK(d.layers[0].kv_heads == 2);
  CHECK(d.layers[0].group == std::vector<int>{0, 0, 1, 1});
  CHECK(d.layers[0].bytes == 2.0 * 7 * 2 * 4 * 4);

  // chunked prefill: 4 prefilled, then chunks of 3 rows (4..6, 7..9, 10..11)
  d = decode_step(*r, plan, 4, 2, 3);
  CHECK(d.first == 7);
  CHECK(d.query == 9);
  CHECK(d.layers[0].kept == 10);
  CHECK(d.layers[0].state == std::vector<std::uint8_t>{1, 1, 1, 1, 1, 1, 1, 2, 2, 2});
  CHECK(decode_step(*r, plan, 4, 3, 3).query == 11);  // the last chunk is shorter
  CHECK(decode_step(*r, plan, 4, 9, 3).step == 3);

  s.model.kv_sharing = KvSharing::mha;
  s.attention.mask.kind = MaskKind::none;  // rows read later keys: not a decoder
  r = run(s);
  CHECK(!decode_plan(*r).causal);
}
