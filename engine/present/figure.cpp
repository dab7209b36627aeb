#include "present/figure.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "present/colormap.hpp"
#include "present/export.hpp"
#include "present/fonts.hpp"
#include "core/utf8.hpp"

// Implementations from Debian's libstb (linked through pkg-config).
#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
// SVG and PDF: Cairo with the same font files through FreeType (libcairo2-dev)
#include <cairo-ft.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <ft2build.h>
#include FT_FREETYPE_H

#include "core/files.hpp"

namespace attnlab {

namespace {

using Rgb = std::array<std::uint8_t, 3>;

struct Canvas {
  RgbImage& img;
  void blend(int x, int y, Rgb c, float a) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height || a <= 0) return;
    std::uint8_t* p = img.at(x, y);
    for (int k = 0; k < 3; ++k) p[k] = static_cast<std::uint8_t>(std::lround(p[k] + (c[k] - p[k]) * std::min(a, 1.0f)));
  }
  void fill(int x0, int y0, int w, int h, Rgb c) {
    for (int y = std::max(0, y0); y < std::min(img.height, y0 + h); ++y)
      for (int x = std::max(0, x0); x < std::min(img.width, x0 + w); ++x) std::copy(c.begin(), c.end(), img.at(x, y));
  }
};

const stbtt_fontinfo* font_info(int k) { return static_cast<const stbtt_fontinfo*>(label_fonts()[k].info); }

// A line of text laid out: each glyph's font (index into label_fonts()), TrueType glyph index,
// pen position and scale; the line's width and height, and its baseline from the top.
struct Placed {
  int font, glyph;
  float pen, scale;
};
struct TextLine {
  std::vector<Placed> glyphs;
  int width = 0, height = 0, base = 0;
};

TextLine layout_text(const std::string& text, float px) {
  TextLine line;
  const auto& fonts = label_fonts();
  if (fonts.empty() || text.empty()) return line;
  // the first font's metrics set the line; each glyph comes from the first font that has it
  // (fonts.hpp), scaled to the same pixel height
  auto info = font_info;
  const float scale0 = stbtt_ScaleForPixelHeight(info(0), px);
  int ascent, descent, gap;
  stbtt_GetFontVMetrics(info(0), &ascent, &descent, &gap);
  line.base = static_cast<int>(std::ceil(ascent * scale0));
  line.height = line.base + static_cast<int>(std::ceil(-descent * scale0)) + 1;
  const std::string safe = utf8_sanitize(text);
  const auto cps = utf8_decode(safe);
  float x = 0;
  std::vector<Placed>& pos = line.glyphs;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const int k = std::max(0, font_for(cps[i].value));  // none: the first font's missing-glyph box
    const float scale = stbtt_ScaleForPixelHeight(info(k), px);
    const int g = stbtt_FindGlyphIndex(info(k), static_cast<int>(cps[i].value));
    pos.push_back({k, g, x, scale});
    int adv, lsb;
    stbtt_GetGlyphHMetrics(info(k), g, &adv, &lsb);
    x += adv * scale;
    if (i + 1 < cps.size() && font_for(cps[i + 1].value) == k) {
      const int g2 = stbtt_FindGlyphIndex(info(k), static_cast<int>(cps[i + 1].value));
      x += stbtt_GetGlyphKernAdvance(info(k), g, g2) * scale;
    }
  }
  line.width = static_cast<int>(std::ceil(x)) + 2;
  return line;
}

// A line of text as an alpha mask (width x height), baseline at `base`.
struct TextMask {
  int width = 0, height = 0;
  std::vector<float> alpha;
};

TextMask rasterise(const std::string& text, float px) {
  TextMask m;
  const TextLine line = layout_text(text, px);
  if (line.glyphs.empty()) return m;
  auto info = font_info;
  const int base = line.base;
  m.width = line.width, m.height = line.height;
  m.alpha.assign(std::size_t(m.width) * m.height, 0.0f);
  for (const auto& [k, g, pen, scale] : line.glyphs) {
    int x0, y0, x1, y1;
    const float shift = pen - std::floor(pen);
    stbtt_GetGlyphBitmapBoxSubpixel(info(k), g, scale, scale, shift, 0, &x0, &y0, &x1, &y1);
    const int w = x1 - x0, h = y1 - y0;
    if (w <= 0 || h <= 0) continue;
    std::vector<unsigned char> bm(std::size_t(w) * h);
    stbtt_MakeGlyphBitmapSubpixel(info(k), bm.data(), w, h, w, scale, scale, shift, 0, g);
    for (int yy = 0; yy < h; ++yy)
      for (int xx = 0; xx < w; ++xx) {
        const int X = static_cast<int>(std::floor(pen)) + x0 + xx, Y = base + y0 + yy;
        if (X < 0 || Y < 0 || X >= m.width || Y >= m.height) continue;
        float& a = m.alpha[std::size_t(Y) * m.width + X];
        a = std::min(1.0f, a + bm[std::size_t(yy) * w + xx] / 255.0f);
      }
  }
  return m;
}

int text_width(const std::string& s, float px) { return layout_text(s, px).width; }

// What a figure is drawn on: pixels (PNG) or a Cairo surface (SVG, PDF). Both take the same
// layout; text positions come from layout_text either way, so the files agree to the pixel.
struct Surface {
  virtual ~Surface() = default;
  virtual void fill(int x, int y, int w, int h, Rgb c) = 0;
  // a heatmap: nq x nk cells (alpha 0: not drawn) over the box (x, y, w, h), `cell` px each
  virtual void cells(int x, int y, int w, int h, float cell, const std::vector<std::array<std::uint8_t, 4>>& rgba, int nq,
                     int nk) = 0;
  // text with its top-left at (x, y); vertical: read bottom to top, its bottom-left at (x, y)
  virtual void text(const std::string& s, int x, int y, float px, Rgb col, bool vertical, int max_len) = 0;
};

struct RasterSurface : Surface {
  Canvas c;
  explicit RasterSurface(RgbImage& img) : c{img} {}
  void fill(int x, int y, int w, int h, Rgb col) override { c.fill(x, y, w, h, col); }
  void cells(int x, int y, int w, int h, float cell, const std::vector<std::array<std::uint8_t, 4>>& rgba, int nq,
             int nk) override {
    for (int yy = 0; yy < h; ++yy) {
      const int i = std::min(nq - 1, static_cast<int>(yy / cell));
      for (int xx = 0; xx < w; ++xx) {
        const int j = std::min(nk - 1, static_cast<int>(xx / cell));
        const auto& v = rgba[std::size_t(i) * nk + j];
        if (v[3] == 0 || x + xx < 0 || y + yy < 0 || x + xx >= c.img.width || y + yy >= c.img.height) continue;
        std::copy(v.begin(), v.begin() + 3, c.img.at(x + xx, y + yy));
      }
    }
  }
  void text(const std::string& s, int x, int y, float px, Rgb col, bool vertical, int max_len) override {
    TextMask m = rasterise(s, px);
    const int w = std::min(m.width, max_len);
    for (int yy = 0; yy < m.height; ++yy)
      for (int xx = 0; xx < w; ++xx) {
        const float a = m.alpha[std::size_t(yy) * m.width + xx];
        if (vertical) c.blend(x + yy, y - xx, col, a);
        else c.blend(x + xx, y + yy, col, a);
      }
  }
};

// Cairo font faces for label_fonts(), through FreeType from the same bytes (made once, kept)
const std::vector<cairo_font_face_t*>& cairo_faces() {
  static std::vector<cairo_font_face_t*> faces;
  static std::once_flag once;
  std::call_once(once, [] {
    FT_Library lib = nullptr;
    if (FT_Init_FreeType(&lib) != 0) return;
    for (const auto& f : label_fonts()) {
      FT_Face face = nullptr;
      if (FT_New_Memory_Face(lib, f.data.data(), static_cast<FT_Long>(f.data.size()), 0, &face) != 0) {
        faces.push_back(nullptr);
        continue;
      }
      faces.push_back(cairo_ft_font_face_create_for_ft_face(face, 0));
    }
  });
  return faces;
}

struct CairoSurface : Surface {
  cairo_t* cr;
  explicit CairoSurface(cairo_surface_t* s) : cr(cairo_create(s)) {}
  ~CairoSurface() override { cairo_destroy(cr); }
  void colour(Rgb c) { cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0); }
  void fill(int x, int y, int w, int h, Rgb c) override {
    colour(c);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill(cr);
  }
  void cells(int x, int y, int w, int h, float cell, const std::vector<std::array<std::uint8_t, 4>>& rgba, int nq,
             int nk) override {
    // cells of a pixel or more: an image at the figure's own pixels with the PNG's cell edges,
    // drawn 1:1 (SVG viewers smooth scaled images whatever the filter asks); smaller cells: one
    // image pixel per cell, scaled down
    const bool exact = cell >= 1;
    const int iw = exact ? w : nk, ih = exact ? h : nq;
    cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, iw, ih);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
      cairo_surface_destroy(img);
      return;
    }
    cairo_surface_flush(img);
    unsigned char* data = cairo_image_surface_get_data(img);
    const int stride = cairo_image_surface_get_stride(img);
    for (int yy = 0; yy < ih; ++yy) {
      const int i = exact ? std::min(nq - 1, static_cast<int>(yy / cell)) : yy;
      auto* row = reinterpret_cast<std::uint32_t*>(data + std::size_t(yy) * stride);
      for (int xx = 0; xx < iw; ++xx) {
        const int j = exact ? std::min(nk - 1, static_cast<int>(xx / cell)) : xx;
        const auto& v = rgba[std::size_t(i) * nk + j];
        row[xx] = v[3] == 0 ? 0u : 0xFF000000u | std::uint32_t(v[0]) << 16 | std::uint32_t(v[1]) << 8 | v[2];
      }
    }
    cairo_surface_mark_dirty(img);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (!exact) cairo_scale(cr, double(w) / nk, double(h) / nq);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, iw, ih);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
  }
  void text(const std::string& s, int x, int y, float px, Rgb col, bool vertical, int max_len) override {
    const TextLine line = layout_text(s, px);
    if (line.glyphs.empty()) return;
    const auto& faces = cairo_faces();
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical) cairo_rotate(cr, -M_PI / 2);
    cairo_rectangle(cr, 0, 0, std::min(line.width, max_len), line.height);
    cairo_clip(cr);
    colour(col);
    // runs of glyphs from one font, each at the pen position layout_text gave it
    for (std::size_t a = 0; a < line.glyphs.size();) {
      std::size_t b = a;
      while (b < line.glyphs.size() && line.glyphs[b].font == line.glyphs[a].font) ++b;
      const int k = line.glyphs[a].font;
      if (k < static_cast<int>(faces.size()) && faces[k]) {
        cairo_set_font_face(cr, faces[k]);
        // stb's scale is pixels per font unit for this pixel height; Cairo's size is the em
        cairo_set_font_size(cr, line.glyphs[a].scale / stbtt_ScaleForMappingEmToPixels(font_info(k), 1.0f));
        std::vector<cairo_glyph_t> g;
        for (std::size_t i = a; i < b; ++i)
          g.push_back({static_cast<unsigned long>(line.glyphs[i].glyph), line.glyphs[i].pen, double(line.base)});
        cairo_show_glyphs(cr, g.data(), static_cast<int>(g.size()));
      }
      a = b;
    }
    cairo_restore(cr);
  }
};

void draw_text(Surface& c, const std::string& s, int x, int y, float px, Rgb col, bool vertical = false,
               int max_len = 1 << 30) {
  c.text(s, x, y, px, col, vertical, max_len);
}

std::string fit(const std::string& s, float px, int max_w) {
  if (text_width(s, px) <= max_w) return s;
  const auto cps = utf8_decode(utf8_sanitize(s));
  std::string cut = utf8_sanitize(s);
  for (std::size_t n = cps.size(); n > 0; --n) {
    cut = cut.substr(0, cps[n - 1].begin) + "\xE2\x80\xA6";  // ...
    if (text_width(cut, px) <= max_w) return cut;
  }
  return "";
}

Rgb lookup(const Colormap& map, float t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0f, 0.0f, 1.0f);
  const auto& c = map.rgb[std::min<std::size_t>(map.rgb.size() - 1, std::size_t(t * (map.rgb.size() - 1) + 0.5f))];
  return {std::uint8_t(std::lround(c[0] * 255)), std::uint8_t(std::lround(c[1] * 255)), std::uint8_t(std::lround(c[2] * 255))};
}

std::string tick(float v) {
  char b[32];
  std::snprintf(b, sizeof b, std::abs(v) >= 1000 || (v != 0 && std::abs(v) < 0.01) ? "%.2e" : "%.3g", double(v));
  return b;
}

struct Prepared {  // a panel's display values and range
  Matrix d;
  ValueRange range;
};

Prepared prepare(const FigurePanel& p, const FigureStyle& st) {
  Prepared out;
  const MaskMatrix* shown = p.shown.size() ? &p.shown : nullptr;
  const bool log = st.log && p.non_negative;
  out.d = p.values.unaryExpr([&](float v) { return std::isfinite(v) ? display_value(v, log) : v; });
  if (shown)
    for (Eigen::Index i = 0; i < out.d.size(); ++i)
      if (!shown->data()[i]) out.d.data()[i] = std::numeric_limits<float>::quiet_NaN();
  if (st.range == RangeMode::per_row && !p.diverging) {
    normalise_rows(out.d, nullptr, p.non_negative && !log);
    out.range = {0, 1};
  } else {
    out.range = value_range(out.d, nullptr, false, p.non_negative && !log);
  }
  if (p.diverging) {
    const float r = std::max(std::abs(out.range.lo), std::abs(out.range.hi));
    out.range = {-r, r > 0 ? r : 1};
  }
  if (p.fixed_range && !log && !(st.range == RangeMode::per_row && !p.diverging)) out.range = {p.lo, p.hi};
  return out;
}

void draw_bar(Surface& c, int x, int y, int w, int h, const Colormap& map, ValueRange r, float s, Rgb text,
              const std::string& label) {
  for (int yy = 0; yy < h; ++yy) {
    const Rgb col = lookup(map, 1.0f - float(yy) / std::max(1, h - 1));
    c.fill(x, y + yy, w, 1, col);
  }
  const float px = 11 * s;
  draw_text(c, tick(r.hi), x + w + int(4 * s), y - int(2 * s), px, text);
  draw_text(c, tick((r.lo + r.hi) / 2), x + w + int(4 * s), y + h / 2 - int(6 * s), px, text);
  draw_text(c, tick(r.lo), x + w + int(4 * s), y + h - int(12 * s), px, text);
  if (!label.empty()) draw_text(c, label, x - int(15 * s), y + h, px, text, true, h);
}

// The figure's layout and drawing, on whatever surface `begin(width, height)` returns.
template <class Begin>
void draw_figure(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& st,
                 FigureLayout* layout, Begin begin) {
  const float s = std::clamp(st.scale, 0.25f, 8.0f);
  auto S = [&](float v) { return static_cast<int>(std::lround(v * s)); };
  const Rgb bg = st.light ? Rgb{255, 255, 255} : Rgb{28, 28, 31};
  const Rgb fg = st.light ? Rgb{20, 20, 20} : Rgb{230, 230, 230};
  const Rgb dim = st.light ? Rgb{90, 90, 90} : Rgb{160, 160, 165};
  const float label_px = 11 * s, title_px = 16 * s, panel_title_px = 13 * s;

  std::vector<Prepared> prep;
  ValueRange global{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  bool any_diverging = false;
  for (const auto& p : panels) {
    prep.push_back(prepare(p, st));
    global = merge(global, prep.back().range);
    any_diverging |= p.diverging;
  }
  if (panels.empty()) global = {0, 1};
  bool own = false;
  for (const auto& p : panels) own |= p.own_range;
  const bool shared_range = st.range != RangeMode::per_head && !own;
  if (shared_range && st.range == RangeMode::global)
    for (auto& p : prep) p.range = global;
  const Colormap& shared_map = colormap(any_diverging ? "rdbu_diverging" : st.colormap);

  // geometry: every panel gets the same box
  const int side = S(float(st.panel_side));
  int max_n = 1;
  for (const auto& p : panels) max_n = std::max<int>(max_n, std::max(p.values.rows(), p.values.cols()));
  const float cell = std::min(40.0f * s, float(side) / max_n);
  const bool labels = cell >= 9 * s;
  int row_label_w = 0, col_label_h = 0;
  if (labels)
    for (const auto& p : panels) {
      for (const auto& l : p.row_labels) row_label_w = std::max(row_label_w, std::min(text_width(l, label_px), S(90)));
      for (const auto& l : p.col_labels) col_label_h = std::max(col_label_h, std::min(text_width(l, label_px), S(90)));
    }
  const int own_bar = shared_range ? 0 : S(70);
  const int heat = std::max(1, static_cast<int>(std::lround(cell * max_n)));  // the largest panel's side
  const int box_w = row_label_w + S(4) + heat + own_bar + S(16);
  const int box_h = S(20) + heat + S(4) + col_label_h + S(18);
  const int n = static_cast<int>(panels.size());
  const int cols = std::max(1, st.columns > 0 ? std::min(st.columns, std::max(n, 1))
                                              : static_cast<int>(std::ceil(std::sqrt(double(std::max(n, 1))))));
  const int rows = (std::max(n, 1) + cols - 1) / cols;
  const int margin = S(12), top = title.empty() ? margin : margin + S(26);
  const int bar_w = shared_range ? S(90) : 0;
  const int width = std::max(S(200), margin * 2 + cols * box_w + bar_w);
  const int height = top + rows * box_h + margin;
  Surface& c = begin(width, height);
  c.fill(0, 0, width, height, bg);
  if (layout) layout->background = bg, layout->cells.clear();
  if (!title.empty()) draw_text(c, fit(title, title_px, width - 2 * margin), margin, margin, title_px, fg);

  for (int k = 0; k < n; ++k) {
    const FigurePanel& p = panels[k];
    const Prepared& pr = prep[k];
    const Colormap& map = shared_range ? shared_map : colormap(p.diverging ? "rdbu_diverging" : st.colormap);
    const int bx = margin + (k % cols) * box_w, by = top + (k / cols) * box_h;
    draw_text(c, fit(p.title, panel_title_px, box_w - S(8)), bx, by, panel_title_px, fg);
    const int hx = bx + row_label_w + S(4), hy = by + S(20);
    const int nq = static_cast<int>(p.values.rows()), nk = static_cast<int>(p.values.cols());
    const int w = std::max(1, static_cast<int>(std::lround(cell * nk))), h = std::max(1, static_cast<int>(std::lround(cell * nq)));
    if (layout) layout->cells.push_back({hx, hy, w, h});
    const float span = pr.range.hi - pr.range.lo;
    std::vector<std::array<std::uint8_t, 4>> rgba(std::size_t(std::max(nq, 0)) * std::max(nk, 0), {0, 0, 0, 0});
    for (int i = 0; i < nq; ++i)
      for (int j = 0; j < nk; ++j) {
        const float v = pr.d(i, j);
        if (!std::isfinite(v)) continue;  // masked: background
        const Rgb col = lookup(map, (v - pr.range.lo) / span);
        rgba[std::size_t(i) * nk + j] = {col[0], col[1], col[2], 255};
      }
    if (nq > 0 && nk > 0) c.cells(hx, hy, w, h, cell, rgba, nq, nk);
    if (st.numbers && cell >= 26 * s) {
      const float px = std::min(cell * 0.34f, 13 * s);
      for (int i = 0; i < nq; ++i)
        for (int j = 0; j < nk; ++j) {
          if (!std::isfinite(pr.d(i, j))) continue;
          const float v = p.values(i, j);
          char b[16];
          std::snprintf(b, sizeof b, std::abs(v) < 10 ? "%.2f" : "%.0f", double(v));
          const Rgb col = lookup(map, (pr.d(i, j) - pr.range.lo) / span);
          const float lum = 0.2126f * col[0] + 0.7152f * col[1] + 0.0722f * col[2];
          const int tw = text_width(b, px);
          draw_text(c, b, hx + int(j * cell + (cell - tw) / 2), hy + int(i * cell + (cell - px * 1.2f) / 2), px,
                    lum > 140 ? Rgb{0, 0, 0} : Rgb{255, 255, 255});
        }
    }
    if (labels) {
      for (int i = 0; i < nq && i < int(p.row_labels.size()); ++i) {
        const std::string l = fit(p.row_labels[i], label_px, row_label_w);
        draw_text(c, l, hx - S(4) - text_width(l, label_px), hy + int(i * cell + (cell - label_px * 1.25f) / 2), label_px, dim);
      }
      for (int j = 0; j < nk && j < int(p.col_labels.size()); ++j) {
        const std::string l = fit(p.col_labels[j], label_px, col_label_h);
        draw_text(c, l, hx + int(j * cell + (cell - label_px * 1.25f) / 2), hy + h + S(4) + text_width(l, label_px), label_px,
                  dim, true);
      }
    }
    if (!p.caption.empty())
      draw_text(c, fit(p.caption, label_px, box_w - S(8)), bx, hy + heat + S(4) + col_label_h, label_px, dim);
    if (!shared_range) draw_bar(c, hx + w + S(18), hy, S(12), std::min(h, heat), map, pr.range, s, dim, "");
  }
  if (shared_range && n > 0) {
    std::string label = st.range == RangeMode::per_row ? "per row: row min .. row max" : (st.log ? "log10" : "");
    ValueRange r = st.range == RangeMode::per_row && !any_diverging ? ValueRange{0, 1} : global;
    if (any_diverging) {
      const float m = std::max(std::abs(global.lo), std::abs(global.hi));
      r = {-m, m};
    }
    draw_bar(c, margin + cols * box_w + S(18), top + S(20), S(14), heat, shared_map, r, s, dim, label);
  }
}

}  // namespace

RgbImage render_figure(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& style) {
  return render_figure(title, panels, style, nullptr);
}

RgbImage render_figure(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& st,
                       FigureLayout* layout) {
  RgbImage img;
  std::unique_ptr<RasterSurface> surface;
  draw_figure(title, panels, st, layout, [&](int w, int h) -> Surface& {
    img.width = w, img.height = h;
    img.rgb.assign(std::size_t(w) * h * 3, 0);
    surface = std::make_unique<RasterSurface>(img);
    return *surface;
  });
  return img;
}

std::string encode_png(const RgbImage& img) {
  std::string out;
  stbi_write_png_to_func(
      [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size); },
      &out, img.width, img.height, 3, img.rgb.data(), img.width * 3);
  return out;
}

std::string render_figure_vector(const std::string& title, const std::vector<FigurePanel>& panels, const FigureStyle& st,
                                 FigureFormat format, FigureLayout* layout) {
  std::string out;
  auto sink = [](void* closure, const unsigned char* data, unsigned int length) {
    static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
    return CAIRO_STATUS_SUCCESS;
  };
  cairo_surface_t* surface = nullptr;
  std::unique_ptr<CairoSurface> painter;
  draw_figure(title, panels, st, layout, [&](int w, int h) -> Surface& {
    surface = format == FigureFormat::pdf ? cairo_pdf_surface_create_for_stream(sink, &out, w, h)
                                          : cairo_svg_surface_create_for_stream(sink, &out, w, h);
    if (format == FigureFormat::svg) cairo_svg_surface_set_document_unit(surface, CAIRO_SVG_UNIT_PX);
    painter = std::make_unique<CairoSurface>(surface);
    return *painter;
  });
  painter.reset();
  const bool ok = surface && cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS;
  if (surface) {
    cairo_surface_finish(surface);  // writes the document's end to `out`
    cairo_surface_destroy(surface);
  }
  return ok ? out : std::string();
}

bool figure_format_from_path(const std::string& path, FigureFormat& format) {
  auto ends = [&](const char* e) {
    const std::string x = e;
    if (path.size() < x.size()) return false;
    for (std::size_t k = 0; k < x.size(); ++k)
      if (std::tolower(static_cast<unsigned char>(path[path.size() - x.size() + k])) != x[k]) return false;
    return true;
  };
  if (ends(".png")) format = FigureFormat::png;
  else if (ends(".svg")) format = FigureFormat::svg;
  else if (ends(".pdf")) format = FigureFormat::pdf;
  else return false;
  return true;
}

bool write_figure(const std::string& path, const std::string& title, const std::vector<FigurePanel>& panels,
                  const FigureStyle& style, std::string& error, FigureLayout* layout) {
  FigureFormat f{};
  if (!figure_format_from_path(path, f)) {
    error = path + ": a figure's name must end in .png, .svg or .pdf";
    return false;
  }
  if (f == FigureFormat::png) return write_png(path, render_figure(title, panels, style, layout), error);
  const std::string bytes = render_figure_vector(title, panels, style, f, layout);
  if (bytes.empty()) {
    error = path + ": Cairo could not draw the figure";
    return false;
  }
  return write_file_atomic(path, bytes, error);
}

bool write_png(const std::string& path, const RgbImage& img, std::string& error) {
  const std::string bytes = encode_png(img);
  if (bytes.empty()) {
    error = path + ": PNG encoding failed";
    return false;
  }
  return write_file_atomic(path, bytes, error);
}

}  // namespace attnlab
