// attnlab-cli: headless commands over the same engine as the window.
//   attnlab-cli compute SESSION.json [-o OUT.json]   Result as JSON (stdout without -o)
//   attnlab-cli compute --model DIR --text TEXT       the same from a Hugging Face model folder
//   attnlab-cli estimate SESSION.json                  time and memory the session needs, as JSON
//   attnlab-cli blocks SESSION.json [--block N]        the mask's block map (block-sparse kernels), as JSON
//   attnlab-cli options [--markdown]                  every session option as JSON (or a table)
//   attnlab-cli render SESSION.json --view V -o F.png  a figure (no display needed; .svg, .pdf too)
//   attnlab-cli export SESSION.json --matrix M -o F.csv|.npy|.json|.tsv   one matrix
// Errors: one line on stderr, exit 1 (2 for usage); an output file is written whole or not at all,
// and nothing is written when the command fails.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <unistd.h>
#include <iostream>

#include <nlohmann/json.hpp>

#include "analysis/blocks.hpp"
#include "attention/expression.hpp"
#include "attention/field.hpp"
#include "present/colormap.hpp"
#include "session/cost.hpp"
#include "present/export.hpp"
#include "present/figure_views.hpp"
#include "core/files.hpp"
#include "core/strings.hpp"
#include "models/hf_model.hpp"
#include "core/gemm.hpp"
#include "core/memory.hpp"
#include "pipeline.hpp"
#include "present/result_json.hpp"
#include "session/session.hpp"
#include "present/field_file.hpp"
#include "present/field_view.hpp"
#include "analysis/steps.hpp"
#include "core/utf8.hpp"
#include "core/json_input.hpp"
#include "training/trainer.hpp"

using namespace attnlab;

namespace {

int fail(const std::string& msg) {
  std::string line = utf8_sanitize(msg);
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::cerr << "attnlab-cli: " << line << "\n";
  return 1;
}


// While `work` runs: a progress line on stderr when it is a terminal (after 200 ms), erased at
// the end, so that a long computation says how far it is; nothing when stderr is a file or pipe.
template <class Work>
bool with_progress(const char* what, std::atomic<float>& progress, Work&& work) {
  if (!::isatty(2)) return work();
  std::atomic<bool> done{false};
  std::thread shower([&] {
    const auto t0 = std::chrono::steady_clock::now();
    bool shown = false;
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200)) continue;
      std::fprintf(stderr, "\r%s: %3.0f %%", what, 100.0 * progress.load());
      std::fflush(stderr);
      shown = true;
    }
    if (shown) std::fprintf(stderr, "\r%*s\r", static_cast<int>(std::string_view(what).size()) + 8, "");
  });
  const bool ok = work();
  done = true;
  shower.join();
  return ok;
}

// A long sequence that the engine computes as an attention field (pipeline.hpp): more than
// kDenseMaxTokens tokens, a variant the field covers, and not forced dense.
bool computes_as_field(const Session& s, const Validation& v, bool dense) {
  return !dense && field_supports(attention_config(s)) &&
         static_cast<int>(std::max(v.tokens.size(), v.key_tokens.size())) > kDenseMaxTokens;
}

// A session file, parsed and validated (for the field when it is long and `dense` is false); on
// failure rc is set and false returned.
bool read_session(const std::string& path, Session& s, Validation& v, int& rc, bool dense = true) {
  std::string text, err;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, err, "a session file")) return rc = fail(err), false;
  auto parsed = parse_session(text);
  if (!parsed.session) return rc = fail(path + ": " + join(parsed.problems)), false;
  s = *parsed.session;
  if (!dense && field_supports(attention_config(s))) {  // the field takes the longer texts: its problems are the ones to say
    Validation fv = validate(s, ComputePath::field);
    if (!fv.ok()) return rc = fail(path + ": " + join(fv.problems)), false;
    if (computes_as_field(s, fv, false)) return v = std::move(fv), true;
  }
  v = validate(s);
  if (!v.ok()) return rc = fail(path + ": " + join(v.problems)), false;
  return true;
}

// Validated, within the budget of `use`, then computed: dense, or (dense false, long) as a field,
// whose own budget Engine::compute checks.
bool compute_read(const std::string& path, const Session& s, const Validation& v, CostUse use,
                  std::shared_ptr<const Result>& out, int& rc, bool metrics, bool dense, bool field_rollout = false);

bool load(const std::string& path, CostUse use, std::shared_ptr<const Result>& out, int& rc, bool metrics = true,
          bool dense = true) {
  Session s;
  Validation v;
  if (!read_session(path, s, v, rc, dense)) return false;
  return compute_read(path, s, v, use, out, rc, metrics, dense);
}

// A session read and validated by read_session, computed (standard input is read only once).
bool compute_read(const std::string& path, const Session& s, const Validation& v, CostUse use,
                  std::shared_ptr<const Result>& out, int& rc, bool metrics, bool dense, bool field_rollout) {
  const int n = static_cast<int>(v.tokens.size()), n_k = s.context.enabled ? static_cast<int>(v.key_tokens.size()) : n;
  const bool field = computes_as_field(s, v, dense);
  if (!field)
    if (auto problem = budget_problem(s, n, n_k, use, metrics); !problem.empty()) return rc = fail(path + ": " + problem), false;
  Engine engine;
  std::atomic<float> progress{0};
  ComputeOptions o_opt;
  o_opt.metrics = metrics, o_opt.progress = &progress, o_opt.dense = dense;
  o_opt.field_rollout = field_rollout;
  Outcome o;
  with_progress(field ? "computing the attention field" : "computing", progress, [&] {
    o = engine.compute(s, nullptr, o_opt);
    return true;
  });
  if (!o.result) return rc = fail(path + ": " + join(o.problems)), false;
  out = o.result;
  return true;
}

// A pretrained model instead of a session (compute, render, export): the folder, the text, the
// next tokens kept and the heads ablated.
struct ModelRun {
  std::string dir, text;
  int top_k = 10;
  std::string ablate, ablate_mode = "zero", corrupted;
  int mask_sink = 0;  // the first keys masked in every layer (StreamingLLM's sinks taken away); 0: none
  bool dense = false, logit_lens = false;
  bool field_rollout = false;  // a long text's whole rollout (up to kFieldRolloutMaxTokens tokens)
  bool sample = false;  // draw the next token with temperature, top-k and top-p
  double temperature = 1, top_p = 1;
  int sample_top_k = 0;
  std::uint64_t seed = 0;
};

// The Result of the text through the model; false with rc set and one line said.
bool model_result(const ModelRun& run, std::shared_ptr<const Result>& r, int& rc) {
  if (run.ablate_mode != "zero" && run.ablate_mode != "mean" && run.ablate_mode != "corrupted")
    return rc = fail("--ablate-mode is zero, mean or corrupted, not '" + run.ablate_mode + "'"), false;
  if ((run.ablate_mode == "corrupted") != !run.corrupted.empty())
    return rc = fail("--ablate-mode corrupted and --corrupted TEXT go together"), false;
  Failure err;
  auto m = HfModel::load(run.dir, err);
  if (!m) return rc = fail(err.message), false;
  Intervention iv;
  std::string why;
  if (!run.ablate.empty() && !parse_ablate(run.ablate, m->info().n_layers, m->info().n_heads, iv.ablate, why))
    return rc = fail(why), false;
  iv.ablate_mode = run.ablate_mode == "mean" ? AblateMode::mean : run.ablate_mode == "corrupted" ? AblateMode::corrupted : AblateMode::zero;
  iv.corrupted_text = run.corrupted;
  if (run.mask_sink > 0) mask_sink(iv, m->info(), run.mask_sink);
  ComputeOptions opt;
  opt.top_k = run.top_k;
  opt.dense = run.dense;
  opt.logit_lens = run.logit_lens;
  opt.field_rollout = run.field_rollout;
  if (run.sample) {
    Result::Sample s;
    s.temperature = run.temperature, s.top_p = run.top_p, s.top_k = run.sample_top_k, s.seed = run.seed;
    opt.sample = s;
  }
  Outcome o = m->compute(run.text, nullptr, opt, iv);
  if (!o.result) return rc = fail(run.dir + ": " + join(o.problems)), false;
  r = o.result;
  return true;
}

// Where a command's Result comes from: the session file, or --model (never both, one of them).
bool source_problem(const std::string& session_path, const ModelRun& run, int& rc) {
  if (!session_path.empty() && !run.dir.empty()) return rc = fail("give a SESSION.json or --model DIR, not both"), true;
  if (session_path.empty() && run.dir.empty()) return rc = fail("give a SESSION.json, or --model DIR --text TEXT"), true;
  if (run.dir.empty() && (!run.ablate.empty() || run.ablate_mode != "zero" || !run.corrupted.empty() || run.mask_sink))
    return rc = fail("--ablate, --ablate-mode, --corrupted and --mask-sink need --model DIR"), true;
  return false;
}

int compute_command(const std::string& session_path, const std::string& out_path, bool dense, const ModelRun& run) {
  std::shared_ptr<const Result> r;
  int rc = 0;
  if (source_problem(session_path, run, rc)) return rc;
  if (!run.dir.empty()) {
    if (!model_result(run, r, rc)) return rc;
  } else {
    // a long session is written as its field (O(n d) per head), not n^2 JSON numbers: said
    // before anything is computed
    Session s;
    Validation v;
    if (!read_session(session_path, s, v, rc, dense)) return rc;
    if (computes_as_field(s, v, dense) && !out_path.ends_with(".safetensors"))
      return fail(std::to_string(v.tokens.size()) + " tokens are written as the attention field: give -o FILE.safetensors "
                  "(or --dense for dense JSON, up to " + std::to_string(kMaxTokens) + " tokens where it fits)");
    if (!compute_read(session_path, s, v, CostUse::compute, r, rc, true, dense)) return rc;
  }
  if (r->is_field()) {
    if (out_path.empty() || out_path == "-" || !out_path.ends_with(".safetensors"))
      return fail(std::to_string(r->tokens.size()) + " tokens are written as the attention field: give -o FILE.safetensors "
                  "(or --dense for dense JSON, up to " + std::to_string(kMaxTokens) + " tokens where it fits)");
    std::string err;
    if (!write_file_atomic(out_path, [&](const Put& put) { return write_field_safetensors(*r, put); }, err)) return fail(err);
    return 0;
  }
  if (out_path.empty() || out_path == "-") {
    const bool ok = write_result_json(*r, [](std::string_view piece) {
      return std::fwrite(piece.data(), 1, piece.size(), stdout) == piece.size();
    });
    return ok && std::fflush(stdout) == 0 ? 0 : fail("writing to standard output failed");
  }
  std::string err;
  if (!write_file_atomic(out_path, [&](const Put& put) { return write_result_json(*r, put); }, err)) return fail(err);
  return 0;
}

int estimate_command(const std::string& path) {
  Session s;
  Validation v;
  // the estimate is wanted most for sessions that are refused: read and tokenize, but report
  // the budget's verdict rather than stop at it
  std::string text, err;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, err, "a session file")) return fail(err);
  auto parsed = parse_session(text);
  if (!parsed.session) return fail(path + ": " + join(parsed.problems));
  s = *parsed.session;
  v = validate(s);
  if (v.tokens.empty()) return fail(path + ": " + join(v.problems));
  const int n = static_cast<int>(v.tokens.size()), n_k = s.context.enabled ? static_cast<int>(v.key_tokens.size()) : n;
  const Cost c = estimate_cost(s, n, n_k);
  nlohmann::ordered_json j;
  j["n_tokens"] = n;
  j["n_keys"] = n_k;
  j["flops"] = c.flops;
  j["random_draws"] = c.draws;
  j["seconds"] = c.seconds();
  j["bytes"] = {{"compute", bytes_for(s, c, n, n_k, CostUse::compute)},
                {"export", bytes_for(s, c, n, n_k, CostUse::export_matrix)},
                {"render", bytes_for(s, c, n, n_k, CostUse::render)},
                {"window", bytes_for(s, c, n, n_k, CostUse::window)}};
  j["limits"] = {{"bytes", memory_budget_bytes()}, {"seconds", kMaxComputeSeconds}};
  j["problems"] = v.problems;
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

// The mask's block map: which bq x bk blocks a block-sparse kernel computes (full, partial) and
// skips (empty), from the mask's rule - no attention computed, any length the field takes.
int blocks_command(const std::string& path, int bq, int bk, int head) {
  std::string text, err;
  if (!read_file_limited(path, kMaxSessionFileBytes, text, err, "a session file")) return fail(err);
  auto parsed = parse_session(text);
  if (!parsed.session) return fail(path + ": " + join(parsed.problems));
  const Session& s = *parsed.session;
  const Validation v = validate(s, ComputePath::field);
  if (!v.ok()) return fail(path + ": " + join(v.problems));
  const auto& m = s.attention.mask;
  if (m.kind == MaskKind::lsh)
    return fail(path + ": the lsh mask follows each head's queries; compute the session and read its mask instead");
  if (head < 0 || head >= s.model.n_heads)
    return fail("--head " + std::to_string(head) + " is not a head of this session (0 to " +
                std::to_string(s.model.n_heads - 1) + ")");
  const int n = static_cast<int>(v.tokens.size()), n_k = s.context.enabled ? static_cast<int>(v.key_tokens.size()) : n;
  const MaskRule rule(m, n, n_k, s.context.enabled ? &v.key_tokens : &v.tokens, s.model.seed, v.mask_expression, head);
  const BlockMap b = block_map(rule, bq, bk);
  nlohmann::ordered_json j;
  j["n_queries"] = n;
  j["n_keys"] = n_k;
  j["block"] = {b.bq, b.bk};
  j["rows"] = b.rows;
  j["cols"] = b.cols;
  j["full"] = b.full;
  j["partial"] = b.partial;
  j["empty"] = b.empty;
  j["allowed_cells"] = b.allowed;
  j["dense_cells"] = static_cast<long long>(b.dense());
  j["block_sparse_cells"] = b.computed;
  j["block_sparse_saving"] = b.saving();
  j["density"] = b.dense() > 0 ? double(b.allowed) / b.dense() : 0.0;
  if (static_cast<long long>(b.rows) * b.cols <= (1 << 20)) {  // the map itself: F full, P partial, . empty
    std::vector<std::string> rows;
    for (int r = 0; r < b.rows; ++r) {
      std::string line(b.cols, '.');
      for (int c = 0; c < b.cols; ++c) line[c] = b.at(r, c) == BlockState::full ? 'F' : b.at(r, c) == BlockState::partial ? 'P' : '.';
      rows.push_back(std::move(line));
    }
    j["map"] = rows;
  }
  std::cout << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

struct RenderArgs {
  std::string session, out, layout, view = "heads", colormap = "viridis", range = "global", step = "weights";
  int layer = 0, head = 0, columns = 0;
  float scale = 1;
  bool logits = false, log = false, light = false, no_numbers = false;
  ModelRun model;
};

int render_command(const RenderArgs& a) {
  ViewRequest q;
  if (!parse_figure_view(a.view, q.view))
    return fail("unknown view '" + a.view + "' (" + figure_view_ids() + ")");
  FigureStyle st;
  if (!parse_range_mode(a.range, st.range)) return fail("unknown range '" + a.range + "' (global, per_head, per_row)");
  if (!(a.scale == 1 || a.scale == 2 || a.scale == 4)) return fail("scale must be 1, 2 or 4");
  st.scale = a.scale;
  st.colormap = a.colormap;
  if (&colormap(a.colormap) == &colormaps().front() && a.colormap != colormaps().front().name)
    return fail("unknown colormap '" + a.colormap + "'");
  if (a.columns < 0 || a.columns > 1024) return fail("columns must be between 0 and 1024");
  st.log = a.log;
  st.light = a.light;
  st.numbers = !a.no_numbers;
  st.columns = a.columns;
  q.layer = a.layer;
  q.head = a.head;
  q.logits = a.logits;
  q.step = a.step;
  std::shared_ptr<const Result> r;
  int rc = 0;
  // heads, model, mask and gallery of a long session: drawn from the field's overviews (LOD)
  if (source_problem(a.session, a.model, rc)) return rc;
  if (!a.model.dir.empty() ? !model_result(a.model, r, rc)
                           : !load(a.session, CostUse::render, r, rc, q.view == FigureView::similarity, false))
    return rc;
  apply_view_layout(q.view, r->n_heads(), st);
  std::vector<FigurePanel> panels;
  std::string title, err;
  if (!view_panels(*r, q, panels, title, err)) return fail((a.model.dir.empty() ? a.session : a.model.dir) + ": " + err);
  if (!r->intervention.empty()) title += "  -  intervention: " + r->intervention;  // never passed off as the model
  FigureLayout layout;
  if (!write_figure(a.out, title, panels, st, err, &layout)) return fail(err);
  if (!a.layout.empty()) {  // where the cells were drawn, for tests and scripts
    nlohmann::json j;
    j["panels"] = layout.cells;
    j["background"] = layout.background;
    std::vector<std::array<long, 2>> shapes;
    for (const auto& p : panels) shapes.push_back({long(p.values.rows()), long(p.values.cols())});
    j["shapes"] = shapes;
    if (!write_file_atomic(a.layout, j.dump() + "\n", err)) return fail(err);
  }
  return 0;
}

// export --all: that matrix of every layer and head as one [layers, heads, rows, cols] .npy
int export_all(const Result& r, const std::string& matrix, const std::string& out_path) {
  if (!out_path.ends_with(".npy")) return fail(out_path + ": --all writes one .npy of [layers, heads, rows, cols]");
  std::vector<LabeledMatrix> ms;
  std::string err;
  for (int l = 0; l < r.n_layers(); ++l)
    for (int h = 0; h < r.n_heads(); ++h) {
      ms.emplace_back();
      if (!step_matrix(r, l, h, matrix, ms.back(), err)) return fail(err);
      if (ms.back().values.rows() != ms.front().values.rows() || ms.back().values.cols() != ms.front().values.cols())
        return fail("--all: '" + matrix + "' differs in shape between heads");
    }
  std::vector<const Matrix*> blocks;
  for (const auto& m : ms) blocks.push_back(&m.values);
  const std::vector<std::size_t> shape{std::size_t(r.n_layers()), std::size_t(r.n_heads()),
                                       std::size_t(ms.front().values.rows()), std::size_t(ms.front().values.cols())};
  if (!write_file_atomic(out_path, to_npy(blocks, shape), err)) return fail(err);
  return 0;
}

int export_command(const std::string& session_path, const std::string& matrix, int layer, int head,
                   const std::string& out_path, const ModelRun& model, bool all) {
  MatrixFormat f;
  if (!format_from_path(out_path, f)) return fail(out_path + ": the name must end in .csv, .npy, .json or .tsv");
  std::shared_ptr<const Result> r;
  int rc = 0;
  if (source_problem(session_path, model, rc)) return rc;
  if (!model.dir.empty() ? !model_result(model, r, rc) : !load(session_path, CostUse::export_matrix, r, rc, false)) return rc;
  if (r->is_field())
    return fail(std::to_string(r->tokens.size()) + " tokens through the model are an attention field: export --model "
                "writes dense matrices up to " + std::to_string(kDenseMaxTokens) + " tokens; export blocks of it with --rows and --cols, or --overview N");
  if (all) return export_all(*r, matrix, out_path);
  LabeledMatrix m;
  std::string err;
  if (!step_matrix(*r, layer, head, matrix, m, err)) return fail(err);
  if (!write_file_atomic(out_path, encode_matrix(m, f), err)) return fail(err);
  return 0;
}

// "A:B" -> [A, B); false when it is not two whole numbers with 0 <= A < B.
bool parse_range(const std::string& text, int& a, int& b) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  try {
    std::size_t used = 0;
    a = std::stoi(text.substr(0, colon), &used);
    if (used != colon) return false;
    const std::string rest = text.substr(colon + 1);
    b = std::stoi(rest, &used);
    if (used != rest.size()) return false;
  } catch (const std::exception&) {
    return false;
  }
  return a >= 0 && a < b;
}

struct FieldExport {
  std::string rows, cols, pool = "max";
  int overview = 0;
};

// Rows of the attention rollout through layers 0..layer (self-attention): from the dense rollout
// up to 2048 tokens; from a field's whole n x n rollout up to 4096 tokens when more than 256 rows
// are asked; else from the fields by vector x matrix products (no n x n matrix).
// Rows [fx.rows) of the rollout through layers 0..layer of a computed Result, written to out_path.
int write_rollout_rows(const Result& r, int layer, const FieldExport& fx, const std::string& out_path, MatrixFormat fmt) {
  if (!r.key_tokens.empty()) return fail("rollout is for self-attention (this session attends to a context)");
  const int n = static_cast<int>(r.tokens.size());
  if (layer < 0 || layer >= r.n_layers())
    return fail("layer " + std::to_string(layer) + " out of range (there are " + std::to_string(r.n_layers()) + ")");
  int r0 = 0, r1 = n;
  if (!parse_range(fx.rows, r0, r1)) return fail("--rows must be A:B with 0 <= A < B, not '" + fx.rows + "'");
  if (r1 > n) return fail("--rows " + fx.rows + " is past the " + std::to_string(n) + " rows");
  if (r.is_field() && r.rollout.empty() && r1 - r0 > 256) {
    const std::string why = field_rollout_refusal(r);
    return fail("at most 256 rollout rows at a time here (" + (why.empty() ? std::string("a field") : why) +
                "; each row costs n floats per layer)");
  }
  if (!r.is_field() && r.rollout.empty()) return fail("this Result has no rollout");
  LabeledMatrix m;
  m.name = "rollout";
  if (r.rollout.empty()) {
    std::vector<int> rows;
    for (int i = r0; i < r1; ++i) rows.push_back(i);
    m.values = field_rollout_rows(r.fields, layer, rows, r.session.analysis.rollout_residual);
  } else {
    m.values = r.rollout.at(layer).middleRows(r0, r1 - r0);
  }
  for (int i = r0; i < r1; ++i) m.row_labels.push_back(token_label(r.tokens[i].text));
  for (const auto& t : r.tokens) m.col_labels.push_back(token_label(t.text));
  std::string err;
  if (!write_file_atomic(out_path, encode_matrix(m, fmt), err)) return fail(err);
  return 0;
}

// Rows of the attention rollout through layers 0..layer (self-attention): from the dense rollout
// up to 2048 tokens; from a field's whole n x n rollout up to 4096 tokens when more than 256 rows
// are asked; else from the fields by vector x matrix products (no n x n matrix).
int export_rollout_rows(const std::string& session_path, int layer, const FieldExport& fx, const std::string& out_path,
                        MatrixFormat fmt) {
  if (fx.overview || !fx.cols.empty()) return fail("--matrix rollout takes --rows only (each row is a distribution over every token)");
  std::shared_ptr<const Result> r;
  int rc = 0;
  Session s;
  Validation v;
  if (!read_session(session_path, s, v, rc, false)) return rc;
  const int n = static_cast<int>(v.tokens.size());
  int a = 0, b = n;
  const bool many = parse_range(fx.rows, a, b) && b - a > 256, whole = many && n <= kFieldRolloutMaxTokens;
  if (many && !whole)  // said before the field is computed
    return fail("at most 256 rollout rows at a time above " + std::to_string(kFieldRolloutMaxTokens) +
                " tokens (each costs n floats per layer)");
  if (!compute_read(session_path, s, v, CostUse::compute, r, rc, false, false, whole)) return rc;
  return write_rollout_rows(*r, layer, fx, out_path, fmt);
}

// What export_field and export_model_field refuse before computing anything ("" when nothing).
std::string field_export_problem(const std::string& matrix, const FieldExport& fx) {
  const bool qkv = matrix == "q" || matrix == "k" || matrix == "v";
  if (matrix == "rollout")
    return fx.overview || !fx.cols.empty() ? "--matrix rollout takes --rows only (each row is a distribution over every token)" : "";
  if (!qkv && matrix != "weights" && matrix != "logits")
    return "--rows, --cols and --overview export weights, logits, q, k, v or rollout (not '" + matrix + "')";
  if (fx.overview && (fx.pool != "max" && fx.pool != "mean")) return "--pool is max or mean, not '" + fx.pool + "'";
  if (fx.overview && (fx.overview < 1 || fx.overview > 4096)) return "--overview must be between 1 and 4096";
  if (fx.overview && qkv) return "--overview pools weights; q, k and v are exported by --rows";
  return "";
}

// A block of a layer's field (weights, logits, or q/k/v rows), or its pooled overview, computed
// without the dense n x n matrices: up to kMaxFieldTokens tokens.
int export_field(const std::string& session_path, const std::string& matrix, int layer, int head, const FieldExport& fx,
                 const std::string& out_path) {
  MatrixFormat fmt;
  if (!format_from_path(out_path, fmt)) return fail(out_path + ": the name must end in .csv, .npy, .json or .tsv");
  const bool qkv = matrix == "q" || matrix == "k" || matrix == "v";
  if (const std::string why = field_export_problem(matrix, fx); !why.empty()) return fail(why);
  if (matrix == "rollout") return export_rollout_rows(session_path, layer, fx, out_path, fmt);
  std::string text, err;
  if (!read_file_limited(session_path, kMaxSessionFileBytes, text, err, "a session file")) return fail(err);
  auto parsed = parse_session(text);
  if (!parsed.session) return fail(session_path + ": " + join(parsed.problems));
  const Session& s = *parsed.session;
  if (head < 0 || head >= s.model.n_heads)
    return fail("head " + std::to_string(head) + " out of range (the session has " + std::to_string(s.model.n_heads) + ")");
  FieldOptions opt;
  if (fx.overview) opt.overview = fx.overview;
  Engine engine;
  FieldRun run;
  std::vector<std::string> problems;
  std::atomic<float> progress{0};
  if (!with_progress("computing the attention field", progress,
                     [&] { return engine.compute_field(s, layer, opt, run, problems, nullptr, &progress); }))
    return fail(session_path + ": " + join(problems));
  const HeadField& f = run.field.heads[head];
  const int n_q = field_n_q(f), n_k = field_n_k(f);
  LabeledMatrix m;
  m.name = matrix;
  if (fx.overview) {
    m.name = "overview_" + fx.pool;
    m.values = fx.pool == "max" ? f.overview_max : f.overview_mean;
  } else {
    int r0 = 0, r1 = qkv && matrix != "q" ? n_k : n_q, c0 = 0, c1 = n_k;
    if (!fx.rows.empty() && !parse_range(fx.rows, r0, r1)) return fail("--rows must be A:B with 0 <= A < B, not '" + fx.rows + "'");
    if (!fx.cols.empty() && !parse_range(fx.cols, c0, c1)) return fail("--cols must be C:D with 0 <= C < D, not '" + fx.cols + "'");
    const int row_limit = qkv && matrix != "q" ? n_k : n_q;
    if (r1 > row_limit) return fail("--rows " + fx.rows + " is past the " + std::to_string(row_limit) + " rows");
    if (qkv) {
      m.values = matrix == "q" ? field_q_rows(f, r0, r1) : matrix == "k" ? field_k_rows(f, r0, r1) : Matrix(f.v.middleRows(r0, r1 - r0));
    } else {
      if (c1 > n_k) return fail("--cols " + fx.cols + " is past the " + std::to_string(n_k) + " keys");
      if (double(r1 - r0) * (c1 - c0) > 64e6) return fail("that block has more than 64 M cells; export a smaller one or --overview");
      m.values = field_tile(f, run.field.specs[head], r0, r1, c0, c1, matrix == "logits");
    }
    const auto& keys = s.context.enabled ? run.key_tokens : run.tokens;
    const auto& row_tokens = qkv && matrix != "q" ? keys : run.tokens;
    for (int i = r0; i < r1; ++i) m.row_labels.push_back(token_label(row_tokens[i].text));
    if (!qkv)
      for (int j = c0; j < c1; ++j) m.col_labels.push_back(token_label(keys[j].text));
  }
  if (!write_file_atomic(out_path, encode_matrix(m, fmt), err)) return fail(err);
  return 0;
}

// The same blocks, q/k/v rows, overviews and rollout rows of a model's text: from the attention
// field of a long text, or from the dense matrices of a short one (the same numbers either way).
int export_model_field(ModelRun run, const std::string& matrix, int layer, int head, const FieldExport& fx,
                       const std::string& out_path) {
  MatrixFormat fmt;
  if (!format_from_path(out_path, fmt)) return fail(out_path + ": the name must end in .csv, .npy, .json or .tsv");
  if (const std::string why = field_export_problem(matrix, fx); !why.empty()) return fail(why);
  int a = 0, b = 0;
  if (matrix == "rollout") run.field_rollout = parse_range(fx.rows, a, b) && b - a > 256;
  run.top_k = 0;  // no next tokens to compute
  std::shared_ptr<const Result> r;
  int rc = 0;
  if (!model_result(run, r, rc)) return rc;
  if (matrix == "rollout") return write_rollout_rows(*r, layer, fx, out_path, fmt);
  if (layer < 0 || layer >= r->n_layers())
    return fail("layer " + std::to_string(layer) + " out of range (the model has " + std::to_string(r->n_layers()) + ")");
  const int H = r->is_field() ? static_cast<int>(r->fields[layer].heads.size()) : static_cast<int>(r->layers[layer].heads.size());
  if (head < 0 || head >= H) return fail("head " + std::to_string(head) + " out of range (the model has " + std::to_string(H) + ")");
  const bool qkv = matrix == "q" || matrix == "k" || matrix == "v";
  const HeadField* f = r->is_field() ? &r->fields[layer].heads[head] : nullptr;
  const HeadResult* d = r->is_field() ? nullptr : &r->layers[layer].heads[head];
  const int n_q = f ? field_n_q(*f) : static_cast<int>(d->weights.rows());
  const int n_k = f ? field_n_k(*f) : static_cast<int>(d->weights.cols());
  const auto& keys = r->key_tokens.empty() ? r->tokens : r->key_tokens;
  LabeledMatrix m;
  m.name = matrix;
  if (fx.overview) {
    const int factor = std::max(1, (std::max(n_q, n_k) + fx.overview - 1) / fx.overview);
    const bool mean = fx.pool == "mean";
    m.name = "overview_" + fx.pool;
    if (f && f->fr == factor && f->fc == factor) {
      m.values = mean ? f->overview_mean : f->overview_max;
    } else if (f) {
      const PooledTile t = pool_field_tile(*f, r->fields[layer].specs[head], 0, n_q, 0, n_k, factor, mean);
      m.values = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(t.value.data(), t.rows, t.cols);
    } else {  // pooled from the dense weights as the field pools: max, or the mean over the block's cells
      const Matrix& w = d->weights;
      const int rows = (n_q + factor - 1) / factor, cols = (n_k + factor - 1) / factor;
      m.values = Matrix::Zero(rows, cols);
      for (int p = 0; p < rows; ++p)
        for (int q = 0; q < cols; ++q) {
          const auto block = w.block(p * factor, q * factor, std::min(factor, n_q - p * factor), std::min(factor, n_k - q * factor));
          m.values(p, q) = mean ? block.mean() : block.maxCoeff();
        }
    }
  } else {
    const int row_limit = qkv && matrix != "q" ? n_k : n_q;
    int r0 = 0, r1 = row_limit, c0 = 0, c1 = n_k;
    if (!fx.rows.empty() && !parse_range(fx.rows, r0, r1)) return fail("--rows must be A:B with 0 <= A < B, not '" + fx.rows + "'");
    if (!fx.cols.empty() && !parse_range(fx.cols, c0, c1)) return fail("--cols must be C:D with 0 <= C < D, not '" + fx.cols + "'");
    if (r1 > row_limit) return fail("--rows " + fx.rows + " is past the " + std::to_string(row_limit) + " rows");
    if (qkv) {
      if (f) m.values = matrix == "q" ? field_q_rows(*f, r0, r1) : matrix == "k" ? field_k_rows(*f, r0, r1) : Matrix(f->v.middleRows(r0, r1 - r0));
      else m.values = (matrix == "q" ? d->q : matrix == "k" ? d->k : d->v).middleRows(r0, r1 - r0);
    } else {
      if (c1 > n_k) return fail("--cols " + fx.cols + " is past the " + std::to_string(n_k) + " keys");
      if (double(r1 - r0) * (c1 - c0) > 64e6) return fail("that block has more than 64 M cells; export a smaller one or --overview");
      if (f) {
        m.values = field_tile(*f, r->fields[layer].specs[head], r0, r1, c0, c1, matrix == "logits");
      } else {
        const Matrix& src = matrix == "logits" ? d->logits : d->weights;
        if (src.rows() != n_q || src.cols() != n_k) return fail("this Result keeps no " + matrix + " for layer " + std::to_string(layer));
        m.values = src.block(r0, c0, r1 - r0, c1 - c0);
      }
    }
    const auto& row_tokens = qkv && matrix != "q" ? keys : r->tokens;
    for (int i = r0; i < r1; ++i) m.row_labels.push_back(token_label(row_tokens[i].text));
    if (!qkv)
      for (int j = c0; j < c1; ++j) m.col_labels.push_back(token_label(keys[j].text));
  }
  std::string err;
  if (!write_file_atomic(out_path, encode_matrix(m, fmt), err)) return fail(err);
  return 0;
}

}  // namespace

// A command's JSON answer: to stdout ("" or "-") or atomically to a file; 1 with one line when it cannot be written.
int emit_json(const nlohmann::ordered_json& j, const std::string& out) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (out.empty() || out == "-") {
    std::cout << text;
    return 0;
  }
  std::string why;
  if (!write_file_atomic(out, text, why)) return fail(why);
  return 0;
}

// patch --model DIR --text CLEAN --corrupted TEXT: the activation-patching grid as JSON.
struct PatchArgs {
  std::string dir, text, corrupted, grid = "heads", metric = "logit-diff", token_a, token_b, out, direction = "noising";
  int position = -1;
};

int patch_command(const PatchArgs& a) {
  if (a.grid != "heads" && a.grid != "residual") return fail("--grid is heads or residual, not '" + a.grid + "'");
  if (a.metric != "logit-diff" && a.metric != "prob") return fail("--metric is logit-diff or prob, not '" + a.metric + "'");
  if (a.metric == "prob" && !a.token_b.empty()) return fail("--token-b goes with --metric logit-diff");
  if (a.direction != "noising" && a.direction != "denoising")
    return fail("--direction is noising or denoising, not '" + a.direction + "'");
  Failure err;
  auto m = HfModel::load(a.dir, err);
  if (!m) return fail(err.message);
  PatchRequest q;
  q.clean = a.text;
  q.corrupted = a.corrupted;
  q.grid = a.grid == "heads" ? PatchRequest::Grid::heads : PatchRequest::Grid::residual;
  q.metric = a.metric == "prob" ? PatchRequest::Metric::prob : PatchRequest::Metric::logit_diff;
  q.position = a.position;
  q.direction = a.direction == "denoising" ? PatchRequest::Direction::denoising : PatchRequest::Direction::noising;
  std::string why;
  if (!a.token_a.empty() && !m->single_token(a.token_a, q.token_a, why)) return fail("--token-a: " + why);
  if (!a.token_b.empty() && !m->single_token(a.token_b, q.token_b, why)) return fail("--token-b: " + why);
  PatchGrid g;
  std::atomic<float> progress{0};
  if (!with_progress("patching", progress, [&] { return m->patch(q, g, why, &progress); })) return fail(a.dir + ": " + why);
  auto tokens = [](const std::vector<Token>& ts) {
    nlohmann::json j = nlohmann::json::array();
    for (const Token& t : ts) j.push_back(t.text);
    return j;
  };
  nlohmann::ordered_json j;
  j["grid"] = a.grid;
  j["direction"] = a.direction;
  j["metric"] = a.metric == "prob" ? "prob" : "logit_diff";
  j["position"] = g.request.position;
  j["token_a"] = {{"id", g.request.token_a}, {"token", g.token_a_text}};
  if (q.metric == PatchRequest::Metric::logit_diff) j["token_b"] = {{"id", g.request.token_b}, {"token", g.token_b_text}};
  j["clean"] = g.clean;
  j["corrupted"] = g.corrupted;
  j["rows"] = "layer";
  j["cols"] = a.grid == "heads" ? "head" : "position";
  j["values"] = nlohmann::json::array();
  for (Eigen::Index l = 0; l < g.values.rows(); ++l) {
    std::vector<double> row(std::size_t(g.values.cols()));
    for (Eigen::Index c = 0; c < g.values.cols(); ++c) row[std::size_t(c)] = g.values(l, c);
    j["values"].push_back(row);
  }
  j["tokens"] = tokens(g.tokens);
  j["corrupted_tokens"] = tokens(g.corrupted_tokens);
  j["runs"] = g.runs;
  j["layers_run"] = g.layers_run;
  return emit_json(j, a.out);
}

// generate --model DIR --text T --tokens N: the text continued, as JSON.
struct GenerateArgs {
  std::string dir, text, out;
  int tokens = 20;
  bool sample = false, no_cache = false;
  double temperature = 1, top_p = 1;
  int sample_top_k = 0;
  std::uint64_t seed = 0;
};

int generate_command(const GenerateArgs& a) {
  Failure err;
  auto m = HfModel::load(a.dir, err);
  if (!m) return fail(err.message);
  GenerateOptions o;
  o.tokens = a.tokens;
  o.greedy = !a.sample;
  o.use_cache = !a.no_cache;
  o.sample.temperature = a.temperature, o.sample.top_p = a.top_p, o.sample.top_k = a.sample_top_k, o.sample.seed = a.seed;
  Generation g;
  std::string why;
  std::atomic<float> progress{0};
  if (!with_progress("generating", progress, [&] { return m->generate(a.text, o, g, why, &progress); }))
    return fail(a.dir + ": " + why);
  nlohmann::ordered_json j;
  j["text"] = g.text;
  j["generated"] = nlohmann::json::array();
  for (const auto& t : g.generated) j["generated"].push_back({{"id", t.id}, {"token", t.token}, {"p", t.p}});
  j["ids"] = g.ids;
  j["cached"] = g.cached;
  if (!g.note.empty()) j["note"] = g.note;
  return emit_json(j, a.out);
}

// tokenize --model DIR --text T: {"tokens": [...], "ids": [...]}, the ids compute runs the model on.
int tokenize_command(const std::string& dir, const std::string& text) {
  if (dir.empty()) return fail("give --model DIR");
  Failure err;
  auto m = HfModel::load(dir, err);
  if (!m) return fail(err.message);
  std::vector<int> ids;
  std::vector<Token> tokens;
  std::string why;
  if (!m->tokenize(text, ids, tokens, why)) return fail(dir + ": " + why);
  nlohmann::json j;
  j["tokens"] = nlohmann::json::array();
  for (const Token& t : tokens) j["tokens"].push_back(t.text);
  j["ids"] = ids;
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

// train TASK.json -o DIR: trains the task's model, writes the Hugging Face folder and the log;
// a progress line on stderr when it is a terminal, a JSON summary on stdout at the end.
struct TrainArgs {
  std::string task, out;
  int steps = 0;    // 0: the file's
  int seed = -1;    // -1: the file's
};
int train_command(const TrainArgs& a) {
  std::string text, error;
  if (!read_file_limited(a.task, kMaxConfigFileBytes, text, error, "a task file")) return fail(error);
  nlohmann::json j;
  if (!parse_json_input(text, j, error)) return fail(a.task + ": " + error);
  train::TrainSpec spec;
  std::string base = a.task.find('/') == std::string::npos ? "." : a.task.substr(0, a.task.rfind('/'));
  if (!train::read_train_spec(j, a.task, base, spec, error)) return fail(error);
  if (a.steps > 0) spec.training.steps = a.steps;
  if (a.seed >= 0) spec.training.seed = static_cast<std::uint64_t>(a.seed);
  auto trainer = train::Trainer::make(spec, error);
  if (!trainer) return fail(a.task + ": " + error);
  const bool tty = ::isatty(2);
  trainer->run(nullptr, [&](const train::LogRow& r) {
    if (!tty) return;
    std::fprintf(stderr, "\rstep %d/%d  train loss %.4f  val loss %.4f  val accuracy %.3f  %.1f s   ", r.step,
                 spec.training.steps, r.train_loss, r.val_loss, r.val_accuracy, r.seconds);
    std::fflush(stderr);
  });
  if (tty) std::fprintf(stderr, "\n");
  const train::LogRow& last = trainer->log().back();
  std::string family, why;
  const bool hf = trainer->hf_layout(family, why);
  nlohmann::json out = {{"task", trainer->task().describe()},
                        {"parameters", trainer->model().params.count()},
                        {"steps", trainer->step()},
                        {"seconds", trainer->seconds()},
                        {"steps_per_second", trainer->step() / std::max(1e-9, trainer->seconds())},
                        {"gflops_per_second", trainer->flops_per_step() * trainer->step() / std::max(1e-9, trainer->seconds()) / 1e9},
                        {"phase_change_step", trainer->phase_change_step()},
                        {"final", {{"train_loss", last.train_loss}, {"val_loss", last.val_loss}, {"val_accuracy", last.val_accuracy}}},
                        {"output", a.out},
                        {"layout", hf ? family : "none"}};
  if (!trainer->save(a.out, error)) return fail(a.out + ": " + error);
  std::cout << out.dump(2) << "\n";
  return 0;
}

int main(int argc, char** argv) {
  attnlab::choose_blas_kernels(argv);  // first: it may run the process again
  attnlab::tune_allocator();
  CLI::App app{"attnlab-cli: compute attention sessions without a window"};
  app.require_subcommand(1);

  std::string session_path, out_path;
  auto* compute_cmd = app.add_subcommand("compute", "compute a session and write the Result as JSON");
  compute_cmd->add_option("session", session_path, "session JSON file (- for stdin)");
  compute_cmd->add_option("-o,--output", out_path, "output file (default: stdout)");
  bool dense = false;
  compute_cmd->add_flag("--dense", dense, "dense matrices (JSON) even above 2048 tokens, where they fit (at most 8192)");
  ModelRun run;
  // --model and what goes with it, for compute, render and export alike
  auto model_options = [](CLI::App* cmd, ModelRun& m) {
    cmd->add_option("--model", m.dir, "a Hugging Face model folder (GPT-2, BERT, Llama, Qwen2, Mistral, Phi-3, GPT-NeoX or Gemma 2) instead of a session");
    cmd->add_option("--text", m.text, "with --model: the text to run");
    cmd->add_option("--top-k", m.top_k, "with --model: next tokens kept per position (next_tokens; 0: none)")
        ->check(CLI::Range(0, 1000));
    cmd->add_option("--ablate", m.ablate, "with --model: heads to ablate, LAYER.HEAD[,LAYER.HEAD...] (from 0)");
    cmd->add_option("--ablate-mode", m.ablate_mode, "zero (default), mean or corrupted: an ablated head's output becomes "
                                                    "zeros, its mean over the positions, or its output on --corrupted");
    cmd->add_option("--corrupted", m.corrupted, "with --ablate-mode corrupted: a text of as many tokens as --text");
    cmd->add_option("--mask-sink", m.mask_sink, "with --model: mask the first N keys in every layer for every row but their "
                                                "own (StreamingLLM's attention sinks taken away; 0: none)")
        ->check(CLI::Range(0, 1 << 20));
  };
  model_options(compute_cmd, run);
  compute_cmd->add_flag("--sample", run.sample, "with --model: draw the token after the text (\"sample\")");
  compute_cmd->add_option("--temperature", run.temperature, "with --sample: the output's temperature (default 1)")
      ->check(CLI::Range(1e-3, 100.0));
  compute_cmd->add_option("--top-p", run.top_p, "with --sample: the nucleus, 0 < p <= 1 (default 1: all)")
      ->check(CLI::Range(1e-6, 1.0));
  compute_cmd->add_option("--sample-top-k", run.sample_top_k, "with --sample: only the k most likely (default 0: all)")
      ->check(CLI::Range(0, 1 << 22));
  compute_cmd->add_option("--seed", run.seed, "with --sample: the draw's seed (default 0)");
  compute_cmd->add_flag("--logit-lens", run.logit_lens, "with --model: logit_lens, each layer's top token per position "
                                                        "(its residual stream through the final norm and unembedding)");

  std::string estimate_path;
  auto* estimate_cmd = app.add_subcommand("estimate", "print the time and memory a session needs, and the limits, as JSON");
  estimate_cmd->add_option("session", estimate_path, "session JSON file (- for stdin)")->required();

  std::string blocks_path;
  int block_q = 128, block_k = 0, block_head = 0;
  auto* blocks_cmd = app.add_subcommand("blocks", "print the mask's block map - the blocks a block-sparse kernel computes "
                                                  "(full, partial) and skips (empty) - and its FLOP saving, as JSON");
  blocks_cmd->add_option("session", blocks_path, "session JSON file (- for stdin)")->required();
  blocks_cmd->add_option("--block", block_q, "block side in query rows (default 128)")->check(CLI::Range(1, 1 << 20));
  blocks_cmd->add_option("--block-k", block_k, "block side in keys (default: --block)")->check(CLI::Range(1, 1 << 20));
  blocks_cmd->add_option("--head", block_head, "the head, for a mask expression that reads h (default 0)");

  bool markdown = false;
  auto* options_cmd = app.add_subcommand("options", "print every session option with its allowed values as JSON");
  options_cmd->add_flag("--markdown", markdown, "as the Markdown table of docs/session-format.md");

  std::string tok_dir, tok_text;
  auto* tokenize_cmd = app.add_subcommand("tokenize", "print a model folder's tokens and ids for a text as JSON");
  tokenize_cmd->add_option("--model", tok_dir, "a Hugging Face model folder")->required();
  tokenize_cmd->add_option("--text", tok_text, "the text")->required();

  GenerateArgs ga;
  auto* generate_cmd = app.add_subcommand("generate", "continue a text with a model: tokens appended one at a time "
                                                      "(greedy, or --sample), with a KV cache");
  generate_cmd->add_option("--model", ga.dir, "a Hugging Face model folder (a causal family)")->required();
  generate_cmd->add_option("--text", ga.text, "the text to continue")->required();
  generate_cmd->add_option("--tokens", ga.tokens, "how many tokens to append (default 20)")->check(CLI::Range(0, 100000));
  generate_cmd->add_flag("--sample", ga.sample, "draw each token (default: the most likely)");
  generate_cmd->add_option("--temperature", ga.temperature, "with --sample (default 1)")->check(CLI::Range(1e-3, 100.0));
  generate_cmd->add_option("--top-p", ga.top_p, "with --sample: the nucleus (default 1)")->check(CLI::Range(1e-6, 1.0));
  generate_cmd->add_option("--sample-top-k", ga.sample_top_k, "with --sample: only the k most likely (0: all)")
      ->check(CLI::Range(0, 1 << 22));
  generate_cmd->add_option("--seed", ga.seed, "with --sample: the draws' seed (default 0)");
  generate_cmd->add_flag("--no-cache", ga.no_cache, "rerun the whole text for every token (for comparison)");
  generate_cmd->add_option("-o,--output", ga.out, "JSON file (default: stdout)");

  PatchArgs pa;
  auto* patch_cmd = app.add_subcommand("patch", "activation patching: a model's clean text with each head's output (or "
                                                "the residual stream at each layer and position) from a corrupted text");
  patch_cmd->add_option("--model", pa.dir, "a Hugging Face model folder")->required();
  patch_cmd->add_option("--text", pa.text, "the clean text")->required();
  patch_cmd->add_option("--corrupted", pa.corrupted, "the corrupted text, as many tokens as the clean one")->required();
  patch_cmd->add_option("--grid", pa.grid, "heads (layers x heads, default) or residual (layers x positions)");
  patch_cmd->add_option("--metric", pa.metric, "logit-diff (default: logit of token A minus token B) or prob (of A)");
  patch_cmd->add_option("--token-a", pa.token_a, "one token's text (default: the clean run's top next token)");
  patch_cmd->add_option("--token-b", pa.token_b, "one token's text (default: the corrupted run's top next token)");
  patch_cmd->add_option("--position", pa.position, "where the metric is read (default: the last token)");
  patch_cmd->add_option("--direction", pa.direction,
                        "noising (default: the clean run with each piece from the corrupted run) or denoising "
                        "(the corrupted run with each piece from the clean run)");
  patch_cmd->add_option("-o,--output", pa.out, "JSON file (default: stdout)");

  RenderArgs ra;
  auto* render_cmd = app.add_subcommand("render", "draw a view of a session to a PNG (no display needed)");
  render_cmd->add_option("session", ra.session, "session JSON file (- for stdin), or --model");
  model_options(render_cmd, ra.model);
  render_cmd->add_option("--view", ra.view, "heads, detail, model, mask, positional, gallery, similarity or step");
  render_cmd->add_option("-o,--output", ra.out, "figure to write: .png, .svg or .pdf")->required();
  render_cmd->add_option("--layer", ra.layer, "layer (default 0)");
  render_cmd->add_option("--head", ra.head, "head, for detail and step (default 0)");
  render_cmd->add_option("--step", ra.step, "step view: input, q, k, v, scores, scaled, biased, masked, weights, context, output");
  render_cmd->add_option("--scale", ra.scale, "1, 2 or 4 (default 1)");
  render_cmd->add_option("--colormap", ra.colormap, "viridis, magma, inferno, cividis, greys");
  render_cmd->add_option("--range", ra.range, "global, per_head or per_row");
  render_cmd->add_option("--columns", ra.columns, "panels per row (default: about square)");
  render_cmd->add_flag("--logits", ra.logits, "logits instead of weights");
  render_cmd->add_flag("--log", ra.log, "log colour scale for weights");
  render_cmd->add_flag("--light", ra.light, "white background");
  render_cmd->add_option("--layout", ra.layout, "also write where each panel's cells are (JSON)");
  render_cmd->add_flag("--no-numbers", ra.no_numbers, "no values printed in large cells");

  std::string ex_session, ex_matrix = "weights", ex_out;
  int ex_layer = 0, ex_head = 0;
  auto* export_cmd = app.add_subcommand("export", "write one matrix of one head as CSV, NumPy .npy, JSON or TSV");
  export_cmd->add_option("session", ex_session, "session JSON file (- for stdin), or --model");
  ModelRun ex_model;
  model_options(export_cmd, ex_model);
  bool ex_all = false;
  export_cmd->add_flag("--all", ex_all, "every layer and head at once: one .npy of [layers, heads, rows, cols]");
  export_cmd->add_option("--matrix", ex_matrix, "input, q, k, v, scores, scaled, biased, masked, weights, context, output");
  export_cmd->add_option("--layer", ex_layer, "layer (default 0)");
  export_cmd->add_option("--head", ex_head, "head (default 0)");
  export_cmd->add_option("-o,--output", ex_out, "file; the format follows its extension")->required();
  FieldExport fx;
  export_cmd->add_option("--rows", fx.rows, "A:B: rows A..B-1 only, from the attention field (up to 131072 tokens); with --matrix rollout, those queries' rollout");
  export_cmd->add_option("--cols", fx.cols, "C:D: columns C..D-1 only (weights, logits)");
  export_cmd->add_option("--overview", fx.overview, "N: the N x N pooled map of the weights, from the field");
  export_cmd->add_option("--pool", fx.pool, "with --overview: max (default) or mean");
  export_cmd->add_flag("--dense", ex_model.dense, "with --model: the dense matrices even above 2048 tokens, where they fit (at most 8192)");

  TrainArgs ta;
  auto* train_cmd = app.add_subcommand("train", "train a small transformer on a task file (TASK.json); writes DIR/config.json, "
                                                "model.safetensors, tokenizer files and train_log.csv");
  train_cmd->add_option("task", ta.task, "the task file (assets/training/induction.json is an example)")->required();
  train_cmd->add_option("-o,--output", ta.out, "the folder to write (made when missing)")->required();
  train_cmd->add_option("--steps", ta.steps, "steps instead of the file's")->check(CLI::Range(1, 10000000));
  train_cmd->add_option("--seed", ta.seed, "seed instead of the file's")->check(CLI::Range(0, 2147483647));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = utf8_sanitize(e.what());
    for (char& c : what)
      if (c == '\n') c = ' ';
    std::cerr << "attnlab-cli: " << what << " (see attnlab-cli --help)\n";
    return 2;
  }

  try {
    if (*options_cmd) {
      std::cout << (markdown ? options_markdown() : options_json() + "\n");
      return 0;
    }
    if (*compute_cmd) {
      run.dense = dense;
      return compute_command(session_path, out_path, dense, run);
    }
    if (*estimate_cmd) return estimate_command(estimate_path);
    if (*blocks_cmd) return blocks_command(blocks_path, block_q, block_k > 0 ? block_k : block_q, block_head);
    if (*tokenize_cmd) return tokenize_command(tok_dir, tok_text);
    if (*train_cmd) return train_command(ta);
    if (*patch_cmd) return patch_command(pa);
    if (*generate_cmd) return generate_command(ga);
    if (*render_cmd) return render_command(ra);
    if (*export_cmd && (!fx.rows.empty() || !fx.cols.empty() || fx.overview)) {
      int rc = 0;
      if (source_problem(ex_session, ex_model, rc)) return rc;
      if (!ex_model.dir.empty()) return export_model_field(ex_model, ex_matrix, ex_layer, ex_head, fx, ex_out);
      if (ex_model.dense) return fail("--dense is for --model (a session's blocks come from its field)");
      return export_field(ex_session, ex_matrix, ex_layer, ex_head, fx, ex_out);
    }
    if (*export_cmd) return export_command(ex_session, ex_matrix, ex_layer, ex_head, ex_out, ex_model, ex_all);
  } catch (const std::bad_alloc&) {
    return fail("out of memory (the estimate was too low: please report the session)");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 2;
}
