#include "result_json.hpp"

#include <charconv>
#include <cmath>
#include <string>
#include <nlohmann/json.hpp>

namespace attnlab {

namespace {

void write_float(std::ostream& os, float x) {
  if (!std::isfinite(x)) {
    os << "null";
    return;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back exactly
  os.write(buf, end - buf);
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, end);
}

void write_matrix(std::ostream& os, const Matrix& m) {
  os << '[';
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    os << (i ? ",[" : "[");
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      if (j) os << ',';
      write_float(os, m(i, j));
    }
    os << ']';
  }
  os << ']';
}

void write_mask(std::ostream& os, const MaskMatrix& m) {
  os << '[';
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    os << (i ? ",[" : "[");
    for (Eigen::Index j = 0; j < m.cols(); ++j) os << (j ? "," : "") << (m(i, j) ? "true" : "false");
    os << ']';
  }
  os << ']';
}

}  // namespace

void write_result_json(std::ostream& os, const Result& r) {
  using nlohmann::json;
  const auto replace = json::error_handler_t::replace;
  os << "{\"format\":\"attnlab.result\",\"version\":1,\n\"session\":"
     << nlohmann::ordered_json::parse(to_json(r.session)).dump(-1) << ",\n\"tokens\":[";
  for (std::size_t i = 0; i < r.tokens.size(); ++i)
    os << (i ? "," : "") << json(r.tokens[i].text).dump(-1, ' ', false, replace);
  os << "],\n\"token_spans\":[";
  for (std::size_t i = 0; i < r.tokens.size(); ++i)
    os << (i ? "," : "") << '[' << r.tokens[i].begin << ',' << r.tokens[i].end << ']';
  os << "],\n\"key_tokens\":[";
  for (std::size_t i = 0; i < r.key_tokens.size(); ++i)
    os << (i ? "," : "") << json(r.key_tokens[i].text).dump(-1, ' ', false, replace);
  os << "],\n\"n_tokens\":" << r.tokens.size() << ",\"n_keys\":" << r.keys().size() << ",\"d_model\":" << r.session.model.d_model
     << ",\"n_heads\":" << r.session.model.n_heads << ",\"d_head\":" << r.d_head;
  if (!r.intervention.empty()) os << ",\"intervention\":" << json(r.intervention).dump();
  os << ",\n\"layers\":[";
  for (std::size_t l = 0; l < r.layers.size(); ++l) {
    const LayerResult& L = r.layers[l];
    os << (l ? ",\n" : "") << "{\"input\":";
    write_matrix(os, L.input);
    os << ",\n\"output\":";
    write_matrix(os, L.output);
    os << ",\n\"attention_input\":";
    write_matrix(os, L.attention_input);
    os << ",\n\"attention_output\":";
    write_matrix(os, L.attention_output);
    if (l < r.rollout.size()) {
      os << ",\n\"rollout\":";
      write_matrix(os, r.rollout[l]);
    }
    os << ",\n\"heads\":[";
    for (std::size_t h = 0; h < L.heads.size(); ++h) {
      const HeadResult& H = L.heads[h];
      os << (h ? ",\n" : "") << "{\"q\":";
      write_matrix(os, H.q);
      os << ",\"k\":";
      write_matrix(os, H.k);
      os << ",\"v\":";
      write_matrix(os, H.v);
      os << ",\n\"logits\":";
      write_matrix(os, H.logits);
      os << ",\n\"weights\":";
      write_matrix(os, H.weights);
      os << ",\n\"allowed\":";
      write_mask(os, *H.allowed);
      os << ",\n\"output\":";
      write_matrix(os, H.output);
      os << ",\"kv_head\":" << H.kv_head;
      if (H.approx) {
        os << ",\"approximation\":{\"kernel\":\"" << name(r.session.attention.kernel.kind)
           << "\",\"max_weight_error\":" << num(H.approx->max_weight_error)
           << ",\"output_error\":" << num(H.approx->output_error) << '}';
      }
      if (l < r.metrics.size()) {
        const HeadMetrics& m = r.metrics[l].heads[h];
        os << ",\"metrics\":{\"entropy\":" << num(m.entropy) << ",\"entropy_normalized\":"
           << num(m.entropy_normalized) << ",\"mean_distance\":" << num(m.mean_distance)
           << ",\"max_weight\":" << num(m.max_weight) << ",\"first_token\":" << num(m.first_token)
           << ",\"density\":" << num(m.density) << '}';
      }
      os << '}';
    }
    os << ']';
    if (l < r.metrics.size()) {
      os << ",\n\"head_similarity\":";
      write_matrix(os, r.metrics[l].head_similarity);
    }
    os << '}';
  }
  os << "]}\n";
}

}  // namespace attnlab
