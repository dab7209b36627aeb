#!/usr/bin/python3
"""Tiny Phi-3, GPT-NeoX and Gemma 2 folders in the Hugging Face layout, and what they compute, by
numpy alone (float64), written from the papers and the configs' documented semantics:

- Phi-3 (model_type "phi3"): a Llama block whose q, k, v are one fused nn.Linear `qkv_proj`
  ([q | k | v] along the output) and whose gate and up are one `gate_up_proj` ([gate | up]);
  `partial_rotary_factor` turns only the first int(head_dim * factor) dimensions of each head;
  `sliding_window`: key j seen by query i when i - window < j <= i.
- GPT-NeoX / Pythia ("gpt_neox"): LayerNorm with biases, a fused `query_key_value` laid out per
  head ([q_h | k_h | v_h] for each head h in turn), RoPE on the first int(head_size * rotary_pct)
  dimensions, exact GELU, and the parallel residual x + attn(ln1(x)) + mlp(ln2(x)) (or, with
  use_parallel_residual false, the sequential one); `embed_out` is the output head.
- Gemma 2 ("gemma2"): embeddings times sqrt(hidden_size); RMSNorm with gain (1 + w); logits
  q k^T / sqrt(query_pre_attn_scalar), soft-capped c tanh(l / c) with attn_logit_softcapping
  before the mask; a sliding window on even layers (0, 2, ...), full causal attention on odd ones;
  norms after attention and after the MLP as well as before; GeGLU with tanh GELU; tied output head
  whose logits are soft-capped by final_logit_softcapping.

Writes tests/models/tiny-{phi3,gpt-neox,gemma2}/ and tests/golden/tiny_{phi3,gpt_neox,gemma2}.json
(tokens, ids, every head's weights, next-token distributions plain and with head ablations), and
tests/golden/patching.json: activation patching on tiny-gpt2 (its weights read from the
safetensors file) - a clean and a corrupted text of as many tokens, and for every head (its
output before the output projection) and every (layer, position) of the residual stream entering a
layer, the clean run with that piece taken from the corrupted run: the logit difference of two
tokens and the probability of the clean run's top token at the last position.
Run from anywhere: /usr/bin/python3 tests/reference/make_tiny_families.py
"""
import json
import os
import struct

import numpy as np

from make_tiny_models import (B2U, CORPUS, LLAMA_TEXT, ROOT, TEXT, ablated, f16_round, forward, llama_tokenize,
                              llama_tokenizer, softmax_last, tokenize, train_merges, write_safetensors,
                              write_safetensors_f16)


def gpt2_vocab():
    """tiny-gpt2's byte-level BPE, as make_tiny_models.py trains it: merges, their ranks, vocab."""
    merges = train_merges(CORPUS, 60)
    vocab = {}
    for sym in [B2U[b] for b in range(256)] + [a + b for a, b in merges]:
        vocab.setdefault(sym, len(vocab))
    return merges, {m: i for i, m in enumerate(merges)}, vocab


def rope_tables(n, rot, base):
    """cos and sin (n, rot) of HF's rotate_half RoPE on `rot` dimensions."""
    inv = base ** (-np.arange(0, rot, 2) / rot)
    ang = np.outer(np.arange(n), inv)
    return np.concatenate([np.cos(ang)] * 2, 1), np.concatenate([np.sin(ang)] * 2, 1)


def rope_partial(x, cos, sin):
    """RoPE on the first cos.shape[1] columns of x, the rest passed through."""
    rot = cos.shape[1]
    xr, xp = x[:, :rot], x[:, rot:]
    half = rot // 2
    xr = xr * cos + np.concatenate([-xr[:, half:], xr[:, :half]], 1) * sin
    return np.concatenate([xr, xp], 1)


def rms(x, g, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * g


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_exact(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def attention(q, k, v, H, KV, dh, cos, sin, scale, window=0, softcap=0.0):
    """Causal GQA attention per head: (weights per head, heads' outputs side by side (n, H dh))."""
    n = q.shape[0]
    i_, j_ = np.indices((n, n))
    seen = (j_ <= i_) & ((i_ - j_ < window) if window else True)
    heads, ctx = [], np.zeros((n, H * dh))
    for h in range(H):
        g = h // (H // KV)
        qh = rope_partial(q[:, h * dh:(h + 1) * dh], cos, sin)
        kh = rope_partial(k[:, g * dh:(g + 1) * dh], cos, sin)
        s = qh @ kh.T * scale
        if softcap:
            s = softcap * np.tanh(s / softcap)
        s = np.where(seen, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(p)
        ctx[:, h * dh:(h + 1) * dh] = p @ v[:, g * dh:(g + 1) * dh]
    return heads, ctx


def cases(run, specs):
    """The golden "next" list: plain, then each (spec, mode) ablation."""
    out = [{"ablate": "", "mode": "zero", "probs": run()[1]}]
    for spec, mode in specs:
        pairs = [tuple(int(v) for v in s.split(".")) for s in spec.split(",")]
        out.append({"ablate": spec, "mode": mode, "probs": run(pairs, mode)[1]})
    return out


def save(name, cfg, tok, w, text, toks, ids, run, specs, f16=True):
    folder = os.path.join(ROOT, "models", name)
    os.makedirs(folder, exist_ok=True)
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=1)
    json.dump(tok, open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    (write_safetensors_f16 if f16 else write_safetensors)(os.path.join(folder, "model.safetensors"), w)
    layers = [[np.round(p, 9).tolist() for p in heads] for heads in run()[0]]
    golden = {"text": text, "tokens": toks, "ids": ids, "weights": layers, "next": cases(run, specs)}
    json.dump(golden, open(os.path.join(ROOT, "golden", name.replace("-", "_") + ".json"), "w"), separators=(",", ":"))
    print(f"{name}: {len(toks)} tokens")


def metaspace_tokenizer_json(vocab, merges):
    return {"version": "1.0",
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                               {"type": "Replace", "pattern": {"String": " "},
                                                                "content": "\u2581"}]},
            "pre_tokenizer": None,
            "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "vocab": vocab,
                      "merges": [f"{a} {b}" for a, b in merges]}}


def phi3():
    vocab, merges = llama_tokenizer()
    d, H, KV, dh, inner, window, factor = 32, 4, 2, 8, 40, 6, 0.5
    cfg = {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "hidden_size": d, "num_attention_heads": H,
           "num_key_value_heads": KV, "num_hidden_layers": 2, "intermediate_size": inner,
           "max_position_embeddings": 64, "original_max_position_embeddings": 64, "vocab_size": len(vocab),
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
           "partial_rotary_factor": factor, "sliding_window": window, "bos_token_id": 1, "eos_token_id": 2,
           "tie_word_embeddings": False, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0}
    rng = np.random.default_rng(31)
    qd, kvd = H * dh, KV * dh
    w = {"model.embed_tokens.weight": rng.normal(0, 0.8, (len(vocab), d))}
    for l in range(2):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        w[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        w[p + "self_attn.qkv_proj.weight"] = rng.normal(0, 0.5, (qd + 2 * kvd, d))
        w[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.3, (d, qd))
        w[p + "mlp.gate_up_proj.weight"] = rng.normal(0, 0.3, (2 * inner, d))
        w[p + "mlp.down_proj.weight"] = rng.normal(0, 0.3, (d, inner))
    w["model.norm.weight"] = 1 + rng.normal(0, 0.1, d)
    w["lm_head.weight"] = rng.normal(0, 1.0, (len(vocab), d))
    w = {k: f16_round(v.astype(np.float32)) for k, v in w.items()}
    W = {k: v.astype(np.float64) for k, v in w.items()}
    ids, toks = llama_tokenize(LLAMA_TEXT, vocab, merges)
    n = len(ids)
    cos, sin = rope_tables(n, int(dh * factor), 10000.0)

    def run(ablate=(), mode="zero"):
        x = W["model.embed_tokens.weight"][ids]
        layers = []
        for l in range(2):
            p = f"model.layers.{l}."
            qkv = rms(x, W[p + "input_layernorm.weight"], 1e-5) @ W[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv[:, :qd], qkv[:, qd:qd + kvd], qkv[:, qd + kvd:]
            heads, ctx = attention(q, k, v, H, KV, dh, cos, sin, dh ** -0.5, window)
            for (la, h) in ablate:
                if la == l:
                    ablated(ctx, slice(h * dh, (h + 1) * dh), mode)
            x = x + ctx @ W[p + "self_attn.o_proj.weight"].T
            gu = rms(x, W[p + "post_attention_layernorm.weight"], 1e-5) @ W[p + "mlp.gate_up_proj.weight"].T
            gate, up = gu[:, :inner], gu[:, inner:]
            x = x + (up * gate / (1 + np.exp(-gate))) @ W[p + "mlp.down_proj.weight"].T
            layers.append(heads)
        probs = softmax_last(rms(x, W["model.norm.weight"], 1e-5) @ W["lm_head.weight"].T)
        return layers, np.round(probs, 12).tolist()

    save("tiny-phi3", cfg, metaspace_tokenizer_json(vocab, merges), w, LLAMA_TEXT, toks, ids, run,
         [("0.1", "zero"), ("1.0,1.2", "mean")])


def gpt_neox(parallel=True):
    merges, ranks, vocab = gpt2_vocab()
    d, H, inner, pct = 24, 3, 48, 0.5
    dh = d // H
    cfg = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "hidden_size": d,
           "num_attention_heads": H, "num_hidden_layers": 2, "intermediate_size": inner,
           "max_position_embeddings": 64, "vocab_size": len(vocab), "layer_norm_eps": 1e-5, "rotary_pct": pct,
           "rotary_emb_base": 10000, "hidden_act": "gelu", "use_parallel_residual": parallel,
           "attention_bias": True, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0}
    rng = np.random.default_rng(41)
    w = {"gpt_neox.embed_in.weight": rng.normal(0, 0.8, (len(vocab), d))}
    for l in range(2):
        p = f"gpt_neox.layers.{l}."
        for ln in ("input_layernorm", "post_attention_layernorm"):
            w[p + ln + ".weight"] = 1 + rng.normal(0, 0.1, d)
            w[p + ln + ".bias"] = rng.normal(0, 0.1, d)
        w[p + "attention.query_key_value.weight"] = rng.normal(0, 0.5, (3 * d, d))
        w[p + "attention.query_key_value.bias"] = rng.normal(0, 0.2, 3 * d)
        w[p + "attention.dense.weight"] = rng.normal(0, 0.3, (d, d))
        w[p + "attention.dense.bias"] = rng.normal(0, 0.05, d)
        w[p + "mlp.dense_h_to_4h.weight"] = rng.normal(0, 0.3, (inner, d))
        w[p + "mlp.dense_h_to_4h.bias"] = rng.normal(0, 0.05, inner)
        w[p + "mlp.dense_4h_to_h.weight"] = rng.normal(0, 0.3, (d, inner))
        w[p + "mlp.dense_4h_to_h.bias"] = rng.normal(0, 0.05, d)
    w["gpt_neox.final_layer_norm.weight"] = 1 + rng.normal(0, 0.1, d)
    w["gpt_neox.final_layer_norm.bias"] = rng.normal(0, 0.1, d)
    w["embed_out.weight"] = rng.normal(0, 1.0, (len(vocab), d))
    w = {k: v.astype(np.float32) for k, v in w.items()}
    W = {k: v.astype(np.float64) for k, v in w.items()}
    ids, toks = tokenize(TEXT, vocab, ranks)
    n = len(ids)
    cos, sin = rope_tables(n, int(dh * pct), 10000.0)

    def run(ablate=(), mode="zero"):
        x = W["gpt_neox.embed_in.weight"][ids]
        layers = []
        for l in range(2):
            p = f"gpt_neox.layers.{l}."
            ln1 = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], 1e-5)
            qkv = ln1 @ W[p + "attention.query_key_value.weight"].T + W[p + "attention.query_key_value.bias"]
            per_head = qkv.reshape(n, H, 3 * dh)  # head h's columns: [q_h | k_h | v_h]
            q = per_head[:, :, :dh].reshape(n, d)
            k = per_head[:, :, dh:2 * dh].reshape(n, d)
            v = per_head[:, :, 2 * dh:].reshape(n, d)
            heads, ctx = attention(q, k, v, H, H, dh, cos, sin, dh ** -0.5)
            for (la, h) in ablate:
                if la == l:
                    ablated(ctx, slice(h * dh, (h + 1) * dh), mode)
            attn = ctx @ W[p + "attention.dense.weight"].T + W[p + "attention.dense.bias"]

            def mlp(y):
                hdn = gelu_exact(y @ W[p + "mlp.dense_h_to_4h.weight"].T + W[p + "mlp.dense_h_to_4h.bias"])
                return hdn @ W[p + "mlp.dense_4h_to_h.weight"].T + W[p + "mlp.dense_4h_to_h.bias"]

            ln2 = lambda y: layer_norm(y, W[p + "post_attention_layernorm.weight"],
                                       W[p + "post_attention_layernorm.bias"], 1e-5)
            if parallel:
                x = x + attn + mlp(ln2(x))
            else:
                x = x + attn
                x = x + mlp(ln2(x))
            layers.append(heads)
        final = layer_norm(x, W["gpt_neox.final_layer_norm.weight"], W["gpt_neox.final_layer_norm.bias"], 1e-5)
        return layers, np.round(softmax_last(final @ W["embed_out.weight"].T), 12).tolist()

    tok = {"version": "1.0",
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]}}
    name = "tiny-gpt-neox" if parallel else "tiny-gpt-neox-sequential"
    save(name, cfg, tok, w, TEXT, toks, ids, run, [("1.1", "zero"), ("0.0,1.2", "mean")], f16=False)


def gemma2():
    vocab, merges = llama_tokenizer()
    d, H, KV, dh, inner = 16, 4, 2, 8, 24
    window, scalar, attn_cap, final_cap = 4, 16.0, 2.0, 3.0
    cfg = {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "hidden_size": d,
           "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": dh, "num_hidden_layers": 2,
           "intermediate_size": inner, "max_position_embeddings": 64, "vocab_size": len(vocab),
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_activation": "gelu_pytorch_tanh",
           "hidden_act": "gelu_pytorch_tanh", "query_pre_attn_scalar": scalar, "sliding_window": window,
           "attn_logit_softcapping": attn_cap, "final_logit_softcapping": final_cap, "attention_bias": False,
           "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": True}
    rng = np.random.default_rng(51)
    qd, kvd = H * dh, KV * dh
    w = {"model.embed_tokens.weight": rng.normal(0, 0.8, (len(vocab), d))}
    for l in range(2):
        p = f"model.layers.{l}."
        for ln in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                   "post_feedforward_layernorm"):
            w[p + ln + ".weight"] = rng.normal(0, 0.2, d)  # the gain is 1 + w
        w[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.6, (qd, d))
        w[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.6, (kvd, d))
        w[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.4, (kvd, d))
        w[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.3, (d, qd))
        w[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.3, (inner, d))
        w[p + "mlp.up_proj.weight"] = rng.normal(0, 0.3, (inner, d))
        w[p + "mlp.down_proj.weight"] = rng.normal(0, 0.3, (d, inner))
    w["model.norm.weight"] = rng.normal(0, 0.2, d)
    w = {k: f16_round(v.astype(np.float32)) for k, v in w.items()}
    W = {k: v.astype(np.float64) for k, v in w.items()}
    ids, toks = llama_tokenize(LLAMA_TEXT, vocab, merges)
    n = len(ids)
    cos, sin = rope_tables(n, dh, 10000.0)
    norm = lambda x, name: rms(x, 1 + W[name], 1e-6)

    def run(ablate=(), mode="zero"):
        x = W["model.embed_tokens.weight"][ids] * np.sqrt(d)
        layers = []
        for l in range(2):
            p = f"model.layers.{l}."
            a = norm(x, p + "input_layernorm.weight")
            q, k, v = (a @ W[p + f"self_attn.{t}_proj.weight"].T for t in "qkv")
            sliding = l % 2 == 0
            heads, ctx = attention(q, k, v, H, KV, dh, cos, sin, scalar ** -0.5, window if sliding else 0, attn_cap)
            for (la, h) in ablate:
                if la == l:
                    ablated(ctx, slice(h * dh, (h + 1) * dh), mode)
            x = x + norm(ctx @ W[p + "self_attn.o_proj.weight"].T, p + "post_attention_layernorm.weight")
            m = norm(x, p + "pre_feedforward_layernorm.weight")
            hdn = gelu_tanh(m @ W[p + "mlp.gate_proj.weight"].T) * (m @ W[p + "mlp.up_proj.weight"].T)
            x = x + norm(hdn @ W[p + "mlp.down_proj.weight"].T, p + "post_feedforward_layernorm.weight")
            layers.append(heads)
        logits = norm(x, "model.norm.weight") @ W["model.embed_tokens.weight"].T
        logits = final_cap * np.tanh(logits / final_cap)
        return layers, np.round(softmax_last(logits), 12).tolist()

    save("tiny-gemma2", cfg, metaspace_tokenizer_json(vocab, merges), w, LLAMA_TEXT, toks, ids, run,
         [("0.3", "zero"), ("0.0,1.1", "mean")])


def read_safetensors(path):
    raw = open(path, "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + size + a:8 + size + b], "<f4").reshape(t["shape"]).astype(np.float64)
    return out


def patching():
    merges, ranks, vocab = gpt2_vocab()
    cfg = json.load(open(os.path.join(ROOT, "models", "tiny-gpt2", "config.json")))
    W = read_safetensors(os.path.join(ROOT, "models", "tiny-gpt2", "model.safetensors"))
    d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    dh = d // H
    clean, corrupted = "the cat sat on the mat . the cat sat on the", "the end sat on the cat . the end sat on the"
    ids_c, toks_c = tokenize(clean, vocab, ranks)
    ids_x, toks_x = tokenize(corrupted, vocab, ranks)
    assert len(ids_c) == len(ids_x), (toks_c, toks_x)
    n = len(ids_c)

    def run(ids, head_patch=None, resid_patch=None):
        """GPT-2 in float64. head_patch: (l, h, (n, dh) output) replacing that head's output;
        resid_patch: (l, p, (d,) row) replacing row p of the stream entering layer l. Returns the
        final stream, the heads' outputs and the streams entering each layer."""
        x = W["wte.weight"][ids] + W["wpe.weight"][:n]
        outs, ins = [], []
        for l in range(L):
            if resid_patch and resid_patch[0] == l:
                x = x.copy()
                x[resid_patch[1]] = resid_patch[2]
            ins.append(x.copy())
            h = f"h.{l}."
            a = layer_norm(x, W[h + "ln_1.weight"], W[h + "ln_1.bias"], eps)
            qkv = a @ W[h + "attn.c_attn.weight"] + W[h + "attn.c_attn.bias"]
            q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
            cos, sin = np.ones((n, 0)), np.zeros((n, 0))  # no rotary positions
            _, ctx = attention(q, k, v, H, H, dh, cos, sin, dh ** -0.5)
            if head_patch and head_patch[0] == l:
                ctx[:, head_patch[1] * dh:(head_patch[1] + 1) * dh] = head_patch[2]
            outs.append([ctx[:, hh * dh:(hh + 1) * dh].copy() for hh in range(H)])
            x = x + ctx @ W[h + "attn.c_proj.weight"] + W[h + "attn.c_proj.bias"]
            m = gelu_tanh(layer_norm(x, W[h + "ln_2.weight"], W[h + "ln_2.bias"], eps) @ W[h + "mlp.c_fc.weight"] +
                          W[h + "mlp.c_fc.bias"])
            x = x + m @ W[h + "mlp.c_proj.weight"] + W[h + "mlp.c_proj.bias"]
        return x, outs, ins

    def logits(x):
        return layer_norm(x[-1], W["ln_f.weight"], W["ln_f.bias"], eps) @ W["wte.weight"].T

    xc, outs_c, ins_c = run(ids_c)
    xx, outs_x, ins_x = run(ids_x)
    lc, lx = logits(xc), logits(xx)
    a = int(np.argmax(lc))
    b = int(np.argmax(lx))
    if b == a:
        b = int(np.argsort(-lc)[1])
    diff = lambda lg: float(lg[a] - lg[b])
    prob = lambda lg: float(softmax_last(lg)[a])
    heads_diff, heads_prob = np.zeros((L, H)), np.zeros((L, H))
    for l in range(L):
        for h in range(H):
            lg = logits(run(ids_c, head_patch=(l, h, outs_x[l][h]))[0])
            heads_diff[l, h], heads_prob[l, h] = diff(lg), prob(lg)
    resid_diff = np.zeros((L, n))
    for l in range(L):
        for p in range(n):
            resid_diff[l, p] = diff(logits(run(ids_c, resid_patch=(l, p, ins_x[l][p]))[0]))
    # denoising: the corrupted run with one piece taken from the clean run
    heads_diff_dn, resid_diff_dn = np.zeros((L, H)), np.zeros((L, n))
    for l in range(L):
        for h in range(H):
            heads_diff_dn[l, h] = diff(logits(run(ids_x, head_patch=(l, h, outs_c[l][h]))[0]))
        for p in range(n):
            resid_diff_dn[l, p] = diff(logits(run(ids_x, resid_patch=(l, p, ins_c[l][p]))[0]))
    # the same head patch through ablation ("corrupted" mode): next-token probabilities everywhere
    xp = run(ids_c, head_patch=(1, 0, outs_x[1][0]))[0]
    probs = softmax_last(layer_norm(xp, W["ln_f.weight"], W["ln_f.bias"], eps) @ W["wte.weight"].T)
    golden = {"clean": clean, "corrupted": corrupted, "tokens": toks_c, "corrupted_tokens": toks_x, "token_a": a,
              "token_b": b, "clean_diff": diff(lc), "corrupted_diff": diff(lx), "clean_prob": prob(lc),
              "corrupted_prob": prob(lx), "heads_diff": heads_diff.tolist(), "heads_prob": heads_prob.tolist(),
              "residual_diff": resid_diff.tolist(), "heads_diff_denoising": heads_diff_dn.tolist(),
              "residual_diff_denoising": resid_diff_dn.tolist(), "ablate_corrupted_1.0": np.round(probs, 12).tolist()}
    json.dump(golden, open(os.path.join(ROOT, "golden", "patching.json"), "w"), separators=(",", ":"))
    print(f"patching: {n} tokens {toks_c} / {toks_x}; a={a} b={b}")


def generation():
    """Greedy generation on tiny-gpt2: each token the most likely (numpy's argmax: the lowest id on
    a tie) after the whole text so far, recomputed from scratch each time (no cache)."""
    merges, ranks, vocab = gpt2_vocab()
    cfg = json.load(open(os.path.join(ROOT, "models", "tiny-gpt2", "config.json")))
    W = read_safetensors(os.path.join(ROOT, "models", "tiny-gpt2", "model.safetensors"))
    text = "the cat sat on"
    ids, _ = tokenize(text, vocab, ranks)
    prompt = list(ids)
    out = []
    for _ in range(12):
        probs = forward(cfg, W, ids)[2][-1]
        t = int(np.argmax(probs))
        out.append({"id": t, "p": float(probs[t])})
        ids = ids + [t]
    json.dump({"text": text, "ids": prompt, "generated": out}, open(os.path.join(ROOT, "golden", "generation.json"), "w"))
    print(f"generation: {[g['id'] for g in out]}")


if __name__ == "__main__":
    generation()
    patching()
    phi3()
    gpt_neox()
    gpt_neox(parallel=False)
    gemma2()
