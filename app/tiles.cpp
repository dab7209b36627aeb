#include "tiles.hpp"

#include "background.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>


#include "present/field_view.hpp"

namespace attnlab::app {

TileCache::TileCache() : thread_([this] { run(); }) {}

TileCache::~TileCache() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int TileCache::level_for(double cpp, int overview_factor) {
  int level = 0;
  while ((1 << level) < cpp && level < 20) ++level;
  return (1 << level) < overview_factor ? level : -1;
}

std::vector<TileCache::Drawn> TileCache::view(const std::shared_ptr<const Snapshot>& snap, int layer, int head, int level,
                                              int r0, int r1, int c0, int c1) {
  std::vector<Drawn> out;
  if (!snap || !snap->result || !snap->field || level < 0) return out;
  ++clock_;
  // what is ready, coarser levels first so that finer ones are drawn over them
  for (int l = std::min(level + 2, 20); l >= level; --l) {
    const int span = kSide << l;
    for (int ti = r0 / span; ti * span < r1; ++ti)
      for (int tj = c0 / span; tj * span < c1; ++tj) {
        auto it = tex_.find({snap->generation, layer, head, l, ti, tj});
        if (it == tex_.end()) continue;
        it->second.used = clock_;
        out.push_back({it->second.r0, it->second.r1, it->second.c0, it->second.c1, l, it->second.tex.texture()});
      }
  }
  // what is missing at `level`, the centre first
  const int span = kSide << level;
  const double ci = 0.5 * (r0 + r1) / span, cj = 0.5 * (c0 + c1) / span;
  std::vector<Job> jobs;
  for (int ti = r0 / span; ti * span < r1; ++ti)
    for (int tj = c0 / span; tj * span < c1; ++tj) {
      const Key k{snap->generation, layer, head, level, ti, tj};
      if (!tex_.count(k)) jobs.push_back({k, snap});
    }
  std::sort(jobs.begin(), jobs.end(), [&](const Job& a, const Job& b) {
    auto d = [&](const Key& k) { return std::hypot(k.ti + 0.5 - ci, k.tj + 0.5 - cj); };
    return d(a.key) < d(b.key);
  });
  {
    std::lock_guard lock(mu_);
    // a job computed meanwhile (in done_, not yet uploaded) is not asked again
    std::erase_if(jobs, [&](const Job& j) {
      return std::any_of(done_.begin(), done_.end(), [&](const Done& d) { return d.key == j.key; });
    });
    queue_ = std::move(jobs);
  }
  cv_.notify_one();
  return out;
}

bool TileCache::busy() const {
  std::lock_guard lock(mu_);
  return working_ || !queue_.empty() || !done_.empty();
}

void TileCache::upload(const HeatmapRenderer& r, double budget_ms) {
  std::vector<Done> done;
  {
    std::lock_guard lock(mu_);
    done.swap(done_);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t k = 0;
  for (; k < done.size(); ++k) {
    Done& d = done[k];
    Entry& e = tex_[d.key];
    e.r0 = d.r0, e.r1 = d.r1, e.c0 = d.c0, e.c1 = d.c1;
    e.used = clock_;
    e.tex.update(r, d.width, d.height, d.rg, d.vmin, d.vmax, d.colormap);
    if (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() > budget_ms) {
      ++k;
      break;
    }
  }
  if (k < done.size()) {  // the rest next frame
    std::lock_guard lock(mu_);
    done_.insert(done_.end(), std::make_move_iterator(done.begin() + k), std::make_move_iterator(done.end()));
  }
  // the least recently drawn go first when over the bound
  while (tex_.size() > kMaxTiles) {
    auto oldest = std::min_element(tex_.begin(), tex_.end(), [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
    tex_.erase(oldest);
  }
}

void TileCache::run() {
  run_below_the_ui();
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
      if (quit_) return;
      job = std::move(queue_.front());
      queue_.erase(queue_.begin());
      working_ = true;
    }
    const Snapshot& s = *job.snap;
    const Result& r = *s.result;
    const Key& k = job.key;
    Done d;
    d.key = k;
    try {
      const FieldLayer& L = r.fields.at(k.layer);
      const HeadField& f = L.heads.at(k.head);
      const int n_q = field_n_q(f), n_k = field_n_k(f);
      const int span = kSide << k.level, factor = 1 << k.level;
      d.r0 = k.ti * span, d.r1 = std::min(n_q, d.r0 + span);
      d.c0 = k.tj * span, d.c1 = std::min(n_k, d.c0 + span);
      const PooledTile t = pool_field_tile(f, L.specs.at(k.head), d.r0, d.r1, d.c0, d.c1, factor, s.display.pool_mean);
      d.width = t.cols, d.height = t.rows;
      d.rg.resize(2 * t.value.size());
      for (std::size_t c = 0; c < t.value.size(); ++c) {
        d.rg[2 * c] = t.shown[c] ? display_value(t.value[c], s.display.log) : 0.0f;
        d.rg[2 * c + 1] = t.shown[c] ? 1.0f : 0.0f;
      }
      // the colours of the overview it refines
      const std::size_t idx = std::size_t(k.layer) * s.n_heads + k.head;
      const ValueRange range = s.display.range == RangeMode::per_head ? s.head_weight_range[idx] : s.weight_range[k.layer];
      d.vmin = range.lo, d.vmax = range.hi;
      d.colormap = s.display.colormap;
    } catch (const std::exception&) {
      d.width = d.height = 0;  // out of memory: the overview stays
    }
    {
      std::lock_guard lock(mu_);
      working_ = false;
      ++computed_;
      if (d.width > 0) done_.push_back(std::move(d));
    }
    wake_the_ui();
  }
}

}  // namespace attnlab::app
