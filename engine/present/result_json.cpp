#include "present/result_json.hpp"

#include <charconv>
#include <type_traits>
#include <cmath>
#include <string>
#include <nlohmann/json.hpp>

namespace attnlab {

namespace {

// Numbers go through std::to_chars into one buffer handed on every megabyte: an std::ostream per
// number was a third of the CLI's time.
class Out {
 public:
  explicit Out(const Put& put) : put_(put) { buf_.reserve(kChunk + 4096); }
  Out& operator<<(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= kChunk) flush();
    return *this;
  }
  Out& operator<<(char c) {
    buf_ += c;
    return *this;
  }
  template <class Int>
  requires std::is_integral_v<Int> Out& operator<<(Int x) {
    char b[24];
    auto [end, ec] = std::to_chars(b, b + sizeof b, x);
    return *this << std::string_view(b, end - b);
  }
  void real(double x, bool single) {
    if (!std::isfinite(x)) {
      buf_ += "null";
      return;
    }
    char b[32];  // the shortest text that reads back exactly
    auto [end, ec] = single ? std::to_chars(b, b + sizeof b, static_cast<float>(x)) : std::to_chars(b, b + sizeof b, x);
    buf_.append(b, end - b);
  }
  bool flush() {
    if (ok_ && !buf_.empty()) ok_ = put_(buf_);
    buf_.clear();
    return ok_;
  }
  bool ok() const { return ok_; }

 private:
  static constexpr std::size_t kChunk = 1 << 20;
  const Put& put_;
  std::string buf_;
  bool ok_ = true;
};

void write_matrix(Out& os, const Matrix& m) {
  os << '[';
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    os << (i ? ",[" : "[");
    const float* row = m.row(i).data();
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      if (j) os << ',';
      os.real(row[j], true);
    }
    os << "]";
  }
  os << ']';
}

void write_mask(Out& os, const MaskMatrix& m) {
  os << '[';
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    os << (i ? ",[" : "[");
    for (Eigen::Index j = 0; j < m.cols(); ++j) os << (j ? (m(i, j) ? ",true" : ",false") : (m(i, j) ? "true" : "false"));
    os << "]";
  }
  os << ']';
}

std::string text(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool write_result_json(const Result& r, const Put& put) {
  Out os(put);
  os << "{\"format\":\"attnlab.result\",\"version\":1,\n\"session\":"
     << nlohmann::ordered_json::parse(to_json(r.session)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
     << ",\n\"tokens\":[";
  for (std::size_t i = 0; i < r.tokens.size(); ++i) os << (i ? "," : "") << text(r.tokens[i].text);
  os << "],\n\"token_spans\":[";
  for (std::size_t i = 0; i < r.tokens.size(); ++i) os << (i ? "," : "") << '[' << r.tokens[i].begin << ',' << r.tokens[i].end << ']';
  os << "],\n\"key_tokens\":[";
  for (std::size_t i = 0; i < r.key_tokens.size(); ++i) os << (i ? "," : "") << text(r.key_tokens[i].text);
  os << "],\n\"n_tokens\":" << r.tokens.size() << ",\"n_keys\":" << r.keys().size() << ",\"d_model\":" << r.session.model.d_model
     << ",\"n_heads\":" << r.session.model.n_heads << ",\"d_head\":" << r.d_head;
  if (!r.intervention.empty()) os << ",\"intervention\":" << text(r.intervention);
  auto num = [&](double x) { os.real(x, false); };
  // {"id", "token", "p"}; a list of them; a list of lists, a line each
  auto token = [&](const Result::NextToken& nt) {
    os << "{\"id\":" << nt.id << ",\"token\":" << text(nt.token) << ",\"p\":";
    num(nt.p);
    os << '}';
  };
  auto tokens = [&](const std::vector<Result::NextToken>& list) {
    os << '[';
    for (std::size_t t = 0; t < list.size(); ++t) {
      if (t) os << ',';
      token(list[t]);
    }
    os << ']';
  };
  auto rows = [&](const char* key, const std::vector<std::vector<Result::NextToken>>& grid) {
    os << ",\n\"" << key << "\":[";
    for (std::size_t i = 0; i < grid.size(); ++i) {
      if (i) os << ",\n";
      tokens(grid[i]);
    }
    os << ']';
  };
  // a model's prediction after each position, most likely first
  if (!r.next_tokens.empty()) rows("next_tokens", r.next_tokens);
  if (!r.next_tokens_note.empty()) os << ",\"next_tokens_note\":" << text(r.next_tokens_note);
  if (r.sample) {  // the token drawn after the last position, and the distribution it was drawn from
    const Result::Sample& s = *r.sample;
    os << ",\n\"sample\":{\"temperature\":";
    num(s.temperature);
    os << ",\"top_k\":" << s.top_k << ",\"top_p\":";
    num(s.top_p);
    os << ",\"seed\":" << s.seed << ",\"token\":";
    token(s.token);
    os << ",\"distribution\":";
    tokens(s.distribution);
    os << '}';
  }
  // [layer][position]: the top token of each layer's residual stream
  if (!r.logit_lens.empty()) rows("logit_lens", r.logit_lens);
  // "key":matrix pairs, comma separated, a line each
  auto matrices = [&](std::initializer_list<std::pair<const char*, const Matrix*>> fields) {
    bool first = true;
    for (const auto& [key, m] : fields) {
      os << (first ? "\"" : ",\n\"") << key << "\":";
      write_matrix(os, *m);
      first = false;
    }
  };
  os << ",\n\"layers\":[";
  for (std::size_t l = 0; l < r.layers.size() && os.ok(); ++l) {
    const LayerResult& L = r.layers[l];
    os << (l ? ",\n" : "") << "{";
    matrices({{"input", &L.input}, {"output", &L.output}, {"attention_input", &L.attention_input},
              {"attention_output", &L.attention_output}});
    if (l < r.rollout.size()) {
      os << ",\n\"rollout\":";
      write_matrix(os, r.rollout[l]);
    }
    os << ",\n\"heads\":[";
    for (std::size_t h = 0; h < L.heads.size() && os.ok(); ++h) {
      const HeadResult& H = L.heads[h];
      os << (h ? ",\n" : "") << "{";
      matrices({{"q", &H.q}, {"k", &H.k}, {"v", &H.v}, {"logits", &H.logits}, {"weights", &H.weights}});
      os << ",\n\"allowed\":";
      write_mask(os, *H.allowed);
      os << ",\n\"output\":";
      write_matrix(os, H.output);
      os << ",\"kv_head\":" << H.kv_head;
      if (!H.sink_weight.empty()) {  // gpt-oss's learned sink: per row, the weight it took
        os << ",\"sink_weight\":[";
        for (std::size_t i = 0; i < H.sink_weight.size(); ++i) {
          if (i) os << ",";
          num(H.sink_weight[i]);
        }
        os << "]";
      }
      if (H.approx) {
        os << ",\"approximation\":{\"kernel\":\"" << name(r.session.attention.kernel.kind) << "\",\"max_weight_error\":";
        num(H.approx->max_weight_error);
        os << ",\"output_error\":";
        num(H.approx->output_error);
        os << '}';
      }
      if (l < r.metrics.size()) {
        const HeadMetrics& m = r.metrics[l].heads[h];
        const std::pair<const char*, double> fields[] = {{"entropy", m.entropy},           {"entropy_normalized", m.entropy_normalized},
                                                         {"mean_distance", m.mean_distance}, {"max_weight", m.max_weight},
                                                         {"first_token", m.first_token},     {"density", m.density},
                                                         {"sink_mass", m.sink_mass}};
        os << ",\"metrics\":{";
        for (std::size_t k = 0; k < std::size(fields); ++k) {
          os << (k ? ",\"" : "\"") << fields[k].first << "\":";
          num(fields[k].second);
        }
        os << '}';
      }
      os << '}';
    }
    os << ']';
    if (l < r.metrics.size()) {
      os << ",\n\"sink_tokens\":" << r.metrics[l].sink_tokens;
      os << ",\n\"head_similarity\":";
      write_matrix(os, r.metrics[l].head_similarity);
    }
    os << '}';
  }
  os << "]}\n";
  return os.flush();
}

}  // namespace attnlab
