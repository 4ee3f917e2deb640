#!/usr/bin/env bash
# bench-vhost.sh: vhost-user benchmarks in one sandbox run, printed as ratios.
#   1. vhost-user-blk throughput (qemu-storage-daemon as the back-end): guest O_DIRECT sequential write and
#      read MB/s (tests/e2e/guest/vhost_bench.sh) under kite vs QEMU (q35, vhost-user-blk-pci, guest RAM on
#      a shared memfd), and vs kite's own virtio-blk on the same image. Target: kite >= 1.0x QEMU. Kite runs
#      the disk over virtio-mmio (kite) and over virtio-pci with MSI-X (kite-pci, transport=pci, as QEMU's
#      device is). Also 4 KiB reads one at a time (per second), where each request's notification and
#      interrupt weigh most.
#   2. SHMEM_MAP + SHMEM_UNMAP round trip, median microseconds as examples/shmem-backend measures it
#      (its "bench N" command: one page, same place) against a running kite. Target: <= 50 us. Also
#      "bench N vary" (one and two pages in turn: every map needs a new memslot), for comparison.
#      On a PVM host, part 2 also runs against kite on the host's own /dev/kvm (an idling PVH guest).
# Runs interleave the VMMs, each round starting with the next; medians of BENCH_RUNS runs. The sandbox
# is CPU-emulated: only ratios mean much.
#
#   scripts/bench-vhost.sh     # KITE_BIN (default build/vmm/kite), SHMEM_BACKEND_BIN (default next to it)
#
# Environment: BENCH_RUNS (5), BENCH_MB (256), BENCH_SHMEM_ROUNDS (200), KITE_BIN, SHMEM_BACKEND_BIN and
# scripts/sandbox.sh's SANDBOX_* variables. Results are the "BENCH ..." lines.
set -uo pipefail
# median (and the rest of the e2e helpers): lib.sh is shipped next to this script into the sandbox.
if [[ -n ${SANDBOX-} ]]; then . ./lib.sh; else . "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e/lib.sh"; fi
# map_unmap_us: the median round trip of the shmem-backend "bench" lines on stdin.
map_unmap_us() { sed -n 's/.*median_map_unmap_us=\([0-9.]*\).*/\1/p'; }
# floor_us: the same lines' floor (the exchange without Kite: socket + fd + two mmaps between two threads).
floor_us() { sed -n 's/.*floor_map_unmap_us=\([0-9.-]*\).*/\1/p'; }

# ---- on the host: ship this script into the sandbox --------------------------------------------------
if [[ -z ${SANDBOX-} ]]; then
  set -e
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$ROOT"
  scripts/setup.sh
  export KITE_BIN=${KITE_BIN:-build/vmm/kite}
  backend=${SHMEM_BACKEND_BIN:-$(dirname "$(dirname "$KITE_BIN")")/examples/shmem-backend/shmem-backend}
  for b in "$KITE_BIN" "$backend"; do
    [[ -x $b ]] || { echo "bench-vhost: no executable $b (build kite and shmem-backend, or set KITE_BIN / SHMEM_BACKEND_BIN)" >&2; exit 2; }
  done
  export SANDBOX_BINS="${SANDBOX_BINS-} $backend"
  export BENCH_RUNS=${BENCH_RUNS:-5} BENCH_MB=${BENCH_MB:-256} BENCH_SHMEM_ROUNDS=${BENCH_SHMEM_ROUNDS:-200}
  log=${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench-vhost.log}
  set +e
  # Four VMM kinds a round, up to 300 s a run when one wedges: sandbox.sh's default 1200 s is too short.
  SANDBOX_TIMEOUT=${SANDBOX_TIMEOUT:-$((BENCH_RUNS * 4 * 150 + 600))} SANDBOX_LOG=$log \
    scripts/sandbox.sh scripts/bench-vhost.sh tests/e2e/lib.sh | grep -a -E '^(BENCH|##)'
  status=${PIPESTATUS[0]}
  echo "(full log: $log)"
  # On a PVM host (README.md, Requirements) the sandbox above is emulated by TCG, where every syscall of the round
  # trip is slow. Part 2 also runs against kite on the host's own /dev/kvm, with a PVH guest that only
  # halts (no Linux needed: the back-end's requests do not involve the guest).
  if [[ -e /dev/kvm && -d /sys/module/kvm_pvm ]]; then
    host=$(mktemp -d)
    gcc -DTINY_PVH_STAY -c tests/e2e/tiny_pvh.S -o "$host/idle.o"
    ld -static -nostdlib -z max-page-size=4096 -z noexecstack --build-id=none -Ttext-segment=0x100000 -e _start \
      "$host/idle.o" -o "$host/idle.elf"
    mkfifo "$host/cmds"
    "$backend" --socket-path "$host/shm.sock" <"$host/cmds" >"$host/backend.log" 2>&1 &
    bpid=$!
    exec {hcmd}<>"$host/cmds"
    for _ in $(seq 100); do [[ -S $host/shm.sock ]] && break; sleep 0.1; done
    "$KITE_BIN" run --kernel "$host/idle.elf" --boot-protocol pvh --memory 64M --vcpus 1 --serial stdio \
      --vhost-user "socket=$host/shm.sock,virtio-id=42,shm=64M" </dev/null >"$host/kite.log" 2>&1 &
    kpid=$!
    # The guest's '!' comes after kite finished the vhost-user handshake.
    for _ in $(seq 100); do grep -q '!' "$host/kite.log" && break; sleep 0.1; done
    for kind in "" " vary"; do
      for _ in $(seq "$BENCH_RUNS"); do
        before=$(grep -c 'bench' "$host/backend.log" || true)
        echo "bench 500$kind" >&"$hcmd"
        for _ in $(seq 300); do (( $(grep -c 'bench' "$host/backend.log" || true) > before )) && break; sleep 0.1; done
      done
    done
    echo quit >&"$hcmd"
    exec {hcmd}>&-
    kill "$kpid" 2>/dev/null; wait "$kpid" 2>/dev/null; wait "$bpid" 2>/dev/null
    echo "## SHMEM_MAP + SHMEM_UNMAP on the host's /dev/kvm (PVM): $BENCH_RUNS x 500 round trips each"
    for kind in bench bench-vary; do
      mid=$(grep -a "shmem-backend: $kind rounds" "$host/backend.log" | map_unmap_us | median)
      floor=$(grep -a "shmem-backend: $kind rounds" "$host/backend.log" | floor_us | median)
      target=""; [[ $kind == bench ]] && target=" (target <= 50)"
      echo "BENCH shmem map+unmap host${kind#bench} median_us=$mid$target; floor without kite ${floor} us," \
           "kite/floor $(ratio "$mid" "$floor")"
    done
    grep -a 'shmem-backend: bench' "$host/backend.log" | sed 's/^/## /'
    rm -rf "$host"
  fi
  exit "$status"
fi

# ---- in the sandbox ------------------------------------------------------------------------------------
RUNS=${BENCH_RUNS:-5}
MB=${BENCH_MB:-256}
ROUNDS=${BENCH_SHMEM_ROUNDS:-200}
TIMEOUT=300
CMDLINE="console=ttyS0 quiet panic=-1"
work=$(mktemp -d)
started=()
trap 'for p in "${started[@]}"; do kill "$p" 2>/dev/null; done' EXIT

wait_for() { local tries=$(($1 * 5)); shift; until "$@"; do tries=$((tries - 1)); [[ $tries -gt 0 ]] || return 1; sleep 0.2; done; }

img=$work/disk.img
# Written through once: the first run to write a sparse image would also pay for the sandbox's page
# allocation, and that run was always kite's.
dd if=/dev/zero of="$img" bs=1M count=$((MB + 16)) 2>/dev/null
sock=$work/vub.sock

start_qsd() {
  rm -f "$sock"
  qemu-storage-daemon --blockdev "driver=file,node-name=file0,filename=$img" \
    --export "type=vhost-user-blk,id=vub0,node-name=file0,addr.type=unix,addr.path=$sock,writable=on" \
    >>"$work/qsd.log" 2>&1 &
  QSD_PID=$!
  started+=("$QSD_PID")
  wait_for 30 test -S "$sock"
}
stop_qsd() { kill "$QSD_PID" 2>/dev/null; wait "$QSD_PID" 2>/dev/null; }

guest_cmdline="$CMDLINE kite.test=vhost_bench kite.mb=$MB"
# run_kite_vhost LOG [TRANSPORT]
run_kite_vhost() {
  start_qsd || return 1
  timeout -k 5 $TIMEOUT "$KITE" run --kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory 512M --vcpus 2 \
    --serial stdio --cmdline "$guest_cmdline" --vhost-user-blk "socket=$sock,transport=${2:-mmio}" </dev/null >"$1" 2>&1
  stop_qsd
}
run_kite_vhost_pci() { run_kite_vhost "$1" pci; }
run_qemu_vhost() {
  start_qsd || return 1
  timeout -k 5 $TIMEOUT "$QEMU" -M q35,memory-backend=mem0 -enable-kvm -cpu host -m 512M -smp 2 \
    -object memory-backend-memfd,id=mem0,size=512M,share=on -nodefaults -no-user-config -nographic -no-reboot \
    -serial stdio -kernel "$ASSETS/vmlinuz" -initrd "$ASSETS/initrd.gz" -append "$guest_cmdline" \
    -chardev "socket,id=vub,path=$sock" -device vhost-user-blk-pci,chardev=vub,num-queues=1 </dev/null >"$1" 2>&1
  stop_qsd
}
run_kite_blk() {
  timeout -k 5 $TIMEOUT "$KITE" run --kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory 512M --vcpus 2 \
    --serial stdio --cmdline "$guest_cmdline" --disk "$img" </dev/null >"$1" 2>&1
}

echo "## vhost-user-blk: $RUNS runs of $MB MiB O_DIRECT write + read, 1 MiB blocks"
kinds=(kite_vhost kite_vhost_pci qemu_vhost kite_blk)
for ((i = 1; i <= RUNS; i++)); do
  # Each round starts with the next VMM: no VMM always runs first or right after another.
  for ((k = 0; k < ${#kinds[@]}; k++)); do
    kind=${kinds[(i - 1 + k) % ${#kinds[@]}]}
    log=$work/$kind.$i.log
    "run_$kind" "$log"
    w=$(log_value "$log" KITE-BENCH-WRITE-MBS) r=$(log_value "$log" KITE-BENCH-READ-MBS)
    iops=$(log_value "$log" KITE-BENCH-READ4K-IOPS)
    echo "## run $i $kind: write ${w:-?} MB/s, read ${r:-?} MB/s, 4 KiB reads ${iops:-?}/s"
    [[ -n $w && -n $r ]] || { echo "## $kind run $i failed; its log:"; tr -d '\r' < "$log" | tail -n 20 | sed 's/^/##   /'; }
    echo "${w:-nan}" >> "$work/$kind.write"
    echo "${r:-nan}" >> "$work/$kind.read"
    echo "${iops:-nan}" >> "$work/$kind.read4k"
  done
done
for dir in write read read4k; do
  kv=$(median < "$work/kite_vhost.$dir") kp=$(median < "$work/kite_vhost_pci.$dir")
  qv=$(median < "$work/qemu_vhost.$dir") kb=$(median < "$work/kite_blk.$dir")
  what="seq-$dir MB/s"; [[ $dir == read4k ]] && what="4KiB reads one at a time, per s"
  echo "BENCH vhost-user-blk $what: kite=$kv kite-pci=$kp qemu=$qv kite-virtio-blk=$kb" \
       "ratio kite/qemu=$(ratio "$kv" "$qv") kite-pci/qemu=$(ratio "$kp" "$qv") (target >= 1.0)" \
       "kite-vhost/kite-virtio-blk=$(ratio "$kv" "$kb")"
done

echo "## SHMEM_MAP + SHMEM_UNMAP: $ROUNDS round trips against kite (shmem-backend's bench command)"
ssock=$work/shm.sock
cmds=$work/shm.cmds
mkfifo "$cmds"
shmem-backend --socket-path "$ssock" <"$cmds" >"$work/shm.log" 2>&1 &
started+=($!)
exec {cmd}<>"$cmds"  # read-write: never blocks, never SIGPIPE
feed_fifo=$work/feed
mkfifo "$feed_fifo"
if wait_for 30 test -S "$ssock"; then
  timeout -k 5 $TIMEOUT "$KITE" run --kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory 512M --vcpus 2 \
    --serial stdio --cmdline "$CMDLINE" --vhost-user "socket=$ssock,virtio-id=42" <"$feed_fifo" >"$work/shm-vm.log" 2>&1 &
  vm=$!
  exec {feed}<>"$feed_fifo"
  # Measured once the guest idles at its shell, so boot work does not compete with the VMM thread.
  wait_for $TIMEOUT grep -a -q 'busybox shell on the console' "$work/shm-vm.log"
  echo "bench $ROUNDS" >&"$cmd"
  wait_for 120 grep -a -q 'shmem-backend: bench rounds' "$work/shm.log"
  echo "bench $ROUNDS vary" >&"$cmd"
  wait_for 120 grep -a -q 'shmem-backend: bench-vary rounds' "$work/shm.log"
  echo poweroff >&"$feed"
  wait "$vm"
  exec {feed}>&-
fi
echo quit >&"$cmd"
exec {cmd}>&-
line=$(grep -a 'shmem-backend: bench rounds' "$work/shm.log" | tail -n1)
trip=$(map_unmap_us <<<"$line")
vline=$(grep -a 'shmem-backend: bench-vary rounds' "$work/shm.log" | tail -n1)
vtrip=$(map_unmap_us <<<"$vline")
if [[ -n $trip ]]; then
  floor=$(floor_us <<<"$line")
  echo "BENCH shmem map+unmap median_us=$trip (target <= 50) [${line#shmem-backend: bench }]"
  echo "BENCH shmem map+unmap floor on this machine without kite (socket + fd + two mmaps between two threads)" \
       "median_us=${floor:-nan}, kite/floor $(ratio "$trip" "${floor:-0}")"
  echo "BENCH shmem map+unmap, length alternating (a new memslot every map) median_us=${vtrip:-nan}" \
       "[${vline#shmem-backend: bench-vary }]"
else
  echo "BENCH shmem map+unmap median_us=nan (no bench result)"
  sed 's/^/## shmem-backend: /' "$work/shm.log" | tail -n 10
  tr -d '\r' < "$work/shm-vm.log" | tail -n 10 | sed 's/^/## kite: /'
fi
rm -rf "$work"
