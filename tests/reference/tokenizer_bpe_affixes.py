#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/bpe_affixes.tokenizer.json: our own BPE over code points with a
continuing_subword_prefix ("##" on every symbol after a word's first) and an end_of_word_suffix
("</w>" on its last, as CLIP's), trained here on the corpus by the plain BPE procedure (Sennrich et
al. 2016: merge the most frequent adjacent pair, 600 times), so tokenizer_golden.mjs can ask
Hugging Face's library what these options do. The 256 <0xNN> byte tokens are in the vocabulary
for the byte_fallback variant; characters seen fewer than 3 times are left out ([UNK])."""
import collections, json, os, re

here = os.path.dirname(__file__)
golden = os.path.join(here, "..", "golden", "tokenizers")
texts = json.load(open(os.path.join(golden, "corpus.json"), encoding="utf-8"))["texts"]
PREFIX, SUFFIX = "##", "</w>"

counts = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]+", t.lower()))
chars = collections.Counter(c for w, n in counts.items() for c in w for _ in range(n))
keep = {c for c, n in chars.items() if n >= 3}


def symbols(w):
    s = [c if i == 0 else PREFIX + c for i, c in enumerate(w)]
    s[-1] += SUFFIX
    return s


words = {w: symbols(w) for w in counts if all(c in keep for c in w)}
vocab = ["[UNK]"] + [f"<0x{b:02X}>" for b in range(256)]
seen = set(vocab)
for s in words.values():
    for x in s:
        if x not in seen:
            seen.add(x), vocab.append(x)
merges = []
for _ in range(600):
    pairs = collections.Counter()
    for w, s in words.items():
        for a, b in zip(s, s[1:]):
            pairs[a, b] += counts[w]
    if not pairs:
        break
    (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
    new = a + b[len(PREFIX):]  # the library's rule: b's prefix is dropped from the merged token
    merges.append(f"{a} {b}")
    if new not in seen:
        seen.add(new), vocab.append(new)
    for w, s in words.items():
        out, i = [], 0
        while i < len(s):
            if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                out.append(new)
                i += 2
            else:
                out.append(s[i])
                i += 1
        words[w] = out
tok = {
    "version": "1.0",
    "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": PREFIX,
              "end_of_word_suffix": SUFFIX, "fuse_unk": False, "byte_fallback": False,
              "vocab": {t: i for i, t in enumerate(vocab)}, "merges": merges},
}
out = os.path.join(golden, "bpe_affixes.tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=0)
print(len(vocab), "tokens,", len(merges), "merges ->", out)
