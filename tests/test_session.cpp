#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline.hpp"
#include "session/session.hpp"

using namespace attnlab;

namespace {
bool has_problem(const std::vector<std::string>& problems, const std::string& part) {
  return std::any_of(problems.begin(), problems.end(), [&](const auto& p) { return p.find(part) != std::string::npos; });
}
}  // namespace

TEST_CASE("session: an empty object is the default session") {
  auto p = parse_session("{}");
  REQUIRE(p.session);
  CHECK(*p.session == Session{});
}

TEST_CASE("session: JSON round trip keeps every field") {
  Session s;
  s.text = "héllo \"world\"\n";
  s.tokenizer.kind = TokenizerKind::chars;
  s.model = {96, 6, 18446744073709551615ull};
  s.positional.kind = PositionalKind::none;
  s.attention.score.kind = ScoreKind::dot;
  s.attention.normalizer.temperature = 0.25;
  s.attention.mask.kind = MaskKind::none;
  auto p = parse_session(to_json(s));
  REQUIRE(p.session);
  CHECK(*p.session == s);
}

TEST_CASE("session: parse reports every problem with its path") {
  auto p = parse_session(R"({"model": {"d_model": "big", "heads": 2}, "attention": {"mask": {"kind": "diagonal"}},
                             "tokenizer": 3, "version": 2})");
  CHECK_FALSE(p.session);
  CHECK(has_problem(p.problems, "model.d_model must be a whole number"));
  CHECK(has_problem(p.problems, "unknown key 'heads' in model"));
  CHECK(has_problem(p.problems, "attention.mask.kind 'diagonal' is not one of none, causal"));
  CHECK(has_problem(p.problems, "tokenizer must be a JSON object"));
  CHECK(has_problem(p.problems, "version 2 is not supported"));
  CHECK(p.problems.size() == 5);
}

TEST_CASE("session: malformed JSON names line and column") {
  auto p = parse_session("{\n  \"text\": \"a\",\n  oops\n}");
  CHECK_FALSE(p.session);
  REQUIRE(p.problems.size() == 1);
  CHECK(has_problem(p.problems, "line 3, column"));
  CHECK_FALSE(parse_session("").session);
  CHECK_FALSE(parse_session("[1, 2]").session);
}

TEST_CASE("session: validate gives the value and the rule") {
  Session s;
  s.model.d_model = 100;
  s.model.n_heads = 3;
  CHECK(validate(s).problems == std::vector<std::string>{
                                    "d_model 100 is not divisible by 3 heads (d_head = d_model / n_heads must be whole)"});
  s = Session{};
  s.model.d_model = 0;
  s.model.n_heads = 0;
  s.attention.normalizer.temperature = -1;
  auto v = validate(s);
  CHECK(has_problem(v.problems, "model.d_model (0) must be between 1 and 4096"));
  CHECK(has_problem(v.problems, "model.n_heads (0) must be between 1 and 128"));
  CHECK(has_problem(v.problems, "attention.normalizer.temperature (-1) must be between 0.01 and 100"));
  s = Session{};
  s.attention.normalizer.temperature = std::numeric_limits<double>::quiet_NaN();
  CHECK(has_problem(validate(s).problems, "temperature (nan)"));
}

TEST_CASE("session: text problems - empty, invalid UTF-8, too many tokens, too large") {
  Session s;
  s.text = "   ";
  CHECK(has_problem(validate(s).problems, "the text has no tokens"));
  s.text = "ok \xff";
  CHECK(has_problem(validate(s).problems, "not valid UTF-8 at byte 3"));
  s.tokenizer.kind = TokenizerKind::chars;
  s.text = std::string(kMaxTokens + 1, 'a');
  CHECK(has_problem(validate(s).problems, "tokens; the limit is 8192"));
  s.text = std::string(kMaxTextBytes + 1, 'a');
  CHECK(has_problem(validate(s).problems, "bytes; the limit is"));
  s.text = std::string(4000, 'a');
  s.model = {128, 128, 1};
  CHECK(has_problem(validate(s).problems, "of memory (use fewer heads, layers or tokens)"));
  s.model = {128, 4, 1};
  CHECK(validate(s).ok());
}

TEST_CASE("session: options table covers every key that to_json writes") {
  // Across sessions of every mask and positional kind, the keys written are exactly the options.
  std::set<std::string> written;
  const auto opts = nlohmann::json::parse(options_json());
  // every choice of every enum, and every bool flipped, alone and on top of each enum choice
  std::vector<Session> sessions;
  for (const auto& o : session_options()) {
    if (o.type != "enum") continue;
    for (const auto& c : o.choices) {
      Session s;
      REQUIRE(option_set(s, o.path, "\"" + c + "\"").empty());
      sessions.push_back(s);
      for (const auto& b : session_options()) {
        if (b.type != "bool") continue;
        Session t = s;
        option_set(t, b.path, option_get(t, b.path) == "true" ? "false" : "true");
        sessions.push_back(t);
      }
    }
  }
  {
    Session s;  // the score modifier's parameters are written once it has an expression
    s.attention.score_mod.expression = "score";
    sessions.push_back(s);
  }
  for (const Session& s : sessions) {
    {
      const auto j = nlohmann::json::parse(to_json(s));
      const auto flat = j.flatten();
      for (const auto& [k, v] : flat.items()) {
        std::string path = k.substr(1);
        std::replace(path.begin(), path.end(), '/', '.');
        // list-valued options flatten to path.0, path.0.1: keep the option's path
        for (const auto& o : opts["options"])
          if (path.rfind(o["path"].get<std::string>() + ".", 0) == 0) path = o["path"];
        if (path != "format" && path != "version") written.insert(path);
      }
      // and every written session reads back as itself
      auto back = parse_session(to_json(s));
      REQUIRE(back.session);
      CHECK(to_json(*back.session) == to_json(s));
    }
  }
  std::set<std::string> paths;
  for (const auto& o : opts["options"]) paths.insert(o["path"]);
  paths.erase("attention.mask.cells");  // an empty list flattens to no key
  written.erase("attention.mask.cells");
  for (const auto& p : paths) CHECK_MESSAGE(written.count(p), "never written: " << p);
  for (const auto& p : written) CHECK_MESSAGE(paths.count(p), "written, not an option: " << p);
  CHECK(paths == written);
}

TEST_CASE("session: only the parameters of the kinds in force are written") {
  Session s;
  s.attention.mask.kind = MaskKind::sliding_window;
  s.attention.mask.window = 3;
  s.positional.kind = PositionalKind::rope;
  const auto j = nlohmann::json::parse(to_json(s));
  CHECK(j["attention"]["mask"]["window"] == 3);
  CHECK_FALSE(j["attention"]["mask"].contains("stride"));
  CHECK(j["attention"]["mask"]["causal"] == false);
  CHECK(j["positional"]["rope_base"] == 10000.0);
  CHECK_FALSE(j["positional"].contains("t5_num_buckets"));
  // parameters of other kinds are still read, so switching kinds keeps them
  auto p = parse_session(R"({"attention": {"mask": {"kind": "causal", "window": 7}}})");
  REQUIRE(p.session);
  CHECK(p.session->attention.mask.window == 7);
}

TEST_CASE("session: mask and positional parameters are validated when in force") {
  Session s;
  s.attention.mask.kind = MaskKind::fixed;
  s.attention.mask.stride = 4;
  s.attention.mask.summary = 5;
  CHECK(has_problem(validate(s).problems, "summary columns c (5) must be at most the block length l (4)"));
  s.attention.mask.kind = MaskKind::lsh;
  s.attention.mask.n_buckets = 5;
  CHECK(has_problem(validate(s).problems, "n_buckets (5) must be even"));
  s.attention.mask.kind = MaskKind::sliding_window;
  s.attention.mask.window = -1;
  CHECK(has_problem(validate(s).problems, "attention.mask.window (-1) must be between 0 and 8192"));
  s.attention.mask.kind = MaskKind::causal;  // window not in force: not checked
  CHECK(validate(s).ok());
  s.positional.kind = PositionalKind::t5;
  s.positional.t5_num_buckets = 32;
  s.positional.t5_max_distance = 8;
  CHECK(has_problem(validate(s).problems, "t5_max_distance (8) must exceed the exact buckets (8)"));
  s.positional.kind = PositionalKind::rope;
  s.positional.rope_fraction = 1.5;
  CHECK(has_problem(validate(s).problems, "positional.rope_fraction (1.5) must be between 0 and 1"));
  auto p = parse_session(R"({"attention": {"mask": {"globals": [0, "x"]}}})");
  CHECK(has_problem(p.problems, "attention.mask.globals must hold whole numbers"));
  p = parse_session(R"({"attention": {"mask": {"cells": [[0, 1], [2]]}}})");
  CHECK(has_problem(p.problems, "attention.mask.cells must be a list of [query, key] pairs"));
}

TEST_CASE("session: cross-attention needs a context with tokens and a two-sequence mask") {
  Session s;
  s.context.enabled = true;
  CHECK(has_problem(validate(s).problems,
                    "cross-attention: mask 'causal' needs queries and keys from one sequence; use none, padding or custom"));
  s.attention.mask.kind = MaskKind::none;
  CHECK(validate(s).ok());
  CHECK(validate(s).key_tokens.size() == 9);  // The tired cat slept on a warm mat .
  s.context.text = "  ";
  CHECK(has_problem(validate(s).problems, "the context has no tokens: type something to attend to"));
  s.context.text = "bad \xff";
  CHECK(has_problem(validate(s).problems, "context is not valid UTF-8 at byte 4"));
}

namespace {
// The Result's own session, written and read back, computes the same Result: the same tokens
// and, on the same machine and path, bit-identical numbers (a documented property: the engine
// is deterministic; what is compared is two runs of one path, not two paths).
void check_reproduces(const Session& s, const std::string& what) {
  INFO(what);
  Engine engine;
  const Outcome a = engine.compute(s);
  if (!a.result) return;
  const auto back = parse_session(to_json(a.result->session));
  REQUIRE_MESSAGE(back.session, (back.problems.empty() ? "" : back.problems[0]));
  Engine fresh;
  const Outcome b = fresh.compute(*back.session);
  REQUIRE_MESSAGE(b.result, (b.problems.empty() ? "" : b.problems[0]));
  const Result &x = *a.result, &y = *b.result;
  REQUIRE(x.tokens.size() == y.tokens.size());
  for (std::size_t i = 0; i < x.tokens.size(); ++i) CHECK(x.tokens[i].text == y.tokens[i].text);
  REQUIRE(x.layers.size() == y.layers.size());
  for (std::size_t l = 0; l < x.layers.size(); ++l)
    for (std::size_t h = 0; h < x.layers[l].heads.size(); ++h) {
      CHECK(*x.layers[l].heads[h].allowed == *y.layers[l].heads[h].allowed);
      CHECK(x.layers[l].heads[h].weights == y.layers[l].heads[h].weights);
    }
  CHECK(x.layers.back().output == y.layers.back().output);
}

std::string words(std::mt19937& rng, int n) {
  static const char* pool[] = {"the", "cat", "[PAD]", "sat", "on", "<pad>", "mat", ",", "don't", "日本", "é", "_x_", "42"};
  std::string t;
  for (int i = 0; i < n; ++i) t += std::string(i ? " " : "") + pool[rng() % std::size(pool)];
  return t;
}
}  // namespace

TEST_CASE("session: every example's Result session computes the same Result again") {
  for (const auto& e : std::filesystem::directory_iterator(std::string(ATTNLAB_ASSET_DIR) + "/sessions")) {
    std::ifstream f(e.path());
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    const auto p = parse_session(text);
    REQUIRE_MESSAGE(p.session, e.path());
    check_reproduces(*p.session, e.path().filename().string());
  }
  Session pad;  // the case that was wrong: a pad token other than the default, mask not padding
  pad.text = "a <pad> b";
  pad.attention.mask.kind = MaskKind::none;
  pad.attention.mask.pad_token = "<pad>";
  check_reproduces(pad, "pad_token <pad> with mask none");
  REQUIRE(compute(pad).result->tokens.size() == 3);
}

TEST_CASE("session: randomised sessions' Result sessions compute the same Result again") {
  std::mt19937 rng(2026);
  int computed = 0;
  for (int trial = 0; trial < 400; ++trial) {
    Session s;
    s.text = words(rng, 1 + int(rng() % 14));
    s.model.d_model = 8 * (1 + int(rng() % 4));
    for (const OptionSpec& o : session_options()) {
      if (o.path == "text" || o.path == "model.d_model" || rng() % 3 == 0) continue;
      std::string value;
      if (o.type == "enum") value = "\"" + o.choices[rng() % o.choices.size()] + "\"";
      else if (o.type == "bool") value = rng() % 2 ? "true" : "false";
      else if (o.type == "int") value = std::to_string(int(o.min) + int(rng() % std::uint32_t(std::min(o.max - o.min, 8.0) + 1)));
      else if (o.type == "number") value = std::to_string(o.min + (std::min(o.max, o.min + 4.0) - o.min) * (rng() % 1000) / 1000.0);
      else if (o.type == "string" && o.path == "attention.mask.pad_token") value = rng() % 2 ? "\"<pad>\"" : "\"[PAD]\"";
      else if (o.path == "attention.mask.expression") value = rng() % 2 ? "\"k <= q or k % 3 == 0\"" : "\"abs(q - k) <= 2\"";
      else if (o.path == "attention.score_mod.expression") value = rng() % 2 ? "\"\"" : "\"score - 0.1 * abs(q - k) * (h + 1)\"";
      else if (o.type == "string") value = "\"" + words(rng, 1 + int(rng() % 6)) + "\"";
      else if (o.type == "int_list") value = "[" + std::to_string(rng() % 6) + "]";
      else if (o.type == "cell_list") value = "[[1, 0], [2, 2], [" + std::to_string(rng() % 9) + ", 1]]";
      else continue;
      option_set(s, o.path, value);  // a value out of its range is fine: validate() says so
    }
    if (!validate(s).ok()) continue;  // most are refused (d_model not divisible by n_heads, ...)
    ++computed;
    check_reproduces(s, to_json(s));
  }
  INFO("computed " << computed << " of 400");
  CHECK(computed > 60);
}
