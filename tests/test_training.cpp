// The trainer (issue 13): every gradient against central finite differences (float64) and against
// torch's autograd (tests/reference/train_reference.py), the tasks' sequences by their
// definitions, AdamW's first step by hand, the induction phase change within a step budget, and a
// saved model reopened by the model loader with the trainer's attention.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include <unistd.h>

#include "core/files.hpp"
#include "core/json_input.hpp"
#include "core/rng.hpp"
#include "models/hf_model.hpp"
#include "test_util.hpp"
#include "training/trainer.hpp"

using namespace attnlab;
using namespace attnlab::train;

namespace {

ModelSpec spec_of(const nlohmann::json& m) {
  ModelSpec s;
  s.vocab = m["vocab"], s.context = m["context"], s.d_model = m["d_model"], s.n_layers = m["layers"];
  s.n_heads = m["heads"], s.n_kv_heads = m["kv_heads"], s.mlp = m["mlp"], s.d_ff = m["d_ff"];
  REQUIRE(parse_pos(m["positional"].get<std::string>(), s.pos));
  REQUIRE(parse_mask(m["mask"].get<std::string>(), s.mask));
  REQUIRE(parse_norm(m["normalizer"].get<std::string>(), s.norm));
  s.rope_base = m["rope_base"], s.window = m["window"];
  return s;
}

Batch batch_of(const nlohmann::json& b) {
  Batch out;
  out.size = b["size"], out.length = b["length"];
  out.ids = b["ids"].get<std::vector<int>>();
  out.targets = b["targets"].get<std::vector<int>>();
  out.weight = b["weight"].get<std::vector<float>>();
  return out;
}

// relative difference with a floor, so that gradients near 0 compare absolutely
double rel(double a, double b, double floor = 1e-6) { return std::abs(a - b) / std::max({std::abs(a), std::abs(b), floor}); }

// central differences of the loss for a sample of each tensor's entries, against backward
void finite_difference_check(const ModelSpec& spec, const Batch& batch, std::uint64_t seed) {
  Model<double> m(spec);
  m.init(seed);
  // larger weights than the 0.02 initialisation, so every path carries a visible gradient
  m.params.each([&](const std::string& name, Mat<double>& p) {
    std::vector<float> z(static_cast<std::size_t>(p.size()));
    fill_normal(stream_key(seed, "test.fd." + name), 0.4f, z);
    for (Eigen::Index i = 0; i < p.size(); ++i) p.data()[i] += z[static_cast<std::size_t>(i)];
  });
  Cache<double> c;
  m.forward(batch, c);
  Params<double> g;
  m.backward(batch, c, g);
  std::vector<Mat<double>*> grads;
  g.each([&](const std::string&, Mat<double>& x) { grads.push_back(&x); });
  std::size_t t = 0;
  m.params.each([&](const std::string& name, Mat<double>& p) {
    const Mat<double>& gt = *grads[t++];
    double worst = 0;
    Eigen::Index worst_at = -1;
    const Eigen::Index step = std::max<Eigen::Index>(1, p.size() / 24);
    for (Eigen::Index i = 0; i < p.size(); i += step) {
      const double keep = p.data()[i], h = 1e-5;
      p.data()[i] = keep + h;
      Cache<double> c1;
      const double up = m.forward(batch, c1).loss;
      p.data()[i] = keep - h;
      const double down = m.forward(batch, c1).loss;
      p.data()[i] = keep;
      const double numeric = (up - down) / (2 * h);
      const double r = rel(numeric, gt.data()[i], 1e-3);  // |difference| <= 1e-8 where the gradient is ~0
      if (r > worst) worst = r, worst_at = i;
    }
    INFO(name << ": worst relative difference " << worst << " at entry " << worst_at);
    CHECK(worst < 1e-5);
  });
}

}  // namespace

TEST_CASE("training: every gradient equals central finite differences (float64), for each component and kind") {
  Task task;
  std::string err;
  TaskSpec ts;
  ts.kind = TaskKind::induction, ts.length = 8, ts.symbols = 6;
  REQUIRE(Task::make(ts, task, err));
  Batch batch;
  task.sample(3, 0, 3, batch);
  for (int i = 0; i < 8; ++i) batch.weight[i] = 1.0f;  // the unpredictable half too: every row carries loss
  struct Kind {
    const char* name;
    PosKind pos;
    train::MaskRule mask;
    AttnNorm norm;
    bool mlp;
    int heads, kv;
  };
  const Kind kinds[] = {
      {"learned, causal, attention-only", PosKind::learned, train::MaskRule::causal, AttnNorm::softmax, false, 2, 2},
      {"learned, causal, MLP (layer norms, gelu)", PosKind::learned, train::MaskRule::causal, AttnNorm::softmax, true, 2, 2},
      {"sinusoidal", PosKind::sinusoidal, train::MaskRule::causal, AttnNorm::softmax, false, 2, 2},
      {"RoPE", PosKind::rope, train::MaskRule::causal, AttnNorm::softmax, true, 2, 2},
      {"ALiBi", PosKind::alibi, train::MaskRule::causal, AttnNorm::softmax, false, 4, 4},
      {"T5 relative buckets (their table's gradient)", PosKind::t5, train::MaskRule::sliding_window, AttnNorm::softmax, true, 2, 1},
      {"no positions, sliding window", PosKind::none, train::MaskRule::sliding_window, AttnNorm::softmax, false, 2, 2},
      {"GQA (4 heads, 2 kv)", PosKind::rope, train::MaskRule::causal, AttnNorm::softmax, true, 4, 2},
      {"MQA (4 heads, 1 kv)", PosKind::learned, train::MaskRule::sliding_window, AttnNorm::softmax, false, 4, 1},
      {"sigmoid attention", PosKind::learned, train::MaskRule::causal, AttnNorm::sigmoid, true, 2, 2},
  };
  for (const Kind& k : kinds) {
    SUBCASE(k.name) {
      ModelSpec s;
      s.vocab = task.vocab(), s.context = task.length(), s.d_model = 8, s.n_layers = 2, s.n_heads = k.heads;
      s.n_kv_heads = k.kv, s.mlp = k.mlp, s.d_ff = 12, s.pos = k.pos, s.mask = k.mask, s.window = 3, s.norm = k.norm;
      finite_difference_check(s, batch, 11);
    }
  }
}

TEST_CASE("training: loss and gradients equal torch autograd's (golden, float64), <= 1e-4 relative") {
  const nlohmann::json g = test::golden("training_grads.json");
  REQUIRE(g["cases"].size() >= 8);
  for (const auto& c : g["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const ModelSpec spec = spec_of(c["model"]);
    Model<double> m(spec);
    int seen = 0;
    m.params.each([&](const std::string& n, Mat<double>& p) {
      REQUIRE_MESSAGE(c["params"].contains(n), "the golden case has no " << n);
      const auto v = c["params"][n].get<std::vector<double>>();
      REQUIRE(v.size() == static_cast<std::size_t>(p.size()));
      std::copy(v.begin(), v.end(), p.data());
      ++seen;
    });
    CHECK(seen == static_cast<int>(c["params"].size()));
    const Batch b = batch_of(c["batch"]);
    Cache<double> cache;
    const Metrics mt = m.forward(b, cache);
    CHECK(rel(mt.loss, c["loss"].get<double>()) < 1e-9);
    Params<double> grad;
    m.backward(b, cache, grad);
    grad.each([&](const std::string& n, const Mat<double>& gt) {
      const auto e = c["grads"][n].get<std::vector<double>>();
      REQUIRE(e.size() == static_cast<std::size_t>(gt.size()));
      double worst = 0;
      double scale = 0;
      for (double v : e) scale = std::max(scale, std::abs(v));
      for (std::size_t i = 0; i < e.size(); ++i) worst = std::max(worst, rel(gt.data()[i], e[i], 1e-3 * scale + 1e-6));
      INFO(n << ": worst relative difference " << worst);
      CHECK(worst < 1e-4);
    });
  }
}

TEST_CASE("training: float and double forward passes agree (the float path is the one that trains)") {
  const nlohmann::json g = test::golden("training_grads.json");
  const auto& c = g["cases"][1];
  const ModelSpec spec = spec_of(c["model"]);
  Model<float> m(spec);
  m.params.each([&](const std::string& n, Mat<float>& p) {
    const auto v = c["params"][n].get<std::vector<double>>();
    for (std::size_t i = 0; i < v.size(); ++i) p.data()[i] = static_cast<float>(v[i]);
  });
  Cache<float> cache;
  const Batch b = batch_of(c["batch"]);
  CHECK(rel(m.forward(b, cache).loss, c["loss"].get<double>()) < 1e-5);
  Params<float> grad;
  m.backward(b, cache, grad);
  const auto e = c["grads"]["layers.0.wq"].get<std::vector<double>>();
  double scale = 0, worst = 0;
  for (double v : e) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < e.size(); ++i) worst = std::max(worst, std::abs(grad.layers[0].wq.data()[i] - e[i]) / scale);
  CHECK(worst < 1e-4);
}

TEST_CASE("training: attention rows sum to 1, masked cells are exactly 0, outputs ignore future tokens") {
  TaskSpec ts;
  ts.kind = TaskKind::induction, ts.length = 12, ts.symbols = 9;
  Task task;
  std::string err;
  REQUIRE(Task::make(ts, task, err));
  ModelSpec s;
  s.vocab = task.vocab(), s.context = 12, s.d_model = 16, s.n_heads = 2, s.n_kv_heads = 2, s.mlp = true;
  s.mask = train::MaskRule::sliding_window, s.window = 4, s.pos = PosKind::rope;
  Model<float> m(s);
  m.init(5);
  Batch b;
  task.sample(1, 0, 2, b);
  Cache<float> c;
  m.forward(b, c);
  for (const Mat<float>& P : c.layers[1].p)
    for (int i = 0; i < 12; ++i) {
      CHECK(std::abs(P.row(i).sum() - 1.0f) < 1e-5f);
      for (int j = 0; j < 12; ++j)
        if (j > i || i - j >= 4) CHECK(P(i, j) == 0.0f);
    }
  // change the last token: every earlier position's logits stay (causal)
  Batch b2 = b;
  b2.ids[11] = (b2.ids[11] + 1) % s.vocab;
  Cache<float> c2;
  m.forward(b2, c2);
  CHECK((c.probs.topRows(11) - c2.probs.topRows(11)).cwiseAbs().maxCoeff() == 0.0f);
  CHECK((c.probs.row(11) - c2.probs.row(11)).cwiseAbs().maxCoeff() > 0.0f);
}

TEST_CASE("training: tasks generate what they define") {
  std::string err;
  auto make = [&](TaskKind k, int length, int symbols = 10) {
    TaskSpec ts;
    ts.kind = k, ts.length = length, ts.symbols = symbols, ts.modulus = 11;
    Task t;
    REQUIRE_MESSAGE(Task::make(ts, t, err), err);
    return t;
  };
  Batch b;
  SUBCASE("copy, reverse and sort: the second half from the first, loss on it only") {
    for (TaskKind k : {TaskKind::copy, TaskKind::reverse, TaskKind::sort}) {
      const Task t = make(k, 10);
      t.sample(7, 0, 20, b);
      for (int s = 0; s < 20; ++s) {
        std::vector<int> seq(b.ids.begin() + s * 10, b.ids.begin() + s * 10 + 10);
        seq.push_back(b.targets[s * 10 + 9]);
        std::vector<int> first(seq.begin(), seq.begin() + 5), second(seq.begin() + 6, seq.end());
        if (k == TaskKind::reverse) std::reverse(first.begin(), first.end());
        if (k == TaskKind::sort) std::sort(first.begin(), first.end());
        CHECK(seq[5] == t.vocab() - 2);  // '|'
        CHECK(first == second);
        for (int p = 0; p < 10; ++p) CHECK(b.weight[s * 10 + p] == (p >= 5 ? 1.0f : 0.0f));
      }
    }
  }
  SUBCASE("induction: a segment repeated with a period that varies; targets from the first repeat on weighted") {
    const Task t = make(TaskKind::induction, 32);
    t.sample(7, 0, 60, b);
    std::set<int> periods;
    for (int s = 0; s < 60; ++s) {
      std::vector<int> seq(b.ids.begin() + s * 32, b.ids.begin() + s * 32 + 32);
      seq.push_back(b.targets[s * 32 + 31]);
      int P = 0;
      while (P < 32 && b.weight[s * 32 + P] == 0) ++P;  // the first weighted input is the period
      REQUIRE(P >= 4);
      REQUIRE(P <= 17);
      periods.insert(P);
      for (int i = P; i <= 32; ++i) CHECK(seq[i] == seq[i - P]);
      for (int i = P; i < 32; ++i) CHECK(b.weight[s * 32 + i] == 1.0f);
    }
    CHECK(periods.size() > 8);
  }
  SUBCASE("modular addition: c = a + b mod p; held-out pairs never trained on") {
    const Task t = make(TaskKind::modular_addition, 4);
    Batch v;
    t.validation(1, v);
    std::set<std::pair<int, int>> held;
    for (int s = 0; s < v.size; ++s) held.insert({v.ids[s * 4], v.ids[s * 4 + 2]});
    CHECK(held.size() > 20);
    CHECK(held.size() < 121 - 20);
    t.sample(3, 0, 500, b);
    for (int s = 0; s < 500; ++s) {
      const int a = b.ids[s * 4], c = b.ids[s * 4 + 2];
      CHECK(b.targets[s * 4 + 3] == (a + c) % 11);
      CHECK(held.count({a, c}) == 0);
      CHECK(t.tokens()[static_cast<std::size_t>(b.ids[s * 4 + 1])] == "+");
    }
  }
  SUBCASE("parentheses: the answer says whether the string is balanced, both answers occur") {
    const Task t = make(TaskKind::parentheses, 13);
    t.sample(9, 0, 200, b);
    int yes = 0;
    for (int s = 0; s < 200; ++s) {
      int depth = 0;
      bool ok = true;
      for (int p = 0; p < 12; ++p) {
        depth += t.tokens()[static_cast<std::size_t>(b.ids[s * 13 + p])] == "(" ? 1 : -1;
        ok &= depth >= 0;
      }
      ok &= depth == 0;
      const std::string answer = t.tokens()[static_cast<std::size_t>(b.targets[s * 13 + 12])];
      CHECK(answer == (ok ? "yes" : "no"));
      yes += ok;
    }
    CHECK(yes > 40);
    CHECK(yes < 160);
  }
  SUBCASE("text: windows of the built-in text; the tokens are its characters") {
    const Task t = make(TaskKind::text, 32);
    t.sample(1, 0, 4, b);
    std::string s;
    for (int p = 0; p < 32; ++p) s += t.tokens()[static_cast<std::size_t>(b.ids[p])];
    CHECK(builtin_text().find(s) != std::string::npos);
  }
  SUBCASE("the same seed and index give the same batch; another seed another") {
    const Task t = make(TaskKind::induction, 16);
    Batch a, c, d;
    t.sample(4, 100, 8, a), t.sample(4, 100, 8, c), t.sample(5, 100, 8, d);
    CHECK(a.ids == c.ids);
    CHECK(a.ids != d.ids);
  }
}

TEST_CASE("training: task files are read key by key; bad ones are refused by name") {
  std::string err;
  TrainSpec s;
  auto read = [&](const char* text) {
    nlohmann::json j;
    REQUIRE(parse_json_input(text, j, err));
    return read_train_spec(j, "t.json", "", s, err);
  };
  CHECK(read(R"({"task": {"kind": "copy", "length": 16}, "model": {"heads": 2, "positional": "rope"}, "training": {"steps": 5}})"));
  CHECK(s.task.kind == TaskKind::copy);
  CHECK(s.model.pos == PosKind::rope);
  CHECK(s.model.n_kv_heads == 2);
  CHECK_FALSE(read(R"({"task": {"kind": "copyy"}})"));
  CHECK(err.find("'kind' must be copy, reverse") != std::string::npos);
  CHECK_FALSE(read(R"({"model": {"layrs": 2}})"));
  CHECK(err.find("unknown key 'layrs'") != std::string::npos);
  CHECK_FALSE(read(R"({"model": {"layers": 9}})"));
  CHECK(err.find("layers") != std::string::npos);
  CHECK_FALSE(read(R"({"training": {"lr": "fast"}})"));
  CHECK_FALSE(read(R"({"task": {"text_file": "/no/such/file.txt"}})"));
  CHECK(err.find("/no/such/file.txt") != std::string::npos);
  CHECK(read(R"({"model": {"heads": 3, "d_model": 64}})"));
  CHECK_FALSE(Trainer::make(s, err));
  CHECK(err.find("heads (3) must divide d_model (64)") != std::string::npos);
}

TEST_CASE("training: AdamW's first step moves every weight by lr (sign of its gradient) plus decay") {
  TrainSpec s;
  s.task.kind = TaskKind::copy, s.task.length = 8, s.task.symbols = 5;
  s.model.d_model = 16, s.model.n_heads = 2, s.model.n_kv_heads = 2, s.model.n_layers = 1;
  s.training.warmup = 0, s.training.lr = 1e-3, s.training.weight_decay = 0.1, s.training.clip = 0, s.training.eps = 1e-12;
  s.training.steps = 10;
  std::string err;
  auto t = Trainer::make(s, err);
  REQUIRE_MESSAGE(t, err);
  const Params<float> before = t->model().params;
  // the gradient the step will use: the same batch through a copy of the model
  Batch b;
  t->task().sample(0, 0, s.training.batch, b);
  Model<float> m(t->spec().model);
  m.params = before;
  Cache<float> c;
  m.forward(b, c);
  Params<float> g;
  m.backward(b, c, g);
  t->train_step();
  const float lr = 1e-3f;
  const Mat<float>& w0 = before.layers[0].wq;
  const Mat<float>& w1 = t->model().params.layers[0].wq;
  const Mat<float>& gw = g.layers[0].wq;
  int checked = 0;
  for (Eigen::Index i = 0; i < w0.size(); ++i) {
    if (std::abs(gw.data()[i]) < 1e-7f) continue;
    const float expect = w0.data()[i] - lr * ((gw.data()[i] > 0 ? 1.0f : -1.0f) + 0.1f * w0.data()[i]);
    CHECK(std::abs(w1.data()[i] - expect) < 1e-6f);
    ++checked;
  }
  CHECK(checked > 100);
  // biases: no decay
  const float gb = g.layers[0].bq(0, 0), b0 = before.layers[0].bq(0, 0), b1 = t->model().params.layers[0].bq(0, 0);
  if (std::abs(gb) > 1e-7f) CHECK(std::abs(b1 - (b0 - lr * (gb > 0 ? 1.0f : -1.0f))) < 1e-6f);
  // the schedule: warm-up is linear, the cosine ends at min_lr_ratio * lr
  s.training.warmup = 10, s.training.steps = 110, s.training.min_lr_ratio = 0.1;
  auto t2 = Trainer::make(s, err);
  CHECK(std::abs(t2->lr_at(0) - 1e-4) < 1e-12);
  CHECK(std::abs(t2->lr_at(9) - 1e-3) < 1e-12);
  CHECK(std::abs(t2->lr_at(60) - 0.55e-3) < 1e-9);
  CHECK(std::abs(t2->lr_at(110) - 1e-4) < 1e-12);
}

TEST_CASE("training: a 2-layer attention-only model forms induction heads on the induction task (fixed seed, step budget)") {
  TrainSpec s;
  std::string err;
  nlohmann::json j;
  std::string text;
  REQUIRE(read_file_limited(std::string(ATTNLAB_ASSET_DIR) + "/training/induction.json", 1 << 20, text, err));
  REQUIRE(parse_json_input(text, j, err));
  REQUIRE_MESSAGE(read_train_spec(j, "induction.json", "", s, err), err);
  CHECK(s.model.n_layers == 2);
  CHECK_FALSE(s.model.mlp);
  // the budget: twice the file's steps (its schedule stretched to them), stopped at the phase
  // change; another machine's rounding takes another path to it (about 1900-2500 steps here)
  s.training.steps *= 2;
  auto t = Trainer::make(s, err);
  REQUIRE_MESSAGE(t, err);
  t->run(nullptr, {}, true);  // stops at the phase change
  const int change = t->phase_change_step();
  const LogRow& last = t->log().back();
  INFO("phase change at step " << change << "; last val loss " << last.val_loss << " (first " << t->log().front().val_loss << ")");
  REQUIRE(change > 0);
  CHECK(change <= s.training.steps);
  // before it, no head of layer 1 was an induction head; after it, the loss is low and some
  // head of layer 0 attends to the previous token (the circuit's first half)
  const int H = s.model.n_heads;
  double early = 0, prev = 0;
  for (int h = 0; h < H; ++h) early = std::max(early, t->log().front().induction[static_cast<std::size_t>(H + h)]);
  for (int h = 0; h < H; ++h) prev = std::max(prev, last.prev_token[static_cast<std::size_t>(h)]);
  CHECK(early < 0.1);
  CHECK(prev > 0.3);
  CHECK(last.val_accuracy > 0.7);
  CHECK(last.val_loss < 0.5 * t->log()[4].val_loss);  // the plateau: the first evaluation after warm-up (step 100)
}

TEST_CASE("training: a saved model reopened by the model loader gives the trainer's attention and predictions") {
  struct Case {
    const char* name;
    PosKind pos;
    int kv;
    bool mlp;
  };
  for (const Case& k : {Case{"GPT-2 layout, learned positions, MLP", PosKind::learned, 2, true},
                        Case{"GPT-2 layout, sinusoidal, GQA", PosKind::sinusoidal, 1, false},
                        Case{"GPT-NeoX layout, RoPE", PosKind::rope, 2, false}}) {
    SUBCASE(k.name) {
      TrainSpec s;
      s.task.kind = TaskKind::copy, s.task.length = 12, s.task.symbols = 7;
      s.model.d_model = 16, s.model.n_heads = 2, s.model.n_kv_heads = k.kv, s.model.mlp = k.mlp, s.model.pos = k.pos;
      s.training.steps = 30, s.training.lr = 3e-3, s.training.eval_every = 10;
      std::string err;
      auto t = Trainer::make(s, err);
      REQUIRE_MESSAGE(t, err);
      t->run();
      const std::string dir = std::filesystem::temp_directory_path() / ("attnlab-train-" + std::to_string(::getpid()));
      REQUIRE_MESSAGE(t->save(dir, err), err);
      Failure f;
      auto m = HfModel::load(dir, f);
      REQUIRE_MESSAGE(m, f.message);
      const ProbeAttention p = t->probe();
      std::string text;
      for (const std::string& tok : p.tokens) text += (text.empty() ? "" : " ") + tok;
      std::vector<int> ids;
      std::vector<Token> toks;
      REQUIRE(m->tokenize(text, ids, toks, err));
      CHECK(ids == p.ids);
      const Outcome o = m->compute(text);
      REQUIRE(o.result);
      const Result& r = *o.result;
      REQUIRE(r.layers.size() == 2);
      double worst = 0;
      for (int l = 0; l < 2; ++l)
        for (int h = 0; h < 2; ++h)
          worst = std::max(worst, static_cast<double>((r.layers[l].heads[h].weights - p.weights[l][h]).cwiseAbs().maxCoeff()));
      INFO("max |attention difference| " << worst);
      CHECK(worst < 1e-5);
      // the next-token distribution at the last position: the loader's unembedding and the trainer's
      Batch b;
      t->task().probe(b);
      Model<float> mm(t->spec().model);
      mm.params = t->model().params;
      Cache<float> c;
      mm.forward(b, c);
      REQUIRE(!r.next_tokens.empty());
      const auto& top = r.next_tokens.back().front();
      CHECK(std::abs(top.p - c.probs(11, top.id)) < 1e-5);
      std::filesystem::remove_all(dir);
    }
  }
  SUBCASE("ALiBi has no Hugging Face layout: refused with the reason, the log still written") {
    TrainSpec s;
    s.task.kind = TaskKind::copy, s.task.length = 8, s.task.symbols = 5;
    s.model.d_model = 16, s.model.n_heads = 2, s.model.n_kv_heads = 2, s.model.pos = PosKind::alibi;
    s.training.steps = 2;
    std::string err;
    auto t = Trainer::make(s, err);
    t->run();
    const std::string dir = std::filesystem::temp_directory_path() / ("attnlab-train-alibi-" + std::to_string(::getpid()));
    CHECK_FALSE(t->save(dir, err));
    CHECK(err.find("ALiBi") != std::string::npos);
    CHECK(std::filesystem::exists(dir + "/train_log.csv"));
    std::filesystem::remove_all(dir);
  }
}
