#!/usr/bin/env python3
"""attnlab-cli train: the files it writes, read without attnlab. model.safetensors is parsed here
(8-byte header length, JSON header, F32 data at the offsets it names) and GPT-2's forward pass is
written here in numpy from Hugging Face's GPT2Model conventions (Conv1D weights (in, out),
c_attn = [q | k | v], pre-LN, learned positions, 1/sqrt(d_head) scale, tanh gelu): its per-head
attention must equal what `attnlab-cli compute --model DIR` reports. The log has the columns the
issue names, the tokenizer is WordLevel, and bad task files fail with one line and exit 1.

Usage: test_train.py path/to/attnlab-cli
"""
import csv
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

CLI = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "..", "..", "assets")
checks = {"passed": 0, "failed": 0}


def check(cond, what):
    checks["passed" if cond else "failed"] += 1
    print(("ok   " if cond else "FAIL ") + what)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def gpt2_attention(w, cfg, ids):
    d, H = cfg["n_embd"], cfg["n_head"]
    dh = d // H
    T = len(ids)

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + cfg["layer_norm_epsilon"]) * g + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    maps = []
    for l in range(cfg["n_layer"]):
        p = lambda n: w["h.%d.%s" % (l, n)]
        a = ln(x, p("ln_1.weight"), p("ln_1.bias"))
        qkv = a @ p("attn.c_attn.weight") + p("attn.c_attn.bias")
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        heads, outs = [], []
        for h in range(H):
            s = q[:, h * dh:(h + 1) * dh] @ k[:, h * dh:(h + 1) * dh].T / np.sqrt(dh)
            s = np.where(np.tril(np.ones((T, T))) > 0, s, -np.inf)
            e = np.exp(s - s.max(-1, keepdims=True))
            pw = e / e.sum(-1, keepdims=True)
            heads.append(pw)
            outs.append(pw @ v[:, h * dh:(h + 1) * dh])
        maps.append(heads)
        x = x + np.concatenate(outs, -1) @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        m = ln(x, p("ln_2.weight"), p("ln_2.bias"))
        x = x + gelu(m @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias")) @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    return maps


def main():
    tmp = tempfile.mkdtemp(prefix="attnlab-train-")
    task = os.path.join(tmp, "copy.json")
    json.dump({"task": {"kind": "copy", "length": 12, "symbols": 6},
               "model": {"layers": 2, "heads": 2, "d_model": 16, "mlp": True, "kv_heads": 1},
               "training": {"steps": 60, "eval_every": 20, "lr": 0.003}}, open(task, "w"))
    out = os.path.join(tmp, "model")
    p = subprocess.run([CLI, "train", task, "-o", out], capture_output=True, text=True)
    check(p.returncode == 0, f"train exits 0 ({p.stderr.strip()[:200]})")
    summary = json.loads(p.stdout)
    check(summary["steps"] == 60 and summary["layout"] == "gpt2", f"the summary: 60 steps, GPT-2 layout ({summary['layout']})")
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "train_log.csv", "task.json"):
        check(os.path.exists(os.path.join(out, f)), f"{f} written")
    rows = list(csv.DictReader(open(os.path.join(out, "train_log.csv"))))
    cols = rows[0].keys()
    want = ["step", "train_loss", "val_loss", "val_accuracy"] + [f"{k}_score_l{l}h{h}" for k in ("induction", "prev_token")
                                                                 for l in range(2) for h in range(2)]
    check(all(c in cols for c in want), "train_log.csv has step, the losses, val_accuracy and both scores per head")
    check([int(r["step"]) for r in rows] == [0, 20, 40, 60], "a row at step 0 and every eval_every steps")
    check(float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]), "the training loss fell")
    cfg = json.load(open(os.path.join(out, "config.json")))
    tok = json.load(open(os.path.join(out, "tokenizer.json")))
    check(tok["model"]["type"] == "WordLevel" and len(tok["model"]["vocab"]) == cfg["vocab_size"],
          "a WordLevel tokenizer over the whole vocabulary")
    w = read_safetensors(os.path.join(out, "model.safetensors"))
    check(w["h.0.attn.c_attn.weight"].shape == (16, 48), "c_attn is GPT-2's Conv1D (in, 3 out), GQA written as MHA")
    text = "A B C D E F | A B C D E"
    r = subprocess.run([CLI, "compute", "--model", out, "--text", text], capture_output=True, text=True)
    check(r.returncode == 0, "compute --model opens what train wrote")
    res = json.loads(r.stdout)
    ids = [tok["model"]["vocab"][t] for t in text.split()]
    mine = gpt2_attention(w, cfg, ids)
    worst = max(float(np.abs(np.array(res["layers"][l]["heads"][h]["weights"]) - mine[l][h]).max())
                for l in range(2) for h in range(2))
    check(worst < 1e-5, f"numpy's GPT-2 on the safetensors file = attnlab's attention (max difference {worst:.2e})")
    # bad task files: one line, exit 1
    for body, says in ((('{"model": {"layers": 9}}'), "layers"), ('{"task": {"kind": "nope"}}', "kind"),
                       ('{"task": ', "JSON"), ('{"training": {"stepz": 1}}', "stepz")):
        bad = os.path.join(tmp, "bad.json")
        open(bad, "w").write(body)
        b = subprocess.run([CLI, "train", bad, "-o", os.path.join(tmp, "bad-out")], capture_output=True, text=True)
        lines = b.stderr.strip().splitlines()
        check(b.returncode == 1 and len(lines) == 1 and says.lower() in lines[0].lower(),
              f"{body!r}: exit 1 with one line naming it ({b.returncode}, {b.stderr.strip()[:120]!r})")
    alibi = os.path.join(tmp, "alibi.json")
    json.dump({"task": {"kind": "copy", "length": 8}, "model": {"heads": 2, "d_model": 16, "positional": "alibi"},
               "training": {"steps": 3}}, open(alibi, "w"))
    b = subprocess.run([CLI, "train", alibi, "-o", os.path.join(tmp, "alibi-out")], capture_output=True, text=True)
    check(b.returncode == 1 and "ALiBi" in b.stderr and os.path.exists(os.path.join(tmp, "alibi-out", "train_log.csv")),
          "ALiBi: no Hugging Face folder, said in one line, the log still written")
    print(f"{checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] else 0)


main()
