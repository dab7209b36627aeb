#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/unigram.tokenizer.json: our own Unigram tokenizer.json in the
shape T5's and ALBERT's files have (NFKC, WhitespaceSplit then Metaspace, a TemplateProcessing that
appends </s>), whose pieces are the corpus's "\u2581"-prefixed words and their substrings of up to
6 characters, each scored by the log of its relative frequency (plus a seeded jitter, so that
ties are rare), so tokenizer_golden.mjs can ask Hugging Face's library for the ids. Characters
seen once are left out (they become <unk>); the 256 <0xNN> pieces serve the byte_fallback variant."""
import collections, json, math, os, random, re, unicodedata

here = os.path.dirname(__file__)
golden = os.path.join(here, "..", "golden", "tokenizers")
texts = json.load(open(os.path.join(golden, "corpus.json"), encoding="utf-8"))["texts"]
MS = "\u2581"
rng = random.Random(5)
words = collections.Counter(MS + w for t in texts for w in unicodedata.normalize("NFKC", t).split())
chars = collections.Counter(c for w, n in words.items() for c in w for _ in range(n))
subs = collections.Counter()
for w, n in words.items():
    for i in range(len(w)):
        for k in range(1, 7):
            if i + k <= len(w):
                subs[w[i:i + k]] += n
pieces = {p: n for p, n in subs.items() if all(chars[c] >= 2 for c in p) and (n >= 2 or len(p) == 1)}
total = sum(pieces.values())
vocab = [["<unk>", 0.0], ["<pad>", 0.0], ["</s>", 0.0]] + [[f"<0x{b:02X}>", 0.0] for b in range(256)]
vocab += [[p, math.log(n / total) - 0.3 * len(p) + rng.uniform(-0.05, 0.05)] for p, n in sorted(pieces.items())]
special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
            "special": True} for i, t in enumerate(["<unk>", "<pad>", "</s>"])]
tok = {
    "version": "1.0",
    "added_tokens": special,
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"},
                                                       {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": MS, "prepend_scheme": "always", "split": True}]},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    "decoder": {"type": "Metaspace", "replacement": MS, "prepend_scheme": "always", "split": True},
    "model": {"type": "Unigram", "unk_id": 0, "vocab": vocab, "byte_fallback": False},
}
out = os.path.join(golden, "unigram.tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=0)
print(len(vocab), "pieces ->", out)
