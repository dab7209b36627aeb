#!/usr/bin/env python3
"""Golden losses and gradients of the trainer's model (engine/training/model.hpp), from torch's
autograd on a model written here from the definitions (not from the C++): pre-LN blocks,
LayerNorm eps 1e-5, q/k/v/o projections with biases, GQA by sharing a kv head among
heads / kv_heads query heads, RoPE as GPT-NeoX's rotate-half with theta_i = base^(-2i/d_head),
ALiBi slopes of Press et al., sinusoidal positions of Vaswani et al., sigmoid attention with
bias -ln T (Ramapuram et al. 2024), GPT-2's tanh GELU, the unembedding tied to the embedding,
cross-entropy averaged over the weighted targets. Float64 throughout.

Writes tests/golden/training_grads.json. Run: python3 tests/reference/train_reference.py
"""
import json
import math
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "training_grads.json")


def alibi_slopes(n):
    def pow2(k):
        return [2.0 ** (-8.0 * h / k) for h in range(1, k + 1)]
    p = 2 ** int(math.floor(math.log2(n)))
    s = pow2(p)
    if p < n:
        s += pow2(2 * p)[0::2][: n - p]
    return s


def t5_bucket(n, num_buckets=32, max_distance=128):
    """T5's unidirectional bucket of distance n = query - key >= 0 (Raffel et al. 2020; the
    reference implementation's _relative_position_bucket with bidirectional=False)."""
    max_exact = num_buckets // 2
    if n < max_exact:
        return n
    v = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return min(v, num_buckets - 1)


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * g + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x, base):  # x (B, heads, T, dh)
    T, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    theta = base ** (-2.0 * torch.arange(half) / dh)
    ang = torch.arange(T)[:, None] * theta[None, :]
    c, s = torch.cos(ang), torch.sin(ang)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def forward(cfg, P, ids, targets, weight):
    B, T = ids.shape
    d, H, Hk, L = cfg["d_model"], cfg["heads"], cfg["kv_heads"], cfg["layers"]
    dh = d // H
    x = P["wte"][ids]
    if cfg["positional"] == "learned":
        x = x + P["wpe"][:T]
    if cfg["positional"] == "sinusoidal":
        pe = torch.zeros(T, d)
        for t in range(T):
            for i in range(0, d, 2):
                a = t / 10000.0 ** (i / d)
                pe[t, i] = math.sin(a)
                if i + 1 < d:
                    pe[t, i + 1] = math.cos(a)
        x = x + pe
    i_idx = torch.arange(T)[:, None]
    j_idx = torch.arange(T)[None, :]
    allowed = j_idx <= i_idx
    if cfg["mask"] == "sliding_window":
        allowed = allowed & (i_idx - j_idx < cfg["window"])
    for l in range(L):
        p = lambda n: P["layers.%d.%s" % (l, n)]
        a = layer_norm(x, p("ln1_g"), p("ln1_b"))
        q = (a @ p("wq") + p("bq")).view(B, T, H, dh).transpose(1, 2)
        k = (a @ p("wk") + p("bk")).view(B, T, Hk, dh).transpose(1, 2)
        v = (a @ p("wv") + p("bv")).view(B, T, Hk, dh).transpose(1, 2)
        if cfg["positional"] == "rope":
            q, k = rope(q, cfg["rope_base"]), rope(k, cfg["rope_base"])
        rep = H // Hk
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if cfg["positional"] == "alibi":
            slopes = torch.tensor(alibi_slopes(H))[None, :, None, None]
            s = s - slopes * (i_idx - j_idx).to(torch.float64)
        if cfg["positional"] == "t5":
            buckets = torch.tensor([[t5_bucket(max(i - j, 0)) for j in range(T)] for i in range(T)])
            s = s + P["t5_bias"][:, buckets][None]  # (1, H, T, T)
        if cfg["normalizer"] == "softmax":
            w = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
        else:
            w = torch.sigmoid(s - math.log(T)) * allowed
        ctx = (w @ v).transpose(1, 2).reshape(B, T, d)
        x = x + ctx @ p("wo") + p("bo")
        if cfg["mlp"]:
            m = layer_norm(x, p("ln2_g"), p("ln2_b"))
            x = x + gelu_tanh(m @ p("fc") + p("fc_b")) @ p("proj") + p("proj_b")
    xf = layer_norm(x, P["lnf_g"], P["lnf_b"])
    logits = xf @ P["wte"].T
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets[..., None])[..., 0]
    return (nll * weight).sum() / weight.sum()


def shapes(cfg):
    d, V, T, H, Hk = cfg["d_model"], cfg["vocab"], cfg["context"], cfg["heads"], cfg["kv_heads"]
    kv = Hk * (d // H)
    f = cfg["d_ff"]
    out = [("wte", (V, d))]
    if cfg["positional"] == "learned":
        out.append(("wpe", (T, d)))
    if cfg["positional"] == "t5":
        out.append(("t5_bias", (H, 32)))
    for l in range(cfg["layers"]):
        n = "layers.%d." % l
        out += [(n + "ln1_g", (1, d)), (n + "ln1_b", (1, d)), (n + "wq", (d, d)), (n + "bq", (1, d)),
                (n + "wk", (d, kv)), (n + "bk", (1, kv)), (n + "wv", (d, kv)), (n + "bv", (1, kv)),
                (n + "wo", (d, d)), (n + "bo", (1, d))]
        if cfg["mlp"]:
            out += [(n + "ln2_g", (1, d)), (n + "ln2_b", (1, d)), (n + "fc", (d, f)), (n + "fc_b", (1, f)),
                    (n + "proj", (f, d)), (n + "proj_b", (1, d))]
    out += [("lnf_g", (1, d)), ("lnf_b", (1, d))]
    return out


def case(name, rng, **over):
    cfg = dict(vocab=7, context=6, d_model=8, layers=2, heads=2, kv_heads=2, mlp=False, d_ff=12,
               positional="learned", rope_base=10000.0, mask="causal", window=3, normalizer="softmax")
    cfg.update(over)
    P = {}
    for n, shp in shapes(cfg):
        base = 1.0 if n.endswith("_g") else 0.0
        scale = 0.3 if n.endswith("_g") or n.endswith("_b") or ".b" in n else 0.5
        P[n] = torch.tensor(base + scale * rng.standard_normal(shp), requires_grad=True)
    B, T = 2, cfg["context"]
    ids = torch.tensor(rng.integers(0, cfg["vocab"], (B, T)))
    targets = torch.tensor(rng.integers(0, cfg["vocab"], (B, T)))
    weight = torch.tensor((rng.random((B, T)) < 0.7).astype(np.float64))
    weight[0, -1] = 1.0
    loss = forward(cfg, P, ids, targets, weight)
    loss.backward()
    return {
        "name": name, "model": cfg,
        "batch": {"size": B, "length": T, "ids": ids.flatten().tolist(), "targets": targets.flatten().tolist(),
                  "weight": weight.flatten().tolist()},
        "params": {n: t.detach().flatten().tolist() for n, t in P.items()},
        "loss": loss.item(),
        "grads": {n: t.grad.flatten().tolist() for n, t in P.items()},
    }


def main():
    rng = np.random.default_rng(13)
    cases = [
        case("learned causal attention-only", rng),
        case("learned causal with MLP", rng, mlp=True),
        case("sinusoidal", rng, positional="sinusoidal"),
        case("rope", rng, positional="rope"),
        case("alibi with 3 heads", rng, positional="alibi", heads=3, kv_heads=3, d_model=9),
        case("no positions, sliding window", rng, positional="none", mask="sliding_window", window=3),
        case("GQA 4 heads 2 kv heads, MLP", rng, heads=4, kv_heads=2, mlp=True),
        case("MQA with rope", rng, heads=4, kv_heads=1, positional="rope"),
        case("sigmoid attention", rng, normalizer="sigmoid"),
        case("T5 buckets, GQA, MLP", rng, positional="t5", heads=4, kv_heads=2, mlp=True, context=24),
        case("one layer, MLP, rope, sliding window", rng, layers=1, mlp=True, positional="rope", mask="sliding_window",
             window=2),
    ]
    with open(OUT, "w") as f:
        json.dump({"generator": "tests/reference/train_reference.py (torch %s autograd, float64)" % torch.__version__,
                   "cases": cases}, f, indent=None)
        f.write("\n")
    print("wrote", OUT, len(cases), "cases")


if __name__ == "__main__":
    main()
