#!/usr/bin/python3
"""Independent numpy reference for attnlab's engine; writes tests/golden/*.json.

Reimplements from the published definitions, not from the C++ code:
  - the random streams documented in engine/rng.hpp (SplitMix64 read as a counter, Box-Muller),
  - the words/chars tokenizers for ASCII text (a regular expression),
  - sinusoidal positions (Vaswani et al. 2017, sec. 3.5), Glorot normal weights,
  - multi-head attention (Vaswani et al. 2017, eq. 1) in float64, with softmax(logits / T).
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


def tokenize(text: str, kind: str):
    if kind == "chars":
        return list(text)
    return re.findall(r"[A-Za-z0-9_]+(?:'[A-Za-z0-9_]+)*|\S", text)


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


def session(text, tokenizer="words", d_model=16, n_heads=4, seed=42, positional="sinusoidal",
            score="scaled_dot", temperature=1.0, mask="causal"):
    return {
        "format": "attnlab.session", "version": 1, "text": text,
        "tokenizer": {"kind": tokenizer},
        "model": {"d_model": d_model, "n_heads": n_heads, "seed": seed},
        "positional": {"kind": positional},
        "attention": {"score": {"kind": score},
                      "normalizer": {"kind": "softmax", "temperature": temperature},
                      "mask": {"kind": mask}},
    }


def forward(s):
    tokens = tokenize(s["text"], s["tokenizer"]["kind"])
    d = s["model"]["d_model"]
    h_n = s["model"]["n_heads"]
    seed = s["model"]["seed"]
    dh = d // h_n
    n = len(tokens)
    x = np.stack([normals(stream_key(seed, "token:" + t), d) for t in tokens])
    if s["positional"]["kind"] == "sinusoidal":
        x = x + sinusoidal(n, d).astype(np.float32)
    wq, wk, wv, wo = (glorot(seed, "layer0." + w, d, d) for w in ("W_Q", "W_K", "W_V", "W_O"))
    q, k, v = x @ wq, x @ wk, x @ wv
    scale = 1.0 / math.sqrt(dh) if s["attention"]["score"]["kind"] == "scaled_dot" else 1.0
    temp = s["attention"]["normalizer"]["temperature"]
    allowed = np.tril(np.ones((n, n), bool)) if s["attention"]["mask"]["kind"] == "causal" else np.ones((n, n), bool)
    heads = []
    outs = []
    for h in range(h_n):
        qh, kh, vh = (m[:, h * dh:(h + 1) * dh] for m in (q, k, v))
        logits = qh @ kh.T * scale
        z = np.where(allowed, logits / temp, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        e = np.where(allowed, np.exp(z), 0.0)
        w = e / e.sum(axis=1, keepdims=True)
        o = w @ vh
        outs.append(o)
        heads.append({
            "q": qh.tolist(), "k": kh.tolist(), "v": vh.tolist(),
            "logits": [[float(logits[i, j]) if allowed[i, j] else None for j in range(n)] for i in range(n)],
            "weights": w.tolist(), "output": o.tolist(),
        })
    out = np.concatenate(outs, axis=1) @ wo
    return {"tokens": tokens, "input": x.tolist(), "heads": heads, "output": out.tolist()}


CASES = [
    ("causal_scaled_sinusoidal", session("The cat sat on the mat because it was tired.")),
    ("none_dot_nopos", session("I don't know, do you?", positional="none", score="dot", mask="none", d_model=12, n_heads=3)),
    ("causal_temperature_half", session("attention is all you need", temperature=0.5, d_model=8, n_heads=2, seed=7)),
    ("none_temperature_three_chars", session("hello world", tokenizer="chars", temperature=3.0, mask="none", d_model=16, n_heads=1, seed=123456789012345)),
    ("single_token", session("Hi", d_model=6, n_heads=2, seed=0)),
    ("repeated_tokens", session("the the the cat the", d_model=32, n_heads=8, seed=99, positional="none")),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = {
        "description": "first draws of named streams (engine/rng.hpp); float64",
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
    pe = sinusoidal(7, 10)
    with open(os.path.join(OUT, "sinusoidal.json"), "w") as f:
        json.dump({"n": 7, "d": 10, "pe": pe.tolist()}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
