#include "present/views.hpp"

#include <cmath>
#include <numbers>

#include "attention/positional.hpp"

namespace attnlab {

PositionalView positional_view(const Result& r) {
  PositionalView v;
  const Positions& pos = r.positions;
  const Session& s = r.session;
  // a field (long sequence): the first positions, as many as the table the Result keeps
  const int n = r.is_field() ? std::min<int>(static_cast<int>(r.tokens.size()), kFieldPositionalRows)
                             : static_cast<int>(r.tokens.size());
  auto cosine = [&](const Matrix& e) {
    Matrix unit = e;
    for (Eigen::Index i = 0; i < unit.rows(); ++i)
      if (const float norm = unit.row(i).norm(); norm > 0) unit.row(i) /= norm;
    return Matrix(unit * unit.transpose());
  };
  switch (pos.kind) {
    case PositionalKind::sinusoidal:
    case PositionalKind::learned:
      v.encoding = pos.table;
      if (v.encoding.size()) v.similarity = cosine(v.encoding);
      break;
    case PositionalKind::rope: {
      const int d_rot = rope_dims(r.d_head, pos.rope_fraction), half = d_rot / 2;
      v.rope_angles.resize(n, half);
      std::vector<double> theta(half);
      for (int m = 0; m < half; ++m) theta[m] = std::pow(pos.rope_base, -2.0 * m / d_rot);
      for (int q = 0; q < n; ++q)
        for (int m = 0; m < half; ++m)
          v.rope_angles(q, m) = static_cast<float>(std::fmod(q * theta[m], 2 * std::numbers::pi));
      v.similarity.resize(n, n);
      for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b) {
          double sum = 0;
          for (int m = 0; m < half; ++m) sum += std::cos((a - b) * theta[m]);
          v.similarity(a, b) = half ? static_cast<float>(sum / half) : 1.0f;
        }
      break;
    }
    case PositionalKind::alibi:
    case PositionalKind::t5: {
      const auto& p = s.positional;
      if (p.kind == PositionalKind::alibi) v.slopes = alibi_slopes(s.model.n_heads);
      for (int h = 0; h < s.model.n_heads; ++h) {
        const auto rel = relative_bias(p, s.model.seed, h, s.model.n_heads, n, n);
        Matrix b(n, n);
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) b(i, j) = rel[j - i + n - 1];
        v.bias.push_back(std::move(b));
      }
      break;
    }
    case PositionalKind::none: break;
  }
  return v;
}

std::vector<GalleryEntry> mask_gallery(const Session& s, const std::vector<Token>& tokens, const Matrix* lsh_q) {
  std::vector<GalleryEntry> out;
  const int n = static_cast<int>(tokens.size());
  for (std::size_t k = 0; k < option("attention.mask.kind").choices.size(); ++k) {
    MaskSpec spec = s.attention.mask;
    spec.kind = static_cast<MaskKind>(k);
    if (spec.kind == MaskKind::lsh) {
      if (!lsh_q || spec.n_buckets % 2) continue;
      out.push_back({spec.kind, lsh_mask(*lsh_q, spec, s.model.seed, 0, 0)});
    } else {
      out.push_back({spec.kind, build_mask(spec, n, tokens, s.model.seed)});
    }
  }
  return out;
}

}  // namespace attnlab
