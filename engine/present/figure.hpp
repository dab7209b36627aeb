// Figures without a GPU or a display: heatmaps with token labels, titles, numbers in cells and
// a colour bar, rasterised on the CPU (text by stb_truetype in DejaVu Sans) and written as PNG,
// or drawn by Cairo as SVG and PDF.
// The window's PNG export and `attnlab-cli render` both draw through this.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "present/display.hpp"
#include "core/tensor.hpp"

namespace attnlab {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // row-major, 3 bytes a pixel
  std::uint8_t* at(int x, int y) { return &rgb[3 * (std::size_t(y) * width + x)]; }
  const std::uint8_t* at(int x, int y) const { return &rgb[3 * (std::size_t(y) * width + x)]; }
};

struct FigurePanel {
  std::string id;                // a name to pick it by (a pipeline step's id), else empty
  std::string title, caption;
  Matrix values;                 // non-finite cells are drawn as background
  MaskMatrix shown;              // empty: every cell shown
  std::vector<std::string> row_labels, col_labels;  // drawn when the cells are tall / wide enough
  bool non_negative = false;     // weights: the range starts at 0
  bool diverging = false;        // signed: diverging colormap, range symmetric about 0
  bool own_range = false;        // unlike its neighbours (other units): its own range and bar
  bool fixed_range = false;      // the range is [lo, hi] whatever the values (masks 0..1, angles 0..2 pi)
  float lo = 0, hi = 1;
  bool token_rows = false, token_cols = false;  // rows / columns are the tokens (queries / keys)
  double density = -1;           // masks: allowed cells / all, and the score computations
  long long cells = -1;
  int pooled_r = 1, pooled_c = 1;  // an overview: each value stands for pooled_r x pooled_c cells
};

struct FigureStyle {
  float scale = 1;                 // 1, 2 or 4: every length multiplied
  std::string colormap = "viridis";
  RangeMode range = RangeMode::global;  // global: one range for every panel; per_head: per panel
  bool log = false;
  bool numbers = true;             // values printed in cells at least 26 px (x scale) wide
  bool light = false;              // white background (projectors, print)
  int columns = 0;                 // panels per row; 0: about square
  int panel_side = 320;            // heatmap side in px before scale (cells at most 40 px)
};

// Panel grid, title on top, colour bar(s) on the right. Background where a cell is masked.
RgbImage render_figure(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& style);

// Layout facts the tests read: where panel k's cells were drawn (x, y, w, h, in pixels).
struct FigureLayout {
  std::vector<std::array<int, 4>> cells;
  std::array<std::uint8_t, 3> background{};
};
RgbImage render_figure(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& style,
                       FigureLayout* layout);

// SVG and PDF (Cairo): the same layout, labels, colour bars and fonts as the PNG (each glyph
// placed where the PNG draws it; outlines in SVG, embedded fonts in PDF), each heatmap an image
// with the PNG's cell edges. Empty when Cairo fails.
enum class FigureFormat { png, svg, pdf };
std::string render_figure_vector(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& style,
                                 FigureFormat format, FigureLayout* layout = nullptr);
bool figure_format_from_path(const std::string& path, FigureFormat& format);  // .png, .svg, .pdf (any case)
// The format the name ends in, written atomically; false with a one-line reason.
bool write_figure(const std::string& path, const std::string& title, const std::vector<FigurePanel>& panels,
                  const FigureStyle& style, std::string& error, FigureLayout* layout = nullptr);

// PNG, written atomically; false with a one-line reason.
bool write_png(const std::string& path, const RgbImage& img, std::string& error);
std::string encode_png(const RgbImage& img);

}  // namespace attnlab
