#!/bin/sh
# vhost_bench.sh (guest, kite.test=vhost_bench [kite.mb=N]): sequential O_DIRECT write, then read, of N MiB
# (default 64) on /dev/vda in 1 MiB blocks; prints the throughput of each in MB/s. Then reads 4 KiB blocks one
# at a time (kite.ios=N, default 4096) and prints requests per second: there the cost of each request (the
# notification, the interrupt and what the VMM adds to them) shows, not the back-end's copying. Used by
# scripts/bench-vhost.sh with the same disk behind vhost-user-blk (kite, QEMU) and kite's virtio-blk.
dev=/dev/vda
mb=64
ios=4096
for w in $(cat /proc/cmdline); do
  case $w in kite.mb=*) mb=${w#kite.mb=} ;; kite.ios=*) ios=${w#kite.ios=} ;; esac
done
[ -b $dev ] || { echo "vhost_bench: no $dev"; exit 1; }
now() { read -r up _ < /proc/uptime; echo "$up"; }
rate() { awk -v mb="$1" -v a="$2" -v b="$3" 'BEGIN { if (b > a) printf "%.1f", mb / (b - a); else print "nan" }'; }
t0=$(now)
dd if=/dev/zero of=$dev bs=1M count=$mb oflag=direct 2>/dev/null || exit 1
t1=$(now)
dd if=$dev of=/dev/null bs=1M count=$mb iflag=direct 2>/dev/null || exit 1
t2=$(now)
dd if=$dev of=/dev/null bs=4k count="$ios" iflag=direct 2>/dev/null || exit 1
t3=$(now)
echo "KITE-BENCH-WRITE-MBS=$(rate "$mb" "$t0" "$t1")"
echo "KITE-BENCH-READ-MBS=$(rate "$mb" "$t1" "$t2")"
echo "KITE-BENCH-READ4K-IOPS=$(awk -v n="$ios" -v a="$t2" -v b="$t3" 'BEGIN { if (b > a) printf "%.0f", n / (b - a); else print "nan" }')"
