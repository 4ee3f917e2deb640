#!/usr/bin/env bash
# bench_boot.sh: Kite vs QEMU microvm start-up benchmarks, a sandbox scenario run by scripts/bench-boot.sh.
# Both VMMs run the same kernel, initramfs, memory and vCPUs in the same (outer) machine, interleaved,
# and only the ratio means something (the sandbox is CPU-emulated).
#   1. boot to init: wall time from VMM process start to the guest init's "KITE-INIT" line
#      (cmdline kite.bench: the init prints it with /proc/uptime and powers off at once)
#   2. start to first guest instruction: tiny-pvh.elf prints '!' with its first instructions
#   3. memory overhead: peak RSS (VmHWM) minus the guest RAM the guest touched (Rss of the RAM mapping)
# Environment: BENCH_VMM (kite|qemu, default kite), BENCH_BASELINE (default qemu), BENCH_RUNS (5),
#              BENCH_MEMORY (512M), BENCH_VCPUS (2), BENCH_PARTS (which of 1 2 3, default all),
#              BENCH_WHERE (a label for the BENCH lines, e.g. "host"; scripts/bench-boot.sh runs part 2
#              on the host's own /dev/kvm too).
set -uo pipefail
. ./lib.sh

A=${BENCH_VMM:-kite}
B=${BENCH_BASELINE:-qemu}
RUNS=${BENCH_RUNS:-5}
MEMORY=${BENCH_MEMORY:-512M}
VCPUS=${BENCH_VCPUS:-2}
GUEST=(--initrd "$ASSETS/initrd.gz" --memory "$MEMORY" --vcpus "$VCPUS" --serial stdio)
E2E_CMDLINE_BASE="console=ttyS0 quiet panic=-1"

PARTS=" ${BENCH_PARTS:-1 2 3} "
WHERE=${BENCH_WHERE:+ ($BENCH_WHERE)}

# time_to_line VMM PATTERN ARGS... : seconds from process start until an output line contains PATTERN
# (prints "nan" if it never does); the VMM is killed once the line is seen or it exits.
time_to_line() {
  local vmm=$1 pattern=$2; shift 2
  E2E_VMM=$vmm vmm_command "$@" || { echo nan; return; }
  local t0=$EPOCHREALTIME hit=nan line
  exec {out}< <(timeout -k 5 "$E2E_BOOT_TIMEOUT" "${VMM_CMD[@]}" </dev/null 2>&1)
  local pid=$!
  while IFS= read -r -u "$out" line; do
    if [[ $line == *"$pattern"* ]]; then
      hit=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')
      echo "    $vmm: ${line//$'\r'/} after $hit s" >&2
      break
    fi
  done
  kill "$pid" 2>/dev/null
  exec {out}<&-
  wait "$pid" 2>/dev/null
  echo "$hit"
}

# time_to_char VMM CHAR ARGS... : like time_to_line for a single character (the tiny guest has no newline).
time_to_char() {
  local vmm=$1 want=$2; shift 2
  E2E_VMM=$vmm vmm_command "$@" || { echo nan; return; }
  local t0=$EPOCHREALTIME hit=nan c
  exec {out}< <(timeout -k 5 60 "${VMM_CMD[@]}" </dev/null 2>/dev/null)
  local pid=$!
  while IFS= read -r -n1 -u "$out" c; do
    if [[ $c == "$want" ]]; then
      hit=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }')
      break
    fi
  done
  kill "$pid" 2>/dev/null
  exec {out}<&-
  wait "$pid" 2>/dev/null
  echo "$hit"
}

# memory_overhead VMM ARGS... : boots to the shell, then prints "peak_kib guest_kib overhead_kib".
memory_overhead() {
  local vmm=$1; shift
  E2E_VMM=$vmm vmm_command "$@" || { echo "nan nan nan"; return; }
  local log
  log=$(mktemp)
  # Started directly (no timeout wrapper) so that $! is the VMM; stdin stays open but silent.
  "${VMM_CMD[@]}" < <(sleep "$E2E_BOOT_TIMEOUT") > "$log" 2>&1 &
  local vmm_pid=$! waited=0
  until grep -q 'busybox shell on the console' "$log"; do
    sleep 0.5; waited=$((waited + 1))
    kill -0 "$vmm_pid" 2>/dev/null && [[ $waited -lt $((E2E_BOOT_TIMEOUT * 2)) ]] || break
  done
  sleep 2
  local peak guest
  peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$vmm_pid/status" 2>/dev/null)
  # Guest RAM is the biggest mapping of the process; its Rss is what the guest touched.
  guest=$(awk '/^Size:/ { size = $2 } /^Rss:/ { if (size > best) { best = size; rss = $2 } }
              END { print rss + 0 }' "/proc/$vmm_pid/smaps" 2>/dev/null)
  echo "    $vmm: biggest mapping (guest RAM): $(awk '/^Size:/ { if ($2 > b) b = $2 } END { print b }' "/proc/$vmm_pid/smaps") KiB" >&2
  kill -9 "$vmm_pid" 2>/dev/null
  wait "$vmm_pid" 2>/dev/null
  rm -f "$log"
  if [[ -n $peak && -n $guest ]]; then echo "$peak $guest $((peak - guest))"; else echo "nan nan nan"; fi
}

echo "## bench: A=$A B=$B runs=$RUNS memory=$MEMORY vcpus=$VCPUS"

# compare NAME TARGET TIMER PATTERN ARGS...: RUNS interleaved timings of A and B (TIMER VMM PATTERN ARGS...),
# printed with their medians and the ratio A/B.
compare() {
  local name=$1 target=$2 timer=$3 pattern=$4; shift 4
  local -a ta=() tb=()
  for ((i = 1; i <= RUNS; i++)); do
    ta+=("$("$timer" "$A" "$pattern" "$@")")
    tb+=("$("$timer" "$B" "$pattern" "$@")")
  done
  local ma mb
  ma=$(printf '%s\n' "${ta[@]}" | median)
  mb=$(printf '%s\n' "${tb[@]}" | median)
  echo "BENCH $name $A: ${ta[*]} (median $ma s)"
  echo "BENCH $name $B: ${tb[*]} (median $mb s)"
  echo "BENCH $name ratio $A/$B = $(ratio "$ma" "$mb") (target $target)"
}

if [[ $PARTS == *" 1 "* ]]; then
  echo "## 1. process start -> guest init (KITE-INIT line)"
  compare boot-to-init "<= 0.8" time_to_line KITE-INIT --kernel "$ASSETS/vmlinuz" --cmdline "$E2E_CMDLINE_BASE kite.bench" "${GUEST[@]}"
fi

if [[ $PARTS == *" 2 "* ]]; then
  echo "## 2. process start -> first guest instruction (tiny PVH guest prints '!')"
  compare "first-instruction$WHERE" "<= 0.1" time_to_char '!' --kernel ./tiny-pvh.elf --boot-protocol pvh --memory 64M --vcpus 1 --serial stdio
fi

if [[ $PARTS == *" 3 "* ]]; then
  echo "## 3. memory overhead at the guest shell (peak RSS - guest RAM touched)"
  for v in "$A" "$B"; do
    read -r peak guest over < <(memory_overhead "$v" --kernel "$ASSETS/vmlinuz" --cmdline "$E2E_CMDLINE_BASE" "${GUEST[@]}")
    echo "BENCH memory-overhead $v: peak ${peak} KiB, guest RAM touched ${guest} KiB, overhead ${over} KiB (target <= 3072 KiB)"
  done
fi
