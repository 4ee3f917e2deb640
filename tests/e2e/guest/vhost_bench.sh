#!/bin/sh
# vhost_bench.sh (guest, kite.test=vhost_bench [kite.mb=N]): sequential O_DIRECT write, then read, of N MiB
# (default 64) on /dev/vda in 1 MiB blocks; prints the throughput of each in MB/s. Used by
# scripts/bench-vhost.sh with the same disk behind vhost-user-blk (kite, QEMU) and kite's virtio-blk.
dev=/dev/vda
mb=64
for w in $(cat /proc/cmdline); do
  case $w in kite.mb=*) mb=${w#kite.mb=} ;; esac
done
[ -b $dev ] || { echo "vhost_bench: no $dev"; exit 1; }
now() { read -r up _ < /proc/uptime; echo "$up"; }
rate() { awk -v mb="$1" -v a="$2" -v b="$3" 'BEGIN { if (b > a) printf "%.1f", mb / (b - a); else print "nan" }'; }
t0=$(now)
dd if=/dev/zero of=$dev bs=1M count=$mb oflag=direct 2>/dev/null || exit 1
t1=$(now)
dd if=$dev of=/dev/null bs=1M count=$mb iflag=direct 2>/dev/null || exit 1
t2=$(now)
echo "KITE-BENCH-WRITE-MBS=$(rate "$mb" "$t0" "$t1")"
echo "KITE-BENCH-READ-MBS=$(rate "$mb" "$t1" "$t2")"
