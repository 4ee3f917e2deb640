#!/bin/sh
# snap_virtio: virtio-blk and virtio-rng across a snapshot (tests/e2e/e2e_snapshot.sh, virtio variant).
# The host attaches one disk (vda) and --rng, snapshots the guest while this runs and restores it in a
# new Kite. Once a second: 16 bytes from /dev/hwrng, written as record "KITE-REC N HEX" to sector N of
# vda (buffered, then fsync: busybox dd's small buffers are not aligned for O_DIRECT), then
# "KITE-SNAPV=N rng=HEX" on the console. Meanwhile a background writer keeps O_DIRECT writes of random
# 64 KiB blocks going at 1 MiB..3 MiB, so requests are in flight when the snapshot is taken. After
# kite.snapv.count= records (default 14): the writer stops, sync, and the sha256 of the whole disk read
# back with O_DIRECT goes out as KITE-SNAPV-SHA=..., then KITE-SNAPV-DONE.
count=14
for w in $(cat /proc/cmdline); do
  case $w in kite.snapv.count=*) count=${w#kite.snapv.count=} ;; esac
done
disk=/dev/vda
[ -b $disk ] || { echo "snap_virtio: no $disk"; exit 1; }
echo "KITE-SNAPV-RNG-CURRENT=$(cat /sys/class/misc/hw_random/rng_current)"

rm -f /tmp/snapv.stop
(
  j=0
  while [ ! -e /tmp/snapv.stop ]; do
    dd if=/dev/urandom of=$disk bs=64k count=1 seek=$((16 + j % 32)) oflag=direct conv=notrunc 2>/dev/null ||
      echo "KITE-SNAPV-BG-WRITE-FAILED=$j"
    j=$((j + 1))
  done
  echo "KITE-SNAPV-BG-WRITES=$j"
) &
bg=$!
# Heartbeat: tells a stalled disk (heartbeats go on, records stop) from a stalled guest (both stop).
( k=0; while [ ! -e /tmp/snapv.stop ]; do
    echo "KITE-SNAPV-HB=$k $(grep -i virtio /proc/interrupts | tr -s ' ' | cut -c1-60 | tr '\n' ';')"
    k=$((k + 1)); sleep 5
  done ) &

i=0
while [ $i -lt $count ]; do
  hex=$(timeout 20 dd if=/dev/hwrng bs=16 count=1 iflag=fullblock 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
  printf 'KITE-REC %d %s\n' $i "$hex" | dd of=$disk bs=512 seek=$i count=1 conv=sync,notrunc,fsync 2>/dev/null ||
    echo "KITE-SNAPV-WRITE-FAILED=$i"
  echo "KITE-SNAPV=$i rng=$hex"
  i=$((i + 1))
  sleep 1
done
touch /tmp/snapv.stop
wait $bg
sync
echo "KITE-SNAPV-SHA=$(dd if=$disk bs=64k iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "KITE-SNAPV-DONE"
