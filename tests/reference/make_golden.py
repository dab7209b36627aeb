#!/usr/bin/python3
"""Independent numpy reference for attnlab's engine; writes tests/golden/*.json.

Reimplements from the published definitions, not from the C++ code:
  - the random streams documented in engine/core/rng.hpp (SplitMix64 read as a counter, Box-Muller),
  - the words/chars tokenizers for ASCII text (a regular expression),
  - sinusoidal positions (Vaswani et al. 2017, sec. 3.5), Glorot normal weights,
  - multi-head attention (Vaswani et al. 2017, eq. 1) in float64, with softmax(logits / T),
  - every mask and sparse pattern, RoPE, ALiBi, T5 buckets and learned positions (masks.json,
    positional.json, and full-forward cases in attention.json), each from its paper's definition.
Run: /usr/bin/python3 tests/reference/make_golden.py   (numpy only; output is committed)
"""
import json
import math
import os
import re

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M64 = (1 << 64) - 1
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden")


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in data:
        h ^= c
        h = (h * 0x100000001B3) & M64
    return h


def stream_key(seed: int, label: str) -> int:
    return fnv1a64(label.encode("utf-8")) ^ ((seed * 0x9E3779B97F4A7C15) & M64)


def mix(z):
    z = z.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(key: int, count: int) -> np.ndarray:
    i = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = mix(np.uint64(key) + (i + np.uint64(1)) * GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normals(key: int, count: int, std: float = 1.0) -> np.ndarray:
    pairs = (count + 1) // 2
    u = uniforms(key, 2 * pairs)
    u1 = 1.0 - u[0::2]
    u2 = u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(2 * pairs)
    z[0::2] = r * np.cos(2 * math.pi * u2)
    z[1::2] = r * np.sin(2 * math.pi * u2)
    # the engine stores float32 draws; round the same way before using them
    return (z[:count] * std).astype(np.float32).astype(np.float64)


def tokenize(text: str, kind: str, specials=("[PAD]",)):
    alt = "|".join(re.escape(sp) for sp in sorted(specials, key=len, reverse=True))
    if kind == "chars":
        return re.findall(alt + r"|.", text, flags=re.S)
    return re.findall(alt + r"|[A-Za-z0-9_]+(?:'[A-Za-z0-9_]+)*|\S", text)


def sinusoidal(n: int, d: int) -> np.ndarray:
    pe = np.zeros((n, d))
    pos = np.arange(n)[:, None]
    i = np.arange(0, d, 2)[None, :]
    angle = pos / np.power(10000.0, i / d)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)[:, : d // 2]
    return pe


def glorot(seed, label, fan_in, fan_out):
    std = np.float32(math.sqrt(2.0 / (fan_in + fan_out)))
    # draws are made at unit scale in double, scaled, then stored as float32 (as in the engine)
    pairs = (fan_in * fan_out + 1) // 2
    u = uniforms(stream_key(seed, label), 2 * pairs)
    r = np.sqrt(-2.0 * np.log(1.0 - u[0::2]))
    z = np.empty(2 * pairs)
    z[0::2] = r * np.cos(2 * math.pi * u[1::2])
    z[1::2] = r * np.sin(2 * math.pi * u[1::2])
    z = (z[: fan_in * fan_out] * float(std)).astype(np.float32).astype(np.float64)
    return z.reshape(fan_in, fan_out)


# ---- masks (allowed[i][j], i = query, j = key), each from its source's definition -------------
# Which kinds exist and which are causal by construction: the table the engine is generated from.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "engine", "attention",
                       "mask_kinds.json")) as _f:
    MASK_KINDS = {k["name"]: k for k in json.load(_f)["kinds"]}


def mask_default(**kw):
    m = {"kind": "causal", "window": 2, "dilation": 2, "globals": [0], "random_keys": 2, "block": 4,
         "stride": 4, "summary": 1, "n_buckets": 4, "n_rounds": 1, "sinks": 4, "causal": False, "pad_token": "[PAD]", "cells": []}
    m.update(kw)
    return m


def bigbird_random_keys(seed, row, n, r):
    """Partial Fisher-Yates over 0..n-1 with uniform draws of stream mask.bigbird.row<row>."""
    take = min(r, n)
    perm = list(range(n))
    u = uniforms(stream_key(seed, f"mask.bigbird.row{row}"), max(take, 1))
    for t in range(take):
        k = min(t + int(u[t] * (n - t)), n - 1)
        perm[t], perm[k] = perm[k], perm[t]
    return perm[:take]


# ---- programmable attention: each expression of the golden cases, as numpy ------------------
# i, j: query and key positions (broadcast columns / rows), h: head, P: the parameters; docs and
# specials: per-token arrays. Floored modulo is numpy's %; muparser's `and`/`or` are & and |.
def _doc_at(docs, x):
    return np.asarray(docs)[np.asarray(x)]


EXPRESSION_MASKS = {
    "k <= q": lambda i, j, h, nq, nk, P, d, sp: j <= i,
    "abs(q - k) <= window": lambda i, j, h, nq, nk, P, d, sp: np.abs(i - j) <= P["window"],
    "k <= q and q - k <= window": lambda i, j, h, nq, nk, P, d, sp: (j <= i) & (i - j <= P["window"]),
    "abs(q - k) <= window * dilation and (q - k) % dilation == 0":
        lambda i, j, h, nq, nk, P, d, sp: (np.abs(i - j) <= P["window"] * P["dilation"]) & ((i - j) % P["dilation"] == 0),
    "floor(q / block) == floor(k / block)": lambda i, j, h, nq, nk, P, d, sp: (i // P["block"]) == (j // P["block"]),
    "k <= q and (k < sinks or q - k <= window)":
        lambda i, j, h, nq, nk, P, d, sp: (j <= i) & ((j < P["sinks"]) | (i - j <= P["window"])),
    "k <= q or k < prefix": lambda i, j, h, nq, nk, P, d, sp: (j <= i) | (j < P["prefix"]),
    "doc(q) == doc(k) and k <= q":
        lambda i, j, h, nq, nk, P, d, sp: (_doc_at(d, i) == _doc_at(d, j)) & (j <= i),
    "abs(min(max(q, window), n_k - 1 - window) - k) <= window":
        lambda i, j, h, nq, nk, P, d, sp: np.abs(np.minimum(np.maximum(i, P["window"]), nk - 1 - P["window"]) - j) <= P["window"],
    "floor(k / block) <= floor(q / block)": lambda i, j, h, nq, nk, P, d, sp: (j // P["block"]) <= (i // P["block"]),
    "k <= q and (h % 2 == 1 or q - k <= window)":
        lambda i, j, h, nq, nk, P, d, sp: (j <= i) & ((h % 2 == 1) | (i - j <= P["window"])),
    "not ((q + k) % 3 == 1)": lambda i, j, h, nq, nk, P, d, sp: ~((i + j) % 3 == 1),
    "is_special(k) == 0 and (q >= k or q < 2)":
        lambda i, j, h, nq, nk, P, d, sp: (np.asarray(sp)[j] == 0) & ((i >= j) | (i < 2)),
}

# score modifiers: s is the scaled (and position-biased) score matrix
EXPRESSION_SCORE_MODS = {
    "cap * tanh(score / cap)": lambda s, i, j, h, nq, nk, P: P["cap"] * np.tanh(s / P["cap"]),
    "score + bias * (k - q)": lambda s, i, j, h, nq, nk, P: s + P["bias"] * (j - i),
    "score * (1 + h) / 2 - 0.01 * (n_k - k)": lambda s, i, j, h, nq, nk, P: s * (1 + h) / 2 - 0.01 * (nk - j),
}


def token_docs(text, tokens, pad, n):
    """Per token: its document (blank lines and special tokens end one) and whether it is special."""
    specials = np.array([1 if t == pad else 0 for t in tokens] + [0] * (n - len(tokens)))
    docs = np.zeros(n, dtype=np.int64)
    if not tokens:
        return docs, specials
    # where each token starts in the text: the tokenizer's matches, in order
    starts = []
    if text is not None:
        pos = 0
        for t in tokens:
            pos = text.index(t, pos)
            starts.append(pos)
            pos += len(t)
    # a blank line: a newline that follows a newline with only spaces, tabs or CRs between
    breaks = [b for b in range(len(text)) if text[b] == "\n" and re.search(r"\n[ \t\r]*$", text[:b])] \
        if text is not None else []
    before = 0
    for t, tok in enumerate(tokens):
        start = starts[t] if starts else 0
        docs[t] = sum(1 for b in breaks if b < start) + before
        before += specials[t]
    return docs, specials


def reference_mask(m, n, tokens=None, seed=0, head=0, text=None):
    docs, specials = token_docs(text, tokens or [], m["pad_token"], n)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    kind, w = m["kind"], m["window"]
    glob = np.zeros(n, bool)
    for g in m["globals"]:
        if 0 <= g < n:
            glob[g] = True
    if kind == "none":
        a = np.ones((n, n), bool)
    elif kind == "causal":
        a = j <= i
    elif kind == "padding":
        a = np.broadcast_to(np.array([t != m["pad_token"] for t in tokens])[None, :], (n, n)).copy()
    elif kind == "sliding_window":
        a = np.abs(i - j) <= w
    elif kind == "causal_sliding_window":
        a = (i - j >= 0) & (i - j <= w)
    elif kind == "dilated":
        d = m["dilation"]
        a = (np.abs(i - j) <= w * d) & ((i - j) % d == 0)
    elif kind in ("longformer", "bigbird"):
        a = (np.abs(i - j) <= w) | glob[:, None] | glob[None, :]
        if kind == "bigbird":
            for row in range(n):
                if not glob[row]:
                    for key in bigbird_random_keys(seed, row, n, m["random_keys"]):
                        a[row, key] = True
    elif kind == "block_local":
        a = (i // m["block"]) == (j // m["block"])
    elif kind == "strided":
        l = m["stride"]
        a = (j <= i) & (((i - j) < l) | ((i - j) % l == 0))
    elif kind == "fixed":
        l, c = m["stride"], m["summary"]
        a = (j <= i) & (((j // l) == (i // l)) | ((j % l) >= l - c))
    elif kind == "custom":
        a = np.zeros((n, n), bool)
        for q, k in m["cells"]:
            if 0 <= q < n and 0 <= k < n:
                a[q, k] = True
    elif kind == "expression":
        # the formula, written again in numpy (EXPRESSION_MASKS); h = 0 unless the caller asks
        a = EXPRESSION_MASKS[m["expression"]](i, j, head, n, n, m.get("parameters", {}), docs, specials)
        a = np.broadcast_to(np.asarray(a, bool), (n, n)).copy()
    elif kind == "streaming_llm":
        # Xiao et al. 2023, sec. 3.2: s attention sinks plus the rolling window of the last w + 1
        s = m["sinks"]
        a = (j <= i) & ((j < s) | (i - j <= w))
    else:
        raise ValueError(kind)
    if m["causal"] and not MASK_KINDS[kind]["causal"]:
        a = a & (j <= i)
    return np.array(a, bool)


def lsh_reference_mask(q, m, seed, head, layer=0):
    """Reformer: buckets = argmax([xR, -xR]) per round; same bucket in any round attends."""
    n, d = q.shape
    a = np.zeros((n, n), bool)
    half = m["n_buckets"] // 2
    for rnd in range(m["n_rounds"]):
        R = normals(stream_key(seed, f"mask.lsh.layer0.head{head}.round{rnd}"), d * half).reshape(d, half)
        proj = q.astype(np.float32).astype(np.float64) @ R
        b = np.argmax(np.concatenate([proj, -proj], axis=1), axis=1)
        a |= b[:, None] == b[None, :]
    if m["causal"]:
        a &= np.tril(np.ones((n, n), bool))
    return a


# ---- positions -------------------------------------------------------------------------------
def learned(seed, n, d):
    return np.stack([normals(stream_key(seed, f"positional.learned.p{p}"), d) for p in range(n)])


def rope(x, base, fraction, convention):
    """Su et al. 2021: rotate pairs by p * base^(-2m/d_rot)."""
    x = x.copy()
    n, dh = x.shape
    d_rot = 2 * int(math.floor(min(max(fraction, 0), 1) * dh / 2 + 1e-9))
    half = d_rot // 2
    for m in range(half):
        theta = base ** (-2.0 * m / d_rot)
        a, b = (m, m + half) if convention == "rotate_half" else (2 * m, 2 * m + 1)
        ang = np.arange(n) * theta
        x1, x2 = x[:, a].copy(), x[:, b].copy()
        x[:, a] = x1 * np.cos(ang) - x2 * np.sin(ang)
        x[:, b] = x1 * np.sin(ang) + x2 * np.cos(ang)
    return x


def alibi_slopes(h):
    """Press et al. 2022 and their reference code: geometric slopes, interleaved for non-powers of two."""
    def pow2(k):
        start = 2 ** (-8 / k)
        return [start ** (i + 1) for i in range(k)]
    if math.log2(h).is_integer():
        return pow2(h)
    c = 2 ** math.floor(math.log2(h))
    return pow2(c) + pow2(2 * c)[0::2][: h - c]


def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """Raffel et al. 2020 relative buckets, as in the T5 reference implementation."""
    ret = 0
    n = -rel
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0) * num_buckets
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return ret + n
    val = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return ret + min(val, num_buckets - 1)


def sparsemax_ref(z):
    """Martins & Astudillo 2016, Algorithm 1 (sort-based projection onto the simplex)."""
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, len(z) + 1)
    support = 1 + k * zs > cs
    kz = k[support].max()
    tau = (cs[kz - 1] - 1) / kz
    return np.maximum(z - tau, 0)


def performer_omega(key, m, d, orthogonal):
    """Gaussian features; orthogonal: modified Gram-Schmidt per block of d rows, rows scaled by chi(d) norms."""
    blocks = -(-m // d) if orthogonal else 1
    rows = blocks * d if orthogonal else m
    g = normals(key, rows * d).reshape(rows, d)
    if not orthogonal:
        return g
    chi = normals(key ^ 0x5DEECE66D, rows * d).reshape(rows, d)
    w = np.zeros((rows, d))
    for b in range(blocks):
        for r in range(b * d, (b + 1) * d):
            x = g[r].copy()
            for p in range(b * d, r):
                x = x - (x @ w[p]) * w[p]
            w[r] = x / np.linalg.norm(x)
        for r in range(b * d, (b + 1) * d):
            w[r] = w[r] * np.linalg.norm(chi[r])
    return w[:m]


def softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def kernel_ref(kind, kp, q, k, v, causal, seed, layer, head):
    """Effective weights and output of an efficient kernel, from each paper's formulas."""
    d = q.shape[1]
    if kind in ("linear", "performer"):
        if kind == "linear":  # Katharopoulos et al. 2020: elu + 1
            phi = lambda x: np.where(x > 0, x + 1, np.exp(x))
        else:  # Choromanski et al. 2021, FAVOR+
            om = performer_omega(stream_key(seed, f"layer{layer}.head{head}.performer"), kp["features"], d,
                                 kp["orthogonal"])
            phi = lambda x: np.exp((x * d ** -0.25) @ om.T - 0.5 * ((x * d ** -0.25) ** 2).sum(axis=1, keepdims=True)) \
                / math.sqrt(kp["features"])
        w = phi(q) @ phi(k).T
        if causal:
            w = np.tril(w)
        w = w / w.sum(axis=1, keepdims=True)
        return w, w @ v
    if kind == "linformer":  # Wang et al. 2020
        kk, n_k = kp["projected_length"], len(k)
        E = normals(stream_key(seed, f"layer{layer}.linformer.E"), kk * n_k, 1 / math.sqrt(kk)).reshape(kk, n_k)
        F = normals(stream_key(seed, f"layer{layer}.linformer.F"), kk * n_k, 1 / math.sqrt(kk)).reshape(kk, n_k)
        P = softmax_rows(q @ (E @ k).T / math.sqrt(d))
        return P @ F, P @ (F @ v)
    if kind == "nystrom":  # Xiong et al. 2021
        m = min(kp["landmarks"], len(q), len(k))
        seg = lambda x: np.stack([x[s * len(x) // m:(s + 1) * len(x) // m].mean(axis=0) for s in range(m)])
        ql, kl = seg(q), seg(k)
        F = softmax_rows(q @ kl.T / math.sqrt(d))
        A = softmax_rows(ql @ kl.T / math.sqrt(d))
        B = softmax_rows(ql @ k.T / math.sqrt(d))
        S = F @ np.linalg.pinv(A, rcond=1e-6) @ B
        return S, S @ v
    raise ValueError(kind)


def session(text, tokenizer="words", d_model=16, n_heads=4, seed=42, positional="sinusoidal",
            score="scaled_dot", temperature=1.0, mask="causal", mask_params=None, pos_params=None,
            normalizer="softmax", kv_sharing="mha", n_kv_heads=2, cosine_temperature=0.1,
            sigmoid_bias_auto=True, sigmoid_bias=0.0, dropout=0.0, n_layers=1, block="attention", ffn_mult=4,
            rollout_residual=True, context=None, kernel="exact", kernel_params=None, score_mod=None, sink=None,
            differential=None):
    pos = {"kind": positional, "rope_base": 10000.0, "rope_fraction": 1.0, "rope_convention": "rotate_half",
           "t5_num_buckets": 32, "t5_max_distance": 128, "t5_bidirectional": True}
    pos.update(pos_params or {})
    return {
        "format": "attnlab.session", "version": 1, "text": text,
        "tokenizer": {"kind": tokenizer},
        "model": {"d_model": d_model, "n_heads": n_heads, "seed": seed, "kv_sharing": kv_sharing,
                  "n_kv_heads": n_kv_heads, "n_layers": n_layers, "block": block, "ffn_mult": ffn_mult},
        "analysis": {"rollout_residual": rollout_residual},
        "context": {"enabled": context is not None, "text": context or "The tired cat slept on a warm mat."},
        "positional": pos,
        "attention": {"score": {"kind": score, "cosine_temperature": cosine_temperature},
                      "normalizer": {"kind": normalizer, "temperature": temperature,
                                     "sigmoid_bias_auto": sigmoid_bias_auto, "sigmoid_bias": sigmoid_bias},
                      "dropout": dropout,
                      "kernel": dict({"kind": kernel, "block_rows": 4, "block_cols": 4, "features": 64,
                                      "orthogonal": True, "projected_length": 4, "landmarks": 4},
                                     **(kernel_params or {})),
                      "mask": mask_default(kind=mask, **(mask_params or {})),
                      **({"score_mod": score_mod} if score_mod else {}),
                      **({"sink": {"enabled": True, "logit": sink}} if sink is not None else {}),
                      **({"differential": {"enabled": True, "lambda": differential}} if differential is not None else {})},
    }


def forward(s):
    m = s["attention"]["mask"]
    pos = s["positional"]
    tokens = tokenize(s["text"], s["tokenizer"]["kind"], (m["pad_token"],))
    d = s["model"]["d_model"]
    h_n = s["model"]["n_heads"]
    seed = s["model"]["seed"]
    dh = d // h_n
    n = len(tokens)
    def embed(toks):
        e = np.stack([normals(stream_key(seed, "token:" + t), d) for t in toks])
        if pos["kind"] == "sinusoidal":
            e = e + sinusoidal(len(toks), d).astype(np.float32)
        elif pos["kind"] == "learned":
            e = e + learned(seed, len(toks), d)
        return e
    x = embed(tokens)
    ctx = s.get("context", {})
    key_tokens = tokenize(ctx["text"], s["tokenizer"]["kind"], (m["pad_token"],)) if ctx.get("enabled") else None
    memory = embed(key_tokens) if key_tokens else None
    layers = []
    stream = x
    for layer in range(s["model"].get("n_layers", 1)):
        if s["model"].get("block", "attention") == "attention":
            res = attention_layer_ref(s, stream, layer, tokens, memory, key_tokens)
            res["input"] = stream.tolist()
            stream = np.array(res["attention_output"])
        else:  # pre-LN block: x + MHA(LN(x)), then x + FFN(LN(x))
            res = attention_layer_ref(s, layer_norm(stream), layer, tokens,
                                      None if memory is None else layer_norm(memory), key_tokens)
            res["input"] = stream.tolist()
            stream = stream + np.array(res["attention_output"])
            mult = s["model"]["ffn_mult"]
            w1 = glorot(seed, f"layer{layer}.W_ff1", d, mult * d)
            w2 = glorot(seed, f"layer{layer}.W_ff2", mult * d, d)
            h = layer_norm(stream) @ w1
            stream = stream + gelu(h) @ w2
        res["output"] = stream.tolist()
        layers.append(res)
    # attention rollout (Abnar & Zuidema 2020), self-attention only
    acc = None
    for res in ([] if memory is not None else layers):
        a = np.mean([np.array(hd["weights"]) for hd in res["heads"]], axis=0)
        # rows are read as distributions: negative effective weights (Linformer, Nystrom) count as 0
        a = np.maximum(a, 0.0)
        if s.get("analysis", {}).get("rollout_residual", True):
            a = 0.5 * (a + np.eye(len(a)))
        sums = a.sum(axis=1, keepdims=True)
        a = np.where(sums > 0, a / np.where(sums > 0, sums, 1), a)
        acc = a if acc is None else a @ acc
        res["rollout"] = acc.tolist()
    first = layers[0]
    return {"tokens": tokens, "key_tokens": key_tokens or [], "input": first["input"], "heads": first["heads"],
            "output": first["output"], "head_similarity": first["head_similarity"], "layers": layers}


def layer_norm(x):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5)


def gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def kern_kind(s):
    return s["attention"].get("kernel", {"kind": "exact"})["kind"]


def attention_layer_ref(s, x, layer, tokens, memory=None, key_tokens=None):
    m = s["attention"]["mask"]
    pos = s["positional"]
    d = s["model"]["d_model"]
    h_n = s["model"]["n_heads"]
    seed = s["model"]["seed"]
    dh = d // h_n
    n = len(x)
    sharing = s["model"].get("kv_sharing", "mha")
    n_kv = {"mha": h_n, "mqa": 1, "gqa": s["model"].get("n_kv_heads", h_n)}[sharing]
    wq, wo = glorot(seed, f"layer{layer}.W_Q", d, d), glorot(seed, f"layer{layer}.W_O", d, d)
    wk, wv = glorot(seed, f"layer{layer}.W_K", d, n_kv * dh), glorot(seed, f"layer{layer}.W_V", d, n_kv * dh)
    kv_in = x if memory is None else memory
    q, k, v = x @ wq, kv_in @ wk, kv_in @ wv
    n_k = len(kv_in)
    score = s["attention"]["score"]["kind"]
    scale = 1.0 / math.sqrt(dh) if score == "scaled_dot" else 1.0
    norm = s["attention"]["normalizer"]
    dropout = s["attention"].get("dropout", 0.0)
    temp = s["attention"]["normalizer"]["temperature"]
    if memory is not None:  # cross-attention: none, padding on the context keys, or custom cells
        shared = np.ones((n, n_k), bool)
        if m["kind"] == "padding":
            shared[:, [t == m["pad_token"] for t in key_tokens]] = False
        elif m["kind"] == "custom":
            shared[:] = False
            for qi, kj in m["cells"]:
                if 0 <= qi < n and 0 <= kj < n_k:
                    shared[qi, kj] = True
    elif m["kind"] != "lsh":
        shared = reference_mask(m, n, tokens, seed, text=s["text"])
    slopes = alibi_slopes(h_n) if pos["kind"] == "alibi" else None
    if pos["kind"] == "t5":
        table = normals(stream_key(seed, "positional.t5"), pos["t5_num_buckets"] * h_n).reshape(pos["t5_num_buckets"], h_n)
    rel = np.arange(n_k)[None, :] - np.arange(n)[:, None]  # key - query
    heads = []
    outs = []
    for h in range(h_n):
        g = h // (h_n // n_kv)  # the K/V head this query head reads
        qh = q[:, h * dh:(h + 1) * dh]
        kh, vh = k[:, g * dh:(g + 1) * dh], v[:, g * dh:(g + 1) * dh]
        if pos["kind"] == "rope":
            qh = rope(qh, pos["rope_base"], pos["rope_fraction"], pos["rope_convention"])
            kh = rope(kh, pos["rope_base"], pos["rope_fraction"], pos["rope_convention"])
        if m["kind"] == "lsh":
            norms = np.linalg.norm(qh, axis=1, keepdims=True)
            kh = qh / np.where(norms > 0, norms, 1)
            allowed = lsh_reference_mask(qh, m, seed, h, layer)
        elif m["kind"] == "expression" and memory is None:  # a formula of h: each head its own
            allowed = reference_mask(m, n, tokens, seed, head=h, text=s["text"])
        else:
            allowed = shared
        hp = f"layer{layer}.head{h}."
        if score == "general":  # Luong et al. 2015: q^T W k
            logits = (qh @ glorot(seed, hp + "W_general", dh, dh)) @ kh.T
        elif score == "cosine":
            unit = lambda m: m / np.where(np.linalg.norm(m, axis=1, keepdims=True) > 0,
                                          np.linalg.norm(m, axis=1, keepdims=True), 1)
            logits = unit(qh) @ unit(kh).T / s["attention"]["score"]["cosine_temperature"]
        elif score == "additive":  # Bahdanau et al. 2015: v^T tanh(W q + U k)
            A = qh @ glorot(seed, hp + "W_additive_q", dh, dh).T
            B = kh @ glorot(seed, hp + "W_additive_k", dh, dh).T
            va = glorot(seed, hp + "v_additive", 1, dh)[0]
            logits = np.tanh(A[:, None, :] + B[None, :, :]) @ va
        else:
            logits = qh @ kh.T * scale
        if slopes is not None:
            logits = logits - slopes[h] * np.abs(rel)
        if pos["kind"] == "t5":
            buckets = np.vectorize(lambda r: t5_bucket(r, pos["t5_bidirectional"], pos["t5_num_buckets"],
                                                       pos["t5_max_distance"]))(rel)
            logits = logits + table[buckets, h]
        mod = s["attention"].get("score_mod", {})
        if mod.get("expression") and kern_kind(s) in ("exact", "flash"):  # FlexAttention's score_mod, after the bias
            ii, jj = np.arange(n)[:, None], np.arange(n_k)[None, :]
            logits = EXPRESSION_SCORE_MODS[mod["expression"]](logits, ii, jj, h, n, n_k, mod.get("parameters", {}))
            logits = np.broadcast_to(logits, (n, n_k)).astype(np.float64)
        sink = s["attention"].get("sink", {})
        sink_weight = None
        if norm["kind"] == "softmax" and sink.get("enabled") and kern_kind(s) == "exact":
            # gpt-oss: softmax over [l_1 .. l_n, s] / T, the sink's column dropped (it has no value)
            z = np.concatenate([np.where(allowed, logits / temp, -np.inf), np.full((n, 1), sink["logit"] / temp)], axis=1)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p_all = e / e.sum(axis=1, keepdims=True)
            w, sink_weight = p_all[:, :n_k], p_all[:, n_k]
        elif norm["kind"] == "softmax":
            z = np.where(allowed, logits / temp, -np.inf)
            rowmax = z.max(axis=1, keepdims=True)
            full = np.isfinite(rowmax)
            z = z - np.where(full, rowmax, 0)
            e = np.where(allowed, np.exp(z), 0.0)
            sums = e.sum(axis=1, keepdims=True)
            w = np.where(sums > 0, e / np.where(sums > 0, sums, 1), 0.0)
        elif norm["kind"] == "sparsemax":
            w = np.zeros((n, n_k))
            for i in range(n):
                if allowed[i].any():
                    w[i, allowed[i]] = sparsemax_ref(logits[i, allowed[i]] / temp)
        else:  # sigmoid
            b = -math.log(n_k) if norm["sigmoid_bias_auto"] else norm["sigmoid_bias"]
            w = np.where(allowed, 1 / (1 + np.exp(-(logits / temp + b))), 0.0)
        diff = s["attention"].get("differential", {})
        if diff.get("enabled") and norm["kind"] == "softmax" and kern_kind(s) == "exact" and score in ("scaled_dot", "dot"):
            # Ye et al. 2024 (DIFF Transformer), eq. 1: two maps of the head's halves, A1 - lambda A2
            half = dh // 2
            sc = 1.0 / math.sqrt(half) if score == "scaled_dot" else 1.0
            bias = np.zeros((n, n_k))
            if slopes is not None:
                bias -= slopes[h] * np.abs(rel)
            if pos["kind"] == "t5":
                bias += table[buckets, h]
            maps = []
            for a, b in ((0, half), (half, dh)):
                lp = qh[:, a:b] @ kh[:, a:b].T * sc + bias
                z = np.where(allowed, lp / temp, -np.inf)
                mx = z.max(axis=1, keepdims=True)
                e = np.where(allowed, np.exp(z - np.where(np.isfinite(mx), mx, 0)), 0.0)
                sums = e.sum(axis=1, keepdims=True)
                maps.append((lp, np.where(sums > 0, e / np.where(sums > 0, sums, 1), 0.0)))
            logits = maps[0][0]
            w = maps[0][1] - diff["lambda"] * maps[1][1]
        if dropout > 0:  # inverted dropout, uniform draw i * n + j of stream dropout.layer0.head<h>
            u = uniforms(stream_key(seed, f"dropout.layer{layer}.head{h}"), n * n_k).reshape(n, n_k)
            w = np.where(u < dropout, 0.0, w / (1 - dropout))
        o = w @ vh
        kern = s["attention"].get("kernel", {"kind": "exact"})
        approx = None
        if kern["kind"] not in ("exact", "flash"):  # flash is exact: the standard result is its expected value
            causal_k = MASK_KINDS[m["kind"]]["causal"] or m.get("causal", False)
            wa, oa = kernel_ref(kern["kind"], kern, qh, kh, vh, causal_k, seed, layer, h)
            approx = {"max_weight_error": float(np.abs(wa - w).max()),
                      "output_error": float(np.linalg.norm(oa - o) / np.linalg.norm(o))}
            w, o = wa, oa
        outs.append(o)
        heads.append({
            "q": qh.tolist(), "k": kh.tolist(), "v": vh.tolist(),
            "logits": [[float(logits[i, j]) if allowed[i, j] else None for j in range(n_k)] for i in range(n)],
            "weights": w.tolist(), "output": o.tolist(),
            "allowed": ["".join("1" if c else "0" for c in row) for row in allowed],
        })
        if approx:
            heads[-1]["approximation"] = approx
        if sink_weight is not None:
            heads[-1]["sink_weight"] = sink_weight.tolist()
    out = np.concatenate(outs, axis=1) @ wo
    dists = [np.array(hd["weights"]) for hd in heads]
    for hd, w in zip(heads, dists):
        hd["metrics"] = head_metrics_ref(w, np.array([[c == "1" for c in row] for row in hd["allowed"]]))
    js = [[mean_js(dists[a], dists[b]) for b in range(h_n)] for a in range(h_n)]
    return {"attention_input": x.tolist(), "heads": heads, "attention_output": out.tolist(), "head_similarity": js}


def row_dists(w):
    """Rows as distributions (w / row sum, negative effective weights as 0); None for rows with no weight."""
    w = np.maximum(w, 0)
    return [row / row.sum() if row.sum() > 0 else None for row in w]


def head_metrics_ref(w, allowed):
    n_q, n_k = w.shape
    ent, ent_n, dist, mx, first, sink, rows, nrows = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0
    for i, p in enumerate(row_dists(w)):
        if p is None:
            continue
        rows += 1
        nz = p[p > 0]
        h = float(-(nz * np.log(nz)).sum())
        ent += h
        dist += float((p * np.abs(i - np.arange(n_k))).sum())
        mx += float(p.max())
        first += float(p[0])
        sink += float(p[:4].sum())  # StreamingLLM's four sinks
        if allowed[i].sum() >= 2:
            ent_n += h / math.log(allowed[i].sum())
            nrows += 1
    r = max(rows, 1)
    return {"entropy": ent / r, "entropy_normalized": ent_n / max(nrows, 1), "mean_distance": dist / r,
            "max_weight": mx / r, "first_token": first / r, "density": float(allowed.mean()),
            "sink_mass": sink / r}


def mean_js(wa, wb):
    """Jensen-Shannon divergence (nats) of each row's distributions, averaged over rows."""
    total, rows = 0.0, 0
    for p, q in zip(row_dists(wa), row_dists(wb)):
        if p is None or q is None:
            continue
        m = (p + q) / 2
        kl = lambda a: float((a[a > 0] * np.log(a[a > 0] / m[a > 0])).sum())
        total += 0.5 * kl(p) + 0.5 * kl(q)
        rows += 1
    return total / rows if rows else 0.0


CASES = [
    ("causal_scaled_sinusoidal", session("The cat sat on the mat because it was tired.")),
    ("none_dot_nopos", session("I don't know, do you?", positional="none", score="dot", mask="none", d_model=12, n_heads=3)),
    ("causal_temperature_half", session("attention is all you need", temperature=0.5, d_model=8, n_heads=2, seed=7)),
    ("none_temperature_three_chars", session("hello world", tokenizer="chars", temperature=3.0, mask="none", d_model=16, n_heads=1, seed=123456789012345)),
    ("single_token", session("Hi", d_model=6, n_heads=2, seed=0)),
    ("repeated_tokens", session("the the the cat the", d_model=32, n_heads=8, seed=99, positional="none")),
    ("sliding_window_learned", session("a sliding window over a few more words than usual", mask="sliding_window",
                                       mask_params={"window": 1}, positional="learned", d_model=12, n_heads=2)),
    ("rope_rotate_half", session("rotary positions turn queries and keys", positional="rope", mask="none",
                                 d_model=16, n_heads=2, seed=5)),
    ("rope_interleaved_partial", session("rotary positions turn queries and keys", positional="rope", mask="causal",
                                         pos_params={"rope_convention": "interleaved", "rope_fraction": 0.5,
                                                     "rope_base": 100.0}, d_model=24, n_heads=2, seed=5)),
    ("alibi_six_heads", session("linear biases replace position embeddings here", positional="alibi",
                                d_model=24, n_heads=6, seed=8)),
    ("t5_bidirectional", session("relative buckets for every distance between these words", positional="t5",
                                 mask="none", pos_params={"t5_num_buckets": 8, "t5_max_distance": 6},
                                 d_model=12, n_heads=3, seed=9)),
    ("bigbird_causal", session("big bird mixes a window, global tokens and random keys together", mask="bigbird",
                               mask_params={"window": 1, "globals": [0, 11], "random_keys": 2, "causal": True},
                               positional="none", d_model=8, n_heads=2, seed=21)),
    ("lsh_two_rounds", session("locality sensitive hashing puts similar queries in one bucket", mask="lsh",
                               mask_params={"n_buckets": 4, "n_rounds": 2}, d_model=16, n_heads=2, seed=13)),
    ("padding", session("short text [PAD] [PAD] [PAD]", mask="padding", positional="none", d_model=8, n_heads=2)),
    ("general_score", session("Luong general score puts a matrix between query and key", score="general",
                              d_model=16, n_heads=2, seed=31)),
    ("cosine_score", session("cosine scores are bounded between minus one and one", score="cosine",
                             cosine_temperature=0.2, mask="none", d_model=16, n_heads=2, seed=32)),
    ("additive_score", session("Bahdanau additive attention", score="additive", d_model=12, n_heads=3, seed=33)),
    ("sparsemax", session("sparsemax gives exact zeros to unlikely keys in long rows", normalizer="sparsemax",
                          temperature=0.5, mask="none", d_model=16, n_heads=2, seed=34)),
    ("sparsemax_causal", session("sparsemax under a causal mask", normalizer="sparsemax", d_model=8, n_heads=2, seed=35)),
    ("sigmoid_auto_bias", session("sigmoid attention weighs each key on its own", normalizer="sigmoid",
                                  mask="none", d_model=16, n_heads=2, seed=36)),
    ("sigmoid_bias", session("sigmoid attention with a chosen bias", normalizer="sigmoid", sigmoid_bias_auto=False,
                             sigmoid_bias=-1.5, d_model=8, n_heads=1, seed=37)),
    ("dropout", session("dropout drops some weights and scales the rest", dropout=0.3, mask="none",
                        d_model=16, n_heads=2, seed=38)),
    ("mqa", session("multi query attention shares one key and value head", kv_sharing="mqa",
                    d_model=16, n_heads=4, seed=39)),
    ("gqa", session("grouped query attention shares keys and values in groups", kv_sharing="gqa", n_kv_heads=2,
                    positional="rope", d_model=32, n_heads=4, seed=40)),
    ("three_pre_ln_layers_gqa", session("three transformer blocks deep with grouped heads", block="pre_ln", n_layers=3,
                                        kv_sharing="gqa", n_kv_heads=2, d_model=16, n_heads=4, seed=41, ffn_mult=2)),
    ("two_attention_layers_no_residual_rollout", session("stacked attention without blocks", n_layers=2,
                                                         rollout_residual=False, d_model=8, n_heads=2, seed=42)),
    ("cross_none", session("Where did the cat sleep?", context="The tired cat slept on a warm mat by the door.",
                           mask="none", d_model=16, n_heads=2, seed=51)),
    ("cross_padding_rope_gqa", session("who slept", context="a cat slept [PAD] [PAD]", mask="padding",
                                       positional="rope", kv_sharing="gqa", n_kv_heads=2, d_model=16, n_heads=4,
                                       seed=52)),
    ("cross_alibi_two_pre_ln", session("two decoder blocks read the memory", context="memory of the encoder",
                                       mask="none", positional="alibi", block="pre_ln", n_layers=2, d_model=12,
                                       n_heads=3, seed=53, ffn_mult=2)),
    ("flash_tiles_not_dividing", session("flash attention tiles the rows and keys in blocks", kernel="flash",
                                         kernel_params={"block_rows": 3, "block_cols": 5}, positional="alibi",
                                         mask="sliding_window", mask_params={"window": 2, "causal": True},
                                         temperature=0.7, d_model=16, n_heads=2, seed=61)),
    ("linear_noncausal", session("linear attention with an elu feature map", kernel="linear", mask="none",
                                 d_model=16, n_heads=2, seed=62)),
    ("linear_causal", session("causal linear attention by prefix sums", kernel="linear", d_model=16, n_heads=2, seed=63)),
    ("performer_orthogonal", session("performer random features approximate softmax", kernel="performer",
                                     mask="none", kernel_params={"features": 32}, d_model=16, n_heads=2, seed=64)),
    ("performer_iid_causal", session("performer causal with plain features", kernel="performer",
                                     kernel_params={"features": 16, "orthogonal": False}, d_model=16, n_heads=2, seed=65)),
    ("linformer", session("linformer projects keys and values to a short length", kernel="linformer", mask="none",
                          kernel_params={"projected_length": 3}, d_model=16, n_heads=2, seed=66)),
    ("nystrom", session("nystrom former uses landmarks from segment means of queries and keys", kernel="nystrom",
                        mask="none", kernel_params={"landmarks": 3}, d_model=16, n_heads=2, seed=67)),
    ("streaming_llm_sinks", session("a long stream keeps its first tokens as sinks and a short window of the rest",
                                    mask="streaming_llm", mask_params={"sinks": 2, "window": 3}, d_model=16,
                                    n_heads=2, seed=71)),
    # programmable attention (issue 14): masks and score modifiers typed as expressions
    ("expression_prefix_lm", session("a prefix seen by all and a causal rest", mask="expression",
                                     mask_params={"expression": "k <= q or k < prefix", "parameters": {"prefix": 3}},
                                     d_model=16, n_heads=2, seed=81)),
    ("expression_documents", session("first document here\n\nsecond one [PAD] third part\n \nlast words",
                                     mask="expression", mask_params={"expression": "doc(q) == doc(k) and k <= q"},
                                     d_model=16, n_heads=2, seed=82)),
    ("expression_per_head", session("even heads look near and odd heads look far back", mask="expression",
                                    mask_params={"expression": "k <= q and (h % 2 == 1 or q - k <= window)",
                                                 "parameters": {"window": 1}}, d_model=16, n_heads=4, seed=83)),
    ("expression_natten", session("neighbourhood attention shifts its window inward at both edges", mask="expression",
                                  mask_params={"expression": "abs(min(max(q, window), n_k - 1 - window) - k) <= window",
                                               "parameters": {"window": 2}}, positional="rope", d_model=16,
                                  n_heads=2, seed=84)),
    ("expression_not_and_causal", session("a strange pattern cut by the causal flag", mask="expression",
                                          mask_params={"expression": "not ((q + k) % 3 == 1)", "causal": True},
                                          d_model=8, n_heads=2, seed=85)),
    ("expression_special_keys", session("skip [PAD] the [PAD] pads but the first rows see ahead", mask="expression",
                                        mask_params={"expression": "is_special(k) == 0 and (q >= k or q < 2)"},
                                        d_model=8, n_heads=2, seed=86)),
    ("score_mod_soft_cap", session("Gemma two caps its logits with a tanh", mask="causal", temperature=0.5,
                                   score_mod={"expression": "cap * tanh(score / cap)", "parameters": {"cap": 0.3}},
                                   d_model=16, n_heads=2, seed=87)),
    ("score_mod_relative_alibi", session("a relative bias on top of ALiBi slopes", positional="alibi",
                                         score_mod={"expression": "score + bias * (k - q)", "parameters": {"bias": 0.25}},
                                         d_model=16, n_heads=4, seed=88)),
    ("score_mod_head_and_length_flash", session("a score modifier through the flash kernel's tiles", kernel="flash",
                                                kernel_params={"block_rows": 3, "block_cols": 2}, mask="none",
                                                score_mod={"expression": "score * (1 + h) / 2 - 0.01 * (n_k - k)"},
                                                d_model=16, n_heads=2, seed=89)),
    # gpt-oss's learned sink logits: rows sum to 1 - the sink's weight
    ("sink_logit_causal", session("a learned sink takes part of every row", sink=0.5, temperature=0.7,
                                  d_model=16, n_heads=2, seed=91)),
    ("sink_logit_window_rope", session("a high sink logit takes most of a short window", sink=3.0, mask="sliding_window",
                                       mask_params={"window": 1, "causal": True}, positional="rope", d_model=16,
                                       n_heads=4, seed=92)),
    ("sink_logit_empty_row", session("a b c d", mask="custom", mask_params={"cells": [[0, 0], [1, 0], [3, 2]]}, sink=-2.0,
                                     d_model=8, n_heads=1, seed=93)),
    # differential attention: signed weights A1 - lambda A2
    ("differential_causal", session("two maps subtract to cancel common noise", differential=0.5, d_model=16,
                                    n_heads=2, seed=95)),
    ("differential_alibi_window", session("a differential head with linear biases inside a window", differential=0.2,
                                          positional="alibi", mask="sliding_window", mask_params={"window": 2},
                                          temperature=0.8, d_model=24, n_heads=3, seed=96)),
    ("differential_rope_dot", session("rotary positions and a plain dot score", differential=0.8, positional="rope",
                                      score="dot", mask="none", d_model=16, n_heads=2, seed=97)),
    ("custom_with_empty_row", session("a b c d", mask="custom", mask_params={"cells": [[0, 0], [1, 0], [1, 1], [3, 2]]},
                                      d_model=8, n_heads=1)),
]

MASK_CASES = []
for n in (1, 5, 9, 16):
    for kind, params in [
        ("none", {}), ("causal", {}),
        ("sliding_window", {"window": 0}), ("sliding_window", {"window": 2}), ("sliding_window", {"window": 40}),
        ("causal_sliding_window", {"window": 0}), ("causal_sliding_window", {"window": 3}),
        ("causal_sliding_window", {"window": 40}),
        ("dilated", {"window": 2, "dilation": 2}), ("dilated", {"window": 1, "dilation": 3}),
        ("dilated", {"window": 0, "dilation": 5}),
        ("longformer", {"window": 1, "globals": [0]}), ("longformer", {"window": 0, "globals": [0, n - 1]}),
        ("longformer", {"window": 1, "globals": [n - 1, 50]}),
        ("bigbird", {"window": 1, "globals": [0], "random_keys": 2}),
        ("bigbird", {"window": 0, "globals": [n - 1], "random_keys": 3}),
        ("bigbird", {"window": 1, "globals": [], "random_keys": 40}),
        ("block_local", {"block": 1}), ("block_local", {"block": 3}), ("block_local", {"block": 40}),
        ("strided", {"stride": 1}), ("strided", {"stride": 3}), ("strided", {"stride": 4}),
        ("fixed", {"stride": 4, "summary": 1}), ("fixed", {"stride": 3, "summary": 3}),
        ("fixed", {"stride": 1, "summary": 1}), ("fixed", {"stride": 5, "summary": 2}),
        ("custom", {"cells": [[0, 0], [n - 1, 0], [2, 1], [99, 0]]}),
        ("sliding_window", {"window": 1, "causal": True}), ("block_local", {"block": 4, "causal": True}),
        ("dilated", {"window": 2, "dilation": 2, "causal": True}),
        ("longformer", {"window": 1, "globals": [2], "causal": True}),
        ("causal", {"causal": True}),
        ("streaming_llm", {"sinks": 4, "window": 2}), ("streaming_llm", {"sinks": 0, "window": 3}),
        ("streaming_llm", {"sinks": 1, "window": 0}), ("streaming_llm", {"sinks": 40, "window": 1}),
    ]:
        MASK_CASES.append((n, mask_default(kind=kind, **params)))
    for expr, params, causal in [
        ("k <= q", {}, False), ("abs(q - k) <= window", {"window": 1}, False),
        ("abs(q - k) <= window * dilation and (q - k) % dilation == 0", {"window": 2, "dilation": 3}, False),
        ("floor(q / block) == floor(k / block)", {"block": 3}, True),
        ("k <= q and (k < sinks or q - k <= window)", {"sinks": 2, "window": 1}, False),
        ("k <= q or k < prefix", {"prefix": 4}, False), ("floor(k / block) <= floor(q / block)", {"block": 4}, False),
        ("abs(min(max(q, window), n_k - 1 - window) - k) <= window", {"window": 1}, False),
        ("not ((q + k) % 3 == 1)", {}, False),
    ]:
        MASK_CASES.append((n, mask_default(kind="expression", expression=expr, parameters=params, causal=causal)))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = {
        "description": "first draws of named streams (engine/core/rng.hpp); float64",
        "streams": [
            {"seed": seed, "label": label, "key": str(stream_key(seed, label)),
             "uniforms": uniforms(stream_key(seed, label), 8).tolist(),
             "normals": normals(stream_key(seed, label), 9).tolist()}
            for seed, label in [(0, ""), (42, "token:cat"), (2**64 - 1, "layer0.W_Q"), (7, "token:\u00e9t\u00e9")]
        ],
    }
    with open(os.path.join(OUT, "rng.json"), "w") as f:
        json.dump(rng, f, indent=1)
    cases = [{"name": name, "session": s, "expected": forward(s)} for name, s in CASES]
    with open(os.path.join(OUT, "attention.json"), "w") as f:
        json.dump({"description": "numpy float64 forward of sessions (tests/reference/make_golden.py)",
                   "cases": cases}, f)
    masks = []
    for n, m in MASK_CASES:
        a = reference_mask(m, n, seed=77)
        masks.append({"n": n, "seed": 77, "mask": m, "allowed": ["".join("1" if c else "0" for c in row) for row in a]})
    pad_tokens = ["hi", "[PAD]", "there", "[PAD]", "[PAD]"]
    pm = mask_default(kind="padding")
    masks.append({"n": 5, "seed": 77, "mask": pm, "tokens": pad_tokens,
                  "allowed": ["".join("1" if c else "0" for c in row) for row in reference_mask(pm, 5, pad_tokens)]})
    with open(os.path.join(OUT, "masks.json"), "w") as f:
        json.dump({"description": "allowed patterns from each source's definition", "cases": masks}, f)

    rng_x = normals(stream_key(1, "rope.x"), 7 * 8).reshape(7, 8)
    positional = {
        "alibi_slopes": {str(h): alibi_slopes(h) for h in (1, 2, 6, 8, 12, 16)},
        "t5_buckets": [
            {"bidirectional": bd, "num_buckets": nb, "max_distance": md,
             "relative": list(range(-300, 301)),
             "bucket": [t5_bucket(r, bd, nb, md) for r in range(-300, 301)]}
            for bd, nb, md in [(True, 32, 128), (False, 32, 128), (True, 8, 20), (False, 16, 64)]],
        "rope": [
            {"x": rng_x.tolist(), "base": base, "fraction": frac, "convention": conv,
             "rotated": rope(rng_x, base, frac, conv).tolist()}
            for base, frac, conv in [(10000.0, 1.0, "rotate_half"), (10000.0, 1.0, "interleaved"),
                                     (100.0, 0.5, "rotate_half"), (500.0, 0.75, "interleaved")]],
        "learned": {"seed": 3, "n": 4, "d": 6, "table": learned(3, 4, 6).tolist()},
    }
    with open(os.path.join(OUT, "positional.json"), "w") as f:
        json.dump(positional, f)
    pe = sinusoidal(7, 10)
    with open(os.path.join(OUT, "sinusoidal.json"), "w") as f:
        json.dump({"n": 7, "d": 10, "pe": pe.tolist()}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
