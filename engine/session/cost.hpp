// What a session costs before it is computed: arithmetic, random draws for its seeded weights,
// and memory on each path that holds it (compute, export, render, the window). validate()
// refuses a session above the limits with the figures, so nothing starts that would run for
// minutes or be killed for memory; below them, long computations show progress and can be
// cancelled. The models are upper bounds written from the code (comments give each term).
#pragma once

#include <string>

#include "session/session.hpp"

namespace attnlab {

struct Cost {
  double flops = 0;         // arithmetic of the whole computation
  double draws = 0;         // normal draws for the seeded weights and embeddings
  double weight_bytes = 0;  // the seeded weights of every layer
  double result_bytes = 0;  // what the Result holds
  double peak_bytes = 0;    // the Result plus the largest buffers alive while computing it
  double seconds() const;   // at a conservative rate for this 2-core machine class
};

// Where a Result goes after it is computed, each holding more beside it.
enum class CostUse {
  compute,        // the Result alone (CLI compute streams its JSON)
  export_matrix,  // + one head's pipeline steps and the encoded file
  render,         // + the figure's panels (copies of every head of a layer) and the raster
  window,         // + textures per head (pooled to 1024^2), their GL copies, and the mask views
};

// n_q, n_k: the token counts (validate() has them); metrics: per-head metrics and similarity.
Cost estimate_cost(const Session& s, int n_q, int n_k, bool metrics = true);
double bytes_for(const Session& s, const Cost& c, int n_q, int n_k, CostUse use);

// Limits: a computation of more than this many estimated seconds is refused...
inline constexpr double kMaxComputeSeconds = 60;
// ... and so is one that would need more than this much memory: 6 GiB, or 60 % of the physical
// memory when that is less.
// The user may set another (the window's Preferences, the CLI's --memory-budget); 0 restores it.
double memory_budget_bytes();
double default_memory_budget_bytes();
void set_memory_budget_bytes(double bytes);
double physical_memory_bytes();  // 0 when unknown

// "" when the session fits, else the reason with the figures and what to change.
std::string budget_problem(const Session& s, int n_q, int n_k, CostUse use, bool metrics = true);

std::string human_bytes(double bytes);  // "6.4 GB", "512 MB"

}  // namespace attnlab
