#!/usr/bin/python3
"""The same job in plain torch, for make bench's ratios: GPT-2's forward pass on the
GPT-2-small-shaped folder attnlab-bench writes (/tmp/attnlab-bench-gpt2-small), keeping every
layer's attention maps (what output_attentions returns), on the same threads (torch's intra-op
threads = the cores, as OpenMP's). Prints "torch_gpt2_small_forward n=<n> <time> ms" (median of
repeats), the line format of attnlab-bench; says why and exits 0 when torch is not installed.
Usage: bench/torch_gpt2.py [DIR]"""
import json
import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_kernels  # noqa: E402,F401  (first: it may run this script again)

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"torch_gpt2_small_forward: skipped ({e.name} is not installed: apt-get install python3-torch)")
    sys.exit(0)


def load(folder):
    raw = open(os.path.join(folder, "model.safetensors"), "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    w = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        w[name] = torch.from_numpy(np.frombuffer(raw[8 + size + a:8 + size + b], "<f4").reshape(t["shape"]).copy())
    return json.load(open(os.path.join(folder, "config.json"))), w


def forward(cfg, w, ids):
    """GPT-2 (Conv1D weights (in, out)), float32, causal; returns the final stream and every
    layer's (heads, n, n) attention weights."""
    d, H = cfg["n_embd"], cfg["n_head"]
    n, dh = ids.shape[0], d // H
    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    maps = []
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        a = torch.nn.functional.layer_norm(x, (d,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
        qkv = torch.addmm(w[p + "attn.c_attn.bias"], a, w[p + "attn.c_attn.weight"])
        q, k, v = (t.view(n, H, dh).transpose(0, 1) for t in qkv.split(d, dim=1))
        s = (q @ k.transpose(1, 2)) / dh ** 0.5
        s = s.masked_fill(~causal, float("-inf"))
        att = torch.softmax(s, dim=-1)
        maps.append(att)
        ctx = (att @ v).transpose(0, 1).reshape(n, d)
        x = x + torch.addmm(w[p + "attn.c_proj.bias"], ctx, w[p + "attn.c_proj.weight"])
        m = torch.nn.functional.layer_norm(x, (d,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
        m = torch.nn.functional.gelu(torch.addmm(w[p + "mlp.c_fc.bias"], m, w[p + "mlp.c_fc.weight"]), approximate="tanh")
        x = x + torch.addmm(w[p + "mlp.c_proj.bias"], m, w[p + "mlp.c_proj.weight"])
    return x, maps


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/attnlab-bench-gpt2-small"
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        print(f"torch_gpt2_small_forward: skipped (no {folder}: run attnlab-bench first)")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    cfg, w = load(folder)
    for n, reps in ((128, 7), (1024, 3)):
        ids = torch.tensor([97 if i % 7 else 98 for i in range(n)])  # the bench's text: 'a' and 'b' bytes
        times = []
        with torch.no_grad():
            forward(cfg, w, ids)  # warm
            for _ in range(reps):
                t0 = time.perf_counter()
                forward(cfg, w, ids)
                times.append((time.perf_counter() - t0) * 1e3)
        print(f"torch_gpt2_small_forward n={n} {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    main()
