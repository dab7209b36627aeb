#!/usr/bin/python3
"""A randomized soak of the real window under Xvfb (a developer tool, not part of make test):
random clicks, wheel steps, keys, typing, pasted texts (long, multilingual, hostile), resizes and
full screen, for SECONDS. It reports crashes, freezes (no frame drawn for FREEZE seconds) and the
app's memory (RSS) over time.

  tools/soak.py build/attnlab [SECONDS] [SEED]
"""
import json
import os
import random
import subprocess
import sys
import time

APP = os.path.abspath(sys.argv[1])
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 300
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 1
FREEZE = 10.0

sys.argv = ["test_gui.py", "none", APP]
SRC = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gui", "test_gui.py")).read()
exec(compile(SRC.split('\nif shutil.which("xdotool")')[0], "test_gui", "exec"))  # Display, TMP, ...

rng = random.Random(SEED)
TEXTS = ["The cat sat on the mat.", "注意力 日本語 한국어 الانتباه ध्यान", "a" * 50000, " ".join(f"w{i}" for i in range(1500)),
         "", "\t\n  ", "😀 👍🏽 " * 50, "[PAD] [PAD] x"]
KEYS = ["F1", "F5", "F9", "F11", "ctrl+z", "ctrl+shift+z", "ctrl+equal", "ctrl+minus", "Escape", "Next", "Prior",
        "Right", "Left", "Return", "Tab", "ctrl+e", "ctrl+a"]


def rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1


d = Display("--example")
actions, freezes, rss = 0, [], []
try:
    d.wait_for(lambda s: s.get("shown_generation"), "the example")
    t0 = time.time()
    while time.time() - t0 < SECONDS:
        if d.app.poll() is not None:
            print(f"CRASH after {actions} actions: exit code {d.app.returncode}")
            break
        kind = rng.random()
        try:
            if kind < 0.45:
                x, y = rng.randrange(d.w), rng.randrange(d.h)
                subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", str(rng.choice([1, 1, 1, 3, 4, 5]))],
                               env=d.env, timeout=10)
            elif kind < 0.75:
                key = rng.choice(KEYS)
                subprocess.run(["xdotool", "key", key], env=d.env, timeout=10)
            elif kind < 0.85:
                subprocess.run(["xclip", "-selection", "clipboard"], input=rng.choice(TEXTS).encode(), env=d.env, timeout=10)
                subprocess.run(["xdotool", "key", "ctrl+v"], env=d.env, timeout=10)
            elif kind < 0.95:
                subprocess.run(["xdotool", "type", "--delay", "20", rng.choice(["abc ", "12", "x", " the "])], env=d.env, timeout=20)
            else:
                wid = subprocess.run(["xdotool", "search", "--name", "attnlab"], env=d.env, capture_output=True).stdout.split()
                if wid:
                    subprocess.run(["xdotool", "windowsize", wid[0], str(rng.randrange(320, d.w)), str(rng.randrange(240, d.h))],
                                   env=d.env, timeout=10)
        except subprocess.TimeoutExpired:
            pass
        actions += 1
        s0 = d.state()
        f0 = s0["frame"] if s0 else 0
        start = time.time()
        while time.time() - start < FREEZE:
            s = d.state()
            if s and s["frame"] > f0:
                break
            time.sleep(0.05)
        else:
            freezes.append((round(time.time() - t0), actions))
            print(f"FREEZE: no frame for {FREEZE} s after action {actions} ({time.time() - t0:.0f} s in)", flush=True)
        if actions % 50 == 0:
            rss.append((round(time.time() - t0), round(rss_mb(d.app.pid))))
finally:
    alive = d.app.poll() is None
    d.close()
print(f"soak: {actions} actions in {SECONDS:.0f} s, seed {SEED}: {'alive' if alive else 'exited'}, {len(freezes)} freezes")
print("rss MB over time:", rss)
sys.exit(0 if alive and not freezes else 1)
