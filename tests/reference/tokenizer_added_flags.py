#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/added_flags.tokenizer.json: our own small byte-level BPE whose
added tokens carry every flag combination (lstrip, rstrip, single_word) and a TemplateProcessing
post-processor, so tokenizer_golden.mjs can ask Hugging Face's library what each flag does."""
import json, os

def bytes_to_unicode():  # GPT-2's printable mapping of the 256 bytes (Radford et al. 2019, encoder.py)
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

sym = bytes_to_unicode()
vocab = {sym[b]: i for i, b in enumerate(range(256))}
merges = []
for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("o", "r"), ("Ġ", "w"), ("or", "l"), ("Ġw", "orl")]:
    merges.append([a, b]); vocab.setdefault(a + b, len(vocab))
added = []
for k, (content, l, r, sw) in enumerate([("<|plain|>", False, False, False), ("<L>", True, False, False),
                                         ("<R>", False, True, False), ("<LR>", True, True, False),
                                         ("word", False, False, True), ("<sw>", True, True, True), ("<s>", False, False, False)]):
    added.append({"id": 1000 + k, "content": content, "single_word": sw, "lstrip": l, "rstrip": r,
                  "normalized": False, "special": True})
tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
      "post_processor": {"type": "TemplateProcessing",
                         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                         "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"Sequence": {"id": "B", "type_id": 1}}],
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [1006], "tokens": ["<s>"]}}},
      "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
      "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges}}
out = os.path.join(os.path.dirname(__file__), "..", "golden", "tokenizers", "added_flags.tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(tj, f, ensure_ascii=False)
print(out)
