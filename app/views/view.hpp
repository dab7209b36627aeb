// A view of the window: its id, menu entry and open flag, what the worker prepares for it from
// the Result (figure panels, which the PNG export draws too), how it draws, and what it adds to
// the state dump. Every view is one file in app/views/ defining its descriptor; registry.cpp
// lists them, and that list gives the menu order, the --view ids, the lesson view ids and the
// state dump's "windows" keys.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "present/figure.hpp"
#include "ui.hpp"

namespace attnlab::app {

struct ViewContext {
  Worker& worker;
  Worker& worker_b;  // compare's session B
  const HeatmapRenderer& renderer;
};

struct View {
  const char* id;     // --view, lesson "view", state dump windows.<id>, menu widget menu.view.<id>
  const char* menu;   // "View" or "Help"
  const char* label;  // the menu item
  bool AppState::*open;
  bool separator_before = false;  // a menu separator above the item
  // Prepared on the worker thread from the Result alone (null: the view draws from the Result
  // or the head textures directly).
  std::vector<FigurePanel> (*prepare)(const Result&, const DisplayOptions&) = nullptr;
  void (*draw)(AppState&, const ViewContext&) = nullptr;
  void (*dump)(const AppState&, nlohmann::json&) = nullptr;  // the view's state-dump keys
};

// A view that needs dense matrices, shown a long sequence (a field): says so in its window (what
// to do instead) and returns true.
bool DenseOnly(const Snapshot& s, const char* what);

const std::vector<const View*>& views();  // menu order
const View* find_view(std::string_view id);
std::vector<std::string> view_ids();

// The prepared images of view `id` in a snapshot, and their textures (empty until uploaded).
const std::vector<ImageData>& ViewImages(const Snapshot& s, const std::string& id);
const std::vector<Heatmap>& ViewTextures(const AppState& st, const std::string& id);

}  // namespace attnlab::app
