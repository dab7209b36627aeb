#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "session.hpp"

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
  CHECK(has_problem(validate(s).problems, "GB of attention matrices"));
  s.model = {128, 4, 1};
  CHECK(validate(s).ok());
}

TEST_CASE("session: options table covers every key that to_json writes") {
  const auto j = nlohmann::json::parse(to_json(Session{}));
  const auto opts = nlohmann::json::parse(options_json());
  std::vector<std::string> paths;
  for (const auto& o : opts["options"]) paths.push_back(o["path"]);
  // flatten the written session and compare key sets (format and version are not options)
  std::vector<std::string> written;
  const auto flat = j.flatten();
  for (const auto& [k, v] : flat.items()) {
    std::string p = k.substr(1);
    std::replace(p.begin(), p.end(), '/', '.');
    if (p != "format" && p != "version") written.push_back(p);
  }
  std::sort(paths.begin(), paths.end());
  std::sort(written.begin(), written.end());
  CHECK(paths == written);
}
