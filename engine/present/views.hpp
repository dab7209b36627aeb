// What the window's mask and positional views show, computed by the engine (the app only draws).
#pragma once

#include <string>
#include <vector>

#include "attention/masks.hpp"
#include "pipeline.hpp"
#include "session/session.hpp"
#include "core/tensor.hpp"

namespace attnlab {

struct PositionalView {
  Matrix encoding;    // (n, d_model) added to the embeddings (sinusoidal, learned); else empty
  Matrix similarity;  // (n, n) similarity the encoding induces between positions; else empty:
                      //   sinusoidal/learned: cosine of encoding rows; rope: mean over pairs of
                      //   cos((p - q) theta_m), the score of one content vector at p against q
  Matrix rope_angles;          // (n, d_rot / 2) p theta_m mod 2 pi, rope only
  std::vector<Matrix> bias;    // per head (n, n) bias added to the logits (alibi, t5)
  std::vector<double> slopes;  // alibi slopes per head
};
// What the Result's positions were (Result::positions: a loaded model's own table or RoPE), and
// the relative biases of the session's heads (ALiBi, T5), for its n query tokens.
PositionalView positional_view(const Result& r);

struct GalleryEntry {
  MaskKind kind;
  MaskMatrix allowed;  // (n, n) with the session's parameters
};
// Every mask kind for n tokens with the session's parameters (and its causal flag where it
// applies). LSH needs a head's queries: `lsh_q` (n, d_head), or the kind is left out.
std::vector<GalleryEntry> mask_gallery(const Session& s, const std::vector<Token>& tokens, const Matrix* lsh_q);

}  // namespace attnlab
