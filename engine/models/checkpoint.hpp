// A model folder's weights: the safetensors file (or the shards of its index) and the table of
// tensors a family declares. The table drives the reads, the shape checks and their messages,
// and the loading progress (one step per tensor).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/cancel.hpp"
#include "core/tensor.hpp"
#include "models/safetensors.hpp"

namespace attnlab {

// One tensor of a family's table. `name` may hold "{l}", replaced by the layer index, for a
// tensor every layer has. cols 0: a vector of `rows`. nn.Linear weights are stored (out, in):
// `transpose` keeps them as (in, out) so every family computes y = x W + b.
struct TensorSpec {
  std::string role;  // how the forward pass asks for it: "q.w", "ln1.g", ...
  std::string name;  // the checkpoint's name (after the prefix)
  std::int64_t rows = 0, cols = 0;
  bool per_layer = false, transpose = false, optional = false;
  bool absolute = false;  // the name is used as it is, without the checkpoint's prefix (BERT's "cls.")
};

// The weights of a loaded model, by role: global ones, and per layer.
struct Weights {
  std::map<std::string, Matrix> global;
  std::vector<std::map<std::string, Matrix>> layers;
  const Matrix& get(const std::string& role) const;              // global
  const Matrix& get(int layer, const std::string& role) const;   // per layer
  bool has(int layer, const std::string& role) const { return layers[layer].count(role) > 0; }
  RowVector row(int layer, const std::string& role) const { return get(layer, role).row(0); }
};

// Tensors by name across the single file or the shards of an index.
class Checkpoint {
 public:
  bool open(const std::string& dir, std::string& error);
  // The checkpoint's names carry a prefix in *LMHeadModel / *ForMaskedLM files ("transformer.",
  // "bert."): the first of `prefixes` under which `probe` exists is used.
  void choose_prefix(const std::string& probe, const std::vector<std::string>& prefixes);
  std::string stored_dtype() const;  // the narrowest dtype among the tensors (F32, F16, BF16)
  // Reads every tensor of the table (per-layer ones for each of n_layers), checking shapes, with
  // progress per tensor; stops on cancel.
  bool read(const std::vector<TensorSpec>& table, int n_layers, Weights& out, Failure& failure,
            std::atomic<float>* progress, const CancelFlag* cancel) const;

 private:
  bool read_one(const std::string& prefix, const std::string& name, std::int64_t rows, std::int64_t cols, Matrix& out,
                std::string& error) const;
  std::vector<std::unique_ptr<SafeTensors>> files_;
  std::map<std::string, const SafeTensors*> where_;
  std::string prefix_;
};

// A model folder's JSON file (config.json, tokenizer_config.json), read with every check.
bool read_json_file(const std::string& path, nlohmann::json& out, std::string& error);

}  // namespace attnlab
