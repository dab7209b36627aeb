// The pretrained families attnlab reads, in the order they are offered.
#include "core/strings.hpp"
#include "models/family.hpp"

namespace attnlab {

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> all = {&kGpt2Family, &kBertFamily, &kLlamaFamily};
  return all;
}

const Family* find_family(const std::string& model_type) {
  for (const Family* f : families())
    if (model_type == f->model_type) return f;
  return nullptr;
}

std::string family_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->model_type);
  return join(names, ", ");
}

}  // namespace attnlab
