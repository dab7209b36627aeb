#!/usr/bin/python3
"""docs/session-format.md's options section is generated: it must equal what
`attnlab-cli options --markdown` prints (the options table of engine/session/session.cpp), so the docs
list every option with its real range and default. Regenerate with tools/update-docs.sh."""
import subprocess
import sys

cli, doc = sys.argv[1], sys.argv[2]
BEGIN, END = "<!-- options:begin -->\n", "<!-- options:end -->"
want = subprocess.run([cli, "options", "--markdown"], capture_output=True, check=True).stdout.decode()
text = open(doc, encoding="utf-8").read()
ok = BEGIN in text and END in text
got = text[text.index(BEGIN) + len(BEGIN):text.index(END)] if ok else ""
n_options = sum(1 for line in want.splitlines() if line.startswith("| `"))
if ok and got == want:
    print(f"docs: {n_options} options, section equal to options --markdown")
    print("1 passed, 0 failed")
    sys.exit(0)
print("FAIL: the options section of", doc, "differs from attnlab-cli options --markdown; run tools/update-docs.sh")
print("0 passed, 1 failed")
sys.exit(1)
