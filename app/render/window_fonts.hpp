// The window's font atlas. DejaVu Sans holds the ranges the interface needs; the glyphs that the
// texts on screen need beyond them (Chinese, Japanese, Korean, Devanagari, ...) are merged in
// from the fallback fonts of engine/present/fonts.hpp, and the atlas is rebuilt, between frames, when
// a text brings a code point it lacks. Dear ImGui 1.86 stores characters in 16 bits, so a code
// point above U+FFFF (emoji) would become U+FFFD in any text it displays or edits: such code
// points travel through the interface as private-use stand-ins (to_ui / from_ui), drawn with
// their real glyph and turned back before anything leaves the window (session text, clipboard).
#pragma once

#include <set>
#include <string>
#include <string_view>

namespace attnlab::app {

// Text for ImGui: every code point above U+FFFF replaced by its stand-in (allocated once,
// from U+F8FF down), and back. Both are identities on text without such code points.
std::string to_ui(std::string_view utf8);
std::string from_ui(std::string_view ui);

class WindowFonts {
 public:
  // A text that will be drawn (as given to ImGui, after to_ui): its code points are wanted.
  void need(std::string_view ui_text);
  bool dirty() const { return dirty_; }
  // Rebuilds the atlas at `px` (call between frames, then recreate the GL font texture).
  void build(float px);
  // Code points of `ui_text` that the current atlas cannot draw (drawn as '?').
  int missing(std::string_view ui_text) const;

 private:
  std::set<char32_t> wanted_;  // beyond the base ranges
  std::set<char32_t> built_;   // in the atlas now
  bool dirty_ = true;
};

}  // namespace attnlab::app
