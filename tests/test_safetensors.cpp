// The safetensors reader on files written byte by byte here: values decoded by hand (IEEE half
// and bfloat16 bit patterns), and every kind of corrupt or hostile file refused with its reason.
// This file is also built with AddressSanitizer and UBSan (models_asan_tests).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "models/safetensors.hpp"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab-st-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// header JSON + data, with the header length as given (-1: the true one, -2: 2^64 - 1)
std::string write(const std::string& name, const std::string& header, const std::string& data, long long n = -1) {
  const std::string path = temp_path(name);
  std::ofstream f(path, std::ios::binary);
  const unsigned long long len = n == -1 ? header.size() : n == -2 ? ~0ull : static_cast<unsigned long long>(n);
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((len >> (8 * i)) & 0xff));
  f << header << data;
  return path;
}

std::string bytes(std::initializer_list<unsigned> b) {
  std::string s;
  for (unsigned x : b) s += static_cast<char>(x);
  return s;
}

std::string refused(const std::string& path) {
  std::string err;
  auto t = SafeTensors::open(path, err);
  CHECK(t == nullptr);
  if (t) {  // wrongly accepted: read everything, so the sanitizers see what that would touch
    std::vector<float> v;
    std::string e;
    for (const auto& [name, info] : t->tensors()) t->read(name, v, e);
  }
  CHECK(err.find(path) == 0);  // every message starts with the file
  return err;
}

}  // namespace

TEST_CASE("safetensors: F32, F16 and BF16 decode to the values their bits mean") {
  // F32 1.5, -2; F16 1.0 (0x3C00), -2 (0xC000), 65504 (0x7BFF), 2^-24 (0x0001); BF16 1.0 (0x3F80), 3.140625 (0x4049)
  const std::string data = bytes({0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0}) +
                           bytes({0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00}) + bytes({0x80, 0x3F, 0x49, 0x40});
  const std::string header =
      R"({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
      R"( "h": {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 16]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]}})";
  const std::string path = write("good.safetensors", header, data);
  std::string err;
  auto t = SafeTensors::open(path, err);
  REQUIRE_MESSAGE(t, err);
  CHECK(t->metadata().at("format") == "pt");
  std::vector<float> v;
  REQUIRE(t->read("a", v, err));
  CHECK(v == std::vector<float>{1.5f, -2.0f});
  const std::vector<std::int64_t> shape{2, 2};
  REQUIRE(t->read("h", v, err, &shape));
  CHECK(v == std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f});
  REQUIRE(t->read("b", v, err));
  CHECK(v == std::vector<float>{1.0f, 3.140625f});
  CHECK(half_to_float(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(half_to_float(0x8000) == 0.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  const std::vector<std::int64_t> wrong{4};
  CHECK_FALSE(t->read("h", v, err, &wrong));
  CHECK(err.find("has shape [2, 2], expected [4]") != std::string::npos);
  CHECK_FALSE(t->read("missing.weight", v, err));
  CHECK(err.find("missing tensor 'missing.weight'") != std::string::npos);
}

TEST_CASE("safetensors: corrupt and hostile files are refused with their reason") {
  const std::string ok = R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  const std::string eight(8, '\0');
  struct Case {
    const char* what;
    std::string path;
    const char* expect;
  };
  const Case cases[] = {
      {"truncated below 8 bytes", [] {
         const std::string p = temp_path("tiny.safetensors");
         std::ofstream(p, std::ios::binary) << "abc";
         return p;
       }(), "truncated"},
      {"header length past the end", write("long.safetensors", ok, eight, 1 << 20), "runs past the end of the file"},
      {"header length 2^64 - 1", write("huge.safetensors", ok, eight, -2), "runs past the end of the file"},
      {"data cut short", write("cut.safetensors", ok, std::string(4, '\0')), "lie outside the 4 bytes of data"},
      {"not JSON", write("notjson.safetensors", "{\"w\": [", eight), "not valid JSON"},
      {"not an object", write("array.safetensors", "[1, 2]", eight), "not a JSON object"},
      {"unknown dtype", write("dtype.safetensors", R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", eight),
       "dtype \"F8_E4M3\" is not supported"},
      {"shape/size mismatch", write("shape.safetensors", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight),
       "needs 12 bytes, data_offsets give 8"},
      {"negative size", write("neg.safetensors", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", eight),
       "non-negative whole numbers"},
      {"overflowing shape",
       write("overflow.safetensors",
             R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})", eight),
       "too large"},
      {"offsets reversed", write("rev.safetensors", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", eight),
       "lie outside"},
      {"offsets outside the data",
       write("outside.safetensors", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", eight), "lie outside"},
      {"overlapping tensors",
       write("overlap.safetensors",
             R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
             eight),
       "tensors 'a' and 'b' overlap"},
      {"entry without offsets", write("fields.safetensors", R"({"w": {"dtype": "F32", "shape": [2]}})", eight),
       "needs dtype, shape and data_offsets"},
      {"bad metadata", write("meta.safetensors", R"({"__metadata__": 3})", ""), "__metadata__ must be an object"},
      {"missing file", temp_path("nope.safetensors"), "cannot open"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string err = refused(c.path);
    CHECK_MESSAGE(err.find(c.expect) != std::string::npos, err);
  }
  // a directory is not a file
  CHECK(refused(fs::path(temp_path("x")).parent_path().string()).find("not a regular file") != std::string::npos);
}
