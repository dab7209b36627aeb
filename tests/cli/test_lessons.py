#!/usr/bin/python3
"""Every lesson under assets/lessons loads as the window loads it: a title, steps with a title and
text, a view of the registry, and each step's session (the lesson's base with the step's
options set) valid - attnlab-cli estimate reports no problem for it."""
import json
import os
import subprocess
import sys
import tempfile

import checks
from checks import check

cli, lessons = sys.argv[1], sys.argv[2]
VIEWS = {"mask", "gallery", "pipeline", "positional", "metrics", "model", "compare", "lines", "flash", "help",
         "patching", "lens", "training"}
tmp = tempfile.mkdtemp(prefix="attnlab-lessons-")


def set_path(d, path, value):
    *parents, last = path.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


files = sorted(f for f in os.listdir(lessons) if f.endswith(".json"))
check(any("inference" in f for f in files), "the lesson 'Attention in inference' is there")
for name in files:
    lesson = json.load(open(os.path.join(lessons, name)))
    check(lesson.get("title") and lesson.get("steps"), f"{name}: a title and steps")
    for i, step in enumerate(lesson.get("steps", [])):
        where = f"{name} step {i + 1}"
        check(step.get("title") and step.get("text"), f"{where}: a title and text")
        check(step.get("view") in (None, *VIEWS), f"{where}: view {step.get('view')!r} is one of the registry's")
        session = json.loads(json.dumps(lesson.get("session", {})))
        for path, value in step.get("set", {}).items():
            set_path(session, path, value)
        path = os.path.join(tmp, "step.json")
        json.dump(session, open(path, "w"))
        p = subprocess.run([cli, "estimate", path], capture_output=True, timeout=60)
        problems = json.loads(p.stdout).get("problems", ["no output"]) if p.returncode == 0 else [p.stderr.decode()]
        check(not problems, f"{where}: its session is valid ({problems})")
checks.done(need_some=True)
