#include <doctest/doctest.h>

#include <cmath>

#include "pipeline.hpp"
#include "attention/positional.hpp"
#include "present/figure.hpp"
#include "present/fonts.hpp"
#include "present/views.hpp"

#include <algorithm>

using namespace attnlab;

TEST_CASE("views: the gallery holds every mask kind, each as build_mask gives it") {
  Session s;
  s.text = "one two three four five six seven";
  s.attention.mask.causal = true;
  const auto tokens = tokenize(s);
  const Matrix q = Matrix::Random(static_cast<int>(tokens.size()), 8);
  const auto gallery = mask_gallery(s, tokens, &q);
  CHECK(gallery.size() == option("attention.mask.kind").choices.size());
  for (const auto& e : gallery) {
    MaskSpec spec = s.attention.mask;
    spec.kind = e.kind;
    const MaskMatrix expected = e.kind == MaskKind::lsh ? lsh_mask(q, spec, s.model.seed, 0, 0)
                                                        : build_mask(spec, int(tokens.size()), tokens, s.model.seed);
    INFO(name(e.kind));
    CHECK(e.allowed == expected);
  }
  CHECK(mask_gallery(s, tokens, nullptr).size() == gallery.size() - 1);  // no queries: no LSH
}

namespace {
Result result_of(const Session& s) {
  Outcome o = compute(s);
  REQUIRE(o.result);
  return *o.result;
}
}  // namespace

TEST_CASE("views: positional similarity - cosine for sinusoidal, distance-only for RoPE") {
  Session s;
  s.model = {16, 2, 1};
  s.text = "a b c d e f g h i";
  auto v = positional_view(result_of(s));
  REQUIRE(v.similarity.rows() == 9);
  for (int i = 0; i < 9; ++i) CHECK(v.similarity(i, i) == doctest::Approx(1.0));
  CHECK(v.encoding.rows() == 9);
  s.positional.kind = PositionalKind::rope;
  v = positional_view(result_of(s));
  CHECK(v.encoding.size() == 0);
  CHECK(v.rope_angles.cols() == 4);  // d_head 8: 4 pairs
  for (int a = 0; a < 9; ++a)
    for (int b = 0; b < 9; ++b) CHECK(v.similarity(a, b) == doctest::Approx(v.similarity(std::abs(a - b), 0)));
  CHECK(v.rope_angles(3, 0) == doctest::Approx(3.0));  // theta_0 = 1
}

TEST_CASE("views: ALiBi bias per head is -m |i - j| with the paper's slopes") {
  Session s;
  s.model = {16, 4, 1};
  s.positional.kind = PositionalKind::alibi;
  s.text = "a b c d e";
  const auto v = positional_view(result_of(s));
  REQUIRE(v.bias.size() == 4);
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j) CHECK(v.bias[h](i, j) == doctest::Approx(-std::pow(2.0, -2.0 * (h + 1)) * std::abs(i - j)));
}

TEST_CASE("fonts: Chinese, Japanese, Korean, Arabic, Hindi, Greek, Cyrillic and emoji labels all have a glyph") {
  REQUIRE_FALSE(label_fonts().empty());
  const char* tokens[] = {"注意力机制", "日本語のテキスト", "한국어", "الانتباه", "ध्यान", "προσοχή", "внимание", "😀👍🏽"};
  for (const char* t : tokens) {
    const auto missing = missing_glyphs(t);
    CHECK_MESSAGE(missing.empty(), std::string(t) << ": first missing U+" << std::hex << (missing.empty() ? 0u : unsigned(missing[0])));
  }
  // each script from a font that has it (the fallbacks, when installed, serve CJK and Devanagari)
  CHECK(font_for(U'a') == 0);
  CHECK(font_for(U'\u0436') == 0);  // Cyrillic from DejaVu
  CHECK(font_for(U'\u6CE8') > 0);   // CJK from a fallback
  CHECK(font_for(U'\u0927') > 0);   // Devanagari from a fallback
  CHECK(font_for(U'\U0010FFFD') == -1);  // private use: no font, reported as missing
  CHECK(missing_glyphs("\U0010FFFD").size() == 1);
}

TEST_CASE("fonts: a figure draws non-Latin labels with their glyphs, not the missing-glyph box") {
  // one panel whose row labels are CJK, Arabic, Devanagari: the label gutter holds their ink, and
  // it is not what the same labels drawn as missing-glyph boxes would be
  auto draw = [](const std::vector<std::string>& labels) {
    FigurePanel p;
    p.values = Matrix::Ones(3, 3);
    p.row_labels = labels;
    p.col_labels = labels;
    FigureLayout layout;
    const RgbImage img = render_figure("", {p}, FigureStyle{}, &layout);
    const auto cells = layout.cells.at(0);
    std::vector<std::uint8_t> gutter;  // the row-label strip left of the cells
    for (int y = cells[1]; y < cells[1] + cells[3]; ++y)
      for (int x = 0; x < cells[0]; ++x) gutter.insert(gutter.end(), img.at(x, y), img.at(x, y) + 3);
    return gutter;
  };
  const auto real = draw({"中文", "الانتباه", "ध्यान"});
  const auto boxes = draw({"\U0010FFFD\U0010FFFD", "\U0010FFFD\U0010FFFD\U0010FFFD\U0010FFFD", "\U0010FFFD\U0010FFFD"});
  CHECK(real != boxes);  // not the missing-glyph boxes (missing_glyphs above says each has a font)
  const auto bg = real.front();
  CHECK(std::count_if(real.begin(), real.end(), [&](std::uint8_t v) { return v != bg; }) > 100);  // ink
}
