#include "render/window_fonts.hpp"

#include <imgui.h>
#include <stb/stb_truetype.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "present/fonts.hpp"
#include "core/utf8.hpp"

namespace attnlab::app {

namespace {

// stand-ins: private-use code points of the BMP, from the top down, for code points above U+FFFF
std::mutex g_mu;
std::map<char32_t, char32_t> g_to_pua, g_from_pua;
char32_t g_next_pua = 0xF8FF;
constexpr char32_t kLowestPua = 0xE000;
constexpr std::size_t kMaxWanted = 6000;  // distinct extra glyphs in the atlas (each ~3 KB at 3x)

// The interface's own ranges (always there): Latin, Greek, Cyrillic, punctuation, arrows, math,
// the symbols that show whitespace tokens.
const ImWchar* base_ranges() {
  static ImVector<ImWchar> ranges;
  if (ranges.empty()) {
    ImFontGlyphRangesBuilder b;
    b.AddRanges(ImGui::GetIO().Fonts->GetGlyphRangesDefault());
    b.AddRanges(ImGui::GetIO().Fonts->GetGlyphRangesCyrillic());
    static const ImWchar extra[] = {0x0100, 0x024F, 0x0370, 0x03FF, 0x2000, 0x206F, 0x2190, 0x21FF,
                                    0x2200, 0x22FF, 0x2300, 0x23FF, 0x2400, 0x243F, 0x25A0, 0x25FF, 0};
    b.AddRanges(extra);
    b.BuildRanges(&ranges);
  }
  return ranges.Data;
}

bool in_base(char32_t c) {
  for (const ImWchar* r = base_ranges(); r[0]; r += 2)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

}  // namespace

std::string to_ui(std::string_view utf8) {
  if (utf8_first_invalid(utf8)) return utf8_sanitize(utf8);
  bool any = false;
  for (unsigned char c : utf8) any |= c >= 0xF0;  // a 4-byte sequence: above U+FFFF
  if (!any) return std::string(utf8);
  std::lock_guard lock(g_mu);
  std::string out;
  out.reserve(utf8.size());
  for (const CodePoint& cp : utf8_decode(utf8)) {
    if (cp.value <= 0xFFFF) {
      out.append(utf8.substr(cp.begin, cp.end - cp.begin));
      continue;
    }
    auto it = g_to_pua.find(cp.value);
    if (it == g_to_pua.end()) {
      if (g_next_pua < kLowestPua) {  // stand-ins used up: the replacement character, as ImGui would
        out += "\uFFFD";
        continue;
      }
      it = g_to_pua.emplace(cp.value, g_next_pua).first;
      g_from_pua.emplace(g_next_pua--, cp.value);
    }
    out += utf8_encode(it->second);
  }
  return out;
}

std::string from_ui(std::string_view ui) {
  if (utf8_first_invalid(ui)) return std::string(ui);
  std::lock_guard lock(g_mu);
  if (g_from_pua.empty()) return std::string(ui);
  std::string out;
  out.reserve(ui.size());
  for (const CodePoint& cp : utf8_decode(ui)) {
    const auto it = cp.value >= kLowestPua && cp.value <= 0xF8FF ? g_from_pua.find(cp.value) : g_from_pua.end();
    if (it != g_from_pua.end()) out += utf8_encode(it->second);
    else out.append(ui.substr(cp.begin, cp.end - cp.begin));
  }
  return out;
}

void WindowFonts::need(std::string_view ui_text) {
  if (utf8_first_invalid(ui_text)) return;
  for (const CodePoint& cp : utf8_decode(ui_text)) {
    const char32_t c = cp.value;
    if (c < 0x20 || in_base(c) || wanted_.count(c) || wanted_.size() >= kMaxWanted) continue;
    wanted_.insert(c);
    if (!built_.count(c)) dirty_ = true;
  }
}

int WindowFonts::missing(std::string_view ui_text) const {
  int n = 0;
  const ImFont* font = ImGui::GetFont();
  if (!font || utf8_first_invalid(ui_text)) return 0;
  for (const CodePoint& cp : utf8_decode(ui_text))
    if (cp.value >= 0x20 && cp.value <= 0xFFFF && cp.value != 0x200D && !(cp.value >= 0xFE00 && cp.value <= 0xFE0F) &&
        !font->FindGlyphNoFallback(static_cast<ImWchar>(cp.value)))
      ++n;
  return n;
}

void WindowFonts::build(float px) {
  ImGuiIO& io = ImGui::GetIO();
  io.Fonts->Clear();
  built_.clear();
  dirty_ = false;
  const auto& fonts = label_fonts();
  std::error_code ec;
  if (fonts.empty() || !std::filesystem::exists(fonts[0].path, ec)) {  // Debian's ImGui asserts on a missing file
    std::fprintf(stderr, "attnlab: no label font (package fonts-dejavu-core); using the built-in font\n");
    io.Fonts->Build();
    return;
  }
  ImFontConfig base;
  base.FontDataOwnedByAtlas = false;
  ImFont* font = io.Fonts->AddFontFromMemoryTTF(const_cast<unsigned char*>(fonts[0].data.data()),
                                                static_cast<int>(fonts[0].data.size()), px, &base, base_ranges());
  // each wanted code point from the first font that has it; stand-ins (emoji) as custom glyphs
  std::map<int, ImVector<ImWchar>> ranges;  // font index -> ranges (kept alive until Build)
  std::map<int, std::vector<char32_t>> by_font;
  std::vector<std::pair<char32_t, char32_t>> custom;  // stand-in, real code point
  for (char32_t c : wanted_) {
    char32_t real = c;
    {
      std::lock_guard lock(g_mu);
      if (const auto it = g_from_pua.find(c); it != g_from_pua.end()) real = it->second;
    }
    const int k = font_for(real);
    if (k < 0) continue;
    if (real != c) custom.push_back({c, real});
    else by_font[k].push_back(c);
    built_.insert(c);
  }
  for (auto& [k, cps] : by_font) {
    ImFontGlyphRangesBuilder b;
    for (char32_t c : cps) b.AddChar(static_cast<ImWchar>(c));
    b.BuildRanges(&ranges[k]);
    ImFontConfig merge;
    merge.MergeMode = true;
    merge.FontDataOwnedByAtlas = false;
    io.Fonts->AddFontFromMemoryTTF(const_cast<unsigned char*>(fonts[k].data.data()), static_cast<int>(fonts[k].data.size()),
                                   px, &merge, ranges[k].Data);
  }
  // emoji and other code points above U+FFFF: rasterised here into custom rects of the atlas
  struct Rect {
    int id;
    char32_t real;
    int k, x0, y0;
  };
  std::vector<Rect> rects;
  // ImGui places a custom glyph from the top of the line: the baseline is DejaVu's ascent at px
  int ascent = 0, descent = 0, gap = 0;
  const auto* base_info = static_cast<const stbtt_fontinfo*>(fonts[0].info);
  stbtt_GetFontVMetrics(base_info, &ascent, &descent, &gap);
  const float baseline = std::round(ascent * stbtt_ScaleForPixelHeight(base_info, px));
  for (const auto& [pua, real] : custom) {
    const int k = font_for(real);
    const auto* info = static_cast<const stbtt_fontinfo*>(fonts[k].info);
    const float scale = stbtt_ScaleForPixelHeight(info, px);
    int x0, y0, x1, y1, adv, lsb;
    stbtt_GetCodepointBitmapBox(info, static_cast<int>(real), scale, scale, &x0, &y0, &x1, &y1);
    stbtt_GetCodepointHMetrics(info, static_cast<int>(real), &adv, &lsb);
    const int w = std::max(1, x1 - x0), h = std::max(1, y1 - y0);
    const int id = io.Fonts->AddCustomRectFontGlyph(font, static_cast<ImWchar>(pua), w, h, adv * scale,
                                                    ImVec2(static_cast<float>(x0), baseline + static_cast<float>(y0)));
    rects.push_back({id, real, k, x0, y0});
  }
  io.Fonts->Build();
  if (rects.empty()) return;
  unsigned char* pixels = nullptr;
  int tex_w = 0, tex_h = 0;
  io.Fonts->GetTexDataAsAlpha8(&pixels, &tex_w, &tex_h);
  for (const Rect& r : rects) {
    const ImFontAtlasCustomRect* cr = io.Fonts->GetCustomRectByIndex(r.id);
    if (!cr || !cr->IsPacked()) continue;
    const auto* info = static_cast<const stbtt_fontinfo*>(fonts[r.k].info);
    const float scale = stbtt_ScaleForPixelHeight(info, px);
    stbtt_MakeCodepointBitmap(info, pixels + cr->Y * tex_w + cr->X, cr->Width, cr->Height, tex_w, scale, scale,
                              static_cast<int>(r.real));
  }
}

}  // namespace attnlab::app
