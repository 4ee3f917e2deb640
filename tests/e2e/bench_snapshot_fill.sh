#!/usr/bin/env bash
# bench_snapshot_fill.sh: direct snapshot and restore throughput with the small fill-hash guest
# (tests/guest/fill_hash.c), which runs at full speed where Linux guests cannot (a PVM host's /dev/kvm).
# Guest RAM gets BENCH_DATA_MIB of random data through --initrd (written by Kite, not by slow guest ring-0
# code); the guest hashes 1 MiB of its own and waits. Each run: a snapshot after which the guest resumes
# and one after which Kite stops (both written straight from guest RAM while the guest waits), a restore
# of the second in a new Kite (its log's figures), and the restored guest must re-verify its hash. scripts/bench-snapshot.sh runs it on the host.
# Environment: KITE, FILL_ELF (fill-hash.elf), BENCH_RUNS (3), BENCH_MEMORY (1G), BENCH_DATA_MIB (768),
#              BENCH_SNAP_DIR (where the snapshot file goes; default a new directory under $TMPDIR or /tmp),
#              BENCH_WHERE (a label for the output).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-3}
MEMORY=${BENCH_MEMORY:-1G}
DATA=${BENCH_DATA_MIB:-768}
work=$(mktemp -d)
dir=${BENCH_SNAP_DIR:-$work}
pid=""
trap '[[ -z $pid ]] || kill -9 "$pid" 2>/dev/null; rm -rf "$work" "$dir/bench.snap" "$dir/bench.snap.tmp" "$dir/api.sock"' EXIT
head -c "$((DATA << 20))" /dev/urandom > "$work/data.bin"


save="" capture="" stop_save="" restore="" pause="" ok=0
for ((run = 1; run <= RUNS; run++)); do
  # The socket sits with the snapshot: under Landlock Kite writes only in the api-socket's directory.
  sock=$dir/api.sock snap=$dir/bench.snap
  rm -f "$work/a.log" "$sock"  # the wait below must not see the previous run's
  "$KITE" run --kernel "$FILL_ELF" --memory "$MEMORY" --serial stdio --initrd "$work/data.bin" \
    --cmdline "fill_seed=$run fill_mb=1" --api-socket "$sock" </dev/null >"$work/a.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 600; i++)); do [[ -S $sock ]] && grep -q "FILL: READY" "$work/a.log" 2>/dev/null && break; sleep 0.1; done
  reply=$("$KITE" snapshot "$snap" --then resume --api-socket "$sock")
  stop_reply=$("$KITE" snapshot "$snap" --then stop --api-socket "$sock")
  # A kite that never answered (the guest did not get ready) must not spin on after the bench.
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
  # The restored guest reads one byte from the serial port: 'v' re-hashes and compares (exit 0 = same).
  (sleep 1; printf v) | timeout 300 "$KITE" run --kernel "$FILL_ELF" --memory "$MEMORY" --serial stdio \
    --restore "$snap" --log-level info >"$work/b.log" 2>&1
  rc=$?
  read -r read_ms apply_ms <<<"$(restore_times "$work/b.log")"
  mem=$(json_num "$reply" memory_bytes) cap=$(json_num "$reply" capture_ms) wr=$(json_num "$reply" write_ms)
  echo "## run $run: snapshot $reply; then stop $stop_reply; restore read ${read_ms:-?} ms, apply ${apply_ms:-?} ms;" \
       "restored guest exit $rc"
  if [[ $rc -eq 0 && -n $mem && -n $read_ms ]] && grep -q "FILL: PASS" "$work/b.log"; then
    ok=$((ok + 1))
    save+="$(gibps "$mem" "$(awk -v a="$cap" -v b="$wr" 'BEGIN{print a+b}')") "
    capture+="$cap "
    stop_save+="$(gibps "$mem" "$(awk -v a="$(json_num "$stop_reply" capture_ms)" -v b="$(json_num "$stop_reply" write_ms)" \
                 'BEGIN{print a+b}')") "
    restore+="$(gibps "$mem" "$(awk -v a="$read_ms" -v b="$apply_ms" 'BEGIN{print a+b}')") "
    pause+="$(json_num "$reply" pause_ms) "
  else
    tail -n 5 "$work/b.log" | sed 's/^/##   /'
  fi
  rm -f "$snap"
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo "BENCH snapshot direct (${BENCH_WHERE:-here}; fill-hash guest, memory $MEMORY, $DATA MiB of data," \
     "file in $dir on $(stat -f -c %T "$dir")): snapshot of a guest that resumes $(med "$save") GiB/s (of which" \
     "capture $(med "$capture") ms; pause $(med "$pause") ms), of one that stops $(med "$stop_save") GiB/s;" \
     "restore $(med "$restore") GiB/s; target snapshot >= 1 GiB/s"
echo "BENCH restored guests that re-verified their hash: $ok of $RUNS"
[[ $ok -eq $RUNS ]]
