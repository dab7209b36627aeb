#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/wordpiece.tokenizer.json: our own BERT-style tokenizer.json
(WordPiece model, BertNormalizer, BertPreTokenizer, BertProcessing) whose vocabulary is built from
the corpus, so that tokenizer_golden.mjs can ask Hugging Face's library for its ids: whole words
that occur twice or more, word beginnings of up to 4 characters, "##" continuations of 1 to 3
characters, every character - less a seeded 4 % of characters, so that some words are [UNK].
Also one non-special added token, "hello world", which the library matches after normalizing."""
import json, os, random, re, unicodedata

here = os.path.dirname(__file__)
golden = os.path.join(here, "..", "golden", "tokenizers")
texts = json.load(open(os.path.join(golden, "corpus.json"), encoding="utf-8"))["texts"]


def rough_normal(t):  # near enough to BertNormalizer's for choosing a vocabulary (ids come from the library)
    t = unicodedata.normalize("NFD", t.lower())
    return "".join(c for c in t if unicodedata.category(c) != "Mn")


words = {}
for t in texts:
    for w in re.findall(r"\w+|[^\w\s]", rough_normal(t)):
        words[w] = words.get(w, 0) + 1
rng = random.Random(12)
chars = sorted({c for w in words for c in w})
dropped = set(rng.sample(chars, len(chars) // 25))
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
seen = set(vocab)


def add(v):
    if v not in seen and not any(c in dropped for c in v.removeprefix("##")):
        seen.add(v)
        vocab.append(v)


for c in chars:
    add(c)
    add("##" + c)
for w, n in sorted(words.items()):
    if n >= 2:
        add(w)
    for k in range(2, min(4, len(w)) + 1):
        add(w[:k])
    for i in range(1, len(w)):
        for k in (2, 3):
            if i + k <= len(w) and rng.random() < 0.5:
                add("##" + w[i:i + k])
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True} for i, t in enumerate(vocab[:5])] +
                    [{"id": len(vocab), "content": "hello world", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": True, "special": False}],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(vocab)}},
}
out = os.path.join(golden, "wordpiece.tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=0)
print(len(vocab), "pieces,", len(dropped), "characters left out ->", out)
