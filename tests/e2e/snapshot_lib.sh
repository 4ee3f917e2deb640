# snapshot_lib.sh: what e2e_snapshot.sh and e2e_snapshot_virtio.sh share; sourced after lib.sh. Each
# scenario starts its guests in the background (Kite's output to a log file, PID in $vm_pid) and drives
# them through the control API.

MEMORY=${E2E_SNAPSHOT_MEMORY:-256M}
VCPUS=2
WAIT=${E2E_BOOT_TIMEOUT:-300}
# A guest whose console has been silent this long has stalled: both guests print at least every 5 s
# once their init runs, and a nested-sandbox boot reaches init in under 10 s.
STALL_SECS=${E2E_STALL_SECS:-90}
work=$(mktemp -d)
KITE=${KITE:-kite}

# wait_for LOG REGEX: until an (extended) regex matches a line of LOG (status 0), the VM dies or WAIT
# seconds pass (1), or the guest stalls (2: LOG did not grow for STALL_SECS seconds while Kite ran). Says
# why in $wait_why; on a stall it also prints what Kite's threads and the kernel were doing and the
# guest's last lines, so the log shows whether Kite or the guest's CPUs stood still.
wait_for() {
  local log=$1 re=$2 i size last_size=-1 still=0
  wait_why=""
  for ((i = 0; i < WAIT * 2; i++)); do
    grep -a -q -E -- "$re" "$log" 2>/dev/null && return 0
    kill -0 "$vm_pid" 2>/dev/null || {
      grep -a -q -E -- "$re" "$log" && return 0
      wait_why="Kite ended before '$re' appeared"
      return 1
    }
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    if [[ $size -eq $last_size ]]; then still=$((still + 1)); else still=0 last_size=$size; fi
    if ((still >= STALL_SECS * 2)); then
      wait_why="the guest stalled: no console output for ${STALL_SECS} s before '$re'"
      echo "# $wait_why; Kite's threads:"
      hang_report "$vm_pid"
      echo "# kernel log, last lines:"
      dmesg 2>/dev/null | tail -n 8 | sed 's/^/#   /'
      echo "# the guest's last lines:"
      show_log "$log" 40
      echo "# the guest kernel's stall reports:"
      tr -d '\r' < "$log" | grep -a -E 'rcu: INFO: |soft lockup' | head -n 4 | sed 's/^/| /'
      return 2
    fi
    sleep 0.5
  done
  wait_why="no '$re' within ${WAIT} s"
  return 1
}
# check_wait NAME LOG REGEX: a check that wait_for LOG REGEX succeeds, failing with its reason.
check_wait() {
  if wait_for "$2" "$3"; then pass "$1"; else fail "$1" "$wait_why"; fi
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
control() { "$KITE" "$@" 2>&1; }   # prints the JSON reply (or the client's error)
show_log() { tr -d '\r' < "$1" | sed 's/^/| /' | tail -n "${2:-15}"; }
