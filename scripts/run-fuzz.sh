#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD_DIR for SECONDS each, from its seed corpus (fuzz/corpus)
# and the kept crashers (fuzz/regressions), in a scratch corpus so the repository's stays small.
# The targets run at the same time (CI has 2 cores and a time limit); each is one process.
# A crash, leak or timeout is written to fuzz/findings/<target>-...; keep it as a regression with
#   cp fuzz/findings/<file> fuzz/regressions/<target>/
# Prints execs per target, then "fuzz: N passed, M failed"; exits 1 when any target failed.
set -uo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/fuzz/findings"
targets=(safetensors session tokenizer)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
declare -A pid
for target in "${targets[@]}"; do
  max_len=65536
  [ "$target" = safetensors ] && max_len=262144
  mkdir -p "$scratch/$target"
  "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$root/fuzz/findings/$target-" "$scratch/$target" \
    "$root/fuzz/corpus/$target" "$root/fuzz/regressions/$target" > "$scratch/$target.log" 2>&1 &
  pid[$target]=$!
done
passed=0 failed=0
for target in "${targets[@]}"; do
  log="$scratch/$target.log"
  if wait "${pid[$target]}"; then
    passed=$((passed + 1))
    status=ok
  else
    failed=$((failed + 1))
    status=FAILED
    tail -40 "$log"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz $target: $status, ${execs:-0} execs in ${seconds} s (${rate:-0}/s), ${cov:-cov: ?}"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
