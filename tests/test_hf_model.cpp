// Tiny GPT-2 models in the Hugging Face layout (tests/models, written by
// tests/reference/make_tiny_models.py) against the numpy forward pass and BPE in that script.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <numeric>
#include <unistd.h>

#include "models/hf_model.hpp"
#include "session/cost.hpp"
#include "models/safetensors.hpp"
#include "present/views.hpp"
#include "test_util.hpp"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {
const std::string kModels = std::string(ATTNLAB_GOLDEN_DIR) + "/../models/";

std::string copy_with_config(const std::string& model, const std::string& key, const nlohmann::json& value) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab-model-" + std::to_string(::getpid()) + "-" + key);
  fs::remove_all(dir);
  fs::copy(kModels + model, dir);
  std::ifstream in(dir / "config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  if (value.is_null()) cfg.erase(key);
  else cfg[key] = value;
  std::ofstream(dir / "config.json") << cfg.dump();
  return dir.string();
}
// the Result's tokens and every head's weights against the numpy golden data
void check_against(const Result& r, const nlohmann::json& tokens, const nlohmann::json& weights, int n_layers, int n_heads) {
  REQUIRE(r.tokens.size() == tokens.size());
  for (std::size_t i = 0; i < r.tokens.size(); ++i) CHECK(r.tokens[i].text == tokens[i].get<std::string>());
  for (int l = 0; l < n_layers; ++l)
    for (int h = 0; h < n_heads; ++h)
      test::check_matrix(r.layers[l].heads[h].weights, weights[l][h], 1e-5, 1e-4,
                         "layer " + std::to_string(l) + " head " + std::to_string(h));
}
}  // namespace

TEST_CASE("gpt2: tiny models (F32, BF16 with 'transformer.' names and tokenizer.json, sharded) match numpy") {
  const auto g = test::golden("tiny_gpt2.json");
  for (const char* name : {"tiny-gpt2", "tiny-gpt2-bf16", "tiny-gpt2-sharded"}) {
    INFO(name);
    Failure err;
    std::atomic<float> progress{0};
    auto m = HfModel::load(kModels + name, err, &progress);
    REQUIRE_MESSAGE(m, err.message);
    CHECK(progress.load() == doctest::Approx(1.0));
    CHECK(m->info().n_layers == 2);
    CHECK(m->info().dtype == (std::string(name) == "tiny-gpt2-bf16" ? "BF16" : "F32"));
    const Outcome o = m->compute(g["text"].get<std::string>());
    REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
    const Result& r = *o.result;
    check_against(r, g["tokens"], g["models"][name], 2, 2);
    CHECK(r.layers[1].heads[0].weights(0, 1) == 0.0f);  // causal: exactly 0
    CHECK(r.metrics.size() == 2);
  }
}

TEST_CASE("gpt2: wrong config values, missing tensors and long texts give their reason") {
  Failure err;
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt2", "model_type", "gemma3"), err));
  CHECK(err.message.find("model_type 'gemma3' is not supported yet (gpt2, bert, llama, qwen2, mistral, phi3, gpt_neox, gemma2)") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt2", "n_head", 3), err));
  CHECK(err.message.find("n_embd 16 is not divisible by n_head 3") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt2", "n_layer", 3), err));
  CHECK(err.message.find("missing tensor 'h.2.ln_1.weight'") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt2", "n_positions", 64), err));
  CHECK(err.message.find("'wpe.weight' has shape [48, 16], expected [64, 16]") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt2", "n_embd", nullptr), err));
  CHECK_MESSAGE(err.message.find("config.json: 'n_embd' is missing") != std::string::npos, err.message);
  CHECK_FALSE(HfModel::load(kModels + "no-such-model", err));
  CHECK(err.message.find("config.json: cannot open") != std::string::npos);
  std::atomic<bool> cancel{true};
  CHECK_FALSE(HfModel::load(kModels + "tiny-gpt2", err, nullptr, &cancel));
  CHECK(err.cancelled);  // said by type, with no message to show as an error
  CHECK(err.message.empty());

  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE(m);
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += " x";
  const Outcome o = m->compute(long_text);
  REQUIRE(o.problems.size() == 1);
  CHECK(o.problems[0] == "the text has 120 tokens; this model takes at most 48");  // " x": a space and an x each
  CHECK(m->compute("bad \xff byte").problems.at(0).find("not valid UTF-8") != std::string::npos);
}

TEST_CASE("bert: a tiny BERT (post-LN, bidirectional, WordPiece, 'bert.' names) matches numpy") {
  const auto g = test::golden("tiny_bert.json");
  Failure err;
  auto m = HfModel::load(kModels + "tiny-bert", err);
  REQUIRE_MESSAGE(m, err.message);
  CHECK(m->info().model_type == "bert");
  const Outcome o = m->compute(g["text"].get<std::string>());
  REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
  const Result& r = *o.result;
  check_against(r, g["tokens"], g["weights"], 2, 4);
  CHECK(r.layers[0].heads[0].weights(0, r.tokens.size() - 1) > 0.0f);  // bidirectional: [CLS] sees [SEP]
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-bert", "hidden_act", "relu"), err));
  CHECK(err.message.find("hidden_act 'relu' is not supported") != std::string::npos);
}

TEST_CASE("llama: a tiny Llama (F16, RMSNorm, RoPE, GQA 4:2, SwiGLU, metaspace BPE with byte fallback) matches numpy") {
  const auto g = test::golden("tiny_llama.json");
  Failure err;
  auto m = HfModel::load(kModels + "tiny-llama", err);
  REQUIRE_MESSAGE(m, err.message);
  CHECK(m->info().dtype == "F16");
  CHECK(m->info().n_kv_heads == 2);
  const Outcome o = m->compute(g["text"].get<std::string>());
  REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
  const Result& r = *o.result;
  check_against(r, g["tokens"], g["weights"], 2, 4);
  CHECK(r.layers[0].heads[1].kv_head == 0);
  CHECK(r.layers[0].heads[2].kv_head == 1);
  CHECK(r.layers[0].heads[2].k == r.layers[0].heads[3].k);  // one K/V head for the group
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-llama", "num_key_value_heads", 3), err));
  CHECK(err.message.find("is not a multiple of num_key_value_heads 3") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-llama", "rope_scaling", {{"type", "linear"}}), err));
  CHECK(err.message.find("rope_scaling") != std::string::npos);  // no factor
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-llama", "rope_scaling", "linear"), err));
  CHECK(err.message.find("rope_scaling must be an object") != std::string::npos);
}

TEST_CASE("interventions: another mask and temperature on one layer of a loaded model, labelled") {
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE(m);
  const std::string text = "the cat sat on the mat";
  const Outcome base = m->compute(text);
  Intervention iv;
  iv.enabled = true;
  iv.layer = 1;
  iv.temperature = 0.5;
  iv.replace_mask = true;
  iv.mask.kind = MaskKind::none;
  const Outcome o = m->compute(text, nullptr, {}, iv);
  REQUIRE(base.result);
  REQUIRE(o.result);
  CHECK(o.result->intervention == "layer 1: mask none, temperature 0.5");
  CHECK(base.result->intervention.empty());
  // layer 0 is untouched (bit for bit); layer 1 sees the future, with softmax(logits / 0.5) by hand
  CHECK(o.result->layers[0].heads[0].weights == base.result->layers[0].heads[0].weights);
  const HeadResult& h = o.result->layers[1].heads[1];
  const int n = static_cast<int>(h.weights.rows());
  CHECK(h.weights(0, n - 1) > 0.0f);
  for (int i = 0; i < n; ++i) {
    double z = 0;
    for (int j = 0; j < n; ++j) z += std::exp((h.logits(i, j) - h.logits.row(i).maxCoeff()) / 0.5);
    for (int j = 0; j < n; ++j)
      CHECK(h.weights(i, j) == doctest::Approx(std::exp((h.logits(i, j) - h.logits.row(i).maxCoeff()) / 0.5) / z).epsilon(1e-5));
  }
  // a sliding window on every layer: exactly zero outside it
  iv.layer = -1;
  iv.temperature = 1.0;
  iv.mask.kind = MaskKind::sliding_window;
  iv.mask.window = 1;
  const Outcome w = m->compute(text, nullptr, {}, iv);
  REQUIRE(w.result);
  for (const auto& layer : w.result->layers)
    for (const auto& hh : layer.heads)
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
          if (std::abs(i - j) > 1) CHECK(hh.weights(i, j) == 0.0f);
}

TEST_CASE("models: the Result carries the model's own positions (GPT-2 wpe rows, Llama RoPE), not a seeded table") {
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE_MESSAGE(m, err.message);
  const Outcome o = m->compute("hello world again");
  REQUIRE(o.result);
  std::string serr;
  auto st = SafeTensors::open(kModels + "tiny-gpt2/model.safetensors", serr);
  REQUIRE(st);
  std::vector<float> wpe;
  REQUIRE(st->read("wpe.weight", wpe, serr));
  const Matrix& table = o.result->positions.table;
  const int n = static_cast<int>(o.result->tokens.size()), d = m->info().d_model;
  REQUIRE(table.rows() == n);
  REQUIRE(table.cols() == d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) CHECK(table(i, j) == wpe[std::size_t(i) * d + j]);  // a copy of the stored rows
  CHECK(o.result->positions.source.find("wpe.weight") != std::string::npos);
  const PositionalView v = positional_view(*o.result);
  CHECK(v.encoding == table);

  auto llama = HfModel::load(kModels + "tiny-llama", err);
  REQUIRE_MESSAGE(llama, err.message);
  const Outcome ol = llama->compute("hello world");
  REQUIRE(ol.result);
  CHECK(ol.result->positions.kind == PositionalKind::rope);
  CHECK(ol.result->positions.table.size() == 0);
  CHECK(ol.result->positions.rope_base == llama->info().rope_theta);
  CHECK(positional_view(*ol.result).rope_angles.cols() == llama->info().d_head / 2);
}

TEST_CASE("llama: a text above 2048 tokens runs every layer as an attention field, equal to the dense forward pass") {
  Failure err;
  auto m = HfModel::load(copy_with_config("tiny-llama", "max_position_embeddings", 4096), err);
  REQUIRE_MESSAGE(m, err.message);
  std::string text;
  for (int i = 0; i < 1100; ++i) text += (i % 3 ? "the cat " : "sat on ");
  const Outcome f = m->compute(text);
  REQUIRE_MESSAGE(f.result, (f.problems.empty() ? "" : f.problems[0]));
  const Result& fr = *f.result;
  REQUIRE(fr.tokens.size() > 2048);
  CHECK(fr.is_field());
  CHECK(fr.layers.empty());
  REQUIRE(fr.fields.size() == 2);
  ComputeOptions dense;
  dense.dense = true;
  const Outcome d = m->compute(text, nullptr, dense);
  REQUIRE(d.result);
  const Result& dr = *d.result;
  REQUIRE_FALSE(dr.is_field());
  const int n = static_cast<int>(fr.tokens.size());
  for (int l = 0; l < 2; ++l)  // layer 1 reads layer 0's output: the residual streams agree too
    for (int h = 0; h < 4; ++h) {
      CAPTURE(l);
      CAPTURE(h);
      const FieldLayer& L = fr.fields[l];
      CHECK(L.heads[h].kv_head == dr.layers[l].heads[h].kv_head);
      for (const int r0 : {0, 1024, n - 64}) {
        const Matrix t = field_tile(L.heads[h], L.specs[h], r0, r0 + 64, 0, n, false);
        CHECK((t - dr.layers[l].heads[h].weights.middleRows(r0, 64)).cwiseAbs().maxCoeff() <= 1e-5);
      }
      CHECK((L.heads[h].output - dr.layers[l].heads[h].output).cwiseAbs().maxCoeff() <= 1e-4);
    }
  // an intervention on a long text: temperature 2 on layer 0, the rule's mask replaced
  Intervention iv;
  iv.enabled = true;
  iv.layer = 0;
  iv.temperature = 2.0;
  iv.replace_mask = true;
  iv.mask.kind = MaskKind::causal_sliding_window;
  iv.mask.window = 8;
  const Outcome fi = m->compute(text, nullptr, {}, iv);
  const Outcome di = m->compute(text, nullptr, dense, iv);
  REQUIRE(fi.result);
  REQUIRE(di.result);
  const Matrix t = field_tile(fi.result->fields[0].heads[2], fi.result->fields[0].specs[2], 500, 564, 0, n, false);
  CHECK((t - di.result->layers[0].heads[2].weights.middleRows(500, 64)).cwiseAbs().maxCoeff() <= 1e-5);
  CHECK(fi.result->fields[0].heads[2].cells < 10LL * n);  // the window's cells only
  // above the memory budget: q and k as F16, the same attention up to their rounding; refused
  // with a reason only when even that does not fit
  std::shared_ptr<const Result> half;
  std::string refused;
  // bisection between a budget F32 fits in and one nothing fits in
  double fits = 4 * fr.bytes() + 64e6, too_small = 1e5;
  for (int it = 0; it < 60 && !half; ++it) {
    const double budget = std::sqrt(fits * too_small);
    set_memory_budget_bytes(budget);
    const Outcome o = m->compute(text);
    if (!o.result) refused = o.problems.empty() ? "cancelled" : o.problems[0], too_small = budget;
    else if (o.result->fields[0].heads[0].half) half = o.result;
    else fits = budget;
  }
  set_memory_budget_bytes(1e5);  // not even the F16 field fits: refused, with the reason
  {
    const Outcome o = m->compute(text);
    CHECK_FALSE(o.result);
    refused = o.problems.empty() ? "" : o.problems[0];
  }
  set_memory_budget_bytes(0);
  INFO("refused: " << refused);
  REQUIRE(half);
  CHECK(refused.find("with q and k as F16") != std::string::npos);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 4; ++h) {
      const FieldLayer& L = half->fields[l];
      CHECK(L.heads[h].half);
      const Matrix t = field_tile(L.heads[h], L.specs[h], n - 64, n, 0, n, false);
      CHECK((t - dr.layers[l].heads[h].weights.middleRows(n - 64, 64)).cwiseAbs().maxCoeff() <= 5e-3);
      CHECK((t.rowwise().sum().array() - 1).abs().maxCoeff() <= 1e-5);
    }
}

namespace {
// The Result's next tokens at every position against numpy's full next-token distribution: the
// top k in numpy's order (ids), and their probabilities (1e-5)
void check_next(const Result& r, const nlohmann::json& probs, int k) {
  REQUIRE(r.next_tokens.size() == probs.size());
  for (std::size_t i = 0; i < probs.size(); ++i) {
    CAPTURE(i);
    const std::vector<double> p = probs[i].get<std::vector<double>>();
    std::vector<int> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    REQUIRE(r.next_tokens[i].size() == static_cast<std::size_t>(k));
    for (int t = 0; t < k; ++t) {
      CAPTURE(t);
      CHECK(std::abs(r.next_tokens[i][t].p - p[r.next_tokens[i][t].id]) <= 1e-5);
      // the same token as numpy's t-th, unless the two are within float noise of each other
      if (r.next_tokens[i][t].id != order[t]) CHECK(std::abs(p[order[t]] - p[r.next_tokens[i][t].id]) <= 1e-6);
    }
  }
}

Intervention ablation(const std::string& spec, const std::string& mode, const HfModel& m) {
  Intervention iv;
  std::string why;
  REQUIRE_MESSAGE(parse_ablate(spec, m.info().n_layers, m.info().n_heads, iv.ablate, why), why);
  iv.ablate_mode = mode == "mean" ? AblateMode::mean : AblateMode::zero;
  return iv;
}
}  // namespace

// Every "next" case of a golden file through its model, plain and with each case's ablation (the
// top 5 kept): `check(golden, case, result, spec, mode)`.
template <class Check>
void each_next_case(const std::string& file, const std::string& model, Check check) {
  INFO(model);
  const auto g = test::golden(file);
  Failure err;
  auto m = HfModel::load(kModels + model, err);
  REQUIRE_MESSAGE(m, err.message);
  ComputeOptions opt;
  opt.top_k = 5;
  for (const auto& c : g["next"]) {
    const std::string spec = c["ablate"], mode = c["mode"];
    INFO("ablate '" << spec << "' " << mode);
    const Intervention iv = spec.empty() ? Intervention{} : ablation(spec, mode, *m);
    const Outcome o = m->compute(g["text"].get<std::string>(), nullptr, opt, iv);
    REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
    check(g, c, *o.result, spec, mode);
  }
}

TEST_CASE("output head: next tokens of the last position only, the others from Result::final_hidden, equal numpy's") {
  // the window's way (ComputeOptions::next_tokens_last): the worker lists the last position, any
  // other comes from the kept final hidden state on demand; both against numpy's distributions
  for (const auto& fm : {std::pair{"tiny_gpt2.json", "tiny-gpt2"}, std::pair{"tiny_llama.json", "tiny-llama"}}) {
    INFO(fm.second);
    const auto g = test::golden(fm.first);
    Failure err;
    auto m = HfModel::load(kModels + fm.second, err);
    REQUIRE_MESSAGE(m, err.message);
    ComputeOptions opt;
    opt.top_k = 5, opt.next_tokens_last = true;
    const nlohmann::json& c = g["next"][0];
    REQUIRE(c["ablate"].get<std::string>().empty());
    const Outcome o = m->compute(g["text"].get<std::string>(), nullptr, opt, Intervention{});
    REQUIRE(o.result);
    const Result& r = *o.result;
    const int n = static_cast<int>(r.tokens.size());
    REQUIRE(r.next_tokens.size() == std::size_t(n));
    REQUIRE(r.final_hidden.rows() == n);
    for (int i = 0; i + 1 < n; ++i) CHECK(r.next_tokens[i].empty());
    Result full;  // the lists assembled: the last from the worker, the others asked for
    full.next_tokens.resize(n);
    full.next_tokens.back() = r.next_tokens.back();
    for (int i = 0; i + 1 < n; ++i) {
      std::vector<std::vector<Result::NextToken>> one;
      std::string note;
      REQUIRE(m->next_tokens(r.final_hidden.middleRows(i, 1), 5, one, note));
      REQUIRE(one.size() == 1);
      full.next_tokens[i] = one[0];
    }
    check_next(full, c["probs"], 5);
  }
}

TEST_CASE("output head: next-token (BERT: masked-LM) probabilities and head ablations (zero, mean) equal numpy's") {
  for (const auto& fm : {std::pair{"tiny_gpt2.json", "tiny-gpt2"}, std::pair{"tiny_llama.json", "tiny-llama"},
                         std::pair{"tiny_bert.json", "tiny-bert"}})
    each_next_case(fm.first, fm.second,
                   [](const nlohmann::json&, const nlohmann::json& c, const Result& r, const std::string& spec,
                      const std::string& mode) {
                     check_next(r, c["probs"], 5);
                     if (spec.empty()) {
                       CHECK(r.intervention.empty());
                     } else {
                       CHECK(r.intervention.find("ablate " + std::string(spec.substr(0, 3))) != std::string::npos);
                       CHECK(r.intervention.find(mode == "zero" ? "(zero)" : "(mean over positions)") != std::string::npos);
                     }
                   });
}

TEST_CASE("output head: a zero-ablated head's output is 0 and its attention is kept; bad specs and BERT say why") {
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE(m);
  const Outcome o = m->compute("hello world", nullptr, {}, ablation("1.0", "zero", *m));
  REQUIRE(o.result);
  CHECK(o.result->layers[1].heads[0].output.cwiseAbs().maxCoeff() == 0.0f);
  CHECK(o.result->layers[1].heads[1].output.cwiseAbs().maxCoeff() > 0.0f);
  const auto& w = o.result->layers[1].heads[0].weights;
  for (Eigen::Index i = 0; i < w.rows(); ++i) CHECK(w.row(i).sum() == doctest::Approx(1.0).epsilon(1e-5));
  const Outcome mean = m->compute("hello world", nullptr, {}, ablation("0.1", "mean", *m));
  REQUIRE(mean.result);
  const Matrix& mo = mean.result->layers[0].heads[1].output;
  CHECK((mo.rowwise() - mo.row(0)).cwiseAbs().maxCoeff() == 0.0f);  // every position the same row
  std::vector<std::pair<int, int>> out;
  std::string why;
  CHECK_FALSE(parse_ablate("2.0", 2, 2, out, why));
  CHECK(why.find("does not exist") != std::string::npos);
  CHECK_FALSE(parse_ablate("1", 2, 2, out, why));
  CHECK(why.find("LAYER.HEAD") != std::string::npos);
  CHECK_FALSE(parse_ablate("0.1,", 2, 2, out, why));
  CHECK(parse_ablate("0.1,1.0,0.1", 2, 2, out, why));
  CHECK(out == std::vector<std::pair<int, int>>{{0, 1}, {1, 0}});
  // a BertModel folder (no cls.predictions.*): no prediction, and the Result says why
  const fs::path bare = fs::temp_directory_path() / ("attnlab-bert-bare-" + std::to_string(::getpid()));
  fs::remove_all(bare);
  fs::copy(kModels + "tiny-bert", bare);
  {
    std::ifstream in(bare / "model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::uint64_t len = 0;
    std::memcpy(&len, bytes.data(), 8);
    nlohmann::json header = nlohmann::json::parse(bytes.substr(8, len));
    for (auto it = header.begin(); it != header.end();)
      it = it.key().starts_with("cls.") ? header.erase(it) : std::next(it);
    std::uint64_t end = 0;  // the head's bytes come last: the data ends where the other tensors end
    for (const auto& [k, v] : header.items())
      if (k != "__metadata__") end = std::max(end, v["data_offsets"][1].get<std::uint64_t>());
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');
    const std::uint64_t hl = h.size();
    std::ofstream out(bare / "model.safetensors", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&hl), 8);
    out << h << bytes.substr(8 + len, end);
  }
  auto bert = HfModel::load(bare.string(), err);
  REQUIRE_MESSAGE(bert, err.message);
  const Outcome b = bert->compute("hello world");
  REQUIRE(b.result);
  CHECK(b.result->next_tokens.empty());
  CHECK(b.result->next_tokens_note.find("cls.predictions") != std::string::npos);
  ComputeOptions none;
  none.top_k = 0;
  CHECK(m->compute("hello world", nullptr, none).result->next_tokens.empty());
}

TEST_CASE("logit lens: each layer's top token per position equals numpy's; the last layer's is the top next token") {
  const auto g = test::golden("tiny_gpt2.json");
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE(m);
  ComputeOptions opt;
  opt.logit_lens = true;
  const Outcome o = m->compute(g["text"].get<std::string>(), nullptr, opt);
  REQUIRE(o.result);
  const Result& r = *o.result;
  REQUIRE(r.logit_lens.size() == 2);
  for (int l = 0; l < 2; ++l)
    for (std::size_t i = 0; i < r.tokens.size(); ++i) {
      CAPTURE(l);
      CAPTURE(i);
      const std::vector<double> p = g["lens"][l][i].get<std::vector<double>>();
      const int best = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
      const auto& t = r.logit_lens[l][i];
      CHECK(std::abs(t.p - p[best]) <= 1e-5);
      if (t.id != best) CHECK(std::abs(p[t.id] - p[best]) <= 1e-6);
    }
  for (std::size_t i = 0; i < r.tokens.size(); ++i) CHECK(r.logit_lens[1][i].id == r.next_tokens[i][0].id);
  CHECK(m->compute("hi", nullptr, {}).result->logit_lens.empty());  // only when asked
}

TEST_CASE("qwen2 (q, k, v biases, tied embeddings) and mistral (sliding window of 5) match numpy: attention and next tokens") {
  for (const auto& fm : {std::pair{"tiny_qwen2.json", "tiny-qwen2"}, std::pair{"tiny_mistral.json", "tiny-mistral"}})
    each_next_case(fm.first, fm.second,
                   [](const nlohmann::json& g, const nlohmann::json& c, const Result& r, const std::string& spec,
                      const std::string&) {
                     if (spec.empty()) check_against(r, g["tokens"], g["weights"], 2, 4);
                     check_next(r, c["probs"], 5);
                   });
  // Mistral's window: a query 10 tokens in sees exactly its last 5 keys, exactly 0 elsewhere
  Failure err;
  auto mistral = HfModel::load(kModels + "tiny-mistral", err);
  REQUIRE(mistral);
  const Outcome o = mistral->compute("the quick brown fox jumps over the lazy dog");
  REQUIRE(o.result);
  const Matrix& w = o.result->layers[1].heads[3].weights;
  for (Eigen::Index j = 0; j < w.cols(); ++j) CHECK((w(10, j) > 0) == (j > 5 && j <= 10));
  CHECK(o.result->session.attention.mask.kind == MaskKind::causal_sliding_window);
  // refused with the key named
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-qwen2", "use_sliding_window", true), err));
  CHECK(err.message.find("use_sliding_window") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-mistral", "sliding_window", 0), err));
  CHECK(err.message.find("sliding_window") != std::string::npos);
}

TEST_CASE("phi3 (fused qkv and gate_up, half the head rotated, window 6), gpt_neox (per-head fused qkv, parallel and "
          "sequential residual) and gemma2 (soft-capping, local and global layers, 1 + w norms) match numpy") {
  struct Case {
    const char *golden, *model;
    int heads;
  };
  for (const Case& c : {Case{"tiny_phi3.json", "tiny-phi3", 4}, Case{"tiny_gpt_neox.json", "tiny-gpt-neox", 3},
                        Case{"tiny_gpt_neox_sequential.json", "tiny-gpt-neox-sequential", 3},
                        Case{"tiny_gemma2.json", "tiny-gemma2", 4}}) {
    const int heads = c.heads;
    each_next_case(c.golden, c.model,
                   [heads](const nlohmann::json& g, const nlohmann::json& cs, const Result& r, const std::string& spec,
                           const std::string&) {
                     if (spec.empty()) check_against(r, g["tokens"], g["weights"], 2, heads);
                     else CHECK(r.intervention.find("ablate") != std::string::npos);
                     check_next(r, cs["probs"], 5);
                   });
  }
  Failure err;
  // Gemma 2: layer 0 local (a window of 4 keys), layer 1 global; no logit above the cap
  auto gemma = HfModel::load(kModels + "tiny-gemma2", err);
  REQUIRE_MESSAGE(gemma, err.message);
  const Outcome o = gemma->compute("the quick brown fox jumps over the lazy dog");
  REQUIRE(o.result);
  const Result& r = *o.result;
  for (Eigen::Index j = 0; j < r.layers[0].heads[1].weights.cols(); ++j) {
    CHECK((r.layers[0].heads[1].weights(10, j) > 0) == (j > 6 && j <= 10));
    CHECK((r.layers[1].heads[1].weights(10, j) > 0) == (j <= 10));
  }
  float worst = 0;
  for (const auto& h : r.layers[1].heads)
    for (Eigen::Index i = 0; i < h.logits.rows(); ++i)
      for (Eigen::Index j = 0; j <= i; ++j) worst = std::max(worst, std::abs(h.logits(i, j)));
  CHECK(worst <= 2.0f);
  CHECK(worst > 1.0f);
  // Phi-3's window: 6 keys
  auto phi = HfModel::load(kModels + "tiny-phi3", err);
  REQUIRE_MESSAGE(phi, err.message);
  const Outcome p = phi->compute("the quick brown fox jumps over the lazy dog");
  REQUIRE(p.result);
  for (Eigen::Index j = 0; j < p.result->layers[1].heads[0].weights.cols(); ++j)
    CHECK((p.result->layers[1].heads[0].weights(12, j) > 0) == (j > 6 && j <= 12));
  CHECK(p.result->positions.rope_fraction == doctest::Approx(0.5));
  // refused with the key named
  const std::pair<const char*, nlohmann::json> bad[] = {{"partial_rotary_factor", 0.2}, {"hidden_act", "relu"}};
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-phi3", bad[0].first, bad[0].second), err));
  CHECK(err.message.find("partial_rotary_factor") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gpt-neox", bad[1].first, bad[1].second), err));
  CHECK(err.message.find("hidden_act 'relu'") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-gemma2", "layer_types", nlohmann::json::array({"sliding_attention"})), err));
  CHECK(err.message.find("layer_types") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-phi3", "rope_scaling", {{"type", "longrope"}, {"short_factor", {1.0}}}), err));
  CHECK(err.message.find("longrope") != std::string::npos);
}

TEST_CASE("gemma2 above 2048 tokens: each layer's field has its own rule (window 4, then causal) and the soft cap") {
  Failure err;
  auto m = HfModel::load(copy_with_config("tiny-gemma2", "max_position_embeddings", 4096), err);
  REQUIRE_MESSAGE(m, err.message);
  std::string text;
  for (int i = 0; i < 1100; ++i) text += (i % 3 ? "the cat " : "sat on ");
  const Outcome f = m->compute(text);
  REQUIRE(f.result);
  REQUIRE(f.result->is_field());
  const long long n = static_cast<long long>(f.result->tokens.size());
  REQUIRE(n > 2048);
  CHECK(f.result->fields[0].heads[0].cells == 4 * n - 6);        // 1 + 2 + 3, then 4 per row
  CHECK(f.result->fields[1].heads[0].cells == n * (n + 1) / 2);  // causal
  CHECK(f.result->fields[1].specs[0].softcap == 2.0f);
  CHECK(f.result->fields[1].specs[0].alpha == doctest::Approx(0.25));  // 1 / sqrt(query_pre_attn_scalar 16)
  const Matrix l = field_tile(f.result->fields[1].heads[2], f.result->fields[1].specs[2], 2000, 2010, 0, 2010, true);
  for (Eigen::Index i = 0; i < l.rows(); ++i)
    for (Eigen::Index j = 0; j <= 2000 + i; ++j) CHECK(std::abs(l(i, j)) <= 2.0f);
  REQUIRE(!f.result->next_tokens.empty());
}

TEST_CASE("patching: head and residual-stream grids (logit difference, top-token probability) equal numpy's") {
  const auto g = test::golden("patching.json");
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE_MESSAGE(m, err.message);
  PatchRequest q;
  q.clean = g["clean"];
  q.corrupted = g["corrupted"];
  PatchGrid grid;
  std::string why;
  std::atomic<float> progress{0};
  REQUIRE_MESSAGE(m->patch(q, grid, why, &progress), why);
  CHECK(progress.load() == 1.0f);
  // the tokens compared: the clean run's top token and the corrupted run's
  CHECK(grid.request.token_a == g["token_a"].get<int>());
  CHECK(grid.request.token_b == g["token_b"].get<int>());
  CHECK(grid.request.position == int(g["tokens"].size()) - 1);
  CHECK(grid.clean == doctest::Approx(g["clean_diff"].get<double>()).epsilon(1e-5));
  CHECK(grid.corrupted == doctest::Approx(g["corrupted_diff"].get<double>()).epsilon(1e-5));
  auto check_grid = [](const Eigen::MatrixXd& v, const nlohmann::json& want, double tol) {
    REQUIRE(v.rows() == Eigen::Index(want.size()));
    REQUIRE(v.cols() == Eigen::Index(want[0].size()));
    double worst = 0;
    for (Eigen::Index l = 0; l < v.rows(); ++l)
      for (Eigen::Index c = 0; c < v.cols(); ++c) worst = std::max(worst, std::abs(v(l, c) - want[l][c].get<double>()));
    CHECK(worst <= tol);
  };
  check_grid(grid.values, g["heads_diff"], 1e-4);
  CHECK(grid.runs == 4);
  CHECK(grid.layers_run == doctest::Approx(3.0));  // layer 0's patches run 2 layers, layer 1's one: the prefix is reused
  q.metric = PatchRequest::Metric::prob;
  REQUIRE_MESSAGE(m->patch(q, grid, why), why);
  check_grid(grid.values, g["heads_prob"], 1e-6);
  CHECK(grid.clean == doctest::Approx(g["clean_prob"].get<double>()).epsilon(1e-5));
  q.metric = PatchRequest::Metric::logit_diff;
  q.grid = PatchRequest::Grid::residual;
  REQUIRE_MESSAGE(m->patch(q, grid, why), why);
  check_grid(grid.values, g["residual_diff"], 1e-4);
  // where the two texts have the same token, patching the stream entering layer 0 changes nothing
  for (std::size_t p = 0; p < g["tokens"].size(); ++p)
    if (g["tokens"][p] == g["corrupted_tokens"][p]) CHECK(std::abs(grid.values(0, Eigen::Index(p)) - grid.clean) <= 1e-5);
  // denoising: the corrupted run with each piece from the clean run
  q.direction = PatchRequest::Direction::denoising;
  REQUIRE_MESSAGE(m->patch(q, grid, why), why);
  check_grid(grid.values, g["residual_diff_denoising"], 1e-4);
  // where the two texts have the same token, the clean stream entering layer 0 is the corrupted
  // one: patching it changes nothing
  for (std::size_t p = 0; p < g["tokens"].size(); ++p)
    if (g["tokens"][p] == g["corrupted_tokens"][p]) CHECK(std::abs(grid.values(0, Eigen::Index(p)) - grid.corrupted) <= 1e-5);
  q.grid = PatchRequest::Grid::heads;
  REQUIRE_MESSAGE(m->patch(q, grid, why), why);
  check_grid(grid.values, g["heads_diff_denoising"], 1e-4);
  CHECK(grid.clean == doctest::Approx(g["clean_diff"].get<double>()).epsilon(1e-5));  // the unpatched runs' metrics stay
  q.direction = PatchRequest::Direction::noising;
  // the head patch as an ablation of compute: the next tokens at every position
  Intervention iv;
  iv.ablate = {{1, 0}};
  iv.ablate_mode = AblateMode::corrupted;
  iv.corrupted_text = q.corrupted;
  ComputeOptions opt;
  opt.top_k = 5;
  const Outcome o = m->compute(q.clean, nullptr, opt, iv);
  REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
  check_next(*o.result, g["ablate_corrupted_1.0"], 5);
  CHECK(o.result->intervention.find("ablate 1.0 (from the corrupted text \"the end sat") != std::string::npos);
  // what cannot be patched says why
  q.corrupted = "the cat";
  CHECK_FALSE(m->patch(q, grid, why));
  CHECK(why.find("must match") != std::string::npos);
  iv.corrupted_text = "the cat";
  const Outcome bad = m->compute(q.clean, nullptr, opt, iv);
  REQUIRE_FALSE(bad.result);
  CHECK(bad.problems.at(0).find("must match") != std::string::npos);
  q.corrupted = g["corrupted"];
  q.position = 99;
  CHECK_FALSE(m->patch(q, grid, why));
  CHECK(why.find("position 99") != std::string::npos);
}

TEST_CASE("generation: greedy tokens equal numpy's recomputed forward; with the KV cache equal to without, every family") {
  const auto g = test::golden("generation.json");
  Failure err;
  auto gpt2 = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE_MESSAGE(gpt2, err.message);
  for (bool cache : {true, false}) {
    INFO("cache " << cache);
    GenerateOptions opt;
    opt.tokens = int(g["generated"].size());
    opt.use_cache = cache;
    Generation out;
    std::string why;
    REQUIRE_MESSAGE(gpt2->generate(g["text"], opt, out, why), why);
    CHECK(out.cached == cache);
    REQUIRE(out.generated.size() == g["generated"].size());
    for (std::size_t t = 0; t < out.generated.size(); ++t) {
      CHECK(out.generated[t].id == g["generated"][t]["id"].get<int>());
      CHECK(out.generated[t].p == doctest::Approx(g["generated"][t]["p"].get<double>()).epsilon(1e-5));
    }
    CHECK(out.ids.size() == g["ids"].size() + g["generated"].size());
    CHECK(out.text.starts_with(g["text"].get<std::string>()));
  }
  // every causal family: the cached pass (each new token alone against the cached keys) gives
  // the tokens and probabilities of rerunning the whole text, greedy and sampled; Mistral's and
  // Gemma 2's windows (5, 4) and Phi-3's (6) are passed within the generated tokens
  for (const char* name : {"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-phi3", "tiny-gpt-neox",
                           "tiny-gemma2"}) {
    INFO(name);
    auto m = HfModel::load(kModels + name, err);
    REQUIRE_MESSAGE(m, err.message);
    for (bool greedy : {true, false}) {
      GenerateOptions opt;
      opt.tokens = 14;
      opt.greedy = greedy;
      opt.sample.temperature = 1.3;
      opt.sample.seed = 3;
      Generation a, b;
      std::string why;
      REQUIRE_MESSAGE(m->generate("the cat sat", opt, a, why), why);
      opt.use_cache = false;
      REQUIRE_MESSAGE(m->generate("the cat sat", opt, b, why), why);
      REQUIRE(a.generated.size() == b.generated.size());
      CHECK(a.ids == b.ids);
      for (std::size_t t = 0; t < a.generated.size(); ++t) CHECK(std::abs(a.generated[t].p - b.generated[t].p) <= 1e-5);
    }
  }
  // the first sampled token is compute's --sample draw (uniform 0 of the same stream)
  GenerateOptions opt;
  opt.tokens = 1;
  opt.greedy = false;
  opt.sample.temperature = 0.8;
  opt.sample.seed = 11;
  Generation one;
  std::string why;
  REQUIRE(gpt2->generate("the cat sat", opt, one, why));
  ComputeOptions co;
  co.sample = opt.sample;
  const Outcome o = gpt2->compute("the cat sat", nullptr, co);
  REQUIRE(o.result);
  CHECK(one.generated.at(0).id == o.result->sample->token.id);
  // a long prompt is prefilled 256 tokens at a time through the cache
  auto llama = HfModel::load(copy_with_config("tiny-llama", "max_position_embeddings", 700), err);
  REQUIRE_MESSAGE(llama, err.message);
  std::string text;
  for (int i = 0; i < 90; ++i) text += "the cat sat on ";
  GenerateOptions longer;
  longer.tokens = 3;
  Generation a, b;
  REQUIRE(llama->generate(text, longer, a, why));
  REQUIRE(a.ids.size() > 512);  // three chunks
  longer.use_cache = false;
  REQUIRE(llama->generate(text, longer, b, why));
  CHECK(a.ids == b.ids);
  // what cannot be generated says why
  auto bert = HfModel::load(kModels + "tiny-bert", err);
  REQUIRE(bert);
  CHECK_FALSE(bert->generate("the cat", {}, one, why));
  CHECK(why.find("bidirectional") != std::string::npos);
  GenerateOptions many;
  many.tokens = 100;
  REQUIRE(gpt2->generate("the cat sat", many, one, why));
  CHECK(one.ids.size() == std::size_t(gpt2->info().n_positions));
  CHECK(one.note.find("context of 48") != std::string::npos);
}

TEST_CASE("mistral above 2048 tokens: the field's rule is the model's window (cells 5 per row), tiles equal the dense pass") {
  Failure err;
  auto m = HfModel::load(copy_with_config("tiny-mistral", "max_position_embeddings", 4096), err);
  REQUIRE_MESSAGE(m, err.message);
  std::string text;
  for (int i = 0; i < 1100; ++i) text += (i % 3 ? "the cat " : "sat on ");
  const Outcome f = m->compute(text);
  ComputeOptions dense;
  dense.dense = true;
  const Outcome d = m->compute(text, nullptr, dense);
  REQUIRE(f.result);
  REQUIRE(d.result);
  REQUIRE(f.result->is_field());
  const int n = static_cast<int>(f.result->tokens.size());
  REQUIRE(n > 2048);
  const FieldLayer& L = f.result->fields[1];
  CHECK(L.heads[2].cells == 5LL * n - 10);  // 1 + 2 + 3 + 4 for the first four queries, then 5 each
  const Matrix t = field_tile(L.heads[2], L.specs[2], 2000, 2064, 0, n, false);
  CHECK((t - d.result->layers[1].heads[2].weights.middleRows(2000, 64)).cwiseAbs().maxCoeff() <= 1e-5);
}

TEST_CASE("rope_scaling linear, dynamic, llama3 and yarn on the tiny Llama match numpy: attention and next tokens") {
  const auto g = test::golden("tiny_llama_rope.json");
  const auto base = test::golden("tiny_llama.json");
  for (const auto& item : g.items()) {
    const std::string label = item.key();
    const nlohmann::json& v = item.value();
    INFO(label);
    std::string dir = copy_with_config("tiny-llama", "rope_scaling", v["config"]["rope_scaling"]);
    if (v["config"].contains("max_position_embeddings")) {  // a second key into the same copy
      std::ifstream in(fs::path(dir) / "config.json");
      nlohmann::json cfg = nlohmann::json::parse(in);
      cfg["max_position_embeddings"] = v["config"]["max_position_embeddings"];
      std::ofstream(fs::path(dir) / "config.json") << cfg.dump();
    }
    Failure err;
    auto m = HfModel::load(dir, err);
    REQUIRE_MESSAGE(m, err.message);
    ComputeOptions opt;
    opt.top_k = 5;
    const Outcome o = m->compute(base["text"].get<std::string>(), nullptr, opt);
    REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
    check_against(*o.result, base["tokens"], v["weights"], 2, 4);
    check_next(*o.result, v["probs"], 5);
    // and not the unscaled model's: every variant changes the picture
    double diff = 0;
    for (int h = 0; h < 4; ++h) {
      const Matrix& w = o.result->layers[1].heads[h].weights;
      for (Eigen::Index i = 0; i < w.rows(); ++i)
        for (Eigen::Index j = 0; j < w.cols(); ++j)
          diff = std::max(diff, std::abs(double(w(i, j)) - base["weights"][1][h][i][j].get<double>()));
    }
    CHECK(diff > 1e-3);
  }
  Failure err;
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-llama", "rope_scaling", {{"rope_type", "longrope"}, {"factor", 2}}), err));
  CHECK(err.message.find("rope_type 'longrope' is not supported") != std::string::npos);
  CHECK_FALSE(HfModel::load(copy_with_config("tiny-llama", "rope_scaling", {{"rope_type", "yarn"}, {"factor", 2}, {"mscale", 1}}), err));
  CHECK(err.message.find("rope_scaling.mscale is not supported") != std::string::npos);
}

TEST_CASE("gpt2: the sink masked (StreamingLLM) - attention and next-token probabilities equal numpy's") {
  const auto g = test::golden("sink_masked.json");
  Failure err;
  auto m = HfModel::load(kModels + "tiny-gpt2", err);
  REQUIRE_MESSAGE(m, err.message);
  const int sinks = g["sinks"];
  const Intervention iv = sink_masked(m->info(), sinks);
  CHECK(iv.describe().find("k >= sinks") != std::string::npos);
  ComputeOptions opt;
  opt.top_k = 8;
  for (const char* key : {"plain", "masked"}) {
    INFO(key);
    const bool masked = std::string(key) == "masked";
    const Outcome o = m->compute(g["text"].get<std::string>(), nullptr, opt, masked ? iv : Intervention{});
    REQUIRE_MESSAGE(o.result, (o.problems.empty() ? "" : o.problems[0]));
    const Result& r = *o.result;
    const int n = static_cast<int>(r.tokens.size());
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        test::check_matrix(r.layers[l].heads[h].weights, g[key]["weights"][l][h], 1e-5, 1e-4,
                           std::string(key) + " layer " + std::to_string(l) + " head " + std::to_string(h));
        if (masked)  // the first keys exactly 0 in every row past them
          for (int i = sinks; i < n; ++i)
            for (int j = 0; j < sinks; ++j) CHECK(r.layers[l].heads[h].weights(i, j) == 0.0f);
      }
    for (int i = 0; i < n; ++i)
      for (const auto& t : r.next_tokens[i]) CHECK(std::abs(t.p - g[key]["probs"][i][t.id].get<double>()) <= 1e-5);
  }
}
