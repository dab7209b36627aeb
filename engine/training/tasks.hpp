// The tasks a small transformer is trained on, generated on the fly from counter-based random
// streams (core/rng.hpp), so that batch i of seed s is the same on every machine:
//   copy        a1..ak | a1..ak          the second half is predicted
//   reverse     a1..ak | ak..a1
//   sort        a1..ak | sorted(a)
//   induction   a random segment of P symbols repeated (P varies: 4 .. T/2 + 1): after
//               "... A B ... A" predict "B" (Olsson et al. 2022)
//   modular_addition   a + b = c (mod p): c is predicted; a share of the pairs held out
//   parentheses        ( ) ( ( ) ) = yes|no: whether the string is balanced
//   text        a character-level language model on a text (built in, or a file)
// Each task has its vocabulary, its sequence length (the model's context) and a held-out
// validation set; a sequence of T + 1 tokens gives T inputs and T next-token targets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "training/model.hpp"

namespace attnlab::train {

enum class TaskKind { copy, reverse, sort, induction, modular_addition, parentheses, text };
const char* task_name(TaskKind k);
bool parse_task(const std::string& s, TaskKind& k);

struct TaskSpec {
  TaskKind kind = TaskKind::induction;
  int length = 64;      // T, the inputs per sequence (modular_addition: always 4)
  int symbols = 32;     // copy / reverse / sort / induction: the alphabet
  int modulus = 23;     // modular_addition
  double train_fraction = 0.5;  // modular_addition: the share of pairs trained on
  std::string text;     // text: the corpus (empty: the built-in text)
  std::string text_name = "built-in";
};

class Task {
 public:
  // false with a message naming the rule (symbols 2..512, length even for copy, ...)
  static bool make(const TaskSpec& spec, Task& out, std::string& error);
  const TaskSpec& spec() const { return spec_; }
  int vocab() const { return static_cast<int>(tokens_.size()); }
  int length() const { return length_; }
  const std::vector<std::string>& tokens() const { return tokens_; }  // id -> text; the last is "<unk>"
  // Training sequences index0 .. index0 + count - 1 of the seed.
  void sample(std::uint64_t seed, std::uint64_t index0, int count, Batch& out) const;
  // The held-out set (same for every seed of a task): `count` sequences.
  void validation(int count, Batch& out) const;
  // A probe for the heads: one sequence of this task's validation set, and a repeated random
  // sequence over the vocabulary (first half random, second its copy) for the induction and
  // previous-token scores.
  void probe(Batch& out) const;
  void repeated_probe(int count, Batch& out) const;
  std::string describe() const;

 private:
  // one sequence of T + 1 tokens and the weights of its T targets, from draws of `key`
  void sequence(std::uint64_t key, std::vector<int>& seq, std::vector<float>& w) const;
  TaskSpec spec_;
  int length_ = 0;
  std::vector<std::string> tokens_;
  int content_ = 0;  // tokens 0 .. content_ - 1 are the task's symbols (then '|', '+', ..., '<unk>')
  int sep_ = -1, plus_ = -1, equals_ = -1, open_ = -1, close_ = -1, yes_ = -1, no_ = -1;
  std::vector<int> text_ids_;   // text: the corpus as ids
  std::size_t text_split_ = 0;  // text: training windows start before, validation after
  std::vector<std::pair<int, int>> train_pairs_, val_pairs_;  // modular_addition
};

// The public-domain text the character model trains on by default.
const std::string& builtin_text();

// A task file (TASK.json): {"task": {...}, "model": {...}, "training": {...}}; see
// docs/training.md. Every key is checked; unknown keys are refused by name.
struct TrainingOptions {
  int steps = 3000, batch = 32;  // the defaults are assets/training/induction.json's
  double lr = 1e-3, min_lr_ratio = 0.1, warmup = 100, weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-8, clip = 1.0;
  std::uint64_t seed = 0;
  int eval_every = 25, checkpoint_every = 100;
  int val_sequences = 64;
};
struct TrainSpec {
  TaskSpec task;
  ModelSpec model;  // vocab and context come from the task
  TrainingOptions training;
};
// `base_dir`: where a "text_file" key is read from.
bool read_train_spec(const nlohmann::json& j, const std::string& where, const std::string& base_dir, TrainSpec& out,
                     std::string& error);
nlohmann::json train_spec_json(const TrainSpec& s);

}  // namespace attnlab::train
