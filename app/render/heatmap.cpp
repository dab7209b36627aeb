#include "heatmap.hpp"

#include <glad/gl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace attnlab::app {

namespace {

// One triangle covering the viewport; the fragment shader reads cell (x, y) = gl_FragCoord, so
// row r of the uploaded values is row r of the colour texture (drawn at the top by ImGui::Image).
const char* kVertex = R"(#version 330 core
void main() {
  vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2);
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
)";

const char* kFragment = R"(#version 330 core
out vec4 color;
uniform sampler2D values;   // RG32F: r = value, g = allowed
uniform sampler2D lut;      // 256 x 1 colormap
uniform float vmin;
uniform float vmax;
void main() {
  vec2 cell = texelFetch(values, ivec2(gl_FragCoord.xy), 0).rg;
  if (cell.g < 0.5) { color = vec4(0.0); return; }
  float t = clamp((cell.r - vmin) / max(vmax - vmin, 1e-20), 0.0, 1.0);
  color = vec4(texture(lut, vec2((t * 255.0 + 0.5) / 256.0, 0.5)).rgb, 1.0);
}
)";

unsigned compile(unsigned type, const char* src) {
  unsigned s = glCreateShader(type);
  glShaderSource(s, 1, &src, nullptr);
  glCompileShader(s);
  int ok = 0;
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    char log[1024];
    glGetShaderInfoLog(s, sizeof log, nullptr, log);
    std::fprintf(stderr, "attnlab: heatmap shader: %s\n", log);
    glDeleteShader(s);
    return 0;
  }
  return s;
}

}  // namespace

bool HeatmapRenderer::init() {
  unsigned vs = compile(GL_VERTEX_SHADER, kVertex), fs = compile(GL_FRAGMENT_SHADER, kFragment);
  if (!vs || !fs) return false;
  program_ = glCreateProgram();
  glAttachShader(program_, vs);
  glAttachShader(program_, fs);
  glLinkProgram(program_);
  glDeleteShader(vs);
  glDeleteShader(fs);
  int ok = 0;
  glGetProgramiv(program_, GL_LINK_STATUS, &ok);
  if (!ok) {
    std::fprintf(stderr, "attnlab: heatmap shader failed to link\n");
    return false;
  }
  glGenVertexArrays(1, &vao_);
  for (const auto& map : colormaps()) {
    unsigned t = 0;
    glGenTextures(1, &t);
    glBindTexture(GL_TEXTURE_2D, t);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB32F, static_cast<int>(map.rgb.size()), 1, 0, GL_RGB, GL_FLOAT,
                 map.rgb.data());
    luts_.emplace_back(std::string(map.name), t);
  }
  return true;
}

unsigned HeatmapRenderer::lut(std::string_view name) const {
  for (const auto& [n, t] : luts_)
    if (n == name) return t;
  return luts_.front().second;
}

HeatmapRenderer::~HeatmapRenderer() {
  if (program_) glDeleteProgram(program_);
  for (auto& [n, t] : luts_) glDeleteTextures(1, &t);
  if (vao_) glDeleteVertexArrays(1, &vao_);
}

Heatmap::Heatmap(Heatmap&& o) noexcept { *this = std::move(o); }

Heatmap& Heatmap::operator=(Heatmap&& o) noexcept {
  if (this != &o) {
    release();
    std::swap(values_, o.values_);
    std::swap(color_, o.color_);
    std::swap(fbo_, o.fbo_);
    std::swap(w_, o.w_);
    std::swap(h_, o.h_);
  }
  return *this;
}

Heatmap::~Heatmap() { release(); }

void Heatmap::release() {
  if (fbo_) glDeleteFramebuffers(1, &fbo_);
  if (values_) glDeleteTextures(1, &values_);
  if (color_) glDeleteTextures(1, &color_);
  fbo_ = values_ = color_ = 0;
  w_ = h_ = 0;
}

void Heatmap::update(const HeatmapRenderer& r, int width, int height, const std::vector<float>& rg, float vmin,
                     float vmax, std::string_view colormap_name) {
  // Save the state ImGui's renderer relies on (before any binding below), restore at the end.
  int prev_fbo = 0, prev_viewport[4], prev_program = 0, prev_vao = 0, prev_active = 0, prev_tex = 0;
  glGetIntegerv(GL_FRAMEBUFFER_BINDING, &prev_fbo);
  glGetIntegerv(GL_VIEWPORT, prev_viewport);
  glGetIntegerv(GL_CURRENT_PROGRAM, &prev_program);
  glGetIntegerv(GL_VERTEX_ARRAY_BINDING, &prev_vao);
  glGetIntegerv(GL_ACTIVE_TEXTURE, &prev_active);
  glGetIntegerv(GL_TEXTURE_BINDING_2D, &prev_tex);
  const bool blend = glIsEnabled(GL_BLEND), scissor = glIsEnabled(GL_SCISSOR_TEST);

  if (width != w_ || height != h_ || !fbo_) {
    release();
    w_ = width;
    h_ = height;
    glGenTextures(1, &values_);
    glGenTextures(1, &color_);
    glGenFramebuffers(1, &fbo_);
    glBindTexture(GL_TEXTURE_2D, color_);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w_, h_, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    // nearest: a cell stays a crisp square however large it is drawn
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo_);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, color_, 0);
  }
  glBindTexture(GL_TEXTURE_2D, values_);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RG32F, w_, h_, 0, GL_RG, GL_FLOAT, rg.data());
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);

  glBindFramebuffer(GL_FRAMEBUFFER, fbo_);
  glViewport(0, 0, w_, h_);
  glDisable(GL_BLEND);
  glDisable(GL_SCISSOR_TEST);
  glUseProgram(r.program());
  glActiveTexture(GL_TEXTURE0);
  glBindTexture(GL_TEXTURE_2D, values_);
  glActiveTexture(GL_TEXTURE1);
  glBindTexture(GL_TEXTURE_2D, r.lut(colormap_name));
  glUniform1i(glGetUniformLocation(r.program(), "values"), 0);
  glUniform1i(glGetUniformLocation(r.program(), "lut"), 1);
  glUniform1f(glGetUniformLocation(r.program(), "vmin"), vmin);
  glUniform1f(glGetUniformLocation(r.program(), "vmax"), vmax);
  glBindVertexArray(r.vao());
  glDrawArrays(GL_TRIANGLES, 0, 3);

  glBindFramebuffer(GL_FRAMEBUFFER, prev_fbo);
  glViewport(prev_viewport[0], prev_viewport[1], prev_viewport[2], prev_viewport[3]);
  glUseProgram(prev_program);
  glBindVertexArray(prev_vao);
  glActiveTexture(prev_active);
  glBindTexture(GL_TEXTURE_2D, prev_tex);
  if (blend) glEnable(GL_BLEND);
  if (scissor) glEnable(GL_SCISSOR_TEST);
}

void Heatmap::update_on_cpu(int width, int height, const std::vector<float>& rg, float vmin, float vmax,
                            std::string_view colormap_name) {
  const auto& lut = colormap(colormap_name).rgb;
  const int last = static_cast<int>(lut.size()) - 1;
  std::vector<std::uint8_t> rgba(4 * std::size_t(width) * height, 0);
  const float span = std::max(vmax - vmin, 1e-20f);
  for (std::size_t c = 0; c < std::size_t(width) * height; ++c) {
    if (rg[2 * c + 1] < 0.5f) continue;  // masked: transparent
    const float t = std::clamp((rg[2 * c] - vmin) / span, 0.0f, 1.0f) * float(last);
    const int a = std::min(static_cast<int>(t), last), b = std::min(a + 1, last);
    const float f = t - float(a);
    for (int k = 0; k < 3; ++k)
      rgba[4 * c + k] = static_cast<std::uint8_t>(std::lround(255.0f * (lut[a][k] + f * (lut[b][k] - lut[a][k]))));
    rgba[4 * c + 3] = 255;
  }
  int prev_tex = 0, prev_align = 4;
  glGetIntegerv(GL_TEXTURE_BINDING_2D, &prev_tex);
  glGetIntegerv(GL_UNPACK_ALIGNMENT, &prev_align);
  if (width != w_ || height != h_ || !color_ || fbo_) {
    release();
    w_ = width;
    h_ = height;
    glGenTextures(1, &color_);
    glBindTexture(GL_TEXTURE_2D, color_);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w_, h_, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);  // crisp cells, as update()'s
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  }
  glBindTexture(GL_TEXTURE_2D, color_);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
  glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w_, h_, GL_RGBA, GL_UNSIGNED_BYTE, rgba.data());
  glPixelStorei(GL_UNPACK_ALIGNMENT, prev_align);
  glBindTexture(GL_TEXTURE_2D, static_cast<unsigned>(prev_tex));
}

}  // namespace attnlab::app
