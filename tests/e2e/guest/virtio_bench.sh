#!/bin/sh
# virtio_bench: the guest side of tests/e2e/bench_virtio.sh. Needs /bin/virtio_bench, which
# scripts/bench-virtio.sh appends to the initrd. On the one disk: sequential O_DIRECT write then read of
# kite.mib= MiB with dd (1 MiB blocks), then 4 KiB random reads for kite.randsec= seconds; then
# kite.netmib= MiB over TCP to kite.host=:5003 from kite.ip=. Prints KITE-BENCH lines.
arg() {
  for w in $(cat /proc/cmdline); do
    case $w in "kite.$1="*) echo "${w#kite.$1=}"; return ;; esac
  done
}
[ -x /bin/virtio_bench ] || { echo "virtio_bench: /bin/virtio_bench missing (use scripts/bench-virtio.sh)"; exit 1; }
mib=$(arg mib)
disk=$(cd /sys/block && ls -d vd* | head -n1)
[ -n "$disk" ] || { echo "virtio_bench: no virtio disk"; exit 1; }
# timed COMMAND... : prints the seconds COMMAND took
timed() {
  t0=$(virtio_bench now)
  "$@" > /dev/null 2>&1 || echo "virtio_bench: $* failed" >&2
  t1=$(virtio_bench now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}
echo "KITE-BENCH seqwrite bytes=$((mib << 20)) seconds=$(timed dd if=/dev/zero of="/dev/$disk" bs=1M count="$mib" oflag=direct)"
echo "KITE-BENCH seqread bytes=$((mib << 20)) seconds=$(timed dd if="/dev/$disk" of=/dev/null bs=1M count="$mib" iflag=direct)"
virtio_bench randread "/dev/$disk" "$(arg randsec)"

ip link set lo up
ip link set eth0 up
ip addr add "$(arg ip)/24" dev eth0
for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 2 "$(arg host)" > /dev/null 2>&1 && break; done
virtio_bench tcpsend "$(arg host)" 5003 "$(arg netmib)"
