#!/usr/bin/python3
"""CLI tests: valid sessions produce the documented keys; invalid ones exit non-zero with a
one-line reason and leave no output file. Usage: test_cli.py PATH/TO/attnlab-cli"""
import json
import os
import subprocess
import sys
import tempfile

CLI = sys.argv[1]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what)


def run(*args, stdin=None):
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, timeout=120)


tmp = tempfile.mkdtemp(prefix="attnlab-cli-")

# --- valid sessions: every example under assets/sessions, and stdin -----------------------------
examples = sorted(f for f in os.listdir(os.path.join(ROOT, "assets", "sessions")) if f.endswith(".json"))
check(len(examples) >= 3, "at least three example sessions in assets/sessions")
for name in examples:
    out = os.path.join(tmp, name + ".result.json")
    p = run("compute", os.path.join(ROOT, "assets", "sessions", name), "-o", out)
    check(p.returncode == 0, f"{name}: exit 0 (stderr: {p.stderr.decode()!r})")
    if p.returncode != 0:
        continue
    r = json.load(open(out))
    for key in ("tokens", "layers", "session", "n_tokens", "d_model", "n_heads", "d_head"):
        check(key in r, f"{name}: key '{key}'")
    n = len(r["tokens"])
    check(r["n_tokens"] == n and n > 0, f"{name}: n_tokens matches tokens")
    check(len(r["layers"]) == r["session"]["model"]["n_layers"], f"{name}: one entry per layer")
    layer = r["layers"][0]
    check(set(layer) >= {"input", "output", "heads", "head_similarity"}, f"{name}: layer keys")
    check(len(layer["head_similarity"]) == r["n_heads"], f"{name}: head_similarity is (n_heads, n_heads)")
    check(len(layer["input"]) == n and len(layer["input"][0]) == r["d_model"], f"{name}: input is (n, d_model)")
    check(len(layer["output"]) == n and len(layer["output"][0]) == r["d_model"], f"{name}: output is (n, d_model)")
    check(len(layer["heads"]) == r["n_heads"], f"{name}: one entry per head")
    kind = r["session"]["attention"]["mask"]["kind"]
    causal = kind == "causal" or r["session"]["attention"]["mask"].get("causal", False)
    for h, head in enumerate(layer["heads"]):
        check(set(head) >= {"q", "k", "v", "logits", "weights", "allowed", "output", "kv_head", "metrics"},
              f"{name}: head {h} keys")
        kernel = r["session"]["attention"].get("kernel", {}).get("kind", "exact")
        check(("approximation" in head) == (kernel != "exact"), f"{name}: head {h} approximation iff kernel not exact")
        if "approximation" in head:
            a = head["approximation"]
            check(a["kernel"] == kernel and a["max_weight_error"] >= 0 and a["output_error"] >= 0,
                  f"{name}: head {h} approximation errors")
            if kernel == "flash":
                check(a["max_weight_error"] < 1e-5 and a["output_error"] < 1e-5, f"{name}: flash is exact")
        check(set(head["metrics"]) == {"entropy", "entropy_normalized", "mean_distance", "max_weight", "first_token",
                                       "density"}, f"{name}: head {h} metrics keys")
        n_keys = r["n_keys"]
        check(n_keys == (len(r["key_tokens"]) or n), f"{name}: n_keys matches the key tokens")
        for m, rows in (("q", n), ("k", n_keys), ("v", n_keys), ("output", n)):
            check(len(head[m]) == rows and all(len(row) == r["d_head"] for row in head[m]),
                  f"{name}: head {h} {m} is ({rows}, d_head)")
        check(all(len(row) == n_keys for row in head["weights"]), f"{name}: head {h} weights are (n, n_keys)")
        for i in range(n):
            any_allowed = any(head["allowed"][i])
            check(abs(sum(head["weights"][i]) - (1 if any_allowed else 0)) < 1e-5,
                  f"{name}: head {h} row {i} sums to 1 (0 when fully masked)")
            for j in range(n_keys):
                allowed = head["allowed"][i][j]
                if kind in ("none", "causal"):
                    check(allowed == (j <= i or not causal), f"{name}: head {h} allowed[{i}][{j}]")
                elif causal:
                    check(not allowed or j <= i, f"{name}: head {h} allowed[{i}][{j}] respects causal")
                if kind == "padding":
                    keys = r["key_tokens"] or r["tokens"]
                    check(allowed == (keys[j] != "[PAD]"), f"{name}: head {h} padding key {j}")
                check((head["logits"][i][j] is None) == (not allowed), f"{name}: head {h} logits[{i}][{j}] null iff masked")
                if not allowed:
                    check(head["weights"][i][j] == 0, f"{name}: head {h} masked weight [{i}][{j}] is 0")

p = run("compute", "-", stdin=b'{"text": "from standard input", "model": {"d_model": 8, "n_heads": 2}}')
check(p.returncode == 0 and json.loads(p.stdout)["tokens"] == ["from", "standard", "input"], "compute - reads stdin")

# --- options ---------------------------------------------------------------------------------------
p = run("options")
check(p.returncode == 0, "options exits 0")
opts = json.loads(p.stdout)
paths = {o["path"]: o for o in opts["options"]}
for path in ("text", "tokenizer.kind", "model.d_model", "model.n_heads", "model.seed", "positional.kind",
             "attention.score.kind", "attention.normalizer.temperature", "attention.mask.kind"):
    check(path in paths, f"options lists {path}")
check(paths["attention.mask.kind"]["choices"][:2] == ["none", "causal"], "options: mask choices start none, causal")
for kind in ("padding", "sliding_window", "causal_sliding_window", "dilated", "longformer", "bigbird", "block_local",
             "strided", "fixed", "lsh", "custom"):
    check(kind in paths["attention.mask.kind"]["choices"], f"options: mask kind {kind}")
for kind in ("none", "sinusoidal", "learned", "rope", "alibi", "t5"):
    check(kind in paths["positional.kind"]["choices"], f"options: positional kind {kind}")
check(paths["attention.mask.window"]["applies_when"].startswith("attention.mask.kind in "), "options: applies_when")
check(paths["model.d_model"]["min"] == 1 and paths["model.d_model"]["max"] == 4096, "options: d_model range")
check(paths["attention.normalizer.temperature"]["min"] == 0.01, "options: temperature range")

# --- invalid input: one line on stderr, non-zero exit, no output file ------------------------------
bad = {
    "indivisible heads": (b'{"model": {"d_model": 100, "n_heads": 3}}', "d_model 100 is not divisible by 3 heads"),
    "unknown mask": (b'{"attention": {"mask": {"kind": "diagonal"}}}', "attention.mask.kind 'diagonal' is not one of none, causal"),
    "bad temperature": (b'{"attention": {"normalizer": {"temperature": 0}}}', "temperature (0) must be between 0.01 and 100"),
    "empty text": (b'{"text": "  "}', "the text has no tokens"),
    "invalid utf-8": (b'{"text": "ab\\udcff"}', "not valid JSON"),
    "raw invalid utf-8": (b'{"text": "ab\xff"}', "not valid JSON"),
    "not json": (b'{"text": ', "not valid JSON"),
    "unknown key": (b'{"txt": "a"}', "unknown key 'txt'"),
    "wrong type": (b'{"model": {"d_model": 1.5}}', "model.d_model must be a whole number"),
    "too many tokens": (json.dumps({"text": "a " * 9000}).encode(), "the limit is 8192"),
}
for what, (content, message) in bad.items():
    src = os.path.join(tmp, "bad.json")
    out = os.path.join(tmp, "bad.result.json")
    open(src, "wb").write(content)
    p = run("compute", src, "-o", out)
    try:
        err = p.stderr.decode("utf-8")
    except UnicodeDecodeError:
        err = p.stderr.decode("utf-8", "replace")
        check(False, f"{what}: stderr is valid UTF-8 ({p.stderr!r})")
    check(p.returncode != 0, f"{what}: non-zero exit")
    check(message in err, f"{what}: stderr says {message!r} (got {err!r})")
    check(err.count("\n") == 1 and err.startswith("attnlab-cli: "), f"{what}: one line on stderr")
    check(not os.path.exists(out), f"{what}: no output file")
    check(p.returncode < 128 and p.returncode > 0, f"{what}: exited, did not crash (rc {p.returncode})")

p = run("compute", os.path.join(tmp, "missing.json"))
check(p.returncode == 1 and b"cannot open" in p.stderr, "missing file: cannot open")
p = run("compute", tmp)
check(p.returncode == 1 and b"is a directory" in p.stderr, "directory: is a directory")
p = run("frobnicate")
check(p.returncode == 2, "unknown command: exit 2")
p = run("compute", os.path.join(ROOT, "assets", "sessions", examples[0]), "-o", "/nonexistent-dir/x.json")
check(p.returncode == 1 and b"cannot write" in p.stderr, "unwritable output: cannot write")

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
