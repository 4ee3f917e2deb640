#!/usr/bin/env bash
# e2e_snapshot.sh: snapshot a running stock-Linux guest through the control API, end Kite, restore the
# snapshot in a new Kite process and check that the guest goes on where it was. A sandbox scenario:
#   scripts/sandbox.sh tests/e2e/e2e_snapshot.sh tests/e2e/lib.sh tests/e2e/snapshot_lib.sh
# The guest runs tests/e2e/guest/counter.sh (KITE-COUNTER=N once a second). Two variants: memory copied
# directly (pause, snapshot, shutdown as three requests) and through the mirror VM (a snapshot of the
# running guest with --then stop). Then a truncated, a corrupted and a key-less snapshot must be refused.
# E2E_SNAPSHOT_PARTS picks parts (default "direct mirror refused"). The virtio variant (a disk and an rng
# with I/O in flight) is e2e_snapshot_virtio.sh.
set -uo pipefail
. ./lib.sh
. ./snapshot_lib.sh

COMMON=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --cmdline "$E2E_CMDLINE_BASE kite.test=counter"
        --memory "$MEMORY" --vcpus "$VCPUS" --serial stdio)

# start_vm LOG SOCKET [ARGS...]: Kite in the background (serial output to LOG), PID in $vm_pid.
start_vm() {
  local log=$1 sock=$2; shift 2
  echo "# $KITE run ${COMMON[*]} --api-socket $sock $*"
  "$KITE" run "${COMMON[@]}" --api-socket "$sock" "$@" </dev/null >"$log" 2>&1 &
  vm_pid=$!
}
counters() { tr -d '\r' < "$1" | grep -a -o -E '^KITE-COUNTER=[0-9]+$' | cut -d= -f2; }
last_counter() { counters "$1" | tail -n1; }
first_counter() { counters "$1" | head -n1; }

# continues_after N FIRST: the restored guest's first count follows N (not 0, not far ahead).
continues_after() { [[ -n $1 && -n $2 ]] && (( $2 > $1 && $2 <= $1 + 2 )); }
# keeps_counting LOG FIRST: two more counts after FIRST, so timers and interrupts work after restore.
keeps_counting() { wait_for "$1" "^KITE-COUNTER=$(($2 + 2))"; }

# run_variant NAME VIA: boot, snapshot, stop, restore, check.
run_variant() {
  local name=$1 via=$2
  local sock=$work/$name.sock snap=$work/$name.snap log=$work/$name-a.log rlog=$work/$name-b.log
  start_vm "$log" "$sock"
  local pid_a=$vm_pid
  check_wait "$name-guest-counts" "$log" '^KITE-COUNTER=2'
  local status
  status=$(control status --api-socket "$sock")
  echo "# status: $status"
  check "$name-status-running" "$status" grep -q '"state":"running"' <<<"$status"
  check "$name-status-vcpus" "$status" grep -q "\"vcpus\":$VCPUS" <<<"$status"

  local reply rc n
  if [[ $via == direct ]]; then
    reply=$(control pause --api-socket "$sock"); rc=$?
    check "$name-pause" "status $rc: $reply" test "$rc" -eq 0
    status=$(control status --api-socket "$sock")
    check "$name-status-paused" "$status" grep -q '"state":"paused"' <<<"$status"
    sleep 2  # a paused guest must not count
    n=$(last_counter "$log")
    reply=$(control snapshot "$snap" --via bogus --api-socket "$sock"); rc=$?
    check "$name-bad-via-refused" "status $rc: $reply" test "$rc" -eq 1
    check "$name-bad-via-named" "$reply" grep -q 'via' <<<"$reply"
    reply=$(control snapshot "$snap" --api-socket "$sock"); rc=$?
    echo "# snapshot: $reply"
    check "$name-snapshot-ok" "status $rc: $reply" test "$rc" -eq 0
    sleep 2
    check "$name-paused-guest-silent" "counted to $(last_counter "$log") while paused at $n" \
      test "$(last_counter "$log")" = "$n"
    reply=$(control shutdown --api-socket "$sock"); rc=$?
    check "$name-shutdown-ok" "status $rc: $reply" test "$rc" -eq 0
  else
    wait_for "$log" '^KITE-COUNTER=4'
    reply=$(control snapshot "$snap" --via mirror --then stop --api-socket "$sock"); rc=$?
    echo "# snapshot: $reply"
    check "$name-snapshot-ok" "status $rc: $reply" test "$rc" -eq 0
    check "$name-key-file-written" "no $snap.key" test -s "$snap.key"
  fi
  wait_exit "$pid_a" 60; rc=$?
  check "$name-first-kite-exits-0" "status $rc" test "$rc" -eq 0
  n=$(last_counter "$log")
  echo "# first VM counted to $n"
  show_log "$log" 6

  start_vm "$rlog" "$sock" --restore "$snap" --log-level info
  local pid_b=$vm_pid
  wait_for "$rlog" '^KITE-COUNTER='
  local first
  first=$(first_counter "$rlog")
  echo "# restored VM's first count: ${first:-none}"
  check "$name-restored-continues" "first count ${first:-none} after $n" continues_after "$n" "$first"
  check "$name-restored-no-reboot" "the restored guest booted again" bash -c "! grep -a -q KITE-INIT '$rlog'"
  check "$name-restored-keeps-counting" "no KITE-COUNTER=$((${first:-0} + 2))" keeps_counting "$rlog" "${first:-0}"
  reply=$(control shutdown --api-socket "$sock"); rc=$?
  check "$name-restored-shutdown" "status $rc: $reply" test "$rc" -eq 0
  wait_exit "$pid_b" 60; rc=$?
  check "$name-restored-exits-0" "status $rc" test "$rc" -eq 0
  show_log "$rlog" 8
}

# refused NAME FILE WANT: kite run --restore FILE exits 2 with WANT in its message and runs no guest.
refused() {
  local name=$1 file=$2 want=$3 log=$work/$1.log
  "$KITE" run "${COMMON[@]}" --restore "$file" </dev/null >"$log" 2>&1
  local rc=$?
  echo "# $name: status $rc: $(head -c 300 "$log")"
  check "$name-exit-2" "status $rc" test "$rc" -eq 2
  check "$name-message" "no '$want' in: $(head -c 300 "$log")" grep -a -q -- "$want" "$log"
  check "$name-nothing-ran" "guest output appeared" bash -c "! grep -a -q KITE- '$log'"
}

PARTS=" ${E2E_SNAPSHOT_PARTS:-direct mirror refused} "
[[ $PARTS == *" direct "* || $PARTS == *" refused "* ]] && run_variant direct direct
[[ $PARTS == *" mirror "* || $PARTS == *" refused "* ]] && run_variant mirror mirror

if [[ $PARTS == *" refused "* ]]; then
snap=$work/direct.snap
size=$(stat -c %s "$snap")
head -c $((size / 2)) "$snap" > "$work/truncated.snap"
refused truncated "$work/truncated.snap" truncated
cp "$snap" "$work/corrupt.snap"
printf '\xa5' | dd of="$work/corrupt.snap" bs=1 seek=$((size / 3)) conv=notrunc status=none
refused corrupt "$work/corrupt.snap" checksum
cp "$work/mirror.snap" "$work/nokey.snap"
refused no-key "$work/nokey.snap" key
fi

rm -rf "$work"
e2e_finish
