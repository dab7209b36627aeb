#!/usr/bin/python3
"""Tiny GPT-2 models in exactly the Hugging Face layout, and what they compute, by numpy alone.

Writes tests/models/tiny-gpt2{,-bf16,-sharded}/ (config.json, safetensors with GPT2Model's tensor
names and Conv1D (in, out) layouts, vocab.json + merges.txt or tokenizer.json) and
tests/golden/tiny_gpt2.json: for a fixed text, the token ids and strings and every layer's
per-head attention weights, from an independent float64 forward pass and BPE tokenizer.
Run from anywhere: /usr/bin/python3 tests/reference/make_tiny_models.py
"""
import json
import os
import re
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TEXT = "Attention isn't all you need,   but it's a start. Café 42!\nThe end"
CORPUS = ("attention is all you need . the cat sat on the mat . it isn't a start , but it's the end . "
          "attention heads attend to tokens ; all you need is attention") * 3


def bytes_to_unicode():  # GPT-2's encoder.py mapping
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
LETTER = "A-Za-z\u0080-\U0010ffff"
PAT = re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{LETTER}]+| ?[0-9]+| ?[^\s{LETTER}0-9]+|\s+(?!\S)|\s+")


def pieces(text):
    return PAT.findall(text)


def merge_pair(word, a, b):
    """word with every adjacent (a, b) replaced by a + b, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_merges(corpus, n_merges):
    words = [[B2U[b] for b in p.encode()] for p in pieces(corpus)]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        words = [merge_pair(w, *best) for w in words]
    return merges


def bpe(piece, ranks):
    w = [B2U[b] for b in piece.encode()]
    while len(w) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(w, w[1:]))]
        rank, _ = min(pairs)
        if rank == 1 << 30:
            break
        w = merge_pair(w, *next(p for p, r in ranks.items() if r == rank))
    return w


U2B = {u: b for b, u in B2U.items()}


def tokenize(text, vocab, ranks):
    ids, strings = [], []
    for p in pieces(text):
        for sym in bpe(p, ranks):
            ids.append(vocab[sym])
            strings.append(bytes(U2B[c] for c in sym).decode("utf-8", "replace"))
    return ids, strings


def bf16_round(a):
    """float32 -> bfloat16 bits (round to nearest even), and back to float32."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded, (rounded.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype="F32"):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        raw = bf16_round(a)[0].tobytes() if dtype == "BF16" else a.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def weights(cfg, rng):
    d, inner, v, p = cfg["n_embd"], 4 * cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    w = {"wte.weight": rng.normal(0, 0.8, (v, d)), "wpe.weight": rng.normal(0, 0.3, (p, d))}
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        w[h + "ln_1.weight"] = 1 + rng.normal(0, 0.1, d)
        w[h + "ln_1.bias"] = rng.normal(0, 0.1, d)
        w[h + "attn.c_attn.weight"] = rng.normal(0, 0.6, (d, 3 * d))
        w[h + "attn.c_attn.bias"] = rng.normal(0, 0.1, 3 * d)
        w[h + "attn.c_proj.weight"] = rng.normal(0, 0.2, (d, d))
        w[h + "attn.c_proj.bias"] = rng.normal(0, 0.05, d)
        w[h + "ln_2.weight"] = 1 + rng.normal(0, 0.1, d)
        w[h + "ln_2.bias"] = rng.normal(0, 0.1, d)
        w[h + "mlp.c_fc.weight"] = rng.normal(0, 0.2, (d, inner))
        w[h + "mlp.c_fc.bias"] = rng.normal(0, 0.05, inner)
        w[h + "mlp.c_proj.weight"] = rng.normal(0, 0.2, (inner, d))
        w[h + "mlp.c_proj.bias"] = rng.normal(0, 0.05, d)
    w["ln_f.weight"] = 1 + rng.normal(0, 0.1, d)
    w["ln_f.bias"] = rng.normal(0, 0.1, d)
    return {k: v.astype(np.float32) for k, v in w.items()}


def ablated(ctx, cols, mode):
    """A head's output (its columns of the heads' concatenation) zeroed or replaced by its mean
    over the positions."""
    ctx[:, cols] = 0.0 if mode == "zero" else ctx[:, cols].mean(0, keepdims=True)


def softmax_last(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def forward(cfg, w, ids, ablate=(), mode="zero", sinks=0):
    """float64 GPT-2 forward; returns per layer, per head, the (n, n) attention weights, the final
    residual stream and the next-token probabilities (ln_f, then the tied wte) per position.
    `ablate`: (layer, head) pairs whose output is replaced (mode "zero" or "mean"). `sinks`: the
    first keys masked in every row but their own (StreamingLLM's sinks taken away)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    d, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    dh, n = d // H, len(ids)

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    out, lens = [], []
    for l in range(cfg["n_layer"]):
        h = f"h.{l}."
        a = ln(x, w[h + "ln_1.weight"], w[h + "ln_1.bias"])
        qkv = a @ w[h + "attn.c_attn.weight"] + w[h + "attn.c_attn.bias"]
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        heads, ctx = [], np.zeros((n, d))
        for hh in range(H):
            s = q[:, hh * dh:(hh + 1) * dh] @ k[:, hh * dh:(hh + 1) * dh].T / np.sqrt(dh)
            keep = np.tril(np.ones((n, n), bool))
            if sinks:
                cols = np.arange(n)
                keep &= (cols[None, :] >= sinks) | (cols[None, :] == cols[:, None])
            s = np.where(keep, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            heads.append(p)
            ctx[:, hh * dh:(hh + 1) * dh] = p @ v[:, hh * dh:(hh + 1) * dh]
            if (l, hh) in ablate:
                ablated(ctx, slice(hh * dh, (hh + 1) * dh), mode)
        x = x + ctx @ w[h + "attn.c_proj.weight"] + w[h + "attn.c_proj.bias"]
        m = ln(x, w[h + "ln_2.weight"], w[h + "ln_2.bias"]) @ w[h + "mlp.c_fc.weight"] + w[h + "mlp.c_fc.bias"]
        m = 0.5 * m * (1 + np.tanh(np.sqrt(2 / np.pi) * (m + 0.044715 * m ** 3)))
        x = x + m @ w[h + "mlp.c_proj.weight"] + w[h + "mlp.c_proj.bias"]
        out.append(heads)
        lens.append(softmax_last(ln(x, w["ln_f.weight"], w["ln_f.bias"]) @ w["wte.weight"].T))
    probs = lens[-1]
    forward.lens = lens  # the logit lens: every layer's residual through ln_f and wte
    return out, x, probs


def main():
    merges = train_merges(CORPUS, 60)
    ranks = {m: i for i, m in enumerate(merges)}
    symbols = [B2U[b] for b in range(256)] + [a + b for a, b in merges]
    vocab = {}
    for s in symbols:
        vocab.setdefault(s, len(vocab))
    cfg = {"model_type": "gpt2", "architectures": ["GPT2Model"], "n_embd": 16, "n_head": 2, "n_layer": 2,
           "n_positions": 48, "n_ctx": 48, "vocab_size": len(vocab), "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new", "n_inner": None}
    rng = np.random.default_rng(7)
    w = weights(cfg, rng)
    ids, strings = tokenize(TEXT, vocab, ranks)
    golden = {"text": TEXT, "ids": ids, "tokens": strings, "models": {}}
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)

    def folder(name):
        p = os.path.join(ROOT, "models", name)
        os.makedirs(p, exist_ok=True)
        json.dump(cfg, open(os.path.join(p, "config.json"), "w"), indent=1)
        return p

    # F32, GPT2Model names, vocab.json + merges.txt
    p = folder("tiny-gpt2")
    write_safetensors(os.path.join(p, "model.safetensors"), w)
    json.dump(vocab, open(os.path.join(p, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(p, "merges.txt"), "w", encoding="utf-8").write(merges_txt)
    golden["models"]["tiny-gpt2"] = forward(cfg, w, ids)[0]
    # the output head, and ablations: next-token probabilities at every position (full vocabulary)
    golden["next"] = [{"ablate": "", "mode": "zero", "probs": np.round(forward(cfg, w, ids)[2], 12).tolist()}]
    # the logit lens: per layer, per position, the full distribution (the test takes its top token)
    golden["lens"] = [np.round(p, 12).tolist() for p in forward.lens]
    for spec, mode in (("1.0", "zero"), ("0.1,1.1", "mean")):
        pairs = [tuple(int(v) for v in s.split(".")) for s in spec.split(",")]
        golden["next"].append({"ablate": spec, "mode": mode,
                               "probs": np.round(forward(cfg, w, ids, pairs, mode)[2], 12).tolist()})
    # BF16, GPT2LMHeadModel names ("transformer."), tokenizer.json
    p = folder("tiny-gpt2-bf16")
    write_safetensors(os.path.join(p, "model.safetensors"), {"transformer." + k: v for k, v in w.items()}, "BF16")
    tok = {"version": "1.0",
           # as GPT-2's own tokenizer.json: the ByteLevel pre-tokenizer with GPT-2's pattern
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]}}
    json.dump(tok, open(os.path.join(p, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    golden["models"]["tiny-gpt2-bf16"] = forward(cfg, {k: bf16_round(v)[1] for k, v in w.items()}, ids)[0]
    # F32 in two shards with the index
    p = folder("tiny-gpt2-sharded")
    names = list(w)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    index = {"metadata": {"total_size": int(sum(v.nbytes for v in w.values()))}, "weight_map": {}}
    for file, part in shards.items():
        write_safetensors(os.path.join(p, file), {k: w[k] for k in part})
        index["weight_map"].update({k: file for k in part})
    json.dump(index, open(os.path.join(p, "model.safetensors.index.json"), "w"), indent=1)
    json.dump(vocab, open(os.path.join(p, "vocab.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(p, "merges.txt"), "w", encoding="utf-8").write(merges_txt)
    golden["models"]["tiny-gpt2-sharded"] = golden["models"]["tiny-gpt2"]

    for m in golden["models"]:
        golden["models"][m] = [[np.round(h, 9).tolist() for h in layer] for layer in golden["models"][m]]
    out = os.path.join(ROOT, "golden", "tiny_gpt2.json")
    json.dump(golden, open(out, "w"), separators=(",", ":"))
    bert_golden = {}
    bert_model(bert_golden)
    json.dump(bert_golden["bert"], open(os.path.join(ROOT, "golden", "tiny_bert.json"), "w"), separators=(",", ":"))
    llama_model()
    # Qwen2: q, k, v biases, tied embeddings (as Qwen2-0.5B), no sliding window
    llama_model("tiny-qwen2", "qwen2", seed=21, qkv_bias=True, tied=True,
                extra={"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 2})
    # Mistral: a causal window of 5 keys on every layer (shorter than the text, so it shows)
    llama_model("tiny-mistral", "mistral", seed=22, window=5, extra={"sliding_window": 5})
    print(f"{len(ids)} tokens: {strings}")


# --- BERT ----------------------------------------------------------------------------------------
import math
import unicodedata

BERT_TEXT = "Attention isn't all you need, but it's a start. Café 42!"


def bert_vocab():
    words = sorted({w for w in re.findall(r"[a-z]+", CORPUS) if CORPUS.count(w) >= 6})
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;!?'-")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return list(dict.fromkeys(tokens))  # a vocabulary lists each token once


def bert_tokenize(text, vocab):
    """BertTokenizer (uncased) by unicodedata: NFD, drop marks, lower; split punctuation; WordPiece."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    words = []
    for chunk in text.split():
        cur = ""
        for c in chunk:
            if unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47 or 58 <= ord(c) <= 64 or 91 <= ord(c) <= 96 or 123 <= ord(c) <= 126):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    out = ["[CLS]"]
    for w in words:
        pieces, start = [], 0
        while start < len(w):
            for end in range(len(w), start, -1):
                sub = ("##" if start else "") + w[start:end]
                if sub in vocab:
                    pieces.append(sub)
                    start = end
                    break
            else:
                pieces = ["[UNK]"]
                break
        out += pieces
    return out + ["[SEP]"]


def bert_model(golden):
    vocab_list = bert_vocab()
    vocab = {t: i for i, t in enumerate(vocab_list)}
    cfg = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 16, "num_attention_heads": 4,
           "num_hidden_layers": 2, "intermediate_size": 32, "max_position_embeddings": 40, "type_vocab_size": 2,
           "vocab_size": len(vocab_list), "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
    d, inner = cfg["hidden_size"], cfg["intermediate_size"]
    rng = np.random.default_rng(11)
    w = {"embeddings.word_embeddings.weight": rng.normal(0, 0.8, (len(vocab_list), d)),
         "embeddings.position_embeddings.weight": rng.normal(0, 0.3, (cfg["max_position_embeddings"], d)),
         "embeddings.token_type_embeddings.weight": rng.normal(0, 0.3, (2, d)),
         "embeddings.LayerNorm.weight": 1 + rng.normal(0, 0.1, d), "embeddings.LayerNorm.bias": rng.normal(0, 0.1, d)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        for name, shape, sd in (("attention.self.query", (d, d), 0.6), ("attention.self.key", (d, d), 0.6),
                                ("attention.self.value", (d, d), 0.4), ("attention.output.dense", (d, d), 0.3),
                                ("intermediate.dense", (inner, d), 0.3), ("output.dense", (d, inner), 0.3)):
            w[p + name + ".weight"] = rng.normal(0, sd, shape)  # nn.Linear: (out, in)
            w[p + name + ".bias"] = rng.normal(0, 0.05, shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + name + ".weight"] = 1 + rng.normal(0, 0.1, d)
            w[p + name + ".bias"] = rng.normal(0, 0.1, d)
    # BertForMaskedLM's head (drawn last: the other weights keep their values), stored without
    # the "bert." prefix; the decoder is tied to the word embeddings (no decoder.weight stored)
    head = {"cls.predictions.transform.dense.weight": rng.normal(0, 0.4, (d, d)),
            "cls.predictions.transform.dense.bias": rng.normal(0, 0.1, d),
            "cls.predictions.transform.LayerNorm.weight": 1 + rng.normal(0, 0.1, d),
            "cls.predictions.transform.LayerNorm.bias": rng.normal(0, 0.1, d),
            "cls.predictions.bias": rng.normal(0, 0.5, len(vocab_list))}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    head = {k: v.astype(np.float32) for k, v in head.items()}
    folder = os.path.join(ROOT, "models", "tiny-bert")
    os.makedirs(folder, exist_ok=True)
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=1)
    json.dump({"do_lower_case": True}, open(os.path.join(folder, "tokenizer_config.json"), "w"))
    open(os.path.join(folder, "vocab.txt"), "w").write("\n".join(vocab_list) + "\n")
    write_safetensors(os.path.join(folder, "model.safetensors"), {**{"bert." + k: v for k, v in w.items()}, **head})

    tokens = bert_tokenize(BERT_TEXT, vocab)
    ids = [vocab[t] for t in tokens]
    W = {k: v.astype(np.float64) for k, v in w.items()}
    eps, H = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    dh, n = d // H, len(ids)

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b

    def lin(x, name):
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    erf = np.vectorize(math.erf)
    def run(ablate=(), mode="zero"):
        x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + \
            W["embeddings.token_type_embeddings.weight"][0]
        x = ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
        layers = []
        for l in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{l}."
            q, k, v = lin(x, p + "attention.self.query"), lin(x, p + "attention.self.key"), lin(x, p + "attention.self.value")
            heads, ctx = [], np.zeros((n, d))
            for h in range(H):
                sl = slice(h * dh, (h + 1) * dh)
                s = q[:, sl] @ k[:, sl].T / math.sqrt(dh)
                a = np.exp(s - s.max(-1, keepdims=True))
                a /= a.sum(-1, keepdims=True)
                heads.append(np.round(a, 9).tolist())
                ctx[:, sl] = a @ v[:, sl]
                if (l, h) in ablate:
                    ablated(ctx, sl, mode)
            x = ln(x + lin(ctx, p + "attention.output.dense"), W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
            i = lin(x, p + "intermediate.dense")
            i = 0.5 * i * (1 + erf(i / math.sqrt(2)))
            x = ln(x + lin(i, p + "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
            layers.append(heads)
        # the masked-LM head: dense, gelu, LayerNorm, then the tied word embeddings and the bias
        t = x @ Hd["cls.predictions.transform.dense.weight"].T + Hd["cls.predictions.transform.dense.bias"]
        t = 0.5 * t * (1 + erf(t / math.sqrt(2)))
        t = ln(t, Hd["cls.predictions.transform.LayerNorm.weight"], Hd["cls.predictions.transform.LayerNorm.bias"])
        probs = softmax_last(t @ W["embeddings.word_embeddings.weight"].T + Hd["cls.predictions.bias"])
        return layers, np.round(probs, 12).tolist()

    Hd = {k: v.astype(np.float64) for k, v in head.items()}
    layers, probs = run()
    nxt = [{"ablate": "", "mode": "zero", "probs": probs},
           {"ablate": "1.2", "mode": "zero", "probs": run([(1, 2)])[1]},
           {"ablate": "0.0,0.3", "mode": "mean", "probs": run([(0, 0), (0, 3)], "mean")[1]}]
    golden["bert"] = {"text": BERT_TEXT, "tokens": tokens, "ids": ids, "weights": layers, "next": nxt}
    print(f"BERT: {len(tokens)} tokens: {tokens}")


# --- Llama ---------------------------------------------------------------------------------------
LLAMA_TEXT = "Attention is all you need, but it's a start: 42 €!"
MS = "\u2581"


def llama_tokenizer():
    """A SentencePiece-style BPE: <unk> <s> </s>, 256 byte-fallback tokens, characters, merges."""
    text = MS + CORPUS.replace(" ", MS)
    chars = sorted(set(text) | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ,:'!"))
    word = list(text)
    merges = []
    for _ in range(40):
        counts = {}
        for a, b in zip(word, word[1:]):
            counts[(a, b)] = counts.get((a, b), 0) + 1
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        word = merge_pair(word, *best)
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + chars + [a + b for a, b in merges]
    vocab = list(dict.fromkeys(vocab))
    return {t: i for i, t in enumerate(vocab)}, merges


def llama_tokenize(text, vocab, merges):
    ranks = {m: i for i, m in enumerate(merges)}
    w = [MS] + [MS if c == " " else c for c in text]
    while len(w) > 1:
        best = min(((ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(w, w[1:]))))
        if best[0] == 1 << 30:
            break
        w = merge_pair(w, *merges[best[0]])
    ids, toks = [vocab["<s>"]], ["<s>"]
    for k, sym in enumerate(w):
        if sym in vocab:
            ids.append(vocab[sym])
            shown = sym.replace(MS, " ")
            toks.append(shown[1:] if k == 0 else shown)  # the prepended mark stands for no character of the text
        else:
            for byte in sym.encode():
                ids.append(vocab[f"<0x{byte:02X}>"])
                toks.append(f"<0x{byte:02X}>")
    return ids, toks


def f16_round(a):
    return a.astype(np.float16).astype(np.float32)


def write_safetensors_f16(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = a.astype("<f2").tobytes()
        header[name] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def llama_model(name="tiny-llama", model_type="llama", seed=5, qkv_bias=False, window=0, tied=False, extra=None):
    """A tiny Llama-architecture folder and its golden file. Qwen2 (qkv_bias: q, k, v biases drawn
    after every other weight) and Mistral (window: HF's sliding_window, key j seen by query i when
    i - window < j <= i) are the same code with those differences, as in the papers and configs."""
    vocab, merges = llama_tokenizer()
    cfg = {"model_type": model_type, "architectures": ["LlamaForCausalLM"], "hidden_size": 16, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 24, "max_position_embeddings": 64,
           "vocab_size": len(vocab), "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
           "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": None, "tie_word_embeddings": tied}
    cfg.update(extra or {})
    d, H, KV, inner = 16, 4, 2, 24
    dh = d // H
    rng = np.random.default_rng(seed)
    w = {"model.embed_tokens.weight": rng.normal(0, 0.8, (len(vocab), d)), "model.norm.weight": np.ones(d),
         "lm_head.weight": rng.normal(0, 0.1, (len(vocab), d))}
    for l in range(2):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        w[p + "post_attention_layernorm.weight"] = 1 + rng.normal(0, 0.1, d)
        w[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.6, (H * dh, d))
        w[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.6, (KV * dh, d))
        w[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.4, (KV * dh, d))
        w[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.3, (d, H * dh))
        w[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.3, (inner, d))
        w[p + "mlp.up_proj.weight"] = rng.normal(0, 0.3, (inner, d))
        w[p + "mlp.down_proj.weight"] = rng.normal(0, 0.3, (d, inner))
    w["model.norm.weight"] = 1 + rng.normal(0, 0.1, d)  # drawn last: the other weights keep their values
    w["lm_head.weight"] = rng.normal(0, 1.0, (len(vocab), d))
    if tied:  # the output head is the embeddings: no lm_head.weight stored
        del w["lm_head.weight"]
    if qkv_bias:
        for l in range(2):
            p = f"model.layers.{l}."
            w[p + "self_attn.q_proj.bias"] = rng.normal(0, 0.3, H * dh)
            w[p + "self_attn.k_proj.bias"] = rng.normal(0, 0.3, KV * dh)
            w[p + "self_attn.v_proj.bias"] = rng.normal(0, 0.3, KV * dh)
    w = {k: f16_round(v.astype(np.float32)) for k, v in w.items()}  # stored as F16: the golden uses those values
    folder = os.path.join(ROOT, "models", name)
    os.makedirs(folder, exist_ok=True)
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=1)
    tok = {"version": "1.0",
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": MS},
                                                              {"type": "Replace", "pattern": {"String": " "}, "content": MS}]},
           "pre_tokenizer": None,
           "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "vocab": vocab,
                     "merges": [f"{a} {b}" for a, b in merges]}}
    json.dump(tok, open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    write_safetensors_f16(os.path.join(folder, "model.safetensors"), w)

    ids, toks = llama_tokenize(LLAMA_TEXT, vocab, merges)
    W = {k: v.astype(np.float64) for k, v in w.items()}
    n = len(ids)
    inv = 10000.0 ** (-np.arange(0, dh, 2) / dh)
    ang = np.outer(np.arange(n), inv)
    cos, sin = np.concatenate([np.cos(ang)] * 2, 1), np.concatenate([np.sin(ang)] * 2, 1)

    def rope(x):  # HF apply_rotary_pos_emb: x cos + rotate_half(x) sin
        half = x.shape[1] // 2
        return x * cos + np.concatenate([-x[:, half:], x[:, :half]], 1) * sin

    def rms(x, g):
        return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5) * g

    def run(ablate=(), mode="zero"):
        x = W["model.embed_tokens.weight"][ids]
        layers = []
        for l in range(2):
            p = f"model.layers.{l}."
            a = rms(x, W[p + "input_layernorm.weight"])
            q, k, v = a @ W[p + "self_attn.q_proj.weight"].T, a @ W[p + "self_attn.k_proj.weight"].T, a @ W[p + "self_attn.v_proj.weight"].T
            if qkv_bias:
                q, k, v = q + W[p + "self_attn.q_proj.bias"], k + W[p + "self_attn.k_proj.bias"], v + W[p + "self_attn.v_proj.bias"]
            heads, ctx = [], np.zeros((n, H * dh))
            for h in range(H):
                g = h // (H // KV)
                qh, kh, vh = rope(q[:, h * dh:(h + 1) * dh]), rope(k[:, g * dh:(g + 1) * dh]), v[:, g * dh:(g + 1) * dh]
                s_ = qh @ kh.T / np.sqrt(dh)
                i_, j_ = np.indices((n, n))
                seen = (j_ <= i_) & ((i_ - j_ < window) if window else True)
                s_ = np.where(seen, s_, -np.inf)
                pr = np.exp(s_ - s_.max(-1, keepdims=True))
                pr /= pr.sum(-1, keepdims=True)
                heads.append(np.round(pr, 9).tolist())
                ctx[:, h * dh:(h + 1) * dh] = pr @ vh
                if (l, h) in ablate:
                    ablated(ctx, slice(h * dh, (h + 1) * dh), mode)
            x = x + ctx @ W[p + "self_attn.o_proj.weight"].T
            m = rms(x, W[p + "post_attention_layernorm.weight"])
            gt, up = m @ W[p + "mlp.gate_proj.weight"].T, m @ W[p + "mlp.up_proj.weight"].T
            x = x + (gt / (1 + np.exp(-gt)) * up) @ W[p + "mlp.down_proj.weight"].T
            layers.append(heads)
        # the output head: the final RMSNorm, then lm_head (tie_word_embeddings is false)
        probs = softmax_last(rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight" if tied else "lm_head.weight"].T)
        return layers, np.round(probs, 12).tolist()

    layers, probs = run()
    nxt = [{"ablate": "", "mode": "zero", "probs": probs},
           {"ablate": "0.2", "mode": "zero", "probs": run([(0, 2)])[1]},
           {"ablate": "1.0,1.3", "mode": "mean", "probs": run([(1, 0), (1, 3)], "mean")[1]}]
    json.dump({"text": LLAMA_TEXT, "tokens": toks, "ids": ids, "weights": layers, "next": nxt},
              open(os.path.join(ROOT, "golden", name.replace("-", "_") + ".json"), "w"), separators=(",", ":"))
    print(f"Llama: {len(toks)} tokens: {toks}")
    if name != "tiny-llama":
        return
    # rope_scaling on the same weights: the config changes, and each variant's attention and
    # next-token distribution (tests/golden/tiny_llama_rope.json; the test edits config.json)
    variants = {}
    for label, change in ROPE_VARIANTS.items():
        mpe = change.get("max_position_embeddings", 64)
        freqs, mscale = rope_scaled(dh, 10000.0, change["rope_scaling"], n, mpe)
        ang = np.outer(np.arange(n), freqs)
        cos = np.concatenate([np.cos(ang)] * 2, 1) * mscale
        sin = np.concatenate([np.sin(ang)] * 2, 1) * mscale
        lay_v, probs_v = run()
        variants[label] = {"config": change, "weights": lay_v, "probs": probs_v}
    json.dump(variants, open(os.path.join(ROOT, "golden", "tiny_llama_rope.json"), "w"), separators=(",", ":"))


# RoPE scaling variants for the tiny Llama (the text is 34 tokens; the trained context made short
# enough that every variant changes something)
ROPE_VARIANTS = {
    "linear": {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
    "dynamic": {"rope_scaling": {"type": "dynamic", "factor": 4.0}, "max_position_embeddings": 16},
    "llama3": {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 16}},
    # factor 2 is overridden: with original_max_position_embeddings the stretch is 64 / 16 = 4
    "yarn": {"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16}},
}


def rope_scaled(dim, base, rs, n, max_pos):
    """The frequencies theta_m (m < dim / 2) and the cos/sin factor under a rope_scaling entry.
    linear: position interpolation (Chen et al. 2023), theta / factor. dynamic: NTK-aware base
    base (factor n / L - (factor - 1))^(dim / (dim - 2)) once n exceeds the trained length L.
    llama3: wavelengths longer than L / low_freq_factor slowed by factor, shorter than
    L / high_freq_factor kept, blended in between by s = (L / wavelength - low) / (high - low).
    yarn (Peng et al. 2023, sec. 3.2-3.4): dimensions with fewer than beta_slow turns in L positions
    interpolated, more than beta_fast kept, a linear ramp between; cos and sin scaled by
    0.1 ln(factor) + 1."""
    kind, f = rs.get("rope_type", rs.get("type")), rs["factor"]
    L = rs.get("original_max_position_embeddings", max_pos)
    if kind == "yarn" and "original_max_position_embeddings" in rs:
        f = max_pos / L  # transformers' reading of a yarn config that gives the trained context
    if kind == "dynamic" and n > L:
        base = base * (f * n / L - (f - 1)) ** (dim / (dim - 2))
    theta = base ** (-np.arange(0, dim, 2) / dim)
    if kind == "linear":
        return theta / f, 1.0
    if kind == "dynamic":
        return theta, 1.0
    if kind == "llama3":
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        wl = 2 * np.pi / theta
        s = np.clip((L / wl - lo) / (hi - lo), 0, 1)
        return np.where(wl > L / lo, theta / f, np.where(wl < L / hi, theta, (1 - s) * theta / f + s * theta)), 1.0
    # yarn: the (fractional) dimension index whose frequency makes r turns in L positions
    turns_dim = lambda r: dim * np.log(L / (r * 2 * np.pi)) / (2 * np.log(base))
    lo = max(np.floor(turns_dim(rs.get("beta_fast", 32))), 0)
    hi = min(np.ceil(turns_dim(rs.get("beta_slow", 1))), dim - 1)
    if hi == lo:
        hi += 0.001
    ramp = np.clip((np.arange(dim // 2) - lo) / (hi - lo), 0, 1)
    keep = 1 - ramp  # 1: the frequency as trained (extrapolated), 0: interpolated
    return theta / f * (1 - keep) + theta * keep, rs.get("attention_factor", 0.1 * np.log(f) + 1)


if __name__ == "__main__":
    main()
