// GPT-2 (Radford et al. 2019; model_type "gpt2"): learned positions added to the token
// embeddings, pre-LN blocks, Conv1D weights stored (in, out), causal attention, gelu_new,
// byte-level BPE.
#include "core/json_input.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"

namespace attnlab {
namespace {

bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  if (!read_sizes(cfg, path, {"n_embd", "n_head", "n_layer", "n_positions"}, in, error)) return false;
  in.layer_norm_eps = 1e-5;
  in.d_inner = 4 * in.d_model;
  return json_get(cfg, "layer_norm_epsilon", in.layer_norm_eps, kMinNormEps, kMaxNormEps, error, path) &&
         json_get(cfg, "n_inner", in.d_inner, 1, 1 << 20, error, path);
}

bool read_tokenizer(const std::string& dir, const nlohmann::json&, const ModelInfo&, ModelTokenizer& tok, std::string& error) {
  tok.bpe = ByteBpe::load(dir, error);
  return tok.bpe != nullptr;
}

std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner;
  return {
      {"wte", "wte.weight", in.vocab_size, d},
      {"wpe", "wpe.weight", in.n_positions, d},
      {"ln1.g", "h.{l}.ln_1.weight", d, 0, true},
      {"ln1.b", "h.{l}.ln_1.bias", d, 0, true},
      {"qkv.w", "h.{l}.attn.c_attn.weight", d, 3 * d, true},
      {"qkv.b", "h.{l}.attn.c_attn.bias", 3 * d, 0, true},
      {"o.w", "h.{l}.attn.c_proj.weight", d, d, true},
      {"o.b", "h.{l}.attn.c_proj.bias", d, 0, true},
      {"ln2.g", "h.{l}.ln_2.weight", d, 0, true},
      {"ln2.b", "h.{l}.ln_2.bias", d, 0, true},
      {"fc.w", "h.{l}.mlp.c_fc.weight", d, f, true},
      {"fc.b", "h.{l}.mlp.c_fc.bias", f, 0, true},
      {"proj.w", "h.{l}.mlp.c_proj.weight", f, d, true},
      {"proj.b", "h.{l}.mlp.c_proj.bias", d, 0, true},
      {"lnf.g", "ln_f.weight", d, 0, false, false, true},  // the output head: ln_f, then wte (tied)
      {"lnf.b", "ln_f.bias", d, 0, false, false, true},
  };
}

void describe(const ModelInfo& in, Result& r) {
  Session& s = r.session;
  s.model.block = BlockKind::pre_ln;
  s.positional.kind = PositionalKind::learned;
  s.attention.mask.kind = MaskKind::causal;
  r.positions.kind = PositionalKind::learned;
  r.positions.source = "the model's wpe.weight (learned), added to the token embeddings";
  (void)in;
}

bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size());
  if (!fi.cache) r.positions.table = w.get("wpe").topRows(n);
  const int p0 = fi.cache ? fi.cache->positions : 0;
  Matrix x = embed(w.get("wte"), fi.ids, &w.get("wpe"), p0);
  const auto own = fi.field || fi.cache ? nullptr : own_pattern(n, true);  // a field's mask is a rule
  const HeadLayout heads{in.n_heads, in.n_heads, in.d_head, 0};
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    LayerResult layer;
    layer.input = x;
    layer.attention_input = layer_norm(x, w.row(l, "ln1.g"), w.row(l, "ln1.b"), in.layer_norm_eps);
    const Matrix qkv = affine(layer.attention_input, w.get(l, "qkv.w"), w.row(l, "qkv.b"));
    FieldLayer field;
    const Matrix heads_out = causal_attention(fi, qkv, heads, own, 0, l, r, layer, field);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = affine(heads_out, w.get(l, "o.w"), w.row(l, "o.b"));
    x += layer.attention_output;
    const Matrix hidden = gelu_tanh(affine(layer_norm(x, w.row(l, "ln2.g"), w.row(l, "ln2.b"), in.layer_norm_eps),
                                           w.get(l, "fc.w"), w.row(l, "fc.b")));
    x += affine(hidden, w.get(l, "proj.w"), w.row(l, "proj.b"));
    layer.output = x;
    keep_layer(fi, r, layer, field);
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

bool unembed(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why) {
  if (!w.global.count("lnf.g") || !w.global.count("lnf.b")) {
    why = "the checkpoint has no ln_f.weight / ln_f.bias (the final layer norm)";
    return false;
  }
  logits = unembed_rows(layer_norm(hidden, w.get("lnf.g").row(0), w.get("lnf.b").row(0), in.layer_norm_eps), w.get("wte"));
  return true;
}

}  // namespace

const Family kGpt2Family{"gpt2", read_config, read_tokenizer, "wte.weight", {"transformer."}, tensors, describe, forward,
                         unembed};

}  // namespace attnlab
