// Fuzz target: a safetensors file (header and data) from arbitrary bytes. The reader must refuse
// what is invalid with a message and read every tensor of what it accepts, never touching a byte
// outside the buffer.
#include <cstdint>
#include <string>
#include <vector>

#include "models/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string error;
  auto t = attnlab::SafeTensors::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors", error);
  if (!t) {
    if (error.empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  std::vector<float> v;
  for (const auto& [name, info] : t->tensors()) {
    if (info.elements() > (1 << 22)) continue;  // accepted, but too large to widen here
    if (!t->read(name, v, error)) __builtin_trap();
  }
  return 0;
}
