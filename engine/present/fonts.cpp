#include "present/fonts.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <stb/stb_truetype.h>

#include "core/utf8.hpp"

namespace attnlab {

namespace {

std::vector<std::string> candidate_paths() {
  std::vector<std::string> out = {ATTNLAB_FONT};
  const std::string list = ATTNLAB_FALLBACK_FONTS;  // '|'-separated, from CMake
  for (std::size_t at = 0; at < list.size();) {
    const std::size_t semi = std::min(list.find('|', at), list.size());
    if (semi > at) out.push_back(list.substr(at, semi - at));
    at = semi + 1;
  }
  return out;
}

struct Loaded {
  std::vector<LabelFont> fonts;
  std::vector<std::unique_ptr<stbtt_fontinfo>> infos;
  std::mutex mu;
  std::unordered_map<char32_t, int> cache;  // code point -> font index (-1: none)
};

Loaded& loaded() {
  static Loaded* l = [] {
    auto* out = new Loaded;
    for (const auto& path : candidate_paths()) {
      std::ifstream in(path, std::ios::binary);
      if (!in) continue;
      LabelFont f;
      f.path = path;
      f.data.assign(std::istreambuf_iterator<char>(in), {});
      auto info = std::make_unique<stbtt_fontinfo>();
      const int offset = f.data.empty() ? -1 : stbtt_GetFontOffsetForIndex(f.data.data(), 0);
      if (offset < 0 || !stbtt_InitFont(info.get(), f.data.data(), offset)) continue;
      out->fonts.push_back(std::move(f));
      out->infos.push_back(std::move(info));
    }
    // data moved into the vector: point each font at its info only now
    for (std::size_t k = 0; k < out->fonts.size(); ++k) {
      stbtt_InitFont(out->infos[k].get(), out->fonts[k].data.data(), stbtt_GetFontOffsetForIndex(out->fonts[k].data.data(), 0));
      out->fonts[k].info = out->infos[k].get();
    }
    return out;
  }();
  return *l;
}

bool same_shape(const stbtt_fontinfo* f, int a, int b) {
  stbtt_vertex *va = nullptr, *vb = nullptr;
  const int na = stbtt_GetGlyphShape(f, a, &va), nb = stbtt_GetGlyphShape(f, b, &vb);
  bool same = na == nb && na > 0;
  for (int i = 0; same && i < na; ++i)
    same = va[i].x == vb[i].x && va[i].y == vb[i].y && va[i].type == vb[i].type;
  stbtt_FreeShape(f, va);
  stbtt_FreeShape(f, vb);
  return same;
}

}  // namespace

const std::vector<LabelFont>& label_fonts() { return loaded().fonts; }

int font_for(char32_t cp) {
  Loaded& l = loaded();
  std::lock_guard lock(l.mu);
  if (const auto it = l.cache.find(cp); it != l.cache.end()) return it->second;
  int found = -1;
  for (std::size_t k = 0; k < l.infos.size() && found < 0; ++k) {
    const int g = stbtt_FindGlyphIndex(l.infos[k].get(), static_cast<int>(cp));
    // some fonts map code points they cannot draw to a copy of their missing-glyph box (Droid's
    // Hangul): a glyph shaped like glyph 0 counts as missing
    if (g != 0 && !same_shape(l.infos[k].get(), g, 0)) found = static_cast<int>(k);
  }
  l.cache.emplace(cp, found);
  return found;
}

std::vector<char32_t> missing_glyphs(std::string_view text) {
  std::vector<char32_t> out;
  for (const CodePoint& c : utf8_decode(text)) {
    const char32_t cp = c.value;
    // controls, spaces and joiners are not drawn; variation selectors modify the glyph before them
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x200D || cp == 0x200C ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x3000)
      continue;
    if (font_for(cp) < 0) out.push_back(cp);
  }
  return out;
}

}  // namespace attnlab
