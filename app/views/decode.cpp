// Inference step by step: a prefill, then one token at a time - the new attention row of every
// head over the KV cache, and each layer's cache growing, evicting (sliding windows, StreamingLLM)
// and shared by GQA groups, with its memory. From the Result alone (analysis/decode.hpp).
#include <imgui.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <cmath>
#include <cstdio>
#include <string>

#include "background.hpp"
#include "analysis/decode.hpp"
#include "present/colormap.hpp"
#include "views/view.hpp"

namespace attnlab::app {
namespace {

std::string Bytes(double b) {
  char buf[32];
  if (b < 1024) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (b < 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f KB", b / 1024);
  else std::snprintf(buf, sizeof buf, "%.1f MB", b / (1024.0 * 1024));
  return buf;
}

void ShowDecodeWindow(AppState& st, Worker&) {
  if (!st.show_decode) return;
  const ImVec2 vp = ImGui::GetMainViewport()->Size;  // inside the window at 1024 x 768 too
  ImGui::SetNextWindowSize(ImVec2(std::min(760.0f, vp.x - 40), std::min(560.0f, vp.y - 120)), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowPos(ImVec2(std::max(20.0f, vp.x - 780), 80), ImGuiCond_FirstUseEver);
  PlaceLessonView(st, "decode");
  if (ImGui::Begin("Decode step by step###decode", &st.show_decode) && st.shown && st.shown->result) {
    const Snapshot& s = *st.shown;
    const Result& r = *s.result;
    if (DenseOnly(s, "the decode view")) {
      ImGui::End();
      return;
    }
    if (!r.key_tokens.empty()) {
      ImGui::TextWrapped("Cross-attention reads a fixed context: there is no cache growing token by token. Turn "
                         "cross-attention off to step through decoding.");
      ImGui::End();
      return;
    }
    auto& dc = st.decode;
    if (dc.generation != s.generation) {
      // a finished plan is taken; then one for this Result is started unless it is under way
      if (dc.pending.valid() && dc.pending.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        DecodePlan p = dc.pending.get();
        if (dc.pending_generation == s.generation) dc.plan = std::move(p), dc.generation = s.generation;
      }
      if (dc.generation != s.generation && !dc.pending.valid()) {
        dc.pending = std::async(std::launch::async, [res = s.result] {
          run_below_the_ui();
          return decode_plan(*res);
        });
        dc.pending_generation = s.generation;
      }
      if (dc.generation != s.generation) {
        ImGui::TextDisabled("reading every head's mask for the cache plan...");
        ImGui::End();
        return;
      }
    }
    const int n = static_cast<int>(r.tokens.size());
    if (dc.prefill <= 0) dc.prefill = std::max(1, n / 2);
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10);
    ImGui::SliderInt("prefill##decode", &dc.prefill, 1, n);
    RecordWidget(st, "decode.prefill");
    dc.prefill = std::clamp(dc.prefill, 1, n);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6);
    if (ImGui::InputInt("chunk##decode", &dc.chunk)) dc.step = 0;
    RecordWidget(st, "decode.chunk");
    dc.chunk = std::clamp(dc.chunk, 1, n);
    ImGui::SameLine();
    if (ImGui::Button("< step##decode")) dc.step = std::max(0, dc.step - 1);
    RecordWidget(st, "decode.back");
    ImGui::SameLine();
    if (ImGui::Button("step >##decode")) dc.step = std::min((n - dc.prefill + dc.chunk - 1) / dc.chunk, dc.step + 1);
    RecordWidget(st, "decode.next");
    ImGui::SameLine();
    if (ImGui::Button("restart##decode")) dc.step = 0;
    dc.step = std::clamp(dc.step, 0, (n - dc.prefill + dc.chunk - 1) / dc.chunk);
    const DecodeStep d = decode_step(r, dc.plan, dc.prefill, dc.step, dc.chunk);
    dc.last = d;
    if (!d.causal)
      ImGui::TextColored(ImVec4(1.0f, 0.7f, 0.3f, 1.0f),
                         "this mask lets rows read later keys: a decoder could not compute them one token at a time "
                         "(choose a causal mask); shown as if it could");
    const int q = d.query;
    if (d.step == 0)
      ImGui::TextWrapped("prefill: the first %d tokens in one pass (a %d x %d block of each head); their keys and values "
                         "fill the cache. Step to generate the next token.", d.prefill, d.prefill, d.prefill);
    else if (d.chunk > 1)
      ImGui::TextWrapped("chunk %d (chunked prefill): rows %d..%d, %d queries, read keys 0..%d - fewer queries than "
                         "keys, aligned to the bottom right: row r reads the keys up to r", d.step, d.first, q,
                         q - d.first + 1, q);
    else
      ImGui::TextWrapped("step %d: token %d \"%s\" is the new query; its row reads the cache below (%d of %d tokens "
                         "generated)", d.step, q, st.labels[q].c_str(), d.step, n - d.prefill);
    // the new row of every head of the chosen layer, over keys 0..q
    const int l = std::clamp(st.layer, 0, r.n_layers() - 1);
    const auto& map = colormap(s.display.colormap);
    const float avail = ImGui::GetContentRegionAvail().x - ImGui::GetFontSize() * 5;
    const float cell = std::clamp(avail / float(q + 1), 1.0f, ImGui::GetFontSize() * 1.6f);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const int first_row = d.step > 0 ? std::max(d.first, q - 7) : q;  // a chunk: its last 8 rows at most
    ImGui::Text(first_row < q ? "layer %d: the chunk's rows of each head (weights)" : "layer %d: the new row of each head (weights)", l);
    const ImVec2 rows0 = ImGui::GetCursorScreenPos();
    const auto& heads = r.layers[l].heads;
    for (std::size_t h = 0; h < heads.size(); ++h)
    for (int row = first_row; row <= q; ++row) {
      const int q = row;  // the row drawn
      const ImVec2 o = ImGui::GetCursorScreenPos();
      if (q == first_row) ImGui::Text("h%zu", h);
      else ImGui::TextUnformatted(" ");
      const float x0 = o.x + ImGui::GetFontSize() * 2.5f;
      float top = 0;
      for (int k = 0; k <= q; ++k) {
        const float w = heads[h].weights(q, k);
        top = std::max(top, w);
      }
      for (int k = 0; k <= q; ++k) {
        const float w = heads[h].weights(q, k);
        const bool allowed = (*heads[h].allowed)(q, k);
        const auto& c = map.rgb[static_cast<std::size_t>(std::clamp(top > 0 ? w / top : 0.0f, 0.0f, 1.0f) * 255)];
        const ImU32 col = allowed ? IM_COL32(int(c[0] * 255), int(c[1] * 255), int(c[2] * 255), 255) : IM_COL32(60, 60, 66, 255);
        dl->AddRectFilled(ImVec2(x0 + k * cell, o.y + 1), ImVec2(x0 + (k + 1) * cell - (cell > 4 ? 1 : 0), o.y + ImGui::GetFontSize()),
                          col);
      }
    }
    st.widgets["decode.rows"] = ImVec4(rows0.x, rows0.y, ImGui::GetContentRegionAvail().x, ImGui::GetCursorScreenPos().y - rows0.y);
    // the cache of every layer: kept, evicted, the new token's own entry; GQA groups
    ImGui::Separator();
    ImGui::TextUnformatted("KV cache per layer (F32 keys and values, as attnlab keeps them; bf16 halves it)");
    const ImU32 kept = IM_COL32(64, 170, 160, 255), evicted = IM_COL32(70, 70, 76, 255), fresh = IM_COL32(240, 200, 80, 255);
    const ImVec2 cache0 = ImGui::GetCursorScreenPos();
    for (std::size_t li = 0; li < d.layers.size(); ++li) {
      const DecodeLayer& L = d.layers[li];
      const ImVec2 o = ImGui::GetCursorScreenPos();
      ImGui::Text("L%zu", li);
      const float x0 = o.x + ImGui::GetFontSize() * 2.5f;
      for (int k = 0; k <= q; ++k)
        dl->AddRectFilled(ImVec2(x0 + k * cell, o.y + 1), ImVec2(x0 + (k + 1) * cell - (cell > 4 ? 1 : 0), o.y + ImGui::GetFontSize()),
                          L.state[k] == 2 ? fresh : L.state[k] == 1 ? kept : evicted);
      std::string groups;
      for (int g = 0; g < L.kv_heads; ++g) {
        groups += (g ? "  " : "") + std::string("kv") + std::to_string(g) + ":";
        for (std::size_t h = 0; h < L.group.size(); ++h)
          if (L.group[h] == g) groups += " h" + std::to_string(h);
      }
      ImGui::Text("     %d kept, %d evicted   %d K/V head%s (%s)   %s%s", L.kept, L.evicted, L.kv_heads,
                  L.kv_heads == 1 ? "" : "s", groups.c_str(), Bytes(L.bytes).c_str(),
                  L.evicted ? (" of " + Bytes(L.bytes_full) + " without eviction").c_str() : "");
    }
    st.widgets["decode.cache"] = ImVec4(cache0.x, cache0.y, ImGui::GetContentRegionAvail().x, ImGui::GetCursorScreenPos().y - cache0.y);
    double total = 0;
    for (const DecodeLayer& L : d.layers) total += L.bytes;
    ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kept), "kept");
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.6f, 0.6f, 0.65f, 1.0f), "evicted (no later row reads it)");
    ImGui::SameLine();
    ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(fresh), "the new token's");
    ImGui::Text("cache in all: %s over %zu layer%s", Bytes(total).c_str(), d.layers.size(), d.layers.size() == 1 ? "" : "s");
    ImGui::TextDisabled("chunked prefill: queries fewer than keys read the cache aligned to its end (bottom-right), "
                        "as the mask preset bottom_right_causal writes it");
  }
  ImGui::End();
}

}  // namespace

extern const View kDecodeView{"decode", "View", "Decode step by step", &AppState::show_decode, false, nullptr,
    [](AppState& st, const ViewContext& c) { ShowDecodeWindow(st, c.worker); },
    [](const AppState& st, nlohmann::json& j) {
      const DecodeStep& d = st.decode.last;
      nlohmann::json layers = nlohmann::json::array();
      for (const DecodeLayer& L : d.layers)
        layers.push_back({{"kept", L.kept}, {"evicted", L.evicted}, {"kv_heads", L.kv_heads}, {"bytes", L.bytes}});
      j["decode"] = {{"prefill", d.prefill}, {"step", d.step}, {"chunk", d.chunk}, {"first", d.first}, {"query", d.query},
                     {"causal", d.causal}, {"layers", layers}};
    }};

}  // namespace attnlab::app
