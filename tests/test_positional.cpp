#include <doctest/doctest.h>

#include "attention/positional.hpp"

#include <cmath>
#include "test_util.hpp"

using namespace attnlab;

TEST_CASE("positional: sinusoidal matches the reference to 1e-6") {
  const auto g = test::golden("sinusoidal.json");
  const Matrix pe = sinusoidal_encoding(g["n"], g["d"]);
  test::check_matrix(pe, g["pe"], 1e-6, 0, "sinusoidal (7, 10)");
}

TEST_CASE("positional: sinusoidal by hand - position 0 is (0, 1, 0, 1, ...), odd d ends in a sine") {
  const Matrix pe = sinusoidal_encoding(3, 5);
  for (int c = 0; c < 5; ++c) CHECK(pe(0, c) == (c % 2 ? 1.0f : 0.0f));
  CHECK(pe(1, 0) == doctest::Approx(std::sin(1.0)));
  CHECK(pe(2, 1) == doctest::Approx(std::cos(2.0)));
  CHECK(pe(1, 4) == doctest::Approx(std::sin(1.0 / std::pow(10000.0, 4.0 / 5))));
}

TEST_CASE("positional: ALiBi slopes for 8, 12 and 6 heads match the paper's rule") {
  const auto g = test::golden("positional.json");
  for (const auto& [h, slopes] : g["alibi_slopes"].items()) {
    const auto got = alibi_slopes(std::stoi(h));
    REQUIRE(got.size() == slopes.size());
    for (std::size_t k = 0; k < got.size(); ++k) CHECK(got[k] == doctest::Approx(slopes[k].get<double>()).epsilon(1e-12));
  }
  // by hand: 8 heads give 1/2, 1/4, ..., 1/256
  const auto s8 = alibi_slopes(8);
  for (int k = 0; k < 8; ++k) CHECK(s8[k] == doctest::Approx(std::pow(0.5, k + 1)));
}

TEST_CASE("positional: T5 buckets for a table of distances") {
  const auto g = test::golden("positional.json");
  for (const auto& c : g["t5_buckets"]) {
    INFO("bidirectional " << c["bidirectional"] << ", buckets " << c["num_buckets"] << ", max " << c["max_distance"]);
    for (std::size_t k = 0; k < c["relative"].size(); ++k) {
      const int r = c["relative"][k];
      CHECK(t5_bucket(r, c["bidirectional"], c["num_buckets"], c["max_distance"]) == c["bucket"][k].get<int>());
    }
  }
}

TEST_CASE("positional: RoPE in both conventions matches the reference") {
  const auto g = test::golden("positional.json");
  for (const auto& c : g["rope"]) {
    Matrix x(c["x"].size(), c["x"][0].size());
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      for (Eigen::Index j = 0; j < x.cols(); ++j) x(i, j) = c["x"][i][j];
    const auto conv = c["convention"] == "rotate_half" ? RopeConvention::rotate_half : RopeConvention::interleaved;
    rope_rotate(x, c["base"], c["fraction"], conv);
    test::check_matrix(x, c["rotated"], 1e-5, 1e-5, "rope " + c["convention"].get<std::string>());
  }
}

TEST_CASE("positional: a RoPE score depends only on the distance m - n") {
  for (auto conv : {RopeConvention::rotate_half, RopeConvention::interleaved}) {
    // the same content vectors q and k placed at every position
    Matrix q(40, 16), k(40, 16);
    Vector qv(16), kv(16);
    for (int d = 0; d < 16; ++d) qv(d) = std::sin(1.0f + d), kv(d) = std::cos(2.0f * d);
    for (int p = 0; p < 40; ++p) q.row(p) = qv.transpose(), k.row(p) = kv.transpose();
    rope_rotate(q, 10000, 1.0, conv);
    rope_rotate(k, 10000, 1.0, conv);
    for (int delta : {0, 1, 5, 17}) {
      const float ref = q.row(delta).dot(k.row(0));
      for (int m = delta; m < 40; ++m) CHECK(q.row(m).dot(k.row(m - delta)) == doctest::Approx(ref).epsilon(1e-4));
    }
    CHECK(q.row(3).dot(k.row(0)) != doctest::Approx(q.row(0).dot(k.row(0))));  // and it does depend on it
  }
}

TEST_CASE("positional: learned table rows come from their streams") {
  const auto g = test::golden("positional.json");
  const auto& c = g["learned"];
  test::check_matrix(learned_encoding(c["seed"], c["n"], c["d"]), c["table"], 1e-6, 0, "learned");
}

TEST_CASE("positional: every tiny T5 (num_buckets, max_distance) is refused or gives buckets inside the table") {
  for (int nb = 1; nb <= 12; ++nb)
    for (int md = 1; md <= 12; ++md)
      for (bool bidir : {true, false}) {
        Session s;
        s.positional.kind = PositionalKind::t5;
        s.positional.t5_num_buckets = nb;
        s.positional.t5_max_distance = md;
        s.positional.t5_bidirectional = bidir;
        if (!validate(s).ok()) continue;
        INFO("num_buckets " << nb << ", max_distance " << md << ", bidirectional " << bidir);
        for (int r = -300; r <= 300; ++r) {
          const int b = t5_bucket(r, bidir, nb, md);
          CHECK((b >= 0 && b < nb));
        }
      }
  Session s;
  s.positional.kind = PositionalKind::t5;
  s.positional.t5_num_buckets = 2;
  CHECK_FALSE(validate(s).ok());
  s.positional.t5_bidirectional = false;  // one direction: 2 buckets leave one exact distance
  s.positional.t5_max_distance = 2;
  CHECK(validate(s).ok());
}
