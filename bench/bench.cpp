// make bench: one line per case, "<case> n=<n> <time> ms" (median of repeated runs).
//   mha_self_attention   full multi-head self-attention (no mask), d_model 768, 12 heads,
//                        per-head logits and weights kept, random tokens (QKV + heads + W_O)
//   mha_self_attention_causal  the same under a causal mask
//   keystroke_to_result  the app's path after a one-character edit: validate, tokenize,
//                        embed (cached), attention, rollout, Result; warm Engine as in the worker
//                        (per-head metrics are computed only while the Metrics window is open)
//   keystroke_to_result_with_metrics  the same with the per-head metrics and head similarity
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "attention.hpp"
#include "memory.hpp"
#include "pipeline.hpp"
#include "rng.hpp"

using namespace attnlab;

namespace {

constexpr int kDModel = 768, kHeads = 12;

void run_mha(benchmark::State& state, MaskKind mask) {
  const int n = static_cast<int>(state.range(0));
  Matrix x(n, kDModel);
  fill_normal(stream_key(1, "bench.x"), 1.0f, {x.data(), static_cast<std::size_t>(x.size())});
  const LayerWeights w = layer_weights(1, 0, kDModel);
  AttentionConfig cfg;
  cfg.n_heads = kHeads;
  cfg.mask.kind = mask;
  LayerResult out;
  for (auto _ : state) {
    attention_layer(x, w, cfg, out);
    benchmark::DoNotOptimize(out.output.data());
  }
  // projections 4 * 2 n d^2, scores and weighted sum 2 * 2 n^2 d
  const double flops = 8.0 * n * kDModel * kDModel + 4.0 * double(n) * n * kDModel;
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_mha_self_attention(benchmark::State& state) { run_mha(state, MaskKind::none); }
void BM_mha_self_attention_causal(benchmark::State& state) { run_mha(state, MaskKind::causal); }

std::string random_words(int n, std::uint64_t seed) {
  // n words drawn from a 5000-word synthetic vocabulary
  std::vector<float> z(n);
  fill_normal(stream_key(seed, "bench.words"), 1.0f, z);
  std::string text;
  for (int i = 0; i < n; ++i) {
    const unsigned id = static_cast<unsigned>(std::abs(z[i]) * 100000) % 5000;
    text += 'w';
    text += std::to_string(id);
    text += ' ';
  }
  return text;
}

void run_keystroke(benchmark::State& state, bool metrics) {
  const int n = static_cast<int>(state.range(0));
  Session s;
  s.text = random_words(n - 1, 2) + "x";
  s.model = {kDModel, kHeads, 42};
  Engine engine;
  engine.compute(s);  // warm: weights and embeddings cached, as in the app's worker
  int k = 0;
  for (auto _ : state) {
    s.text.back() = static_cast<char>('a' + (k++ % 26));  // the user edits the last word
    Outcome o = engine.compute(s, nullptr, {metrics});
    benchmark::DoNotOptimize(o.result.get());
    if (!o.result || o.result->tokens.size() != static_cast<std::size_t>(n)) state.SkipWithError("wrong token count");
  }
}

// as the window computes while the Metrics window is closed, and with the per-head metrics
void BM_keystroke_to_result(benchmark::State& state) { run_keystroke(state, false); }
void BM_keystroke_to_result_with_metrics(benchmark::State& state) { run_keystroke(state, true); }

// Prints "<case> n=<n> <time> ms" for each aggregate "median" (and any single run).
class LineReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      if (r.run_type == Run::RT_Iteration && r.repetitions > 1) continue;
      const std::string full = r.benchmark_name();
      const auto slash = full.find('/');
      std::string name = full.substr(3, slash - 3);  // drop "BM_"
      std::string n = full.substr(slash + 1);
      n = n.substr(0, n.find_first_of("/_"));
      const double ms = r.GetAdjustedRealTime();  // unit set to ms below
      std::string extra;
      if (auto it = r.counters.find("GFLOP/s"); it != r.counters.end()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "  (%.0f GFLOP/s)", double(it->second) / 1e9);
        extra = buf;
      }
      std::printf("%s n=%s %.2f ms%s\n", name.c_str(), n.c_str(), ms, extra.c_str());
      std::fflush(stdout);
    }
  }
};

}  // namespace

BENCHMARK(BM_mha_self_attention)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_mha_self_attention_causal)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_keystroke_to_result_with_metrics)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_keystroke_to_result)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);

int main(int argc, char** argv) {
  attnlab::tune_allocator();
  benchmark::Initialize(&argc, argv);
  LineReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
