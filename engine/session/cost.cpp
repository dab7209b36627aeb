#include "session/cost.hpp"

#include <atomic>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace attnlab {

namespace {

// Rates for the estimate, measured on this machine class (2 cores, AMD EPYC Zen 3/4):
// OpenBLAS SGEMM reaches 86-195 GFLOP/s, the element-wise passes (exp, masks, copies) far less,
// so the mix is taken at 30 GFLOP/s; a seeded normal draw costs ~31 ns on one core.
constexpr double kFlopsPerSecond = 30e9;
constexpr double kSecondsPerDraw = 31e-9;

// Texture size of a head's image in the window (app/worker.hpp kMaxTextureSide).
constexpr double kTextureSide = 1024;

double pooled_cells(double n_q, double n_k) {
  const double f = std::max(1.0, std::ceil(std::max(n_q, n_k) / kTextureSide));
  return std::ceil(n_q / f) * std::ceil(n_k / f);
}

}  // namespace

double Cost::seconds() const { return flops / kFlopsPerSecond + draws * kSecondsPerDraw; }

Cost estimate_cost(const Session& s, int n_q_in, int n_k_in, bool metrics) {
  Cost c;
  if (!s.n_heads_ok() || s.model.n_layers < 1) return c;
  const double n = n_q_in, nk = n_k_in, cells = n * nk;
  const double d = s.model.d_model, H = s.model.n_heads, dh = s.d_head(), L = s.model.n_layers;
  const double kv = s.model.kv_heads() * dh;
  const bool pre_ln = s.model.block == BlockKind::pre_ln;
  const double ffn = pre_ln ? s.model.ffn_mult * d : 0;
  const auto& kern = s.attention.kernel;
  const bool approx = kernel_is_approximation(kern.kind);

  // weights: W_Q, W_O (d, d), W_K, W_V (d, kv), their fused copy [W_Q | W_K | W_V], and the FFN
  const double params = 2 * d * d + 2 * d * kv + 2 * d * ffn;
  c.draws = L * params + (n + nk) * d;
  if (s.positional.kind == PositionalKind::learned) c.draws += std::max(n, 256.0) * d;
  const double weight_bytes = c.weight_bytes = 4 * L * (params + d * d + 2 * d * kv);

  // per head of a layer: scores, normalizer, weighted sum (every cell: the mask plan bounds a
  // block's key span, not its count)
  double head = 2 * cells * dh + 12 * cells + 2 * cells * dh;
  switch (s.attention.score.kind) {
    case ScoreKind::additive: head += 14 * cells * dh + 4 * (n + nk) * dh * dh; break;
    case ScoreKind::general: head += 2 * n * dh * dh; break;
    case ScoreKind::cosine: head += 4 * (n + nk) * dh; break;
    default: break;
  }
  if (s.attention.normalizer.kind == NormalizerKind::sparsemax) head += 4 * cells * std::log2(std::max(2.0, nk));
  if (s.attention.mask.kind == MaskKind::lsh)
    head += s.attention.mask.n_rounds * (n * dh * s.attention.mask.n_buckets + 2 * cells);
  double kernel_temp = 0;  // bytes a kernel holds per head while it runs
  switch (kern.kind) {
    case KernelKind::exact: break;
    case KernelKind::flash: head += 2 * (2 * cells * dh + 30 * cells); break;  // scores twice, scalar loops
    case KernelKind::linear: head += 4 * cells * dh + 8 * (n + nk) * dh * dh; break;
    case KernelKind::performer: {
      const double m = kern.features;
      head += (kern.orthogonal ? 2 * std::ceil(m / dh) * dh * dh * dh : 0) + 2 * (n + nk) * m * dh + 2 * cells * m +
              4 * (n + nk) * m * dh + 20 * (n + nk) * m;
      c.draws += H * L * m * dh * (kern.orthogonal ? 2 : 1);
      kernel_temp = 4 * (n + nk) * m * 2;
      break;
    }
    case KernelKind::linformer: {
      const double k = kern.projected_length;
      head += 4 * k * nk * dh + 4 * n * k * dh + 2 * n * k * nk + 12 * n * k;
      c.draws += L * 2 * k * nk;
      kernel_temp = 4 * (2 * k * nk + n * k);
      break;
    }
    case KernelKind::nystrom: {
      const double m = std::min({double(kern.landmarks), n, nk});
      // divide-and-conquer SVD of the (m, m) landmark kernel in double: ~30 m^3 (measured: 2.6 s
      // for 4 heads at m = 1024)
      head += 2 * n * m * dh + 2 * m * m * dh + 2 * m * nk * dh + 30 * m * m * m + 2 * n * m * m + 2 * n * m * nk;
      kernel_temp = 8 * 4 * m * m + 4 * (n * m + m * nk);
      break;
    }
  }
  if (approx || kern.kind == KernelKind::flash) head += 3 * cells;  // compared with exact attention
  double layer = H * head + 2 * n * d * (d + 2 * kv) + 2 * n * d * d;
  if (pre_ln) layer += 4 * n * d * ffn + 25 * n * ffn;
  c.flops = L * layer;
  // analyses: head means, rollout (self-attention: (L - 1) dense n^3 products), metrics
  const bool self = !s.context.enabled;
  c.flops += L * H * cells;
  if (self) c.flops += (L - 1) * 2 * n * n * n + L * 3 * n * n;
  if (metrics) c.flops += L * (25 * H * cells + 60 * H * (H - 1) / 2 * cells);

  // memory the Result holds: per head logits and weights (float), q, k, v and output; the mask
  // (one byte a cell, shared by the heads, or one per head for LSH); per layer four (n, d)
  // matrices; rollout (n, n) per layer
  const double masks = s.attention.mask.kind == MaskKind::lsh ? H : 1;
  const double per_layer = H * 8 * cells + masks * cells + H * 4 * (2 * n + 2 * nk) * dh + 4 * 4 * n * d;
  c.result_bytes = L * per_layer + (self ? L * 4 * n * n : 0);
  // alive while computing: the fused QKV, the concatenated heads, and per core a head's exact
  // copies when an approximation is compared with it; then the head means for the analyses
  const double in_layer = 4 * n * (d + 2 * kv) + 4 * n * d + (approx ? 2 * (3 * 4 * cells + kernel_temp) : 0) +
                          (pre_ln ? 4 * n * ffn * 2 : 0);
  const double analyses = L * 4 * cells + (self ? 2 * 4 * n * n : 0);
  c.peak_bytes = weight_bytes + c.result_bytes + std::max(in_layer, analyses);
  return c;
}

double bytes_for(const Session& s, const Cost& c, int n_q_in, int n_k_in, CostUse use) {
  const double n = n_q_in, nk = n_k_in, cells = n * nk;
  const double H = std::max(1, s.model.n_heads), L = std::max(1, s.model.n_layers);
  switch (use) {
    case CostUse::compute: return c.peak_bytes;
    // one head's pipeline (at most three (n, n_k) steps alive at once) and the file as text
    // (CSV/TSV/JSON: up to 17 bytes a cell; .npy 4)
    case CostUse::export_matrix: return c.peak_bytes + 3 * 4 * cells + 17 * cells;
    // the model view's panels: every head of every layer copied with its mask, then drawn
    case CostUse::render: return c.peak_bytes + L * H * 5 * cells + 200e6;
    // per head two pooled (value, shown) images and their two GL texture sets; the mask views
    // (the gallery: 13 patterns of n^2 bytes and their images); the positional view's (n, n)
    case CostUse::window: {
      const double px = pooled_cells(n, nk);
      return c.peak_bytes + L * H * 48 * px + 13 * (cells + 24 * px) + 4 * cells * 3 + 150e6;
    }
  }
  return c.peak_bytes;
}

namespace {
std::atomic<double> g_budget_override{0};
}

double default_memory_budget_bytes() {
  const double six_gib = 6.0 * (1ull << 30);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return six_gib;
  return std::min(six_gib, 0.6 * double(pages) * double(page));
}

double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0;
}

double memory_budget_bytes() {
  const double o = g_budget_override.load();
  return o > 0 ? o : default_memory_budget_bytes();
}

void set_memory_budget_bytes(double bytes) { g_budget_override = bytes > 0 ? bytes : 0; }

std::string human_bytes(double b) {
  char buf[48];
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.0f MB", b / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0f KB", b / 1e3);
  return buf;
}

std::string budget_problem(const Session& s, int n_q, int n_k, CostUse use, bool metrics) {
  const Cost c = estimate_cost(s, n_q, n_k, metrics);
  char buf[400];
  const double bytes = bytes_for(s, c, n_q, n_k, use), budget = memory_budget_bytes();
  const char* where = use == CostUse::compute ? "" : use == CostUse::export_matrix ? " to export" : use == CostUse::render ? " to render" : " in the window";
  if (bytes > budget) {
    const bool weights = c.weight_bytes > bytes / 2;
    std::snprintf(buf, sizeof buf,
                  "%d tokens x %d heads x %d layers need about %s%s (%s of it %s); the limit is %s of memory (use %s)",
                  n_q, s.model.n_heads, s.model.n_layers, human_bytes(bytes).c_str(), where,
                  human_bytes(weights ? c.weight_bytes : bytes - c.weight_bytes).c_str(),
                  weights ? "the layers' weights" : "attention matrices and the Result", human_bytes(budget).c_str(),
                  weights ? "fewer layers or a smaller d_model" : "fewer heads, layers or tokens");
    return buf;
  }
  if (c.seconds() > kMaxComputeSeconds) {
    std::snprintf(buf, sizeof buf,
                  "this session needs about %.3g TFLOP and %.3g G random draws, about %.0f s on this machine; the limit "
                  "is %.0f s (use fewer tokens, heads, layers, a smaller d_model%s)",
                  c.flops / 1e12, c.draws / 1e9, c.seconds(), kMaxComputeSeconds,
                  s.attention.kernel.kind == KernelKind::performer   ? " or fewer features"
                  : s.attention.kernel.kind == KernelKind::nystrom   ? " or fewer landmarks"
                  : s.attention.kernel.kind == KernelKind::linformer ? " or a shorter projection"
                                                                     : "");
    return buf;
  }
  return "";
}

}  // namespace attnlab
