// The pretrained families attnlab reads, in the order they are offered.
#include "core/json_input.hpp"
#include "core/strings.hpp"
#include "models/family.hpp"

namespace attnlab {

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> all = {&kGpt2Family, &kBertFamily, &kLlamaFamily, &kQwen2Family,
                                                        &kMistralFamily};
  return all;
}

const Family* find_family(const std::string& model_type) {
  for (const Family* f : families())
    if (model_type == f->model_type) return f;
  return nullptr;
}

bool read_sizes(const nlohmann::json& cfg, const std::string& path, const SizeKeys& k, ModelInfo& in, std::string& error) {
  if (!json_get(cfg, k.d_model, in.d_model, 1, 16384, error, path, true) ||
      !json_get(cfg, k.n_heads, in.n_heads, 1, 256, error, path, true) ||
      !json_get(cfg, k.n_layers, in.n_layers, 1, k.max_layers, error, path, true) ||
      !json_get(cfg, k.n_positions, in.n_positions, 1, k.max_positions, error, path, true) ||
      !json_get(cfg, "vocab_size", in.vocab_size, 1, 1 << 22, error, path, true))
    return false;
  if (k.heads_divide && in.d_model % in.n_heads != 0) {
    error = path + ": " + k.d_model + " " + std::to_string(in.d_model) + " is not divisible by " + k.n_heads + " " +
            std::to_string(in.n_heads);
    return false;
  }
  in.n_kv_heads = in.n_heads;
  in.d_head = in.d_model / in.n_heads;
  return true;
}

std::string family_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->model_type);
  return join(names, ", ");
}

}  // namespace attnlab
