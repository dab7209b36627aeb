// Fuzz target: a session file from arbitrary bytes. Parsing and validation must return problems,
// never crash; what validates is computed when its cost estimate is tiny, and its JSON reads back
// as the same session.
#include <cstdint>
#include <string>

#include "session/cost.hpp"
#include "pipeline.hpp"
#include "session/session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace attnlab;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const SessionParse p = parse_session(text);
  if (!p.session) {
    if (p.problems.empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  const Validation v = validate(*p.session);
  // the written session reads back as itself. Only the parameters of the kinds in force are
  // written (docs/session-format.md), so a parameter of a kind not in force, such as a window
  // under a causal mask, is not kept: compare the written forms, not the structs.
  const std::string written = to_json(*p.session);
  const SessionParse back = parse_session(written);
  if (v.ok() && (!back.session || to_json(*back.session) != written)) __builtin_trap();
  if (!v.ok()) return 0;
  const int n = static_cast<int>(v.tokens.size());
  const int n_k = p.session->context.enabled ? static_cast<int>(v.key_tokens.size()) : n;
  if (estimate_cost(*p.session, n, n_k).flops > 2e7) return 0;  // tiny sessions only: the fuzzer needs speed
  static Engine engine;
  const Outcome o = engine.compute(*p.session);
  if (!o.result && o.problems.empty()) __builtin_trap();
  return 0;
}
