#include "present/export.hpp"

#include <cerrno>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace attnlab {

namespace {

std::string number(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

std::string field(const std::string& s, char sep) {
  if (sep == '\t') {
    std::string out = s;
    for (char& c : out)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return out;
  }
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string to_delimited(const LabeledMatrix& m, char sep) {
  const bool rl = !m.row_labels.empty() && m.row_labels.size() == std::size_t(m.values.rows());
  const bool cl = !m.col_labels.empty() && m.col_labels.size() == std::size_t(m.values.cols());
  std::string out;
  if (cl) {
    if (rl) out += field(m.name, sep);
    for (Eigen::Index j = 0; j < m.values.cols(); ++j) {
      if (j || rl) out += sep;
      out += field(m.col_labels[j], sep);
    }
    out += '\n';
  }
  for (Eigen::Index i = 0; i < m.values.rows(); ++i) {
    if (rl) out += field(m.row_labels[i], sep);
    for (Eigen::Index j = 0; j < m.values.cols(); ++j) {
      if (j || rl) out += sep;
      out += number(m.values(i, j));
    }
    out += '\n';
  }
  return out;
}

namespace {
// The .npy preamble (format 1.0) for little-endian float32 of `shape`, padded to 64 bytes.
std::string npy_header(const std::vector<std::size_t>& shape) {
  std::string dims;
  for (std::size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ',';  // a one-element tuple
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const std::size_t unpadded = 10 + header.size() + 1;  // magic, version, length, header, '\n'
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<std::uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  return out + header;
}
}  // namespace

std::string to_npy(const std::vector<const Matrix*>& blocks, const std::vector<std::size_t>& shape) {
  static_assert(std::endian::native == std::endian::little, "'<f4' is written as the machine's floats");
  std::string out = npy_header(shape);
  for (const Matrix* m : blocks)
    out.append(reinterpret_cast<const char*>(m->data()), sizeof(float) * static_cast<std::size_t>(m->size()));
  return out;
}

std::string to_npy(const Matrix& m) {
  return to_npy({&m}, {static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())});
}

std::string to_matrix_json(const LabeledMatrix& m) {
  nlohmann::json j;
  j["name"] = m.name;
  j["shape"] = {m.values.rows(), m.values.cols()};
  if (!m.row_labels.empty()) j["rows"] = m.row_labels;
  if (!m.col_labels.empty()) j["cols"] = m.col_labels;
  nlohmann::json rows = nlohmann::json::array();
  for (Eigen::Index i = 0; i < m.values.rows(); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (Eigen::Index c = 0; c < m.values.cols(); ++c) {
      const float v = m.values(i, c);
      row.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json());
    }
    rows.push_back(std::move(row));
  }
  j["values"] = std::move(rows);
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string encode_matrix(const LabeledMatrix& m, MatrixFormat f) {
  switch (f) {
    case MatrixFormat::csv: return to_delimited(m, ',');
    case MatrixFormat::tsv: return to_delimited(m, '\t');
    case MatrixFormat::npy: return to_npy(m.values);
    case MatrixFormat::json: return to_matrix_json(m);
  }
  return {};
}

bool format_from_path(const std::string& path, MatrixFormat& f) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".csv") f = MatrixFormat::csv;
  else if (ext == ".npy") f = MatrixFormat::npy;
  else if (ext == ".json") f = MatrixFormat::json;
  else if (ext == ".tsv") f = MatrixFormat::tsv;
  else return false;
  return true;
}

}  // namespace attnlab
