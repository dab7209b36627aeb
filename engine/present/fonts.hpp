// The label fonts, shared by the CPU figure renderer and the window: DejaVu Sans first (Latin,
// Greek, Cyrillic, Arabic, Hebrew, symbols), then fallbacks from Debian for what it lacks
// (fonts-droid-fallback: Chinese, Japanese; fonts-nanum: Korean; fonts-lohit-deva: Devanagari;
// fonts-symbola: emoji and other symbols). A code point is drawn from the first font that has
// it; one that no font has is reported, never drawn as '?' silently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace attnlab {

struct LabelFont {
  std::string path;
  std::vector<unsigned char> data;  // the whole file (stb_truetype reads it in place)
  const void* info = nullptr;       // stbtt_fontinfo, owned by fonts.cpp
};

// The fonts found on this machine, in fallback order (loaded once, thread-safe).
const std::vector<LabelFont>& label_fonts();

// Index into label_fonts() of the first font with a glyph for `cp`, or -1.
int font_for(char32_t cp);

// The code points of `text` (valid UTF-8) that no label font can draw (controls and spaces aside).
std::vector<char32_t> missing_glyphs(std::string_view text);

}  // namespace attnlab
