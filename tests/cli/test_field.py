#!/usr/bin/python3
"""attnlab-cli export from the attention field at 20,000 tokens (past the dense limit of 8192):
a block of weights equals numpy's softmax over the exported rotated q and k rows under the same
StreamingLLM mask, computed independently here; the pooled overview's rows carry each query's
weight; bad ranges exit 1 with one line."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

cli = sys.argv[1]
tmp = tempfile.mkdtemp()
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


n_words = 20000
text = " ".join(f"w{(i * 7919) % 5000}" for i in range(n_words))
session = {"text": text, "model": {"d_model": 32, "n_heads": 2, "seed": 9},
           "attention": {"mask": {"kind": "streaming_llm", "sinks": 4, "window": 63}}}
path = os.path.join(tmp, "long.json")
json.dump(session, open(path, "w"))


def export(*args, out):
    p = subprocess.run([cli, "export", path, "--layer", "0", "--head", "1", *args, "-o", out],
                       capture_output=True, text=True, timeout=300)
    return p


r0, r1 = 15000, 15010
outs = {m: os.path.join(tmp, f"{m}.npy") for m in ("q", "k", "weights")}
p = export("--matrix", "q", "--rows", f"{r0}:{r1}", out=outs["q"])
check(p.returncode == 0, f"q rows exported ({p.stderr.strip()})")
p = export("--matrix", "k", "--rows", f"0:{n_words}", out=outs["k"])
check(p.returncode == 0, f"k rows exported ({p.stderr.strip()})")
p = export("--matrix", "weights", "--rows", f"{r0}:{r1}", "--cols", f"0:{n_words}", out=outs["weights"])
check(p.returncode == 0, f"a weights block exported ({p.stderr.strip()})")
if passed == 3:
    q = np.load(outs["q"]).astype(np.float64)
    k = np.load(outs["k"]).astype(np.float64)
    w = np.load(outs["weights"]).astype(np.float64)
    check(q.shape == (10, 16) and k.shape == (n_words, 16) and w.shape == (10, n_words), f"shapes {q.shape} {k.shape} {w.shape}")
    i = np.arange(r0, r1)[:, None]
    j = np.arange(n_words)[None, :]
    allowed = (j <= i) & ((j < 4) | (i - j <= 63))  # Xiao et al. 2023: sinks and the recent window
    s = q @ k.T / np.sqrt(16.0)
    s = np.where(allowed, s, -np.inf)
    ref = np.exp(s - s.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    err = np.abs(w - ref).max()
    check(err <= 1e-6, f"the block equals numpy's softmax over the exported q and k (max |diff| {err:.2e})")
    check(bool(np.all(w[~allowed] == 0.0)), "masked cells are exactly 0")
    check(int((w[0] > 0).sum()) == 68, f"a late query attends 4 sinks and 64 recent keys ({int((w[0] > 0).sum())})")

ov = os.path.join(tmp, "overview.npy")
p = export("--overview", "64", "--pool", "mean", out=ov)
check(p.returncode == 0, f"the mean overview exported ({p.stderr.strip()})")
if p.returncode == 0:
    o = np.load(ov).astype(np.float64)
    fr = -(-n_words // 64)
    check(o.shape == (-(-n_words // fr), -(-n_words // fr)), f"overview shape {o.shape}")
    # each overview cell is a mean over fr x fc cells; rows of weights sum to 1, so a band of fr
    # query rows carries fr of weight: sum_b mean(a, b) * fr * fc_b = rows in band a
    fc = fr
    widths = np.array([min(n_words, (b + 1) * fc) - b * fc for b in range(o.shape[1])], dtype=np.float64)
    heights = np.array([min(n_words, (a + 1) * fr) - a * fr for a in range(o.shape[0])], dtype=np.float64)
    carried = (o * widths[None, :]).sum(axis=1) * heights
    check(np.allclose(carried, heights, rtol=1e-4), "every band of the overview carries its queries' weight")

for args, what in ((("--matrix", "weights", "--rows", "5:2"), "a reversed range"),
                   (("--matrix", "weights", "--rows", f"0:{n_words + 1}"), "rows past the text"),
                   (("--matrix", "scores", "--rows", "0:4"), "a step the field does not export"),
                   (("--overview", "64", "--pool", "median"), "an unknown pool")):
    out = os.path.join(tmp, "bad.npy")
    p = export(*args, out=out)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 1 and len(lines) == 1 and not os.path.exists(out), f"{what}: exit 1, one line, nothing written ({p.stderr.strip()})")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
