# lib.sh: helpers for e2e scenarios (sourced by bash inside scripts/sandbox.sh, which sets ASSETS, KITE,
# QEMU). Tests are written against the kite CLI; E2E_VMM picks the VMM that runs them:
#   E2E_VMM=kite (default)  $KITE run ARGS...
#   E2E_VMM=qemu            the same ARGS translated to QEMU -M microvm,acpi=on (proves the harness);
#                           E2E_QEMU_CPU is its -cpu (default host)
# Each check prints `PASS name` or `FAIL name: why`; e2e_finish prints a summary and sets the status.

E2E_VMM=${E2E_VMM:-kite}
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-300}
E2E_CMDLINE_BASE="console=ttyS0 quiet panic=-1"
e2e_passed=0
e2e_failed=0

pass() { echo "PASS $1"; e2e_passed=$((e2e_passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; e2e_failed=$((e2e_failed + 1)); }
check() { # NAME WHY-IF-FALSE COMMAND... : PASS when COMMAND succeeds
  local name=$1 why=$2; shift 2
  if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
e2e_finish() {
  echo "E2E-SUMMARY vmm=$E2E_VMM passed=$e2e_passed failed=$e2e_failed"
  [[ $e2e_failed -eq 0 ]]
}

# vmm_command KITE-RUN-ARGS... : fills the array VMM_CMD with the command line that runs them.
vmm_command() {
  if [[ $E2E_VMM == kite ]]; then
    # At info level kite also says why the VM ended (poweroff, reset, debug-exit): a run that ends early
    # then says how.
    VMM_CMD=("${KITE:-kite}" run "$@" --log-level info)
    return
  fi
  # QEMU microvm with the same guest: kernel, initrd, cmdline, memory, vCPUs; debug-exit at 0x501.
  local kernel="" initrd="" cmdline="" memory=512M vcpus=1 serial=stdio
  local -a devices=() # virtio devices (--disk, --net, --rng, --console), in command-line order
  while [[ $# -gt 0 ]]; do
    case $1 in
      --kernel) kernel=$2; shift 2 ;;
      --initrd) initrd=$2; shift 2 ;;
      --cmdline) cmdline=$2; shift 2 ;;
      --memory) memory=$2; shift 2 ;;
      --vcpus) vcpus=$2; shift 2 ;;
      --serial) case $2 in stdio) serial=stdio ;; off) serial=none ;; file:*) serial=$2 ;;
                  *) echo "vmm_command: qemu adapter: --serial $2 (want stdio|off|file:PATH)" >&2; return 1 ;; esac
                shift 2 ;;
      --disk|--net|--console) qemu_virtio_device "$1" "$2" "${#devices[@]}" || return 1; shift 2 ;;
      --rng) qemu_virtio_device --rng "" "${#devices[@]}" || return 1; shift ;;
      --boot-protocol) shift 2 ;; # QEMU picks PVH for an ELF with the PVH note, bzImage otherwise
      *) echo "vmm_command: qemu adapter does not know $1" >&2; return 1 ;;
    esac
  done
  VMM_CMD=("${QEMU_BIN:-$QEMU}" -M microvm,acpi=on -enable-kvm -cpu "${E2E_QEMU_CPU:-host}" -m "$memory" -smp "$vcpus"
           -nodefaults -no-user-config -nographic -no-reboot -serial "$serial"
           -device isa-debug-exit,iobase=0x501,iosize=1 -kernel "$kernel" -append "$cmdline" "${devices[@]}")
  [[ -z $initrd ]] || VMM_CMD+=(-initrd "$initrd")
}

# qemu_virtio_device FLAG SPEC N : appends to the caller's array `devices` the microvm (virtio-mmio)
# options for kite's --disk PATH[,readonly][,id=ID] | --net tap=NAME[,mac=MAC] | --rng |
# --console stdio|off|file:PATH; N makes the ids unique.
qemu_virtio_device() {
  local flag=$1 spec=$2 n=$3 item path="" readonly="" id="" tap="" mac=""
  local -a items=()
  case $flag in
    --disk)
      IFS=, read -r -a items <<<"$spec"
      path=${items[0]}
      for item in "${items[@]:1}"; do
        case $item in readonly) readonly=,readonly=on ;; id=*) id=,serial=${item#id=} ;; engine=*) ;;
          *) echo "vmm_command: qemu adapter: --disk item $item" >&2; return 1 ;; esac
      done
      devices+=(-drive "file=$path,format=raw,if=none,id=disk$n$readonly" -device "virtio-blk-device,drive=disk$n$id") ;;
    --net)
      IFS=, read -r -a items <<<"$spec"
      for item in "${items[@]}"; do
        case $item in tap=*) tap=${item#tap=} ;; mac=*) mac=,mac=${item#mac=} ;;
          *) echo "vmm_command: qemu adapter: --net item $item" >&2; return 1 ;; esac
      done
      devices+=(-netdev "tap,id=net$n,ifname=$tap,script=no,downscript=no" -device "virtio-net-device,netdev=net$n$mac") ;;
    --rng)
      devices+=(-object "rng-random,id=rng$n,filename=/dev/urandom" -device "virtio-rng-device,rng=rng$n") ;;
    --console)
      case $spec in
        stdio) devices+=(-chardev "stdio,id=con$n") ;;
        off) devices+=(-chardev "null,id=con$n") ;;
        file:*) devices+=(-chardev "file,id=con$n,path=${spec#file:}") ;;
        *) echo "vmm_command: qemu adapter: --console $spec" >&2; return 1 ;;
      esac
      devices+=(-device virtio-serial-device -device "virtconsole,chardev=con$n") ;;
  esac
}

# The VMM exit status a guest's write of N to port 0x501 produces: N for kite; QEMU's isa-debug-exit
# exits with (N << 1) | 1.
expected_debug_exit() {
  if [[ $E2E_VMM == kite ]]; then echo "$1"; else echo $((($1 << 1) | 1)); fi
}

# vmm_timed CMD... : runs CMD under the E2E_BOOT_TIMEOUT limit, like `timeout -k 5` but returning 124 only
# after printing (to stderr, "# hang:" lines) what each thread of the VMM was waiting in when time ran out,
# and having Kite log its vCPUs' registers and local APICs (SIGUSR1): an intermittent hang then leaves a
# trace in the log instead of only a status. stdin is CMD's stdin.
# Callers run it in the background or in a pipeline: a TERM sent to that subshell goes on to CMD.
#
# One retry: in the nested sandbox a secondary vCPU of a Linux guest has triple-faulted while the guest
# brought it up (seen once with kite's report, and probably once before kite reported it, in a few
# hundred boots; we suspect QEMU's TCG emulating SVM for the outer KVM. On AMD, KVM resets a vCPU on
# shutdown, so the registers kite reports are its reset state). Kite ends such a run with status 1; a
# run that ends that way before the guest's init ran is started once more, with a NOTE line.
vmm_timed() {
  local copy fifo tee_pid rc
  copy=$(mktemp) fifo=$(mktemp -u)
  mkfifo "$fifo"
  tee "$copy" < "$fifo" &
  tee_pid=$!
  vmm_timed_once "$@" > "$fifo" 2>&1
  rc=$?
  wait "$tee_pid"
  rm -f "$fifo"
  if [[ $rc -eq 1 ]] && grep -a -q "the guest triple-faulted" "$copy" && ! grep -a -q "KITE-INIT" "$copy"; then
    echo "# NOTE: the guest triple-faulted before its init ran; starting it once more (see vmm_timed in lib.sh)"
    vmm_timed_once "$@"
    rc=$?
  fi
  rm -f "$copy"
  return "$rc"
}

vmm_timed_once() {
  "$@" <&0 &
  local pid=$! report rc
  trap 'kill "$pid" 2>/dev/null' TERM
  report=$(mktemp)
  # The watcher writes to a file, not to our stdout: its sleep must not hold a caller's pipe open.
  ( sleep "$E2E_BOOT_TIMEOUT"
    kill -0 "$pid" 2>/dev/null || exit 0
    echo "# hang: still running after ${E2E_BOOT_TIMEOUT} s; threads of pid $pid:"
    hang_report "$pid"
    echo "# hang: kernel log, last lines:"
    dmesg 2>/dev/null | tail -n 8 | sed 's/^/# hang:   /'
    # Kite logs where each vCPU is and the I/O APIC's routes on SIGUSR1 (in the VMM's own output).
    if [[ ${E2E_VMM:-kite} == kite ]]; then kill -USR1 "$pid" 2>/dev/null; sleep 3; fi
    kill "$pid"
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null ) >"$report" 2>&1 &
  local watch=$!
  wait "$pid"
  rc=$?
  # A trapped TERM ends the wait early: wait again for CMD itself.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
  trap - TERM
  if [[ -s $report ]]; then wait "$watch"; rc=124; fi
  kill "$watch" 2>/dev/null
  wait "$watch" 2>/dev/null
  cat "$report" >&2
  rm -f "$report"
  return "$rc"
}

# hang_report PID : each thread's name, state, kernel wait channel and kernel stack (the sandbox runs as root).
hang_report() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "# hang: thread $(cat "$t/comm") state $(cut -d' ' -f3 "$t/stat") wchan $(cat "$t/wchan") schedstat $(cat "$t/schedstat")"
    head -n 12 "$t/stack" | sed 's/^/# hang:   /'
  done 2>/dev/null
}

# vmm_run LOG KITE-RUN-ARGS... : run the VMM to completion (stdin closed), serial output to LOG and
# to our stdout prefixed with "| "; returns the VMM's exit status (124 on timeout).
vmm_run() {
  local log=$1; shift
  vmm_command "$@" || return 125
  echo "# ${VMM_CMD[*]}"
  local start=$EPOCHREALTIME
  vmm_timed "${VMM_CMD[@]}" </dev/null 2>&1 | strip_cr | tee "$log" | sed 's/^/| /'
  local rc=${PIPESTATUS[0]}
  echo "# exit status $rc after $(elapsed "$start") s"
  return "$rc"
}

# vmm_interactive LOG SCRIPT KITE-RUN-ARGS... : run the VMM with its serial input fed from SCRIPT's
# lines once the guest's shell is ready (the "busybox shell" banner appeared in LOG); returns its status.
vmm_interactive() {
  local log=$1 script=$2; shift 2
  vmm_command "$@" || return 125
  echo "# ${VMM_CMD[*]} (serial input from $script)"
  local fifo
  fifo=$(mktemp -u) && mkfifo "$fifo"
  local start=$EPOCHREALTIME
  : > "$log"
  # Output goes straight to a file (no pipe that could still hold the last lines when we check them).
  vmm_timed "${VMM_CMD[@]}" <"$fifo" >"$log.raw" 2>&1 &
  local pid=$!
  exec {feed}>"$fifo"
  local waited=0
  until grep -a -q 'busybox shell on the console' "$log.raw" 2>/dev/null; do
    sleep 0.5
    waited=$((waited + 1))
    if ! kill -0 "$pid" 2>/dev/null || [[ $waited -gt $((E2E_BOOT_TIMEOUT * 2)) ]]; then break; fi
  done
  sleep 1
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line" >&"$feed"
    sleep 0.5
  done < "$script"
  wait "$pid"
  local rc=$?
  exec {feed}>&-
  rm -f "$fifo"
  tr -d '\r' < "$log.raw" > "$log"
  sed 's/^/| /' "$log"
  echo "# exit status $rc after $(elapsed "$start") s"
  return "$rc"
}

# strip_cr: drop carriage returns without holding output back (GNU tr block-buffers into a pipe; the
# busybox tr of the sandbox does not).
strip_cr() { if command -v stdbuf >/dev/null; then stdbuf -oL tr -d '\r'; else tr -d '\r'; fi; }

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# Benchmark arithmetic: median of the numbers on stdin; ratio A B; gibps BYTES MS (GiB/s); json_num JSON KEY
# (a number field of a one-line JSON reply); restore_times LOG (the "read" and "apply" milliseconds of
# kite's "restored ..." log line).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
gibps() { awk -v b="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.3f", b / 1073741824 / (ms / 1000); else print "nan" }'; }
json_num() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -n1 | cut -d: -f2; }
restore_times() {
  local line
  line=$(grep -a 'restored ' "$1")
  echo "$(grep -o -E 'read and checked in [0-9.]+' <<<"$line" | awk '{print $NF}')" \
       "$(grep -o -E 'applied in [0-9.]+' <<<"$line" | awk '{print $NF}')"
}

# log_value LOG KEY : the value of the last "KEY=value" line in LOG (a serial console's carriage returns dropped).
log_value() { tr -d '\r' < "$1" | grep -a -o "^$2=[^ ]*" | tail -n1 | cut -d= -f2-; }
# log_has LOG FIXED-STRING
log_has() { grep -a -q -F -- "$2" "$1"; }
