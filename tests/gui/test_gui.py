#!/usr/bin/python3
"""GUI tests through the real window under Xvfb.

  test_gui.py causal  APP   screenshots of a causal and a bidirectional session: above each
                            head's diagonal the cells show the background colour, on and below
                            it they do not (and with no mask, no cell is background).
  test_gui.py typing  APP   xdotool selects the text box and types a new sentence: the heatmaps
                            get one row per new token (state dump and pixels agree).
  test_gui.py invalid APP   emptying the text shows the problem and keeps the last good picture;
                            a corrupt --session file with --screenshot exits 1 with one line.
  test_gui.py hover   APP   hovering a cell reports its (head, query, key) and draws the tooltip;
                            clicking a head opens it large.
  test_gui.py masks   APP   three masks chosen in the mask combo with the mouse: each screenshot
                            shows its pattern, and the screenshots differ exactly where the
                            patterns differ; then a custom mask is painted and erased in the
                            Mask window opened from the View menu.
  test_gui.py family  APP   GQA, cross-attention and an approximation chosen with the mouse:
                            K/V heads grouped, heatmaps n_q x n_k with the context, Performer's
                            error shown and its picture different; flash is exact and its tile
                            view steps with Next.
  test_gui.py explore APP   magma and per-row ranges checked in pixels against the weights, log
                            scale, the model view's tiles and click, digits in big cells (and none
                            when off), wheel zoom, the step-by-step pipeline (Next, Previous, a
                            step by name; -inf cells blank), the line view isolating a query.
  test_gui.py compare APP   Compare A / B: B edited through the side panel, B - A red and blue
                            where it should be, the hovered cell outlined in every panel.
  test_gui.py files   APP   undo/redo of typing, Ctrl+S through the browser (atomic, recent), a
                            corrupt file refused, another opened; the next start restores it.
  test_gui.py classroom APP lessons with Next/Previous, F1 help, F5 presentation (light, large,
                            controls hidden), Ctrl+= font scale.
  test_gui.py model   APP   --model opens a tiny GPT-2 folder (causal pattern on screen); File >
                            Open model folder loads a BF16 one through the browser; typing runs it.
  test_gui.py compare_models APP  one text through two model folders (--model-b) in Compare A / B.
  test_gui.py lens    APP   the Logit lens view: the CLI's --logit-lens tokens, coloured by probability.
  test_gui.py export  APP   Ctrl+C copies a head as TSV (read back with xclip), PNG export at
                            1x and 2x, a .npy export read by numpy.

The app writes --state-file: where each head's heatmap is drawn, in framebuffer pixels.
"""
import json
import os
import signal
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODE, APP = sys.argv[1], os.path.abspath(sys.argv[2])
W, H = 1280, 800
TMP = tempfile.mkdtemp(prefix="attnlab-gui-")
# preferences, recent files and the restored session live here, never in the user's own config
CONFIG = os.path.join(TMP, "config")
os.environ["XDG_CONFIG_HOME"] = CONFIG
checks = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        checks["passed"] += 1
        if os.environ.get("ATTNLAB_GUI_VERBOSE"):
            print("ok:", what, flush=True)
    else:
        checks["failed"] += 1
        print("FAIL:", what, flush=True)
    return cond


def cell_colours(png, state):
    """Per head, the colour at the centre of every cell (i, j)."""
    img = Image.open(png).convert("RGB")
    out = []
    for h in state["heads"]:
        cw, ch = h["w"] / h["n_k"], h["h"] / h["n_q"]
        grid = [[img.getpixel((int(h["x"] + (j + 0.5) * cw), int(h["y"] + (i + 0.5) * ch)))
                 for j in range(h["n_k"])] for i in range(h["n_q"])]
        out.append(grid)
    return out


def check_pattern(png, state, causal, label):
    bg = tuple(state["background"])
    heads = cell_colours(png, state)
    check(len(heads) == len(state["heads"]) > 0, f"{label}: heads drawn")
    for h, grid in enumerate(heads):
        n = len(grid)
        bad_above = [(i, j) for i in range(n) for j in range(i + 1, n) if (grid[i][j] == bg) != causal]
        bad_below = [(i, j) for i in range(n) for j in range(0, i + 1) if grid[i][j] == bg]
        check(not bad_above, f"{label}: head {h} cells above the diagonal {'are' if causal else 'are not'} background "
                             f"{bg} (wrong at {bad_above[:5]})")
        check(not bad_below, f"{label}: head {h} cells on/below the diagonal are coloured (background at {bad_below[:5]})")


def screenshot_run(session, name):
    png, st = os.path.join(TMP, name + ".png"), os.path.join(TMP, name + ".json")
    p = subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {W}x{H}x24", APP, "--session", session,
                        "--screenshot", png, "--frames", "3", "--no-mouse", "--state-file", st,
                        "--width", str(W), "--height", str(H)], capture_output=True, timeout=120)
    check(p.returncode == 0, f"{name}: app exits 0 (stderr {p.stderr.decode()!r})")
    return png, json.load(open(st))


class Display:
    """An Xvfb server and the app on it, driven with xdotool."""

    def __init__(self, *app_args, env=None, size=None):
        # An explicit display number that nothing answers on, then our Xvfb on it, accepted once
        # it answers and is still alive (another server on that number - a lock file elsewhere,
        # an abstract socket - must not be mistaken for ours).
        import random
        extra = env or {}
        self.w, self.h = size or (W, H)
        self.xvfb = None
        for _ in range(20):
            num = random.randint(100, 900)
            if os.path.exists(f"/tmp/.X{num}-lock") or os.path.exists(f"/tmp/.X11-unix/X{num}"):
                continue
            probe_env = dict(os.environ, DISPLAY=f":{num}", **extra)
            probe = lambda: subprocess.run(["xdotool", "getmouselocation"], env=probe_env, capture_output=True).returncode == 0
            if probe():
                continue  # somebody else's server
            xvfb = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", f"{self.w}x{self.h}x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(50):
                if xvfb.poll() is not None:
                    break
                if probe():
                    time.sleep(0.3)
                    if xvfb.poll() is None:
                        self.xvfb, self.display, self.env = xvfb, f":{num}", probe_env
                    break
                time.sleep(0.1)
            if self.xvfb:
                break
            xvfb.kill()
            xvfb.wait()
        if not self.xvfb:
            raise RuntimeError("no Xvfb display could be started")
        self.state_path = os.path.join(TMP, "state.json")
        if os.path.exists(self.state_path):
            os.remove(self.state_path)  # a previous app's state must not be read as this one's
        self.stderr_path = os.path.join(TMP, f"app-stderr-{time.time():.3f}.txt")
        self.app = subprocess.Popen([APP, "--state-file", self.state_path, "--width", str(self.w), "--height", str(self.h),
                                     *app_args], env=self.env, cwd=TMP, stderr=open(self.stderr_path, "w"))

    def state(self):
        try:
            return json.load(open(self.state_path))
        except (OSError, ValueError):
            return None

    def poll(self, pred, timeout):
        """The first state that satisfies pred within timeout seconds, or None."""
        end = time.time() + timeout
        while time.time() < end:
            s = self.state()
            if s and pred(s):
                return s
            time.sleep(0.1)
        return None

    def frames(self, n=3, timeout=20):
        """Waits until the app has drawn n more frames (it draws at least 10 a second when idle),
        so that an action has been seen and answered: event-driven, not a fixed pause."""
        s = self.state()
        if not s or "frame" not in s:
            time.sleep(0.3)
            return
        f0 = s["frame"]
        self.poll(lambda t: t.get("frame", 0) >= f0 + n, timeout)

    def wait_for(self, pred, what, timeout=60):
        s = self.poll(pred, timeout)
        if s:
            return s
        err = open(self.stderr_path).read()[-3000:] if os.path.exists(self.stderr_path) else ""
        check(False, f"timed out waiting for {what}; app exit code {self.app.poll()}, display {self.display}, "
                     f"stderr {err!r}; last state: {json.dumps(self.state())[:400]}")
        return None

    def xdo(self, *args):
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=30)
        self.frames(3)  # the app has seen it

    def click(self, x, y):
        self.xdo("mousemove", str(int(x)), str(int(y)))
        self.xdo("click", "1")

    def chord(self, keys):
        # held ~0.1 s: long enough for ImGui 1.86's per-frame key state, shorter than its key
        # repeat delay (0.275 s), so Ctrl+V pastes once
        subprocess.run(["xdotool", "keydown", keys], env=self.env, check=True, timeout=30)
        time.sleep(0.1)
        self.xdo("keyup", keys)

    def screenshot(self, name):
        png = os.path.join(TMP, name + ".png")
        subprocess.run(["import", "-window", "root", png], env=self.env, check=True, timeout=30)
        return png

    def quit(self):
        """Ctrl+Q: the app exits by itself (saving its preferences)."""
        self.chord("ctrl+q")
        try:
            return self.app.wait(15)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        self.app.terminate()
        try:
            self.app.wait(10)
        except subprocess.TimeoutExpired:
            self.app.kill()
        self.xvfb.terminate()
        self.xvfb.wait(10)


def on_example(test):
    """Runs test(d, s) on a fresh window once the built-in example is shown, then closes it."""
    def run():
        d = Display()
        try:
            s = d.wait_for(settled, "the example session")
            if s:
                test(d, s)
        finally:
            d.close()
    return run


def settled(s):
    return not s["busy"] and "heads" in s and s.get("shown_generation") == s["posted"]


def test_causal():
    png, st = screenshot_run(os.path.join(HERE, "causal.json"), "causal")
    check(st["mask"] == "causal" and len(st["heads"]) == 3, "causal session shown with 3 heads")
    check(st["n_tokens"] == 10 and all(h["n_q"] == 10 for h in st["heads"]), "10 rows per head")
    check_pattern(png, st, causal=True, label="causal")
    png, st = screenshot_run(os.path.join(HERE, "bidirectional.json"), "bidirectional")
    check(st["mask"] == "none", "bidirectional session shown")
    check_pattern(png, st, causal=False, label="no mask")


@on_example
def test_typing(d, s):
    n0 = s["n_tokens"]
    check(n0 == 11 and all(h["n_q"] == 11 for h in s["heads"]), f"example has 11 rows (got {n0})")
    x, y, w, h = s["text_box"]
    d.click(x + w / 2, y + h / 2)
    d.chord("ctrl+a")
    d.xdo("type", "--delay", "40", "Short one now")
    s = d.wait_for(lambda s: settled(s) and s["n_tokens"] == 3, "3 tokens after typing")
    if not s:
        return
    check(s["tokens"] == ["Short", "one", "now"], f"tokens typed: {s['tokens']}")
    check(all(h["n_q"] == 3 and h["n_k"] == 3 for h in s["heads"]), "every head has 3 rows and 3 columns")
    d.xdo("mousemove", "5", str(H - 5))  # no tooltip over the heatmaps
    d.frames(4)
    s = d.wait_for(settled, "settled after moving the mouse")
    png = d.screenshot("typed")
    check_pattern(png, s, causal=True, label="after typing")


@on_example
def test_quantity(d, s):
    """Show: logits. The heads' logits images are made only while logits are shown (an edit at 2048
    tokens spent a third of its picture pooling them); switching asks for them from the Result in
    hand: the heads are drawn again in the logits' colours, masked cells still background, and
    switching back gives the weights' picture again."""
    def cells(name):
        d.xdo("mousemove", "5", str(H - 5))
        d.frames(4)
        st = d.wait_for(settled, f"settled ({name})")
        return st, cell_colours(d.screenshot(name), st)
    st, weights = cells("quantity-weights")
    check(st["quantity"] == "weights" and not st["shown_logits"], "weights shown, no logits images made")
    s = reveal(d, "show.logits")
    d.click(*center(s["widgets"]["show.logits"]))
    st = d.wait_for(lambda s: settled(s) and s["quantity"] == "logits" and s["shown_logits"], "the logits pictured")
    if not st:
        return
    st, logits = cells("quantity-logits")
    check_pattern(d.screenshot("quantity-logits"), st, causal=True, label="logits")
    below = [(h, i, j) for h in range(len(weights)) for i in range(len(weights[h])) for j in range(i + 1)]
    changed = sum(weights[h][i][j] != logits[h][i][j] for h, i, j in below) / len(below)
    check(changed > 0.5, f"the heads are drawn in the logits' colours ({changed:.2f} of the allowed cells changed)")
    s = reveal(d, "show.weights")
    d.click(*center(s["widgets"]["show.weights"]))
    st = d.wait_for(lambda s: settled(s) and s["quantity"] == "weights", "weights again")
    if not st:
        return
    st, again = cells("quantity-weights-again")
    same = sum(weights[h][i][j] == again[h][i][j] for h, i, j in below) / len(below)
    check(same > 0.98, f"back to weights: the first picture again ({same:.3f} of the cells alike)")


def test_detail_fits():
    """At 1024 x 768 the open head's window, first opened, lies inside the screen: its cells and
    colour bar are not cut off at the bottom (it was 760 x 760 at y 80)."""
    d = Display("--head", "1", size=(1024, 768))
    try:
        s = d.wait_for(lambda s: settled(s) and "detail.cells" in s["widgets"], "the open head at 1024 x 768")
        if s:
            x, y, w, h = s["widgets"]["detail.cells"]
            check(w > 100 and h > 100 and x >= 0 and y >= 0 and x + w <= 1024 and y + h <= 768,
                  f"the open head's cells inside 1024 x 768: {x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}")
    finally:
        d.close()


def test_invalid():
    for content, reason in [('{"model": {"d_model": 100, "n_heads": 3}}', "d_model 100 is not divisible by 3 heads"),
                            ('{"text": "cut off', "not valid JSON"),
                            ('{"text": "bad \xff"}', "not valid JSON")]:
        bad = os.path.join(TMP, "bad.json")
        open(bad, "w", encoding="latin-1").write(content)
        p = subprocess.run(["xvfb-run", "-a", APP, "--session", bad, "--screenshot", os.path.join(TMP, "bad.png")],
                           capture_output=True, timeout=60)
        err = p.stderr.decode()
        check(p.returncode == 1, f"{content!r} with --screenshot exits 1 (got {p.returncode})")
        check(reason in err and err.count("\n") == 1, f"one-line reason {reason!r}: {err!r}")
        check(not os.path.exists(os.path.join(TMP, "bad.png")), "no screenshot written for a bad session")
    d = Display()
    try:
        s = d.wait_for(settled, "the example session")
        if not s:
            return
        x, y, w, h = s["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.chord("BackSpace")
        s = d.wait_for(lambda s: s["problems"] and not s["busy"], "a problem after emptying the text")
        if not s:
            return
        check(any("no tokens" in p for p in s["problems"]), f"problem says there are no tokens: {s['problems']}")
        check(s["n_tokens"] == 11 and len(s["heads"]) == 4, "the last good picture (11 tokens, 4 heads) stays")
        d.xdo("type", "--delay", "40", "Back again")
        s = d.wait_for(lambda s: settled(s) and s["n_tokens"] == 2 and not s["problems"], "recovery after typing")
        check(s is not None, "typing valid text clears the problem")
    finally:
        d.close()


@on_example
def test_hover(d, s):
    h = s["heads"][1]
    cw, ch = h["w"] / h["n_k"], h["h"] / h["n_q"]
    x, y = h["x"] + 1.5 * cw, h["y"] + 2.5 * ch  # head 1, query 2, key 1
    before = d.screenshot("before-hover")
    d.xdo("mousemove", str(int(x)), str(int(y)))
    s = d.wait_for(lambda s: s["hover"]["head"] == 1, "hover reported on head 1")
    if not s:
        return
    check(s["hover"] == {"head": 1, "query": 2, "key": 1}, f"hovered cell is (1, 2, 1): {s['hover']}")
    after = d.screenshot("hover")
    a, b = Image.open(before).convert("RGB"), Image.open(after).convert("RGB")
    # the tooltip appears beside the pointer: pixels change to the right of and below it
    region = (int(x) + 10, int(y) + 10, min(W, int(x) + 300), min(H, int(y) + 80))
    changed = sum(1 for p, q in zip(a.crop(region).getdata(), b.crop(region).getdata()) if p != q)
    check(changed > 500, f"a tooltip is drawn beside the pointer ({changed} pixels changed)")
    d.xdo("click", "1")
    s = d.wait_for(lambda s: s["detail_head"] == 1, "head 1 opened large")
    check(s is not None, "clicking head 1 opens its large view")
    d.screenshot("detail")


def center(rect):
    x, y, w, h = rect
    return x + w / 2, y + h / 2


def double_click(d, widget, pred, what, tries=3):
    """Double-clicks `widget` until pred holds. Dear ImGui 1.86 reads the mouse once a frame: two
    clicks that land in one slow frame (llvmpipe on a loaded machine: CI failed so once) are one
    click, so the clicks are 150 ms apart (the double-click time is 300 ms) and tried again while
    the widget is still there and pred does not hold."""
    for i in range(tries):
        s = d.state()
        if not s or widget not in s["widgets"]:
            break
        d.click(*center(s["widgets"][widget]))
        d.xdo("click", "--repeat", "2", "--delay", "150", "1")
        s = d.poll(pred, 6)
        if s:
            return s
    return d.wait_for(pred, what)


def reveal(d, path):
    """Scrolls the side panel with the mouse wheel until widget `path` is on screen."""
    s = d.wait_for(lambda s: path in s["widgets"], f"the {path} control")
    for _ in range(30):
        x, y, w, h = s["widgets"][path]
        if y >= 40 and y + h <= H - 10:
            return s
        d.xdo("mousemove", "150", str(H // 2))
        d.xdo("click", "5" if y + h > H - 10 else "4")
        # the next state drawn after the scroll (a loaded machine may take longer than one pause)
        moved = d.poll(lambda t: t["widgets"].get(path) != [x, y, w, h], timeout=3)
        if not moved:  # the panel scrolls no further: this is as visible as it gets
            return d.state()
        s = moved
    return s


def choose(d, path, choice):
    """Opens the combo `path` and clicks `choice` (rects from the state dump)."""
    s = reveal(d, path)
    d.click(*center(s["widgets"][path]))
    item = f"{path}={choice}"
    s = d.wait_for(lambda s: item in s["widgets"], f"the open combo listing {choice}")
    d.frames(3)  # and where it stays: read again before clicking
    s = d.wait_for(lambda s: item in s["widgets"], f"the open combo listing {choice}")
    d.click(*center(s["widgets"][item]))


def head0_pixels(png, state):
    """Per cell of head 0: is it the background colour?"""
    bg = tuple(state["background"])
    grid = cell_colours(png, {"heads": [state["heads"][0]]})[0]
    return [[c == bg for c in row] for row in grid]


@on_example
def test_masks(d, s):
    shots = {}
    for kind in ("sliding_window", "strided", "block_local"):
        choose(d, "attention.mask.kind", kind)
        s = d.wait_for(lambda s: settled(s) and s["mask"] == kind, f"mask {kind} shown")
        if not s:
            return
        d.xdo("mousemove", "5", str(H - 5))
        d.frames(4)
        s = d.wait_for(settled, "settled")
        png = d.screenshot(kind)
        background = head0_pixels(png, s)
        allowed = [[c == "1" for c in row] for row in s["allowed"]]
        wrong = [(i, j) for i, row in enumerate(allowed) for j, a in enumerate(row) if a == background[i][j]]
        check(not wrong, f"{kind}: screenshot shows the pattern (background exactly where masked; wrong at {wrong[:5]})")
        check(len(s["mask_density"]) == 1 and 0 < s["mask_density"][0] < 1, f"{kind}: density reported")
        shots[kind] = (allowed, background)
    kinds = list(shots)
    for a in range(len(kinds)):
        for b in range(a + 1, len(kinds)):
            (pa, ba), (pb, bb) = shots[kinds[a]], shots[kinds[b]]
            differ = [(i, j) for i in range(len(pa)) for j in range(len(pa)) if pa[i][j] != pb[i][j]]
            check(differ, f"{kinds[a]} and {kinds[b]} patterns differ somewhere")
            mismatch = [(i, j) for i in range(len(pa)) for j in range(len(pa))
                        if (pa[i][j] != pb[i][j]) != (ba[i][j] != bb[i][j])]
            check(not mismatch, f"{kinds[a]} vs {kinds[b]}: screenshots differ exactly where patterns do {mismatch[:5]}")

    # custom: paint a cell and erase it in the Mask window
    choose(d, "attention.mask.kind", "custom")
    s = d.wait_for(lambda s: settled(s) and s["mask"] == "custom", "custom mask shown")
    check(all(c == "0" for row in s["allowed"] for c in row), "a new custom mask starts empty")
    d.click(*center(s["widgets"]["menu.view"]))
    s = d.wait_for(lambda s: "menu.view.mask" in s["widgets"], "the View menu")
    d.click(*center(s["widgets"]["menu.view.mask"]))
    s = d.wait_for(lambda s: s["windows"]["mask"] and "mask.view" in s["widgets"], "the Mask window")
    d.frames(4)
    s = d.state()
    x, y, w, h = s["widgets"]["mask.view"]  # the drawn cells
    n = s["n_tokens"]
    cx, cy = x + (n - 0.5) * w / n, y + (n - 0.5) * h / n  # cell (query n-1, key n-1)
    d.xdo("mousemove", str(int(cx)), str(int(cy)))
    d.xdo("click", "1")
    s = d.wait_for(lambda s: settled(s) and s["allowed"][n - 1][n - 1] == "1", "a painted cell")
    check(s is not None and sum(c == "1" for row in s["allowed"] for c in row) == 1, "left click paints one cell")
    d.xdo("click", "3")
    s = d.wait_for(lambda s: settled(s) and s["allowed"][n - 1][n - 1] == "0", "the cell erased")
    check(s is not None, "right click erases it")


@on_example
def test_family(d, s):
    choose(d, "model.kv_sharing", "gqa")
    s = d.wait_for(lambda s: settled(s) and s["kv_heads"] == [0, 0, 1, 1], "GQA: heads 0-1 read K/V 0, 2-3 K/V 1")
    check(s is not None, "GQA chosen in the window groups the K/V heads")

    choose(d, "attention.mask.kind", "none")
    s = d.wait_for(lambda s: settled(s) and s["mask"] == "none", "mask none")
    s = reveal(d, "context.enabled")
    d.click(*center(s["widgets"]["context.enabled"]))
    s = d.wait_for(lambda s: settled(s) and s.get("key_tokens"), "cross-attention on")
    if not s:
        return
    n_q, n_k = len(s["tokens"]), len(s["key_tokens"])
    check(n_k == 9 and n_q == 11, f"queries from the text (11), keys from the context (9): {n_q} x {n_k}")
    check(all(h["n_q"] == n_q and h["n_k"] == n_k for h in s["heads"]), "every head is n_q x n_k")
    h0 = s["heads"][0]
    check(abs(h0["w"] / h0["h"] - n_k / n_q) < 0.02, f"the heatmap is {n_q} x {n_k} cells on screen")
    d.xdo("mousemove", "5", str(H - 5))
    d.frames(4)
    s = d.wait_for(settled, "settled")
    cross_png = d.screenshot("cross")
    grid = cell_colours(cross_png, {"heads": [s["heads"][0]]})[0]
    check(all(c != tuple(s["background"]) for row in grid for c in row), "cross-attention with no mask: every cell drawn")

    choose(d, "attention.kernel.kind", "performer")
    s = d.wait_for(lambda s: settled(s) and s["kernel"] == "performer", "Performer")
    if not s:
        return
    check(all(a is not None and a[0] > 0 and a[1] > 0 for a in s["approximation"]),
          f"Performer reports its error against softmax: {s['approximation']}")
    d.xdo("mousemove", "5", str(H - 5))
    d.frames(4)
    s = d.wait_for(settled, "settled")
    perf = cell_colours(d.screenshot("performer"), {"heads": [s["heads"][0]]})[0]
    changed = sum(1 for a, b in zip(sum(grid, []), sum(perf, [])) if a != b)
    check(changed > len(sum(grid, [])) // 2, f"Performer's weights differ from exact softmax on screen ({changed} cells)")

    choose(d, "attention.kernel.kind", "flash")
    s = d.wait_for(lambda s: settled(s) and s["kernel"] == "flash", "flash")
    check(all(a is not None and a[0] <= 1e-5 and a[1] <= 1e-5 for a in s["approximation"]),
          f"flash equals softmax: {s['approximation']}")
    d.click(*center(s["widgets"]["menu.view"]))
    s = d.wait_for(lambda s: "menu.view.flash" in s["widgets"], "the View menu")
    d.click(*center(s["widgets"]["menu.view.flash"]))
    s = d.wait_for(lambda s: "flash.next" in s["widgets"], "the flash window")
    check(s["flash_step"] == 1 and s["flash_tiles"] == 9, f"tile 1 of 9 (3 x 3 tiles of 4): {s['flash_step']}, {s['flash_tiles']}")
    d.click(*center(s["widgets"]["flash.next"]))
    d.click(*center(s["widgets"]["flash.next"]))
    s = d.wait_for(lambda s: s["flash_step"] == 3, "two steps with Next")
    check(s is not None, "Next steps through the tiles")


# --- issue 5: the explorer ------------------------------------------------------------------------

CLI = os.path.join(os.path.dirname(APP), "attnlab-cli")
EXAMPLE = os.path.join(HERE, "..", "..", "assets", "sessions", "example.json")


def example_weights():
    r = json.loads(subprocess.run([CLI, "compute", EXAMPLE], capture_output=True, check=True).stdout)
    return [h["weights"] for h in r["layers"][0]["heads"]]


def last_colour(name):
    rows = [l for l in open(os.path.join(HERE, "..", "..", "assets", "colormaps", name + ".csv")) if l[0].isdigit()]
    return tuple(round(float(v) * 255) for v in rows[-1].split(","))


def menu(d, top, item):
    s = d.wait_for(lambda s: top in s["widgets"], top)
    d.click(*center(s["widgets"][top]))
    s = d.wait_for(lambda s: item in s["widgets"], item)
    if not s:
        return
    d.frames(3)  # where it stays: the same rect twice
    s = d.wait_for(lambda t: t["widgets"].get(item) == s["widgets"][item], f"{item} settled", timeout=5)
    d.click(*center(s["widgets"][item]))


def away(d):
    d.xdo("mousemove", str(d.w - 3), "3")  # over the menu bar: no tooltip, no hover
    d.frames(4)


def cell_rgb(img, rect, n_q, n_k, i, j, fx=0.2, fy=0.2):
    x, y, w, h = rect
    return img.getpixel((int(x + (j + fx) * w / n_k), int(y + (i + fy) * h / n_q)))


@on_example
def test_explore(d, s):
    weights = example_weights()
    computed = s["computations"]
    # colormap magma, global range: weight 1.0 (token 0 under the causal mask) is magma's top colour
    choose(d, "display.colormap", "magma")
    s = d.wait_for(lambda s: settled(s) and s.get("shown_display", {}).get("colormap") == "magma", "magma shown")
    check(s is not None and s["computations"] == computed,
          f"a display option re-draws the Result, it does not compute again ({computed} -> {s and s['computations']})")
    away(d)
    s = d.wait_for(settled, "settled")
    img = Image.open(d.screenshot("magma")).convert("RGB")
    top = last_colour("magma")
    got = [cell_rgb(img, (h["x"], h["y"], h["w"], h["h"]), 11, 11, 0, 0) for h in s["heads"]]
    check(all(c == top for c in got), f"magma: weight 1.0 drawn in magma's top colour {top}: {got}")
    # per-row range: every row's largest weight gets the top colour
    choose(d, "display.range", "per_row")
    s = d.wait_for(lambda s: settled(s) and s["shown_display"]["range"] == "per_row", "per-row range shown")
    away(d)
    s = d.wait_for(settled, "settled")
    img = Image.open(d.screenshot("per-row")).convert("RGB")
    for k, h in enumerate(s["heads"]):
        rect = (h["x"], h["y"], h["w"], h["h"])
        tops = [cell_rgb(img, rect, 11, 11, i, max(range(11), key=lambda j: weights[k][i][j])) for i in range(11)]
        check(all(c == top for c in tops), f"per_row: head {k}'s row maxima all in the top colour ({tops[:3]})")
    s = reveal(d, "display.log")
    d.click(*center(s["widgets"]["display.log"]))
    s = d.wait_for(lambda s: settled(s) and s["shown_display"]["log"], "log scale shown")
    check(s is not None, "the log-scale checkbox reaches the picture")
    choose(d, "display.range", "global")
    d.wait_for(lambda s: settled(s) and s["shown_display"]["range"] == "global", "global range again")

    # model view: every layer x head; a click opens that head large
    menu(d, "menu.view", "menu.view.model")
    s = d.wait_for(lambda s: "model.0.3" in s["widgets"], "the model view")
    check(all(f"model.0.{h}" in s["widgets"] for h in range(4)), "model view: a tile per head")
    d.click(*center(s["widgets"]["model.0.2"]))
    s = d.wait_for(lambda s: s["detail_head"] == 2, "head 2 opened from the model view")
    check(s is not None, "clicking a model-view tile opens it")
    menu(d, "menu.view", "menu.view.model")  # close it again

    # numbers in the detail view's cells, gone when switched off
    s = d.wait_for(lambda s: "detail.cells" in s["widgets"], "the detail view")
    away(d)
    s = d.state()
    rect = s["widgets"]["detail.cells"]
    def cell_colours_count(img):
        x, y, w, h = rect
        cw, ch = w / 11, h / 11  # cell (10, 0): weight shown as digits
        box = img.crop((int(x + 10 * 0 + 2), int(y + 10 * ch + 2), int(x + cw - 2), int(y + 11 * ch - 2)))
        return len(set(box.getdata()))
    with_numbers = cell_colours_count(Image.open(d.screenshot("numbers")).convert("RGB"))
    s = reveal(d, "display.numbers")
    d.click(*center(s["widgets"]["display.numbers"]))
    d.wait_for(lambda s: not s["display"]["numbers"], "numbers off")
    away(d)
    without = cell_colours_count(Image.open(d.screenshot("no-numbers")).convert("RGB"))
    check(with_numbers > 3 and without <= 2, f"digits drawn in a big cell ({with_numbers} colours), none when off ({without})")

    # zoom with the wheel in the detail view, then reset
    s = d.state()
    x, y, w, h = s["widgets"]["detail.cells"]
    d.xdo("mousemove", str(int(x + w * 0.7)), str(int(y + h * 0.7)))
    for _ in range(3):
        d.xdo("click", "4")
    s = d.wait_for(lambda s: s["zoom"] > 1.9, "zoomed in with the wheel")
    check(s is not None and s["pan"][0] > 0 and s["pan"][1] > 0, f"zoom about the pointer pans too: {s and s['pan']}")
    d.click(*center(d.state()["widgets"]["detail.reset_zoom"]))
    check(d.wait_for(lambda s: s["zoom"] == 1, "zoom reset") is not None, "reset zoom")

    # step by step: the pipeline of head 2, Next / Previous / a step by name
    d.click(*center(d.state()["widgets"]["detail.pipeline"]))
    s = d.wait_for(lambda s: s.get("pipeline") and s["windows"]["pipeline"] and "pipeline.next" in s["widgets"], "the pipeline")
    if not s:
        return
    check(s["pipeline"]["id"] == "input" and s["pipeline"]["steps"] == 11, f"step 1 of 11 is the input: {s['pipeline']}")
    for _ in range(4):
        d.click(*center(d.state()["widgets"]["pipeline.next"]))
    s = d.wait_for(lambda s: s["pipeline"]["step"] == 4, "four steps on")
    check(s and s["pipeline"]["id"] == "scores" and s["pipeline"]["rows"] == 11 and s["pipeline"]["cols"] == 11,
          f"Next x4 reaches Q K^T (11 x 11): {s and s['pipeline']}")
    d.click(*center(d.state()["widgets"]["pipeline.previous"]))
    s = d.wait_for(lambda s: s["pipeline"]["id"] == "v", "Previous goes back to V")
    check(s is not None and s["pipeline"]["cols"] == 16, "V is 11 x d_head 16")
    d.click(*center(d.state()["widgets"]["pipeline.step=masked"]))
    s = d.wait_for(lambda s: s["pipeline"]["id"] == "masked", "the masked step")
    away(d)
    s = d.state()
    img = Image.open(d.screenshot("masked-step")).convert("RGB")
    rect = s["widgets"]["pipeline.cells"]
    bg = tuple(s["background"])
    above = [cell_rgb(img, rect, 11, 11, i, j, 0.5, 0.5) == bg for i in range(11) for j in range(i + 1, 11)]
    below = [cell_rgb(img, rect, 11, 11, i, j, 0.5, 0.5) == bg for i in range(11) for j in range(i + 1)]
    check(all(above) and not any(below), f"masked step: -inf cells blank above the diagonal ({sum(above)}/{len(above)}), drawn below ({sum(below)} blank)")
    menu(d, "menu.view", "menu.view.pipeline")

    # line view: hovering a query isolates its lines
    menu(d, "menu.view", "menu.view.lines")
    s = d.wait_for(lambda s: "lines.query=3" in s["widgets"], "the line view")
    away(d)
    all_lines = d.state()["lines_drawn"]
    d.xdo("mousemove", *[str(int(v)) for v in center(d.state()["widgets"]["lines.query=3"])])
    s = d.wait_for(lambda s: s["lines_token"] == 3, "query 3 hovered")
    expect = sum(1 for k in range(4) for j in range(4) if weights[k][3][j] * 0.5 >= 0.02)
    check(s is not None and s["lines_drawn"] == expect and all_lines > expect,
          f"hovering query 3 keeps its lines only ({s and s['lines_drawn']} of {all_lines}, expected {expect})")


@on_example
def test_compare(d, s):
    menu(d, "menu.view", "menu.view.compare")
    s = d.wait_for(lambda s: s["b_shown"] > 0 and "compare.diff" in s["widgets"], "B computed and B - A drawn")
    if not s:
        return
    check(s["diff_max"] == 0, f"B starts as a copy of A: no difference ({s['diff_max']})")
    d.click(*center(s["widgets"]["compare.edit_b"]))
    d.frames(4)
    choose(d, "attention.mask.kind", "none")  # edits B, not A
    s = d.wait_for(lambda s: s["diff_max"] > 0.05, "B - A non-zero after B's mask changes")
    if not s:
        return
    check(s["mask"] == "causal", "A keeps its causal mask")
    away(d)
    s = d.state()
    img = Image.open(d.screenshot("compare")).convert("RGB")
    a, b, diff = s["widgets"]["compare.a"], s["widgets"]["compare.b"], s["widgets"]["compare.diff"]
    bg = tuple(s["background"])
    check(cell_rgb(img, a, 11, 11, 0, 10, .5, .5) == bg and cell_rgb(img, b, 11, 11, 0, 10, .5, .5) != bg,
          "A masks the future, B (no mask) does not")
    reds = [cell_rgb(img, diff, 11, 11, i, j, .5, .5) for i in range(11) for j in range(i + 1, 11)]
    check(all(c[0] > c[2] for c in reds), f"B - A is positive (red) wherever only B attends: {reds[:3]}")
    r, g, bl = cell_rgb(img, diff, 11, 11, 0, 0, .5, .5)
    check(bl > r + 40, f"B - A is negative (blue) where A put all of row 0: {(r, g, bl)}")
    # linked hover: the cell under the pointer in A is outlined in B and in B - A too
    x, y, w, h = a
    d.xdo("mousemove", str(int(x + 2.5 * w / 11)), str(int(y + 5.5 * h / 11)))
    s = d.wait_for(lambda s: s["compare_hover"] == [5, 2], "linked hover on (5, 2)")
    check(s is not None, "hovering A reports the cell (query 5, key 2)")
    img = Image.open(d.screenshot("compare-hover")).convert("RGB")
    for name, rect in (("B", b), ("B - A", diff)):
        x, y, w, h = rect
        edge = [img.getpixel((int(x + 2 * w / 11 + k), int(y + 5 * h / 11))) for k in range(2, int(w / 11) - 2)]
        check(sum(1 for c in edge if c == (255, 255, 255)) >= len(edge) // 2, f"{name}: the same cell outlined in white")


@on_example
def test_files(d, s):
    original = s["text"]
    x, y, w, h = s["text_box"]
    d.click(x + w / 2, y + h / 2)
    d.chord("ctrl+a")
    d.xdo("type", "--delay", "40", "Undo me please")
    s = d.wait_for(lambda s: settled(s) and s["text"] == "Undo me please", "typed text")
    d.click(W - 40, 12)  # leave the text box (the menu bar's empty end)
    d.frames(4)
    check(s and s["undo"] == 1, f"typing is one history entry: {s and s['undo']}")
    d.chord("ctrl+z")
    s = d.wait_for(lambda s: settled(s) and s["text"] == original, "undo restores the text")
    check(s is not None and s["redo"] == 1, "Ctrl+Z undoes the typing")
    d.chord("ctrl+shift+z")
    s = d.wait_for(lambda s: settled(s) and s["text"] == "Undo me please", "redo")
    check(s is not None, "Ctrl+Shift+Z redoes it")

    # save through the in-app browser, written atomically into the working directory
    d.chord("ctrl+s")
    s = d.wait_for(lambda s: s["windows"]["browser"] and "browser.name" in s["widgets"], "the save dialog")
    d.click(*center(s["widgets"]["browser.name"]))
    d.chord("ctrl+a")
    d.xdo("type", "--delay", "30", "mine.json")
    d.chord("Return")
    mine = os.path.join(TMP, "mine.json")
    s = d.wait_for(lambda s: s["session_path"].endswith("mine.json"), "saved as mine.json")
    check(s is not None and os.path.exists(mine) and json.load(open(mine))["text"] == "Undo me please",
          "Ctrl+S wrote the session to mine.json")
    check(not [f for f in os.listdir(TMP) if ".tmp-" in f], "no temporary file left beside it")
    check(s and s["recent"] and s["recent"][0].endswith("mine.json"), "mine.json heads the recent files")

    # open: a corrupt file is refused with a reason, a good one replaces the session
    open(os.path.join(TMP, "corrupt.json"), "w").write('{"text": "cut')
    json.dump({"text": "Another file here"}, open(os.path.join(TMP, "other.json"), "w"))
    d.chord("ctrl+o")
    s = d.wait_for(lambda s: "browser.entry=corrupt.json" in s["widgets"], "the open dialog listing files")
    if not s:
        return
    s = double_click(d, "browser.entry=corrupt.json", lambda s: "could not open" in s["status"], "a reason for the corrupt file")
    check(s is not None and "not valid JSON" in s["status"] and s["text"] == "Undo me please",
          f"corrupt.json refused, the session kept: {s and s['status']}")
    s = double_click(d, "browser.entry=other.json", lambda s: settled(s) and s["text"] == "Another file here",
                     "other.json opened")
    check(s is not None and not s["windows"]["browser"], "double-clicking other.json opens it")
    check(d.quit() == 0, "Ctrl+Q exits 0")
    prefs = os.path.join(CONFIG, "attnlab", "prefs.json")
    check(os.path.exists(prefs) and os.path.exists(os.path.join(CONFIG, "attnlab", "imgui.ini")),
          "preferences and window layout in $XDG_CONFIG_HOME/attnlab")
    d = Display()  # the next start: where the last one left off
    try:
        s = d.wait_for(settled, "the restored session")
        check(s is not None and s["text"] == "Another file here", f"the last session is restored: {s and s['text']!r}")
        check(s and len(s["recent"]) == 2 and s["recent"][0].endswith("other.json"), f"recent files kept: {s and s['recent']}")
        menu(d, "menu.file", "menu.file.recent")
        s = d.wait_for(lambda s: "menu.file.recent=1" in s["widgets"], "the recent-files menu")
        d.click(*center(s["widgets"]["menu.file.recent=1"]))
        s = d.wait_for(lambda s: settled(s) and s["text"] == "Undo me please", "mine.json reopened from the recent list")
        check(s is not None, "Open recent reopens mine.json")
    finally:
        d.close()


@on_example
def test_classroom(d, s):
    check(s["lessons"] >= 8, f"at least 8 lessons loaded: {s['lessons']}")
    menu(d, "menu.lessons", "menu.lessons=1")  # softmax and temperature
    s = d.wait_for(lambda s: s["lesson"] == 1 and "lesson.next" in s["widgets"], "the lesson window")
    if not s:
        return
    d.click(*center(s["widgets"]["lesson.next"]))
    s = d.wait_for(lambda s: settled(s) and s["temperature"] == 0.2, "lesson step 2: T = 0.2")
    check(s is not None and s["lesson_step"] == 1, "Next loads step 2's session")
    d.click(*center(d.state()["widgets"]["lesson.next"]))
    s = d.wait_for(lambda s: settled(s) and s["temperature"] == 5.0, "lesson step 3: T = 5")
    d.click(*center(d.state()["widgets"]["lesson.previous"]))
    s = d.wait_for(lambda s: settled(s) and s["temperature"] == 0.2, "back to T = 0.2")
    check(s is not None, "Previous goes back a step")
    d.chord("F1")
    check(d.wait_for(lambda s: s["windows"]["help"], "help window") is not None, "F1 opens the shortcuts")
    d.chord("F1")
    d.wait_for(lambda s: not s["windows"]["help"], "help closed")
    font0 = d.state()["font_size"]
    d.chord("F5")
    s = d.wait_for(lambda s: s["light"] and s["hide_controls"] and s["fullscreen"] and s["font_size"] >= 1.7 * font0,
                   "presentation mode")
    if not s:
        return
    check(s["background"] == [255, 255, 255], f"light theme: white background {s['background']}")
    check("text_box" not in s["widgets"] and "attention.mask.kind" not in s["widgets"], "controls hidden")
    away(d)
    s = d.wait_for(settled, "settled")
    png = d.screenshot("presentation")
    # the lesson's session has no mask; the lesson window covers head 3
    check_pattern(png, dict(s, heads=s["heads"][:3]), causal=False, label="presentation")
    img = Image.open(png).convert("RGB")
    x, y, w, h = [s["heads"][0][k] for k in ("x", "y", "w", "h")]
    check(h > 0.2 * H, f"heatmaps fill the screen without the controls ({h:.0f} px high)")
    d.chord("F5")
    s = d.wait_for(lambda s: not s["light"] and not s["hide_controls"] and abs(s["font_size"] - font0) < 0.5, "back from presentation")
    check(s is not None, "F5 again restores the desk layout")
    d.chord("ctrl+equal")
    s = d.wait_for(lambda s: s["font_size"] > font0 + 2, "Ctrl+= enlarges the font")
    check(s is not None and s["font_scale"] == 1.25, "font scale 1.25 after Ctrl+=")


@on_example
def test_export(d, s):
    weights = example_weights()
    h = s["heads"][1]
    d.xdo("mousemove", str(int(h["x"] + h["w"] * 0.3)), str(int(h["y"] + h["h"] * 0.6)))
    d.wait_for(lambda s: s["hover"]["head"] == 1, "hovering head 1")
    d.chord("ctrl+c")
    d.wait_for(lambda s: s["status"].startswith("copied head 1"), "copied")
    clip = subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=d.env, capture_output=True, timeout=10).stdout.decode()
    rows = [l.split("\t") for l in clip.splitlines()]
    check(len(rows) == 12 and rows[0][1:3] == ["The", "cat"] and rows[1][0] == "The", f"TSV: a header and 11 labelled rows ({len(rows)})")
    if len(rows) == 12:
        vals = [[float(v) for v in r[1:]] for r in rows[1:]]
        check(all(abs(vals[i][j] - weights[1][i][j]) < 1e-6 for i in range(11) for j in range(11)), "TSV holds head 1's weights")
    away(d)
    d.chord("ctrl+e")
    s = d.wait_for(lambda s: s["windows"]["export"] and "export.go" in s["widgets"], "the export window")
    sizes = {}
    for scale in (1, 2):
        s = d.state()
        d.click(*center(s["widgets"][f"export.scale={scale}"]))
        d.click(*center(s["widgets"]["export.path"]))
        d.chord("ctrl+a")
        path = os.path.join(TMP, f"heads{scale}.png")
        d.xdo("type", "--delay", "20", path)
        d.click(*center(d.state()["widgets"]["export.go"]))
        s = d.wait_for(lambda s: s["status"] == "exported " + path, f"exported at {scale}x")
        if s:
            sizes[scale] = Image.open(path).size
    check(len(sizes) == 2 and abs(sizes[2][0] - 2 * sizes[1][0]) <= 0.01 * sizes[2][0], f"2x export is twice the 1x size: {sizes}")
    s = d.state()
    d.click(*center(s["widgets"]["export.what"]))
    s = d.wait_for(lambda s: "export.what=8" in s["widgets"], "the export choices")
    d.frames(4)
    d.click(*center(d.state()["widgets"]["export.what=8"]))  # weights matrix
    s = d.wait_for(lambda s: s["export_what"] == 8, "weights matrix chosen")
    d.click(*center(s["widgets"]["export.path"]))
    d.chord("ctrl+a")
    npy = os.path.join(TMP, "w.npy")
    d.xdo("type", "--delay", "20", npy)
    d.click(*center(d.state()["widgets"]["export.go"]))
    s = d.wait_for(lambda s: s["status"] == "exported " + npy, "exported .npy")
    if s:
        import numpy as np
        m = np.load(npy)
        check(m.shape == (11, 11) and np.allclose(m, np.array(weights[0]), atol=1e-6), "the .npy holds head 0's weights")



def test_model():
    models = os.path.join(HERE, "..", "models")
    d = Display("--model", os.path.join(models, "tiny-gpt2"))
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("model"), "the tiny GPT-2 model's attention")
        if not s:
            return
        check(s["model"]["type"] == "gpt2" and s["n_layers"] == 2 and len(s["heads"]) == 2, f"2 layers x 2 heads: {s['model']}")
        check(s["tokens"][:3] == ["T", "he", " cat"], f"byte-level BPE tokens: {s['tokens'][:3]}")
        away(d)
        s = d.wait_for(settled, "settled")
        check_pattern(d.screenshot("gpt2"), s, causal=True, label="tiny GPT-2")
        # layer 1: its heads' textures go up after the result is shown with the layer on screen's
        x, y, w, h = s["widgets"]["layer"]
        d.click(x + w * 0.6, y + h / 2)
        s = d.wait_for(lambda s: settled(s) and s["layer"] == 1, "layer 1 of the tiny GPT-2")
        if s:
            away(d)
            s = d.wait_for(settled, "settled on layer 1")
            check_pattern(d.screenshot("gpt2-layer1"), s, causal=True, label="tiny GPT-2, layer 1")
            x, y, w, h = s["widgets"]["layer"]
            d.click(x + 2, y + h / 2)
            s = d.wait_for(lambda s: settled(s) and s["layer"] == 0, "back to layer 0")
        # the next-token list after the last token = the CLI's; ablating head 1.0 changes it to the
        # CLI's --ablate 1.0 list, on screen (the bars' pixels) and in the state
        def cli_next(*extra):
            out = subprocess.run([CLI, "compute", "--model", os.path.join(models, "tiny-gpt2"), "--text", s["text"], *extra],
                                 capture_output=True, check=True).stdout
            return [e["id"] for e in json.loads(out)["next_tokens"][-1]]
        check([e["id"] for e in s.get("next_tokens", [])] == cli_next(), f"next tokens = the CLI's: {s.get('next_tokens')}")
        # another position's list: the worker computed the last one's, this one comes from the
        # Result's final hidden state on demand - the CLI's list at that position
        s = reveal(d, "model.next_pos")
        x, y, w, h = s["widgets"]["model.next_pos"]
        d.click(x + 3, y + h / 2)
        s2 = d.wait_for(lambda s: s.get("next_pos") == 0, "the next tokens after position 0")
        if s2:
            out = subprocess.run([CLI, "compute", "--model", os.path.join(models, "tiny-gpt2"), "--text", s["text"]],
                                 capture_output=True, check=True).stdout
            want = json.loads(out)["next_tokens"][0]
            got = s2.get("next_tokens", [])
            check([e["id"] for e in got] == [e["id"] for e in want] and
                  all(abs(a["p"] - b["p"]) < 1e-5 for a, b in zip(got, want)),
                  f"position 0's next tokens, computed on demand = the CLI's: {got[:3]} / {want[:3]}")
        d.click(x + s["font_size"] * 8 - 3, y + h / 2)  # the slider's right end (8 em; its label follows)
        s = d.wait_for(lambda s: s.get("next_pos") == len(s["tokens"]) - 1, "back to the last position")
        s = reveal(d, "model.next_pos")
        nx, ny, nw, nh = s["widgets"]["model.next_pos"]
        box = (0, int(ny + nh), int(nx + nw * 2), min(H, int(ny + nh * 8)))
        before = Image.open(d.screenshot("next-before")).convert("RGB").crop(box)
        s = reveal(d, "model.ablate")
        d.click(*center(s["widgets"]["model.ablate"]))
        d.xdo("type", "--delay", "40", "1.0")
        want = cli_next("--ablate", "1.0")
        s = d.wait_for(lambda s: settled(s) and s.get("intervention") == "ablate 1.0 (zero)" and
                       [e["id"] for e in s.get("next_tokens", [])] == want, "head 1.0 ablated: the CLI's next tokens")
        if s:
            s = reveal(d, "model.next_pos")
            nx, ny, nw, nh = s["widgets"]["model.next_pos"]
            box = (0, int(ny + nh), int(nx + nw * 2), min(H, int(ny + nh * 8)))
            after = Image.open(d.screenshot("next-ablated")).convert("RGB").crop(box)
            diff = sum(1 for a, b in zip(before.getdata(), after.getdata()) if a != b)
            check(before.size == after.size and diff > 50, f"the next-token bars changed on screen ({diff} pixels)")
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "40", "7.7")
        s = d.wait_for(lambda s: "does not exist" in s.get("ablate_error", ""), "a head that does not exist: said")
        check(s is not None and s.get("intervention") == "ablate 1.0 (zero)", "the last valid ablation stays")
        d.chord("ctrl+a")
        d.xdo("key", "BackSpace")
        s = d.wait_for(lambda s: settled(s) and not s.get("intervention") and not s.get("ablate_error"), "no ablation")
        # File > Open model folder: the in-app browser, into a folder, "Open this folder"
        shutil.copytree(os.path.join(models, "tiny-gpt2-bf16"), os.path.join(TMP, "mymodel"))
        menu(d, "menu.file", "menu.file.model")
        s = d.wait_for(lambda s: "browser.entry=mymodel/" in s["widgets"], "the model browser listing mymodel/")
        if not s:
            return
        d.click(*center(s["widgets"]["browser.entry=mymodel/"]))
        s = d.wait_for(lambda s: "browser.open_model" in s["widgets"] and "browser.entry=mymodel/" not in s["widgets"], "inside mymodel")
        d.click(*center(s["widgets"]["browser.open_model"]))
        s = d.wait_for(lambda s: settled(s) and s.get("model", {}).get("dtype") == "BF16" and not s["model_loading"],
                       "the BF16 model loaded and shown")
        check(s is not None and s["model"]["dir"].endswith("mymodel"), "the chosen folder is the model in use")
        x, y, w, h = s["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "40", "the end")
        want = json.loads(subprocess.run([CLI, "compute", "--model", os.path.join(TMP, "mymodel"), "--text", "the end"],
                                         capture_output=True, check=True).stdout)["tokens"]
        s = d.wait_for(lambda s: settled(s) and s["text"] == "the end" and s["tokens"] == want, "typing runs the model")
        check(s is not None and len(s["heads"]) == 2, f"the model's tokens for the new text ({want})")
        # an intervention: the mask replaced by none on every layer, labelled as such
        s = reveal(d, "model.intervene")
        d.click(*center(s["widgets"]["model.intervene"]))
        s = d.wait_for(lambda s: settled(s) and s.get("intervention", "").startswith("every layer: mask causal"),
                       "the intervention (the session's causal mask at first)")
        choose(d, "attention.mask.kind", "none")
        s = d.wait_for(lambda s: settled(s) and "mask none" in s.get("intervention", ""), "mask none on every layer")
        if s:
            away(d)
            s = d.wait_for(settled, "settled")
            check_pattern(d.screenshot("intervention"), s, causal=False, label="intervention: mask none")
    finally:
        d.close()

def test_patching():
    """The patching view on tiny-gpt2: the text and a corrupted one typed, Run, the grid equals
    numpy's (tests/golden/patching.json) in the state and its cells are coloured by value; the
    denoising grid too; a corrupted text of another length is said in red and the last grid stays."""
    models = os.path.join(HERE, "..", "models")
    pg = json.load(open(os.path.join(HERE, "..", "golden", "patching.json")))
    d = Display("--model", os.path.join(models, "tiny-gpt2"), "--view", "patching")
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("model") and "patching.corrupted" in s["widgets"], "the patching view")
        if not s:
            return
        x, y, w, h = s["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "30", pg["clean"])
        s = d.wait_for(lambda s: settled(s) and s["text"] == pg["clean"], "the clean text shown")
        d.click(*center(s["widgets"]["patching.corrupted"]))
        d.xdo("type", "--delay", "30", pg["corrupted"])
        d.click(*center(s["widgets"]["patching.run"]))
        s = d.wait_for(lambda s: s.get("patching", {}).get("values") and not s["patching"]["running"], "the grid")
        if not s:
            return
        p = s["patching"]
        got, want = p["values"], pg["heads_diff"]
        check(len(got) == len(want) and all(abs(a - b) <= 1e-4 for ra, rb in zip(got, want) for a, b in zip(ra, rb)),
              f"the window's grid = numpy's: {got} vs {want}")
        check(p["token_a"] == pg["token_a"] and p["token_b"] == pg["token_b"], "tokens A and B: the clean and corrupted tops")
        # on screen: each cell's colour follows its value (blue below the clean run's, red above)
        away(d)
        img = Image.open(d.screenshot("patching")).convert("RGB")
        gx, gy, gw, gh = d.state()["widgets"]["patching.grid"]
        rows, cols = len(got), len(got[0])
        colours = {}
        for l in range(rows):
            for c in range(cols):
                colours[(l, c)] = img.getpixel((int(gx + (c + 0.5) * gw / cols), int(gy + (l + 0.5) * gh / rows)))
        lo = min(colours, key=lambda k: got[k[0]][k[1]])
        hi = max(colours, key=lambda k: got[k[0]][k[1]])
        check(colours[lo] != colours[hi], f"the lowest and highest cells differ in colour: {colours}")
        below = [k for k in colours if got[k[0]][k[1]] < p["clean"] - 0.5]
        check(all(colours[k][2] > colours[k][0] for k in below) and below, f"cells below the clean metric are blue: {below}")
        # hovering a cell names it
        d.xdo("mousemove", str(int(gx + 0.5 * gw / cols)), str(int(gy + 0.5 * gh / rows)))
        s = d.wait_for(lambda s: s["patching"]["hover"] == [0, 0], "the hovered cell (0, 0)")
        # denoising: the corrupted run with each head from the clean run = numpy's
        d.click(*center(s["widgets"]["patching.denoising"]))
        d.click(*center(s["widgets"]["patching.run"]))
        s = d.wait_for(lambda s: s["patching"].get("direction") == "denoising" and not s["patching"]["running"],
                       "the denoising grid")
        if s:
            dn, want_dn = s["patching"]["values"], pg["heads_diff_denoising"]
            check(all(abs(a - b) <= 1e-4 for ra, rb in zip(dn, want_dn) for a, b in zip(ra, rb)) and len(dn) == len(want_dn),
                  f"the denoising grid = numpy's: {dn} vs {want_dn}")
        d.click(*center(s["widgets"]["patching.noising"]))
        d.click(*center(s["widgets"]["patching.run"]))
        s = d.wait_for(lambda s: s["patching"].get("direction") == "noising" and not s["patching"]["running"],
                       "back to the noising grid")
        # a corrupted text of another length: said, and the last grid stays
        d.click(*center(s["widgets"]["patching.corrupted"]))
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "30", "the")
        d.click(*center(s["widgets"]["patching.run"]))
        s = d.wait_for(lambda s: "must match" in s["patching"]["error"], "a corrupted text of another length: said")
        check(s is not None and s["patching"]["values"] == got, "the last grid stays")
        # Generate (Model section): the default 10 greedy tokens appended = the CLI's generate, and
        # the new text runs through the model
        want = json.loads(subprocess.run([CLI, "generate", "--model", os.path.join(models, "tiny-gpt2"), "--text", pg["clean"],
                                          "--tokens", "10"], capture_output=True, check=True).stdout)["text"]
        s = reveal(d, "model.generate")
        d.click(*center(s["widgets"]["model.generate"]))
        s = d.wait_for(lambda s: settled(s) and s["text"] != pg["clean"] and not s["generate"]["running"],
                       "the generated text in the text box, run through the model")
        # the tiny model ends in pieces of UTF-8 characters, which the JSON of each side replaces:
        # compared up to the first such piece
        valid = want.split("\ufffd")[0]
        check(s is not None and s["text"].startswith(valid) and len(valid) > len(pg["clean"]) + 3,
              f"the window's text = the CLI's generate: {s and s['text']!r} vs {want!r}")
        check(s is not None and s["generate"]["done"].startswith("appended 10 tokens"), f"generate says what it did: {s and s['generate']}")
        # Compare A / B with the model: B starts as A (the model, the text, no intervention), then
        # B ablates head 1.0 (said, the model kept), then B's own text of another length (said)
        menu(d, "menu.view", "menu.view.compare")
        s = d.wait_for(lambda s: s.get("b_shown") and s.get("b_text") == s["text"] and "compare.b_ablate" in s["widgets"],
                       "compare: B = A through the model")
        if not s:
            return
        check(s["compare_differs"] == "" and s["compare_alignment"].startswith("the tokens align"),
              f"B = A: nothing differs, tokens align ({s['compare_differs']!r}, {s['compare_alignment']!r})")
        d.click(*center(s["widgets"]["compare.b_ablate"]))
        d.xdo("type", "--delay", "40", "1.0")
        s = d.wait_for(lambda s: s.get("b_intervention") == "ablate 1.0 (zero)", "B with head 1.0 ablated")
        check(s is not None and "the intervention: A none, B ablate 1.0 (zero)" in s["compare_differs"] and
              "what runs" not in s["compare_differs"], f"compare says B ablates a head of the same model: {s and s['compare_differs']}")
        check(s is not None and s["diff_max"] <= 1e-6, "layer 0's attention is the same in A and B (the ablation is after it)")
        d.click(*center(s["widgets"]["compare.b_text"]))
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "40", "the cat")
        s = d.wait_for(lambda s: s.get("b_text") == "the cat", "B's own text")
        check(s is not None and "do not align" in s["compare_alignment"] and "the text" in s["compare_differs"],
              f"texts of different token counts: said ({s and s['compare_alignment']})")
    finally:
        d.close()


def inside(rect, w, h):
    x, y, rw, rh = rect
    return x >= 0 and y >= 0 and x + rw <= w + 1 and y + rh <= h + 1 and rw > 0 and rh > 0


def test_projector():
    """At 1024x768 and 1920x1080: a lesson step that opens a view (the first step too) leaves
    Next reachable and clicked; the clicker's keys step; F5 at 3x labels every token unshortened
    and leaving F5 restores the window's place and size."""
    for size in ((1024, 768), (1920, 1080)):
        w, h = size
        d = Display("--example", "--lesson", "1", size=size)  # lesson 1's first step opens Step by step
        try:
            s = d.wait_for(lambda s: settled(s) and s["lesson"] == 0 and "lesson.next" in s["widgets"], f"{w}x{h}: lesson 1")
            if not s:
                continue
            check(s["windows"]["pipeline"], f"{w}x{h}: the first step opens its view (Step by step)")
            nxt = s["widgets"]["lesson.next"]
            check(inside(nxt, w, h), f"{w}x{h}: Next is on screen ({nxt})")
            # the view the step opened is placed above the lesson strip, not over it
            s = d.wait_for(lambda s: "pipeline.next" in s["widgets"], f"{w}x{h}: the pipeline window")
            lesson = s["widgets"]["lesson.window"]
            check(s["widgets"]["pipeline.next"][1] < lesson[1], f"{w}x{h}: the view sits above the lesson strip")
            d.click(*center(s["widgets"]["lesson.next"]))
            s = d.wait_for(lambda s: settled(s) and s["lesson_step"] == 1, f"{w}x{h}: Next clicked")
            check(s is not None, f"{w}x{h}: a click on Next reaches it (nothing covers it)")
            away(d)
            for key, step in (("Next", 2), ("Prior", 1), ("Right", 2), ("Left", 1), ("space", 2)):  # Page Down/Up are Next/Prior
                d.chord(key)
                s = d.wait_for(lambda s, step=step: s["lesson_step"] == step, f"{w}x{h}: {key} goes to step {step + 1}")
                check(s is not None, f"{w}x{h}: the clicker key {key} steps the lesson")
            # a lesson whose later step opens the Line view: still Next visible above it
            d.chord("Prior")
            before = d.wait_for(lambda s: s["window_rect"][2] > 0, "the window's rect")["window_rect"]
            d.xdo("key", "ctrl+equal")
            for _ in range(8):
                d.chord("ctrl+equal")
            s = d.wait_for(lambda s: s["font_scale"] == 3, f"{w}x{h}: font scale 3")
            d.chord("F5")
            s = d.wait_for(lambda s: s["fullscreen"] and s["hide_controls"] and settled(s), f"{w}x{h}: presentation at 3x")
            if s:
                s = d.wait_for(lambda s: s["labels_cut"] == 0 and "lesson.next" in s["widgets"], f"{w}x{h}: labels whole at 3x", timeout=10)
                check(s is not None, f"{w}x{h}: at 3x in presentation no label is shortened")
                s = d.state()
                check(inside(s["widgets"]["lesson.next"], s["framebuffer"][0], s["framebuffer"][1]), f"{w}x{h}: Next on screen at 3x")
                check(inside(s["widgets"]["lesson.text"], s["framebuffer"][0], s["framebuffer"][1]) or
                      s["widgets"]["lesson.text"][1] + s["widgets"]["lesson.text"][3] <= s["framebuffer"][1] + 1,
                      f"{w}x{h}: the lesson text is not clipped at 3x")
                d.screenshot(f"projector-{w}x{h}-3x")
                d.click(*center(s["widgets"]["lesson.next"]))
                check(d.wait_for(lambda s: s["lesson_step"] == 2, f"{w}x{h}: Next at 3x") is not None, f"{w}x{h}: Next clicked at 3x")
            d.chord("F5")
            s = d.wait_for(lambda s: not s["fullscreen"] and not s["hide_controls"], f"{w}x{h}: back from presentation")
            s = d.wait_for(lambda s, b=before: s["window_rect"] == b, f"{w}x{h}: the window's rect restored", timeout=10)
            check(s is not None, f"{w}x{h}: leaving F5 restores the window exactly ({before} -> {d.state()['window_rect']})")
        finally:
            d.close()


SCRIPTS = "注意力 日本語の文 한국어 الانتباه ध्यान προσοχή внимание ok"


def test_scripts():
    """Chinese, Japanese, Korean, Arabic, Devanagari, Greek and Cyrillic tokens: every label and the
    text are drawn with their glyphs (none missing, so none drawn as '?'); pasted emoji stay emoji."""
    path = os.path.join(TMP, "scripts.json")
    json.dump({"text": SCRIPTS, "model": {"d_model": 16, "n_heads": 2}}, open(path, "w"))
    for size in ((1024, 768), (1920, 1080)):
        d = Display("--session", path, size=size)
        try:
            s = d.wait_for(lambda s: settled(s) and s["tokens"][0] == "注意力", f"{size}: the multilingual session")
            if not s:
                continue
            check(s["tokens"] == SCRIPTS.split(), f"{size}: tokens {s['tokens']}")
            check(s["labels"] == SCRIPTS.split(), f"{size}: labels drawn as the tokens read ({s['labels']})")
            s = d.wait_for(lambda s: s["missing_glyphs"] == 0, f"{size}: every glyph in the atlas", timeout=10)
            check(s is not None, f"{size}: no label or text character is drawn as '?' ({d.state()['missing_glyphs']} missing)")
            png = d.screenshot(f"scripts-{size[0]}x{size[1]}")
            img = Image.open(png).convert("RGB")
            x, y, w, h = s["text_box"]
            box = img.crop((int(x), int(y), int(x + w), int(y + h)))
            check(len(set(box.getdata())) > 8, f"{size}: the text box shows its text (anti-aliased glyphs)")
        finally:
            d.close()
    # a pasted emoji is kept (Dear ImGui 1.86 holds 16-bit characters: it would become U+FFFD)
    d = Display("--example")
    try:
        s = d.wait_for(settled, "the example")
        subprocess.run(["xclip", "-selection", "clipboard"], input="a 😀 b c".encode(), env=d.env, timeout=10)
        x, y, w, h = s["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.chord("ctrl+v")
        s = d.wait_for(lambda s: settled(s) and "b c" in s["text"], "the pasted text")
        check(s is not None and s["text"] == "a 😀 b c", f"the pasted emoji stays in the session text ({s and s['text']!r})")
        d.xdo("type", "--delay", "40", " d")  # and typing after it keeps it
        s = d.wait_for(lambda s: settled(s) and s["text"].endswith(" d"), "typed after the emoji")
        check(s is not None and s["text"] == "a 😀 b c d" and "😀" in s["tokens"], f"typing keeps the emoji ({s and s['text']!r})")
        check(s is not None and s["missing_glyphs"] == 0, "the emoji is drawn, not '?'")
    finally:
        d.close()


def test_hostile():
    """What used to take the window down: each case ends with the window alive, the problem shown
    and (where there was one) the last picture kept."""
    # the first result uploaded whole before the first frame began (what a fast machine does by
    # chance): the labels were measured with no current font and the app died at start, twice in CI
    shot = os.path.join(TMP, "first_frame.png")
    p = subprocess.run(["xvfb-run", "-a", APP, "--first-result-before-first-frame", "--screenshot", shot, "--frames", "5"],
                       capture_output=True, timeout=60)
    check(p.returncode == 0 and os.path.exists(shot),
          f"a result there in frame 0 is drawn (exit {p.returncode}, {p.stderr.decode()[-600:]!r})")
    # sessions that crashed or threw: refused with their reason, the example shown
    bad = {"t5.json": json.dumps({"positional": {"kind": "t5", "t5_num_buckets": 2}}),
           "overflow.json": '{"attention": {"normalizer": {"temperature": 1e400}}}',
           "deep.json": '{"text": ' + "[" * 100000 + "]" * 100000 + "}",
           "dup.json": '{"text": "a", "text": "b"}'}
    for name, text in bad.items():
        path = os.path.join(TMP, name)
        open(path, "w").write(text)
        d = Display("--session", path)
        try:
            s = d.wait_for(lambda s: settled(s) or (s["problems"] and not s["busy"]), f"{name}: the window answers")
            check(s is not None and d.app.poll() is None, f"{name}: the window is alive")
            if s and name != "t5.json":
                check("could not open" in s["banner"], f"{name}: the banner says why ({s['banner'][:120]!r})")
            if s and name == "t5.json":
                s = d.wait_for(lambda s: any("leaves no bucket" in p for p in s["problems"]), f"{name}: the problem shown")
                check(s is not None and "problem.banner" in s["widgets"], f"{name}: the problem over the heads")
                check(s is not None and "problem.positional.t5_num_buckets" in s["widgets"],
                      f"{name}: the problem beside t5_num_buckets ({s and [k for k in s['widgets'] if k.startswith('problem')]})")
        finally:
            d.close()
    # a crash loop: a run left its marker and its (crashing) session; the next start shows the
    # example and offers the session instead of restoring it
    cfg = os.path.join(CONFIG, "attnlab")
    os.makedirs(cfg, exist_ok=True)
    json.dump({"last_session": json.dumps({"text": "the session that crashed"})}, open(os.path.join(cfg, "prefs.json"), "w"))
    open(os.path.join(cfg, "running"), "w").write("4194303\n")  # a pid that is not running
    open(os.path.join(cfg, ".prefs.json.attnlab-tmp-4194303-Ab12Cd"), "w").write("{")  # a save killed part way
    d = Display()
    try:
        s = d.wait_for(settled, "the start after a crash")
        check(s is not None and s["offer_restore"] and s["text"] != "the session that crashed",
              "after an unclean exit: the example, and the last session offered, not restored")
        check(not os.path.exists(os.path.join(cfg, ".prefs.json.attnlab-tmp-4194303-Ab12Cd")), "the stale temporary removed")
        if s:
            d.click(*center(s["widgets"]["restore.offer"]))
            s = d.wait_for(lambda s: settled(s) and s["text"] == "the session that crashed", "restored on request")
            check(s is not None, "restore it brings the session back")
        check(d.quit() == 0, "Ctrl+Q exits 0")
        check(not os.path.exists(os.path.join(cfg, "running")), "a clean exit removes the marker")
    finally:
        d.close()
    # a real crash (the signal sent from outside): stderr says so with a backtrace of named
    # functions, the process still dies of its signal, and the marker stays for the next start
    d = Display()
    try:
        d.wait_for(settled, "a window to crash")
        d.app.send_signal(signal.SIGSEGV)
        rc = d.app.wait(15)
        report = open(d.stderr_path).read()
        check(rc == -signal.SIGSEGV, f"the crashed process ends by SIGSEGV (exit {rc})")
        check("attnlab: crashed (segmentation fault); backtrace:" in report and "attnlab(" in report,
              f"the crash report on stderr names the binary's frames ({report[-300:]!r})")
        check(os.path.exists(os.path.join(cfg, "running")), "a crash leaves the marker")
    finally:
        d.close()
    # the line view's head outlives n_heads: choose head 3, then 1 head
    d = Display("--example", "--view", "lines")
    try:
        s = d.wait_for(lambda s: settled(s) and "lines.heads" in s["widgets"], "the line view")
        if s:
            d.click(*center(s["widgets"]["lines.heads"]))
            s = d.wait_for(lambda s: "lines.heads=head 3" in s["widgets"], "the head list")
            d.frames(3)
            d.click(*center(d.state()["widgets"]["lines.heads=head 3"]))
            s = reveal(d, "model.n_heads")
            d.click(*center(s["widgets"]["model.n_heads"]))
            d.chord("ctrl+a")
            d.xdo("type", "1")
            d.chord("Return")
            s = d.wait_for(lambda s: settled(s) and len(s["heads"]) == 1, "one head")
            check(s is not None and d.app.poll() is None, "the line view survives its head going away")
        # a long computation: progress shown, Cancel stops it, the last picture stays
        # (30,000 tokens: above 2048 a session is an attention field, fast; this one, one head of
        # d_head 768, still takes seconds; 12,000 finished within the second the click takes on
        # an AVX-512 machine, and the test failed 2 runs in 3)
        words = " ".join(f"w{i % 991}" for i in range(30000))
        subprocess.run(["xclip", "-selection", "clipboard"], input=words.encode(), env=d.env, timeout=10)
        s = reveal(d, "model.d_model")
        d.click(*center(s["widgets"]["model.d_model"]))
        d.chord("ctrl+a")
        d.xdo("type", "768")
        d.chord("Return")
        s = d.wait_for(lambda s: settled(s), "d_model 768")
        x, y, w, h = d.state()["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.chord("ctrl+v")
        s = d.wait_for(lambda s: "progress.cancel" in s["widgets"], "the progress bar of a long computation", timeout=30)
        if check(s is not None, "a computation over 200 ms shows its progress"):
            check(0 <= s["progress"] <= 1, f"progress {s['progress']}")
            d.click(*center(s["widgets"]["progress.cancel"]))
            s = d.wait_for(lambda s: not s["computing"] and s["cancelled"] == s["posted"], "cancelled")
            check(s is not None and s["n_tokens"] == 11, "Cancel stops it and the last picture stays")
    finally:
        d.close()
    # a token of 200,000 characters (a pasted text with no space): labels were shortened one
    # character at a time, a frame took minutes (the soak's freeze); now the window keeps drawing
    path = os.path.join(TMP, "long-token.json")
    json.dump({"text": "a" * 200000 + " b c"}, open(path, "w"))
    d = Display("--session", path)
    try:
        s = d.wait_for(lambda s: settled(s) and s["n_tokens"] == 3, "a 200,000-character token", timeout=60)
        if s:
            f0 = s["frame"]
            d.chord("F11")  # full screen, then back: the resize the soak froze on
            d.chord("F11")
            time.sleep(2)
            check(d.state()["frame"] - f0 >= 8, f"the window keeps drawing ({d.state()['frame'] - f0} frames in 2 s)")
    finally:
        d.close()
    # a model folder whose config.json has a number for model_type
    model = os.path.join(TMP, "badmodel")
    shutil.copytree(os.path.join(HERE, "..", "models", "tiny-gpt2"), model)
    cfg_json = json.load(open(os.path.join(model, "config.json")))
    cfg_json["model_type"] = 3
    json.dump(cfg_json, open(os.path.join(model, "config.json"), "w"))
    d = Display("--model", model)
    try:
        s = d.wait_for(settled, "the window with a bad model folder")
        check(s is not None and "'model_type' must be a string, not 3" in s["banner"], f"the reason shown ({s and s['banner']!r})")
    finally:
        d.close()


def test_views():
    """The view registry: every id --help lists opens with --view and reports itself in the state
    dump; every View-menu item opens its window; the gallery shows every mask kind, the
    StreamingLLM pattern included, and picking it sets the mask."""
    out = subprocess.run([APP, "--help"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"--view TEXT:\{([a-z_,]+)\}", out)
    check(m is not None, "--help lists the view ids")
    ids = m.group(1).split(",") if m else []
    check(len(ids) >= 10 and "pipeline" in ids and "mask" in ids, f"the registry's ids ({ids})")
    args = []
    for v in ids:
        args += ["--view", v]
    d = Display("--example", *args)
    try:
        s = d.wait_for(settled, "the example with every view open")
        for v in ids:
            check(s is not None and s["windows"].get(v) is True, f"--view {v} opens its window")
    finally:
        d.close()
    d = Display("--example")
    try:
        s = d.wait_for(settled, "the example")
        menu_ids = [v for v in ids if v != "help"]
        for v in menu_ids:
            menu(d, "menu.view", f"menu.view.{v}")
            s = d.wait_for(lambda s: s["windows"].get(v) is True, f"View > {v} opens it", timeout=10)
            check(s is not None, f"the View menu opens {v}")
    finally:
        d.close()
    d = Display("--example", "--view", "gallery")  # alone, so nothing covers its tiles
    try:
        s = d.wait_for(lambda s: "gallery.streaming_llm" in s["widgets"], "the gallery's StreamingLLM tile", timeout=10)
        check(s is not None, "the gallery shows the streaming_llm pattern")
        if s:
            d.click(*center(s["widgets"]["gallery.streaming_llm"]))
            s = d.wait_for(lambda s: settled(s) and s["mask"] == "streaming_llm", "streaming_llm picked")
            check(s is not None, "picking the StreamingLLM tile sets the mask")
            if s:
                rows = s["allowed"]
                n = len(rows)
                sinks, window = 4, 2  # the defaults: the first 4 tokens and the last 3
                ok = all(rows[i][j] == ("1" if j <= i and (j < sinks or i - j <= window) else "0")
                         for i in range(n) for j in range(n))
                check(ok, f"the window's pattern is sinks plus a causal window ({rows})")
    finally:
        d.close()


def test_long():
    """20,000 tokens pasted into the example: computed as an attention field, every head's
    overview drawn; a span typed into the open head zooms until token labels appear over exact
    tiles; the hovered cell's weight is what attnlab-cli export writes for that cell; a token
    search jumps to its hits; Esc cancels a long computation and the last picture stays."""
    n = 20000
    words = " ".join(f"w{(i * 7919) % 3001}" for i in range(n))
    cli = os.path.join(os.path.dirname(APP), "attnlab-cli")
    d = Display("--example")
    try:
        s = d.wait_for(settled, "the example")
        if not s:
            return
        subprocess.run(["xclip", "-selection", "clipboard"], input=words.encode(), env=d.env, timeout=10)
        x, y, w, h = s["text_box"]
        d.click(x + w / 2, y + h / 2)
        d.chord("ctrl+a")
        d.chord("ctrl+v")
        t0 = time.time()
        s = d.wait_for(lambda s: settled(s) and s["n_tokens"] == n, "20,000 tokens computed", timeout=120)
        if not s:
            return
        check(s["field"] is True and s["overview"][2] == 40, f"computed as a field, overviews pooling 40 x 40 ({s['overview']})")
        check(len(s["heads"]) == 4 and all(h["n_q"] == n for h in s["heads"]), "four heads of 20,000 rows drawn")
        print(f"20,000 tokens pasted: picture in {time.time() - t0:.1f} s")
        img = Image.open(d.screenshot("long-overview")).convert("RGB")
        h0 = s["heads"][0]
        colours = set(img.getpixel((int(h0["x"] + h0["w"] * fx), int(h0["y"] + h0["h"] * 0.9)))
                      for fx in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
        above = img.getpixel((int(h0["x"] + h0["w"] * 0.9), int(h0["y"] + h0["h"] * 0.1)))
        below = img.getpixel((int(h0["x"] + h0["w"] * 0.1), int(h0["y"] + h0["h"] * 0.9)))
        check(len(colours) >= 3 and above != below, f"head 0's overview has colours below the diagonal, background above ({colours})")
        d.click(h0["x"] + h0["w"] * 0.2, h0["y"] + h0["h"] * 0.8)
        s = d.wait_for(lambda s: s["detail_head"] == 0 and "detail.rows" in s["widgets"], "head 0 opened large")
        if not s:
            return
        check(s["ruler"] is True and s["labels_drawn"] is False, "the whole head: a ruler of indices, no labels")
        # span navigation: rows typed, the block on the diagonal shown at full resolution
        d.click(*center(s["widgets"]["detail.rows"]))
        d.xdo("type", "15000:15024")
        d.chord("Return")
        s = d.wait_for(lambda s: s["pan"] == [15000.0, 15000.0] and s["labels_drawn"] and s["tiles_drawn"] >= 1
                       and not s["tiles_busy"], "the span 15000:15024 with labels over an exact tile", timeout=30)
        if not s:
            return
        check(s["tile_level"] == 0, f"the finest level of the pyramid ({s['tile_level']})")
        d.screenshot("long-span")
        cx, cy, cw, chh = s["widgets"]["detail.cells"]
        vis = n / s["zoom"]
        cell = cw / vis
        i, j = 15012, 15004  # causal: allowed
        d.xdo("mousemove", str(int(cx + (j - 15000 + 0.5) * cell)), str(int(cy + (i - 15000 + 0.5) * cell)))
        s = d.wait_for(lambda s: s["hover"] == {"head": 0, "query": i, "key": j}, f"hover on ({i}, {j})", timeout=10)
        if s:
            session = json.load(open(os.path.join(HERE, "..", "..", "assets", "sessions", "example.json")))
            session["text"] = words
            sp, out = os.path.join(TMP, "long.json"), os.path.join(TMP, "cell.npy")
            json.dump(session, open(sp, "w"))
            p = subprocess.run([cli, "export", sp, "--layer", "0", "--head", "0", "--matrix", "weights",
                                "--rows", f"{i}:{i + 1}", "--cols", f"{j}:{j + 1}", "-o", out], capture_output=True, timeout=120)
            if check(p.returncode == 0, f"attnlab-cli export of the cell ({p.stderr.decode().strip()})"):
                import numpy as np
                want = float(np.load(out)[0, 0])
                got = s["hover_weight"]
                check(want > 0 and abs(got - want) <= 1e-6 * max(1.0, abs(want)) + 1e-9,
                      f"the hovered weight {got!r} equals attnlab-cli export's {want!r}")
        # span selection by dragging along the query axis: rows 15002..15009 shown on release
        s = d.state()
        if check("detail.axis_rows" in s["widgets"], "the query axis takes a drag"):
            ax, ay, aw, ah = s["widgets"]["detail.axis_rows"]
            y_of = lambda r: int(cy + (r - 15000 + 0.5) * cell)
            d.xdo("mousemove", str(int(ax + aw / 2)), str(y_of(15002)))
            d.xdo("mousedown", "1")
            d.xdo("mousemove", str(int(ax + aw / 2)), str(y_of(15006)))
            d.xdo("mousemove", str(int(ax + aw / 2)), str(y_of(15009)))
            d.xdo("mouseup", "1")
            s = d.wait_for(lambda s: s["pan"] == [15002.0, 15002.0] and abs(s["zoom"] - n / 8) < 1e-3,
                           "the dragged span 15002:15010 shown", timeout=10)
            check(s is not None, "dragging along the query axis shows that span")
        # token search: Enter jumps to the first hit
        s = d.state()
        d.click(*center(s["widgets"]["detail.find"]))
        d.xdo("type", "w2999")
        d.chord("Return")
        s = d.wait_for(lambda s: len(s["find_hits"]) > 0 and s["pan"][1] != 15000.0, "a search hit shown", timeout=10)
        if s:
            hit = s["find_hits"][0]
            check(s["tokens"][hit] == "w2999" and s["pan"][1] <= hit < s["pan"][1] + n / s["zoom"],
                  f"the first hit ({hit}) is in view (rows from {s['pan'][1]})")
        # a token chip clicked: its neighbourhood in the open head (rows and columns 0..31 for token 5)
        s = d.state()
        if check("chip.5" in s["widgets"], "the token chips are clickable"):
            d.click(*center(s["widgets"]["chip.5"]))
            s = d.wait_for(lambda s: s["pan"] == [0.0, 0.0] and abs(s["zoom"] - n / 32) < 1e-3, "token 5's span shown", timeout=10)
            check(s is not None, "clicking a token chip shows its span")
        # Esc cancels: a wider model makes the next computation long
        d.chord("Escape")
        s = reveal(d, "model.d_model")
        d.click(*center(s["widgets"]["model.d_model"]))
        d.chord("ctrl+a")
        d.xdo("type", "1024")
        d.chord("Return")
        s = d.wait_for(lambda s: "progress.cancel" in s["widgets"], "the progress bar", timeout=30)
        if check(s is not None, "the long computation shows its progress"):
            d.chord("Escape")
            s = d.wait_for(lambda s: not s["computing"] and s["cancelled"] == s["posted"], "cancelled by Esc", timeout=20)
            check(s is not None and s["n_tokens"] == n and s["field"], "Esc cancels and the 20,000-token picture stays")
    finally:
        d.close()


def test_compare_models():
    """One text through two models: --model-b opens a second folder as B's model; Compare says
    what runs on each side and whether the tokens align, B's next tokens are the CLI's for that
    model, the two pictures differ; the browser opens for B; "B runs A's model" goes back."""
    models = os.path.join(HERE, "..", "models")
    gpt2, llama = os.path.join(models, "tiny-gpt2"), os.path.join(models, "tiny-llama")
    d = Display("--model", gpt2, "--model-b", llama)
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("model"), "A: the tiny GPT-2")
        if not s:
            return
        menu(d, "menu.view", "menu.view.compare")
        s = d.wait_for(lambda s: s.get("b_shown") and s.get("b_text") == s["text"] and "compare.b_open_model" in s["widgets"],
                       "B: the same text through the tiny Llama")
        if not s:
            return
        check(s["b_model"] == llama, f"B's model is the second folder: {s['b_model']}")
        check("what runs: A model tiny-gpt2 (gpt2), B model tiny-llama (llama)" in s["compare_differs"],
              f"compare says which model runs on each side: {s['compare_differs']!r}")
        check("the text" not in s["compare_differs"], "the same text on both sides")
        al = s["compare_alignment"]
        check("do not align" in al or "align" in al or "different at" in al, f"the token alignment is stated: {al!r}")
        out = subprocess.run([CLI, "compute", "--model", llama, "--text", s["text"]], capture_output=True, check=True).stdout
        want = [e["id"] for e in json.loads(out)["next_tokens"][-1]][:3]
        check(s["b_next_ids"] == want, f"B's next tokens = the CLI's for the tiny Llama: {s['b_next_ids']} vs {want}")
        img = Image.open(d.screenshot("compare-models")).convert("RGB")
        if "compare.a" in s["widgets"] and "compare.b" in s["widgets"]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = s["widgets"]["compare.a"], s["widgets"]["compare.b"]
            w, h = int(min(aw, bw)), int(min(ah, bh))
            pa = img.crop((int(ax), int(ay), int(ax) + w, int(ay) + h)).getdata()
            pb = img.crop((int(bx), int(by), int(bx) + w, int(by) + h)).getdata()
            differ = sum(1 for p, q in zip(pa, pb) if p != q)
            check(differ > w * h // 20, f"A's and B's pictures differ on screen ({differ} of {w * h} pixels)")
        d.click(*center(s["widgets"]["compare.b_open_model"]))
        s = d.wait_for(lambda s: s["windows"]["browser"], "the folder browser opens for B")
        d.chord("Escape")
        s = d.wait_for(lambda s: "compare.b_model_a" in s["widgets"], "B's own model: the button back to A's")
        if s:
            d.click(*center(s["widgets"]["compare.b_model_a"]))
            s = d.wait_for(lambda s: s["b_model"] == "" and "what runs" not in s["compare_differs"] and
                           s["compare_alignment"].startswith("the tokens align"), "B runs A's model again")
            check(s is not None, "B runs A's model again: nothing differs, the tokens align")
        # StreamingLLM's observation: B masks the sink; its next tokens are the CLI's --mask-sink 4
        s = d.wait_for(lambda s: "compare.b_sink" in s["widgets"], "the sink checkbox")
        if s:
            d.click(*center(s["widgets"]["compare.b_sink"]))
            s = d.wait_for(lambda s: "k >= sinks" in s.get("b_intervention", "") and s.get("b_next_ids"), "B with the sink masked")
            if s:
                out = subprocess.run([CLI, "compute", "--model", gpt2, "--text", s["text"], "--mask-sink", "4"],
                                     capture_output=True, check=True).stdout
                want = [e["id"] for e in json.loads(out)["next_tokens"][-1]][:3]
                check(s["b_next_ids"] == want, f"B's next tokens with the sink masked = the CLI's --mask-sink 4: {s['b_next_ids']} vs {want}")
                check("intervention" in s["compare_differs"], f"compare says B differs in its intervention ({s['compare_differs']!r})")
                d.screenshot("compare-sink")
    finally:
        d.close()


def test_lens():
    """The Logit lens view on the tiny GPT-2: every layer's top token per position equals the
    CLI's --logit-lens, the cells are coloured by probability (the most and least likely cells
    differ in colour, the brighter the likelier), and hovering a cell names it. The window comes
    from an imgui.ini of a larger screen, hanging off this one: it is moved wholly inside."""
    models = os.path.join(HERE, "..", "models")
    gpt2 = os.path.join(models, "tiny-gpt2")
    # the window as a larger screen left it (imgui.ini): its right part beyond this screen's edge
    os.makedirs(os.path.join(CONFIG, "attnlab"), exist_ok=True)
    with open(os.path.join(CONFIG, "attnlab", "imgui.ini"), "w") as f:
        f.write(f"[Window][Logit lens###lens]\nPos={W - 300},200\nSize=900,500\nCollapsed=0\n\n")
    d = Display("--model", gpt2)
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("model"), "the tiny GPT-2")
        if not s:
            return
        menu(d, "menu.view", "menu.view.lens")
        s = d.wait_for(lambda s: s.get("lens") and s["lens"]["ids"] and s["lens"]["grid"][2] > 0, "the logit lens grid")
        if not s:
            return
        out = json.loads(subprocess.run([CLI, "compute", "--model", gpt2, "--text", s["text"], "--logit-lens"],
                                        capture_output=True, check=True).stdout)
        want = [[e["id"] for e in row] for row in out["logit_lens"]]
        check(s["lens"]["ids"] == want, f"each layer's top tokens = the CLI's --logit-lens ({len(want)} layers)")
        ps = s["lens"]["p"]
        s = d.wait_for(lambda s: s["lens"]["grid"][0] + 400 < W, "the restored window brought wholly on screen")
        check(s is not None, f"a window restored from a larger screen is moved inside this one ({s and s['lens']['grid']})")
        if not s:
            return
        gx, gy, gw, gh = s["lens"]["grid"]
        layers, n = len(ps), len(ps[0])
        cw, ch = gw / n, gh / layers
        img = Image.open(d.screenshot("lens")).convert("RGB")

        def colour(l, i):  # the cell's fill: the median of its inside (its text and outline are few pixels)
            x0, y0 = int(gx + i * cw) + 3, int(gy + (layers - 1 - l) * ch) + 3
            px = [img.getpixel((x, y)) for x in range(x0, int(x0 + cw) - 6) for y in range(y0, int(y0 + ch) - 6)]
            return tuple(sorted(p[k] for p in px)[len(px) // 2] for k in range(3))
        cells = [(l, i) for l in range(layers) for i in range(n) if gx + (i + 1) * cw < W]
        lo, hi = min(cells, key=lambda c: ps[c[0]][c[1]]), max(cells, key=lambda c: ps[c[0]][c[1]])
        a, b = colour(*lo), colour(*hi)
        check(ps[hi[0]][hi[1]] - ps[lo[0]][lo[1]] > 0.2 and sum(b) > sum(a) + 60,
              f"the likeliest cell {hi} (p {ps[hi[0]][hi[1]]:.2f}) is brighter than the least {lo} (p {ps[lo[0]][lo[1]]:.2f}): {b} vs {a}")
        d.xdo("mousemove", str(int(gx + 1.5 * cw)), str(int(gy + (layers - 1) * ch + ch / 2)))
        s = d.wait_for(lambda s: s["lens"]["hover"] == [0, 1], "hovering layer 0, position 1")
        check(s is not None, "the hovered cell is named (layer 0, position 1)")
    finally:
        d.close()


def test_training():
    """The Training view: Start trains the built-in induction run live (the step count rises, the
    loss curve is drawn and the probe heatmaps change colour), Pause stops it (the step holds),
    and the scrubber's left end shows the first checkpoint again: the heads as they were."""
    d = Display("--view", "training")
    try:
        # laid out: the heads and the loss chart have their sizes (a window's first frame has none)
        s = d.wait_for(lambda s: s.get("training", {}).get("log_rows", 0) >= 1 and s["widgets"].get("training.start")
                       and s["training"]["heads_rect"][2] > 10 and s["training"]["loss_rect"][2] > 10,
                       "the training view with its first evaluation")
        if not s:
            return
        hx, hy, hw, hh = s["training"]["heads_rect"]
        box = (int(hx), int(hy), int(hx + hw), int(hy + hh))
        lx, ly, lw, lh = s["training"]["loss_rect"]

        def heads(name):
            img = Image.open(d.screenshot(name)).convert("RGB")
            return img, np.asarray(img.crop(box), dtype=np.int16)
        _, before = heads("training-start")
        d.click(*center(s["widgets"]["training.start"]))
        s = d.wait_for(lambda s: s["training"]["step"] >= 600 and s["training"]["log_rows"] >= 20, "600 training steps", timeout=180)
        if not s:
            return
        check(s["training"]["running"], "training runs after Start")
        img, after = heads("training-running")
        changed = np.abs(after - before).sum(axis=2) > 30
        check(changed.mean() > 0.02, f"the probe heatmaps changed as the heads trained ({changed.mean():.3f} of their pixels)")
        # the loss curves: orange (train) and blue (validation) pixels inside the chart's frame
        chart = np.asarray(img.crop((int(lx) + 2, int(ly) + 2, int(lx + lw) - 2, int(ly + lh) - 2)), dtype=np.int16)
        orange = ((chart[..., 0] > 200) & (chart[..., 1] > 130) & (chart[..., 1] < 190) & (chart[..., 2] < 60)).sum()
        check(orange > 50, f"the train-loss curve is drawn ({orange} orange pixels)")
        d.click(*center(s["widgets"]["training.start"]))  # Pause
        s = d.wait_for(lambda s: not s["training"]["running"], "training paused")
        if not s:
            return
        step = s["training"]["step"]
        time.sleep(1.0)
        s = d.state()
        check(s["training"]["step"] == step, f"paused: the step holds at {step} ({s['training']['step']} a second later)")
        x, y, w, h = s["widgets"]["training.scrub"]
        d.click(x + 3, y + h / 2)
        s = d.wait_for(lambda s: s["training"]["scrub"] == 0 and s["training"]["probe_step"] == 0, "the first checkpoint")
        if not s:
            return
        _, back = heads("training-scrubbed")
        same = (np.abs(back - before).sum(axis=2) <= 30).mean()
        check(same > 0.98, f"scrubbed back to step 0, the heads look as they did before training ({same:.3f} of pixels alike)")
        t = s["training"]
        print(f"training: {t['steps_per_second']:.0f} steps/s in the window; frame median / p99 while training "
              f"{t['frame_ms_p50']:.1f} / {t['frame_ms_p99']:.1f} ms over {t['frames_while_training']} frames")
        # step 0 (A) against the last checkpoint (B) in Compare A / B, in one step
        last = s["training"]["checkpoints"][-1]
        d.click(*center(s["widgets"]["training.compare"]))
        s = d.wait_for(lambda s: s.get("model", {}).get("dir", "").endswith("step-0") and s.get("b_model", "").endswith(f"step-{last}")
                       and not s["model_loading"] and s["windows"]["compare"], "both checkpoints loaded in Compare A / B", timeout=60)
        if not s:
            print("status:", d.state().get("status"), d.state().get("model"))
        if s:
            s = d.wait_for(lambda s: settled(s) and s.get("b_shown", 0) and s["tokens"] and s.get("compare_differs"),
                           "A and B computed")
            if s:
                check("model" in s["compare_differs"], f"the window says A and B differ in their model ({s['compare_differs']!r})")
                d.screenshot("training-compare")
    finally:
        d.close()


def test_decode():
    """Issue 14: the decode view steps through inference - after a prefill, each step adds a query
    row and its token to every layer's KV cache; under StreamingLLM (2 sinks, window 4) the cache
    stops growing at 7 and evicts one key a step; GQA's groups are drawn as such."""
    session = os.path.join(TMP, "decode.json")
    with open(session, "w") as f:
        json.dump({"text": " ".join(f"w{i}" for i in range(20)),
                   "model": {"n_layers": 2, "kv_sharing": "gqa", "n_kv_heads": 2},
                   "attention": {"mask": {"kind": "streaming_llm", "sinks": 2, "window": 4}}}, f)
    d = Display("--session", session, "--view", "decode")
    try:
        s = d.wait_for(lambda s: settled(s) and "decode" in s and s["decode"]["layers"], "the decode view")
        if not s:
            return
        dec = s["decode"]
        check(dec["prefill"] == 10 and dec["step"] == 0 and dec["query"] == 9, f"it opens on the prefill of half the tokens ({dec})")
        check(all(L["kv_heads"] == 2 for L in dec["layers"]) and len(dec["layers"]) == 2, "2 layers, 2 K/V heads each (GQA)")
        seen = []
        for step in range(1, 4):
            s = d.wait_for(lambda s: "decode.next" in s["widgets"], "the step button")
            d.click(*center(s["widgets"]["decode.next"]))
            s = d.wait_for(lambda s, step=step: s.get("decode", {}).get("step") == step, f"step {step}")
            if not s:
                return
            seen.append(s["decode"])
        # query 9 + step: kept = 2 sinks + 5 keys of the window; evicted = the rest of 0..query
        for dec in seen:
            q = dec["query"]
            check(all(L["kept"] == 7 and L["evicted"] == q + 1 - 7 for L in dec["layers"]),
                  f"step {dec['step']}: 7 kept, {q + 1 - 7} evicted ({dec['layers']})")
            check(all(L["bytes"] == 2 * 7 * 2 * 16 * 4 for L in dec["layers"]), "bytes: 2 x 7 keys x 2 K/V heads x d_head 16 x 4")
        x, y, w, h = s["widgets"]["decode.cache"]
        img = Image.open(d.screenshot("decode")).convert("RGB")
        colours = {img.getpixel((int(px), int(y + 8))) for px in range(int(x), int(x + w), 2)}
        check((64, 170, 160) in colours and (240, 200, 80) in colours and (70, 70, 76) in colours,
              "the cache row draws kept, new and evicted entries")
        # chunked prefill: chunks of 3 rows after the prefill of 10
        cx, cy, cw, ch = s["widgets"]["decode.chunk"]
        d.click(cx + cw * 0.3, cy + ch / 2)
        d.chord("ctrl+a")
        d.xdo("type", "3")
        d.xdo("key", "Return")
        s = d.wait_for(lambda s: s.get("decode", {}).get("chunk") == 3 and s["decode"]["step"] == 0, "chunks of 3")
        if s:
            d.click(*center(s["widgets"]["decode.next"]))
            s = d.wait_for(lambda s: s.get("decode", {}).get("step") == 1, "the first chunk")
            if s:
                d.screenshot("decode-chunk")
                dec = s["decode"]
                check((dec["first"], dec["query"]) == (10, 12), f"the first chunk is rows 10..12 ({dec['first']}..{dec['query']})")
                check(all(L["kept"] == 2 + 5 and L["evicted"] == 13 - 7 for L in dec["layers"]),
                      f"row 12's cache: 2 sinks and the window of 5, the chunk's 3 tokens among them ({dec['layers'][0]})")
    finally:
        d.close()
    # differential attention: signed weights on the diverging map (red above 0, blue below)
    session = os.path.join(TMP, "differential.json")
    with open(session, "w") as f:
        json.dump({"text": "The cat sat on the mat because it was warm and the dog slept",
                   "attention": {"differential": {"enabled": True, "lambda": 0.5}}}, f)
    png, st = screenshot_run(session, "differential")
    check(st.get("signed_weights") is True, "differential attention: the weights are drawn as signed")
    img = Image.open(png).convert("RGB")
    hd = st["heads"][0]
    px = [img.getpixel((int(hd["x"] + x), int(hd["y"] + y))) for x in range(0, int(hd["w"]), 3) for y in range(0, int(hd["h"]), 3)]
    reds = sum(1 for r, g, b in px if r - b > 40)
    blues = sum(1 for r, g, b in px if b - r > 40)
    check(reds > 0 and blues > 0, f"differential: red (positive) and blue (negative) cells in head 0 ({reds}, {blues})")
    # causal: the cache grows by one a step
    d = Display("--example", "--view", "decode")
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("decode", {}).get("layers"), "the decode view on the example")
        if s:
            k0 = s["decode"]["layers"][0]["kept"]
            d.click(*center(s["widgets"]["decode.next"]))
            s = d.wait_for(lambda s: s.get("decode", {}).get("step") == 1, "one step")
            if s:
                check(s["decode"]["layers"][0]["kept"] == k0 + 1 and s["decode"]["layers"][0]["evicted"] == 0,
                      f"causal: the cache grows by one token a step ({k0} -> {s['decode']['layers'][0]['kept']})")
    finally:
        d.close()


def test_expressions():
    """The block map under the mask (a 1024-token causal session, 128-blocks): its counts are the
    CLI's `blocks`, its pixels full below the diagonal and empty above; then typing expressions."""
    session = os.path.join(TMP, "blocks1024.json")
    with open(session, "w") as f:
        json.dump({"text": " ".join(f"w{i}" for i in range(1024)), "attention": {"mask": {"kind": "causal"}}}, f)
    png, st = os.path.join(TMP, "blocks.png"), os.path.join(TMP, "blocks.json")
    p = subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {W}x{H}x24", APP, "--session", session, "--view", "mask",
                        "--screenshot", png, "--frames", "20", "--no-mouse", "--state-file", st,
                        "--width", str(W), "--height", str(H)], capture_output=True, timeout=120)
    check(p.returncode == 0, f"blocks: app exits 0 ({p.stderr.decode()[-300:]!r})")
    if p.returncode == 0:
        state = json.load(open(st))
        cli = json.loads(subprocess.run([CLI, "blocks", session], capture_output=True, check=True).stdout)
        got = state.get("block_map", {})
        check(got and (got["full"], got["partial"], got["empty"], got["block"]) ==
              (cli["full"], cli["partial"], cli["empty"], cli["block"][0]) == (28, 8, 28, 128),
              f"the window's block map counts are the CLI's (window {got}, CLI {cli['full']}/{cli['partial']}/{cli['empty']})")
        x, y, w, h = state["widgets"]["mask.blocks"]
        img = Image.open(png).convert("RGB")
        at = lambda r, c: img.getpixel((int(x + (c + 0.5) * w / 8), int(y + (r + 0.5) * h / 8)))
        check(at(7, 0) == (64, 170, 160) and at(3, 1) == (64, 170, 160), f"full blocks below the diagonal ({at(7, 0)})")
        check(at(2, 2) == (230, 170, 60), f"partial blocks on the diagonal ({at(2, 2)})")
        check(at(0, 7) not in ((64, 170, 160), (230, 170, 60)), f"empty blocks above it ({at(0, 7)})")
    typing_expressions()


@on_example
def typing_expressions(d, s):
    """Issue 14: a mask typed as an expression draws its pattern; a syntax error is pointed at
    (a red mark under its character) and the last picture stays; a preset fills the formula and
    its parameters; a score modifier chosen from its presets computes."""
    n = s["n_tokens"]
    choose(d, "attention.mask.kind", "expression")
    s = d.wait_for(lambda s: settled(s) and s["mask"] == "expression", "the expression mask shown")
    if not s:
        return
    check(s["allowed"] == ["1" * (i + 1) + "0" * (n - i - 1) for i in range(n)], "the default expression k <= q is causal")

    def typed(text):
        s = reveal(d, "attention.mask.expression")
        d.click(*center(s["widgets"]["attention.mask.expression"]))
        d.chord("ctrl+a")
        d.xdo("type", "--delay", "30", text)

    typed("abs(q - k) <= 1 or k == 0")
    want = ["".join("1" if abs(i - j) <= 1 or j == 0 else "0" for j in range(n)) for i in range(n)]
    s = d.wait_for(lambda s: settled(s) and s["allowed"] == want, "the typed band with a first column")
    if not s:
        return
    d.xdo("mousemove", "5", str(H - 5))
    s = d.wait_for(settled, "settled")
    png = d.screenshot("expression-band")
    background = head0_pixels(png, s)
    wrong = [(i, j) for i in range(n) for j in range(n) if (want[i][j] == "1") == background[i][j]]
    check(not wrong, f"the typed expression is drawn: background exactly where it masks (wrong at {wrong[:5]})")

    # a syntax error: pointed at, the message under the field, the last picture kept. One key
    # makes it (typing it whole would pass through valid formulas - "... or k" - and change the
    # last good picture): a second k after "or k"
    s = reveal(d, "attention.mask.expression")
    d.click(*center(s["widgets"]["attention.mask.expression"]))
    d.xdo("key", "End")
    d.xdo("key", "--repeat", "5", "--delay", "40", "Left")
    d.xdo("type", "k")
    s = d.wait_for(lambda s: "attention.mask.expression" in s.get("expression_marks", {}) and
                   any("at character 20" in p for p in s["problems"]), "the error pointed at")
    if not s:
        return
    mark = s["expression_marks"]["attention.mask.expression"]
    check(mark["position"] == 19 and "kk" in mark["message"], f"the mark is at character 20, 'kk' ({mark})")
    fx, fy, fw, fh = s["widgets"]["attention.mask.expression"]
    check(fx < mark["x"] < fx + fw, f"the mark lies under the field ({mark['x']:.0f} in {fx:.0f}..{fx + fw:.0f})")
    check(s["allowed"] == want, "the last good pattern stays while the expression is wrong")
    png = d.screenshot("expression-error")
    img = Image.open(png).convert("RGB")
    reds = [(x, y) for x in range(int(fx), int(fx + fw)) for y in range(int(fy + fh - 4), int(fy + fh + 8))
            if (lambda c: c[0] > 200 and c[1] < 120 and c[2] < 120)(img.getpixel((x, y)))]
    check(reds and abs(sum(x for x, _ in reds) / len(reds) - mark["x"]) < 8,
          f"red pixels under the field, centred on the mark ({len(reds)} red pixels)")

    # a preset: its formula and parameters, and its pattern (StreamingLLM: 4 sinks, window 2)
    choose(d, "attention.mask.expression.preset", "streaming_llm")
    want = ["".join("1" if j <= i and (j < 4 or i - j <= 2) else "0" for j in range(n)) for i in range(n)]
    s = d.wait_for(lambda s: settled(s) and s["allowed"] == want and not s["problems"], "the StreamingLLM preset's pattern")
    if s:
        check("attention.mask.parameters.sinks" in s["widgets"] and "attention.mask.parameters.window" in s["widgets"],
              "a control per parameter (sinks, window)")
        check(s["mask_expression"] == "k <= q and (k < sinks or q - k <= window)", "the preset's formula in the field")

    # a score modifier from its presets: soft-capping
    choose(d, "attention.score_mod.expression.preset", "soft_cap")
    s = d.wait_for(lambda s: settled(s) and s["score_mod"] == "cap * tanh(score / cap)" and not s["problems"],
                   "the soft-capping score_mod computed")
    if s:
        check("attention.score_mod.parameters.cap" in s["widgets"], "the cap parameter has its control")


def test_field_metrics():
    """Issue 11: the Metrics view of a long sequence (an attention field, 3000 tokens) - the head
    similarity from exact tiles, the whole n x n rollout of every layer (a field of at most 4096
    tokens keeps it), and chosen query rows of it through layer 1, equal to what attnlab-cli
    export writes for those rows (by vector x matrix products, another path)."""
    import random
    rnd = random.Random(3)
    words = "the cat sat on a mat while dogs ran over hills and birds sang near rivers".split()
    session = os.path.join(TMP, "field-metrics.json")
    with open(session, "w") as f:
        json.dump({"text": " ".join(rnd.choice(words) for _ in range(3000)),
                   "model": {"d_model": 64, "n_heads": 4, "n_layers": 2, "seed": 42},
                   "attention": {"mask": {"kind": "sliding_window", "window": 64, "causal": True}}}, f)
    d = Display("--session", session, "--view", "metrics")
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("metrics_panels"), "the metrics panels of the field")
        if not s:
            return
        n = s["n_tokens"] if "n_tokens" in s else 3000
        check(any(p["title"].startswith("head similarity") for p in s["metrics_panels"]),
              f"a head-similarity panel for the field ({[p['title'] for p in s['metrics_panels']]})")
        check([p["title"] for p in s["metrics_panels"]].count("attention rollout through layer 1") == 1,
              f"the whole rollout through layer 1 is a panel ({[p['title'] for p in s['metrics_panels']]})")
        # layer 1: the right part of the slider (its rect holds the label "layer" after it)
        x, y, w, h = s["widgets"]["layer"]
        d.click(x + w * 0.65, y + h / 2)
        s = d.wait_for(lambda s: s["layer"] == 1 and "metrics.rollout_compute" in s["widgets"], "layer 1")
        if not s:
            return
        d.click(*center(s["widgets"]["metrics.rollout_compute"]))
        s = d.wait_for(lambda s: s["field_rollout"]["layer"] == 1 and len(s["field_rollout"]["rows"]) == 4
                       and not s["field_rollout"]["running"], "the rollout of rows 2996..2999 through layer 1")
        if not s:
            return
        rows = s["field_rollout"]["rows"]
        out = os.path.join(TMP, "field-rollout.npy")
        p = subprocess.run([CLI, "export", session, "--layer", "1", "--matrix", "rollout", "--rows", "2996:3000", "-o", out],
                           capture_output=True)
        if check(p.returncode == 0, f"attnlab-cli export of the rollout rows ({p.stderr.decode().strip()})"):
            want = np.load(out)
            for i, r in enumerate(rows):
                check(r["row"] == 2996 + i and r["argmax"] == int(np.argmax(want[i]))
                      and abs(r["max"] - float(want[i].max())) <= 1e-5 * max(1.0, abs(float(want[i].max()))),
                      f"row {r['row']}: the window's largest value {r['max']:.6g} at token {r['argmax']} is the CLI's "
                      f"({float(want[i].max()):.6g} at {int(np.argmax(want[i]))})")
                check(abs(r["sum"] - 1) < 1e-3, f"row {r['row']} sums to 1 ({r['sum']:.6f})")
        x, y, w, h = s["widgets"]["metrics.rollout"]
        img = Image.open(d.screenshot("field-rollout")).convert("RGB")
        colours = {img.getpixel((int(px), int(y + h / 8))) for px in range(int(x), int(min(x + w, img.width)), 3)}
        check(len(colours) >= 3, f"the rollout rows are drawn ({len(colours)} colours in the first row)")
    finally:
        d.close()
    # a memory budget (prefs.json) below the F32 field of 20,000 tokens x 12 layers but above its
    # F16 one: q and k are held as F16, and the status bar says so
    session = os.path.join(TMP, "field-f16.json")
    with open(session, "w") as f:
        json.dump({"text": " ".join(rnd.choice(words) for _ in range(20000)),
                   "model": {"d_model": 64, "n_heads": 4, "n_layers": 12, "seed": 42},
                   "attention": {"mask": {"kind": "causal_sliding_window", "window": 64}}}, f)
    cfg = os.path.join(TMP, "cfg-f16")
    os.makedirs(os.path.join(cfg, "attnlab"), exist_ok=True)
    with open(os.path.join(cfg, "attnlab", "prefs.json"), "w") as f:
        json.dump({"memory_budget_gb": 0.42}, f)
    png, st = os.path.join(TMP, "field-f16.png"), os.path.join(TMP, "field-f16.json.state")
    p = subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {W}x{H}x24", APP, "--session", session, "--screenshot", png,
                        "--frames", "3", "--no-mouse", "--state-file", st, "--width", str(W), "--height", str(H)],
                       capture_output=True, timeout=180, env=dict(os.environ, XDG_CONFIG_HOME=cfg))
    if check(p.returncode == 0, f"the F16 field: app exits 0 ({p.stderr.decode()!r})"):
        state = json.load(open(st))
        check(state.get("field_qk_dtype") == "F16" and not state["problems"],
              f"above the budget the field holds q and k as F16 ({state.get('field_qk_dtype')}, {state['problems']})")


def five_keystrokes(d, s, drawn, timeout):
    """Types a, b, c, d, e at the end of the text, each once the one before is on screen (drawn(s, c)
    of a settled state after it was posted) and 0.3 s later; the state after each, or None when
    one was not drawn in time."""
    x, y, w, h = s["text_box"]
    d.click(x + w / 2, y + h / 2)
    d.chord("ctrl+End")
    states = []
    for c in "abcde":
        posted = s["posted"]
        d.xdo("type", c)
        s = d.wait_for(lambda s: settled(s) and s["posted"] > posted and drawn(s, c), f"the keystroke '{c}' drawn",
                       timeout=timeout)
        if not s:
            return None
        states.append(s)
        time.sleep(0.3)
    return states


def test_edit_latency():
    """Issue 11: an edit's latency in the window - a character typed at the end of the text of
    256 and of 2048 tokens (the bench's shape: d_model 768, 12 heads) until its heads are on
    screen (edit_to_picture_ms: from the post to the frame that swaps the new pictures in). The
    figures are printed (speed is measured, not asserted); what is checked is that each keystroke
    computed a new result with the typed text and drew it."""
    for n in (256, 2048):
        words = " ".join(f"w{(i * 7919) % 5000}" for i in range(n - 1)) + " x"
        session = os.path.join(TMP, f"latency-{n}.json")
        json.dump({"text": words, "model": {"d_model": 768, "n_heads": 12, "seed": 42}}, open(session, "w"))
        d = Display("--session", session)
        try:
            s = d.wait_for(lambda s: settled(s) and s["n_tokens"] == n, f"{n} tokens", timeout=120)
            if not s:
                return
            states = five_keystrokes(d, s, lambda s, c: s["tokens"][-1].endswith(c), timeout=60)
            if not states:
                return
            s = states[-1]
            times = [t["edit_to_picture_ms"] for t in states]
            parts = [(t["shown_compute_ms"], t["shown_prepare_ms"]) for t in states]
            check(s["n_tokens"] == n and s["tokens"][-1] == "xabcde" and all(t > 0 for t in times),
                  f"{n} tokens: five keystrokes, five pictures, the last word {s['tokens'][-1]!r}")
            times.sort()
            compute = sorted(p[0] for p in parts)[2]
            prepare = sorted(p[1] for p in parts)[2]
            print(f"edit latency at {n} tokens (d_model 768, 12 heads): keystroke -> picture median "
                  f"{times[2]:.0f} ms (min {times[0]:.0f}, max {times[-1]:.0f}; of it compute {compute:.0f}, pictures "
                  f"{prepare:.0f}, medians); busy frame p99 {s['busy_frame_ms_p99']:.1f} ms")
        finally:
            d.close()


def test_model_latency():
    """Issue 12's window target, measured (make bench runs it after attnlab-bench has written its
    GPT-2-small-shaped folder; not a ctest test): a 512-token text through GPT-2 small (12 layers x
    12 heads, random weights), five characters typed at its end, each until its heads are on
    screen. Prints `window_gpt2_small_keystroke n=512 <median> ms` with the compute part; checks
    that each keystroke was computed and drawn."""
    folder = sys.argv[3] if len(sys.argv) > 3 else "/tmp/attnlab-bench-gpt2-small"
    if not check(os.path.isfile(os.path.join(folder, "model.safetensors")), f"{folder} holds a model (attnlab-bench writes it)"):
        return

    def count(words):
        text = " ".join(f"w{(i * 7919) % 5000}" for i in range(words)) + " x"
        out = subprocess.run([CLI, "tokenize", "--model", folder, "--text", text], capture_output=True, check=True).stdout
        return len(json.loads(out)["ids"]), text
    lo, hi = 1, 512  # the most words whose text stays within 512 tokens (each typed letter may add one)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(mid)[0] <= 505 else (lo, mid - 1)
    n, text = count(lo)
    session = os.path.join(TMP, "gpt2-latency.json")
    json.dump({"text": text}, open(session, "w"))
    d = Display("--model", folder, "--session", session)
    try:
        s = d.wait_for(lambda s: settled(s) and s.get("model") and s["n_tokens"] == n, f"{n} tokens through the model", timeout=180)
        if not s:
            return
        states = five_keystrokes(d, s, lambda s, c: s["text"].endswith(c), timeout=120)
        if not states:
            return
        s = states[-1]
        times = [t["edit_to_picture_ms"] for t in states]
        compute = [(t["shown_compute_ms"], t["shown_prepare_ms"]) for t in states]
        check(s["text"].endswith("xabcde") and all(t > 0 for t in times), "five keystrokes, five pictures")
        print(f"window_gpt2_small_keystroke n={s['n_tokens']} {sorted(times)[2]:.0f} ms  (compute {sorted(c for c, _ in compute)[2]:.0f} ms, pictures {sorted(p for _, p in compute)[2]:.0f} ms; "
              f"min {min(times):.0f}, max {max(times):.0f})")
    finally:
        d.close()


if shutil.which("xdotool") is None or shutil.which("Xvfb") is None:
    print("FAIL: xdotool and Xvfb are required (scripts/install-deps.sh installs them)")
    sys.exit(1)
STARTED = time.time()
{"causal": test_causal, "typing": test_typing, "invalid": test_invalid, "hover": test_hover,
 "masks": test_masks, "family": test_family, "explore": test_explore, "compare": test_compare,
 "files": test_files, "classroom": test_classroom, "export": test_export, "model": test_model,
 "projector": test_projector, "scripts": test_scripts, "hostile": test_hostile, "views": test_views,
 "long": test_long, "patching": test_patching, "compare_models": test_compare_models,
 "lens": test_lens, "training": test_training, "expressions": test_expressions,
 "decode": test_decode, "field_metrics": test_field_metrics, "edit_latency": test_edit_latency,
 "quantity": test_quantity, "model_latency": test_model_latency,
 "detail_fits": test_detail_fits}[MODE]()
print(f"gui {MODE}: {time.time() - STARTED:.1f} s")
print(f"{checks['passed']} passed, {checks['failed']} failed")
sys.exit(1 if checks["failed"] or not checks["passed"] else 0)
