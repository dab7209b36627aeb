// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of
// JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// data, offsets relative to its start. The file is memory-mapped; the whole header is checked
// (length, JSON, dtypes, shapes, offsets inside the data, no overlaps) before any tensor is read,
// and every error names the file, the tensor and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnlab {

enum class TensorDtype { f32, f16, bf16 };

struct TensorInfo {
  TensorDtype dtype = TensorDtype::f32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0, end = 0;  // byte range in the data section
  std::int64_t elements() const;
};

class SafeTensors {
 public:
  // nullptr with a one-line reason in `error` when the file is missing, unreadable or invalid.
  static std::unique_ptr<SafeTensors> open(const std::string& path, std::string& error);
  // The same from bytes in memory (the fuzz target; `name` stands for the path in messages).
  static std::unique_ptr<SafeTensors> from_bytes(std::string bytes, const std::string& name, std::string& error);
  ~SafeTensors();
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

  // The tensor as float32 (F16 and BF16 widened exactly), row-major. False with a reason when
  // the tensor is missing or its shape is not `expected_shape` (when given).
  bool read(const std::string& name, std::vector<float>& out, std::string& error,
            const std::vector<std::int64_t>* expected_shape = nullptr) const;

 private:
  SafeTensors() = default;
  bool validate(std::string& error);  // the whole header, before anything is read
  std::string path_;
  std::string owned_;    // from_bytes: the bytes themselves
  bool mapped_ = false;  // open: map_ is an mmap to undo
  const unsigned char* map_ = nullptr;
  std::size_t map_size_ = 0;
  std::size_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// IEEE half and bfloat16 to float, exactly (subnormals, infinities and NaN included).
float half_to_float(std::uint16_t h);
float bf16_to_float(std::uint16_t b);

}  // namespace attnlab
