#!/usr/bin/env bash
# fuzz.sh: runs every fuzz target of a fuzz build (clang, -DKITE_FUZZ=ON) for a while each.
#
#   scripts/fuzz.sh [--build DIR] [--seconds N] [--keep-corpus] [--logs DIR] [NAME...]
#
# CI (scripts/test.sh, step 4) runs each target for $FUZZ_SECONDS (10) from an empty corpus plus the
# seeds. The nightly mode is the same with a longer time and --keep-corpus, e.g.
#
#   scripts/fuzz.sh --seconds 900 --keep-corpus
#
# which keeps what each night found in .cache/fuzz/corpus/NAME and starts the next night from it.
# Seeds: tests/fuzz/corpus/NAME (read only). A crash leaves its input in LOGS/fuzz-artifacts/NAME-crash-*;
# fix the bug and add the (minimized: fuzz_NAME -minimize_crash=1 INPUT) input to the seeds.
# Prints "PASS fuzz/NAME: N runs" or "FAIL fuzz/NAME: why" per target; exits 1 if any failed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

build=build-fuzz seconds=${FUZZ_SECONDS:-10} keep=0 logs=$ROOT/.cache/fuzz names=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --keep-corpus) keep=1; shift ;;
    --logs) logs=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz.sh: --seconds wants a positive number" >&2; exit 2; }

mapfile -t targets < <(find "$build" -name 'fuzz_*' -type f -perm -u+x 2>/dev/null | sort)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "FAIL fuzz: no fuzz_* targets in $build/ (cmake -DKITE_FUZZ=ON with clang, target fuzz_all)"
  exit 1
fi
mkdir -p "$logs/fuzz-artifacts"
failed=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  if [[ ${#names[@]} -gt 0 && " ${names[*]} " != *" $name "* ]]; then continue; fi
  if [[ $keep == 1 ]]; then
    corpus=$ROOT/.cache/fuzz/corpus/$name
    mkdir -p "$corpus"
  else
    corpus=$(mktemp -d)
  fi
  seeds=()
  [[ -d tests/fuzz/corpus/$name ]] && seeds=("tests/fuzz/corpus/$name")
  log=$logs/$name.log
  if "$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$logs/fuzz-artifacts/$name-" \
       "$corpus" "${seeds[@]}" > "$log" 2>&1; then
    runs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}')
    echo "PASS fuzz/$name: ${runs:-?} runs in ${seconds} s"
  else
    tail -n 30 "$log" >&2
    echo "FAIL fuzz/$name: crash or error (see $log, artifacts in $logs/fuzz-artifacts)"
    failed=1
  fi
  [[ $keep == 1 ]] || rm -rf "$corpus"
done
exit "$failed"
