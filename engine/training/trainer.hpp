// Training a small transformer on a task (issue 13): AdamW (Loshchilov and Hutter 2019) with
// linear warm-up and cosine decay, global gradient-norm clipping, seeded and reproducible (the
// batches and the initial weights are counter-based draws; the same seed gives the same run on a
// machine with the same number of threads). Every `eval_every` steps the validation loss and
// accuracy and, per head, the induction and previous-token scores on repeated random sequences
// (Olsson et al. 2022): attention from a token in the repeat to the token after its first
// occurrence, and to the token before it. Parameters are kept every `checkpoint_every` steps.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "training/model.hpp"
#include "training/tasks.hpp"

namespace attnlab::train {

struct LogRow {
  int step = 0;
  double lr = 0, train_loss = 0, train_accuracy = 0, val_loss = 0, val_accuracy = 0, grad_norm = 0;
  double seconds = 0;                       // training time so far
  std::vector<double> induction, prev_token;  // per head, layer-major (l * heads + h)
};

struct Checkpoint {
  int step = 0;
  Params<float> params;
};

// One sequence's attention in every layer and head.
struct ProbeAttention {
  int step = 0;
  std::vector<int> ids;
  std::vector<std::string> tokens;
  std::vector<std::vector<Mat<float>>> weights;  // [layer][head] (T, T)
};

class Trainer {
 public:
  static std::unique_ptr<Trainer> make(const TrainSpec& spec, std::string& error);
  const TrainSpec& spec() const { return spec_; }
  const Task& task() const { return task_; }
  const Model<float>& model() const { return model_; }
  int step() const { return step_; }
  bool done() const { return step_ >= spec_.training.steps; }
  // One optimisation step; its training loss and accuracy go into the next log row.
  void train_step();
  // Validation and scores now; appended to the log.
  const LogRow& evaluate();
  // train_step until done or cancelled (or, when asked, at the phase change), evaluating and
  // keeping checkpoints on schedule; `progress` is called after every evaluation.
  void run(const std::atomic<bool>* cancel = nullptr, const std::function<void(const LogRow&)>& progress = {},
           bool stop_at_phase_change = false);
  void keep_checkpoint();
  const std::vector<LogRow>& log() const { return log_; }
  const std::vector<Checkpoint>& checkpoints() const { return checkpoints_; }
  // The attention of every head on the task's probe sequence (or any ids of the task's length).
  ProbeAttention probe(const Params<float>& params) const;
  ProbeAttention probe() const { return probe(model_.params); }
  // Per-head induction and previous-token scores of some parameters.
  // `scratch`: buffers to reuse (null: its own).
  void scores(const Params<float>& params, std::vector<double>& induction, std::vector<double>& prev_token,
              Cache<float>* scratch = nullptr) const;
  // The first logged step where the validation loss is below half its plateau (the first
  // evaluation after warm-up) and a head of layer 1 (layer 0 in a 1-layer model) has an
  // induction score above 0.5; -1 before that.
  int phase_change_step() const;
  double lr_at(int step) const;
  // Forward + backward FLOPs of one step (matrix products; 2 per multiply-add, backward twice).
  double flops_per_step() const;
  double seconds() const { return seconds_; }

  // train_log.csv: step,lr,train_loss,train_accuracy,val_loss,val_accuracy,grad_norm,seconds,
  // then induction_score_l{L}h{H} and prev_token_score_l{L}h{H} per head.
  std::string log_csv() const;
  // Whether (and as which Hugging Face family) the model can be written in the HF layout; the
  // reason when it cannot.
  bool hf_layout(std::string& family, std::string& why) const;
  // config.json, model.safetensors, tokenizer.json, tokenizer_config.json, train_log.csv and
  // task.json into dir (made when missing), each file written whole or not at all.
  bool save(const std::string& dir, std::string& error) const;
  bool save(const std::string& dir, const Params<float>& params, std::string& error) const;

 private:
  Trainer(const TrainSpec& spec, Task task);
  TrainSpec spec_;
  Task task_;
  Model<float> model_;
  Params<float> grad_, m_, v_;
  Cache<float> cache_;
  Batch batch_, val_, repeated_;
  int step_ = 0;
  double seconds_ = 0;
  double last_loss_ = 0, last_accuracy_ = 0, last_norm_ = 0;
  std::vector<LogRow> log_;
  std::vector<Checkpoint> checkpoints_;
};

}  // namespace attnlab::train
