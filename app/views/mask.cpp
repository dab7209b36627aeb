// The mask in force (one pattern, or one per head under LSH), with the custom-mask painter.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "analysis/blocks.hpp"
#include "present/panels.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

// The side of the blocks: the user's, else 128 (FlashAttention's and FlexAttention's default)
// from 1024 tokens on, and for shorter texts the largest power of two with 8 blocks a side.
int BlockSide(const AppState& st, int n) {
  if (st.block_size > 0) return st.block_size;
  if (n >= 1024) return 128;
  int b = 1;
  while (b * 2 * 8 <= n) b *= 2;
  return b;
}

// The shown result's block map for head `e` (cached): from the field's rule, or the dense mask.
const BlockMap* Blocks(AppState& st, int e) {
  const Snapshot& s = *st.shown;
  const Result& r = *s.result;
  const int side = BlockSide(st, static_cast<int>(r.tokens.size()));
  auto& c = st.blocks;
  if (c.map && c.generation == s.generation && c.head == e && c.block == side) return c.map.get();
  c.map.reset();
  if (r.is_field()) {
    if (r.fields[0].rule) c.map = std::make_shared<const BlockMap>(block_map(*r.fields[0].rule, side, side));
  } else if (e < static_cast<int>(r.layers[0].heads.size()) && r.layers[0].heads[e].allowed) {
    c.map = std::make_shared<const BlockMap>(block_map(*r.layers[0].heads[e].allowed, side, side));
  }
  c.generation = s.generation, c.head = e, c.block = side;
  return c.map.get();
}

// The block map under the mask: full blocks, partial blocks, empty (skipped) ones, drawn as runs
// of one kind per block row (a 256 x 256 map of a band is a few rects a row), with the counts and
// what a block-sparse kernel saves.
void ShowBlockMap(AppState& st, int e, const ImVec2& size) {
  const Result& r = *st.shown->result;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
  int side = st.block_size;
  if (ImGui::InputInt("block (0: auto)##blocks", &side, 1, 16)) st.block_size = std::clamp(side, 0, 1 << 16);
  RecordWidget(st, "mask.block_size");
  const BlockMap* b = Blocks(st, e);
  if (!b) return;
  ImGui::SameLine();
  ImGui::Text("%d x %d blocks of %d", b->rows, b->cols, b->bq);
  const ImU32 full = IM_COL32(64, 170, 160, 255), partial = IM_COL32(230, 170, 60, 255),
              empty = st.light ? IM_COL32(235, 235, 235, 255) : IM_COL32(40, 40, 46, 255);
  const float cell = std::max(1.0f, std::min(size.x / b->cols, size.y / b->rows));
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  for (int i = 0; i < b->rows; ++i)
    for (int j = 0; j < b->cols;) {
      const BlockState k = b->at(i, j);
      int t = j + 1;
      while (t < b->cols && b->at(i, t) == k) ++t;
      dl->AddRectFilled(ImVec2(o.x + j * cell, o.y + i * cell), ImVec2(o.x + t * cell, o.y + (i + 1) * cell),
                        k == BlockState::full ? full : k == BlockState::partial ? partial : empty);
      j = t;
    }
  const ImVec2 map(cell * b->cols, cell * b->rows);
  ImGui::InvisibleButton("##blockmap", map);
  st.widgets["mask.blocks"] = ImVec4(o.x, o.y, map.x, map.y);
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetMousePos();
    const int i = std::clamp(int((m.y - o.y) / cell), 0, b->rows - 1), j = std::clamp(int((m.x - o.x) / cell), 0, b->cols - 1);
    const BlockState k = b->at(i, j);
    ImGui::SetTooltip("queries %d..%d x keys %d..%d: %s", i * b->bq, std::min(b->n_q, (i + 1) * b->bq) - 1, j * b->bk,
                      std::min(b->n_k, (j + 1) * b->bk) - 1,
                      k == BlockState::full ? "full (computed, no mask)" : k == BlockState::partial ? "partial (computed, then masked)" : "empty (skipped)");
  }
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(full), "full %lld", b->full);
  ImGui::SameLine();
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(partial), "partial %lld", b->partial);
  ImGui::SameLine();
  ImGui::Text("empty %lld", b->empty);
  ImGui::TextWrapped("a block-sparse kernel computes %.3g%% of the dense score FLOPs (saves %.3g%%); the mask allows %.3g%% "
                     "of the cells%s",
                     100.0 * (1.0 - b->saving()), 100.0 * b->saving(), 100.0 * double(b->allowed) / std::max(1.0, b->dense()),
                     r.is_field() ? ", and attnlab's field computes each 64-row block over its rows' key spans only" : "");
}

void ShowMaskWindow(AppState& st, Worker& worker) {
  if (!st.show_mask) return;
  ImGui::SetNextWindowSize(ImVec2(560, 620), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(ImGui::GetMainViewport()->Size.x - 580, 60), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "mask");
  if (ImGui::Begin("Mask###mask", &st.show_mask) && st.shown && st.shown->result && !ViewImages(*st.shown, "mask").empty()) {
    const Snapshot& s = *st.shown;
    const auto& masks = ViewImages(s, "mask");
    const int entries = static_cast<int>(masks.size());
    if (entries > 1) {  // LSH: each head hashes its own queries
      ImGui::SliderInt("head", &st.mask_head, 0, entries - 1);
      RecordWidget(st, "mask.head");
    }
    const int e = std::clamp(st.mask_head, 0, entries - 1);
    const auto& mask = st.session.attention.mask;
    const long long all = static_cast<long long>(masks[e].rows) * masks[e].pooled_r * masks[e].cols * masks[e].pooled_c;
    ImGui::Text("%s   density %.3g   %lld of %lld score computations", masks[e].title.c_str(), masks[e].density,
                masks[e].cells, s.result->is_field() ? static_cast<long long>(s.result->tokens.size()) * s.result->keys().size() : all);
    if (s.result->is_field()) ImGui::TextDisabled("%s", masks[e].caption.c_str());
    const bool custom = s.result->session.attention.mask.kind == MaskKind::custom;
    if (custom) ImGui::TextDisabled("paint: left button adds cells, right button erases (queries are rows)");
    const ImVec2 o = ImGui::GetCursorScreenPos(), whole = ImGui::GetContentRegionAvail();
    // the mask above, its block map below it (a third of the height)
    const float below = ImGui::GetFrameHeightWithSpacing() * 3 + ImGui::GetTextLineHeightWithSpacing() * 2;
    const ImVec2 avail(whole.x, std::max(40.0f, (whole.y - below) * 0.66f));
    ImVec4 cells;
    const auto [i, j] = DrawImage(st, masks[e], ViewTextures(st, "mask").at(e), o, avail, true, &cells);
    st.widgets["mask.view"] = cells;  // the cells themselves, for tests
    if (i >= 0 && s.result->is_field()) {  // an overview: a block of cells per texel
      const ImageData& m = masks[e];
      const int r0 = i * m.pooled_r, c0 = j * m.pooled_c;
      ImGui::SetTooltip("queries %d..%d -> keys %d..%d: %.4g of the block attended", r0,
                        std::min<int>(r0 + m.pooled_r, int(st.labels.size())) - 1, c0,
                        std::min<int>(c0 + m.pooled_c, int(st.key_labels.size())) - 1,
                        double(m.rg[2 * (std::size_t(i) * m.width + j)]));
    } else if (i >= 0) {
      const bool allowed = (*s.result->layers[0].heads[e].allowed)(i, j);
      ImGui::SetTooltip("query %d \"%s\" -> key %d \"%s\": %s", i, st.labels[i].c_str(), j, st.key_labels[j].c_str(),
                        allowed ? "attended" : "masked");
      if (custom) {
        // a stroke adds (left) or erases (right) every cell it passes over
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) st.paint = 1;
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Right)) st.paint = -1;
      }
    }
    if (!ImGui::IsMouseDown(ImGuiMouseButton_Left) && !ImGui::IsMouseDown(ImGuiMouseButton_Right)) st.paint = 0;
    if (custom && st.paint != 0 && i >= 0 && mask.kind == MaskKind::custom) {
      auto& cells = st.session.attention.mask.cells;
      const std::array<int, 2> cell{i, j};
      const auto it = std::find(cells.begin(), cells.end(), cell);
      if (st.paint > 0 && it == cells.end()) {
        cells.push_back(cell);
        Edited(st, worker);
      } else if (st.paint < 0 && it != cells.end()) {
        cells.erase(it);
        Edited(st, worker);
      }
    }
    ImGui::SetCursorScreenPos(ImVec2(o.x, o.y + avail.y + 4));
    ImGui::Separator();
    const ImVec2 rest = ImGui::GetContentRegionAvail();
    ShowBlockMap(st, e, ImVec2(rest.x, std::max(20.0f, rest.y - ImGui::GetTextLineHeightWithSpacing() * 5)));
  }
  ImGui::End();
}

}  // namespace

extern const View kMaskView{"mask", "View", "Mask", &AppState::show_mask, true,
    [](const Result& r, const DisplayOptions&) { return mask_panels(r, 0); },
    [](AppState& st, const ViewContext& c) { ShowMaskWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      if (!st.shown || !st.shown->result) return;
      std::vector<double> density;
      std::vector<long long> cells;
      for (const ImageData& m : ViewImages(*st.shown, "mask")) density.push_back(m.density), cells.push_back(m.cells);
      // the view closed (its pictures not prepared): the side panel's line, head 0's mask
      if (density.empty() && st.shown->mask_cells >= 0) density.push_back(st.shown->mask_density), cells.push_back(st.shown->mask_cells);
      if (!density.empty()) j["mask_density"] = density, j["mask_cells"] = cells;
      if (st.blocks.map && st.blocks.generation == st.shown->generation) {
        const BlockMap& b = *st.blocks.map;
        j["block_map"] = {{"block", b.bq}, {"rows", b.rows}, {"cols", b.cols}, {"full", b.full}, {"partial", b.partial},
                          {"empty", b.empty}, {"saving", b.saving()}};
      }
    }};

}  // namespace attnlab::app
