// Programmable attention: a mask or a score modifier typed as an expression, FlexAttention's
// mask_mod(b, h, q_idx, kv_idx) and score_mod(score, b, h, q_idx, kv_idx) written as formulas.
// Parsed and evaluated by muparser (Debian's libmuparser), in double precision, a cell per call
// of its compiled bytecode; blocks of cells that interval bounds decide are not evaluated.
//
// The names an expression reads:
//   q, k        query and key positions (0-based)      h          the head (0-based)
//   n_q, n_k    queries and keys                       score      the cell's score (score_mod only)
//   doc(x)      the document of token x: documents are separated by blank lines and by special tokens
//   is_special(x)  1 for a special token (the session's pad token), else 0
//   parameters  each name of the session's "parameters" object, a number
// and muparser's operators and functions, plus: `and`, `or`, `not` (as &&, ||, !), `%` (floored
// modulo), floor, ceil, mod(a, b), and the constants true, false. A mask allows a cell where the
// expression is non-zero (NaN masks it); a score modifier's value replaces the score.
#pragma once

#include <atomic>

#include "core/cancel.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"
#include "session/session.hpp"
#include "tokenizers/tokenize.hpp"

namespace attnlab {

enum class ExpressionRole { mask, score_mod };

// What went wrong, and where: `position` is the 0-based character (code point) of the user's
// text the problem starts at, -1 when it is not one place.
struct ExpressionProblem {
  std::string message;
  int position = -1;
};

// The token facts expressions read: per token, its document and whether it is special.
struct TokenFacts {
  std::vector<double> doc, special;
};
TokenFacts token_facts(std::string_view text, const std::vector<Token>& tokens, const std::string& pad_token);

// A checked expression: the text, its role and parameters, the token facts, and which names it
// reads. Immutable and shared; each thread evaluates through its own ExpressionEvaluator.
class CellExpression {
 public:
  // null when it does not compile; `problem` says why and where
  static std::shared_ptr<const CellExpression> compile(const std::string& text, ExpressionRole role,
                                                       const std::map<std::string, double>& parameters,
                                                       TokenFacts facts, ExpressionProblem& problem);
  const std::string& text() const { return text_; }
  ExpressionRole role() const { return role_; }
  bool reads_head() const { return reads_head_; }  // false: one mask serves every head
  const std::map<std::string, double>& parameters() const { return parameters_; }
  const TokenFacts& facts() const { return facts_; }
  const std::string& parsed() const { return parsed_; }  // the text with and/or/not as &&, ||, !

  // A mask over a block of cells, rows [q0, q1] x keys [k0, k1] of head h (inclusive), decided
  // without evaluating its cells where interval arithmetic over the formula can: every cell
  // masked, every cell allowed, or not known (then each cell is evaluated). Sound by
  // construction - a block is called empty or full only when no cell can be otherwise - and
  // `unknown` whenever the formula leaves what the bounds understand (docs/expressions.md).
  enum class Block { empty, full, unknown };
  Block classify(int q0, int q1, int k0, int k1, int h, int n_q, int n_k) const;
  bool has_bounds() const { return bounds_ != nullptr; }  // false: every block is unknown

 private:
  std::string text_, parsed_;
  ExpressionRole role_ = ExpressionRole::mask;
  std::map<std::string, double> parameters_;
  TokenFacts facts_;
  bool reads_head_ = false;
  struct Bounds;
  std::shared_ptr<const Bounds> bounds_;
};

// One thread's evaluator of a CellExpression (muparser keeps per-evaluation state): n_q and n_k
// are fixed for its lifetime.
class ExpressionEvaluator {
 public:
  ExpressionEvaluator(std::shared_ptr<const CellExpression> e, int n_q, int n_k);
  ~ExpressionEvaluator();
  ExpressionEvaluator(const ExpressionEvaluator&) = delete;
  ExpressionEvaluator& operator=(const ExpressionEvaluator&) = delete;
  // mask: out[j - k0] = 1 where the expression allows (q, j), j in [k0, k1)
  void mask_row(int q, int h, int k0, int k1, std::uint8_t* out);
  // score_mod: scores[i * ld + j] = f(scores[i * ld + j], q0 + i, k0 + j, h) over rows x cols
  void modify_scores(int q0, int rows, int k0, int cols, int h, float* scores, int ld);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The text names the head (h): the mask differs per head.
bool expression_reads_head(const std::string& text);

// Each row's allowed keys [a, b) of an expression mask for one head, over both cores: rows in
// stripes of 64, whose blocks of keys the bounds decide at once (CellExpression::classify), the
// rest evaluated cell by cell. emit(row, spans) is called once per row, from any thread.
// `evaluated` (if given) receives the number of cells evaluated one by one. A cancel stops it
// between stripes (rows left unemitted: the caller drops what it built); `progress` goes from 0
// to progress_to.
void expression_rows(const std::shared_ptr<const CellExpression>& e, int n_q, int n_k, int head,
                     const std::function<void(int, const std::vector<std::pair<int, int>>&)>& emit,
                     long long* evaluated = nullptr, const CancelFlag* cancel = nullptr,
                     std::atomic<float>* progress = nullptr, float progress_to = 1.0f);

// The mask of an expression for one head: (n_q, n_k), rows over both cores.
MaskMatrix expression_mask(const CellExpression& e, int n_q, int n_k, int head);

// A session's mask expression compiled against its text and tokens; null when the mask is not
// an expression or does not compile (validate() reports why).
std::shared_ptr<const CellExpression> mask_expression_of(const Session::Attention::Mask& m, std::string_view text,
                                                         const std::vector<Token>& tokens);
std::shared_ptr<const CellExpression> score_mod_of(const Session& s, const std::vector<Token>& tokens);

// A named preset: a catalogue pattern or score modifier written as an expression, with the
// parameters it reads and, for a mask, the built-in kind it equals (empty: none).
struct ExpressionPreset {
  const char* name;
  ExpressionRole role;
  const char* expression;
  const char* parameters;  // JSON object text
  const char* equals_kind;  // a mask kind name with the same parameters, or ""
  const char* description;
};
const std::vector<ExpressionPreset>& expression_presets();

}  // namespace attnlab
