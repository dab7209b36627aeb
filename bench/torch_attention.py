#!/usr/bin/python3
"""The attention field's jobs in plain torch, for make bench's ratios (same machine, same run,
same OpenBLAS kernels, torch's threads = the cores). Torch has no field: it materialises the
weights, which is the only way it can return them.
- torch_self_attention n=4096: attnlab's field_self_attention - d_model 768, 12 heads, no mask,
  the fused QKV projection, every head's 4096 x 4096 weights, their 512 x 512 overviews (max and
  mean pooling), the heads' outputs through W_O;
- torch_one_head_overview n=32768: field_one_head_overview - one head (d_head 64, scale 1/8) at
  32,768 tokens: weights (4 GiB, and 4 more for softmax's result), output, both overviews.
  All 12 heads at 32k would need 48 GiB of weights: torch cannot do field_self_attention n=32768
  on these 24 GiB machines.
Prints "<case> n=<n> <time> ms" (median); says why and exits 0 without torch."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import same_kernels  # noqa: E402,F401  (first: it may run this script again)

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"torch_self_attention: skipped ({e.name} is not installed: apt-get install python3-torch)")
    sys.exit(0)


def overviews(w, side=512):
    """(heads, n, n) weights -> their (heads, side, side) max and mean pools."""
    f = w.shape[-1] // side
    return F.max_pool2d(w, f), F.avg_pool2d(w, f)


def self_attention(x, w_qkv, w_o, heads):
    n, d = x.shape
    dh = d // heads
    q, k, v = (t.view(n, heads, dh).transpose(0, 1) for t in (x @ w_qkv).split(d, dim=1))
    att = torch.softmax((q @ k.transpose(1, 2)) * dh ** -0.5, dim=-1)
    ov = overviews(att)
    out = (att @ v).transpose(0, 1).reshape(n, d) @ w_o
    return out, ov


def one_head(q, k, v):
    att = torch.softmax((q @ k.T) * 0.125, dim=-1)
    ov = overviews(att[None])
    return att @ v, ov


def timed(f, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        n, d = 4096, 768
        x = torch.randn(n, d, generator=g)
        w_qkv = torch.randn(d, 3 * d, generator=g) * d ** -0.5
        w_o = torch.randn(d, d, generator=g) * d ** -0.5
        self_attention(x, w_qkv, w_o, 12)  # warm
        print(f"torch_self_attention n={n} {timed(lambda: self_attention(x, w_qkv, w_o, 12), 3):.2f} ms")
        n = 32768
        q, k, v = (torch.randn(n, 64, generator=g) for _ in range(3))
        print(f"torch_one_head_overview n={n} {timed(lambda: one_head(q, k, v), 2):.2f} ms")


if __name__ == "__main__":
    main()
