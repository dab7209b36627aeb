// One head's computation as a sequence of steps, for the step-by-step pipeline view: each step
// is a matrix with its name, formula and what its rows and columns are. Derived from a Result
// (no recomputation of the layer), so every step is exactly what the Result holds.
#pragma once

#include <string>
#include <vector>

#include "present/export.hpp"
#include "pipeline.hpp"

namespace attnlab {

enum class Axis { queries, keys, dims };  // what a step's rows or columns index

struct Step {
  std::string id;       // "input", "q", "k", "v", "scores", "scaled", "biased", "masked", "weights", "context", "output"
  std::string title;    // "Q = X W_Q"
  std::string formula;  // a sentence: what happens and why
  Matrix values;
  Axis rows = Axis::queries, cols = Axis::dims;
  bool signed_values = true;  // draw with a diverging colormap around 0
};

// The steps of head `head` in layer `layer`:
//   input X -> Q, K, V -> scores -> scaled -> biased -> masked -> weights -> context (weights V)
//   -> output (the layer's concat(heads) W_O).
// scores: q k^T for dot and scaled_dot (q, k after RoPE); for other score functions the score
// itself (the logits minus the positional bias, -inf where masked). biased adds ALiBi / T5 bias
// on every cell; masked puts -inf where the mask forbids.
std::vector<Step> head_steps(const Result& r, int layer, int head);

// Labels along an axis: the query or key tokens as shown, or "d0", "d1", ... for dimensions.
std::vector<std::string> axis_labels(const Result& r, Axis a, int count);

// One step of one head as a labelled matrix, for export (CLI, window). False with a one-line
// reason when the layer, head or step id does not exist.
bool step_matrix(const Result& r, int layer, int head, const std::string& id, LabeledMatrix& out, std::string& error);

}  // namespace attnlab
