#include "models/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/json_input.hpp"

namespace attnlab {

namespace {

constexpr std::uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit (100 MB)

std::size_t dtype_size(TensorDtype d) { return d == TensorDtype::f32 ? 4 : 2; }

bool parse_dtype(const std::string& s, TensorDtype& d) {
  if (s == "F32") d = TensorDtype::f32;
  else if (s == "F16") d = TensorDtype::f16;
  else if (s == "BF16") d = TensorDtype::bf16;
  else return false;
  return true;
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

}  // namespace

std::int64_t TensorInfo::elements() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: mant * 2^-24
      const float f = static_cast<float>(mant) * (1.0f / 16777216.0f);
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::unique_ptr<SafeTensors> SafeTensors::open(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block: refused below
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path + ": not a regular file";
    return nullptr;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    error = path + ": truncated: " + std::to_string(size) + " bytes, fewer than the 8-byte header length";
    return nullptr;
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    error = path + ": cannot map: " + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<SafeTensors> t(new SafeTensors);
  t->path_ = path;
  t->map_ = static_cast<const unsigned char*>(map);
  t->map_size_ = size;
  t->mapped_ = true;
  return t->validate(error) ? std::move(t) : nullptr;
}

std::unique_ptr<SafeTensors> SafeTensors::from_bytes(std::string bytes, const std::string& name, std::string& error) {
  std::unique_ptr<SafeTensors> t(new SafeTensors);
  t->path_ = name;
  t->owned_ = std::move(bytes);
  t->map_ = reinterpret_cast<const unsigned char*>(t->owned_.data());
  t->map_size_ = t->owned_.size();
  if (t->map_size_ < 8) {
    error = name + ": truncated: " + std::to_string(t->map_size_) + " bytes, fewer than the 8-byte header length";
    return nullptr;
  }
  return t->validate(error) ? std::move(t) : nullptr;
}

bool SafeTensors::validate(std::string& error) {
  SafeTensors* t = this;
  const std::string& path = path_;
  const std::uint64_t size = map_size_;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | t->map_[i];
  if (n > kMaxHeader || n > size - 8) {
    error = path + ": header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
            " bytes)";
    return false;
  }
  t->data_start_ = 8 + n;
  const std::uint64_t data_size = size - 8 - n;
  nlohmann::json header;
  if (std::string why; !parse_json_input(std::string_view(reinterpret_cast<const char*>(t->map_ + 8), n), header, why)) {
    error = path + ": the header is " + (why.starts_with("not valid JSON") ? why : "refused: " + why);
    return false;
  }
  if (!header.is_object()) {
    error = path + ": the header is not a JSON object";
    return false;
  }
  std::vector<std::pair<std::size_t, std::string>> by_begin;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) {
        error = path + ": __metadata__ must be an object of strings";
        return false;
      }
      for (const auto& [k, m] : v.items())
        if (m.is_string()) t->metadata_[k] = m.get<std::string>();
      continue;
    }
    const std::string where = path + ": tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
      error = where + "needs dtype, shape and data_offsets";
      return false;
    }
    TensorInfo info;
    if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), info.dtype)) {
      error = where + "dtype " + v["dtype"].dump() + " is not supported (F32, F16 or BF16)";
      return false;
    }
    if (!v["shape"].is_array()) {
      error = where + "shape must be a list of sizes";
      return false;
    }
    std::uint64_t elements = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) {
        error = where + "shape " + v["shape"].dump() + " must hold non-negative whole numbers";
        return false;
      }
      const std::uint64_t k = d.get<std::uint64_t>();
      if (k != 0 && elements > std::numeric_limits<std::uint64_t>::max() / 16 / k) {
        error = where + "shape " + v["shape"].dump() + " is too large";
        return false;
      }
      elements *= k;
      info.shape.push_back(static_cast<std::int64_t>(k));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      error = where + "data_offsets must be [begin, end]";
      return false;
    }
    const std::uint64_t b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
    if (b > e || e > data_size) {
      error = where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] lie outside the " +
              std::to_string(data_size) + " bytes of data";
      return false;
    }
    if (e - b != elements * dtype_size(info.dtype)) {
      error = where + "shape " + shape_text(info.shape) + " of " + v["dtype"].get<std::string>() + " needs " +
              std::to_string(elements * dtype_size(info.dtype)) + " bytes, data_offsets give " + std::to_string(e - b);
      return false;
    }
    info.begin = b;
    info.end = e;
    by_begin.push_back({b, name});
    t->tensors_[name] = std::move(info);
  }
  // As the reference implementation requires: sorted by offset, every tensor starts where the
  // one before ended and the last ends with the data, so no bytes are shared and none hidden.
  std::sort(by_begin.begin(), by_begin.end(), [&](const auto& a, const auto& b) {
    const TensorInfo &x = t->tensors_[a.second], &y = t->tensors_[b.second];
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  std::size_t covered = 0;
  std::string last = "";
  for (const auto& [begin, name] : by_begin) {
    const TensorInfo& cur = t->tensors_[name];
    if (cur.begin < covered) {
      error = path + ": tensors '" + last + "' and '" + name + "' overlap (bytes " + std::to_string(cur.begin) + " to " +
              std::to_string(std::min(cur.end, covered)) + ")";
      return false;
    }
    if (cur.begin > covered) {
      error = path + ": bytes " + std::to_string(covered) + " to " + std::to_string(cur.begin) +
              " of the data belong to no tensor (before '" + name + "'); the format allows no gaps";
      return false;
    }
    covered = cur.end;
    last = name;
  }
  if (covered != data_size) {
    error = path + ": the last " + std::to_string(data_size - covered) + " bytes of the data belong to no tensor";
    return false;
  }
  return true;
}

SafeTensors::~SafeTensors() {
  if (map_ && mapped_) ::munmap(const_cast<unsigned char*>(map_), map_size_);
}

bool SafeTensors::read(const std::string& name, std::vector<float>& out, std::string& error,
                       const std::vector<std::int64_t>* expected_shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    error = path_ + ": missing tensor '" + name + "'";
    return false;
  }
  const TensorInfo& t = it->second;
  if (expected_shape && *expected_shape != t.shape) {
    error = path_ + ": tensor '" + name + "' has shape " + shape_text(t.shape) + ", expected " + shape_text(*expected_shape);
    return false;
  }
  const unsigned char* p = map_ + data_start_ + t.begin;
  const std::size_t n = static_cast<std::size_t>(t.elements());
  out.resize(n);
  switch (t.dtype) {
    case TensorDtype::f32: std::memcpy(out.data(), p, 4 * n); break;
    case TensorDtype::f16:
      for (std::size_t i = 0; i < n; ++i) out[i] = half_to_float(static_cast<std::uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case TensorDtype::bf16:
      for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_float(static_cast<std::uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      break;
  }
  return true;
}

}  // namespace attnlab
