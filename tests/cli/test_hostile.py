#!/usr/bin/python3
"""attnlab-cli against hostile input, the classes a hostile-input campaign found: every case exits
1 with one line on stderr naming what is wrong (never a crash, a hang, a library's internal text or
a silent success), writes nothing, and leaves no temporary file behind.

  test_hostile.py CLI
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

CLI = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
TMP = tempfile.mkdtemp(prefix="attnlab-hostile-")
checks = {"passed": 0, "failed": 0}
started = time.time()


def check(cond, what):
    checks["passed" if cond else "failed"] += 1
    if not cond:
        print("FAIL:", what, flush=True)
    return cond


def run(*args, timeout=60, stdin=None):
    t0 = time.time()
    try:
        p = subprocess.run([CLI, *args], capture_output=True, timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired:
        return None, "", time.time() - t0
    return p.returncode, p.stderr.decode("utf-8", "replace"), time.time() - t0


def refused(what, args, message, timeout=60, stdin=None, out=None):
    """exit 1, one line containing `message`, no internal error, nothing written"""
    rc, err, took = run(*args, timeout=timeout, stdin=stdin)
    if not check(rc is not None, f"{what}: answers within {timeout} s (it hung)"):
        return
    check(rc == 1, f"{what}: exit 1, not {rc} (stderr {err[-300:]!r})")
    check(err.count("\n") == 1 and err.startswith("attnlab-cli: "), f"{what}: one line on stderr ({err[-300:]!r})")
    check(message in err, f"{what}: says {message!r} (got {err.strip()[:300]!r})")
    check("internal error" not in err and "json.exception" not in err, f"{what}: no library text ({err[:200]!r})")
    if out:
        check(not os.path.exists(out), f"{what}: {out} not written")
    leftovers = [f for f in os.listdir(TMP) if ".attnlab-tmp-" in f or ".tmp-" in f]
    check(not leftovers, f"{what}: no temporary files left ({leftovers})")


def session_file(name, content):
    path = os.path.join(TMP, name)
    with open(path, "w" if isinstance(content, str) else "wb") as f:
        f.write(content)
    return path


def session(name, obj):
    return session_file(name, json.dumps(obj))


out = os.path.join(TMP, "out.json")

# --- JSON that nlohmann-json accepts but attnlab must not --------------------------------------
deep = "[" * 100000 + "]" * 100000
refused("session nested 100k deep", ["compute", session_file("deep.json", '{"text": ' + deep + "}"), "-o", out],
        "nested more than 64 levels", out=out)
refused("session whose value is nested 100k deep under model", ["compute", session_file("deep2.json", '{"model": {"d_model": ' + deep + "}}")],
        "nested more than 64 levels")
refused("a number that overflows", ["compute", session_file("big.json", '{"attention": {"normalizer": {"temperature": 1e400}}}')],
        "is too large")
refused("duplicate keys", ["compute", session_file("dup.json", '{"text": "a b", "text": "c d"}')], "appears twice")
refused("duplicate nested keys", ["compute", session_file("dup2.json", '{"model": {"d_model": 8, "d_model": 16}}')], "appears twice")
refused("d_model 2^64 - 1", ["compute", session_file("u64.json", '{"model": {"d_model": 18446744073709551615}}')],
        "model.d_model (18446744073709551615) must be between 1 and 4096")
refused("d_model -2^63", ["compute", session_file("i64.json", '{"model": {"d_model": -9223372036854775808}}')],
        "model.d_model (-9223372036854775808) must be between 1 and 4096")
refused("a global position past int", ["compute", session("g.json", {"attention": {"mask": {"kind": "longformer", "globals": [2**40]}}})],
        "1099511627776")
refused("not an object", ["compute", session_file("arr.json", "[1, 2]")], "must be a JSON object")
refused("invalid UTF-8 in a key", ["compute", session_file("utf.json", b'{"te\xffxt": 1}')], "ill-formed UTF-8")

# --- expressions (attention.mask.expression, attention.score_mod) ------------------------------
def expr(mask=None, score_mod=None, params=None):
    a = {}
    if mask is not None:
        a["mask"] = {"kind": "expression", "expression": mask, "parameters": params or {}}
    if score_mod is not None:
        a["score_mod"] = {"expression": score_mod, "parameters": params or {}}
    return {"text": "one two three four five six", "attention": a}


refused("a mask expression of 1 MB", ["compute", session("e1.json", expr("k <= q" + " + 0" * 250000))],
        "the limit is 4096")
refused("an unknown name, at its character", ["compute", session("e2.json", expr("k <= q and q - k <= windw"))],
        "at character 21")
refused("a mask reading score", ["compute", session("e3.json", expr("score > 0"))], "mask cannot read score")
refused("2000 open parentheses", ["compute", session("e4.json", expr("(" * 2000 + "k"))], "attention.mask.expression")
refused("a parameter that overflows", ["compute", session_file("e5.json", '{"attention": {"mask": {"kind": "expression", '
                                                               '"expression": "k <= w", "parameters": {"w": 1e400}}}}')],
        "is too large")
refused("a parameter that is a string", ["compute", session("e6.json", expr("k <= w", params={"w": "1"}))],
        "must be a number")
refused("a parameter named q", ["compute", session("e7.json", expr("k <= q", params={"q": 1}))], "parameter 'q'")
refused("parameters that are a list", ["compute", session("e8.json", {"attention": {"score_mod": {"expression": "score",
                                                                                               "parameters": [1, 2]}}})],
        "must be an object of named numbers")
refused("invalid UTF-8 in an expression", ["compute", session_file("e9.json", b'{"attention": {"mask": {"kind": '
                                                                         b'"expression", "expression": "k \xff q"}}}')],
        "ill-formed UTF-8")
# a score_mod under an approximate kernel is not in force (no scores to modify), as dropout there
rc, err, _ = run("compute", session("e10.json", {"text": "a b c", "attention": {"score_mod": {"expression": "score * 2"},
                                                                               "kernel": {"kind": "performer"}}}), "-o", out)
check(rc == 0, f"a score_mod under performer computes (not in force there): exit {rc}, {err[-200:]!r}")
if os.path.exists(out):
    check("score_mod" not in json.load(open(out))["session"]["attention"], "... and its Result's session has none")
    os.remove(out)
# NaN everywhere: every cell masked, rows of zeros, exit 0
rc, err, _ = run("compute", session("e11.json", expr("sqrt(-1)", score_mod="score / 0")), "-o", out)
check(rc == 0, f"an expression that is NaN everywhere computes (every cell masked): exit {rc}, {err[-200:]!r}")
if os.path.exists(out):
    r = json.load(open(out))
    w = r["layers"][0]["heads"][0]["weights"]
    check(all(v == 0 for row in w for v in row), "a NaN mask allows nothing: every weight 0")
    os.remove(out)

# --- T5 buckets: every tiny (num_buckets, max_distance) either computes or is refused -----------
crashes = []
for nb in range(1, 9):
    for md in range(1, 9):
        for bidir in (True, False):
            path = session(f"t5-{nb}-{md}-{bidir}.json", {"text": "a b c d e f g h i j k l", "positional": {
                "kind": "t5", "t5_num_buckets": nb, "t5_max_distance": md, "t5_bidirectional": bidir}})
            rc, err, _ = run("compute", path, "-o", os.path.join(TMP, "t5.json"))
            if rc not in (0, 1) or (rc == 1 and err.count("\n") != 1):
                crashes.append((nb, md, bidir, rc))
            if os.path.exists(os.path.join(TMP, "t5.json")):
                os.remove(os.path.join(TMP, "t5.json"))
            os.remove(path)
check(not crashes, f"T5 tiny buckets: exit 0 or 1 with one line, never a crash ({crashes[:5]})")
refused("T5 with 2 buckets", ["compute", session("t5.json", {"positional": {"kind": "t5", "t5_num_buckets": 2}})],
        "leaves no bucket for exact distances")

# --- files that are not files ------------------------------------------------------------------
refused("/dev/zero as a session", ["compute", "/dev/zero"], "not a regular file", timeout=10)
fifo = os.path.join(TMP, "fifo.json")
os.mkfifo(fifo)
refused("a FIFO as a session (nobody writes to it)", ["compute", fifo], "not a regular file", timeout=10)
refused("a directory as a session", ["compute", TMP], "is a directory")
huge = session_file("huge.json", '{"text": "' + "a " * (40 << 20) + '"}')
refused("an 80 MB session file", ["compute", huge], "the limit for a session file is 64.0 MB")
os.remove(huge)

# --- writing: devices and FIFOs are written through, never replaced; links are followed ---------
ok_session = session("ok.json", {"text": "hello there"})
rc, err, _ = run("compute", ok_session, "-o", "/dev/null")
check(rc == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode), f"-o /dev/null: exit 0 and /dev/null is still a device ({err!r})")
got = {}
reader = threading.Thread(target=lambda: got.update(data=open(fifo, "rb").read()))
reader.start()
rc, err, _ = run("compute", ok_session, "-o", fifo, timeout=20)
reader.join(10)
check(rc == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode), f"-o FIFO: exit 0, still a FIFO ({err!r})")
check(json.loads(got.get("data", b"{}").decode()).get("tokens") == ["hello", "there"], "-o FIFO: the reader got the Result")
rc, err, _ = run("compute", ok_session, "-o", fifo, timeout=10)
check(rc == 1 and "nothing is reading this FIFO" in err, f"-o FIFO without a reader: refused at once ({err!r})")
victim = os.path.join(TMP, "victim.txt")
open(victim, "w").write("keep me")
link = os.path.join(TMP, "link.npy")
os.symlink(victim, link)
rc, err, _ = run("export", ok_session, "-o", link)
check(rc == 0 and os.path.islink(link) and open(victim, "rb").read().startswith(b"\x93NUMPY"),
      f"export to a symlink: the link stays, its target gets the file ({err!r})")
ro = os.path.join(TMP, "readonly")
os.mkdir(ro)
os.chmod(ro, 0o500)
if os.geteuid() != 0:  # root writes anywhere
    refused("a folder that cannot be written", ["compute", ok_session, "-o", os.path.join(ro, "x.json")], "cannot write")
os.chmod(ro, 0o700)

# --- sessions that validate but would run for minutes or exhaust memory: refused up front -------
big = {"text": "one two three", "model": {"d_model": 4096, "n_heads": 128, "n_layers": 24}}
refused("d_model 4096 x 128 heads x 24 layers", ["compute", session("huge-model.json", big)], "of it the layers' weights", timeout=10)
refused("Performer with 8192 features on 8192 tokens", ["compute", session("perf.json", {"text": " ".join(f"w{i}" for i in range(8192)),
        "attention": {"mask": {"kind": "none"}, "kernel": {"kind": "performer", "features": 8192}}})], "or fewer features", timeout=10)
words = " ".join(f"w{i % 997}" for i in range(8192))
refused("one head's export at 8192 tokens, 12 heads", ["export", session("e8k.json", {"text": words, "model": {"d_model": 768, "n_heads": 12}}),
                                                       "-o", os.path.join(TMP, "e.npy")], "of memory", timeout=10, out=os.path.join(TMP, "e.npy"))
rc, err, took = run("estimate", session("e8k2.json", {"text": words, "model": {"d_model": 768, "n_heads": 12}}))
est = json.loads(subprocess.run([CLI, "estimate", os.path.join(TMP, "e8k2.json")], capture_output=True).stdout or b"{}")
check(rc == 0 and est.get("bytes", {}).get("export", 0) > est.get("limits", {}).get("bytes", 1e30),
      f"estimate states the export's memory above the limit ({err!r})")

# --- model folders ------------------------------------------------------------------------------
def model_copy(name, edit):
    d = os.path.join(TMP, name)
    shutil.copytree(os.path.join(MODELS, "tiny-gpt2"), d)
    edit(d)
    return d


def edit_config(**changes):
    def f(d):
        cfg = json.load(open(os.path.join(d, "config.json")))
        cfg.update(changes)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    return f


def write(name, content):
    def f(d):
        with open(os.path.join(d, name), "w" if isinstance(content, str) else "wb") as out:
            out.write(content)
    return f


def model(what, edit, message, timeout=20):
    d = model_copy(what.replace(" ", "-").replace("/", "-")[:40], edit)
    refused(f"model: {what}", ["compute", "--model", d, "--text", "hello"], message, timeout=timeout)
    shutil.rmtree(d)


model("config nested 100k deep", write("config.json", '{"model_type": "gpt2", "n_embd": ' + deep + "}"), "nested more than 64 levels")
model("model_type a number", edit_config(model_type=3), "'model_type' must be a string, not 3")
model("negative layer_norm_epsilon", edit_config(layer_norm_epsilon=-1e-5), "'layer_norm_epsilon' must be a number from")
model("zero layer_norm_epsilon", edit_config(layer_norm_epsilon=0), "'layer_norm_epsilon' must be a number from")
model("n_embd a string", edit_config(n_embd="16"), "'n_embd' must be a whole number")
model("n_layer 0", edit_config(n_layer=0), "'n_layer' must be a whole number from 1")
model("vocab_size smaller than the tokenizer", edit_config(vocab_size=10), "past vocab_size 10")
model("a number overflowing in config.json", write("config.json", '{"model_type": "gpt2", "n_embd": 1e400}'), "is too large")
model("duplicate keys in config.json", write("config.json", '{"model_type": "gpt2", "model_type": "bert"}'), "appears twice")
model("an empty merge", write("merges.txt", "#version: 0.2\n\n \n"), "is not two symbols")
model("a merge of three parts", write("merges.txt", "#version: 0.2\na b c\n"), "is not two symbols")
model("a merge outside the vocabulary", write("merges.txt", "#version: 0.2\nzq xj\n"), "is not in the vocabulary")
model("vocab.json nested deep", write("vocab.json", deep), "nested more than 64 levels")
model("vocab.json ids as strings", write("vocab.json", '{"a": "1"}'), "must be a whole number from 0")


def tokenizer_json(merges):
    def f(d):
        vocab = json.load(open(os.path.join(d, "vocab.json")))
        os.remove(os.path.join(d, "vocab.json"))
        os.remove(os.path.join(d, "merges.txt"))
        json.dump({"model": {"type": "BPE", "vocab": vocab, "merges": merges}}, open(os.path.join(d, "tokenizer.json"), "w"))
    return f


model("tokenizer.json with an empty merge string", tokenizer_json([""]), "is not two symbols")
model("tokenizer.json with a null merge", tokenizer_json([None]), "must be \"a b\" or")
model("tokenizer.json with an empty merge pair", tokenizer_json([[]]), "must be \"a b\" or")
model("tokenizer.json with a merge of numbers", tokenizer_json([[1, 2]]), "must be \"a b\" or")


def replace_with_fifo(name):
    def f(d):
        os.remove(os.path.join(d, name))
        os.mkfifo(os.path.join(d, name))
    return f


def replace_with_link(name, target):
    def f(d):
        os.remove(os.path.join(d, name))
        os.symlink(target, os.path.join(d, name))
    return f


model("config.json a FIFO", replace_with_fifo("config.json"), "not a regular file", timeout=10)
model("vocab.json a FIFO", replace_with_fifo("vocab.json"), "not a regular file", timeout=10)
model("model.safetensors a FIFO", replace_with_fifo("model.safetensors"), "not a regular file", timeout=10)
model("/dev/zero as vocab.json", replace_with_link("vocab.json", "/dev/zero"), "not a regular file", timeout=10)
model("/dev/zero as model.safetensors", replace_with_link("model.safetensors", "/dev/zero"), "not a regular file", timeout=10)

# the families of tests/reference/make_tiny_families.py with wrong types and values in config.json
def family(what, base, changes, message):
    d = os.path.join(TMP, what.replace(" ", "-")[:40])
    shutil.copytree(os.path.join(MODELS, base), d)
    edit_config(**changes)(d)
    refused(f"{base}: {what}", ["compute", "--model", d, "--text", "hello"], message)
    shutil.rmtree(d)


family("layer_types a number", "tiny-gemma2", {"layer_types": 5}, "layer_types must be a list of 2 entries")
family("layer_types of unknown kinds", "tiny-gemma2", {"layer_types": ["local", "global"]}, "layer_types[0]")
family("soft cap negative", "tiny-gemma2", {"attn_logit_softcapping": -50}, "'attn_logit_softcapping' must be a number from")
family("query_pre_attn_scalar a string", "tiny-gemma2", {"query_pre_attn_scalar": "256"}, "'query_pre_attn_scalar' must be a number")
family("partial_rotary_factor a string", "tiny-phi3", {"partial_rotary_factor": "half"}, "'partial_rotary_factor' must be a number")
family("sliding_window 1e400", "tiny-phi3", {"sliding_window": 1e300}, "'sliding_window' must be a whole number")
family("use_parallel_residual a string", "tiny-gpt-neox", {"use_parallel_residual": "yes"}, "'use_parallel_residual' must be")
family("rotary_pct 0", "tiny-gpt-neox", {"rotary_pct": 0}, "'rotary_pct' must be a number from")

# generate and patch: texts that cannot run, one line each
gpt2_dir = os.path.join(MODELS, "tiny-gpt2")
for what, args, message in [
        ("generate: no tokens", ["generate", "--model", gpt2_dir, "--text", ""], "no tokens"),
        ("generate: BERT", ["generate", "--model", os.path.join(MODELS, "tiny-bert"), "--text", "hi"], "bidirectional"),
        ("patch: texts of different lengths", ["patch", "--model", gpt2_dir, "--text", "the cat", "--corrupted", "a b c d e"],
         "must match"),
        ("patch: token A of two tokens", ["patch", "--model", gpt2_dir, "--text", "the cat", "--corrupted", "the end",
                                          "--token-a", "the cat"], "not one"),
        ("patch: position past the text", ["patch", "--model", gpt2_dir, "--text", "the cat", "--corrupted", "the end",
                                           "--position", "99"], "position 99"),
        ("patch: metric unknown", ["patch", "--model", gpt2_dir, "--text", "a", "--corrupted", "b", "--metric", "kl"],
         "logit-diff or prob")]:
    refused(what, args, message)


def truncate_safetensors(d):
    p = os.path.join(d, "model.safetensors")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])


model("truncated safetensors", truncate_safetensors, "lie outside the")


def hidden_gap(d):
    """Two tensors that overlap, hidden behind an empty one between them in offset order."""
    p = os.path.join(d, "model.safetensors")
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                         "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}).encode()
    open(p, "wb").write(len(header).to_bytes(8, "little") + header + bytes(16))


model("overlap hidden behind an empty tensor", hidden_gap, "overlap")

shutil.rmtree(TMP, ignore_errors=True)
print(f"hostile: {time.time() - started:.1f} s")
print(f"{checks['passed']} passed, {checks['failed']} failed")
sys.exit(1 if checks["failed"] else 0)
