#!/usr/bin/env bash
# bench_snapshot.sh: snapshot and restore throughput, direct copy vs the mirror VM, and the pause a
# snapshot costs the guest. A sandbox scenario run by scripts/bench-snapshot.sh.
# Each run boots the counter guest (kite.fill=BENCH_FILL MiB of non-zero data in its /tmp), snapshots it
# while it runs (the reply's figures), shuts it down, restores it in a new Kite (its log's figures) and
# checks that it counts on. Everything in the sandbox is CPU-emulated: only ratios mean much.
# Environment: BENCH_RUNS (3), BENCH_MEMORY (512M), BENCH_FILL (MiB, 128), BENCH_VCPUS (2).
set -uo pipefail
. ./lib.sh

RUNS=${BENCH_RUNS:-3}
MEMORY=${BENCH_MEMORY:-512M}
FILL=${BENCH_FILL:-128}
VCPUS=${BENCH_VCPUS:-2}
COMMON=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory "$MEMORY" --vcpus "$VCPUS" --serial stdio
        --cmdline "$E2E_CMDLINE_BASE kite.test=counter kite.fill=$FILL")
KITE=${KITE:-kite}
work=$(mktemp -d)

wait_line() { # LOG REGEX PID SECONDS
  local i
  for ((i = 0; i < $4 * 4; i++)); do
    grep -a -q -E -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.25
  done
  return 1
}

declare -A results
ok=0 bad=0
for ((run = 1; run <= RUNS; run++)); do
  for via in direct mirror; do
    sock=$work/$via.sock snap=$work/$via.snap log=$work/$via-a.log rlog=$work/$via-b.log
    "$KITE" run "${COMMON[@]}" --api-socket "$sock" </dev/null >"$log" 2>&1 &
    pid=$!
    if ! wait_line "$log" '^KITE-COUNTER=1' "$pid" 600; then
      echo "## run $run $via: the guest did not start counting"; tail -n 5 "$log"; kill "$pid"; bad=$((bad + 1)); continue
    fi
    reply=$("$KITE" snapshot "$snap" --via "$via" --api-socket "$sock")
    "$KITE" shutdown --api-socket "$sock" >/dev/null
    wait "$pid"
    n=$(tr -d '\r' < "$log" | grep -a -o -E '^KITE-COUNTER=[0-9]+$' | tail -n1 | cut -d= -f2)
    "$KITE" run "${COMMON[@]}" --api-socket "$sock" --restore "$snap" --log-level info </dev/null >"$rlog" 2>&1 &
    pid=$!
    wait_line "$rlog" "^KITE-COUNTER=$((n + 1))" "$pid" 600 && ok=$((ok + 1)) || bad=$((bad + 1))
    "$KITE" shutdown --api-socket "$sock" >/dev/null
    wait "$pid"
    read -r read_ms apply_ms <<<"$(restore_times "$rlog")"
    mem=$(json_num "$reply" memory_bytes)
    cap=$(json_num "$reply" capture_ms) wr=$(json_num "$reply" write_ms) pause=$(json_num "$reply" pause_ms)
    echo "## run $run $via: snapshot $reply; restore read ${read_ms} ms, apply ${apply_ms} ms; counted on from $n"
    results[$via-save]+="$(gibps "$mem" "$(awk -v a="$cap" -v b="$wr" 'BEGIN{print a+b}')") "
    results[$via-capture]+="$cap "
    results[$via-restore]+="$(gibps "$mem" "$(awk -v a="$read_ms" -v b="$apply_ms" 'BEGIN{print a+b}')") "
    results[$via-apply]+="$apply_ms "
    results[$via-pause]+="$pause "
    results[$via-file]+="$(stat -c %s "$snap") "
    rm -f "$snap" "$snap.key"
  done
done

med() { tr ' ' '\n' <<<"${results[$1]}" | grep . | median; }
echo "BENCH snapshot memory=$MEMORY filled=${FILL}MiB vcpus=$VCPUS runs=$RUNS (medians; sandbox, CPU-emulated)"
for via in direct mirror; do
  echo "BENCH $via: snapshot $(med $via-save) GiB/s (of which capture $(med $via-capture) ms)," \
       "restore $(med $via-restore) GiB/s (of which applying the state $(med $via-apply) ms)," \
       "pause $(med $via-pause) ms, file $(( $(med $via-file | cut -d. -f1) >> 20 )) MiB"
done
echo "BENCH mirror/direct ratio: snapshot $(ratio "$(med mirror-save)" "$(med direct-save)")," \
     "restore $(ratio "$(med mirror-restore)" "$(med direct-restore)")," \
     "pause $(ratio "$(med mirror-pause)" "$(med direct-pause)")"
echo "BENCH restored guests that counted on: $ok of $((ok + bad))"
rm -rf "$work"
[[ $bad -eq 0 ]]
