// The tile pyramid of a long sequence's zoomed head: 256 x 256 textures, level L pooling
// 2^L x 2^L cells per texel exactly from the field (present/field_view.hpp), computed on their own
// thread (the UI never waits for one) and kept, the most recently drawn first, up to a bound.
// While a tile is missing the overview (or a coarser tile) shows through.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "render/heatmap.hpp"
#include "worker.hpp"

namespace attnlab::app {

class TileCache {
 public:
  static constexpr int kSide = 256;      // texels per tile side
  static constexpr std::size_t kMaxTiles = 96;  // ~1 MB each on the GPU and as values
  struct Key {
    std::uint64_t generation = 0;
    int layer = 0, head = 0, level = 0, ti = 0, tj = 0;
    auto operator<=>(const Key&) const = default;
  };
  struct Drawn {  // a ready tile: the cells it covers and its texture
    int r0, r1, c0, c1, level;
    unsigned texture;
  };

  TileCache();
  ~TileCache();
  TileCache(const TileCache&) = delete;
  TileCache& operator=(const TileCache&) = delete;

  // The level whose texels are about one screen pixel (cells per pixel `cpp`), or -1 when the
  // overview (pooling `overview_factor` cells per texel) is already as fine.
  static int level_for(double cpp, int overview_factor);
  // The ready tiles of (layer, head) at `level` and coarser that meet cells [r0, r1) x [c0, c1),
  // coarsest first (draw in order); the missing ones of `level` are queued (nearest the centre
  // first), replacing what was queued for another view.
  std::vector<Drawn> view(const std::shared_ptr<const Snapshot>& snap, int layer, int head, int level, int r0, int r1,
                          int c0, int c1);
  void upload(const HeatmapRenderer& r, double budget_ms);  // finished tiles to textures
  bool busy() const;            // tiles queued or being computed
  int ready_tiles() const { return static_cast<int>(tex_.size()); }
  std::uint64_t computed() const { return computed_; }

 private:
  struct Job {
    Key key;
    std::shared_ptr<const Snapshot> snap;
  };
  struct Done {
    Key key;
    int r0, r1, c0, c1;
    int width, height;
    std::vector<float> rg;
    float vmin, vmax;
    std::string colormap;
  };
  struct Entry {
    int r0, r1, c0, c1;
    Heatmap tex;
    std::uint64_t used = 0;
  };
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Job> queue_;
  std::vector<Done> done_;
  bool quit_ = false, working_ = false;
  std::map<Key, Entry> tex_;  // UI thread only
  std::uint64_t clock_ = 0, computed_ = 0;
  std::thread thread_;
};

}  // namespace attnlab::app
