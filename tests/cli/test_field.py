#!/usr/bin/python3
"""attnlab-cli export from the attention field at 20,000 tokens (past the dense limit of 8192):
a block of weights equals numpy's softmax over the exported rotated q and k rows under the same
StreamingLLM mask, computed independently here; the pooled overview's rows carry each query's
weight; `compute` writes the field as safetensors whose q, k, row statistics and outputs agree
with numpy; bad ranges exit 1 with one line."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import checks
from checks import check

cli = sys.argv[1]
tmp = tempfile.mkdtemp()


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
if checks.passed == 3:
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

# compute above 2048 tokens writes the field as safetensors, read here without attnlab: q and k as
# exported, row statistics that numpy recomputes from them, metadata naming what it holds
field = os.path.join(tmp, "field.safetensors")
p = subprocess.run([cli, "compute", path, "-o", field], capture_output=True, text=True, timeout=300)
check(p.returncode == 0 and os.path.exists(field), f"compute writes the field ({p.stderr.strip()})")
if p.returncode == 0 and checks.passed >= 3:
    raw = open(field, "rb").read()
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + hlen])
    data = raw[8 + hlen:]

    def tensor(name):
        t = header[name]
        a, b = t["data_offsets"]
        check(t["dtype"] == "F32", f"{name} is F32")
        return np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).astype(np.float64)

    meta = header["__metadata__"]
    check(meta["format"] == "attnlab.field" and meta["n_tokens"] == str(n_words) and meta["n_heads"] == "2"
          and meta["mask"] == "streaming_llm", f"metadata {dict((k, meta[k]) for k in ('format', 'n_tokens', 'n_heads', 'mask'))}")
    check(len(json.loads(meta["tokens"])) == n_words, "the tokens are in the metadata")
    fq = tensor("layers.0.heads.1.q")
    fk = tensor("layers.0.heads.1.k")
    # compute and export project through the same code, but a stated tolerance, not ==, between runs
    check(np.abs(fq[r0:r1] - q).max() <= 1e-6 and np.abs(fk - k).max() <= 1e-6, "q and k are the exported rows")
    lse = tensor("layers.0.heads.1.row_lse")[r0:r1]
    s = q @ k.T / np.sqrt(16.0)
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=1)
    ref_lse = m + np.log(np.exp(s - m[:, None]).sum(axis=1))
    check(np.abs(lse - ref_lse).max() <= 1e-4, f"row_lse equals numpy's log-sum-exp ({np.abs(lse - ref_lse).max():.2e})")
    out = tensor("layers.0.heads.1.output")[r0:r1]
    v = tensor("layers.0.heads.1.v")
    ref_out = ref @ v
    check(np.abs(out - ref_out).max() <= 1e-5, f"output = weights v ({np.abs(out - ref_out).max():.2e})")
    check(tensor("layers.0.output").shape == (n_words, 32), "the layer's output")
json_out = os.path.join(tmp, "field.json")
p = subprocess.run([cli, "compute", path, "-o", json_out], capture_output=True, text=True, timeout=300)
check(p.returncode == 1 and "safetensors" in p.stderr and len(p.stderr.strip().splitlines()) == 1 and not os.path.exists(json_out),
      f"a field asked as JSON: exit 1, one line naming safetensors ({p.stderr.strip()})")
p = subprocess.run([cli, "compute", path, "--dense", "-o", json_out], capture_output=True, text=True, timeout=300)
check(p.returncode == 1 and "the limit is 8192" in p.stderr and not os.path.exists(json_out),
      f"--dense above 8192 tokens is refused ({p.stderr.strip()})")

# rollout of chosen rows through two layers at 2,500 tokens (a field): numpy builds each layer's
# mean attention from the exported rotated q and k of every head and multiplies (A1 + I)/2 (A0 + I)/2
n2 = 2500
path2 = os.path.join(tmp, "rollout.json")
json.dump({"text": " ".join(f"v{(i * 31) % 701}" for i in range(n2)),
           "model": {"d_model": 16, "n_heads": 2, "n_layers": 2, "block": "pre_ln", "seed": 4},
           "positional": {"kind": "rope"}, "attention": {"mask": {"kind": "causal"}}}, open(path2, "w"))


def export2(*args, out):
    return subprocess.run([cli, "export", path2, *args, "-o", out], capture_output=True, text=True, timeout=300)


rows_out = os.path.join(tmp, "rollout.npy")
p = export2("--layer", "1", "--matrix", "rollout", "--rows", "2000:2004", out=rows_out)
check(p.returncode == 0, f"rollout rows exported ({p.stderr.strip()})")
if p.returncode == 0:
    got = np.load(rows_out).astype(np.float64)
    mean = []
    ok = True
    for layer in (0, 1):
        acc = np.zeros((n2, n2))
        for head in (0, 1):
            qk = {}
            for m in ("q", "k"):
                o = os.path.join(tmp, f"r{layer}{head}{m}.npy")
                ok &= export2("--layer", str(layer), "--head", str(head), "--matrix", m, "--rows", f"0:{n2}", out=o).returncode == 0
                qk[m] = np.load(o).astype(np.float64) if os.path.exists(o) else np.zeros((n2, 8))
            sc = qk["q"] @ qk["k"].T / np.sqrt(8.0)
            sc = np.where(np.tril(np.ones((n2, n2), dtype=bool)), sc, -np.inf)
            w = np.exp(sc - sc.max(axis=1, keepdims=True))
            acc += w / w.sum(axis=1, keepdims=True)
        a = 0.5 * acc / 2 + 0.5 * np.eye(n2)  # the residual term (the default)
        mean.append(a / a.sum(axis=1, keepdims=True))
    check(ok, "q and k of every head and layer exported")
    ref = mean[1][2000:2004] @ mean[0]
    err = np.abs(got - ref).max()
    check(got.shape == (4, n2) and err <= 1e-5, f"rollout rows equal numpy's (A1 A0)[2000:2004] (max |diff| {err:.2e})")
    check(np.allclose(got.sum(axis=1), 1.0, atol=1e-4), "each rollout row sums to 1")
    # every row (more than 256, at most 4096 tokens): the field's whole n x n rollout
    whole_out = os.path.join(tmp, "rollout-whole.npy")
    p = export2("--layer", "1", "--matrix", "rollout", "--rows", f"0:{n2}", out=whole_out)
    if check(p.returncode == 0, f"the whole rollout exported ({p.stderr.strip()})"):
        whole = np.load(whole_out).astype(np.float64)
        ref = mean[1] @ mean[0]
        err = np.abs(whole - ref).max()
        check(whole.shape == (n2, n2) and err <= 1e-5, f"the whole rollout equals numpy's A1 A0 (max |diff| {err:.2e})")
        check(float(np.abs(whole[:, 1:][np.triu(np.ones((n2, n2 - 1), dtype=bool))]).max()) == 0.0,
              "causal through both layers: exactly 0 on every later token")

# a learned sink (gpt-oss) on the field at 5000 tokens: numpy recomputes each chosen row's sink
# share, its weights and output from the file's q, k, v and the session's sink logit
path4 = os.path.join(tmp, "sink.json")
n4, sink_logit, temp = 5000, 2.5, 0.8
json.dump({"text": " ".join(f"v{(i * 31) % 701}" for i in range(n4)),
           "model": {"d_model": 32, "n_heads": 2, "seed": 6},
           "attention": {"mask": {"kind": "causal"}, "normalizer": {"kind": "softmax", "temperature": temp},
                         "sink": {"enabled": True, "logit": sink_logit}}}, open(path4, "w"))
field4 = os.path.join(tmp, "sink.safetensors")
p = subprocess.run([cli, "compute", path4, "-o", field4], capture_output=True, text=True, timeout=300)
if check(p.returncode == 0, f"a session with a learned sink above 2048 tokens computes as a field ({p.stderr.strip()})"):
    raw = open(field4, "rb").read()
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + hlen])

    def t4(name):
        a, b = header[name]["data_offsets"]
        return np.frombuffer(raw[8 + hlen + a:8 + hlen + b], dtype="<f4").reshape(header[name]["shape"]).astype(np.float64)

    worst = 0.0
    for h in (0, 1):
        q, k, v = t4(f"layers.0.heads.{h}.q"), t4(f"layers.0.heads.{h}.k"), t4(f"layers.0.heads.{h}.v")
        share, lse, out = t4(f"layers.0.heads.{h}.sink_weight"), t4(f"layers.0.heads.{h}.row_lse"), t4(f"layers.0.heads.{h}.output")
        for i in (0, 1, 999, 2500, n4 - 1):
            sc = q[i] @ k[:i + 1].T / np.sqrt(16.0) / temp
            z = np.concatenate([sc, [sink_logit / temp]])
            p_all = np.exp(z - z.max())
            p_all /= p_all.sum()
            worst = max(worst, abs(share[i] - p_all[-1]), np.abs(np.exp(sc - lse[i]) - p_all[:-1]).max(),
                        np.abs(out[i] - p_all[:-1] @ v[:i + 1]).max())
    check(worst <= 1e-5, f"sink shares, weights and outputs equal numpy's softmax over the row and the sink ({worst:.2e})")

# above 4096 tokens only 256 rows at a time: exit 1, one line saying why
path3 = os.path.join(tmp, "rollout-4100.json")
json.dump({"text": " ".join(f"v{(i * 31) % 701}" for i in range(4100)),
           "model": {"d_model": 16, "n_heads": 2, "n_layers": 2, "seed": 4}, "attention": {"mask": {"kind": "causal"}}},
          open(path3, "w"))
out3 = os.path.join(tmp, "rollout-4100.npy")
p = subprocess.run([cli, "export", path3, "--layer", "1", "--matrix", "rollout", "--rows", "0:300", "-o", out3],
                   capture_output=True, text=True, timeout=300)
lines = p.stderr.strip().splitlines()
check(p.returncode == 1 and len(lines) == 1 and "4096" in p.stderr and not os.path.exists(out3),
      f"300 rollout rows of 4100 tokens: exit 1, one line naming 4096 ({p.stderr.strip()})")

for args, what in ((("--matrix", "weights", "--rows", "5:2"), "a reversed range"),
                   (("--matrix", "weights", "--rows", f"0:{n_words + 1}"), "rows past the text"),
                   (("--matrix", "scores", "--rows", "0:4"), "a step the field does not export"),
                   (("--overview", "64", "--pool", "median"), "an unknown pool")):
    out = os.path.join(tmp, "bad.npy")
    p = export(*args, out=out)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 1 and len(lines) == 1 and not os.path.exists(out), f"{what}: exit 1, one line, nothing written ({p.stderr.strip()})")

checks.done()
