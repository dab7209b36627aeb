// Runs the engine off the UI thread. The UI posts every edit; one worker computes only the
// newest (cancelling a stale computation part way) and publishes an immutable Snapshot by a
// pointer swap. The UI keeps drawing the last good snapshot meanwhile.
#pragma once

#include <atomic>
#include <map>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <string>
#include <vector>

#include "present/display.hpp"
#include "models/hf_model.hpp"
#include "pipeline.hpp"
#include "analysis/steps.hpp"

namespace attnlab::app {

// What the heatmaps need, prepared on the worker thread: per head, (value, allowed) pairs for a
// texture of at most kMaxTextureSide per side (larger matrices are max-pooled in blocks).
struct HeadImage {
  int width = 0, height = 0;  // texture size (n_k, n_q) or pooled
  std::vector<float> weights_rg, logits_rg;
  // the extremes of the allowed values shown (after the display's transforms), as value_range
  // in present/display.hpp gives them: a dense head's, taken in the pooling pass
  ValueRange weight_range{0, 1}, logit_range{0, 1};
};

// Any other matrix the window shows (masks, gallery, positional views), ready to upload.
struct ImageData {
  std::string id;             // a name to pick it by (a pipeline step's id)
  std::string title, caption;
  int rows = 0, cols = 0;     // of the matrix shown (before pooling)
  int width = 0, height = 0;  // of the texture
  int pooled_r = 1, pooled_c = 1;  // an overview: the cells (rows x cols) each value stands for
  std::vector<float> rg;      // (value, shown) per texture cell
  float vmin = 0, vmax = 1;
  bool diverging = false;     // signed data: the diverging colormap, symmetric range
  bool token_rows = false, token_cols = false;  // label rows / columns with the tokens
  double density = -1;        // masks: allowed cells / all, and the score computations
  long long cells = -1;
};

// How the window wants values shown; part of every request, since changing it re-prepares the
// textures (the engine's caches make the recomputation cheap).
struct DisplayOptions {
  std::string colormap = "viridis";
  RangeMode range = RangeMode::global;
  bool log = false;            // weights on a log10 scale (floor 1e-4)
  bool pool_mean = false;      // a field's overview: each block's mean weight, else its max
  // the view windows open: a long sequence's (a field's) views are prepared only while open
  // (the gallery draws 13 patterns, at 128k tokens seconds of work)
  std::vector<std::string> views_open;
  int steps_layer = -1, steps_head = -1;  // the head whose pipeline steps to prepare (-1: none)
  // the heads' logits images too, while the window shows logits: pooling them read and wrote as
  // much again as the weights' (a third of an edit's picture at 2048 tokens)
  bool logits = false;
  bool operator==(const DisplayOptions&) const = default;
};

struct Snapshot {
  std::uint64_t generation = 0;
  DisplayOptions display;
  std::shared_ptr<const Result> result;  // null when the session was invalid
  std::vector<std::string> problems;
  int n_heads = 0;
  bool field = false;             // a long sequence: the images are the heads' overviews (weights only)
  int n_layers = 0;
  std::vector<HeadImage> images;  // per layer and head: images[layer * n_heads + head]
  double prepare_ms = 0;          // making this snapshot's images from the Result (after its compute_ms)
  // the model that computed the Result (null: a session): next tokens of other positions than
  // the last are computed from it on demand (Result::final_hidden)
  std::shared_ptr<const HfModel> model;
  // colour ranges of the values in the textures (after log / per-row transforms): per layer over
  // its heads, and per layer and head (images' indexing)
  std::vector<ValueRange> weight_range, logit_range;
  bool signed_weights = false;  // differential attention: weights drawn on the diverging map about 0
  std::vector<ValueRange> head_weight_range, head_logit_range;
  std::vector<std::vector<float>> bias;  // per head: the relative positional bias by j - i (ALiBi, T5), else empty
  // what each view prepares from the Result (app/views/view.hpp), by view id: the pipeline's
  // steps of display.steps_head, the masks in force, the gallery, positional views, metrics
  std::map<std::string, std::vector<ImageData>> views;
  // the mask in force (layer 0, head 0): allowed cells over all, and how many (the side panel's
  // line, whether or not the Mask view is open); -1 before a result
  double mask_density = -1;
  long long mask_cells = -1;
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
  std::uint64_t post(const Session& s, const DisplayOptions& d);  // and changes how values are shown
  std::shared_ptr<const Snapshot> latest() const;  // newest finished, or null before the first
  bool busy() const { return busy_.load(); }       // a request is pending or being computed
  std::uint64_t posted() const;
  // The computation under way: how far (0..1) and for how long; Esc in the window cancels it
  // (the last snapshot stays shown). cancelled(): the generation last cancelled this way.
  float progress() const { return progress_.load(); }
  double busy_seconds() const;
  void cancel();
  std::uint64_t cancelled() const { return cancelled_.load(); }
  // How many requests ran the engine or the model (a display-only change runs neither).
  std::uint64_t computations() const { return computations_.load(); }
  // Per-head metrics are computed only while someone shows them (the Metrics window).
  void set_want_metrics(bool want) { want_metrics_ = want; }
  void set_want_logit_lens(bool want) { want_lens_ = want; }  // a model's logit lens (the Logit lens view)
  // With a model, every request runs the session's text through it (null: the random-weight engine).
  void set_model(std::shared_ptr<const HfModel> m) {
    std::lock_guard lock(mu_);
    model_ = std::move(m);
  }
  void set_intervention(const Intervention& iv) {  // applied to the model from the next request
    std::lock_guard lock(mu_);
    intervention_ = iv;
  }

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Session> pending_;
  DisplayOptions display_;
  std::shared_ptr<const HfModel> model_;
  Intervention intervention_;
  std::uint64_t pending_generation_ = 0;
  std::shared_ptr<const Snapshot> latest_;
  std::atomic<bool> cancel_{false}, quit_{false}, busy_{false}, want_metrics_{false}, want_lens_{false};
  std::atomic<float> progress_{0};
  std::atomic<std::uint64_t> cancelled_{0}, computations_{0};
  std::atomic<std::int64_t> started_ns_{0};  // steady clock when the computation under way began
  // what was last computed: a request that changes only how values are shown reuses it
  struct Computed {
    Session session;
    std::shared_ptr<const HfModel> model;
    Intervention intervention;
    bool metrics = false, lens = false;
    std::shared_ptr<const Result> result;
  };
  std::optional<Computed> computed_;
  Engine engine_;
  std::thread thread_;
};

// A field head's overview as texture data: max- or mean-pooled weights (the log scale applied).
HeadImage make_field_image(const HeadField& f, const DisplayOptions& d);
// Exposed for tests: builds the texture data of one head.
HeadImage make_head_image(const HeadResult& h, int max_side, const DisplayOptions& d = {});
// A matrix as texture data, max-pooled to max_side (mask: cells shown where it is 1).
ImageData make_image(const Matrix& values, const MaskMatrix* shown, int max_side);

}  // namespace attnlab::app
