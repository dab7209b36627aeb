// What each view shows, as figure panels computed from the Result alone. The window turns them
// into textures (app/worker.cpp) and the PNG export and `attnlab-cli render` draw them on the
// CPU (figure.hpp): one description of every view, two back ends.
#pragma once

#include <string>
#include <vector>

#include "pipeline.hpp"
#include "present/figure.hpp"

namespace attnlab {

// Token labels of the queries and of the keys (the context's in cross-attention).
std::vector<std::string> query_labels(const Result& r);
std::vector<std::string> key_labels(const Result& r);

// One head's weights (or logits) with its mask.
FigurePanel head_panel(const Result& r, int layer, int head, bool logits);
// The mask in force on a layer: one panel, or one per head when heads differ (LSH).
std::vector<FigurePanel> mask_panels(const Result& r, int layer);
// Every mask kind for these tokens with the session's parameters; none for cross-attention.
std::vector<FigurePanel> gallery_panels(const Result& r);
// The positions the Result used: encoding, similarity, RoPE angles, relative biases per head.
std::vector<FigurePanel> positional_panels(const Result& r);
// Per layer: head similarity (needs metrics), then attention rollout (self-attention).
std::vector<FigurePanel> similarity_panels(const Result& r);
std::vector<FigurePanel> rollout_panels(const Result& r);
// One head's pipeline, a panel per step (id = the step's id; caption = its formula).
std::vector<FigurePanel> step_panels(const Result& r, int layer, int head);

}  // namespace attnlab
