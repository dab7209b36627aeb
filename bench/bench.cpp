// make bench: one line per case, "<case> n=<n> <time> ms" (median of repeated runs).
//   mha_self_attention   full multi-head self-attention (no mask), d_model 768, 12 heads,
//                        per-head logits and weights kept, random tokens (QKV + heads + W_O)
//   mha_self_attention_causal  the same under a causal mask
//   keystroke_to_result  the app's path after a one-character edit: validate, tokenize,
//                        embed (cached), attention, rollout, Result; warm Engine as in the worker
//                        (per-head metrics are computed only while the Metrics window is open)
//   keystroke_to_result_with_metrics  the same with the per-head metrics and head similarity
//   gpt2_small_load      loading a GPT-2-small-sized folder (124M parameters, F32, real tensor
//                        names and layout, random weights) written to a temporary directory
//   gpt2_small_forward   its forward pass on a 128- and a 1024-token text, every head's matrices
//                        kept (no output head)
//   field_one_head_overview / field_tile_256 / field_tile_pooled_2048  one head's field at n,
//                        then exact tiles of it (see OneHead below)
//   keystroke_to_result n=2048 / 4096  the edit path at the last dense length and as a field
//   smollm_field_forward n=8192  a SmolLM-135M-shaped Llama folder (30 layers, d 576, 9 / 3 heads,
//                        random weights) at 8192 tokens: every layer as a field, with overviews
//   tokenize_metaspace_10k_merges / tokenize_bytelevel_10k_merges  a 124 KB text through a
//                        BPE of 10,000 merges (metaspace: the whole text is one piece; byte-level:
//                        GPT-2 pre-tokenisation, pieces cached); n is the text's size in bytes
#include <benchmark/benchmark.h>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "training/trainer.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/attention.hpp"
#include "attention/field.hpp"
#include "core/gemm.hpp"
#include "present/field_view.hpp"
#include "tokenizers/bpe.hpp"
#include "models/hf_model.hpp"
#include "core/memory.hpp"
#include "pipeline.hpp"
#include "core/rng.hpp"
#include "analysis/metrics.hpp"

using namespace attnlab;

namespace {

constexpr int kDModel = 768, kHeads = 12;

// One layer's input, weights and configuration at n tokens, the same for every attention case.
struct LayerCase {
  Matrix x;
  LayerWeights w;
  AttentionConfig cfg;
  explicit LayerCase(int n, const Session::Attention::Mask& mask) : x(n, kDModel), w(layer_weights(1, 0, kDModel)) {
    fill_normal(stream_key(1, "bench.x"), 1.0f, {x.data(), static_cast<std::size_t>(x.size())});
    cfg.n_heads = kHeads;
    cfg.mask = mask;
  }
};

void run_mha(benchmark::State& state, MaskKind mask) {
  const int n = static_cast<int>(state.range(0));
  Session::Attention::Mask m;
  m.kind = mask;
  LayerCase c(n, m);
  const Matrix& x = c.x;
  const LayerWeights& w = c.w;
  const AttentionConfig& cfg = c.cfg;
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

// The machine's GEMM rate, the floor every ratio below is taken against: (n x n) x (n x n).
void BM_gemm_floor(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Matrix a(n, n), b(n, n), c;
  fill_normal(stream_key(1, "bench.a"), 1.0f, {a.data(), static_cast<std::size_t>(a.size())});
  fill_normal(stream_key(1, "bench.b"), 1.0f, {b.data(), static_cast<std::size_t>(b.size())});
  for (auto _ : state) {
    matmul(a, b, c);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

// The attention field of a layer (d_model 768, 12 heads): per-row statistics, the outputs and a
// 512 x 512 overview per head, no n x n buffer. Useful FLOPs: projections 8 n d^2 and 4 d per
// allowed cell (scores and the weighted sum), so GFLOP/s / the floor's is the efficiency.
void run_field(benchmark::State& state, const Session::Attention::Mask& mask) {
  const int n = static_cast<int>(state.range(0));
  LayerCase c(n, mask);
  const Matrix& x = c.x;
  const LayerWeights& w = c.w;
  const AttentionConfig& cfg = c.cfg;
  long long cells = 0;
  for (auto _ : state) {
    FieldLayer out;
    field_layer(x, w, cfg, {}, out);
    cells = out.heads[0].cells;
    benchmark::DoNotOptimize(out.output.data());
  }
  const double flops = 8.0 * n * kDModel * kDModel + 4.0 * double(cells) * kDModel;
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
void BM_field_self_attention(benchmark::State& state) {
  Session::Attention::Mask m;
  m.kind = MaskKind::none;
  run_field(state, m);
}
// Head similarity of a field layer (12 heads, full attention): the per-pair Jensen-Shannon
// divergences over exact tiles, all rows up to kFieldSimilarityCells cells, a sample above.
void BM_field_head_similarity(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Session::Attention::Mask m;
  m.kind = MaskKind::none;
  LayerCase c(n, m);
  FieldLayer f;
  field_layer(c.x, c.w, c.cfg, {}, f);
  long rows = 0;
  for (auto _ : state) {
    Matrix js = field_head_similarity(f, kFieldSimilarityCells, &rows);
    benchmark::DoNotOptimize(js.data());
  }
  state.counters["rows"] = double(rows);
}
void BM_field_window128_sinks(benchmark::State& state) {  // StreamingLLM: 4 sinks, the last 128 keys
  Session::Attention::Mask m;
  m.kind = MaskKind::streaming_llm;
  m.sinks = 4;
  m.window = 127;
  run_field(state, m);
}
// Programmable attention (issue 14): a mask typed as an expression against its built-in kind.
// The expression's field evaluates every cell once (muparser, both cores) and keeps row spans.
void BM_field_causal(benchmark::State& state) {
  Session::Attention::Mask m;
  m.kind = MaskKind::causal;
  run_field(state, m);
}
void BM_field_expression_causal(benchmark::State& state) {
  Session::Attention::Mask m;
  m.kind = MaskKind::expression;
  m.expression = "k <= q";
  run_field(state, m);
}
void BM_field_expression_window128_sinks(benchmark::State& state) {
  Session::Attention::Mask m;
  m.kind = MaskKind::expression;
  m.expression = "k <= q and (k < sinks or q - k <= window)";
  m.parameters = {{"sinks", 4}, {"window", 127}};
  run_field(state, m);
}
void BM_mha_self_attention_causal(benchmark::State& state) { run_mha(state, MaskKind::causal); }

// One head (d_head 64) at n tokens, no mask (every cell: a default Mask is causal), built once: field_one_head_overview times its
// field (row statistics, output, both 512 x 512 overviews; 4 n^2 d useful FLOPs), field_tile_256
// an exact 256 x 256 tile of weights at a random place of it (what the zoomed window asks for),
// field_tile_pooled_2048 a 2048 x 2048 block pooled 8 x 8 (one level-3 tile of the pyramid).
struct OneHead {
  HeadField f;
  MaskRule rule;
  FieldHeadSpec spec;
  static Session::Attention::Mask no_mask() {
    Session::Attention::Mask m;
    m.kind = MaskKind::none;
    return m;
  }
  explicit OneHead(int n) : rule(no_mask(), n, n, nullptr, 1) {
    f.q.resize(n, 64), f.k.resize(n, 64), f.v.resize(n, 64);
    fill_normal(stream_key(1, "bench.q"), 1.0f, {f.q.data(), static_cast<std::size_t>(f.q.size())});
    fill_normal(stream_key(1, "bench.k"), 1.0f, {f.k.data(), static_cast<std::size_t>(f.k.size())});
    fill_normal(stream_key(1, "bench.v"), 1.0f, {f.v.data(), static_cast<std::size_t>(f.v.size())});
    spec.alpha = 0.125f;
    spec.rule = &rule;
  }
};
OneHead& one_head(int n) {
  static std::unique_ptr<OneHead> h;
  if (!h || h->f.q.rows() != n) {
    h = std::make_unique<OneHead>(n);
    build_head_field(h->f, h->spec, {}, nullptr);
  }
  return *h;
}
void BM_field_one_head_overview(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  OneHead h(n);
  for (auto _ : state) {
    build_head_field(h.f, h.spec, {}, nullptr);
    benchmark::DoNotOptimize(h.f.overview_max.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * double(n) * n * 64, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
// What the GEMM library reaches on the shapes attention has (inner dimension d_head = 64): one
// head's q k^T and w v, both cores, in the blocks build_head_field calls them on (64 query rows
// below 8192 keys; from 8192 on 512 rows, keys 512 at a time). Its rate against gemm_floor's is
// the best a field can do with these GEMMs (4 n^2 d FLOPs).
ComputeOptions no_metrics() {
  ComputeOptions o;
  o.metrics = false;
  return o;
}

void BM_gemm_dhead64(benchmark::State& state) {
  const FieldOptions fo;
  const int n = static_cast<int>(state.range(0)), d = 64;
  const bool tall = n >= fo.tall_from;
  const int rows = tall ? fo.tall_rows_per_block : fo.rows_per_block, cols = tall ? fo.cols_per_chunk : n;
  Matrix q(n, d), k(n, d), v(n, d), o(n, d);
  fill_normal(stream_key(1, "bench.q"), 1.0f, {q.data(), static_cast<std::size_t>(q.size())});
  fill_normal(stream_key(1, "bench.k"), 1.0f, {k.data(), static_cast<std::size_t>(k.size())});
  fill_normal(stream_key(1, "bench.v"), 1.0f, {v.data(), static_cast<std::size_t>(v.size())});
  for (auto _ : state) {
#pragma omp parallel
    {
      std::vector<float> s(std::size_t(rows) * cols);
#pragma omp for schedule(dynamic, 1)
      for (int b = 0; b < n / rows; ++b)
        for (int c = 0; c < n; c += cols) {
          gemm_nt(rows, cols, d, 0.125f, &q(b * rows, 0), d, &k(c, 0), d, s.data(), cols);
          gemm_nn(rows, d, cols, s.data(), cols, &v(c, 0), d, &o(b * rows, 0), d, c == 0 ? 0.0f : 1.0f);
        }
    }
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * double(n) * n * d, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
void BM_field_tile_256(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  OneHead& h = one_head(n);
  std::uint64_t k = 0;
  for (auto _ : state) {
    const int r0 = static_cast<int>((k * 2654435761u) % (n - 256)), c0 = static_cast<int>((k * 40503u + 17) % (n - 256));
    ++k;
    Matrix t = field_tile(h.f, h.spec, r0, r0 + 256, c0, c0 + 256, false);
    benchmark::DoNotOptimize(t.data());
  }
}
void BM_field_tile_pooled_2048(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  OneHead& h = one_head(n);
  std::uint64_t k = 0;
  for (auto _ : state) {
    const int r0 = static_cast<int>((k * 2654435761u) % (n - 2048)), c0 = static_cast<int>((k * 40503u + 17) % (n - 2048));
    ++k;
    PooledTile t = pool_field_tile(h.f, h.spec, r0, r0 + 2048, c0, c0 + 2048, 8, false);
    benchmark::DoNotOptimize(t.value.data());
  }
}

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
  ComputeOptions opt;
  opt.metrics = metrics;
  int k = 0;
  for (auto _ : state) {
    s.text.back() = static_cast<char>('a' + (k++ % 26));  // the user edits the last word
    Outcome o = engine.compute(s, nullptr, opt);
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
      if (r.error_occurred) {  // said once, never a silent gap
        if (r.repetition_index <= 0) std::printf("%s error: %s\n", r.benchmark_name().c_str(), r.error_message.c_str());
        continue;
      }
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
      if (auto it = r.counters.find("phase_change_step"); it != r.counters.end()) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "  (phase change at step %.0f, %.0f steps/s)", double(it->second),
                      double(r.counters.at("steps_per_s")));
        extra += buf;
      }
      if (auto it = r.counters.find("peak_MB"); it != r.counters.end()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "  (peak %.0f MB)", double(it->second));
        extra += buf;
      }
      std::printf("%s n=%s %.2f ms%s\n", name.c_str(), n.c_str(), ms, extra.c_str());
      std::fflush(stdout);
    }
  }
};

// A safetensors file of F32 tensors `shapes` (name, shape), N(0, 0.02) from stream `seed`; norm
// gains ("ln_*.weight", "*norm.weight") are 1.
void write_random_safetensors(const std::string& file, const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& shapes,
                              std::uint64_t seed) {
  nlohmann::json header;
  std::size_t off = 0;
  for (const auto& [n, sh] : shapes) {
    std::size_t count = 1;
    for (auto k : sh) count *= k;
    header[n] = {{"dtype", "F32"}, {"shape", sh}, {"data_offsets", {off, off + 4 * count}}};
    off += 4 * count;
  }
  const std::string h = header.dump();
  std::ofstream f(file, std::ios::binary);
  const std::uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f << h;
  for (const auto& [n, sh] : shapes) {
    std::size_t count = 1;
    for (auto k : sh) count *= k;
    std::vector<float> buf(count);
    fill_normal(stream_key(seed, n), 0.02f, {buf.data(), buf.size()});
    const bool gain = (n.find("ln_") != std::string::npos || n.find("norm") != std::string::npos) &&
                      n.find(".weight") != std::string::npos;
    if (gain) std::fill(buf.begin(), buf.end(), 1.0f);
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(4 * count));
  }
}

// A GPT-2-small-sized model folder: config, vocab (the 256 byte symbols, no merges), and one
// F32 safetensors file with GPT2Model's tensor names; random N(0, 0.02) weights.
const std::string& gpt2_small_dir() {
  static const std::string dir = [] {
    const int d = 768, layers = 12, vocab = 50257, positions = 1024;  // GPT-2 small: 124M parameters
    const std::string path = (std::filesystem::temp_directory_path() / "attnlab-bench-gpt2-small").string();
    std::filesystem::create_directories(path);
    nlohmann::json cfg = {{"model_type", "gpt2"}, {"n_embd", d},   {"n_head", 12},
                          {"n_layer", layers},    {"n_positions", positions}, {"vocab_size", vocab}};
    std::ofstream(path + "/config.json") << cfg.dump();
    nlohmann::json v;  // the tokenizer knows only the 256 byte symbols (ids 0-255 of 50257 rows)
    int x = 0, extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const char32_t cp = printable ? char32_t(b) : char32_t(256 + extra++);
      std::string u;
      if (cp < 0x80) u += char(cp);
      else u += char(0xC0 | (cp >> 6)), u += char(0x80 | (cp & 0x3F));
      v[u] = x++;
    }
    std::ofstream(path + "/vocab.json") << v.dump();
    std::ofstream(path + "/merges.txt") << "#version: 0.2\n";
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> shapes = {{"wte.weight", {vocab, d}},
                                                                            {"wpe.weight", {positions, d}}};
    for (int l = 0; l < layers; ++l) {
      const std::string p = "h." + std::to_string(l) + ".";
      for (auto [n, s] : std::vector<std::pair<std::string, std::vector<std::int64_t>>>{
               {"ln_1.weight", {d}}, {"ln_1.bias", {d}}, {"attn.c_attn.weight", {d, 3 * d}}, {"attn.c_attn.bias", {3 * d}},
               {"attn.c_proj.weight", {d, d}}, {"attn.c_proj.bias", {d}}, {"ln_2.weight", {d}}, {"ln_2.bias", {d}},
               {"mlp.c_fc.weight", {d, 4 * d}}, {"mlp.c_fc.bias", {4 * d}}, {"mlp.c_proj.weight", {4 * d, d}},
               {"mlp.c_proj.bias", {d}}})
        shapes.push_back({p + n, s});
    }
    shapes.push_back({"ln_f.weight", {d}});  // the output head: ln_f, then the tied wte
    shapes.push_back({"ln_f.bias", {d}});
    write_random_safetensors(path + "/model.safetensors", shapes, 3);
    return path;
  }();
  return dir;
}

// A SmolLM-135M-shaped Llama folder in the real layout (model.layers.L.self_attn.q_proj.weight,
// ...): 30 layers, d_model 576, 9 heads over 3 K/V heads, SwiGLU 1536, random N(0, 0.02) F32
// weights, the tiny Llama's tokenizer (ids below its 349) for the text.
const std::string& smollm_dir() {
  static const std::string dir = [] {
    const int d = 576, layers = 30, heads = 9, kv = 3, dh = 64, inner = 1536, vocab = 49152;
    const std::string path = (std::filesystem::temp_directory_path() / "attnlab-bench-smollm").string();
    std::filesystem::create_directories(path);
    nlohmann::json cfg = {{"model_type", "llama"}, {"hidden_size", d}, {"num_attention_heads", heads},
                          {"num_key_value_heads", kv}, {"num_hidden_layers", layers}, {"intermediate_size", inner},
                          {"max_position_embeddings", 8192}, {"vocab_size", vocab}, {"rms_norm_eps", 1e-5},
                          {"rope_theta", 10000.0}, {"hidden_act", "silu"}, {"tie_word_embeddings", true}};
    std::ofstream(path + "/config.json") << cfg.dump();
    std::filesystem::copy_file(std::string(ATTNLAB_MODELS_DIR) + "/tiny-llama/tokenizer.json", path + "/tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing);
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> shapes = {{"model.embed_tokens.weight", {vocab, d}}};
    for (int l = 0; l < layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      for (auto [n, sh] : std::vector<std::pair<std::string, std::vector<std::int64_t>>>{
               {"input_layernorm.weight", {d}}, {"self_attn.q_proj.weight", {heads * dh, d}},
               {"self_attn.k_proj.weight", {kv * dh, d}}, {"self_attn.v_proj.weight", {kv * dh, d}},
               {"self_attn.o_proj.weight", {d, heads * dh}}, {"post_attention_layernorm.weight", {d}},
               {"mlp.gate_proj.weight", {inner, d}}, {"mlp.up_proj.weight", {inner, d}}, {"mlp.down_proj.weight", {d, inner}}})
        shapes.push_back({p + n, sh});
    }
    shapes.push_back({"model.norm.weight", {d}});
    write_random_safetensors(path + "/model.safetensors", shapes, 5);
    return path;
  }();
  return dir;
}

// Every layer's field (and overviews) of the SmolLM-shaped folder at n tokens: the model forward
// pass on the tiled kernel. Peak memory: read /proc/self/status VmHWM after the run.
void BM_smollm_field_forward(benchmark::State& state) {
  Failure err;
  static auto m = HfModel::load(smollm_dir(), err);
  if (!m) {
    state.SkipWithError(err.message.c_str());
    return;
  }
  const std::string text(static_cast<std::size_t>(state.range(0)) - 1, 'c');  // '_' + 8191 x 'c': n tokens
  for (auto _ : state) {
    Outcome o = m->compute(text, nullptr, no_metrics());
    if (!o.result) state.SkipWithError(o.problems.empty() ? "cancelled" : o.problems[0].c_str());
    else if (!o.result->is_field() || o.result->tokens.size() != std::size_t(state.range(0)))
      state.SkipWithError(("not a field of n tokens: " + std::to_string(o.result->tokens.size())).c_str());
    benchmark::DoNotOptimize(o.result.get());
  }
  std::ifstream st("/proc/self/status");
  for (std::string line; std::getline(st, line);)
    if (line.rfind("VmHWM:", 0) == 0) state.counters["peak_MB"] = std::stod(line.substr(6)) / 1024.0;
}

void BM_gpt2_small_load(benchmark::State& state) {
  const std::string& dir = gpt2_small_dir();
  for (auto _ : state) {
    Failure err;
    auto m = HfModel::load(dir, err);
    if (!m) state.SkipWithError(err.message.c_str());
    benchmark::DoNotOptimize(m.get());
  }
}

void BM_gpt2_small_forward(benchmark::State& state) {
  Failure err;
  static auto m = HfModel::load(gpt2_small_dir(), err);
  if (!m) {
    state.SkipWithError(err.message.c_str());
    return;
  }
  const std::string text(static_cast<std::size_t>(state.range(0)), 'a');  // one byte, one token
  ComputeOptions attention_only = no_metrics();
  attention_only.top_k = 0;  // the output head is gpt2_small_next_tokens
  for (auto _ : state) {
    Outcome o = m->compute(text, nullptr, attention_only);
    if (!o.result || o.result->tokens.size() != text.size()) state.SkipWithError("wrong token count");
    benchmark::DoNotOptimize(o.result.get());
  }
}

// The output side and interventions on the GPT-2-small-sized folder at n tokens:
//   gpt2_small_next_tokens   the forward pass with the top 10 next tokens at every position
//   gpt2_small_patch_grid    the 12 x 12 head-patching grid (logit difference): the clean and
//                            corrupted runs, then 144 runs each resumed at its head's layer (on
//                            average 0.54 of a forward pass: an ablation's cost with the prefix reused)
//   gpt2_small_generate      32 tokens generated greedily after the text, with the KV cache
//   gpt2_small_generate_nocache  the same rerunning the whole text for every token
const HfModel* gpt2_small() {
  static Failure err;
  static auto m = HfModel::load(gpt2_small_dir(), err);
  return m.get();
}

std::string byte_text(benchmark::State& state, char c = 'a') {
  std::string t(static_cast<std::size_t>(state.range(0)), c);
  for (std::size_t i = 0; i < t.size(); i += 7) t[i] = 'b';  // two tokens, so texts differ
  return t;
}

void BM_gpt2_small_next_tokens(benchmark::State& state) {
  const HfModel* m = gpt2_small();
  if (!m) return state.SkipWithError("no model");
  ComputeOptions o = no_metrics();
  o.top_k = 10;
  const std::string text = byte_text(state);
  for (auto _ : state) {
    Outcome r = m->compute(text, nullptr, o);
    if (!r.result || r.result->next_tokens.empty()) state.SkipWithError("no next tokens");
  }
}

void BM_gpt2_small_patch_grid(benchmark::State& state) {
  const HfModel* m = gpt2_small();
  if (!m) return state.SkipWithError("no model");
  PatchRequest q;
  q.clean = byte_text(state);
  q.corrupted = byte_text(state, 'c');
  q.grid = PatchRequest::Grid::heads;
  for (auto _ : state) {
    PatchGrid g;
    std::string why;
    if (!m->patch(q, g, why)) state.SkipWithError(why.c_str());
    state.counters["forward_passes"] = 2 + g.layers_run;  // the clean and corrupted runs, then the grid's
  }
}

void generate_bench(benchmark::State& state, bool cache) {
  const HfModel* m = gpt2_small();
  if (!m) return state.SkipWithError("no model");
  GenerateOptions o;
  o.tokens = 32;
  o.use_cache = cache;
  const std::string text = byte_text(state);
  for (auto _ : state) {
    Generation g;
    std::string why;
    if (!m->generate(text, o, g, why)) state.SkipWithError(why.c_str());
  }
}
void BM_gpt2_small_generate(benchmark::State& state) { generate_bench(state, true); }
void BM_gpt2_small_generate_nocache(benchmark::State& state) { generate_bench(state, false); }

}  // namespace

// A synthetic BPE of 10,000 merges over letters (metaspace: "▁" joins words as SentencePiece does).
std::unique_ptr<ByteBpe> synthetic_bpe(bool metaspace) {
  const std::string space = metaspace ? "\u2581" : "\u0120";
  nlohmann::json vocab = nlohmann::json::object();
  std::vector<std::string> tokens;
  for (char c = 'a'; c <= 'z'; ++c) tokens.push_back(std::string(1, c));
  tokens.push_back(space);
  for (const auto& t : tokens) vocab[t] = int(vocab.size());
  nlohmann::json merges = nlohmann::json::array();
  std::vector<float> z(60000);
  fill_normal(stream_key(7, "bench.merges"), 1.0f, z);
  for (std::size_t k = 0; merges.size() < 10000 && k + 1 < z.size(); k += 2) {
    const std::string& a = tokens[std::size_t(std::abs(z[k]) * 997) % tokens.size()];
    const std::string& b = tokens[std::size_t(std::abs(z[k + 1]) * 991) % tokens.size()];
    if (a.size() + b.size() > 12 || vocab.contains(a + b)) continue;
    merges.push_back(nlohmann::json::array({a, b}));
    vocab[a + b] = int(vocab.size());
    tokens.push_back(a + b);
  }
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  tj["pre_tokenizer"] = metaspace ? nlohmann::json{{"type", "Metaspace"}} : nlohmann::json{{"type", "ByteLevel"}};
  std::string err;
  auto b = ByteBpe::from_tokenizer_json(tj.dump(), err);
  if (!b) std::fprintf(stderr, "synthetic BPE: %s\n", err.c_str());
  return b;
}

void run_tokenize(benchmark::State& state, bool metaspace) {
  static const auto bpe = synthetic_bpe(metaspace);
  std::string text;
  std::vector<float> z(200000);
  fill_normal(stream_key(3, "bench.text"), 1.0f, z);
  for (std::size_t k = 0; text.size() < std::size_t(state.range(0)); ++k)
    text += (k % 6 == 5) ? ' ' : char('a' + std::size_t(std::abs(z[k % z.size()]) * 101) % 26);
  std::vector<int> ids;
  std::vector<Token> toks;
  std::string err;
  for (auto _ : state) {
    bpe->encode(text, ids, toks, err);
    benchmark::DoNotOptimize(ids.data());
  }
  state.counters["tokens"] = double(ids.size());
}
void BM_tokenize_metaspace_10k_merges(benchmark::State& state) { run_tokenize(state, true); }
void BM_tokenize_bytelevel_10k_merges(benchmark::State& state) { run_tokenize(state, false); }

BENCHMARK(BM_gemm_floor)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3);
BENCHMARK(BM_gemm_dhead64)->Arg(4096)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_field_self_attention)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3);
BENCHMARK(BM_field_window128_sinks)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_self_attention)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_causal)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_expression_causal)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_window128_sinks)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_expression_window128_sinks)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_field_head_similarity)->Arg(4096)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_field_one_head_overview)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_field_tile_256)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->MinTime(0.2);
BENCHMARK(BM_field_tile_pooled_2048)->Arg(32768)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3)->MinTime(0.2);
BENCHMARK(BM_keystroke_to_result)->Arg(2048)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3);
BENCHMARK(BM_mha_self_attention)->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_mha_self_attention_causal)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_keystroke_to_result_with_metrics)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_keystroke_to_result)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(7)->MinTime(0.3);
BENCHMARK(BM_smollm_field_forward)->Arg(8192)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_gpt2_small_load)->Arg(124)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(3);
BENCHMARK(BM_gpt2_small_forward)->Arg(128)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->MinTime(0.3);
BENCHMARK(BM_gpt2_small_next_tokens)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->MinTime(0.3);
BENCHMARK(BM_gpt2_small_patch_grid)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_gpt2_small_generate)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_gpt2_small_generate_nocache)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(2);
BENCHMARK(BM_tokenize_metaspace_10k_merges)->Arg(124000)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3);
BENCHMARK(BM_tokenize_bytelevel_10k_merges)->Arg(124000)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3);


// --- training (issue 13) -----------------------------------------------------------------------
// One optimisation step (forward, backward, AdamW) of a task model; GFLOP/s counts the matrix
// products of forward and backward (Trainer::flops_per_step), against gemm_floor's rate.
train::TrainSpec train_spec(int d_model, int length, bool mlp) {
  train::TrainSpec s;
  s.task.kind = train::TaskKind::induction, s.task.length = length, s.task.symbols = 32;
  s.model.d_model = d_model, s.model.n_layers = 2, s.model.n_heads = 4, s.model.n_kv_heads = 4, s.model.mlp = mlp;
  s.training.steps = 1000000;
  return s;
}
void run_train_step(benchmark::State& state, int d_model, bool mlp) {
  std::string err;
  auto t = train::Trainer::make(train_spec(d_model, static_cast<int>(state.range(0)), mlp), err);
  if (!t) return state.SkipWithError(err.c_str());
  t->train_step();  // buffers sized
  for (auto _ : state) t->train_step();
  state.counters["GFLOP/s"] = benchmark::Counter(t->flops_per_step(), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
void BM_train_step_d64_attn_only(benchmark::State& state) { run_train_step(state, 64, false); }
void BM_train_step_d128_mlp(benchmark::State& state) { run_train_step(state, 128, true); }
void BM_train_step_d256_mlp(benchmark::State& state) { run_train_step(state, 256, true); }

// The target: assets/training/induction.json (2 layers, attention-only, d_model 64, 4
// heads, length 64) trained until the phase change (validation loss below half its plateau and a
// layer-1 head's induction score above 0.5); each repetition another seed (0, 1, 2), the median
// printed. The time is the wall time to the phase change, evaluations included.
void BM_train_induction_to_phase_change(benchmark::State& state) {
  static int seed = 0;
  std::string text, err;
  nlohmann::json j;
  train::TrainSpec s;
  if (!read_file_limited(std::string(ATTNLAB_ASSETS_DIR) + "/training/induction.json", 1 << 20, text, err) ||
      !parse_json_input(text, j, err) || !train::read_train_spec(j, "induction.json", "", s, err))
    return state.SkipWithError(err.c_str());
  s.training.seed = static_cast<std::uint64_t>(seed++);
  for (auto _ : state) {
    auto t = train::Trainer::make(s, err);
    t->run(nullptr, {}, true);
    state.counters["phase_change_step"] = t->phase_change_step();
    state.counters["steps_per_s"] = t->step() / std::max(1e-9, t->seconds());
    if (t->phase_change_step() < 0) state.SkipWithError("no phase change within the file's steps");
  }
}
BENCHMARK(BM_train_step_d64_attn_only)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3)->MinTime(0.3);
BENCHMARK(BM_train_step_d128_mlp)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3)->MinTime(0.3);
BENCHMARK(BM_train_step_d256_mlp)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3)->MinTime(0.3);
BENCHMARK(BM_train_induction_to_phase_change)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1)->Repetitions(3);

int main(int argc, char** argv) {
  attnlab::choose_blas_kernels(argv);  // first: it may run the process again
  attnlab::tune_allocator();
  benchmark::Initialize(&argc, argv);
  LineReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
