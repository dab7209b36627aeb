#include <imgui.h>
// Every view of the window, in menu order. A new view: its file in app/views/ (defining its
// descriptor) and a line here.
#include "views/view.hpp"

namespace attnlab::app {

extern const View kModelView, kPipelineView, kLinesView, kCompareView, kMaskView, kGalleryView, kPositionalView,
    kMetricsView, kFlashView, kDecodeView, kPatchingView, kLensView, kTrainingView, kHelpView;

const std::vector<const View*>& views() {
  static const std::vector<const View*> all = {&kModelView,   &kPipelineView,   &kLinesView,   &kCompareView,
                                               &kMaskView,    &kGalleryView,    &kPositionalView,
                                               &kMetricsView, &kFlashView,      &kDecodeView,   &kPatchingView, &kLensView, &kTrainingView,
                                               &kHelpView};
  return all;
}

const View* find_view(std::string_view id) {
  for (const View* v : views())
    if (id == v->id) return v;
  return nullptr;
}

std::vector<std::string> view_ids() {
  std::vector<std::string> out;
  for (const View* v : views()) out.push_back(v->id);
  return out;
}

const std::vector<ImageData>& ViewImages(const Snapshot& s, const std::string& id) {
  static const std::vector<ImageData> none;
  const auto it = s.views.find(id);
  return it == s.views.end() ? none : it->second;
}

const std::vector<Heatmap>& ViewTextures(const AppState& st, const std::string& id) {
  static const std::vector<Heatmap> none;
  const auto it = st.tex.views.find(id);
  return it == st.tex.views.end() ? none : it->second;
}

bool DenseOnly(const Snapshot& s, const char* what) {
  if (!s.result || !s.result->is_field()) return false;
  ImGui::TextWrapped("%s needs the dense matrices of up to %d tokens; this text has %zu, computed as an attention field. "
                     "Open a head and select a span to see any block of it exactly, or shorten the text.",
                     what, kDenseMaxTokens, s.result->tokens.size());
  return true;
}

}  // namespace attnlab::app
