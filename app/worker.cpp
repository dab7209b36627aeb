#include "worker.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>

#include "attention/positional.hpp"
#include "present/views.hpp"

namespace attnlab::app {

HeadImage make_head_image(const HeadResult& h_in, int max_side, const DisplayOptions& d) {
  // the display transforms first (log scale for weights, per-row ranges), then pooling
  HeadResult h;
  h.allowed = h_in.allowed;
  h.weights = d.log ? Matrix(h_in.weights.unaryExpr([](float v) { return display_value(v, true); })) : h_in.weights;
  h.logits = h_in.logits;
  if (d.range == RangeMode::per_row) {
    normalise_rows(h.weights, h.allowed.get(), !d.log);
    normalise_rows(h.logits, h.allowed.get(), false);
  }
  const int n_q = static_cast<int>(h.weights.rows()), n_k = static_cast<int>(h.weights.cols());
  const int f = std::max(1, (std::max(n_q, n_k) + max_side - 1) / max_side);  // pooling factor
  HeadImage img;
  img.width = (n_k + f - 1) / f;
  img.height = (n_q + f - 1) / f;
  img.weights_rg.assign(2 * img.width * img.height, 0.0f);
  img.logits_rg.assign(2 * img.width * img.height, 0.0f);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      // a pooled cell shows the largest allowed value of its block; allowed if any cell is
      float w = neg_inf, l = neg_inf;
      bool any = false;
      for (int i = y * f; i < std::min(n_q, (y + 1) * f); ++i) {
        for (int j = x * f; j < std::min(n_k, (x + 1) * f); ++j) {
          if (!(*h.allowed)(i, j)) continue;
          any = true;
          w = std::max(w, h.weights(i, j));
          l = std::max(l, h.logits(i, j));
        }
      }
      const std::size_t o = 2 * (static_cast<std::size_t>(y) * img.width + x);
      img.weights_rg[o] = any ? w : 0.0f;
      img.logits_rg[o] = any ? l : 0.0f;
      img.weights_rg[o + 1] = img.logits_rg[o + 1] = any ? 1.0f : 0.0f;
    }
  }
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

ImageData signed_image(const Matrix& m, std::string title, std::string caption) {
  ImageData img = make_image(m, nullptr, kMaxTextureSide);
  const float r = std::max(std::abs(img.vmin), std::abs(img.vmax));
  img.vmin = -r;
  img.vmax = r;
  img.diverging = true;
  img.title = std::move(title);
  img.caption = std::move(caption);
  return img;
}

std::string density_caption(const MaskMatrix& m) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "density %.3f   %lld of %lld scores", mask_density(m),
                static_cast<long long>(mask_cells(m)), static_cast<long long>(m.size()));
  return buf;
}

ImageData mask_image(const MaskMatrix& m, std::string title) {
  const Matrix ones = Matrix::Ones(m.rows(), m.cols());
  ImageData img = make_image(ones, &m, kMaxTextureSide);
  img.vmin = 0;
  img.vmax = 1;
  img.title = std::move(title);
  img.caption = density_caption(m);
  img.token_rows = img.token_cols = true;
  return img;
}

void add_views(Snapshot& s) {
  const Result& r = *s.result;
  const auto& heads = r.layers[0].heads;
  // the mask in force: one image, or one per head when heads differ (LSH)
  bool per_head = false;
  for (std::size_t h = 1; h < heads.size(); ++h) per_head |= heads[h].allowed != heads[0].allowed;
  for (std::size_t h = 0; h < (per_head ? heads.size() : 1); ++h) {
    const MaskMatrix& m = *heads[h].allowed;
    s.masks.push_back(mask_image(m, per_head ? "head " + std::to_string(h) : std::string(name(r.session.attention.mask.kind))));
    s.mask_density.push_back(mask_density(m));
    s.mask_cells.push_back(mask_cells(m));
  }
  // gallery: small multiples of every kind for the current tokens (LSH from head 0's queries)
  // gallery: every pattern is defined for one sequence, so none for cross-attention
  for (auto& e : r.key_tokens.empty() ? mask_gallery(r.session, r.tokens, &heads[0].q) : std::vector<GalleryEntry>{}) {
    std::string title = name(e.kind);
    if (r.session.attention.mask.causal && mask_combines_with_causal(e.kind)) title += " + causal";
    s.gallery.push_back(mask_image(e.allowed, title));
  }
  // per layer: head similarity (JS divergence) and attention rollout
  for (std::size_t l = 0; l < r.metrics.size(); ++l) {  // empty while the Metrics window is closed
    ImageData sim = make_image(r.metrics[l].head_similarity, nullptr, kMaxTextureSide);
    sim.vmin = 0;
    sim.vmax = static_cast<float>(std::log(2.0));  // the largest JS divergence, in nats
    sim.title = "head similarity (Jensen-Shannon divergence, nats), layer " + std::to_string(l);
    sim.caption = "0: the heads attend alike; ln 2: disjoint";
    s.analysis.push_back(std::move(sim));
  }
  for (std::size_t l = 0; l < r.rollout.size(); ++l) {
    ImageData roll = make_image(r.rollout[l], nullptr, kMaxTextureSide);
    roll.vmin = 0;
    roll.title = "attention rollout through layer " + std::to_string(l);
    roll.caption = r.session.analysis.rollout_residual ? "with the residual term (A + I) / 2" : "without the residual term";
    roll.token_rows = roll.token_cols = true;
    s.analysis.push_back(std::move(roll));
  }
  // positional views
  const PositionalView v = r.key_tokens.empty() ? positional_view(r) : PositionalView{};
  if (v.encoding.size()) {
    ImageData e = signed_image(v.encoding, "encoding (positions x dimensions)", r.positions.source);
    e.token_rows = true;
    s.positional.push_back(std::move(e));
  }
  if (v.similarity.size()) {
    ImageData e = signed_image(v.similarity, "position-to-position similarity",
                               r.positions.kind == PositionalKind::rope
                                   ? "mean over pairs of cos((p - q) theta_m): depends on p - q only"
                                   : "cosine of the encoding rows");
    e.token_rows = e.token_cols = true;
    s.positional.push_back(std::move(e));
  }
  if (v.rope_angles.size()) {
    ImageData e = make_image(v.rope_angles, nullptr, kMaxTextureSide);
    e.vmin = 0;
    e.vmax = static_cast<float>(2 * std::numbers::pi);
    e.title = "RoPE angle p theta_m mod 2 pi (positions x dimension pairs)";
    e.caption = "fast pairs on the left, slow on the right";
    e.token_rows = true;
    s.positional.push_back(std::move(e));
  }
  for (std::size_t h = 0; h < v.bias.size(); ++h) {
    char caption[96];
    if (!v.slopes.empty()) std::snprintf(caption, sizeof caption, "-m |i - j|, slope m = %.5g", v.slopes[h]);
    else std::snprintf(caption, sizeof caption, "T5 bucket bias B[bucket(j - i), %zu]", h);
    ImageData e = signed_image(v.bias[h], "bias, head " + std::to_string(h), caption);
    e.token_rows = e.token_cols = true;
    s.positional.push_back(std::move(e));
  }
}

std::shared_ptr<const Snapshot> make_snapshot(std::uint64_t generation, Outcome&& o, const DisplayOptions& display) {
  auto s = std::make_shared<Snapshot>();
  s->generation = generation;
  s->display = display;
  s->problems = std::move(o.problems);
  s->result = std::move(o.result);
  if (!s->result) return s;
  const Result& r = *s->result;
  s->n_heads = static_cast<int>(r.layers.at(0).heads.size());
  const DisplayOptions& d = s->display;
  const bool per_row = d.range == RangeMode::per_row;
  for (const LayerResult& layer : r.layers) {
    ValueRange wl{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}, ll = wl;
    for (const HeadResult& h : layer.heads) {
      s->images.push_back(make_head_image(h, kMaxTextureSide, d));
      const ValueRange w = per_row ? ValueRange{0, 1} : value_range(h.weights, h.allowed.get(), d.log, true);
      const ValueRange l = per_row ? ValueRange{0, 1} : value_range(h.logits, h.allowed.get(), false, false);
      s->head_weight_range.push_back(w);
      s->head_logit_range.push_back(l);
      wl = merge(wl, w);
      ll = merge(ll, l);
    }
    s->weight_range.push_back(wl);
    s->logit_range.push_back(ll);
  }
  for (int h = 0; h < s->n_heads; ++h)
    s->bias.push_back(relative_bias(r.session.positional, r.session.model.seed, h, s->n_heads,
                                    static_cast<int>(r.tokens.size()), static_cast<int>(r.keys().size())));
  if (d.steps_layer >= 0 && d.steps_layer < int(r.layers.size()) && d.steps_head >= 0 && d.steps_head < s->n_heads) {
    for (Step& st : head_steps(r, d.steps_layer, d.steps_head)) {
      // weights: masked cells blank, as in the head grid (they are exactly 0 but not attended)
      const MaskMatrix* shown = st.id == "weights" ? r.layers[d.steps_layer].heads[d.steps_head].allowed.get() : nullptr;
      StepImage si{st.id, st.title, st.formula, make_image(st.values, shown, kMaxTextureSide)};
      if (st.signed_values) {
        const float m = std::max(std::abs(si.image.vmin), std::abs(si.image.vmax));
        si.image.vmin = -m;
        si.image.vmax = m > 0 ? m : 1;
        si.image.diverging = true;
      } else {
        si.image.vmin = 0;
      }
      si.image.token_rows = st.rows != Axis::dims;
      si.image.token_cols = st.cols != Axis::dims;
      si.image.title = st.title;
      si.image.caption = st.formula;
      s->steps.push_back(std::move(si));
    }
  }
  add_views(*s);
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
      const bool metrics = want_metrics_.load();
      Outcome o;
      // only the display changed (colormap, range, log, the pipeline's head): re-prepare the
      // pictures from the Result in hand, never compute again (a model's forward pass included)
      if (computed_ && computed_->session == s && computed_->model == model && computed_->intervention == intervention &&
          (computed_->metrics || !metrics)) {
        o.result = computed_->result;
      } else {
        ++computations_;
        o = model ? model->compute(s.text, &cancel_, {metrics, &progress_}, intervention)
                  : engine_.compute(s, &cancel_, {metrics, &progress_});
        if (o.result) computed_ = Computed{s, model, intervention, metrics, o.result};
      }
      if (o.cancelled) {
        std::lock_guard lock(mu_);
        if (!pending_) busy_ = false;
        continue;  // a newer request is pending, or Esc
      }
      snap = make_snapshot(g, std::move(o), display);
    } catch (const std::bad_alloc&) {
      snap = problem_snapshot(g, display, "out of memory computing this session: use fewer tokens, heads or layers");
    } catch (const std::exception& e) {
      snap = problem_snapshot(g, display, std::string("could not compute this session: ") + e.what());
    }
    std::lock_guard lock(mu_);
    latest_ = std::move(snap);
    if (!pending_) busy_ = false;
  }
}

}  // namespace attnlab::app
