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
                                       "density", "sink_mass"}, f"{name}: head {h} metrics keys")
        hm = head["metrics"]
        check(hm["first_token"] - 1e-6 <= hm["sink_mass"] <= 1 + 1e-6, f"{name}: head {h} sink mass holds token 0's weight")
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
    "too many tokens": (json.dumps({"text": "a " * 140000}).encode(), "the limit is 131072"),
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

# --- render: figures without a display ------------------------------------------------------------
import numpy as np
from PIL import Image

VIRIDIS_TOP = (253, 231, 37)  # the last entry of assets/colormaps/viridis.csv, rounded
example = os.path.join(ROOT, "assets", "sessions", "example.json")
no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def render(session, *args):
    png, lay = os.path.join(tmp, "fig.png"), os.path.join(tmp, "fig.json")
    for f in (png, lay):
        if os.path.exists(f):
            os.remove(f)
    p = subprocess.run([CLI, "render", session, "-o", png, "--layout", lay, *args], capture_output=True, timeout=120,
                       env=no_display)
    if p.returncode != 0:
        return p, None, None
    return p, Image.open(png).convert("RGB"), json.load(open(lay))


def cell_px(img, rect, shape, i, j, corner=False):
    x, y, w, h = rect
    cw, ch = w / shape[1], h / shape[0]
    return img.getpixel((int(x + (j + (0.15 if corner else 0.5)) * cw), int(y + (i + (0.15 if corner else 0.5)) * ch)))


r = json.loads(run("compute", example).stdout)
weights = [np.array(h["weights"], dtype=float) for h in r["layers"][0]["heads"]]
p, img, lay = render(example, "--view", "heads", "--no-numbers")
check(p.returncode == 0, f"render heads without DISPLAY exits 0 ({p.stderr.decode()!r})")
if img:
    bg = tuple(lay["background"])
    check(len(lay["panels"]) == r["n_heads"], "render heads: one panel per head")
    for k, (rect, shape) in enumerate(zip(lay["panels"], lay["shapes"])):
        n = shape[0]
        wrong = [(i, j) for i in range(n) for j in range(n) if (cell_px(img, rect, shape, i, j) == bg) != (j > i)]
        check(not wrong, f"render heads: panel {k} is background exactly above the diagonal (causal), wrong at {wrong[:4]}")
p, img, lay = render(example, "--view", "heads", "--range", "per_row")
if check(img is not None, "render --range per_row"):
    for k, (rect, shape) in enumerate(zip(lay["panels"], lay["shapes"])):
        top = [cell_px(img, rect, shape, i, int(np.argmax(weights[k][i])), corner=True) for i in range(shape[0])]
        check(all(c == VIRIDIS_TOP for c in top), f"per_row: every row's largest weight has viridis' top colour (head {k}: {top[:3]})")
p, one, lay1 = render(example, "--view", "detail", "--head", "2")
p, two, lay2 = render(example, "--view", "detail", "--head", "2", "--scale", "2")
if check(one is not None and two is not None, "render detail at 1x and 2x"):
    check(abs(two.width - 2 * one.width) <= 0.01 * two.width and abs(two.height - 2 * one.height) <= 0.01 * two.height,
          f"2x is twice the size: {one.size} -> {two.size}")
p, img, lay = render(example, "--view", "heads", "--light")
check(img is not None and img.getpixel((2, 2)) == (255, 255, 255) and tuple(lay["background"]) == (255, 255, 255),
      "--light: white background")
for session in ("example.json", "bigbird-rope.json", "alibi-causal-window.json", "three-blocks-gqa.json"):
    for view in ("heads", "detail", "model", "mask", "positional", "gallery", "similarity"):
        p, img, lay = render(os.path.join(ROOT, "assets", "sessions", session), "--view", view)
        if session == "example.json" and view == "positional":  # sinusoidal: encoding + similarity
            check(img is not None and len(lay["panels"]) == 2, "positional view of sinusoidal: encoding and similarity")
        check(p.returncode == 0 and img is not None and img.width > 100,
              f"render {session} --view {view} ({p.stderr.decode()!r})")
gqa = json.load(open(os.path.join(ROOT, "assets", "sessions", "three-blocks-gqa.json")))
p, img, lay = render(os.path.join(ROOT, "assets", "sessions", "three-blocks-gqa.json"), "--view", "model")
check(img is not None and len(lay["panels"]) == gqa["model"]["n_layers"] * gqa["model"]["n_heads"] > 1, f"model view: layers x heads panels ({lay and len(lay['panels'])})")
for step in ("input", "q", "k", "v", "scores", "scaled", "biased", "masked", "weights", "context", "output"):
    p, img, lay = render(example, "--view", "step", "--step", step, "--head", "1")
    check(p.returncode == 0 and img is not None, f"render step {step}")
render_bad = {
    ("--view", "sideways"): "unknown view 'sideways'",
    ("--view", "detail", "--head", "9"): "head 9 out of range",
    ("--view", "heads", "--layer", "3"): "layer 3 out of range",
    ("--view", "heads", "--scale", "3"): "scale must be 1, 2 or 4",
    ("--view", "heads", "--colormap", "jet"): "unknown colormap 'jet'",
    ("--view", "step", "--step", "bogus"): "no step 'bogus'",
}
for args, message in render_bad.items():
    p, img, _ = render(example, *args)
    err = p.stderr.decode()
    check(p.returncode == 1 and message in err and err.count("\n") == 1, f"render {args}: {message!r} (got {err!r})")
    check(not os.path.exists(os.path.join(tmp, "fig.png")), f"render {args}: no PNG left")
p, img, _ = render(os.path.join(ROOT, "assets", "sessions", "cross-attention.json"), "--view", "positional")
check(p.returncode == 1 and b"self-attention" in p.stderr, "positional view under cross-attention: a reason")

# --- export: one matrix as .npy, CSV, JSON, TSV ---------------------------------------------------------
logits = np.array([[(-np.inf if v is None else v) for v in row] for row in r["layers"][0]["heads"][1]["logits"]])
for ext in ("npy", "csv", "json", "tsv"):
    out = os.path.join(tmp, "m." + ext)
    for matrix, want in (("weights", weights[1]), ("masked", logits)):
        p = run("export", example, "--matrix", matrix, "--head", "1", "-o", out)
        if not check(p.returncode == 0, f"export {matrix} .{ext} ({p.stderr.decode()!r})"):
            continue
        if ext == "npy":
            got = np.load(out)
            check(got.dtype == np.float32, ".npy is float32")
        elif ext == "json":
            j = json.load(open(out))
            check(j["shape"] == [11, 11] and j["rows"][0] == "The" and j["cols"][1] == "cat", "JSON shape and labels")
            got = np.array([[(-np.inf if v is None else v) for v in row] for row in j["values"]])
        else:
            lines = open(out).read().splitlines()
            sep = "," if ext == "csv" else "\t"
            check(lines[0].split(sep)[1:3] == ["The", "cat"] and lines[1].split(sep)[0] == "The", f".{ext} header and row labels")
            got = np.array([[float(v) for v in line.split(sep)[1:]] for line in lines[1:]])
        check(got.shape == want.shape and np.array_equal(np.isinf(got), np.isinf(want))
              and np.allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-6),
              f"export {matrix} .{ext} holds the Result's values (-inf where masked)")
p = run("export", example, "-o", os.path.join(tmp, "m.xlsx"))
check(p.returncode == 1 and b"must end in .csv, .npy, .json or .tsv" in p.stderr, "export: unknown extension")
p = run("export", example, "--matrix", "nope", "-o", os.path.join(tmp, "m.csv"))
check(p.returncode == 1 and b"unknown matrix 'nope'" in p.stderr, "export: unknown matrix")

# --- a Hugging Face model folder (tests/models, made by tests/reference/make_tiny_models.py) -------
golden = json.load(open(os.path.join(ROOT, "tests", "golden", "tiny_gpt2.json")))
p = run("compute", "--model", os.path.join(ROOT, "tests", "models", "tiny-gpt2-sharded"), "--text", golden["text"])
check(p.returncode == 0, f"compute --model exits 0 ({p.stderr.decode()!r})")
if p.returncode == 0:
    r = json.loads(p.stdout)
    check(r["tokens"] == golden["tokens"], "compute --model: the BPE tokens")
    w = np.array(r["layers"][1]["heads"][1]["weights"])
    check(np.allclose(w, np.array(golden["models"]["tiny-gpt2-sharded"][1][1]), atol=1e-5), "compute --model: layer 1 head 1 weights")
# next_tokens: the top k per position, p from softmax of the final logits (numpy's, in the golden)
gpt2 = os.path.join(ROOT, "tests", "models", "tiny-gpt2")
for ablate, mode in [("", "zero"), ("1.0", "zero"), ("0.1,1.1", "mean")]:
    args = ["compute", "--model", gpt2, "--text", golden["text"], "--top-k", "4"]
    if ablate:
        args += ["--ablate", ablate, "--ablate-mode", mode]
    p = run(*args)
    check(p.returncode == 0, f"compute --model --ablate '{ablate}' exits 0 ({p.stderr.decode()!r})")
    if p.returncode != 0:
        continue
    r = json.loads(p.stdout)
    ref = np.array(next(c["probs"] for c in golden["next"] if c["ablate"] == ablate))
    nt = r["next_tokens"]
    check(len(nt) == len(golden["tokens"]) and all(len(row) == 4 for row in nt), "next_tokens: 4 per position")
    check(all(set(e) == {"id", "token", "p"} for row in nt for e in row), "next_tokens: id, token, p")
    check(all(abs(e["p"] - ref[i][e["id"]]) <= 1e-5 for i, row in enumerate(nt) for e in row), f"next_tokens p = numpy's ('{ablate}')")
    check(all([e["id"] for e in row] == list(np.argsort(-ref[i], kind="stable")[:4]) for i, row in enumerate(nt)),
          f"next_tokens: numpy's top 4, most likely first ('{ablate}')")
    if ablate:
        check(r.get("intervention", "").startswith("ablate " + ablate.replace(",", ", ")), f"intervention says the ablation: {r.get('intervention')!r}")
    else:
        check("intervention" not in r, "no intervention key without one")
# --mask-sink 4: StreamingLLM's sinks taken away in every layer; numpy's forward with them masked
sink = json.load(open(os.path.join(ROOT, "tests", "golden", "sink_masked.json")))
p = run("compute", "--model", gpt2, "--text", sink["text"], "--top-k", "4", "--mask-sink", str(sink["sinks"]))
if check(p.returncode == 0, f"compute --model --mask-sink exits 0 ({p.stderr.decode()!r})"):
    r = json.loads(p.stdout)
    ref = np.array(sink["masked"]["probs"])
    check(all(abs(e["p"] - ref[i][e["id"]]) <= 1e-5 for i, row in enumerate(r["next_tokens"]) for e in row),
          "--mask-sink: next_tokens p = numpy's with the first 4 keys masked")
    w = np.array(r["layers"][1]["heads"][0]["weights"])
    check(np.abs(w[4:, :4]).max() == 0 and np.allclose(w, np.array(sink["masked"]["weights"][1][0]), atol=1e-5),
          "--mask-sink: the first 4 keys weigh exactly 0 past them; layer 1 head 0 = numpy's")
    check("k >= sinks" in r.get("intervention", ""), f"the intervention names the mask ({r.get('intervention')!r})")
p = run("compute", os.path.join(ROOT, "assets", "sessions", "example.json"), "--mask-sink", "4")
check(p.returncode == 1 and b"--model" in p.stderr and p.stderr.count(b"\n") == 1, f"--mask-sink without --model: one line ({p.stderr!r})")
for args, want in [(["--ablate", "5.0"], b"does not exist"), (["--ablate", "x"], b"LAYER.HEAD"),
                   (["--ablate", "0.0", "--ablate-mode", "half"], b"zero, mean or corrupted"),
                   (["--ablate", "0.0", "--ablate-mode", "corrupted"], b"go together")]:
    p = run("compute", "--model", gpt2, "--text", "hi", *args)
    check(p.returncode == 1 and want in p.stderr and p.stderr.count(b"\n") == 1, f"compute --model {args}: one line ({p.stderr!r})")
# tokenize --model: the ids the model runs on (the golden's, from the numpy reference's BPE)
for model, file in (("tiny-gpt2", "tiny_gpt2.json"), ("tiny-llama", "tiny_llama.json"), ("tiny-bert", "tiny_bert.json")):
    g = json.load(open(os.path.join(ROOT, "tests", "golden", file)))
    p = run("tokenize", "--model", os.path.join(ROOT, "tests", "models", model), "--text", g["text"])
    t = json.loads(p.stdout) if p.returncode == 0 else {}
    check(set(t) == {"tokens", "ids"} and t["ids"] == g["ids"] and t["tokens"] == g["tokens"],
          f"tokenize --model {model}: the reference's ids and tokens ({p.stderr!r})")
p = run("tokenize", "--model", os.path.join(tmp, "nothing-here"), "--text", "hi")
check(p.returncode == 1 and p.stderr.count(b"\n") == 1, "tokenize on a non-model: one line")

# patch: the activation-patching grids of tests/golden/patching.json (numpy on tiny-gpt2)
pg = json.load(open(os.path.join(ROOT, "tests", "golden", "patching.json")))
for grid, metric, key in (("heads", "logit-diff", "heads_diff"), ("heads", "prob", "heads_prob"),
                          ("residual", "logit-diff", "residual_diff")):
    p = run("patch", "--model", gpt2, "--text", pg["clean"], "--corrupted", pg["corrupted"], "--grid", grid, "--metric", metric)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    want = np.array(pg[key])
    got = np.array(j.get("values", []))
    check(got.shape == want.shape and np.abs(got - want).max() <= 1e-4,
          f"patch --grid {grid} --metric {metric}: numpy's grid ({p.stderr!r})")
    check(j.get("token_a", {}).get("id") == pg["token_a"] and j.get("position") == len(pg["tokens"]) - 1,
          f"patch --grid {grid}: token A is the clean run's top token, read at the last position")
    check(j.get("cols") == ("head" if grid == "heads" else "position") and j.get("rows") == "layer", "patch: rows and cols named")
for grid, key in (("heads", "heads_diff_denoising"), ("residual", "residual_diff_denoising")):
    p = run("patch", "--model", gpt2, "--text", pg["clean"], "--corrupted", pg["corrupted"], "--grid", grid,
            "--direction", "denoising")
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    got, want = np.array(j.get("values", [])), np.array(pg[key])
    check(got.shape == want.shape and np.abs(got - want).max() <= 1e-4 and j.get("direction") == "denoising",
          f"patch --grid {grid} --direction denoising: numpy's grid ({p.stderr!r})")
p = run("patch", "--model", gpt2, "--text", pg["clean"], "--corrupted", pg["corrupted"], "--token-a", " cat", "--token-b", " end")
j = json.loads(p.stdout) if p.returncode == 0 else {}
check(j.get("token_a", {}).get("token") == " cat" and j.get("token_b", {}).get("token") == " end", "patch --token-a/--token-b by text")
for args, want in [(["--corrupted", "the"], b"must match"), (["--corrupted", pg["corrupted"], "--token-a", "the cat"], b"not one"),
                   (["--corrupted", pg["corrupted"], "--grid", "rows"], b"heads or residual"),
                   (["--corrupted", pg["corrupted"], "--position", "500"], b"position 500"),
                   (["--corrupted", pg["corrupted"], "--direction", "sideways"], b"noising or denoising")]:
    p = run("patch", "--model", gpt2, "--text", pg["clean"], *args)
    check(p.returncode == 1 and want in p.stderr and p.stderr.count(b"\n") == 1, f"patch {args}: one line ({p.stderr!r})")
p = run("compute", "--model", gpt2, "--text", pg["clean"], "--ablate", "1.0", "--ablate-mode", "corrupted", "--corrupted",
        pg["corrupted"], "--top-k", "3")
r = json.loads(p.stdout) if p.returncode == 0 else {}
check("from the corrupted text" in r.get("intervention", "") and
      all(abs(e["p"] - pg["ablate_corrupted_1.0"][i][e["id"]]) <= 1e-5 for i, row in enumerate(r.get("next_tokens", [])) for e in row)
      and len(r.get("next_tokens", [])) == len(pg["tokens"]),
      "compute --ablate-mode corrupted: numpy's next tokens with head 1.0 from the corrupted run")

# generate: numpy's greedy tokens (tests/golden/generation.json), with the KV cache and without
gg = json.load(open(os.path.join(ROOT, "tests", "golden", "generation.json")))
for extra in ([], ["--no-cache"]):
    p = run("generate", "--model", gpt2, "--text", gg["text"], "--tokens", str(len(gg["generated"])), *extra)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    got = j.get("generated", [])
    check([e["id"] for e in got] == [e["id"] for e in gg["generated"]] and
          all(abs(a["p"] - b["p"]) <= 1e-5 for a, b in zip(got, gg["generated"])) and j.get("cached") == (not extra),
          f"generate {extra}: numpy's greedy tokens and probabilities ({p.stderr!r})")
    check(j.get("ids", [])[:len(gg["ids"])] == gg["ids"] and j.get("text", "").startswith(gg["text"]) and
          j.get("text") == gg["text"] + "".join(e["token"] for e in got), "generate: ids and text continue the prompt")
p = run("generate", "--model", gpt2, "--text", "the cat", "--tokens", "3", "--sample", "--seed", "5", "--temperature", "1.2")
q = run("generate", "--model", gpt2, "--text", "the cat", "--tokens", "3", "--sample", "--seed", "5", "--temperature", "1.2",
        "--no-cache")
check(p.returncode == 0 and json.loads(p.stdout)["ids"] == json.loads(q.stdout)["ids"], "generate --sample: the same draws with and without the cache")
p = run("generate", "--model", os.path.join(ROOT, "tests", "models", "tiny-bert"), "--text", "the cat")
check(p.returncode == 1 and b"bidirectional" in p.stderr and p.stderr.count(b"\n") == 1, f"generate on BERT: one line ({p.stderr!r})")

# --logit-lens: [layer][position] of {"id", "token", "p"}, numpy's top token of each layer
p = run("compute", "--model", gpt2, "--text", golden["text"], "--logit-lens")
lens = json.loads(p.stdout).get("logit_lens") if p.returncode == 0 else None
check(lens is not None and len(lens) == 2 and all(len(row) == len(golden["tokens"]) for row in lens),
      "compute --logit-lens: layers x positions")
if lens:
    check(all(abs(e["p"] - max(golden["lens"][l][i])) <= 1e-5 for l, row in enumerate(lens) for i, e in enumerate(row)),
          "logit_lens p = numpy's top probability per layer and position")

# --sample: the last position's distribution at temperature T, cut by top-k then top-p (the token
# crossing p kept), renormalised; the draw is the first uniform of stream "sample.next" (the
# engine's generator, as tests/reference/make_golden.py writes it) through its cumulative sum
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from make_golden import stream_key, uniforms  # noqa: E402
last = np.array(golden["next"][0]["probs"][-1])
for T, k, top_p, seed in [(1.0, 0, 1.0, 0), (0.7, 0, 0.6, 5), (1.5, 3, 1.0, 9), (0.5, 5, 0.9, 11)]:
    p = run("compute", "--model", gpt2, "--text", golden["text"], "--sample", "--temperature", str(T),
            "--sample-top-k", str(k), "--top-p", str(top_p), "--seed", str(seed))
    smp = json.loads(p.stdout).get("sample") if p.returncode == 0 else None
    q = last ** (1 / T)
    q /= q.sum()
    order = np.argsort(-q, kind="stable")
    keep = k if k else len(q)
    if top_p < 1:
        c = np.cumsum(q[order[:keep]] / q[order[:keep]].sum())
        keep = int(np.searchsorted(c, top_p) + 1)
    want = q[order[:keep]] / q[order[:keep]].sum()
    ok = smp is not None and [e["id"] for e in smp["distribution"]] == list(order[:keep]) and \
        np.allclose([e["p"] for e in smp["distribution"]], want, atol=1e-5)
    check(ok, f"--sample T={T} top-k={k} top-p={top_p}: numpy's distribution ({len(want)} tokens)")
    u = uniforms(stream_key(seed, "sample.next"), 1)[0]
    cum = np.cumsum(want)
    drawn = int(order[min(int(np.searchsorted(cum, u, side="right")), keep - 1)])
    near = np.min(np.abs(cum - u)) < 1e-5  # u on a boundary: float noise may pick the neighbour
    check(smp is not None and (smp["token"]["id"] == drawn or near), f"--sample seed {seed}: the draw is token {drawn}")
p = run("compute", "--model", gpt2, "--text", "hi", "--sample", "--top-p", "0")
check(p.returncode != 0 and p.stderr.count(b"\n") == 1, "--top-p 0 refused in one line")

# render and export take --model (and its ablation) as well as a session
npy = os.path.join(tmp, "model-w.npy")
p = run("export", "--model", gpt2, "--text", golden["text"], "--layer", "1", "--head", "1", "-o", npy)
check(p.returncode == 0 and np.allclose(np.load(npy), np.array(golden["models"]["tiny-gpt2"][1][1]), atol=1e-5),
      f"export --model: layer 1 head 1 weights = numpy's ({p.stderr!r})")
png = os.path.join(tmp, "model-heads.png")
p = run("render", "--model", gpt2, "--text", golden["text"], "--view", "model", "-o", png, "--ablate", "1.0")
check(p.returncode == 0 and os.path.getsize(png) > 1000, f"render --model --ablate writes the PNG ({p.stderr!r})")
allw = os.path.join(tmp, "model-all.npy")
p = run("export", "--model", gpt2, "--text", golden["text"], "--all", "-o", allw)
a = np.load(allw) if p.returncode == 0 else None
n_tok = len(golden["tokens"])
check(a is not None and a.shape == (2, 2, n_tok, n_tok) and a.dtype == np.float32 and
      all(np.allclose(a[l, h], np.array(golden["models"]["tiny-gpt2"][l][h]), atol=1e-5) for l in range(2) for h in range(2)),
      f"export --model --all: [layers, heads, n, n] = numpy's weights ({p.stderr!r})")
p = run("export", "--model", gpt2, "--text", "hi", "--all", "-o", os.path.join(tmp, "all.csv"))
check(p.returncode == 1 and b".npy" in p.stderr, "export --all to a .csv: one line")
for cmd in (["render", "-o", png], ["export", "-o", npy]):
    p = run(*cmd)
    check(p.returncode == 1 and b"--model DIR" in p.stderr and p.stderr.count(b"\n") == 1, f"{cmd[0]} with neither: one line")
p = run("export", os.path.join(ROOT, "assets", "sessions", "three-blocks-gqa.json"), "--model", gpt2, "-o", npy)
check(p.returncode == 1 and b"not both" in p.stderr, "export with a session and --model: one line")
p = run("compute", os.path.join(ROOT, "assets", "sessions", "three-blocks-gqa.json"), "--ablate", "0.0")
check(p.returncode == 1 and b"need --model" in p.stderr, "--ablate without --model: one line")
p = run("compute", "--model", os.path.join(tmp, "nothing-here"), "--text", "hi")
check(p.returncode == 1 and b"config.json: cannot open" in p.stderr and p.stderr.count(b"\n") == 1, "compute --model on a non-model: one line")

# --- blocks: the mask's block map for block-sparse kernels ----------------------------------------
def session_path(name, obj):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


words = " ".join(f"w{i}" for i in range(1024))
p = run("blocks", session_path("blocks-causal.json", {"text": words, "attention": {"mask": {"kind": "causal"}}}))
check(p.returncode == 0, f"blocks on a causal session: exit 0 ({p.stderr.decode()!r})")
if p.returncode == 0:
    b = json.loads(p.stdout)
    for key in ("n_queries", "n_keys", "block", "rows", "cols", "full", "partial", "empty", "allowed_cells",
                "dense_cells", "block_sparse_cells", "block_sparse_saving", "density", "map"):
        check(key in b, f"blocks: key '{key}'")
    # by hand: 8 x 8 blocks of 128, 28 under the diagonal, 8 on it
    check((b["full"], b["partial"], b["empty"]) == (28, 8, 28), f"blocks: causal 1024 / 128 is 28 full, 8 partial, 28 empty ({b})")
    check(b["allowed_cells"] == 1024 * 1025 // 2 and abs(b["block_sparse_saving"] - 28 / 64) < 1e-12,
          "blocks: allowed cells and the saving, by hand")
    check(b["map"][0] == "P......." and b["map"][7] == "FFFFFFFP", f"blocks: the map's rows ({b['map'][:2]})")
# a mask expression of h, per head; block sizes of 1 equal the mask itself
expr = {"text": "a b c d e f", "model": {"d_model": 8, "n_heads": 2},
        "attention": {"mask": {"kind": "expression", "expression": "k <= q and (h == 1 or k == q)"}}}
p0 = run("blocks", session_path("blocks-h.json", expr), "--block", "1", "--head", "0")
p1 = run("blocks", session_path("blocks-h.json", expr), "--block", "1", "--head", "1")
check(p0.returncode == 0 and p1.returncode == 0, "blocks --head on an expression of h")
if p0.returncode == 0 and p1.returncode == 0:
    m0, m1 = json.loads(p0.stdout).get("map"), json.loads(p1.stdout).get("map")
    check(m0 == ["".join("F" if j == i else "." for j in range(6)) for i in range(6)], f"blocks: head 0 is the diagonal ({m0})")
    check(m1 == ["".join("F" if j <= i else "." for j in range(6)) for i in range(6)], f"blocks: head 1 is causal ({m1})")
p = run("blocks", session_path("blocks-lsh.json", {"attention": {"mask": {"kind": "lsh"}}}))
check(p.returncode == 1 and b"lsh" in p.stderr and p.stderr.count(b"\n") == 1, "blocks on lsh: one line, exit 1")
p = run("blocks", session_path("blocks-head.json", {"attention": {"mask": {"kind": "causal"}}}), "--head", "9")
check(p.returncode == 1 and b"--head 9" in p.stderr, "blocks --head out of range: one line, exit 1")

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
