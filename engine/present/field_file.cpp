#include "present/field_file.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "session/session.hpp"

namespace attnlab {

namespace {
struct Piece {
  std::string name;
  std::vector<std::int64_t> shape;
  const void* data;
  std::size_t count;
  int bytes = 4;  // per element: 4 F32, 2 F16
};
}  // namespace

bool write_field_safetensors(const Result& r, const Put& put) {
  if (!r.is_field()) return false;
  std::vector<Piece> pieces;
  auto add = [&](std::string name, const float* p, std::vector<std::int64_t> shape) {
    std::size_t count = 1;
    for (auto d : shape) count *= static_cast<std::size_t>(d);
    pieces.push_back({std::move(name), std::move(shape), p, count});
  };
  auto add_matrix = [&](const std::string& name, const Matrix& m) { add(name, m.data(), {m.rows(), m.cols()}); };
  nlohmann::json metrics = nlohmann::json::array();
  for (std::size_t l = 0; l < r.fields.size(); ++l) {
    const FieldLayer& L = r.fields[l];
    const std::string pre = "layers." + std::to_string(l);
    nlohmann::json lm = nlohmann::json::array();
    for (std::size_t h = 0; h < L.heads.size(); ++h) {
      const HeadField& f = L.heads[h];
      const std::string hp = pre + ".heads." + std::to_string(h);
      if (f.half) {  // a field above the memory budget holds q and k as F16: written as they are
        pieces.push_back({hp + ".q", {field_n_q(f), f.d_qk}, f.q16.data(), f.q16.size(), 2});
        pieces.push_back({hp + ".k", {field_n_k(f), f.d_qk}, f.k16.data(), f.k16.size(), 2});
      } else {
        add_matrix(hp + ".q", f.q);
        add_matrix(hp + ".k", f.k);
      }
      add_matrix(hp + ".v", f.v);
      add_matrix(hp + ".output", f.output);
      add(hp + ".row_max", f.row_max.data(), {std::int64_t(f.row_max.size())});
      add(hp + ".row_lse", f.row_lse.data(), {std::int64_t(f.row_lse.size())});
      add(hp + ".row_log_sum", f.row_log_sum.data(), {std::int64_t(f.row_log_sum.size())});
      if (!f.sink_weight.empty())  // the learned sink's share of each row (the row's weights sum to 1 - it)
        add(hp + ".sink_weight", f.sink_weight.data(), {std::int64_t(f.sink_weight.size())});
      add_matrix(hp + ".overview_max", f.overview_max);
      add_matrix(hp + ".overview_mean", f.overview_mean);
      const FieldMetrics& m = f.metrics;
      lm.push_back({{"entropy", m.entropy}, {"entropy_normalized", m.entropy_normalized}, {"mean_distance", m.mean_distance},
                    {"max_weight", m.max_weight}, {"first_token", m.first_token}, {"density", m.density},
                    {"sink_mass", m.sink_mass}, {"cells", f.cells}, {"kv_head", f.kv_head}});
    }
    metrics.push_back(lm);
    add_matrix(pre + ".output", L.output);
  }
  nlohmann::ordered_json header;
  std::size_t at = 0;
  for (const Piece& p : pieces) {
    header[p.name] = {{"dtype", p.bytes == 2 ? "F16" : "F32"}, {"shape", p.shape}, {"data_offsets", {at, at + p.bytes * p.count}}};
    at += p.bytes * p.count;
  }
  nlohmann::json tokens = nlohmann::json::array(), keys = nlohmann::json::array();
  for (const auto& t : r.tokens) tokens.push_back(t.text);
  for (const auto& t : r.key_tokens) keys.push_back(t.text);
  const HeadField& f0 = r.fields[0].heads[0];
  const FieldHeadSpec& s0 = r.fields[0].specs[0];
  auto dump = [](const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
  char alpha[32], temp[32], cap[32];
  std::snprintf(alpha, sizeof alpha, "%.9g", double(s0.alpha));
  std::snprintf(cap, sizeof cap, "%.9g", double(s0.softcap));
  std::snprintf(temp, sizeof temp, "%.9g", r.session.attention.normalizer.temperature);
  header["__metadata__"] = {{"format", "attnlab.field"},
                            {"version", "1"},
                            {"n_tokens", std::to_string(r.tokens.size())},
                            {"n_keys", std::to_string(r.keys().size())},
                            {"n_layers", std::to_string(r.fields.size())},
                            {"n_heads", std::to_string(r.n_heads())},
                            {"d_head", std::to_string(r.d_head)},
                            {"alpha", alpha},
                            {"softcap", cap},
                            {"temperature", temp},
                            {"mask", name(r.session.attention.mask.kind)},
                            {"positional", name(r.session.positional.kind)},
                            {"pool_rows", std::to_string(f0.fr)},
                            {"pool_cols", std::to_string(f0.fc)},
                            {"qk_dtype", f0.half ? "F16" : "F32"},
                            {"tokens", dump(tokens)},
                            {"key_tokens", dump(keys)},
                            {"metrics", dump(metrics)},
                            {"session", to_json(r.session)}};
  // per layer, the head-similarity matrix and the query rows it was taken over (when computed)
  nlohmann::json similarity = nlohmann::json::array();
  for (const LayerMetrics& m : r.metrics) {
    if (m.head_similarity.size() == 0) continue;
    nlohmann::json rows = nlohmann::json::array();
    for (Eigen::Index a = 0; a < m.head_similarity.rows(); ++a) {
      nlohmann::json row = nlohmann::json::array();
      for (Eigen::Index b = 0; b < m.head_similarity.cols(); ++b) row.push_back(m.head_similarity(a, b));
      rows.push_back(std::move(row));
    }
    similarity.push_back({{"rows", m.similarity_rows}, {"js", std::move(rows)}});
  }
  if (!similarity.empty()) header["__metadata__"]["head_similarity"] = dump(similarity);
  std::string h = dump(header);
  while ((h.size() + 8) % 8) h += ' ';  // the data starts 8-byte aligned
  std::uint64_t len = h.size();
  char le[8];
  for (int k = 0; k < 8; ++k) le[k] = static_cast<char>((len >> (8 * k)) & 0xff);
  if (!put(std::string_view(le, 8)) || !put(h)) return false;
  for (const Piece& p : pieces)  // little-endian floats (x86-64), in chunks
    for (std::size_t k = 0; k < p.count; k += 1 << 20) {
      const std::size_t c = std::min<std::size_t>(1 << 20, p.count - k);
      if (!put(std::string_view(static_cast<const char*>(p.data) + k * p.bytes, p.bytes * c))) return false;
    }
  return true;
}

}  // namespace attnlab
