// Runs the engine off the UI thread. The UI posts every edit; one worker computes only the
// newest (cancelling a stale computation part way) and publishes an immutable Snapshot by a
// pointer swap. The UI keeps drawing the last good snapshot meanwhile.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pipeline.hpp"

namespace attnlab::app {

// What the heatmaps need, prepared on the worker thread: per head, (value, allowed) pairs for a
// texture of at most kMaxTextureSide per side (larger matrices are max-pooled in blocks).
struct HeadImage {
  int width = 0, height = 0;  // texture size (n_k, n_q) or pooled
  std::vector<float> weights_rg, logits_rg;
};

struct Snapshot {
  std::uint64_t generation = 0;
  std::shared_ptr<const Result> result;  // null when the session was invalid
  std::vector<std::string> problems;
  std::vector<HeadImage> images;  // one per head of layer 0
  float weight_max = 1, logit_min = 0, logit_max = 1;  // global ranges over all heads
};

// Heatmap textures are max-pooled to at most this many cells per side: more than any tile or the
// large view can show, and 4x less to upload than 2048 (3.9 s of upload on llvmpipe for 12
// heads of 4096 tokens at 2048).
inline constexpr int kMaxTextureSide = 1024;

class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  std::uint64_t post(const Session& s);  // returns the request's generation
  std::shared_ptr<const Snapshot> latest() const;  // newest finished, or null before the first
  bool busy() const { return busy_.load(); }       // a request is pending or being computed
  std::uint64_t posted() const;

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Session> pending_;
  std::uint64_t pending_generation_ = 0;
  std::shared_ptr<const Snapshot> latest_;
  std::atomic<bool> cancel_{false}, quit_{false}, busy_{false};
  Engine engine_;
  std::thread thread_;
};

// Exposed for tests: builds the texture data of one head.
HeadImage make_head_image(const HeadResult& h, int max_side);

}  // namespace attnlab::app
