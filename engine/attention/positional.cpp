#include "attention/positional.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/rng.hpp"

namespace attnlab {

Matrix sinusoidal_encoding(int n_positions, int d) {
  Matrix pe(n_positions, d);
  for (int i = 0; 2 * i < d; ++i) {
    const double inv_freq = std::pow(10000.0, -2.0 * i / d);
    for (int p = 0; p < n_positions; ++p) {
      const double angle = p * inv_freq;
      pe(p, 2 * i) = static_cast<float>(std::sin(angle));
      if (2 * i + 1 < d) pe(p, 2 * i + 1) = static_cast<float>(std::cos(angle));
    }
  }
  return pe;
}

Matrix learned_encoding(std::uint64_t seed, int n_positions, int d) {
  Matrix pe(n_positions, d);
  for (int p = 0; p < n_positions; ++p) {
    fill_normal(stream_key(seed, "positional.learned.p" + std::to_string(p)), 1.0f,
                {pe.row(p).data(), static_cast<std::size_t>(d)});
  }
  return pe;
}

int rope_dims(int d_head, double fraction) {
  return 2 * static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * d_head / 2.0 + 1e-9));
}

void rope_rotate(Matrix& x, double base, double fraction, RopeConvention convention) {
  const int n = static_cast<int>(x.rows()), d_rot = rope_dims(static_cast<int>(x.cols()), fraction);
  const int half = d_rot / 2;
  for (int m = 0; m < half; ++m) {
    const double theta = std::pow(base, -2.0 * m / d_rot);
    const int a = convention == RopeConvention::rotate_half ? m : 2 * m;
    const int b = convention == RopeConvention::rotate_half ? m + half : 2 * m + 1;
    for (int p = 0; p < n; ++p) {
      const double c = std::cos(p * theta), s = std::sin(p * theta);
      const double x1 = x(p, a), x2 = x(p, b);
      x(p, a) = static_cast<float>(x1 * c - x2 * s);
      x(p, b) = static_cast<float>(x1 * s + x2 * c);
    }
  }
}

std::vector<double> rope_frequencies(int d_rot, double base, const RopeScaling& sc, int n) {
  using K = RopeScaling::Kind;
  const int half = d_rot / 2;
  const double pi = 3.14159265358979323846;
  if (sc.kind == K::dynamic && sc.original > 0 && n > sc.original)
    base *= std::pow(sc.factor * n / sc.original - (sc.factor - 1), double(d_rot) / (d_rot - 2));
  std::vector<double> theta(half);
  for (int m = 0; m < half; ++m) theta[m] = std::pow(base, -2.0 * m / d_rot);
  if (sc.kind == K::linear) {
    for (double& t : theta) t /= sc.factor;
  } else if (sc.kind == K::llama3) {
    const double low_wavelen = sc.original / sc.low_freq_factor, high_wavelen = sc.original / sc.high_freq_factor;
    for (double& t : theta) {
      const double wavelen = 2 * pi / t;
      if (wavelen > low_wavelen) {
        t /= sc.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (sc.original / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
        t = (1 - smooth) * t / sc.factor + smooth * t;
      }
    }
  } else if (sc.kind == K::yarn) {
    // the dimension (of d_rot) whose frequency turns r times in `original` positions
    auto dim_of = [&](double r) { return d_rot * std::log(sc.original / (r * 2 * pi)) / (2 * std::log(base)); };
    const double low = std::max(0.0, std::floor(dim_of(sc.beta_fast)));
    double high = std::min(double(d_rot - 1), std::ceil(dim_of(sc.beta_slow)));
    if (high == low) high += 0.001;
    for (int m = 0; m < half; ++m) {
      const double ramp = std::clamp((m - low) / (high - low), 0.0, 1.0), extrapolate = 1 - ramp;
      theta[m] = theta[m] / sc.factor * (1 - extrapolate) + theta[m] * extrapolate;
    }
  }
  return theta;
}

double rope_attention_factor(const RopeScaling& sc) {
  if (sc.kind != RopeScaling::Kind::yarn) return 1.0;
  if (sc.attention_factor > 0) return sc.attention_factor;
  return sc.factor <= 1 ? 1.0 : 0.1 * std::log(sc.factor) + 1.0;
}

void rope_rotate(Matrix& x, const std::vector<double>& theta, double mscale, int first_position) {
  const int n = static_cast<int>(x.rows()), half = static_cast<int>(theta.size());
  for (int m = 0; m < half; ++m)
    for (int p = 0; p < n; ++p) {
      const double a = double(first_position + p) * theta[m];
      const double c = std::cos(a) * mscale, s = std::sin(a) * mscale;
      const double x1 = x(p, m), x2 = x(p, m + half);
      x(p, m) = static_cast<float>(x1 * c - x2 * s);
      x(p, m + half) = static_cast<float>(x1 * s + x2 * c);
    }
}

std::vector<double> alibi_slopes(int n_heads) {
  auto power_of_two = [](int h) {
    std::vector<double> s;
    for (int k = 1; k <= h; ++k) s.push_back(std::pow(2.0, -8.0 * k / h));
    return s;
  };
  if (n_heads <= 0) return {};
  const int n = 1 << static_cast<int>(std::floor(std::log2(n_heads)));
  std::vector<double> slopes = power_of_two(n);
  if (n == n_heads) return slopes;
  const std::vector<double> extra = power_of_two(2 * n);
  for (int k = 0; static_cast<int>(slopes.size()) < n_heads; k += 2) slopes.push_back(extra[k]);
  return slopes;
}

int t5_bucket(int relative_position, bool bidirectional, int num_buckets, int max_distance) {
  int bucket = 0;
  int n;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    n = std::abs(relative_position);
  } else {
    n = std::max(-relative_position, 0);
  }
  // half the buckets for exact distances, the rest logarithmic up to max_distance
  const int max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  // validate() keeps max_exact >= 1 and max_distance > max_exact; the clamps keep any other
  // input inside the table (no NaN or overflow reaches the integer conversion)
  if (max_exact < 1 || max_distance <= max_exact) return bucket + std::max(0, num_buckets - 1);
  const double large = max_exact + std::log(static_cast<double>(n) / max_exact) /
                                       std::log(static_cast<double>(max_distance) / max_exact) *
                                       (num_buckets - max_exact);
  return bucket + static_cast<int>(std::clamp(large, double(max_exact), double(num_buckets - 1)));
}

Matrix t5_bias_table(std::uint64_t seed, int num_buckets, int n_heads) {
  Matrix t(num_buckets, n_heads);
  fill_normal(stream_key(seed, "positional.t5"), 1.0f, {t.data(), static_cast<std::size_t>(t.size())});
  return t;
}

std::vector<float> relative_bias(const Session::Positional& p, std::uint64_t seed, int head, int n_heads, int n_q,
                                 int n_k) {
  std::vector<float> bias;
  if (p.kind == PositionalKind::alibi) {
    // -m |i - j|: the paper's -m (i - j) for keys before the query, mirrored for keys after it
    // (bidirectional use); a causal mask hides the mirrored half anyway.
    const double m = alibi_slopes(n_heads)[head];
    bias.resize(n_q + n_k - 1);
    for (int r = -(n_q - 1); r <= n_k - 1; ++r) bias[r + n_q - 1] = static_cast<float>(-m * std::abs(r));
  } else if (p.kind == PositionalKind::t5) {
    const Matrix table = t5_bias_table(seed, p.t5_num_buckets, n_heads);
    bias.resize(n_q + n_k - 1);
    for (int r = -(n_q - 1); r <= n_k - 1; ++r)
      bias[r + n_q - 1] = table(t5_bucket(r, p.t5_bidirectional, p.t5_num_buckets, p.t5_max_distance), head);
  }
  return bias;
}

}  // namespace attnlab
