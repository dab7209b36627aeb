#include "worker.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnlab::app {

HeadImage make_head_image(const HeadResult& h, int max_side) {
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

namespace {
std::shared_ptr<const Snapshot> make_snapshot(std::uint64_t generation, Outcome&& o) {
  auto s = std::make_shared<Snapshot>();
  s->generation = generation;
  s->problems = std::move(o.problems);
  s->result = std::move(o.result);
  if (!s->result) return s;
  const auto& heads = s->result->layers.at(0).heads;
  s->images.resize(heads.size());
  float wmax = 0, lmin = std::numeric_limits<float>::infinity(), lmax = -lmin;
  for (std::size_t h = 0; h < heads.size(); ++h) {
    s->images[h] = make_head_image(heads[h], kMaxTextureSide);
    wmax = std::max(wmax, heads[h].weights.maxCoeff());
    for (Eigen::Index i = 0; i < heads[h].logits.size(); ++i) {
      const float v = heads[h].logits.data()[i];
      if (std::isfinite(v)) lmin = std::min(lmin, v), lmax = std::max(lmax, v);
    }
  }
  s->weight_max = wmax > 0 ? wmax : 1;
  s->logit_min = std::isfinite(lmin) ? lmin : 0;
  s->logit_max = std::isfinite(lmax) && lmax > s->logit_min ? lmax : s->logit_min + 1;
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

void Worker::run() {
  for (;;) {
    Session s;
    std::uint64_t g;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return quit_ || pending_.has_value(); });
      if (quit_) return;
      s = std::move(*pending_);
      pending_.reset();
      g = pending_generation_;
      cancel_ = false;
    }
    Outcome o;
    try {
      o = engine_.compute(s, &cancel_);
    } catch (const std::bad_alloc&) {
      o.problems = {"out of memory computing this session: use fewer tokens or heads"};
    } catch (const std::exception& e) {
      o.problems = {std::string("internal error: ") + e.what()};
    }
    if (o.cancelled) continue;  // a newer request is pending
    auto snap = make_snapshot(g, std::move(o));
    std::lock_guard lock(mu_);
    latest_ = std::move(snap);
    if (!pending_) busy_ = false;
  }
}

}  // namespace attnlab::app
