#!/usr/bin/env bash
# bench_virtio.sh: virtio-blk and virtio-net throughput, Kite vs QEMU microvm (virtio-blk-device,
# virtio-net-device), a sandbox scenario run by scripts/bench-virtio.sh (files: lib.sh, virtio_bench,
# bench-initrd.gz). Both VMMs boot the same kernel and initramfs with one raw disk and one NIC on the
# same tap, interleaved (taking turns to go first), BENCH_RUNS times each; the guest
# (tests/e2e/guest/virtio_bench.sh) measures:
#   blk-seq-write / blk-seq-read  dd with oflag=direct / iflag=direct, 1 MiB blocks, MB/s
#   blk-rand-read                 4 KiB O_DIRECT reads at random offsets, one at a time, IOPS
#   net-tcp-guest-to-host         MB/s received by ./virtio_bench tcprecv on the sandbox side of the tap
# Only the ratios mean something (the sandbox is CPU-emulated).
# Environment: BENCH_VMM (kite), BENCH_BASELINE (qemu), BENCH_RUNS (3), BENCH_DISK_MIB (128),
#              BENCH_NET_MIB (64), BENCH_RAND_SECONDS (5).
set -uo pipefail
. ./lib.sh

A=${BENCH_VMM:-kite}
B=${BENCH_BASELINE:-qemu}
RUNS=${BENCH_RUNS:-3}
DISK_MIB=${BENCH_DISK_MIB:-128}
NET_MIB=${BENCH_NET_MIB:-64}
RAND_SECONDS=${BENCH_RAND_SECONDS:-5}
TAP=kitetap1 HOST_IP=10.0.3.1 GUEST_IP=10.0.3.15
work=$(mktemp -d)

# field LOG KIND KEY : KEY's value on LOG's last "KITE-BENCH KIND ..." line
field() { grep -a -o "KITE-BENCH $2 .*" "$1" | tail -n1 | tr ' ' '\n' | sed -n "s/^$3=//p"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (b > 0 && s > 0) printf "%.1f", b / 1e6 / s; else print "nan" }'; }

ip tuntap add dev "$TAP" mode tap 2>/dev/null || tunctl -t "$TAP" >/dev/null
ip addr add "$HOST_IP/24" dev "$TAP"
ip link set "$TAP" up

declare -A results=() # "SIDE metric" -> space-separated values (SIDE A or B: both may be the same VMM)
# one_run SIDE VMM : one boot; appends its four figures to results
one_run() {
  local side=$1 vmm=$2 log=$work/run.log
  rm -f "$work/disk.img" && truncate -s "${DISK_MIB}M" "$work/disk.img"
  timeout 600 ./virtio_bench tcprecv 5003 > "$work/recv.out" 2>&1 &
  local recv=$!
  E2E_VMM=$vmm vmm_run "$log" --kernel "$ASSETS/vmlinuz" --initrd ./bench-initrd.gz --memory 512M --vcpus 2 \
    --serial stdio --disk "$work/disk.img" --net "tap=$TAP" \
    --cmdline "$E2E_CMDLINE_BASE kite.test=virtio_bench kite.mib=$DISK_MIB kite.randsec=$RAND_SECONDS kite.netmib=$NET_MIB kite.ip=$GUEST_IP kite.host=$HOST_IP" \
    > "$work/run.out"
  local rc=$?
  sleep 1
  kill "$recv" 2>/dev/null
  wait "$recv" 2>/dev/null
  cat "$work/recv.out" >> "$log"
  local w r i n
  w=$(mbps "$(field "$log" seqwrite bytes)" "$(field "$log" seqwrite seconds)")
  r=$(mbps "$(field "$log" seqread bytes)" "$(field "$log" seqread seconds)")
  i=$(field "$log" randread iops); i=${i:-nan}
  n=$(field "$log" tcprecv mbps); n=${n:-nan}
  echo "    $vmm: status $rc, seq write $w MB/s, seq read $r MB/s, rand read $i IOPS, tcp $n MB/s" >&2
  if [[ $w == nan || $r == nan || $i == nan || $n == nan ]]; then
    echo "    $vmm: a figure is missing; the run's output:" >&2
    sed 's/^/    /' "$work/run.out" | tail -n 40 >&2
  fi
  results["$side blk-seq-write"]+="$w "
  results["$side blk-seq-read"]+="$r "
  results["$side blk-rand-read"]+="$i "
  results["$side net-tcp-guest-to-host"]+="$n "
}

echo "## bench: A=$A B=$B runs=$RUNS disk=${DISK_MIB} MiB net=${NET_MIB} MiB random reads ${RAND_SECONDS} s"
for ((run = 1; run <= RUNS; run++)); do
  # Turn about: neither VMM always boots first.
  if ((run % 2)); then one_run A "$A"; one_run B "$B"; else one_run B "$B"; one_run A "$A"; fi
done
for metric in blk-seq-write blk-seq-read blk-rand-read net-tcp-guest-to-host; do
  unit="MB/s"; [[ $metric == blk-rand-read ]] && unit=IOPS
  ma=$(tr ' ' '\n' <<<"${results["A $metric"]}" | grep -v '^$' | grep -v nan | median)
  mb=$(tr ' ' '\n' <<<"${results["B $metric"]}" | grep -v '^$' | grep -v nan | median)
  echo "BENCH $metric $A: ${results["A $metric"]}(median $ma $unit)"
  echo "BENCH $metric $B: ${results["B $metric"]}(median $mb $unit)"
  echo "BENCH $metric ratio $A/$B = $(ratio "$ma" "$mb") (target >= 1.0)"
done
ip link del "$TAP" 2>/dev/null || tunctl -d "$TAP" >/dev/null 2>&1
rm -rf "$work"
