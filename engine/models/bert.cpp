// BERT (Devlin et al. 2019; model_type "bert"): learned positions and token type 0 added, then an
// embedding LayerNorm; post-LN blocks (LN(x + sublayer(x))), bidirectional attention, exact
// GELU, nn.Linear weights stored (out, in); WordPiece with [CLS] / [SEP].
#include "core/json_input.hpp"
#include "core/utf8.hpp"
#include "models/family.hpp"
#include "models/layers.hpp"

namespace attnlab {
namespace {

bool read_config(const nlohmann::json& cfg, const std::string& path, ModelInfo& in, std::string& error) {
  if (!read_sizes(cfg, path, {"hidden_size", "num_attention_heads", "num_hidden_layers", "max_position_embeddings"}, in,
                  error))
    return false;
  if (!json_get(cfg, "intermediate_size", in.d_inner, 1, 1 << 20, error, path, true) ||
      !json_get(cfg, "type_vocab_size", in.type_vocab, 1, 1 << 10, error, path, true))
    return false;
  in.layer_norm_eps = 1e-12;
  std::string act = "gelu";
  if (!json_get(cfg, "layer_norm_eps", in.layer_norm_eps, kMinNormEps, kMaxNormEps, error, path) ||
      !json_get(cfg, "hidden_act", act, error, path))
    return false;
  if (act != "gelu") {
    error = path + ": hidden_act '" + utf8_sanitize(act) + "' is not supported (gelu)";
    return false;
  }
  return true;
}

bool read_tokenizer(const std::string& dir, const nlohmann::json&, const ModelInfo& in, ModelTokenizer& tok,
                    std::string& error) {
  tok.bpe = load_bert_tokenizer(dir, error);
  if (!tok.bpe) return false;
  if (tok.bpe->max_id() >= in.vocab_size) {
    error = dir + ": the tokenizer has " + std::to_string(tok.bpe->max_id() + 1) + " tokens, more than vocab_size " +
            std::to_string(in.vocab_size) + " in config.json";
    return false;
  }
  return true;
}

std::vector<TensorSpec> tensors(const ModelInfo& in) {
  const std::int64_t d = in.d_model, f = in.d_inner;
  const std::string p = "encoder.layer.{l}.";
  return {
      {"wte", "embeddings.word_embeddings.weight", in.vocab_size, d},
      {"wpe", "embeddings.position_embeddings.weight", in.n_positions, d},
      {"types", "embeddings.token_type_embeddings.weight", in.type_vocab, d},
      {"emb_ln.g", "embeddings.LayerNorm.weight", d},
      {"emb_ln.b", "embeddings.LayerNorm.bias", d},
      {"q.w", p + "attention.self.query.weight", d, d, true, true},
      {"q.b", p + "attention.self.query.bias", d, 0, true},
      {"k.w", p + "attention.self.key.weight", d, d, true, true},
      {"k.b", p + "attention.self.key.bias", d, 0, true},
      {"v.w", p + "attention.self.value.weight", d, d, true, true},
      {"v.b", p + "attention.self.value.bias", d, 0, true},
      {"o.w", p + "attention.output.dense.weight", d, d, true, true},
      {"o.b", p + "attention.output.dense.bias", d, 0, true},
      {"ln1.g", p + "attention.output.LayerNorm.weight", d, 0, true},
      {"ln1.b", p + "attention.output.LayerNorm.bias", d, 0, true},
      {"fc.w", p + "intermediate.dense.weight", f, d, true, true},
      {"fc.b", p + "intermediate.dense.bias", f, 0, true},
      {"proj.w", p + "output.dense.weight", d, f, true, true},
      {"proj.b", p + "output.dense.bias", d, 0, true},
      {"ln2.g", p + "output.LayerNorm.weight", d, 0, true},
      {"ln2.b", p + "output.LayerNorm.bias", d, 0, true},
      // BertForMaskedLM's head, outside the "bert." prefix: dense + activation + LayerNorm, then the
      // decoder (its own weight when stored, else the word embeddings: tied) and its bias
      {"mlm.w", "cls.predictions.transform.dense.weight", d, d, false, true, true, true},
      {"mlm.b", "cls.predictions.transform.dense.bias", d, 0, false, false, true, true},
      {"mlm_ln.g", "cls.predictions.transform.LayerNorm.weight", d, 0, false, false, true, true},
      {"mlm_ln.b", "cls.predictions.transform.LayerNorm.bias", d, 0, false, false, true, true},
      {"mlm.decoder", "cls.predictions.decoder.weight", in.vocab_size, d, false, false, true, true},
      {"mlm.bias", "cls.predictions.bias", in.vocab_size, 0, false, false, true, true},
  };
}

void describe(const ModelInfo&, Result& r) {
  Session& s = r.session;
  s.model.block = BlockKind::attention;  // post-LN: Q, K, V read the stream itself
  s.positional.kind = PositionalKind::learned;
  s.attention.mask.kind = MaskKind::none;
  r.positions.kind = PositionalKind::learned;
  r.positions.source = "the model's embeddings.position_embeddings (learned), added before the embedding LayerNorm";
}

bool forward(const ModelInfo& in, const Weights& w, const ForwardInput& fi, Result& r) {
  const int n = static_cast<int>(fi.ids.size());
  r.positions.table = w.get("wpe").topRows(n);
  Matrix x = embed(w.get("wte"), fi.ids, &w.get("wpe"));
  x.rowwise() += RowVector(w.get("types").row(0));  // token type 0 for every token
  x = layer_norm(x, w.get("emb_ln.g").row(0), w.get("emb_ln.b").row(0), in.layer_norm_eps);
  const auto own = fi.field ? nullptr : own_pattern(n, false);  // a field's mask is a rule
  const HeadLayout heads{in.n_heads, in.n_heads, in.d_head, 0};
  if (fi.first_input) x = *fi.first_input;  // resumed: the earlier layers' stream given
  for (int l = fi.first_layer; l < in.n_layers; ++l) {
    if (!next_layer(fi, l, in.n_layers)) return false;
    LayerResult layer;
    layer.input = x;
    layer.attention_input = x;
    Matrix qkv(n, 3 * in.d_model);
    qkv << affine(x, w.get(l, "q.w"), w.row(l, "q.b")), affine(x, w.get(l, "k.w"), w.row(l, "k.b")),
        affine(x, w.get(l, "v.w"), w.row(l, "v.b"));
    FieldLayer field;
    const Matrix heads_out = fi.field ? attend_field(qkv, heads, false, fi.intervention, l, r.tokens, field, fi.cancel, 0, fi.field_half, fi.options.sink_tokens)
                                      : attend(qkv, heads, own, fi.intervention, l, r.tokens, layer);
    if (heads_out.size() == 0) return false;  // cancelled
    layer.attention_output = affine(heads_out, w.get(l, "o.w"), w.row(l, "o.b"));
    x = layer_norm(x + layer.attention_output, w.row(l, "ln1.g"), w.row(l, "ln1.b"), in.layer_norm_eps);
    const Matrix inter = gelu_exact(affine(x, w.get(l, "fc.w"), w.row(l, "fc.b")));
    x = layer_norm(x + affine(inter, w.get(l, "proj.w"), w.row(l, "proj.b")), w.row(l, "ln2.g"), w.row(l, "ln2.b"),
                   in.layer_norm_eps);
    layer.output = x;
    if (fi.field) {  // the heads' fields; the layer's (n, d_model) streams are not kept (0.57 GB at SmolLM's 8192 tokens)
      r.fields.push_back(std::move(field));
    } else {
      r.layers.push_back(std::move(layer));
    }
  }
  if (fi.hidden) *fi.hidden = x;
  return true;
}

// The masked-LM head: what the model predicts *at* each position (the token a [MASK] there
// stands for), not after it.
bool unembed(const ModelInfo& in, const Weights& w, const Matrix& hidden, Matrix& logits, std::string& why) {
  for (const char* role : {"mlm.w", "mlm.b", "mlm_ln.g", "mlm_ln.b", "mlm.bias"})
    if (!w.global.count(role)) {
      why = "the checkpoint has no masked-LM head (cls.predictions.*: a BertModel, not BertForMaskedLM)";
      return false;
    }
  const Matrix t = layer_norm(gelu_exact(affine(hidden, w.get("mlm.w"), w.get("mlm.b").row(0))), w.get("mlm_ln.g").row(0),
                              w.get("mlm_ln.b").row(0), in.layer_norm_eps);
  logits = unembed_rows(t, w.global.count("mlm.decoder") ? w.get("mlm.decoder") : w.get("wte"));
  logits.rowwise() += RowVector(w.get("mlm.bias").row(0));
  return true;
}

}  // namespace

const Family kBertFamily{"bert", read_config, read_tokenizer, "embeddings.word_embeddings.weight", {"bert."},
                         tensors, describe, forward, unembed};

}  // namespace attnlab
