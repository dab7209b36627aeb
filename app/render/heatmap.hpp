// A heatmap on the GPU: values (and the allowed mask) uploaded as an RG32F texture, coloured by
// a colormap in a fragment shader into an RGBA8 texture that ImGui draws with ImGui::Image.
// The shader runs once per new result or new range, not per frame. GL calls: UI thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "present/colormap.hpp"

namespace attnlab::app {

class HeatmapRenderer {
 public:
  bool init();  // compiles the shader; false (with a message on stderr) when GL is unusable
  ~HeatmapRenderer();

  unsigned program() const { return program_; }
  unsigned lut(std::string_view name) const;  // a 256 x 1 colormap texture; viridis if unknown
  unsigned vao() const { return vao_; }

 private:
  unsigned program_ = 0, vao_ = 0;
  std::vector<std::pair<std::string, unsigned>> luts_;  // one per embedded colormap
};

class Heatmap {
 public:
  Heatmap() = default;
  Heatmap(const Heatmap&) = delete;
  Heatmap& operator=(const Heatmap&) = delete;
  Heatmap(Heatmap&& o) noexcept;
  Heatmap& operator=(Heatmap&& o) noexcept;
  ~Heatmap();

  // rg: width * height pairs (value, allowed), row-major, row 0 at the top.
  // Masked cells (allowed 0) come out transparent, so the panel background shows through.
  void update(const HeatmapRenderer& r, int width, int height, const std::vector<float>& rg, float vmin, float vmax,
              std::string_view colormap_name = "viridis");
  // The same picture coloured on the CPU and uploaded as RGBA8, without the framebuffer pass:
  // for small maps redrawn often (the training view's probe heads), where on llvmpipe each pass
  // costs a flush and a wait of its rasterising threads. The LUT is interpolated as the shader's
  // linear sampling does.
  void update_on_cpu(int width, int height, const std::vector<float>& rg, float vmin, float vmax,
                     std::string_view colormap_name = "viridis");
  unsigned texture() const { return color_; }
  int width() const { return w_; }
  int height() const { return h_; }

 private:
  void release();
  unsigned values_ = 0, color_ = 0, fbo_ = 0;
  int w_ = 0, h_ = 0;
};

}  // namespace attnlab::app
