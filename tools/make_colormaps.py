#!/usr/bin/python3
"""Writes assets/colormaps/<name>.csv (256 lines 'r,g,b', 0..1) from matplotlib's tables.

viridis, magma, inferno and cividis are CC0 (public domain; van der Walt & Smith 2015, Nuñez et
al. 2018); greys is a linear ramp; RdBu is ColorBrewer (Apache-2.0), for differences.
A developer tool, run once: /usr/bin/python3 tools/make_colormaps.py (needs python3-matplotlib,
which the app and its build do not). The CSV files are the committed data the build embeds.
"""
import os

import matplotlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "colormaps")
NOTES = {
    "viridis": "CC0, van der Walt & Smith 2015 (perceptually uniform)",
    "magma": "CC0, van der Walt & Smith 2015",
    "inferno": "CC0, van der Walt & Smith 2015",
    "cividis": "CC0, Nunez, Anderton & Renslow 2018 (colour-vision-deficiency friendly)",
    "greys": "linear ramp, white to black",
    "RdBu_r": "ColorBrewer RdBu reversed (diverging, blue = negative), Apache-2.0",
}

os.makedirs(OUT, exist_ok=True)
for name, note in NOTES.items():
    cmap = matplotlib.colormaps["Greys" if name == "greys" else name].resampled(256)
    rows = [cmap(i / 255)[:3] for i in range(256)]
    with open(os.path.join(OUT, name.lower().replace("_r", "_diverging") + ".csv"), "w") as f:
        f.write(f"# {name}: {note}\n")
        for r, g, b in rows:
            f.write(f"{r:.6f},{g:.6f},{b:.6f}\n")
print("wrote", sorted(os.listdir(OUT)))
