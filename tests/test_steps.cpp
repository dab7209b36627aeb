// The step-by-step pipeline of one head, the display transforms and the matrix exports,
// checked against values derived by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "present/display.hpp"
#include "present/export.hpp"
#include "present/figure.hpp"
#include "pipeline.hpp"
#include "analysis/steps.hpp"

using namespace attnlab;

namespace {
const Matrix& step(const std::vector<Step>& steps, const std::string& id) {
  for (const auto& s : steps)
    if (s.id == id) return s.values;
  FAIL("no step " << id);
  static Matrix none;
  return none;
}
}  // namespace

TEST_CASE("steps: QK^T, scaling, ALiBi bias and the mask, each as the formulas say") {
  Session s;
  s.text = "the quick brown fox jumps over it";
  s.model.d_model = 32;
  s.model.n_heads = 4;
  s.positional.kind = PositionalKind::alibi;
  s.attention.mask.kind = MaskKind::causal;
  const Outcome o = compute(s);
  REQUIRE(o.result);
  for (int head = 0; head < 4; ++head) {
    const auto steps = head_steps(*o.result, 0, head);
    REQUIRE(steps.size() == 11);
    const HeadResult& h = o.result->layers[0].heads[head];
    const int n = static_cast<int>(h.q.rows()), d = static_cast<int>(h.q.cols());
    const Matrix &scores = step(steps, "scores"), &scaled = step(steps, "scaled"), &biased = step(steps, "biased"),
                 &masked = step(steps, "masked");
    const double m = std::pow(2.0, -8.0 * (head + 1) / 4);  // ALiBi slope for 4 heads (Press et al.)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += double(h.q(i, c)) * h.k(j, c);
        CHECK(scores(i, j) == doctest::Approx(dot).epsilon(1e-5));
        CHECK(scaled(i, j) == doctest::Approx(dot / std::sqrt(double(d))).epsilon(1e-5));
        CHECK(biased(i, j) - scaled(i, j) == doctest::Approx(-m * std::abs(i - j)).epsilon(1e-4));
        if (j > i) CHECK(std::isinf(masked(i, j)));
        else CHECK(masked(i, j) == doctest::Approx(biased(i, j)).epsilon(1e-5));
        if (j <= i) CHECK(masked(i, j) == doctest::Approx(h.logits(i, j)).epsilon(1e-4));
      }
    const Matrix& w = step(steps, "weights");
    for (int i = 0; i < n; ++i) CHECK(w.row(i).sum() == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(step(steps, "context").isApprox(w * h.v, 1e-5f));
  }
}

TEST_CASE("display: ranges, log scale and per-row normalisation") {
  Matrix m(2, 3);
  m << 0.5f, 0.25f, 0.25f, 0.0f, 1.0f, -std::numeric_limits<float>::infinity();
  const ValueRange r = value_range(m, nullptr, false, true);
  CHECK(r.lo == 0.0f);
  CHECK(r.hi == 1.0f);
  const ValueRange lr = value_range(m, nullptr, true, true);
  CHECK(lr.lo == doctest::Approx(-4.0));  // log10 of the floor 1e-4 (the 0 weight)
  CHECK(lr.hi == doctest::Approx(0.0));
  Matrix d = m;
  normalise_rows(d, nullptr, true);
  CHECK(d(0, 0) == 1.0f);
  CHECK(d(0, 1) == 0.5f);
  CHECK(d(1, 1) == 1.0f);
  CHECK(std::isinf(d(1, 2)));
}

TEST_CASE("export: .npy header by the NumPy format 1.0 and CSV quoting") {
  Matrix m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  const std::string npy = to_npy(m);
  REQUIRE(npy.size() > 10);
  CHECK(npy.compare(0, 6, "\x93NUMPY") == 0);
  const std::size_t header = static_cast<unsigned char>(npy[8]) | static_cast<unsigned char>(npy[9]) << 8;
  CHECK((10 + header) % 64 == 0);
  CHECK(npy.substr(10, header).find("'shape': (2, 3)") != std::string::npos);
  CHECK(npy.size() == 10 + header + 6 * 4);
  float last;
  std::memcpy(&last, npy.data() + npy.size() - 4, 4);
  CHECK(last == 6.0f);
  LabeledMatrix l{"w", m, {"a,b", "c\"d"}, {"x", "y", "z"}};
  CHECK(to_delimited(l, ',') == "w,x,y,z\n\"a,b\",1,2,3\n\"c\"\"d\",4,5,6\n");
}

TEST_CASE("figure: masked cells are the background and the scale multiplies the size") {
  FigurePanel p;
  p.values = Matrix::Constant(4, 4, 0.5f);
  p.shown = MaskMatrix::Ones(4, 4);
  p.shown(0, 3) = 0;
  FigureStyle st;
  FigureLayout lay;
  const RgbImage one = render_figure("t", {p}, st, &lay);
  REQUIRE(lay.cells.size() == 1);
  const auto [x, y, w, h] = lay.cells[0];
  const std::uint8_t* masked = one.at(x + w * 7 / 8, y + h / 8);
  const std::uint8_t* shown = one.at(x + w / 8, y + h / 8);
  CHECK(std::equal(masked, masked + 3, lay.background.begin()));
  CHECK_FALSE(std::equal(shown, shown + 3, lay.background.begin()));
  st.scale = 2;
  const RgbImage two = render_figure("t", {p}, st);
  CHECK(std::abs(two.width - 2 * one.width) <= two.width / 100 + 2);  // text widths round per scale
  CHECK(std::abs(two.height - 2 * one.height) <= two.height / 100 + 2);
}
