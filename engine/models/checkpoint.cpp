#include "models/checkpoint.hpp"

#include <filesystem>
#include <set>

#include "core/files.hpp"
#include "core/json_input.hpp"

namespace fs = std::filesystem;

namespace attnlab {

const Matrix& Weights::get(const std::string& role) const { return global.at(role); }
const Matrix& Weights::get(int layer, const std::string& role) const { return layers.at(layer).at(role); }

bool read_json_file(const std::string& path, nlohmann::json& out, std::string& error) {
  std::string text;
  if (!read_file_limited(path, kMaxConfigFileBytes, text, error, "a configuration file")) return false;
  if (!parse_json_input(text, out, error)) {
    error = path + ": " + error;
    return false;
  }
  if (!out.is_object()) {
    error = path + ": must be a JSON object, not " + json_excerpt(out);
    return false;
  }
  return true;
}

bool Checkpoint::open(const std::string& dir, std::string& error) {
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  std::vector<std::string> names;
  if (fs::exists(single)) {
    names.push_back("model.safetensors");
  } else if (fs::exists(index)) {
    std::string text;
    nlohmann::json j;
    if (!read_file_limited(index, kMaxTokenizerFileBytes, text, error, "an index file")) return false;
    if (!parse_json_input(text, j, error)) {
      error = index + ": " + error;
      return false;
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      error = index + ": 'weight_map' must be an object of tensor name -> shard file";
      return false;
    }
    std::set<std::string> shards;
    for (const auto& [t, file] : j["weight_map"].items()) {
      if (!file.is_string()) {
        error = index + ": the shard of '" + t.substr(0, 60) + "' must be a file name, not " + json_excerpt(file);
        return false;
      }
      const std::string name = file.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos) {
        error = index + ": shard '" + name + "' must be a file in the model folder";
        return false;
      }
      shards.insert(name);
    }
    names.assign(shards.begin(), shards.end());
  } else {
    error = dir + ": no model.safetensors (or model.safetensors.index.json with its shards)";
    return false;
  }
  for (const auto& n : names) {
    auto t = SafeTensors::open(dir + "/" + n, error);
    if (!t) return false;
    for (const auto& [name, info] : t->tensors()) where_[name] = t.get();
    files_.push_back(std::move(t));
  }
  return true;
}

void Checkpoint::choose_prefix(const std::string& probe, const std::vector<std::string>& prefixes) {
  if (where_.count(probe)) return;
  for (const auto& p : prefixes)
    if (where_.count(p + probe)) {
      prefix_ = p;
      return;
    }
}

std::string Checkpoint::stored_dtype() const {
  std::string d = "F32";
  for (const auto& f : files_)
    for (const auto& [name, info] : f->tensors())
      d = info.dtype == TensorDtype::bf16 ? "BF16" : info.dtype == TensorDtype::f16 ? "F16" : d;
  return d;
}

bool Checkpoint::read_one(const std::string& prefix, const std::string& name, std::int64_t rows, std::int64_t cols,
                          Matrix& out, std::string& error) const {
  auto it = where_.find(prefix + name);
  if (it == where_.end() && name.find("LayerNorm.") != std::string::npos) {  // the original BERT checkpoints' names
    std::string alias = name;
    if (alias.ends_with(".weight")) alias.replace(alias.size() - 6, 6, "gamma");
    else if (alias.ends_with(".bias")) alias.replace(alias.size() - 4, 4, "beta");
    if (where_.count(prefix + alias)) return read_one(prefix, alias, rows, cols, out, error);
  }
  if (it == where_.end()) {
    error = "missing tensor '" + prefix + name + "'";
    if (files_.size() > 1 || cols > 0) error += " (" + std::to_string(files_.size()) + " safetensors file(s))";
    return false;
  }
  std::vector<float> v;
  const std::vector<std::int64_t> shape = cols > 0 ? std::vector<std::int64_t>{rows, cols} : std::vector<std::int64_t>{rows};
  if (!it->second->read(prefix + name, v, error, &shape)) return false;
  out = Eigen::Map<const Matrix>(v.data(), cols > 0 ? rows : 1, cols > 0 ? cols : rows);
  return true;
}

bool Checkpoint::read(const std::vector<TensorSpec>& table, int n_layers, Weights& out, Failure& failure,
                      std::atomic<float>* progress, const CancelFlag* cancel) const {
  int total = 0, done = 0;
  for (const auto& t : table) total += t.per_layer ? n_layers : 1;
  out.layers.assign(n_layers, {});
  auto one = [&](const TensorSpec& t, int layer) {
    std::string name = t.name;
    if (const auto at = name.find("{l}"); at != std::string::npos) name.replace(at, 3, std::to_string(layer));
    Matrix m;
    const std::string prefix = t.absolute ? std::string() : prefix_;
    if (t.optional && !where_.count(prefix + name)) return true;
    if (!read_one(prefix, name, t.rows, t.cols, m, failure.message)) return false;
    if (t.transpose) m.transposeInPlace();
    (t.per_layer ? out.layers[layer] : out.global)[t.role] = std::move(m);
    if (progress) progress->store(static_cast<float>(++done) / static_cast<float>(total));
    if (cancel_requested(cancel)) {
      failure = {true, ""};
      return false;
    }
    return true;
  };
  for (const auto& t : table)
    if (!t.per_layer && !one(t, -1)) return false;
  for (int l = 0; l < n_layers; ++l)
    for (const auto& t : table)
      if (t.per_layer && !one(t, l)) return false;
  return true;
}

}  // namespace attnlab
