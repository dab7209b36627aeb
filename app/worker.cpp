#include "worker.hpp"

#include "background.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <numbers>


#include "attention/positional.hpp"
#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {

namespace {

// One row of a head into its output row's column maxima: masked cells (a 0) enter as -inf; the
// allowed finite values' extremes are kept in ext (min and max of the weights, then of the
// logits; lr null: the weights alone). Branch-free; bound by memory bandwidth either way (about
// 10 GB/s on 2 cores here), so what counts is what it reads.
void pool_row(const float* __restrict wr, const float* __restrict lr, const std::uint8_t* __restrict ar,
              float* __restrict rw, float* __restrict rl, int n, std::array<float, 4>& ext) {
  const float inf = std::numeric_limits<float>::infinity();
  float wl = ext[0], wh = ext[1], ll = ext[2], lh = ext[3];
  if (!lr) {  // the weights alone
    for (int j = 0; j < n; ++j) {
      const bool a = ar[j] != 0;
      const float w = wr[j];
      rw[j] = std::max(rw[j], a ? w : -inf);
      const bool wf = a & (std::abs(w) < inf);
      wl = std::min(wl, wf ? w : inf), wh = std::max(wh, wf ? w : -inf);
    }
    ext = {wl, wh, ll, lh};
    return;
  }
  for (int j = 0; j < n; ++j) {
    const bool a = ar[j] != 0;
    const float w = wr[j], l = lr[j];
    rw[j] = std::max(rw[j], a ? w : -inf);
    rl[j] = std::max(rl[j], a ? l : -inf);
    const bool wf = a & (std::abs(w) < inf), lf = a & (std::abs(l) < inf);  // finite, without isfinite's call
    wl = std::min(wl, wf ? w : inf), wh = std::max(wh, wf ? w : -inf);
    ll = std::min(ll, lf ? l : inf), lh = std::max(lh, lf ? l : -inf);
  }
  ext = {wl, wh, ll, lh};
}

}  // namespace

HeadImage make_head_image(const HeadResult& h, int max_side, const DisplayOptions& d) {
  // the display transforms first (log scale for weights, per-row ranges), then pooling; without
  // one the Result's own matrices are read (copying both was a third of the time at 2048 tokens)
  const bool per_row = d.range == RangeMode::per_row;
  Matrix wt, lt;
  if (d.log || per_row) {
    wt = d.log ? Matrix(h.weights.unaryExpr([](float v) { return display_value(v, true); })) : h.weights;
    if (per_row) normalise_rows(wt, h.allowed.get(), !d.log);
  }
  if (per_row && d.logits) {
    lt = h.logits;
    normalise_rows(lt, h.allowed.get(), false);
  }
  const Matrix& weights = wt.size() ? wt : h.weights;
  const Matrix& logits = lt.size() ? lt : h.logits;
  const MaskMatrix& allowed = *h.allowed;
  const int n_q = static_cast<int>(weights.rows()), n_k = static_cast<int>(weights.cols());
  const int f = std::max(1, (std::max(n_q, n_k) + max_side - 1) / max_side);  // pooling factor
  HeadImage img;
  img.width = (n_k + f - 1) / f;
  img.height = (n_q + f - 1) / f;
  img.weights_rg.assign(2 * img.width * img.height, 0.0f);
  if (d.logits) img.logits_rg.assign(2 * img.width * img.height, 0.0f);
  // one pass over the rows, without a branch per cell (the compiler vectorises it): masked cells
  // enter as -inf, so each row raises its output row's column maxima (rw, rl) and the extremes of
  // the allowed finite values (the colour ranges) are kept on the way; then f columns pool into a
  // texel, allowed when any cell is (an allowed weight is finite, a masked one -inf)
  const float inf = std::numeric_limits<float>::infinity();
  std::array<float, 4> ext{inf, -inf, inf, -inf};  // the allowed finite weights' min, max, the logits' min, max
  std::vector<float> rw(n_k), rl(n_k);
  for (int y = 0; y < img.height; ++y) {
    std::fill(rw.begin(), rw.end(), -inf);
    std::fill(rl.begin(), rl.end(), -inf);
    for (int i = y * f; i < std::min(n_q, (y + 1) * f); ++i) {
      const float* wr = weights.data() + std::size_t(i) * n_k;
      const float* lr = logits.data() + std::size_t(i) * n_k;
      const std::uint8_t* ar = allowed.data() + std::size_t(i) * n_k;
      pool_row(wr, d.logits ? lr : nullptr, ar, rw.data(), rl.data(), n_k, ext);
    }
    for (int x = 0; x < img.width; ++x) {
      float wm = -inf, lm = -inf;
      for (int j = x * f; j < std::min(n_k, (x + 1) * f); ++j) wm = std::max(wm, rw[j]), lm = std::max(lm, rl[j]);
      // (rl stays -inf without logits)
      // a pooled cell shows the largest allowed value of its block; allowed if any cell is
      const bool any = wm > -inf;
      const std::size_t o = 2 * (static_cast<std::size_t>(y) * img.width + x);
      img.weights_rg[o] = any ? wm : 0.0f;
      img.weights_rg[o + 1] = any ? 1.0f : 0.0f;
      if (d.logits) img.logits_rg[o] = any ? lm : 0.0f, img.logits_rg[o + 1] = img.weights_rg[o + 1];
    }
  }
  const float w_lo = ext[0], w_hi = ext[1], l_lo = ext[2], l_hi = ext[3];
  // as present/display.hpp value_range: weights from 0 (unless on the log scale), never empty
  auto range = [](float lo, float hi, bool from_zero) {
    if (!std::isfinite(lo)) return ValueRange{0, 1};
    if (from_zero) lo = std::min(lo, 0.0f);
    if (!(hi > lo)) hi = lo + 1;
    return ValueRange{lo, hi};
  };
  img.weight_range = range(w_lo, w_hi, !d.log);
  img.logit_range = range(l_lo, l_hi, false);
  return img;
}

HeadImage make_field_image(const HeadField& f, const DisplayOptions& d) {
  const Matrix& m = d.pool_mean ? f.overview_mean : f.overview_max;
  HeadImage img;
  img.width = static_cast<int>(m.cols());
  img.height = static_cast<int>(m.rows());
  img.weights_rg.assign(2 * std::size_t(img.width) * img.height, 0.0f);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      // a block is shown when any of its cells is attended (its max weight is positive)
      const bool any = f.overview_max(y, x) > 0;
      const std::size_t o = 2 * (std::size_t(y) * img.width + x);
      img.weights_rg[o] = any ? display_value(m(y, x), d.log) : 0.0f;
      img.weights_rg[o + 1] = any ? 1.0f : 0.0f;
    }
  // no logits image: the overview pools weights (logits are exact in the hover and the numbers),
  // and a second copy would double the textures of 30 layers x 9 heads
  return img;
}

ImageData make_image(const Matrix& values, const MaskMatrix* shown, int max_side) {
  const int rows = static_cast<int>(values.rows()), cols = static_cast<int>(values.cols());
  const int f = std::max(1, (std::max(rows, cols) + max_side - 1) / max_side);
  ImageData img;
  img.rows = rows;
  img.cols = cols;
  img.width = (cols + f - 1) / f;
  img.height = (rows + f - 1) / f;
  img.rg.assign(2 * std::size_t(img.width) * img.height, 0.0f);
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      float v = -std::numeric_limits<float>::infinity();
      bool any = false;
      for (int i = y * f; i < std::min(rows, (y + 1) * f); ++i)
        for (int j = x * f; j < std::min(cols, (x + 1) * f); ++j) {
          if (shown && !(*shown)(i, j)) continue;
          if (!std::isfinite(values(i, j))) continue;
          any = true;
          v = std::max(v, values(i, j));
        }
      const std::size_t o = 2 * (std::size_t(y) * img.width + x);
      img.rg[o] = any ? v : 0.0f;
      img.rg[o + 1] = any ? 1.0f : 0.0f;
      if (any) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  img.vmin = std::isfinite(lo) ? lo : 0.0f;
  img.vmax = std::isfinite(hi) && hi > img.vmin ? hi : img.vmin + 1.0f;
  return img;
}

namespace {

// A view's figure panel as a texture's data: pooled to kMaxTextureSide, its colour range.
ImageData panel_image(FigurePanel&& p) {
  ImageData img = make_image(p.values, p.shown.size() ? &p.shown : nullptr, kMaxTextureSide);
  img.id = std::move(p.id);
  img.title = std::move(p.title);
  img.caption = std::move(p.caption);
  img.token_rows = p.token_rows;
  img.token_cols = p.token_cols;
  img.density = p.density;
  img.cells = p.cells;
  img.pooled_r = p.pooled_r, img.pooled_c = p.pooled_c;
  img.diverging = p.diverging;
  if (p.fixed_range) {
    img.vmin = p.lo, img.vmax = p.hi;
  } else if (p.diverging) {
    const float m = std::max(std::abs(img.vmin), std::abs(img.vmax));
    img.vmin = -(m > 0 ? m : 1), img.vmax = m > 0 ? m : 1;
  } else if (p.non_negative) {
    img.vmin = 0;
    if (!(img.vmax > 0)) img.vmax = 1;
  }
  return img;
}

std::shared_ptr<const Snapshot> make_snapshot(std::uint64_t generation, Outcome&& o, const DisplayOptions& display,
                                              std::shared_ptr<const HfModel> model) {
  const auto t0 = std::chrono::steady_clock::now();
  auto s = std::make_shared<Snapshot>();
  s->model = std::move(model);
  s->generation = generation;
  s->display = display;
  s->problems = std::move(o.problems);
  s->result = std::move(o.result);
  if (!s->result) return s;
  const Result& r = *s->result;
  s->n_heads = r.n_heads();
  s->n_layers = r.n_layers();
  s->field = r.is_field();
  if (s->field && !r.fields.empty() && !r.fields[0].heads.empty()) {
    s->mask_cells = r.fields[0].heads[0].cells;
    s->mask_density = double(s->mask_cells) / (double(r.tokens.size()) * double(r.keys().size()));
  } else if (!r.layers.empty() && !r.layers[0].heads.empty() && r.layers[0].heads[0].allowed) {
    s->mask_density = mask_density(*r.layers[0].heads[0].allowed);
    s->mask_cells = static_cast<long long>(mask_cells(*r.layers[0].heads[0].allowed));
  }
  const DisplayOptions& d = s->display;
  if (s->field) {  // the overviews, on one colour range per layer and per head
    for (const FieldLayer& layer : r.fields) {
      ValueRange wl{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
      for (const HeadField& h : layer.heads) {
        HeadImage img = make_field_image(h, d);
        // a long sequence's few large weights (the first rows of a causal head are 1) would leave
        // every other block dark: the colours end at the 99.5th percentile of the blocks shown
        std::vector<float> shown;
        for (std::size_t k = 0; k < img.weights_rg.size(); k += 2)
          if (img.weights_rg[k + 1] > 0) shown.push_back(img.weights_rg[k]);
        ValueRange w{0, 1};
        if (!shown.empty()) {
          const auto top = shown.begin() + static_cast<std::ptrdiff_t>(0.995 * double(shown.size() - 1));
          std::nth_element(shown.begin(), top, shown.end());
          w.hi = *top;
          w.lo = d.log ? *std::min_element(shown.begin(), shown.end()) : 0.0f;
        }
        if (!(w.hi > w.lo)) w = {0, 1};
        s->images.push_back(std::move(img));
        s->head_weight_range.push_back(w);
        s->head_logit_range.push_back(w);
        wl = merge(wl, w);
      }
      s->weight_range.push_back(wl);
      s->logit_range.push_back(wl);
    }
  }
  const bool per_row = d.range == RangeMode::per_row;
  // differential attention's weights are signed: a diverging map, its range symmetric about 0
  s->signed_weights = r.session.attention.differential.enabled && !d.log && !per_row;
  for (const LayerResult& layer : r.layers) {
    // the layer's heads over both cores (12 heads of 2048 tokens: 4M cells each)
    const int H = static_cast<int>(layer.heads.size());
    const std::size_t base = s->images.size();
    s->images.resize(base + H);
    std::vector<ValueRange> ws(H), ls(H);
    std::exception_ptr failure;  // nothing may leave an OpenMP region: rethrown after it
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < H; ++k) {
      try {
        const HeadResult& h = layer.heads[k];
        s->images[base + k] = make_head_image(h, kMaxTextureSide, d);
        ValueRange w = per_row ? ValueRange{0, 1} : s->images[base + k].weight_range;
        if (s->signed_weights) {
          const float m = std::max({std::abs(w.lo), std::abs(w.hi), 1e-6f});
          w = {-m, m};
        }
        ws[k] = w;
        ls[k] = per_row ? ValueRange{0, 1} : s->images[base + k].logit_range;
      } catch (...) {
#pragma omp critical
        failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    ValueRange wl{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}, ll = wl;
    for (int k = 0; k < H; ++k) {
      s->head_weight_range.push_back(ws[k]);
      s->head_logit_range.push_back(ls[k]);
      wl = merge(wl, ws[k]);
      ll = merge(ll, ls[k]);
    }
    s->weight_range.push_back(wl);
    s->logit_range.push_back(ll);
  }
  for (int h = 0; h < s->n_heads; ++h)
    s->bias.push_back(relative_bias(r.session.positional, r.session.model.seed, h, s->n_heads,
                                    static_cast<int>(r.tokens.size()), static_cast<int>(r.keys().size())));
  // what each open view shows, from the Result alone (closed ones cost nothing: at 2048 tokens
  // the gallery's and positional view's pictures took 260 ms of every edit)
  for (const View* v : views())
    if (v->prepare && std::count(d.views_open.begin(), d.views_open.end(), v->id))
      for (FigurePanel& p : v->prepare(r, d)) s->views[v->id].push_back(panel_image(std::move(p)));
  s->prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return s;
}
// A snapshot that only says what went wrong (made without allocating much: it follows a failure).
std::shared_ptr<const Snapshot> problem_snapshot(std::uint64_t generation, const DisplayOptions& display, std::string problem) {
  auto s = std::make_shared<Snapshot>();
  s->generation = generation;
  s->display = display;
  s->problems.push_back(std::move(problem));
  return s;
}
}  // namespace

Worker::Worker() : thread_([this] { run(); }) {}

Worker::~Worker() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
    cancel_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::uint64_t Worker::post(const Session& s, const DisplayOptions& d) {
  {
    std::lock_guard lock(mu_);
    display_ = d;
  }
  return post(s);
}

std::uint64_t Worker::post(const Session& s) {
  std::uint64_t g;
  {
    std::lock_guard lock(mu_);
    pending_ = s;
    g = ++pending_generation_;
    busy_ = true;
    cancel_ = true;  // a computation in progress is stale now
  }
  cv_.notify_one();
  return g;
}

std::uint64_t Worker::posted() const {
  std::lock_guard lock(mu_);
  return pending_generation_;
}

std::shared_ptr<const Snapshot> Worker::latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

double Worker::busy_seconds() const {
  if (!busy_) return 0;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return double(now - started_ns_.load()) * 1e-9;
}

void Worker::cancel() {
  std::lock_guard lock(mu_);
  if (!busy_) return;
  cancelled_ = pending_generation_;
  pending_.reset();
  cancel_ = true;
}

void Worker::run() {
  run_below_the_ui();  // this thread and the OpenMP team it starts
  for (;;) {
    Session s;
    DisplayOptions display;
    std::shared_ptr<const HfModel> model;
    Intervention intervention;
    std::uint64_t g;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return quit_ || pending_.has_value(); });
      if (quit_) return;
      s = std::move(*pending_);
      pending_.reset();
      g = pending_generation_;
      display = display_;
      model = model_;
      intervention = intervention_;
      cancel_ = false;
    }
    started_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
    progress_ = 0;
    std::shared_ptr<const Snapshot> snap;
    // Nothing may escape this thread: an exception becomes the request's problem.
    try {
      const bool metrics = want_metrics_.load(), lens = want_lens_.load();
      Outcome o;
      // only the display changed (colormap, range, log, the pipeline's head): re-prepare the
      // pictures from the Result in hand, never compute again (a model's forward pass included)
      if (computed_ && computed_->session == s && computed_->model == model && computed_->intervention == intervention &&
          (computed_->metrics || !metrics) && (computed_->lens || !lens || !model)) {
        o.result = computed_->result;
      } else {
        ++computations_;
        ComputeOptions options;
        options.metrics = metrics, options.progress = &progress_, options.logit_lens = lens;
        options.next_tokens_last = !lens;  // the others on demand (the logit lens view reads every position's)
        options.sink_tokens = s.analysis.sink_tokens;  // a model's sink mass, as the session's
        options.field_rollout = metrics;  // the Metrics view shows a field's whole rollout up to 4096 tokens
        ComputeOptions session_options;
        session_options.metrics = metrics, session_options.progress = &progress_, session_options.field_rollout = metrics;
        o = model ? model->compute(s.text, &cancel_, options, intervention) : engine_.compute(s, &cancel_, session_options);
        if (o.result) computed_ = Computed{s, model, intervention, metrics, lens && model, o.result};
      }
      if (o.cancelled) {
        std::lock_guard lock(mu_);
        if (!pending_) busy_ = false;
        continue;  // a newer request is pending, or Esc
      }
      snap = make_snapshot(g, std::move(o), display, model);
        } catch (const std::bad_alloc&) {
      snap = problem_snapshot(g, display, "out of memory computing this session: use fewer tokens, heads or layers");
    } catch (const std::exception& e) {
      snap = problem_snapshot(g, display, std::string("could not compute this session: ") + e.what());
    }
    {
      std::lock_guard lock(mu_);
      latest_ = std::move(snap);
      if (!pending_) busy_ = false;
    }
    wake_the_ui();
  }
}

}  // namespace attnlab::app
