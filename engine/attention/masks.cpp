#include "attention/masks.hpp"
#include "attention/expression.hpp"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>

#include "core/rng.hpp"

namespace attnlab {

namespace {

template <class Allowed>
MaskMatrix fill(int n, Allowed allowed) {
  MaskMatrix m(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) m(i, j) = allowed(i, j) ? 1 : 0;
  return m;
}

// ((a mod m) + m) mod m: the mathematical remainder, for negative a too
int mod(int a, int m) { return ((a % m) + m) % m; }

}  // namespace

std::vector<int> bigbird_random_keys(std::uint64_t seed, int row, int n, int r) {
  const int take = std::min(r, n);
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  const std::uint64_t key = stream_key(seed, "mask.bigbird.row" + std::to_string(row));
  for (int t = 0; t < take; ++t) {
    const int k = t + static_cast<int>(uniform(key, t) * (n - t));
    std::swap(perm[t], perm[std::min(k, n - 1)]);
  }
  perm.resize(take);
  return perm;
}

MaskMatrix build_mask(const MaskSpec& m, int n, const std::vector<Token>& tokens, std::uint64_t seed,
                      const CellExpression* expr, int head) {
  const int w = m.window;
  MaskMatrix out;
  auto is_global = [&](int p) { return std::find(m.globals.begin(), m.globals.end(), p) != m.globals.end(); };
  switch (m.kind) {
    case MaskKind::none: out = fill(n, [](int, int) { return true; }); break;
    case MaskKind::causal: out = fill(n, [](int i, int j) { return j <= i; }); break;
    case MaskKind::padding:
      out = fill(n, [&](int, int j) { return j >= int(tokens.size()) || tokens[j].text != m.pad_token; });
      break;
    // Beltagy et al. 2020 (Longformer), sec. 3.1: sliding window
    case MaskKind::sliding_window: out = fill(n, [&](int i, int j) { return std::abs(i - j) <= w; }); break;
    // Jiang et al. 2023 (Mistral 7B), sec. 2: sliding window over past keys, self included
    case MaskKind::causal_sliding_window: out = fill(n, [&](int i, int j) { return i - j >= 0 && i - j <= w; }); break;
    // Longformer, sec. 3.1: dilated sliding window, w steps of d
    case MaskKind::dilated:
      out = fill(n, [&](int i, int j) { return std::abs(i - j) <= w * m.dilation && mod(i - j, m.dilation) == 0; });
      break;
    // Longformer, sec. 3.1: window plus global positions (symmetric)
    case MaskKind::longformer:
      out = fill(n, [&](int i, int j) { return std::abs(i - j) <= w || is_global(i) || is_global(j); });
      break;
    // Zaheer et al. 2020 (BigBird), sec. 2: window + global + r random keys per non-global query
    case MaskKind::bigbird:
      out = fill(n, [&](int i, int j) { return std::abs(i - j) <= w || is_global(i) || is_global(j); });
      for (int i = 0; i < n; ++i) {
        if (is_global(i)) continue;
        for (int j : bigbird_random_keys(seed, i, n, m.random_keys)) out(i, j) = 1;
      }
      break;
    case MaskKind::block_local: out = fill(n, [&](int i, int j) { return i / m.block == j / m.block; }); break;
    // Child et al. 2019 (Sparse Transformer), sec. 4.2, eq. for A^(1) and A^(2), causal
    case MaskKind::strided: {
      const int l = m.stride;
      out = fill(n, [&](int i, int j) { return j <= i && (i - j < l || (i - j) % l == 0); });
      break;
    }
    case MaskKind::fixed: {
      const int l = m.stride, c = m.summary;
      out = fill(n, [&](int i, int j) { return j <= i && (j / l == i / l || j % l >= l - c); });
      break;
    }
    case MaskKind::lsh: out = fill(n, [](int i, int j) { return i == j; }); break;  // per head: lsh_mask
    // Xiao et al. 2023 (StreamingLLM), sec. 3.2: the first s tokens (attention sinks) stay in the
    // rolling cache beside the last w + 1 tokens; causal by construction
    case MaskKind::streaming_llm: {
      const int s = m.sinks;
      out = fill(n, [&](int i, int j) { return j <= i && (j < s || i - j <= w); });
      break;
    }
    case MaskKind::expression:
      if (expr) {
        out = expression_mask(*expr, n, n, head);
      } else if (auto e = mask_expression_of(m, "", tokens)) {
        out = expression_mask(*e, n, n, head);
      } else {
        out = MaskMatrix::Zero(n, n);
      }
      break;
    case MaskKind::custom:
      out = MaskMatrix::Zero(n, n);
      for (const auto& c : m.cells)
        if (c[0] >= 0 && c[1] >= 0 && c[0] < n && c[1] < n) out(c[0], c[1]) = 1;
      break;
  }
  if (m.causal && mask_combines_with_causal(m.kind))
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) out(i, j) = 0;
  return out;
}

MaskMatrix build_cross_mask(const MaskSpec& m, int n_q, int n_k, const std::vector<Token>& key_tokens) {
  MaskMatrix out = MaskMatrix::Ones(n_q, n_k);
  if (m.kind == MaskKind::padding) {
    for (int j = 0; j < n_k && j < int(key_tokens.size()); ++j)
      if (key_tokens[j].text == m.pad_token) out.col(j).setZero();
  } else if (m.kind == MaskKind::custom) {
    out.setZero();
    for (const auto& c : m.cells)
      if (c[0] >= 0 && c[1] >= 0 && c[0] < n_q && c[1] < n_k) out(c[0], c[1]) = 1;
  }
  return out;
}

std::vector<int> lsh_buckets(const Matrix& q, int n_buckets, std::uint64_t seed, int layer, int head, int round) {
  const int n = static_cast<int>(q.rows()), d = static_cast<int>(q.cols()), half = n_buckets / 2;
  Matrix r(d, half);  // (d_head, n_buckets / 2)
  const std::string label = "mask.lsh.layer" + std::to_string(layer) + ".head" + std::to_string(head) + ".round" +
                            std::to_string(round);
  fill_normal(stream_key(seed, label), 1.0f, {r.data(), static_cast<std::size_t>(r.size())});
  const Matrix proj = q * r;  // (n, n_buckets / 2)
  std::vector<int> bucket(n);
  for (int i = 0; i < n; ++i) {
    int best = 0;
    float best_v = -std::numeric_limits<float>::infinity();
    for (int b = 0; b < n_buckets; ++b) {  // [x R, -x R]; the first maximum wins ties
      const float v = b < half ? proj(i, b) : -proj(i, b - half);
      if (v > best_v) best_v = v, best = b;
    }
    bucket[i] = best;
  }
  return bucket;
}

MaskMatrix lsh_mask(const Matrix& q, const MaskSpec& m, std::uint64_t seed, int layer, int head) {
  const int n = static_cast<int>(q.rows());
  MaskMatrix out = MaskMatrix::Zero(n, n);
  for (int round = 0; round < m.n_rounds; ++round) {
    const auto b = lsh_buckets(q, m.n_buckets, seed, layer, head, round);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (b[i] == b[j]) out(i, j) = 1;
  }
  if (m.causal)
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) out(i, j) = 0;
  return out;
}

std::int64_t mask_cells(const MaskMatrix& m) { return m.cast<std::int64_t>().sum(); }

double mask_density(const MaskMatrix& m) {
  return m.size() ? static_cast<double>(mask_cells(m)) / static_cast<double>(m.size()) : 0.0;
}

}  // namespace attnlab
