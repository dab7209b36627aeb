#!/usr/bin/python3
"""`attnlab-cli render -o F.svg / F.pdf` against the PNG of the same figure: the SVG is read back
by librsvg (rsvg-convert) and the PDF by poppler (pdftoppm), at the PNG's pixel size, and compared
pixel for pixel: the same size, every heatmap cell's colour (at its centre, or inside a corner where its value is printed) within 3 of the PNG's
(cells from --layout), and the whole picture - labels, titles, colour bar - within a mean of 3 per
channel, under 1.5 % (SVG) / 5 % (PDF) of pixels off by more than 40 (glyph edges: the PNG's
rasteriser and Cairo's antialias differently). Sessions: the example, a light long one whose
cells are under a pixel, and one with Chinese, Hindi and emoji labels (the fallback fonts).
A bad extension exits 1 with one line."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

CLI = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def read(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


with tempfile.TemporaryDirectory() as tmp:
    example = json.load(open(os.path.join(ROOT, "assets", "sessions", "example.json")))
    scripts = dict(example)
    scripts["text"] = "你好 世界 नमस्ते 👍 Ёлка"
    long_ = dict(example)
    long_["text"] = " ".join(["word%d" % (i % 97) for i in range(600)])
    cases = [("example", os.path.join(ROOT, "assets", "sessions", "example.json"), []),
             ("scripts", scripts, []), ("long", long_, ["--light"])]
    for name, session, extra in cases:
        if isinstance(session, dict):
            path = os.path.join(tmp, name + ".json")
            json.dump(session, open(path, "w"), ensure_ascii=False)
            session = path
        base = os.path.join(tmp, name)
        ok = subprocess.run([CLI, "render", session, "--view", "heads", "-o", base + ".png", "--layout", base + ".layout.json"]
                            + extra, capture_output=True, text=True)
        check(ok.returncode == 0, f"{name}: render PNG ({ok.stderr.strip()})")
        png = read(base + ".png")
        layout = json.load(open(base + ".layout.json"))
        for fmt, limit in (("svg", 0.015), ("pdf", 0.05)):
            r = subprocess.run([CLI, "render", session, "--view", "heads", "-o", f"{base}.{fmt}"] + extra,
                               capture_output=True, text=True)
            check(r.returncode == 0 and os.path.getsize(f"{base}.{fmt}") > 0, f"{name}: render {fmt} ({r.stderr.strip()})")
            if fmt == "svg":
                head = open(f"{base}.svg", encoding="utf-8").read(200)
                check("<svg" in head, f"{name}: an SVG document")
                subprocess.run(["rsvg-convert", f"{base}.svg", "-o", f"{base}.svg.png"], check=True)
                back = read(f"{base}.svg.png")
            else:
                check(open(f"{base}.pdf", "rb").read(5) == b"%PDF-", f"{name}: a PDF document")
                subprocess.run(["pdftoppm", "-png", "-r", "72", "-singlefile", f"{base}.pdf", f"{base}.pdf"], check=True)
                back = read(f"{base}.pdf.png")
            check(back.shape == png.shape, f"{name} {fmt}: {back.shape} the PNG's size {png.shape}")
            if back.shape != png.shape:
                continue
            worst = 0
            for (x, y, w, h), shape in zip(layout["panels"], layout["shapes"]):
                nq, nk = shape
                cw, ch = w / nk, h / nq
                for i in range(0, nq, max(1, nq // 40)):
                    for j in range(0, nk, max(1, nk // 40)):
                        if cw < 1 or ch < 1:
                            continue
                        # big cells carry their value as text in the middle: sample inside a corner
                        if cw >= 20 and ch >= 20:
                            cx, cy = int(x + j * cw + 3), int(y + i * ch + 3)
                        else:
                            cx, cy = int(x + (j + 0.5) * cw), int(y + (i + 0.5) * ch)
                        worst = max(worst, int(np.abs(png[cy, cx] - back[cy, cx]).max()))
            check(worst <= 3, f"{name} {fmt}: cell centres within 3 of the PNG (worst {worst})")
            diff = np.abs(png - back)
            far = float((diff.max(axis=2) > 40).mean())
            check(diff.mean() < 3 and far < limit, f"{name} {fmt}: mean difference {diff.mean():.2f} < 3, "
                                                   f"{100 * far:.2f} % of pixels off by > 40 (< {100 * limit:.1f} %)")
    bad = subprocess.run([CLI, "render", os.path.join(ROOT, "assets", "sessions", "example.json"), "-o",
                          os.path.join(tmp, "x.gif")], capture_output=True, text=True)
    check(bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and ".png, .svg or .pdf" in bad.stderr,
          f"a .gif name exits 1 with one line ({bad.stderr.strip()})")
    check(not os.path.exists(os.path.join(tmp, "x.gif")), "nothing written for it")
if failures:
    print(f"{len(failures)} failed")
    sys.exit(1)
