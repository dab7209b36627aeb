#!/usr/bin/python3
"""attnlab-cli export --model with --rows, --cols, --overview and --matrix rollout on a text past
the dense limit (2048 tokens), through the tiny Llama folder (GQA, RoPE) with its context raised:
the weights block equals numpy's causal softmax over the exported rotated q and k rows; the same
block, the pooled overviews and rollout rows from the attention field equal those of the dense
path (--dense), the overviews also numpy's pooling of the dense weights; bad requests exit 1 with
one line."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import checks
from checks import check

cli = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
tmp = tempfile.mkdtemp()


# the tiny Llama (d_model 16, 4 heads over 2 KV heads, d_head 4) with room for a long text: RoPE
# has no table to outgrow, only the config's limit
model = os.path.join(tmp, "tiny-llama-long")
shutil.copytree(os.path.join(ROOT, "tests", "models", "tiny-llama"), model)
cfg = json.load(open(os.path.join(model, "config.json")))
cfg["max_position_embeddings"] = 8192
json.dump(cfg, open(os.path.join(model, "config.json"), "w"))
text = " ".join(["ab cd ef"[i % 3 * 3:i % 3 * 3 + 2] for i in range(880)])


def export(*args, out, dense=False):
    return subprocess.run([cli, "export", "--model", model, "--text", text, *(["--dense"] if dense else []),
                           *args, "-o", out], capture_output=True, text=True, timeout=300)


def load(*args, dense=False):
    out = os.path.join(tmp, f"m{checks.passed + checks.failed}.npy")
    p = export(*args, out=out, dense=dense)
    if not check(p.returncode == 0, f"export {' '.join(args)}{' --dense' if dense else ''} ({p.stderr.strip()})"):
        return None
    return np.load(out).astype(np.float64)


p = subprocess.run([cli, "tokenize", "--model", model, "--text", text], capture_output=True, text=True, timeout=60)
n = len(json.loads(p.stdout)["ids"]) if p.returncode == 0 else 0
check(2048 < n <= 8192, f"the text has {n} tokens: past the dense limit, within --dense's")
layer, head = "1", "2"
r0, r1 = n - 10, n
at = ["--layer", layer, "--head", head]
q = load("--matrix", "q", "--rows", f"{r0}:{r1}", *at)
k = load("--matrix", "k", "--rows", f"0:{n}", *at)
w = load("--matrix", "weights", "--rows", f"{r0}:{r1}", "--cols", f"0:{n}", *at)
wd = load("--matrix", "weights", "--rows", f"{r0}:{r1}", "--cols", f"0:{n}", *at, dense=True)
if q is not None and k is not None and w is not None:
    check(q.shape == (10, 4) and k.shape == (n, 4) and w.shape == (10, n), f"shapes {q.shape} {k.shape} {w.shape}")
    s = q @ k.T / 2.0  # 1 / sqrt(d_head 4)
    i = np.arange(r0, r1)[:, None]
    s[np.arange(n)[None, :] > i] = -np.inf
    ref = np.exp(s - s.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    err = np.abs(w - ref).max()
    check(err <= 1e-5, f"the field's weights block = numpy's causal softmax on its q and k rows (max error {err:.2e})")
    check(np.all(w[np.arange(n)[None, :] > i] == 0), "future keys weigh exactly 0")
    if wd is not None:
        err = np.abs(w - wd).max()
        check(err <= 1e-6, f"the field's block = the dense path's (max error {err:.2e})")

logits = load("--matrix", "logits", "--rows", "5:7", "--cols", "0:9", *at)
if logits is not None:
    check(np.isneginf(logits[0, 6:]).all() and np.isfinite(logits[0, :6]).all(), "logits: -inf exactly where causal masks")

# overviews: field and dense paths, and numpy pooling the dense path's whole weights
full = load("--matrix", "weights", "--rows", f"0:{n}", "--cols", f"0:{n}", *at, dense=True)
for side in (64, 37):
    f = -(-n // side)  # the cells each texel pools along a side
    for pool in ("max", "mean"):
        ov = load("--matrix", "weights", "--overview", str(side), "--pool", pool, *at)
        ovd = load("--matrix", "weights", "--overview", str(side), "--pool", pool, *at, dense=True)
        if ov is None or ovd is None or full is None:
            continue
        rows = -(-n // f)
        ref = np.zeros((rows, rows))
        for a in range(rows):
            for b in range(rows):
                blk = full[a * f:(a + 1) * f, b * f:(b + 1) * f]
                ref[a, b] = blk.max() if pool == "max" else blk.mean()
        # two paths' float32 rounding: the field's exp(s - lse) against the dense softmax differ by a
        # few ulps of the largest weights (near 1 in the first rows)
        check(ov.shape == ref.shape and np.abs(ov - ref).max() <= 5e-6,
              f"--overview {side} --pool {pool} from the field = numpy pooling the dense weights "
              f"({ov.shape} {ref.shape} {np.abs(ov - ref).max() if ov.shape == ref.shape else ''})")
        check(ovd.shape == ref.shape and np.abs(ovd - ref).max() <= 1e-6, f"--overview {side} --pool {pool} from the dense path too")

# rollout rows through both layers: from the fields (vector x matrix products) and the dense rollout
ro = load("--matrix", "rollout", "--layer", "1", "--rows", f"{n - 4}:{n}")
rod = load("--matrix", "rollout", "--layer", "1", "--rows", f"{n - 4}:{n}", dense=True)
if ro is not None and rod is not None:
    check(ro.shape == (4, n) and np.abs(ro - rod).max() <= 1e-5,
          f"rollout rows from the fields = the dense rollout's ({np.abs(ro - rod).max():.2e})")
    check(np.abs(ro.sum(axis=1) - 1).max() <= 1e-4, "rollout rows sum to 1")

# what is refused, with one line and exit 1, nothing written
bad = os.path.join(tmp, "bad.npy")
for args, says in ((["--matrix", "q", "--overview", "16"], "q, k and v are exported by --rows"),
                   (["--matrix", "weights", "--rows", f"0:{n + 1}"], "past the"),
                   (["--matrix", "weights", "--rows", "0:2", "--head", "9"], "head 9 out of range"),
                   (["--matrix", "weights", "--rows", "0:2", "--layer", "5"], "layer 5 out of range"),
                   (["--matrix", "rollout", "--cols", "0:3"], "rollout takes --rows only"),
                   (["--matrix", "scores", "--rows", "0:2"], "export weights, logits, q, k, v or rollout")):
    p = export(*args, out=bad)
    check(p.returncode == 1 and says in p.stderr and p.stderr.count("\n") == 1 and not os.path.exists(bad),
          f"{' '.join(args)}: exit 1 with one line saying '{says}' ({p.returncode}, {p.stderr.strip()!r})")

shutil.rmtree(tmp, ignore_errors=True)
checks.done()
