#!/usr/bin/python3
"""Writes the fuzz seed corpora from the repository's own files (rerun when they change):
fuzz/corpus/safetensors: the tiny models' safetensors files;
fuzz/corpus/session: assets/sessions/*.json;
fuzz/corpus/tokenizer: tokenizer files of tests/models in fuzz_tokenizer.cpp's framing
(format byte, then the files and a text separated by NUL bytes)."""
import glob
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
