#!/usr/bin/env python3
"""StreamingLLM's observation on the committed tiny GPT-2 (tests/models/tiny-gpt2): the float64
numpy forward of make_tiny_models.py with every layer's first 4 keys masked in every row but
their own, against which the engine's sink_masked intervention is checked. Reads the committed
weights (it does not regenerate the model) and writes tests/golden/sink_masked.json: the
attention weights per layer and head and the next-token probabilities at every position, with
and without the mask."""
import json
import os

import numpy as np

from make_tiny_families import read_safetensors
from make_tiny_models import ROOT, forward


def main():
    folder = os.path.join(ROOT, "models", "tiny-gpt2")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    g = json.load(open(os.path.join(ROOT, "golden", "tiny_gpt2.json")))
    ids = g["ids"]
    golden = {"text": g["text"], "sinks": 4}
    for key, sinks in (("plain", 0), ("masked", 4)):
        heads, _, probs = forward(cfg, w, ids, sinks=sinks)
        golden[key] = {"weights": [[np.round(h, 9).tolist() for h in layer] for layer in heads],
                       "probs": np.round(probs, 12).tolist()}
    json.dump(golden, open(os.path.join(ROOT, "golden", "sink_masked.json"), "w"), separators=(",", ":"))


if __name__ == "__main__":
    main()
