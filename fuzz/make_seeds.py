#!/usr/bin/python3
"""Writes the fuzz seed corpora from the repository's own files (rerun when they change):
fuzz/corpus/safetensors: the tiny models' safetensors files;
fuzz/corpus/session: assets/sessions/*.json;
fuzz/corpus/tokenizer: tokenizer files of tests/models in fuzz_tokenizer.cpp's framing
(format byte, then the files and a text separated by NUL bytes), and small hand-written
tokenizer.json files for each pipeline part (HAND below)."""
import glob
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
TEXTS = [b"The cat sat on the mat.", "caf\u00e9 \u65e5\u672c\u8a9e 42\u20ac  x".encode(), b"  \n\t", b"don't stop"]


def fresh(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


d = fresh("safetensors")
for p in sorted(glob.glob(os.path.join(ROOT, "tests/models/*/*.safetensors"))):
    shutil.copy(p, os.path.join(d, os.path.basename(os.path.dirname(p)) + "-" + os.path.basename(p)))

d = fresh("session")
for p in sorted(glob.glob(os.path.join(ROOT, "assets/sessions/*.json"))):
    shutil.copy(p, os.path.join(d, os.path.basename(p)))

d = fresh("tokenizer")
k = 0
for m in sorted(glob.glob(os.path.join(ROOT, "tests/models/*/"))):
    read = lambda f: open(os.path.join(m, f), "rb").read()
    for t in TEXTS[:2]:
        seeds = []
        if os.path.exists(os.path.join(m, "tokenizer.json")):
            seeds.append(b"\x00" + read("tokenizer.json") + b"\x00" + t)
        if os.path.exists(os.path.join(m, "vocab.json")):
            seeds.append(b"\x01" + read("vocab.json") + b"\x00" + read("merges.txt") + b"\x00" + t)
        if os.path.exists(os.path.join(m, "vocab.txt")):
            seeds.append(b"\x06" + read("vocab.txt") + b"\x00" + t)
        for s in seeds:
            open(os.path.join(d, f"seed-{k:03d}"), "wb").write(s)
            k += 1
for t in TEXTS:
    open(os.path.join(d, f"seed-{k:03d}"), "wb").write(b"\x03[PAD]\x00" + t)
    k += 1

# small tokenizer.json files, one per pipeline part: added tokens and flags, normalizers,
# pre-tokenizers, the three models
MS = "\u2581"
_printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))  # GPT-2's byte symbols
BYTES = {chr(b if b in _printable else 256 + sorted(set(range(256)) - set(_printable)).index(b)): b for b in range(256)}
def added(*specs):
    return [{"id": i, "content": c, "single_word": sw, "lstrip": l, "rstrip": r, "normalized": n, "special": not n}
            for i, (c, sw, l, r, n) in enumerate(specs, start=100)]
HAND = [
    {"added_tokens": added(("<s>", False, False, False, False), ("<|x|>", True, True, True, False)),
     "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
     "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                  {"Sequence": {"id": "A", "type_id": 0}}],
                        "special_tokens": {"<s>": {"id": "<s>", "ids": [100], "tokens": ["<s>"]}}},
     "model": {"type": "BPE", "ignore_merges": True, "vocab": BYTES | {"ab": 256, "Ġa": 257}, "merges": ["a b", "Ġ a"]}},
    {"added_tokens": added(("[CLS]", False, False, False, False), ("[SEP]", False, False, False, False),
                           ("hello world", False, False, False, True)),
     "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None,
                    "lowercase": True},
     "pre_tokenizer": {"type": "BertPreTokenizer"},
     "post_processor": {"type": "BertProcessing", "cls": ["[CLS]", 100], "sep": ["[SEP]", 101]},
     "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 5,
               "vocab": {t: i for i, t in enumerate(["[UNK]", "a", "b", "##a", "##b", "ab", "日", ",", "é"])}}},
    {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": " {2,}"},
                                                                          "content": " "}]},
     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                                                             {"type": "Metaspace", "replacement": MS, "prepend_scheme": "always",
                                                              "split": True}]},
     "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": True,
               "vocab": [["<unk>", 0.0], [MS, -1.0], ["a", -2.0], ["b", -2.5], [MS + "a", -1.5], ["ab", -1.2], ["<0x41>", 0.0]]}},
    {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
                                                        {"type": "Strip", "strip_left": True, "strip_right": True},
                                                        {"type": "Prepend", "prepend": MS}, {"type": "Nmt"}]},
     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Punctuation", "behavior": "Isolated"},
                                                             {"type": "Digits", "individual_digits": True},
                                                             {"type": "Whitespace"}, {"type": "CharDelimiterSplit", "delimiter": "-"}]},
     "model": {"type": "BPE", "byte_fallback": True, "fuse_unk": True, "unk_token": "<unk>", "continuing_subword_prefix": "##",
               "end_of_word_suffix": "</w>", "vocab": {"<unk>": 0, "a": 1, "##b": 2, "ab": 3, "a</w>": 4, "##b</w>": 5,
                                                       "ab</w>": 6, "<0x61>": 7},
               "merges": ["a ##b", "a ##b</w>"]}},
    # what attnlab-cli train writes: WordLevel over whole pieces, an <unk>
    {"added_tokens": added(("<unk>", False, False, False, False)), "normalizer": None,
     "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": False},
     "model": {"type": "WordLevel", "unk_token": "<unk>", "vocab": {"a": 0, "b": 1, " ": 2, "<unk>": 100}}},
]
for k2, tj in enumerate(HAND):
    for t in TEXTS[:2]:
        open(os.path.join(d, f"hand-{k2}-{len(t)}"), "wb").write(b"\x00" + json.dumps(tj, ensure_ascii=False).encode() + b"\x00" + t)
open(os.path.join(d, "hand-vocab-txt"), "wb").write(b"\x1a[UNK]\n[CLS]\n[SEP]\na\n##b\n\xc3\xa9\n\x00CAF\xc3\x89 ab, \xe6\x97\xa5")
