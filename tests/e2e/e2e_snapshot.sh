#!/usr/bin/env bash
# e2e_snapshot.sh: snapshot a running stock-Linux guest through the control API, end Kite, restore the
# snapshot in a new Kite process and check that the guest goes on where it was. A sandbox scenario:
#   KITE_BIN=build-snap/vmm/kite scripts/sandbox.sh tests/e2e/e2e_snapshot.sh tests/e2e/lib.sh
# The guest runs tests/e2e/guest/counter.sh (KITE-COUNTER=N once a second). Two variants: memory copied
# directly (pause, snapshot, shutdown as three requests) and through the mirror VM (a snapshot of the
# running guest with --then stop). Then a truncated, a corrupted and a key-less snapshot must be refused.
# Then the virtio variant: a guest with --disk IMG and --rng (tests/e2e/guest/snap_virtio.sh) writes
# records and keeps disk I/O in flight while it is snapshotted (direct) and shut down; restored with the
# same device flags it goes on writing and reading /dev/hwrng, and the image's sha256 on the host matches
# the one the guest reported. E2E_SNAPSHOT_PARTS picks parts (default "direct mirror refused virtio").
# E2E_SNAPSHOT_DISK_ENGINE is the virtio variant's disk engine: sync in the nested sandbox, else auto
# (io_uring). Under the nested sandbox's QEMU 7.2 TCG, the io_uring run of this variant left an outer CPU
# halted for good (interrupts pending in its LAPIC, deaf even to an NMI) or the outer kernel panicked in
# about 1 of 3 runs; with the synchronous engine 10 of 10 runs passed (a later boot still wedged once
# with it, before any snapshot: rarer, not gone). The unit tests cover io_uring
# requests in flight at a snapshot (transport_state_test), and a hardware-KVM host runs io_uring here.
set -uo pipefail
. ./lib.sh

MEMORY=${E2E_SNAPSHOT_MEMORY:-256M}
VCPUS=2
WAIT=${E2E_BOOT_TIMEOUT:-300}
COMMON=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --cmdline "$E2E_CMDLINE_BASE kite.test=counter"
        --memory "$MEMORY" --vcpus "$VCPUS" --serial stdio)
work=$(mktemp -d)
KITE=${KITE:-kite}

# start_vm LOG SOCKET [ARGS...]: Kite in the background (serial output to LOG), PID in $vm_pid.
start_vm() {
  local log=$1 sock=$2; shift 2
  echo "# $KITE run ${COMMON[*]} --api-socket $sock $*"
  "$KITE" run "${COMMON[@]}" --api-socket "$sock" "$@" </dev/null >"$log" 2>&1 &
  vm_pid=$!
}
# wait_for LOG REGEX: until an (extended) regex matches a line of LOG, the VM dies, or WAIT seconds pass.
wait_for() {
  local log=$1 re=$2 i
  for ((i = 0; i < WAIT * 2; i++)); do
    grep -a -q -E -- "$re" "$log" 2>/dev/null && return 0
    kill -0 "$vm_pid" 2>/dev/null || { grep -a -q -E -- "$re" "$log"; return; }
    sleep 0.5
  done
  return 1
}
# wait_exit PID SECONDS: the process's exit status, 124 if it is still running after SECONDS (then killed).
wait_exit() {
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  return 124
}
counters() { tr -d '\r' < "$1" | grep -a -o -E '^KITE-COUNTER=[0-9]+$' | cut -d= -f2; }
last_counter() { counters "$1" | tail -n1; }
first_counter() { counters "$1" | head -n1; }
control() { "$KITE" "$@" 2>&1; }   # prints the JSON reply (or the client's error)
show_log() { tr -d '\r' < "$1" | sed 's/^/| /' | tail -n "${2:-15}"; }

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
  check "$name-guest-counts" "no KITE-COUNTER=2 within ${WAIT}s" wait_for "$log" '^KITE-COUNTER=2'
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

# ---- virtio variant -------------------------------------------------------------------------------------
VIRTIO_RECORDS=14
DISK_ENGINE=${E2E_SNAPSHOT_DISK_ENGINE:-$([[ ${SANDBOX-} == nested ]] && echo sync || echo auto)}
# start_virtio_vm LOG SOCKET IMAGE [ARGS...]: like start_vm, with the snap_virtio guest, IMAGE and --rng.
start_virtio_vm() {
  local log=$1 sock=$2 img=$3; shift 3
  local args=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory "$MEMORY" --vcpus "$VCPUS"
              --cmdline "$E2E_CMDLINE_BASE kite.test=snap_virtio kite.snapv.count=$VIRTIO_RECORDS"
              --serial stdio --disk "$img,engine=$DISK_ENGINE" --rng --api-socket "$sock")
  echo "# $KITE run ${args[*]} $*"
  "$KITE" run "${args[@]}" "$@" </dev/null >"$log" 2>&1 &
  vm_pid=$!
}
records() { tr -d '\r' < "$1" | grep -a -E '^KITE-SNAPV=[0-9]+ rng=' | sed -E 's/^KITE-SNAPV=([0-9]+) rng=(.*)$/\1 \2/'; }
# all_rng_ok LOG: every record line carries 16 hwrng bytes (32 hex digits).
all_rng_ok() { [[ -n $(records "$1") ]] && ! records "$1" | grep -q -v -E '^[0-9]+ [0-9a-f]{32}$'; }
# records_on_disk IMG LOG...: sector N of IMG holds "KITE-REC N HEX" for every record line of the logs.
records_on_disk() {
  local img=$1 n hex want got bad=0; shift
  while read -r n hex; do
    want="KITE-REC $n $hex"
    got=$(dd if="$img" bs=512 skip="$n" count=1 status=none | tr -d '\0' | head -n1)
    [[ $got == "$want" ]] || { echo "# sector $n: '$got', want '$want'"; bad=1; }
  done < <(for l in "$@"; do records "$l"; done)
  return $bad
}
# indexes_are LOG... : the record numbers of the logs together are 0..VIRTIO_RECORDS-1, each once.
indexes_are_complete() {
  local got want
  got=$(for l in "$@"; do records "$l"; done | cut -d' ' -f1 | tr '\n' ' ')
  want=$(seq 0 $((VIRTIO_RECORDS - 1)) | tr '\n' ' ')
  [[ $got == "$want" ]]
}

run_virtio_variant() {
  local name=virtio sock=$work/virtio.sock snap=$work/virtio.snap log=$work/virtio-a.log rlog=$work/virtio-b.log
  local img=$work/virtio.img reply rc n first
  truncate -s 4M "$img"
  start_virtio_vm "$log" "$sock" "$img"
  local pid_a=$vm_pid
  check "$name-guest-writes" "no KITE-SNAPV=3 within ${WAIT}s" wait_for "$log" '^KITE-SNAPV=3 '
  check "$name-hwrng-is-virtio" "$(grep -a KITE-SNAPV-RNG-CURRENT "$log")" grep -a -q 'KITE-SNAPV-RNG-CURRENT=virtio' "$log"
  # The running guest, its background writer busy: requests may be in flight when the vCPUs stop.
  reply=$(control snapshot "$snap" --via direct --then pause --api-socket "$sock"); rc=$?
  echo "# snapshot: $reply"
  check "$name-snapshot-ok" "status $rc: $reply" test "$rc" -eq 0
  reply=$(control shutdown --api-socket "$sock"); rc=$?
  check "$name-shutdown-ok" "status $rc: $reply" test "$rc" -eq 0
  wait_exit "$pid_a" 60; rc=$?
  check "$name-first-kite-exits-0" "status $rc" test "$rc" -eq 0
  n=$(records "$log" | tail -n1 | cut -d' ' -f1)
  echo "# first VM wrote records 0..${n:-none}"
  show_log "$log" 6
  check "$name-first-rng-ok" "$(records "$log" | tr '\n' ';')" all_rng_ok "$log"

  start_virtio_vm "$rlog" "$sock" "$img" --restore "$snap" --log-level info
  local pid_b=$vm_pid
  check "$name-restored-finishes" "no KITE-SNAPV-DONE within ${WAIT}s" wait_for "$rlog" '^KITE-SNAPV-DONE'
  first=$(records "$rlog" | head -n1 | cut -d' ' -f1)
  echo "# restored VM's first record: ${first:-none}"
  check "$name-restored-continues" "first record ${first:-none} after ${n:-none}" \
    test -n "$first" -a -n "$n" -a "${first:-0}" -eq $((${n:-0} + 1))
  check "$name-restored-no-reboot" "the restored guest booted again" bash -c "! grep -a -q KITE-INIT '$rlog'"
  check "$name-restored-rng-ok" "$(records "$rlog" | tr '\n' ';')" all_rng_ok "$rlog"
  check "$name-no-failed-writes" "$(grep -a -h FAILED "$log" "$rlog" | head -n3 | tr '\n' ' ')" \
    bash -c "! grep -a -q -E 'KITE-SNAPV-(BG-)?WRITE-FAILED' '$log' '$rlog'"
  check "$name-records-complete" "records: $(records "$log" | cut -d' ' -f1 | tr '\n' ' ')| $(records "$rlog" | cut -d' ' -f1 | tr '\n' ' ')" \
    indexes_are_complete "$log" "$rlog"
  check "$name-guest-test-rc-0" "$(grep -a KITE-TEST-RESULT "$rlog")" grep -a -q 'KITE-TEST-RESULT snap_virtio rc=0' "$rlog"
  wait_exit "$pid_b" 60; rc=$?   # the guest powers off after its test
  check "$name-restored-exits-0" "status $rc" test "$rc" -eq 0
  show_log "$rlog" 40
  local guest_sha host_sha
  guest_sha=$(tr -d '\r' < "$rlog" | grep -a -o -E '^KITE-SNAPV-SHA=[0-9a-f]+' | cut -d= -f2)
  host_sha=$(sha256sum < "$img" | cut -d' ' -f1)
  echo "# image sha256: guest ${guest_sha:-none}, host $host_sha"
  check "$name-image-sha-matches" "guest ${guest_sha:-none}, host $host_sha" test "${guest_sha:-none}" = "$host_sha"
  check "$name-records-on-disk" "a record line the image does not hold" records_on_disk "$img" "$log" "$rlog"
}

PARTS=" ${E2E_SNAPSHOT_PARTS:-direct mirror refused virtio} "
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

[[ $PARTS == *" virtio "* ]] && run_virtio_variant

rm -rf "$work"
e2e_finish
