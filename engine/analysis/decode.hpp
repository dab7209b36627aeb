// Inference as it runs: a prefill of the first tokens, then one token at a time, each new query
// row reading the KV cache of every layer. From a dense Result's masks (a causal Result's rows
// are exactly what incremental decoding computes: no row reads a later token), for each layer:
// which keys the cache must still hold at a query (a key no later row allows is evicted - a
// sliding window's, keeping StreamingLLM's sinks), and what that costs in bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "pipeline.hpp"

namespace attnlab {

struct DecodeLayer {
  std::vector<std::uint8_t> state;  // per key 0..query: 1 kept in the cache, 0 evicted, 2 the new token's own
  int kept = 0, evicted = 0;
  int kv_heads = 0;                 // distinct K/V heads (GQA / MQA groups share one)
  std::vector<int> group;           // per query head, the K/V head it reads
  double bytes = 0;                 // keys and values kept: 2 x kept x kv_heads x d_head x 4 (F32)
  double bytes_full = 0;            // the same without eviction
};

struct DecodeStep {
  int prefill = 1;   // tokens computed at once before the first step
  int step = 0;      // 0: the prefill itself; s: the s-th generated token (or chunk)
  int chunk = 1;     // tokens a step adds: 1 decoding; more is chunked prefill (queries fewer than keys)
  int first = 0;     // the first row the step adds
  int query = 0;     // the last row the step adds (prefill: its last row)
  bool causal = true;  // every row reads no later key: decoding one token at a time is exact
  std::vector<DecodeLayer> layers;
};

// What every step reads, computed once per Result (O(layers x heads x n^2)): per layer and key,
// the last row that allows it (-1: none), and whether every row is causal.
struct DecodePlan {
  std::vector<std::vector<int>> last_use;
  bool causal = true;
};
DecodePlan decode_plan(const Result& r);

// The step `step` after a prefill of `prefill` tokens (both clamped to the Result's tokens),
// O(layers x n). Dense self-attention Results only (layers empty otherwise).
// With chunk > 1, each step adds that many rows at once (chunked prefill: the chunk's queries read
// the cache and each other, aligned to the bottom right of their keys).
DecodeStep decode_step(const Result& r, const DecodePlan& plan, int prefill, int step, int chunk = 1);

}  // namespace attnlab
