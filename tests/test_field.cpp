// The attention field against the dense engine: every tile equals the dense weights and logits,
// the output equals the dense output, rows sum to 1, the overview equals pooling the tiles, and
// memory and work follow the allowed cells.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "attention/field.hpp"
#include "present/field_view.hpp"
#include "analysis/metrics.hpp"
#include "attention/masks.hpp"
#include "pipeline.hpp"
#include "session/cost.hpp"

using namespace attnlab;

namespace {

struct Both {
  std::shared_ptr<const Result> dense;
  FieldLayer field;
};

Both compute_both(const Session& s, const FieldOptions& opt = {}) {
  Engine e;
  Outcome o = e.compute(s);
  REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
  Both b{o.result, {}};
  AttentionConfig cfg = attention_config(s);
  cfg.tokens = &o.result->tokens;
  REQUIRE(field_supports(cfg));
  const Matrix x = e.layer_input(s, o.result->tokens);
  REQUIRE(field_layer(x, e.weights(s, 0), cfg, opt, b.field));
  return b;
}

Session session_with(const char* mask, const char* positional = "sinusoidal", bool causal = false) {
  Session s;
  s.text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
           "sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four";
  s.model = {32, 4, 11};
  REQUIRE(option_set(s, "attention.mask.kind", std::string("\"") + mask + "\"").empty());
  REQUIRE(option_set(s, "positional.kind", std::string("\"") + positional + "\"").empty());
  s.attention.mask.causal = causal && mask_combines_with_causal(s.attention.mask.kind);
  s.attention.mask.window = 3;
  s.attention.mask.globals = {0, 7};
  s.attention.mask.random_keys = 2;
  s.attention.mask.block = 5;
  s.attention.mask.stride = 4;
  s.attention.mask.summary = 2;
  s.attention.mask.sinks = 2;
  s.attention.mask.dilation = 2;
  s.attention.mask.cells = {{0, 0}, {3, 1}, {3, 3}, {10, 2}, {12, 12}};
  return s;
}

// 2100 tokens (above kDenseMaxTokens: a field), 2 heads, 2 layers, RoPE
Session long_session(int d_model) {
  Session s;
  for (int i = 0; i < 2100; ++i) s.text += "w" + std::to_string((i * 7919) % 997) + " ";
  s.model = {d_model, 2, 5};
  s.model.n_layers = 2;
  s.positional.kind = PositionalKind::rope;
  return s;
}

}  // namespace

TEST_CASE("field: a learned sink (gpt-oss) gives the dense path's weights, sink weights, outputs and overview") {
  // the dense path's learned sink is checked against numpy (tests/reference/make_golden.py); the
  // field must give the same, in one chunk and with rows' softmax online across chunks, for a
  // sink below, near and far above the rows' logits (then nearly all of a row is on it)
  FieldOptions chunked;
  chunked.rows_per_block = 4;
  chunked.cols_per_chunk = 5;
  chunked.chunk_above = 0;
  int checked = 0;
  for (const FieldOptions& opt : {FieldOptions{}, chunked})
    for (const char* mask : {"none", "causal_sliding_window", "bigbird"})
      for (const double logit : {-3.0, 0.5, 40.0}) {
        Session s = session_with(mask, "rope");
        s.attention.sink.enabled = true;
        s.attention.sink.logit = logit;
        s.attention.normalizer.temperature = 0.8;
        const Both b = compute_both(s, opt);
        const auto& dense = b.dense->layers[0];
        const int n = static_cast<int>(b.dense->tokens.size());
        INFO("mask " << mask << ", sink logit " << logit << ", key chunks of " << opt.cols_per_chunk);
        for (std::size_t h = 0; h < dense.heads.size(); ++h) {
          const HeadField& f = b.field.heads[h];
          const HeadResult& d = dense.heads[h];
          REQUIRE(d.sink_weight.size() == std::size_t(n));
          REQUIRE(f.sink_weight.size() == std::size_t(n));
          const Matrix w = field_tile(f, b.field.specs[h], 0, n, 0, n, false);
          CHECK((w - d.weights).cwiseAbs().maxCoeff() <= 3e-6f);
          float worst = 0;
          for (int i = 0; i < n; ++i) {
            worst = std::max(worst, std::abs(f.sink_weight[i] - d.sink_weight[i]));
            // a row's weights and its sink's share make 1
            CHECK(w.row(i).sum() + f.sink_weight[i] == doctest::Approx(1.0).epsilon(1e-5));
          }
          CHECK(worst <= 3e-6f);
          CHECK((f.output - d.output).cwiseAbs().maxCoeff() <= 1e-5f);
          // the overview pools the weights as they are (below 1 a row): its max cells are the dense maxima
          CHECK(f.overview_max.maxCoeff() == doctest::Approx(d.weights.maxCoeff()).epsilon(1e-5));
          // the metrics read each row as a distribution over its tokens, as the dense metrics do
          CHECK(f.metrics.entropy == doctest::Approx(head_metrics(d).entropy).epsilon(1e-4));
          CHECK(f.metrics.max_weight == doctest::Approx(head_metrics(d).max_weight).epsilon(1e-4));
        }
        CHECK((b.field.output - dense.output).cwiseAbs().maxCoeff() <= 1e-4f);
        ++checked;
      }
  CHECK(checked == 18);
}

TEST_CASE("field: every tile equals the dense weights and logits, for every mask and positional encoding") {
  int checked = 0;
  // as computed at any length (a row block's keys in one chunk), and with rows and keys cut in
  // chunks of 4 x 5 so that every row's softmax runs online across several chunks
  FieldOptions chunked;
  chunked.rows_per_block = 4;
  chunked.cols_per_chunk = 5;
  chunked.chunk_above = 0;
  for (const FieldOptions& opt : {FieldOptions{}, chunked})
  for (const auto& kind : option("attention.mask.kind").choices) {
    if (kind == "lsh") continue;  // not a rule: the dense path keeps it
    for (const char* pos : {"sinusoidal", "rope", "alibi", "t5"}) {
      for (bool causal : {false, true}) {
        Session s = session_with(kind.c_str(), pos, causal);
        s.attention.normalizer.temperature = 0.7;
        const Both b = compute_both(s, opt);
        const auto& dense = b.dense->layers[0];
        const int n = static_cast<int>(b.dense->tokens.size());
        INFO("mask " << kind << (causal ? std::string(" + causal") : std::string()) << ", positional " << std::string(pos)
                     << ", key chunks of " << opt.cols_per_chunk);
        for (std::size_t h = 0; h < dense.heads.size(); ++h) {
          const HeadField& f = b.field.heads[h];
          const Matrix w = field_tile(f, b.field.specs[h], 0, n, 0, n, false);
          const Matrix l = field_tile(f, b.field.specs[h], 0, n, 0, n, true);
          const Matrix& dw = dense.heads[h].weights;
          const Matrix& dl = dense.heads[h].logits;
          const MaskMatrix& allowed = *dense.heads[h].allowed;
          float max_w = 0, max_l = 0;
          bool same_mask = true;
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) {
              same_mask &= (std::isfinite(l(i, j)) != 0) == (allowed(i, j) != 0);
              if (!allowed(i, j)) {
                same_mask &= w(i, j) == 0.0f;  // masked cells are exactly 0
                continue;
              }
              max_w = std::max(max_w, std::abs(w(i, j) - dw(i, j)));
              max_l = std::max(max_l, std::abs(l(i, j) - dl(i, j)));
            }
          CHECK(same_mask);
          // the 1e-6 is for the path n <= 2048 takes (a row block's keys in one chunk).
          // Chunked (what 8192 keys and more take), a row's max and sum come from GEMMs of other
          // shapes than the tile's and are rescaled across chunks: a last-bit difference of the
          // max logit (one ulp of |l| ~ 6 is 5e-7) moves a weight near 1 by as much, on top
          // of the dense path's own rounding (seen: 1.3e-6 with Eigen's SSE2 products)
          CHECK(max_w <= (opt.chunk_above == 0 ? 3e-6f : 1e-6f));
          CHECK(max_l <= 1e-4f);
          CHECK((f.output - dense.heads[h].output).cwiseAbs().maxCoeff() <= 1e-5f);
          long long cells = 0;
          for (int i = 0; i < n; ++i) cells += allowed.row(i).cast<long long>().sum();
          CHECK(f.cells == cells);  // scores computed = allowed cells, not n^2
          // a tile anywhere equals the same cells of the dense weights; its scores come from a GEMM
          // of another shape (last-bit differences in the logits, ~10 ulp once through exp near 1)
          const Matrix part = field_tile(f, b.field.specs[h], 5, 17, 3, 20, false);
          CHECK((part - dw.block(5, 3, 12, 17)).cwiseAbs().maxCoeff() <= 2e-6f);
        }
        CHECK((b.field.output - dense.output).cwiseAbs().maxCoeff() <= 1e-4f);
        ++checked;
      }
    }
  }
  CHECK(checked >= 2 * 13 * 4);
}

TEST_CASE("field: rows sum to 1 and the overview pools the weights by max and mean") {
  Session s = session_with("causal");
  for (int chunk : {1024, 6}) {  // one key chunk per row block, or online across chunks of 6
  CAPTURE(chunk);
  FieldOptions opt;
  opt.overview = 7;  // 24 tokens: 4 x 4 cells per overview cell, the last ones smaller
  opt.cols_per_chunk = chunk;
  opt.chunk_above = chunk < 1024 ? 0 : opt.chunk_above;
  const Both b = compute_both(s, opt);
  const int n = static_cast<int>(b.dense->tokens.size());
  for (std::size_t h = 0; h < b.field.heads.size(); ++h) {
    const HeadField& f = b.field.heads[h];
    const Matrix w = field_tile(f, b.field.specs[h], 0, n, 0, n, false);
    for (int i = 0; i < n; ++i) CHECK(w.row(i).sum() == doctest::Approx(1.0).epsilon(1e-5));
    REQUIRE(f.overview_max.rows() == (n + f.fr - 1) / f.fr);
    for (int a = 0; a < f.overview_max.rows(); ++a)
      for (int c = 0; c < f.overview_max.cols(); ++c) {
        const int r0 = a * f.fr, r1 = std::min(n, r0 + f.fr), c0 = c * f.fc, c1 = std::min(n, c0 + f.fc);
        const Matrix blk = w.block(r0, c0, r1 - r0, c1 - c0);
        CHECK(f.overview_max(a, c) == doctest::Approx(blk.maxCoeff()).epsilon(1e-6));
        CHECK(f.overview_mean(a, c) == doctest::Approx(blk.mean()).epsilon(1e-6));
      }
  }
  }
}

TEST_CASE("field: a sliding window with sinks at n = 65,536 computes its allowed cells only, in O(n d) memory") {
  const int n = 65536, d = 16;
  Session::Attention::Mask m;
  m.kind = MaskKind::streaming_llm;
  m.sinks = 4;
  m.window = 31;
  MaskRule rule(m, n, n, nullptr, 0);
  long long expected = 0;  // per row: |[0, min(s, i + 1)) u [max(0, i - w), i + 1)|
  for (long long i = 0; i < n; ++i) {
    const long long lo = std::max(0LL, i - 31), sinks = std::min(4LL, i + 1);
    expected += (i + 1 - lo) + std::max(0LL, std::min(sinks, lo));
  }
  CHECK(rule.allowed_cells() == expected);
  HeadField f;
  f.q = Matrix::Random(n, d);
  f.k = Matrix::Random(n, d);
  f.v = Matrix::Random(n, d);
  FieldHeadSpec spec;
  spec.alpha = 0.25f;
  spec.rule = &rule;
  REQUIRE(build_head_field(f, spec, {}, nullptr));
  CHECK(f.cells == rule.allowed_cells());
  CHECK(f.overview_max.rows() == 512);
  // a row far down attends exactly its 4 sinks and its 32 recent keys
  const Matrix row = field_tile(f, spec, 60000, 60001, 0, n, false);
  int nonzero = 0;
  for (int j = 0; j < n; ++j) nonzero += row(0, j) != 0.0f;
  CHECK(nonzero == 36);
  CHECK(row.sum() == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(row(0, 3) > 0);
  CHECK(row(0, 4) == 0);
  CHECK(row(0, 60000 - 31) > 0);
  CHECK(row(0, 60000 - 32) == 0);
}

TEST_CASE("field: grouped-query heads with RoPE and a causal window equal the dense engine") {
  Session s = session_with("causal_sliding_window", "rope");
  s.model.kv_sharing = KvSharing::gqa;
  s.model.n_kv_heads = 2;
  const Both b = compute_both(s);
  const int n = static_cast<int>(b.dense->tokens.size());
  for (std::size_t h = 0; h < b.field.heads.size(); ++h) {
    CHECK(b.field.heads[h].kv_head == b.dense->layers[0].heads[h].kv_head);
    const Matrix w = field_tile(b.field.heads[h], b.field.specs[h], 0, n, 0, n, false);
    CHECK((w - b.dense->layers[0].heads[h].weights).cwiseAbs().maxCoeff() <= 1e-6f);
  }
  CHECK((b.field.output - b.dense->layers[0].output).cwiseAbs().maxCoeff() <= 1e-4f);
}

TEST_CASE("field: the per-head metrics of the streaming pass equal those of the dense weights") {
  FieldOptions chunked;  // rows' softmax online across key chunks of 3
  chunked.rows_per_block = 5;
  chunked.cols_per_chunk = 3;
  chunked.chunk_above = 0;
  chunked.tall_from = 1;  // and in "tall" blocks of 7 rows
  chunked.tall_rows_per_block = 7;
  for (const FieldOptions& opt : {FieldOptions{}, chunked})
  for (const char* mask : {"none", "causal", "streaming_llm", "bigbird", "custom"}) {
    const Both b = compute_both(session_with(mask, "alibi"), opt);
    INFO("mask " << std::string(mask) << ", key chunks of " << opt.cols_per_chunk);
    for (std::size_t h = 0; h < b.field.heads.size(); ++h) {
      const HeadMetrics d = head_metrics(b.dense->layers[0].heads[h]);
      const FieldMetrics& f = b.field.heads[h].metrics;
      CHECK(f.entropy == doctest::Approx(d.entropy).epsilon(1e-4));
      CHECK(f.entropy_normalized == doctest::Approx(d.entropy_normalized).epsilon(1e-4));
      CHECK(f.mean_distance == doctest::Approx(d.mean_distance).epsilon(1e-4));
      CHECK(f.max_weight == doctest::Approx(d.max_weight).epsilon(1e-4));
      CHECK(f.first_token == doctest::Approx(d.first_token).epsilon(1e-4));
      CHECK(f.density == doctest::Approx(d.density).epsilon(1e-9));
      CHECK(f.sink_mass == doctest::Approx(d.sink_mass).epsilon(1e-4));
      CHECK(f.sink_mass >= f.first_token - 1e-6);
    }
  }
}

TEST_CASE("field: sink mass over a chosen number of sink tokens equals the dense metric's, and sessions carry it") {
  for (const int sinks : {1, 2, 7}) {
    FieldOptions opt;
    opt.sink_tokens = sinks;
    const Both b = compute_both(session_with("causal", "rope"), opt);
    for (std::size_t h = 0; h < b.field.heads.size(); ++h)
      CHECK(b.field.heads[h].metrics.sink_mass ==
            doctest::Approx(head_metrics(b.dense->layers[0].heads[h], sinks).sink_mass).epsilon(1e-4));
  }
  // analysis.sink_tokens reaches the dense and the field metrics (2100 tokens: a field)
  Session s = session_with("causal", "rope");
  Engine e;
  REQUIRE(option_set(s, "analysis.sink_tokens", "0").empty());
  const Outcome bad = e.compute(s);  // at least 1: refused, naming the key
  CHECK_FALSE(bad.result);
  CHECK((!bad.problems.empty() && bad.problems[0].find("analysis.sink_tokens") != std::string::npos));
  REQUIRE(option_set(s, "analysis.sink_tokens", "2").empty());
  const Outcome d = e.compute(s);
  REQUIRE(d.result);
  CHECK(d.result->metrics[0].sink_tokens == 2);
  CHECK(d.result->metrics[0].heads[0].sink_mass == doctest::Approx(head_metrics(d.result->layers[0].heads[0], 2).sink_mass));
  for (int i = 0; i < 2100; ++i) s.text += " w" + std::to_string(i % 50);
  const Outcome f = e.compute(s);
  REQUIRE(f.result);
  REQUIRE(f.result->is_field());
  CHECK(f.result->metrics[0].sink_tokens == 2);
}

TEST_CASE("field: pooled tiles of the pyramid equal max and mean pooling of the dense weights") {
  for (const char* mask : {"causal", "bigbird", "strided", "custom"}) {
    CAPTURE(mask);
    const Both b = compute_both(session_with(mask, "alibi"));
    const HeadResult& d = b.dense->layers[0].heads[2];
    const HeadField& f = b.field.heads[2];
    const int n = static_cast<int>(d.weights.rows());
    for (const int factor : {1, 3, 4}) {
      for (const bool mean : {false, true}) {
        CAPTURE(factor);
        CAPTURE(mean);
        const int r0 = 2, r1 = n - 1, c0 = 1, c1 = n;  // a block not aligned to anything
        const PooledTile t = pool_field_tile(f, b.field.specs[2], r0, r1, c0, c1, factor, mean);
        REQUIRE(t.rows == (r1 - r0 + factor - 1) / factor);
        REQUIRE(t.cols == (c1 - c0 + factor - 1) / factor);
        for (int a = 0; a < t.rows; ++a)
          for (int c = 0; c < t.cols; ++c) {
            double want = 0;
            bool any = false;
            int cells = 0;
            for (int i = r0 + a * factor; i < std::min(r1, r0 + (a + 1) * factor); ++i)
              for (int j = c0 + c * factor; j < std::min(c1, c0 + (c + 1) * factor); ++j) {
                ++cells;
                if (!(*d.allowed)(i, j)) continue;
                any = true;
                want = mean ? want + d.weights(i, j) : std::max(want, double(d.weights(i, j)));
              }
            if (mean) want /= cells;
            const std::size_t o = std::size_t(a) * t.cols + c;
            CHECK(bool(t.shown[o]) == any);  // exact: the rule decides
            CHECK(std::abs(t.value[o] - want) <= 1e-6);
          }
      }
    }
    // single cells, as the window's hover reads them
    for (int i = 0; i < n; i += 5)
      for (int j = 0; j < n; j += 3) {
        const FieldCell c = field_cell(f, b.field.specs[2], i, j);
        CHECK(c.allowed == bool((*d.allowed)(i, j)));
        CHECK(std::abs(c.weight - d.weights(i, j)) <= 1e-6);
        if (c.allowed) CHECK(std::abs(c.logit - d.logits(i, j)) <= 1e-5);
      }
  }
}

TEST_CASE("field: the mask overview is the allowed fraction of each block of the dense mask") {
  for (const auto& kind : option("attention.mask.kind").choices) {
    if (kind == "lsh") continue;
    CAPTURE(kind);
    const Session s = session_with(kind.c_str(), "none", true);
    Engine e;
    Outcome o = e.compute(s);
    REQUIRE(o.result);
    const MaskMatrix& m = *o.result->layers[0].heads[0].allowed;
    const int n = static_cast<int>(m.rows());
    const MaskRule rule(s.attention.mask, n, n, &o.result->tokens, s.model.seed);
    const MaskOverview ov = mask_overview(rule, 7);  // 24 tokens: blocks of 4, the last of them full
    CHECK(ov.cells == static_cast<long long>(mask_cells(m)));
    for (int a = 0; a < ov.density.rows(); ++a)
      for (int c = 0; c < ov.density.cols(); ++c) {
        int allowed = 0, cells = 0;
        for (int i = a * ov.fr; i < std::min(n, (a + 1) * ov.fr); ++i)
          for (int j = c * ov.fc; j < std::min(n, (c + 1) * ov.fc); ++j) ++cells, allowed += m(i, j) ? 1 : 0;
        CHECK(ov.density(a, c) == doctest::Approx(double(allowed) / cells).epsilon(1e-6));
      }
  }
}

TEST_CASE("field: Engine::compute above 2048 tokens returns the field, and --dense the matrices, tile for tile equal") {
  Session s = long_session(32);
  s.model.block = BlockKind::pre_ln;
  s.attention.mask.kind = MaskKind::causal_sliding_window;
  s.attention.mask.window = 40;
  Engine e;
  Outcome field = e.compute(s);
  REQUIRE(field.result);
  const Result& f = *field.result;
  CHECK(f.is_field());
  CHECK(f.layers.empty());
  CHECK(f.n_layers() == 2);
  CHECK(f.n_heads() == 2);
  REQUIRE(f.metrics.size() == 2);
  ComputeOptions dense_opt;
  dense_opt.dense = true;
  Outcome dense = e.compute(s, nullptr, dense_opt);
  REQUIRE(dense.result);
  const Result& d = *dense.result;
  REQUIRE_FALSE(d.is_field());
  for (int l = 0; l < 2; ++l)  // layer 1 reads layer 0's output through the pre-LN block
    for (int h = 0; h < 2; ++h) {
      CAPTURE(l);
      CAPTURE(h);
      const HeadResult& dh = d.layers[l].heads[h];
      const FieldLayer& fl = f.fields[l];
      for (const int r0 : {0, 1000, 2036}) {
        const Matrix t = field_tile(fl.heads[h], fl.specs[h], r0, r0 + 64, std::max(0, r0 - 100), r0 + 64, false);
        const Matrix want = dh.weights.block(r0, std::max(0, r0 - 100), 64, t.cols());
        CHECK((t - want).cwiseAbs().maxCoeff() <= 1e-5);
      }
      CHECK((fl.heads[h].output - dh.output).cwiseAbs().maxCoeff() <= 1e-4);
      CHECK(f.metrics[l].heads[h].entropy == doctest::Approx(head_metrics(dh).entropy).epsilon(1e-4));
    }
}

TEST_CASE("field: rollout of chosen query rows equals the rows of the dense rollout, with and without the residual") {
  Session s;
  for (int i = 0; i < 300; ++i) s.text += "w" + std::to_string((i * 7919) % 97) + " ";
  s.model = {32, 4, 8};
  s.model.n_layers = 3;
  s.model.block = BlockKind::pre_ln;
  s.positional.kind = PositionalKind::alibi;
  for (const bool residual : {true, false})
    for (const char* mask : {"none", "causal", "bigbird"}) {
      CAPTURE(residual);
      CAPTURE(mask);
      REQUIRE(option_set(s, "attention.mask.kind", std::string("\"") + mask + "\"").empty());
      s.analysis.rollout_residual = residual;
      Engine e;
      Outcome o = e.compute(s);
      REQUIRE(o.result);
      const Result& d = *o.result;
      REQUIRE(d.rollout.size() == 3);
      // the same layers as fields
      Validation v = validate(s, ComputePath::field);
      std::vector<FieldLayer> fields;
      std::vector<std::string> problems;
      REQUIRE(e.run_fields(s, v, 2, true, {}, fields, problems, nullptr, nullptr));
      const std::vector<int> rows = {0, 1, 150, 299};
      const std::vector<Matrix> whole = field_rollout(fields, residual);  // the n x n path
      REQUIRE(whole.size() == 3);
      for (int l = 0; l < 3; ++l) {
        REQUIRE(whole[l].rows() == d.rollout[l].rows());
        CHECK((whole[l] - d.rollout[l]).cwiseAbs().maxCoeff() <= 1e-5);
        const Matrix got = field_rollout_rows(fields, l, rows, residual);
        REQUIRE(got.rows() == 4);
        for (int k = 0; k < 4; ++k) {
          CHECK((got.row(k) - d.rollout[l].row(rows[k])).cwiseAbs().maxCoeff() <= 1e-5);
          if (got.row(k).sum() > 0) CHECK(got.row(k).sum() == doctest::Approx(1.0).epsilon(1e-4));
        }
      }
    }
}

TEST_CASE("field: a field of 2049..4096 tokens carries the whole rollout, equal to the dense path's; cancel and budget") {
  Session s = long_session(32);  // 2100 tokens, 2 layers
  s.attention.mask.kind = MaskKind::causal;
  Engine e;
  ComputeOptions with;
  with.field_rollout = true;
  std::atomic<float> progress{0};
  with.progress = &progress;
  Outcome o = e.compute(s, nullptr, with);
  REQUIRE(o.result);
  const Result& f = *o.result;
  REQUIRE(f.is_field());
  CHECK(field_rollout_refusal(f).empty());
  REQUIRE(f.rollout.size() == 2);
  CHECK(progress.load() == 1.0f);
  ComputeOptions dense;
  dense.dense = true;
  Outcome od = e.compute(s, nullptr, dense);
  REQUIRE(od.result);
  REQUIRE(od.result->rollout.size() == 2);
  for (int l = 0; l < 2; ++l) {
    CAPTURE(l);
    CHECK((f.rollout[l] - od.result->rollout[l]).cwiseAbs().maxCoeff() <= 1e-5);
    for (const int i : {0, 1, 2099}) CHECK(f.rollout[l].row(i).sum() == doctest::Approx(1.0).epsilon(1e-4));
    CHECK(f.rollout[l](5, 6) == 0.0f);  // causal through every layer: no weight on a later token
  }
  // without the option: rows only
  Outcome plain = e.compute(s);
  REQUIRE(plain.result);
  CHECK(plain.result->rollout.empty());
  // a cancel during the rollout (the last fifth of the bar) stops the computation
  std::atomic<bool> cancel{false};
  CHECK(field_rollout(f.fields, true, &cancel).size() == 2);
  cancel = true;
  CHECK(field_rollout(f.fields, true, &cancel).empty());
  // a budget that holds the field but not every layer's n x n: no rollout, and the reason
  set_memory_budget_bytes(f.bytes() - 4.0 * 2100 * 2100 * 2 + 30e6);  // the field fits; 4 n x n (71 MB) do not
  Outcome tight = e.compute(s, nullptr, with);
  REQUIRE(tight.result);
  CHECK(tight.result->rollout.empty());
  CHECK(field_rollout_refusal(*tight.result).find("memory budget") != std::string::npos);
  set_memory_budget_bytes(0);
}

TEST_CASE("field: soft-capped logits (Gemma 2) give the weights and output of a softmax over c tanh(l / c), by hand") {
  const int n = 300, d = 8;
  const float alpha = 0.7f, cap = 1.5f;
  Session::Attention::Mask m;
  m.kind = MaskKind::causal_sliding_window;
  m.window = 40;
  MaskRule rule(m, n, n, nullptr, 0);
  HeadField f;
  f.q = Matrix::Random(n, d) * 2.0f;
  f.k = Matrix::Random(n, d) * 2.0f;
  f.v = Matrix::Random(n, d);
  const Matrix q = f.q, k = f.k, v = f.v;
  FieldHeadSpec spec;
  spec.alpha = alpha;
  spec.softcap = cap;
  spec.rule = &rule;
  FieldOptions opt;
  opt.rows_per_block = 32;  // several blocks
  REQUIRE(build_head_field(f, spec, opt, nullptr));
  const Matrix w = field_tile(f, spec, 0, n, 0, n, false), l = field_tile(f, spec, 0, n, 0, n, true);
  double worst_w = 0, worst_l = 0, worst_o = 0, max_logit = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<double> s(n, -INFINITY);
    double mx = -INFINITY, sum = 0;
    for (int j = std::max(0, i - 40); j <= i; ++j) {  // the window: 40 back and the query itself
      s[j] = cap * std::tanh(alpha * double(q.row(i).cast<double>().dot(k.row(j).cast<double>())) / cap);
      mx = std::max(mx, s[j]);
    }
    for (int j = 0; j < n; ++j) sum += std::isinf(s[j]) ? 0.0 : std::exp(s[j] - mx);
    Eigen::RowVectorXd out = Eigen::RowVectorXd::Zero(d);
    for (int j = 0; j < n; ++j) {
      const double p = std::isinf(s[j]) ? 0.0 : std::exp(s[j] - mx) / sum;
      worst_w = std::max(worst_w, std::abs(p - w(i, j)));
      if (!std::isinf(s[j])) worst_l = std::max(worst_l, std::abs(s[j] - l(i, j))), max_logit = std::max(max_logit, std::abs(s[j]));
      else CHECK(w(i, j) == 0.0f);
      out += p * v.row(j).cast<double>();
    }
    worst_o = std::max(worst_o, (out - f.output.row(i).cast<double>()).cwiseAbs().maxCoeff());
  }
  CHECK(max_logit <= cap);  // capped
  CHECK(worst_l <= 1e-5);
  CHECK(worst_w <= 1e-6);
  CHECK(worst_o <= 1e-5);
}

namespace {
// Jensen-Shannon divergence (nats) of two weight rows, in double, each row read as a distribution
double js_row(const Matrix& a, const Matrix& b, int i) {
  double sa = 0, sb = 0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) sa += std::max(0.0f, a(i, j)), sb += std::max(0.0f, b(i, j));
  if (sa <= 0 || sb <= 0) return -1;
  auto xlx = [](double x) { return x > 0 ? x * std::log(x) : 0.0; };
  double js = 0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    const double p = std::max(0.0f, a(i, j)) / sa, q = std::max(0.0f, b(i, j)) / sb;
    js += 0.5 * (xlx(p) + xlx(q)) - xlx(0.5 * (p + q));
  }
  return std::max(0.0, js);
}
}  // namespace

TEST_CASE("field: head similarity from exact tiles equals the dense matrix, and a sample reads the rows it says") {
  for (const char* mask : {"none", "causal", "sliding_window", "streaming_llm", "bigbird", "custom"})
  for (const char* pos : {"alibi", "rope"}) {
    const Both b = compute_both(session_with(mask, pos));
    INFO("mask " << std::string(mask) << ", positional " << std::string(pos));
    long rows = 0;
    const Matrix f = field_head_similarity(b.field, 1ll << 40, &rows);
    const Matrix d = head_similarity(b.dense->layers[0].heads);
    CHECK(rows == static_cast<long>(b.dense->tokens.size()));
    REQUIRE(f.rows() == d.rows());
    CHECK((f - d).cwiseAbs().maxCoeff() <= 1e-5f);
  }
  // 150 tokens are 5 blocks of 32 rows (full attention: 150 columns each); a budget of two
  // blocks' cells reads the first and the last
  Session s = session_with("none", "rope");
  std::string text;
  for (int i = 0; i < 150; ++i) text += "w" + std::to_string(i % 37) + " ";
  s.text = text;
  const Both b = compute_both(s);
  const int n = static_cast<int>(b.dense->tokens.size());
  REQUIRE(n == 150);
  long rows = 0;
  const Matrix f = field_head_similarity(b.field, 2ll * 32 * n, &rows);
  CHECK(rows == 32 + (n - 128));
  const auto& heads = b.dense->layers[0].heads;
  for (std::size_t x = 0; x < heads.size(); ++x)
    for (std::size_t y = x + 1; y < heads.size(); ++y) {
      double total = 0;
      int count = 0;
      for (int i = 0; i < n; ++i) {
        if (i >= 32 && i < 128) continue;  // the blocks left out
        const double js = js_row(heads[x].weights, heads[y].weights, i);
        if (js >= 0) total += js, ++count;
      }
      CHECK(f(x, y) == doctest::Approx(total / count).epsilon(1e-4));
      CHECK(f(y, x) == f(x, y));
    }
  // cancelled: empty
  CancelFlag stop{true};
  CHECK(field_head_similarity(b.field, 1ll << 40, nullptr, &stop).size() == 0);
}

TEST_CASE("field: above the memory budget q and k are kept as F16 - half the bytes, every tile exact for the stored values") {
  Session s = long_session(128);
  s.attention.mask.kind = MaskKind::causal;
  Engine e;
  const Outcome full = e.compute(s);
  REQUIRE(full.result);
  REQUIRE(full.result->is_field());
  CHECK_FALSE(full.result->fields[0].heads[0].half);
  // lower the budget until the field turns F16, then until even that is refused
  std::shared_ptr<const Result> half;
  std::string refused;
  // bisection between a budget F32 fits in and one nothing fits in
  double fits = 4 * full.result->bytes() + 64e6, too_small = 1e5;
  for (int it = 0; it < 60 && !half; ++it) {
    const double budget = std::sqrt(fits * too_small);
    set_memory_budget_bytes(budget);
    const Outcome o = Engine().compute(s);
    if (!o.result) refused = o.problems.empty() ? "cancelled" : o.problems[0], too_small = budget;
    else if (o.result->fields[0].heads[0].half) half = o.result;
    else fits = budget;
  }
  set_memory_budget_bytes(1e5);  // not even the F16 field fits: refused, with the reason
  {
    const Outcome o = Engine().compute(s);
    CHECK_FALSE(o.result);
    refused = o.problems.empty() ? "" : o.problems[0];
  }
  set_memory_budget_bytes(0);  // the default again
  INFO("refused: " << refused);
  REQUIRE(half);
  CHECK(refused.find("with q and k as F16") != std::string::npos);
  const Result& f = *half;
  const Result& g = *full.result;
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      CAPTURE(l);
      CAPTURE(h);
      const HeadField& a = f.fields[l].heads[h];
      const HeadField& b = g.fields[l].heads[h];
      REQUIRE(a.half);
      CHECK(a.q.size() == 0);
      CHECK(field_qk_bytes(a) == doctest::Approx(field_qk_bytes(b) / 2));
      // the stored q and k are F32's rounded to the nearest half
      const Matrix q = field_q_rows(a, 0, field_n_q(a)), k = field_k_rows(a, 0, field_n_k(a));
      REQUIRE(q.rows() == b.q.rows());
      CHECK((q - b.q).cwiseAbs().maxCoeff() <= 1e-3f * (1 + b.q.cwiseAbs().maxCoeff()));
      // tiles against softmax over the decoded q and k, in double (causal, no bias): exact
      const FieldHeadSpec& sp = f.fields[l].specs[h];
      for (const int r0 : {0, 1000, 2036}) {
        const Matrix t = field_tile(a, sp, r0, r0 + 64, 0, r0 + 64, false);
        for (int i = 0; i < 64; ++i) {
          const int row = r0 + i;
          const Eigen::VectorXd lg = (k.topRows(row + 1).cast<double>() * q.row(row).transpose().cast<double>()) * double(sp.alpha);
          const Eigen::VectorXd w = (lg.array() - lg.maxCoeff()).exp() / (lg.array() - lg.maxCoeff()).exp().sum();
          CHECK((t.row(i).head(row + 1).transpose().cast<double>() - w).cwiseAbs().maxCoeff() <= 1e-6);
          if (row + 1 < t.cols()) CHECK(t.row(i).tail(t.cols() - row - 1).cwiseAbs().maxCoeff() == 0.0f);  // masked: exactly 0
        }
        // against the F32 field: the rounding of q and k only
        const Matrix u = field_tile(b, g.fields[l].specs[h], r0, r0 + 64, 0, r0 + 64, false);
        CHECK((t - u).cwiseAbs().maxCoeff() <= 5e-3);
      }
    }
}
