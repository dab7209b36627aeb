#include "attention/field.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "analysis/metrics.hpp"
#include "attention/masks.hpp"
#include "attention/positional.hpp"
#include "core/gemm.hpp"

namespace attnlab {

namespace {
using Span = std::pair<int, int>;

// Appends [a, b) clipped to [0, n); spans are merged by normalise().
void add_span(std::vector<Span>& out, int a, int b, int n) {
  a = std::max(a, 0), b = std::min(b, n);
  if (a < b) out.push_back({a, b});
}

void normalise(std::vector<Span>& s) {
  std::sort(s.begin(), s.end());
  std::size_t k = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (k && s[i].first <= s[k - 1].second)
      s[k - 1].second = std::max(s[k - 1].second, s[i].second);
    else
      s[k++] = s[i];
  }
  s.resize(k);
}

// [0, n) without the sorted columns `holes`.
void complement(const std::vector<int>& holes, int n, std::vector<Span>& out) {
  int at = 0;
  for (int h : holes) {
    if (h > at) out.push_back({at, h});
    at = h + 1;
  }
  if (at < n) out.push_back({at, n});
}
}  // namespace

MaskRule::MaskRule(const Session::Attention::Mask& spec, int n_q, int n_k, const std::vector<Token>* key_tokens,
                   std::uint64_t seed, std::shared_ptr<const CellExpression> expr, int head,
                   const CancelFlag* cancel, std::atomic<float>* progress, float progress_to)
    : spec_(spec), n_q_(n_q), n_k_(n_k), seed_(seed) {
  if (spec.kind == MaskKind::expression) {
    static const std::vector<Token> no_tokens;
    if (!expr) expr = mask_expression_of(spec, "", key_tokens ? *key_tokens : no_tokens);
    expression_rows_.resize(n_q);
    expression_bits_.resize(n_q);
    if (expr) {
      // evaluated once: blocks the bounds decide, the rest cell by cell; a row keeps its spans
      expression_rows(expr, n_q, n_k, head, [&](int i, const std::vector<Span>& spans) {
        // a fragmented row (k % 2 == 0) is kept as bits: n_k / 8 bytes at most, never 8 per cell
        if (spans.size() <= std::size_t(n_k) / 64 + 4) {
          expression_rows_[i] = spans;
          return;
        }
        auto& bits = expression_bits_[i];
        bits.assign((n_k + 63) / 64, 0);
        for (const auto& [a, b] : spans)
          for (int j = a; j < b; ++j) bits[j >> 6] |= std::uint64_t(1) << (j & 63);
      }, nullptr, cancel, progress, progress_to);
      cancelled_ = cancel_requested(cancel);
    }
  }
  causal_ = spec.causal && mask_combines_with_causal(spec.kind) && n_q == n_k;
  if (spec.kind == MaskKind::padding && key_tokens)
    for (int j = 0; j < n_k && j < int(key_tokens->size()); ++j)
      if ((*key_tokens)[j].text == spec.pad_token) pads_.push_back(j);
  if (spec.kind == MaskKind::custom) {
    custom_rows_.resize(n_q);
    for (const auto& c : spec.cells)
      if (c[0] >= 0 && c[1] >= 0 && c[0] < n_q && c[1] < n_k) custom_rows_[c[0]].push_back(c[1]);
    for (auto& r : custom_rows_) {
      std::sort(r.begin(), r.end());
      r.erase(std::unique(r.begin(), r.end()), r.end());
    }
  }
  if (spec.kind == MaskKind::longformer || spec.kind == MaskKind::bigbird) {
    global_.assign(n_q, 0);
    for (int g : spec.globals)
      if (g >= 0 && g < n_q) global_[g] = 1;
  }
}

void MaskRule::spans(int i, std::vector<Span>& out) const {
  out.clear();
  const int n = n_k_, w = spec_.window;
  switch (spec_.kind) {
    case MaskKind::none:
      add_span(out, 0, n, n);
      break;
    case MaskKind::causal:
      add_span(out, 0, i + 1, n);
      break;
    case MaskKind::padding:
      complement(pads_, n, out);
      break;
    case MaskKind::sliding_window:
      add_span(out, i - w, i + w + 1, n);
      break;
    case MaskKind::causal_sliding_window:
      add_span(out, i - w, i + 1, n);
      break;
    case MaskKind::dilated: {
      const int d = spec_.dilation;
      for (int t = -w; t <= w; ++t) add_span(out, i + t * d, i + t * d + 1, n);
      break;
    }
    case MaskKind::longformer:
    case MaskKind::bigbird: {
      if (global_[i]) {
        add_span(out, 0, n, n);
        break;
      }
      add_span(out, i - w, i + w + 1, n);
      for (int g = 0; g < n_q_; ++g)
        if (global_[g]) add_span(out, g, g + 1, n);
      if (spec_.kind == MaskKind::bigbird)
        for (int j : bigbird_random_keys(seed_, i, n, spec_.random_keys)) add_span(out, j, j + 1, n);
      break;
    }
    case MaskKind::block_local: {
      const int b = spec_.block, start = i / b * b;
      add_span(out, start, start + b, n);
      break;
    }
    case MaskKind::strided: {  // j <= i and (i - j < l or (i - j) mod l = 0)
      const int l = spec_.stride;
      for (int j = i - l; j >= 0; j -= l) add_span(out, j, j + 1, n);
      add_span(out, i - l + 1, i + 1, n);
      break;
    }
    case MaskKind::fixed: {  // j <= i and (same block of l, or j mod l >= l - c)
      const int l = spec_.stride, c = spec_.summary, block = i / l * l;
      for (int b0 = 0; b0 < block; b0 += l) add_span(out, b0 + l - c, b0 + l, n);
      add_span(out, block, i + 1, n);
      break;
    }
    case MaskKind::streaming_llm:  // the first s keys and the last w + 1, never after i
      add_span(out, 0, std::min(spec_.sinks, i + 1), n);
      add_span(out, i - w, i + 1, n);
      break;
    case MaskKind::custom:
      for (int j : custom_rows_[i]) add_span(out, j, j + 1, n);
      break;
    case MaskKind::expression:
      if (expression_bits_[i].empty()) {
        out = expression_rows_[i];
        break;
      }
      for (int j = 0; j < n;) {  // runs of set bits, a word at a time where it is all 0 or all 1
        const std::uint64_t word = expression_bits_[i][j >> 6];
        if ((j & 63) == 0 && word == 0) {
          j += 64;
          continue;
        }
        if (!((word >> (j & 63)) & 1)) {
          ++j;
          continue;
        }
        int e = j + 1;
        while (e < n && ((expression_bits_[i][e >> 6] >> (e & 63)) & 1)) ++e;
        out.push_back({j, e});
        j = e;
      }
      break;
    case MaskKind::lsh:
      break;  // not a rule: its buckets follow each head's queries
  }
  normalise(out);
  if (causal_) {
    while (!out.empty() && out.back().first > i) out.pop_back();
    if (!out.empty()) out.back().second = std::min(out.back().second, i + 1);
  }
}

bool MaskRule::allowed(int i, int j) const {
  thread_local std::vector<Span> s;
  spans(i, s);
  for (const auto& [a, b] : s)
    if (j >= a && j < b) return true;
  return false;
}

long long MaskRule::allowed_cells() const {
  long long total = 0;
  std::vector<Span> s;
  for (int i = 0; i < n_q_; ++i) {
    spans(i, s);
    for (const auto& [a, b] : s) total += b - a;
  }
  return total;
}

MaskOverview mask_overview(const MaskRule& rule, int side) {
  MaskOverview o;
  const int n_q = rule.n_q(), n_k = rule.n_k();
  side = std::max(1, side);
  o.fr = std::max(1, (n_q + side - 1) / side);
  o.fc = std::max(1, (n_k + side - 1) / side);
  const int ov_r = (n_q + o.fr - 1) / o.fr, ov_c = (n_k + o.fc - 1) / o.fc;
  o.density = Matrix::Zero(ov_r, ov_c);
  std::vector<long long> per_row(ov_r, 0);
#pragma omp parallel for schedule(dynamic, 4)
  for (int a = 0; a < ov_r; ++a) {
    std::vector<Span> sp;
    std::vector<double> count(ov_c, 0.0);
    long long cells = 0;
    for (int i = a * o.fr; i < std::min(n_q, (a + 1) * o.fr); ++i) {
      rule.spans(i, sp);
      for (const auto& [x, y] : sp) {
        cells += y - x;
        for (int j = x; j < y;) {
          const int bc = j / o.fc, end = std::min(y, (bc + 1) * o.fc);
          count[bc] += end - j;
          j = end;
        }
      }
    }
    per_row[a] = cells;
    const int rr = std::min(n_q, (a + 1) * o.fr) - a * o.fr;
    for (int b = 0; b < ov_c; ++b) {
      const int cc = std::min(n_k, (b + 1) * o.fc) - b * o.fc;
      o.density(a, b) = static_cast<float>(count[b] / (double(rr) * cc));
    }
  }
  for (long long c : per_row) o.cells += c;
  return o;
}

namespace {

// The union of the rows' spans of one row block, merged over small gaps so that one GEMM covers
// neighbouring keys (a gap shorter than this costs less than a second call).
std::vector<Span> block_columns(const std::vector<Span>* rows, int n_rows) {
  std::vector<Span> all;
  for (int r = 0; r < n_rows; ++r) all.insert(all.end(), rows[r].begin(), rows[r].end());
  normalise(all);
  std::vector<Span> merged;
  for (const auto& s : all) {
    if (!merged.empty() && s.first - merged.back().second < 16)
      merged.back().second = s.second;
    else
      merged.push_back(s);
  }
  return merged;
}

}  // namespace

namespace {
using HalfRows = Eigen::Matrix<Eigen::half, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
Matrix half_rows(const std::vector<Eigen::half>& h, int d, int a, int b) {
  return Eigen::Map<const HalfRows>(h.data() + std::size_t(a) * d, std::max(0, b - a), d).cast<float>();
}
std::vector<Eigen::half> to_half(const Matrix& m) {
  std::vector<Eigen::half> h(std::size_t(m.size()));
  Eigen::Map<HalfRows>(h.data(), m.rows(), m.cols()) = m.cast<Eigen::half>();
  return h;
}
}  // namespace

Matrix field_q_rows(const HeadField& f, int a, int b) {
  return f.half ? half_rows(f.q16, f.d_qk, a, b) : Matrix(f.q.middleRows(a, b - a));
}
Matrix field_k_rows(const HeadField& f, int a, int b) {
  return f.half ? half_rows(f.k16, f.d_qk, a, b) : Matrix(f.k.middleRows(a, b - a));
}

bool build_head_field(HeadField& f, const FieldHeadSpec& spec, const FieldOptions& opt, const CancelFlag* cancel) {
  const MaskRule& rule = *spec.rule;
  f.half = false;
  f.d_qk = static_cast<int>(f.q.cols());
  if (opt.half_qk) {  // the pass runs on the values F16 keeps, so that every later tile is exact for them
    f.q = f.q.cast<Eigen::half>().cast<float>();
    f.k = f.k.cast<Eigen::half>().cast<float>();
  }
  const int n_q = rule.n_q(), n_k = rule.n_k(), d = static_cast<int>(f.q.cols()), dv = static_cast<int>(f.v.cols());
  const float neg_inf = -std::numeric_limits<float>::infinity();
  f.output = Matrix::Zero(n_q, dv);
  f.row_max.assign(n_q, neg_inf);
  f.row_lse.assign(n_q, neg_inf);
  f.row_log_sum.assign(n_q, 0.0f);
  // the learned sink: its logit in the units the pass works in (l / T); a row that attends to
  // nothing puts everything on it, as the dense path does
  const double sink_s = double(spec.sink_logit) * spec.inv_t;
  f.sink_weight.assign(spec.sink ? n_q : 0, 1.0f);
  const int side = std::max(1, opt.overview);
  f.fr = std::max(1, (n_q + side - 1) / side);
  f.fc = std::max(1, (n_k + side - 1) / side);
  const int ov_r = (n_q + f.fr - 1) / f.fr, ov_c = (n_k + f.fc - 1) / f.fc;
  f.overview_max = Matrix::Zero(ov_r, ov_c);
  f.overview_mean = Matrix::Zero(ov_r, ov_c);
  // row blocks hold whole overview rows, so blocks never share an overview cell
  // Rows allowing many keys run in tall blocks: OpenBLAS packs a block's keys (and values) once
  // per call, so 512 query rows share the packing of the 64 rows' (a fifth of the time at 32k)
  const bool tall = n_k >= opt.tall_from && rule.allowed_cells() >= static_cast<long long>(opt.tall_from) * n_q;
  const int rpb = std::max(1, tall ? opt.tall_rows_per_block : opt.rows_per_block);
  const int rows = f.fr >= rpb ? f.fr : std::max(1, rpb / f.fr) * f.fr;
  const int n_blocks = (n_q + rows - 1) / rows;
  const int sub_rows = std::min(rows, rpb);
  const int chunk_cols = std::max(1, opt.cols_per_chunk);
  const bool has_bias = spec.bias && !spec.bias->empty();
  struct RowStats {
    double entropy = -1, entropy_normalized = -1, distance = 0, max_weight = 0, first = 0, allowed = 0, sink = 0;
  };
  std::vector<RowStats> stats(n_q);                                         // entropy -1: the row attends to nothing
  const RowVector index = RowVector::LinSpaced(n_k, 0.0f, float(n_k - 1));  // column j as a float (exact below 2^24)
  std::atomic<long long> cells{0};
  std::atomic<bool> stop{false};
  const bool scale = spec.inv_t != 1.0f;
  constexpr int kChunk = 512;  // exp(x) of a row runs piece by piece with x kept in L1
  // A row's running softmax state over the column chunks seen so far, relative to its running
  // max m: S = sum e, sum_ex = sum e x (x = l - m, for the entropy H = ln S - sum_ex / S),
  // dist = sum e |i - j|, e0 = e at key 0. A larger max m' rescales everything by exp(m - m').
  struct Running {
    float m;
    double sum, sum_ex, dist, e0, sink;  // sink: sum of e over the first opt.sink_tokens keys
    long allowed;
  };
  struct Piece {
    int a, b, at;  // key columns [a, b) at offset `at` of the chunk's score rows
  };
  // a row's end: ln of its softmax sum relative to its max (the sink's term in it), and the scale
  // 1 / (S + e_sink) that turns its e into weights
  auto row_log_sum = [&](const Running& st) {
    const double ls = std::log(st.sum);
    if (!spec.sink) return ls;
    const double a = ls, b = sink_s - double(st.m);  // ln S and ln e_sink, both relative to m
    return std::max(a, b) + std::log1p(std::exp(-std::abs(a - b)));
  };
#pragma omp parallel
  {
    // one workspace per thread, reused block after block (no allocation in the loops)
    std::vector<std::vector<Span>> row_spans(sub_rows);
    std::vector<Running> run(sub_rows);
    std::vector<float, Eigen::aligned_allocator<float>> s_buf;  // 64-byte aligned: Eigen peels no scalar head off a row
    std::vector<Piece> pieces;
    std::vector<Piece> segs;  // a row's spans clipped to the chunk, at their offsets in its score row
    std::vector<Span> bcs;  // the overview columns the block touches, as ranges [b0, b1)
    Matrix rmax, rsum;      // (sub_rows, ov_c), sized at the first chunked block: each row's weights pooled per overview column, in e units
    RowVector acc_max, acc_sum;  // one chunk: an overview row group's weights, accumulated row by row
    float x_buf[kChunk];
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < n_blocks; ++blk) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (cancel_requested(cancel)) {
        stop = true;
        continue;
      }
      // the task's rows in sub-blocks of at most rows_per_block, each inside one overview row
      // group when groups are taller: each sub-block computes only its own columns (a window's
      // sub-block of 64 rows spans 64 + w keys, not the task's 256 + w)
      const int t0 = blk * rows, t1 = std::min(n_q, t0 + rows);
      for (int r0 = t0, r1; r0 < t1; r0 = r1) {
        r1 = std::min(t1, r0 + rpb);
        if (f.fr > rpb) r1 = std::min(r1, (r0 / f.fr + 1) * f.fr);
        const int nr = r1 - r0;
        for (int i = r0; i < r1; ++i) rule.spans(i, row_spans[i - r0]);
        const std::vector<Span> cols = block_columns(row_spans.data(), nr);
        int width = 0;
        for (const auto& [a, b] : cols) width += b - a;
        if (width == 0) continue;
        bcs.clear();
        for (const auto& [a, b] : cols) {
          const int b0 = a / f.fc, b1 = (b - 1) / f.fc + 1;
          if (!bcs.empty() && b0 <= bcs.back().second)
            bcs.back().second = std::max(bcs.back().second, b1);
          else
            bcs.push_back({b0, b1});
        }
        const bool one_chunk = static_cast<long long>(nr) * width <= opt.chunk_above;
        if (!one_chunk && rmax.rows() == 0) rmax.setZero(sub_rows, ov_c), rsum.setZero(sub_rows, ov_c);
        for (int r = 0; r < nr; ++r) {
          run[r] = {neg_inf, 0, 0, 0, 0, 0, 0};
          if (!one_chunk)
            for (const auto& [b0, b1] : bcs)
              rmax.row(r).segment(b0, b1 - b0).setZero(), rsum.row(r).segment(b0, b1 - b0).setZero();
        }
        float* out = &f.output(r0, 0);
        long long block_cells = 0;
        // When the block's columns fit in one chunk, a row's max is final once its chunk is done:
        // its weights are pooled elementwise into the group's accumulators (vectorised, as wide
        // as the block) and across columns once per group. Across several chunks, each row is
        // pooled per overview column as it goes and rescaled with its max.
        if (one_chunk) acc_max.setZero(width), acc_sum.setZero(width);
        auto flush = [&](int a) {  // one chunk: pool the accumulated group into overview row a
          float* ov_max = &f.overview_max(a, 0);
          float* ov_sum = &f.overview_mean(a, 0);
          for (const Piece& p : pieces)
            for (int j = p.a; j < p.b;) {
              const int bc = j / f.fc, end = std::min(p.b, (bc + 1) * f.fc), o = p.at + (j - p.a);
              ov_max[bc] = std::max(ov_max[bc], acc_max.segment(o, end - j).maxCoeff());
              ov_sum[bc] += acc_sum.segment(o, end - j).sum();
              j = end;
            }
          acc_max.setZero();
          acc_sum.setZero();
        };
        // the block's columns in chunks of at most chunk_cols scores per row, so that a chunk's
        // scores stay in cache through every pass over them (at 32k keys a whole row block
        // would be 8 MB); a row's softmax runs online across the chunks
        std::size_t ci = 0;  // interval of cols, and the column inside it, where the next chunk starts
        int cj = cols[0].first;
        while (ci < cols.size()) {
          pieces.clear();
          int cw = 0;
          const int limit = one_chunk ? width : chunk_cols;
          while (ci < cols.size() && cw < limit) {
            const int take = std::min(cols[ci].second - cj, limit - cw);
            pieces.push_back({cj, cj + take, cw});
            cw += take;
            cj += take;
            if (cj == cols[ci].second && ++ci < cols.size()) cj = cols[ci].first;
          }
          const int ca = pieces.front().a, cb = pieces.back().b;
          s_buf.resize(std::size_t(nr) * cw);
          float* s = s_buf.data();
          for (const Piece& p : pieces) gemm_nt(nr, p.b - p.a, d, spec.alpha, &f.q(r0, 0), d, &f.k(p.a, 0), d, s + p.at, cw);
          // per row, segment by segment (a row's span clipped to the chunk lies in one piece;
          // masked cells are never touched): cap, bias and temperature, the max, then
          // e = exp(l - m) in place of the scores and 0 in the gaps between segments
          for (int i = r0; i < r1; ++i) {
            const int r = i - r0;
            float* sp = s + std::size_t(r) * cw;
            Running& st = run[r];
            float mc = neg_inf;
            segs.clear();
            for (const auto& [sa, sb] : row_spans[r]) {
              const int a = std::max(sa, ca), b = std::min(sb, cb);
              if (a >= b) continue;
              const Piece& p = *(std::upper_bound(pieces.begin(), pieces.end(), a,
                                                  [](int v, const Piece& q) { return v < q.a; }) - 1);
              segs.push_back({a, b, p.at + (a - p.a)});
              auto seg = Eigen::Map<RowVector>(sp + segs.back().at, b - a);
              if (spec.softcap > 0) seg = (seg.array() * (1.0f / spec.softcap)).tanh() * spec.softcap;
              if (has_bias)
                seg = (seg + Eigen::Map<const RowVector>(&(*spec.bias)[a - i + n_q - 1], b - a)) * spec.inv_t;
              else if (scale)
                seg *= spec.inv_t;
              mc = std::max(mc, seg.maxCoeff());
            }
            const bool group_end = (i + 1) % f.fr == 0 || i + 1 == r1;
            if (segs.empty() || mc == neg_inf) {  // nothing allowed here: the row adds 0 to e V
              std::fill(sp, sp + cw, 0.0f);
              if (one_chunk && group_end) flush(i / f.fr);
              continue;
            }
            if (mc > st.m) {
              if (st.m != neg_inf) {  // rescale what earlier chunks accumulated to the new max
                const double delta = double(mc) - double(st.m), c = std::exp(-delta);
                const float cf = static_cast<float>(c);
                st.sum_ex = c * (st.sum_ex - delta * st.sum);
                st.sum *= c, st.dist *= c, st.e0 *= c, st.sink *= c;
                Eigen::Map<RowVector>(out + std::size_t(r) * dv, dv) *= cf;
                for (const auto& [b0, b1] : bcs)
                  rmax.row(r).segment(b0, b1 - b0) *= cf, rsum.row(r).segment(b0, b1 - b0) *= cf;
              }
              st.m = mc;
            }
            const float m = st.m;
            int filled = 0;  // sp holds e (or 0) before this offset
            for (const auto& [a0, b0, at] : segs) {
              const int len = b0 - a0;
              std::fill(sp + filled, sp + at, 0.0f);
              for (int o = 0; o < len; o += kChunk) {
                const int cl = std::min(kChunk, len - o), j0 = a0 + o;
                auto e = Eigen::Map<RowVector>(sp + at + o, cl);
                auto x = Eigen::Map<RowVector>(x_buf, cl);
                x.array() = e.array() - m;
                e = x.array().exp().matrix();
                // the piece's sum; across chunks, from its e pooled per overview column (max,
                // sum; scaled by 1 / S at the row's end), one pass for both
                double s_piece = 0;
                if (one_chunk) {
                  s_piece = e.sum();
                } else {
                  for (int j = j0; j < j0 + cl;) {
                    const int bc = j / f.fc, end = std::min(j0 + cl, (bc + 1) * f.fc);
                    const auto piece = e.segment(j - j0, end - j);
                    const float ps = piece.sum();
                    rmax(r, bc) = std::max(rmax(r, bc), piece.maxCoeff());
                    rsum(r, bc) += ps;
                    s_piece += ps;
                    j = end;
                  }
                }
                st.sum += s_piece;
                st.sum_ex += double(e.dot(x));
                // sum_j e_j |i - j|: (i sum e - sum e j) left of i, (sum e j - i sum e) right of
                // it; a piece wholly on one side reuses its sum
                const int split = std::clamp(i + 1 - j0, 0, cl);
                if (split == cl) {
                  st.dist += double(i) * s_piece - double(e.dot(index.segment(j0, cl)));
                } else if (split == 0) {
                  st.dist += double(e.dot(index.segment(j0, cl))) - double(i) * s_piece;
                } else {
                  st.dist += double(i) * e.head(split).sum() - double(e.head(split).dot(index.segment(j0, split)));
                  st.dist += double(e.tail(cl - split).dot(index.segment(j0 + split, cl - split))) -
                             double(i) * e.tail(cl - split).sum();
                }
              }
              if (a0 == 0) st.e0 = sp[at];
              for (int j = a0; j < std::min(b0, opt.sink_tokens); ++j) st.sink += sp[at + (j - a0)];
              filled = at + len;
              st.allowed += len;
              block_cells += len;
            }
            std::fill(sp + filled, sp + cw, 0.0f);
            if (one_chunk) {  // the row's max is final: its weights e / S join the group's accumulators
              const auto w = Eigen::Map<const RowVector>(sp, cw) * static_cast<float>(std::exp(-row_log_sum(st)));
              acc_max = acc_max.cwiseMax(w);
              acc_sum += w;
              if (group_end) flush(i / f.fr);
            }
          }
          // output rows += e V over the chunk's pieces (rows rescaled above when their max grew)
          for (const Piece& p : pieces) gemm_nn(nr, dv, p.b - p.a, s + p.at, cw, &f.v(p.a, 0), dv, out, dv, 1.0f);
        }
        // each row's end: weights are e / S; statistics, the output row and the pooled overview
        for (int i = r0; i < r1; ++i) {
          const int r = i - r0;
          const Running& st = run[r];
          if (st.m == neg_inf) continue;  // no allowed key: a zero row
          const double sum = st.sum, log_sum = row_log_sum(st);
          const float inv = static_cast<float>(std::exp(-log_sum));  // 1 / S, or 1 / (S + e_sink)
          f.row_max[i] = st.m;
          f.row_lse[i] = static_cast<float>(double(st.m) + log_sum);
          f.row_log_sum[i] = static_cast<float>(log_sum);
          if (spec.sink) f.sink_weight[i] = static_cast<float>(std::exp(sink_s - double(st.m) - log_sum));
          const double entropy = std::log(sum) - st.sum_ex / sum;
          stats[i] = {entropy,    st.allowed >= 2 ? entropy / std::log(double(st.allowed)) : -1.0,
                      st.dist / sum, 1.0 / sum, st.e0 / sum, double(st.allowed), st.sink / sum};
          Eigen::Map<RowVector>(out + std::size_t(r) * dv, dv) *= inv;
          if (one_chunk) continue;  // pooled as the row was done
          float* ov_max = &f.overview_max(i / f.fr, 0);
          float* ov_sum = &f.overview_mean(i / f.fr, 0);
          for (const auto& [b0, b1] : bcs)
            for (int bc = b0; bc < b1; ++bc) {
              ov_max[bc] = std::max(ov_max[bc], rmax(r, bc) * inv);
              ov_sum[bc] += rsum(r, bc) * inv;
            }
        }
        cells += block_cells;
      }
    }
  }
  if (stop || cancel_requested(cancel)) return false;
  for (int a = 0; a < ov_r; ++a)
    for (int b = 0; b < ov_c; ++b) {
      const int rr = std::min(n_q, (a + 1) * f.fr) - a * f.fr, cc = std::min(n_k, (b + 1) * f.fc) - b * f.fc;
      f.overview_mean(a, b) /= static_cast<float>(rr) * static_cast<float>(cc);
    }
  f.cells = cells.load();
  FieldMetrics& fm = f.metrics;  // means over the rows that attend, as analysis/metrics.cpp
  int attending = 0, norm_rows = 0;
  double allowed = 0;
  for (const RowStats& r : stats) {
    allowed += r.allowed;
    if (r.entropy < 0) continue;
    ++attending;
    fm.entropy += r.entropy, fm.mean_distance += r.distance, fm.max_weight += r.max_weight, fm.first_token += r.first, fm.sink_mass += r.sink;
    if (r.entropy_normalized >= 0) fm.entropy_normalized += r.entropy_normalized, ++norm_rows;
  }
  if (attending)
    fm.entropy /= attending, fm.mean_distance /= attending, fm.max_weight /= attending, fm.first_token /= attending, fm.sink_mass /= attending;
  if (norm_rows) fm.entropy_normalized /= norm_rows;
  fm.density = n_q > 0 && n_k > 0 ? allowed / (double(n_q) * n_k) : 0;
  if (opt.half_qk) {  // exactly representable: the conversion back is lossless
    f.q16 = to_half(f.q), f.k16 = to_half(f.k);
    f.q = Matrix(), f.k = Matrix();
    f.half = true;
  }
  return true;
}

void soft_cap(Matrix& logits, float c) { logits = ((logits.array() * (1.0f / c)).tanh() * c).matrix(); }

Matrix field_tile(const HeadField& f, const FieldHeadSpec& spec, int r0, int r1, int c0, int c1, bool logits) {
  const int nr = r1 - r0, nc = c1 - c0, d = f.half ? f.d_qk : static_cast<int>(f.q.cols()), n_q = field_n_q(f);
  Matrix s(nr, nc);
  if (nr <= 0 || nc <= 0) return Matrix(std::max(nr, 0), std::max(nc, 0));
  if (f.half) {  // F16 rows decoded for this tile only
    const Matrix q = field_q_rows(f, r0, r1), k = field_k_rows(f, c0, c1);
    gemm_nt(nr, nc, d, spec.alpha, q.data(), d, k.data(), d, s.data(), nc);
  } else {
    gemm_nt(nr, nc, d, spec.alpha, &f.q(r0, 0), d, &f.k(c0, 0), d, s.data(), nc);
  }
  const bool has_bias = spec.bias && !spec.bias->empty();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<Span> rs;
  for (int i = r0; i < r1; ++i) {
    spec.rule->spans(i, rs);
    std::vector<char> keep(nc, 0);
    for (const auto& [a, b] : rs)
      for (int j = std::max(a, c0); j < std::min(b, c1); ++j) keep[j - c0] = 1;
    for (int j = c0; j < c1; ++j) {
      float& x = s(i - r0, j - c0);
      if (!keep[j - c0]) {
        x = logits ? neg_inf : 0.0f;
        continue;
      }
      const float c = spec.softcap > 0 ? std::tanh(x * (1.0f / spec.softcap)) * spec.softcap : x;
      const float l = has_bias ? c + (*spec.bias)[j - i + n_q - 1] : c;
      x = logits ? l : field_weight(f, i, l * spec.inv_t);
    }
  }
  return s;
}

bool field_supports(const AttentionConfig& cfg) {
  return (cfg.score == ScoreKind::scaled_dot || cfg.score == ScoreKind::dot) &&
         cfg.normalizer == NormalizerKind::softmax && cfg.dropout == 0 && MaskRule::supports(cfg.mask.kind) &&
         !cfg.score_mod_set && !cfg.differential && !(cfg.mask.kind == MaskKind::expression && expression_reads_head(cfg.mask.expression)) &&
         (cfg.kernel.kind == KernelKind::exact || cfg.kernel.kind == KernelKind::flash);
}

bool field_layer(const Matrix& x, const LayerWeights& w, const AttentionConfig& cfg, const FieldOptions& opt,
                 FieldLayer& out, const CancelFlag* cancel) {
  LayerResult proj;
  project_heads(x, w, cfg, proj, false);
  const int H = static_cast<int>(proj.heads.size());
  const int n = static_cast<int>(x.rows()), n_k = static_cast<int>(proj.heads[0].k.rows());
  const int dh = static_cast<int>(proj.heads[0].q.cols());
  static const std::vector<Token> no_tokens;
  out.rule = cfg.field_rule && cfg.field_rule->n_q() == n && cfg.field_rule->n_k() == n_k
                 ? cfg.field_rule
                 : std::make_shared<const MaskRule>(cfg.mask, n, n_k, cfg.kv_input ? cfg.key_tokens : cfg.tokens,
                                                    cfg.seed, cfg.mask_expression);
  out.heads.resize(H);
  out.biases.resize(H);
  out.specs.resize(H);
  for (int h = 0; h < H; ++h) {
    out.biases[h] = relative_bias(cfg.positional, cfg.seed, h, H, n, n_k);
    FieldHeadSpec& sp = out.specs[h];
    sp.alpha = score_scale(cfg.score, dh);
    sp.inv_t = static_cast<float>(1.0 / cfg.temperature);
    sp.bias = &out.biases[h];
    sp.rule = out.rule.get();
    sp.sink = cfg.sink, sp.sink_logit = static_cast<float>(cfg.sink_logit);
    HeadField& f = out.heads[h];
    f.kv_head = proj.heads[h].kv_head;
    f.q = std::move(proj.heads[h].q);
    f.k = std::move(proj.heads[h].k);
    f.v = std::move(proj.heads[h].v);
  }
  for (int h = 0; h < H; ++h) {  // each head's blocks run over both cores
    if (!build_head_field(out.heads[h], out.specs[h], opt, cancel)) return false;
    if (cfg.progress)
      cfg.progress->store(cfg.progress_from + (cfg.progress_to - cfg.progress_from) * float(h + 1) / float(H),
                          std::memory_order_relaxed);
  }
  // the output projection chunk by chunk of rows: the heads' outputs side by side, (n, H d_head),
  // are only ever held for one chunk
  constexpr int kChunk = 2048;
  const int dm = static_cast<int>(w.w_o.cols());
  out.output.resize(n, dm);
  Matrix concat(std::min(n, kChunk), H * dh);
  for (int r0 = 0; r0 < n; r0 += kChunk) {
    const int rows = std::min(n, r0 + kChunk) - r0;
#pragma omp parallel for
    for (int h = 0; h < H; ++h) concat.block(0, h * dh, rows, dh) = out.heads[h].output.middleRows(r0, rows);
    gemm_nn(rows, dm, H * dh, concat.data(), H * dh, w.w_o.data(), dm, &out.output(r0, 0), dm);
  }
  return true;
}

}  // namespace attnlab

namespace attnlab {

namespace {
// Rows [r0, r1) of layer `L`'s rollout matrix: mean over heads of the weights, negative values
// none (softmax), the residual term, rows renormalised. Columns [c0, c1) hold every allowed key.
Matrix rollout_block(const FieldLayer& L, int r0, int r1, int& c0, int& c1, bool residual) {
  const MaskRule& rule = *L.rule;
  std::vector<std::pair<int, int>> sp;
  c0 = rule.n_k(), c1 = 0;
  for (int i = r0; i < r1; ++i) {
    rule.spans(i, sp);
    for (const auto& [a, b] : sp) c0 = std::min(c0, a), c1 = std::max(c1, b);
  }
  if (residual) c0 = std::min(c0, r0), c1 = std::max(c1, r1);  // the identity's cells
  if (c0 >= c1) return Matrix::Zero(r1 - r0, 0);
  Matrix m = Matrix::Zero(r1 - r0, c1 - c0);
  for (std::size_t h = 0; h < L.heads.size(); ++h) m += field_tile(L.heads[h], L.specs[h], r0, r1, c0, c1, false);
  m /= static_cast<float>(L.heads.size());
  if (residual) {
    m *= 0.5f;
    for (int i = r0; i < r1; ++i) m(i - r0, i - c0) += 0.5f;
  }
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    if (const float sum = m.row(i).sum(); sum > 0) m.row(i) /= sum;
  return m;
}
}  // namespace

Matrix field_rollout_rows(const std::vector<FieldLayer>& fields, int layer, const std::vector<int>& rows, bool residual,
                          const CancelFlag* cancel, std::atomic<float>* progress) {
  const int n = fields.at(layer).rule->n_k(), k = static_cast<int>(rows.size());
  // V = A_layer[S, :]
  Matrix v = Matrix::Zero(k, n);
  for (int s = 0; s < k; ++s) {
    int c0 = 0, c1 = 0;
    const Matrix r = rollout_block(fields[layer], rows[s], rows[s] + 1, c0, c1, residual);
    if (r.cols()) v.block(s, c0, 1, c1 - c0) = r;
  }
  // V <- V A_l for l = layer - 1 .. 0, A_l streamed 64 rows at a time
  constexpr int kRows = 64;
  long long total = 0;
  std::atomic<long long> done{0};
  for (int l = layer - 1; l >= 0; --l) total += (fields[l].rule->n_q() + kRows - 1) / kRows;
  for (int l = layer - 1; l >= 0; --l) {
    const int n_q = fields[l].rule->n_q();
    const int blocks = (n_q + kRows - 1) / kRows;
    std::atomic<bool> stop{false};
    Matrix next = Matrix::Zero(k, n);
#pragma omp parallel
    {
      Matrix mine = Matrix::Zero(k, n);  // each thread sums its blocks, then the sums are added
#pragma omp for schedule(dynamic, 1) nowait
      for (int b = 0; b < blocks; ++b) {
        if (stop.load() || cancel_requested(cancel)) {
          stop = true;
          continue;
        }
        const int r0 = b * kRows, r1 = std::min(n_q, r0 + kRows);
        int c0 = 0, c1 = 0;
        const Matrix a = rollout_block(fields[l], r0, r1, c0, c1, residual);
        if (a.cols()) mine.middleCols(c0, c1 - c0).noalias() += v.middleCols(r0, r1 - r0) * a;
        const long long d = ++done;
        if (progress && total) progress->store(float(d) / float(total), std::memory_order_relaxed);
      }
#pragma omp critical
      next += mine;
    }
    if (stop) return Matrix();
    v = std::move(next);
  }
  if (progress) progress->store(1.0f);
  return v;
}

std::vector<Matrix> field_rollout(const std::vector<FieldLayer>& fields, bool residual, const CancelFlag* cancel,
                                  std::atomic<float>* progress, float progress_from, float progress_to) {
  std::vector<Matrix> out;
  if (fields.empty()) return out;
  const int n = fields[0].rule->n_q();
  constexpr int kRows = 64, kProductRows = 512;
  // progress in equal parts: each layer's A, and each product (from layer 1 on)
  const float parts = float(2 * fields.size() - 1);
  int part = 0;
  auto step = [&] {
    if (progress) progress->store(progress_from + (progress_to - progress_from) * float(++part) / parts, std::memory_order_relaxed);
  };
  Matrix a(n, n);
  for (std::size_t l = 0; l < fields.size(); ++l) {
    const int blocks = (n + kRows - 1) / kRows;
    std::atomic<bool> stop{false};
    a.setZero();
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < blocks; ++b) {
      if (stop.load(std::memory_order_relaxed) || cancel_requested(cancel)) {
        stop = true;
        continue;
      }
      const int r0 = b * kRows, r1 = std::min(n, r0 + kRows);
      int c0 = 0, c1 = 0;
      const Matrix m = rollout_block(fields[l], r0, r1, c0, c1, residual);
      if (m.cols()) a.block(r0, c0, r1 - r0, c1 - c0) = m;
    }
    if (stop) return {};
    step();
    if (l == 0) {
      out.push_back(a);
      continue;
    }
    const Matrix& prev = out.back();
    Matrix next(n, n);
    for (int r0 = 0; r0 < n; r0 += kProductRows) {  // a cancel point every 512 rows
      if (cancel_requested(cancel)) return {};
      gemm_nn(std::min(kProductRows, n - r0), n, n, &a(r0, 0), n, prev.data(), n, &next(r0, 0), n, 0.0f);
    }
    out.push_back(std::move(next));
    step();
  }
  return out;
}

}  // namespace attnlab
