// Matrices out of the program: CSV, NumPy .npy, JSON and tab-separated text. Files are written
// with write_file_atomic (files.hpp).
#pragma once

#include <string>
#include <vector>

#include "core/files.hpp"
#include "core/tensor.hpp"

namespace attnlab {

enum class MatrixFormat { csv, npy, json, tsv };

// Optional labels: row_labels.size() == rows adds a first column, col_labels.size() == cols a
// header row (CSV and TSV only; .npy holds numbers alone, JSON names them "rows" and "cols").
struct LabeledMatrix {
  std::string name;
  Matrix values;
  std::vector<std::string> row_labels, col_labels;
};

// CSV (RFC 4180 quoting), values with 9 significant digits; -inf (a masked logit) is written
// "-inf", NaN "nan". TSV: the same with tabs, tabs and newlines in labels replaced by spaces.
std::string to_delimited(const LabeledMatrix& m, char sep);
// NumPy format 1.0: '<f4', C order, shape (rows, cols); the header padded to 64 bytes.
std::string to_npy(const Matrix& m);
// Equal-shaped row-major blocks one after another as one array of `shape` (its last two
// dimensions a block's rows and columns): every layer and head at once, [layers, heads, n, n].
std::string to_npy(const std::vector<const Matrix*>& blocks, const std::vector<std::size_t>& shape);
// {"name", "shape": [r, c], "rows": [...], "cols": [...], "values": [[...]]}; -inf and NaN as null.
std::string to_matrix_json(const LabeledMatrix& m);
std::string encode_matrix(const LabeledMatrix& m, MatrixFormat f);
// The format a file name asks for (.csv .npy .json .tsv); false when none.
bool format_from_path(const std::string& path, MatrixFormat& f);

}  // namespace attnlab
