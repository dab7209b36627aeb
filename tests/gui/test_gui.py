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

The app writes --state-file: where each head's heatmap is drawn, in framebuffer pixels.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODE, APP = sys.argv[1], sys.argv[2]
W, H = 1280, 800
TMP = tempfile.mkdtemp(prefix="attnlab-gui-")
# preferences, recent files and the restored session live here, never in the user's own config
CONFIG = os.path.join(TMP, "config")
os.environ["XDG_CONFIG_HOME"] = CONFIG
checks = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        checks["passed"] += 1
    else:
        checks["failed"] += 1
        print("FAIL:", what)
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

    def __init__(self, *app_args, env=None):
        # An explicit display number without a lock file, checked to answer before the app
        # starts; another number when it does not (Xvfb -displayfd handed out :0 while it could
        # not be opened, when tests ran back to back).
        import random
        self.xvfb = None
        for _ in range(20):
            num = random.randint(100, 900)
            if os.path.exists(f"/tmp/.X{num}-lock") or os.path.exists(f"/tmp/.X11-unix/X{num}"):
                continue
            xvfb = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", f"{W}x{H}x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            env = dict(os.environ, DISPLAY=f":{num}", **(env or {}))
            for _ in range(50):
                if xvfb.poll() is not None:
                    break
                if subprocess.run(["xdotool", "getmouselocation"], env=env, capture_output=True).returncode == 0:
                    self.xvfb, self.display, self.env = xvfb, f":{num}", env
                    break
                time.sleep(0.1)
            if self.xvfb:
                break
            xvfb.kill()
            xvfb.wait()
        if not self.xvfb:
            raise RuntimeError("no Xvfb display could be started")
        self.state_path = os.path.join(TMP, "state.json")
        self.app = subprocess.Popen([APP, "--state-file", self.state_path, "--width", str(W), "--height", str(H),
                                     *app_args], env=self.env)

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

    def wait_for(self, pred, what, timeout=30):
        s = self.poll(pred, timeout)
        if s:
            return s
        check(False, f"timed out waiting for {what}; last state: {json.dumps(self.state())[:400]}")
        return None

    def xdo(self, *args):
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=30)
        time.sleep(0.3)  # a few frames between actions

    def click(self, x, y):
        self.xdo("mousemove", str(int(x)), str(int(y)))
        self.xdo("click", "1")

    def chord(self, keys):  # held long enough for GLFW polling to see it
        self.xdo("keydown", keys)
        time.sleep(0.1)
        self.xdo("keyup", keys)

    def screenshot(self, name):
        png = os.path.join(TMP, name + ".png")
        subprocess.run(["import", "-window", "root", png], env=self.env, check=True, timeout=30)
        return png

    def close(self):
        self.app.terminate()
        try:
            self.app.wait(10)
        except subprocess.TimeoutExpired:
            self.app.kill()
        self.xvfb.terminate()
        self.xvfb.wait(10)


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


def test_typing():
    d = Display()
    try:
        s = d.wait_for(settled, "the example session")
        if not s:
            return
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
        time.sleep(0.5)
        s = d.wait_for(settled, "settled after moving the mouse")
        png = d.screenshot("typed")
        check_pattern(png, s, causal=True, label="after typing")
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


def test_hover():
    d = Display()
    try:
        s = d.wait_for(settled, "the example session")
        if not s:
            return
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
    finally:
        d.close()


def center(rect):
    x, y, w, h = rect
    return x + w / 2, y + h / 2


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
        s = d.poll(lambda t: t["widgets"].get(path) != [x, y, w, h], timeout=3) or d.state()
    return s


def choose(d, path, choice):
    """Opens the combo `path` and clicks `choice` (rects from the state dump)."""
    s = reveal(d, path)
    d.click(*center(s["widgets"][path]))
    item = f"{path}={choice}"
    s = d.wait_for(lambda s: item in s["widgets"], f"the open combo listing {choice}")
    time.sleep(0.2)  # and where it stays: read again before clicking
    s = d.wait_for(lambda s: item in s["widgets"], f"the open combo listing {choice}")
    d.click(*center(s["widgets"][item]))


def head0_pixels(png, state):
    """Per cell of head 0: is it the background colour?"""
    bg = tuple(state["background"])
    grid = cell_colours(png, {"heads": [state["heads"][0]]})[0]
    return [[c == bg for c in row] for row in grid]


def test_masks():
    d = Display()
    try:
        s = d.wait_for(settled, "the example session")
        if not s:
            return
        shots = {}
        for kind in ("sliding_window", "strided", "block_local"):
            choose(d, "attention.mask.kind", kind)
            s = d.wait_for(lambda s: settled(s) and s["mask"] == kind, f"mask {kind} shown")
            if not s:
                return
            d.xdo("mousemove", "5", str(H - 5))
            time.sleep(0.4)
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
        time.sleep(0.3)
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
    finally:
        d.close()


def test_family():
    d = Display()
    try:
        s = d.wait_for(settled, "the example session")
        if not s:
            return
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
        time.sleep(0.4)
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
        time.sleep(0.4)
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
    finally:
        d.close()


if shutil.which("xdotool") is None or shutil.which("Xvfb") is None:
    print("FAIL: xdotool and Xvfb are required (scripts/install-deps.sh installs them)")
    sys.exit(1)
{"causal": test_causal, "typing": test_typing, "invalid": test_invalid, "hover": test_hover,
 "masks": test_masks, "family": test_family}[MODE]()
print(f"{checks['passed']} passed, {checks['failed']} failed")
sys.exit(1 if checks["failed"] or not checks["passed"] else 0)
