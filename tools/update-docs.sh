#!/usr/bin/env bash
# Regenerates the options section of docs/session-format.md from the options table:
#   tools/update-docs.sh [path/to/attnlab-cli]   (default build/attnlab-cli)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli=${1:-$root/build/attnlab-cli}
/usr/bin/python3 - "$cli" "$root/docs/session-format.md" <<'PY'
import subprocess, sys
cli, doc = sys.argv[1], sys.argv[2]
BEGIN, END = "<!-- options:begin -->\n", "<!-- options:end -->"
table = subprocess.run([cli, "options", "--markdown"], capture_output=True, check=True).stdout.decode()
text = open(doc, encoding="utf-8").read()
text = text[:text.index(BEGIN) + len(BEGIN)] + table + text[text.index(END):]
open(doc, "w", encoding="utf-8").write(text)
print("updated", doc)
PY
