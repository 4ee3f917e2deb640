#!/bin/sh
# vhost_reconnect.sh (guest, kite.test=vhost_reconnect): writes 16 MiB of random data to the vhost-user
# disk /dev/vda with O_DIRECT, four times over, while the host kills the back-end (qemu-storage-daemon)
# and starts it again. Every write must complete; the data read back must be what was written.
dev=/dev/vda
[ -b $dev ] || { echo "vhost_reconnect: no $dev"; exit 1; }
dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null
echo "KITE-RC-SUM=$(md5sum < /tmp/data | cut -d' ' -f1)"
echo "KITE-RC-STEP=writing"
pass=0
while [ $pass -lt 4 ]; do
  dd if=/tmp/data of=$dev bs=64k oflag=direct conv=fsync 2>/dev/null || { echo "KITE-RC-WRITE-FAILED pass=$pass"; exit 1; }
  pass=$((pass + 1))
done
echo "KITE-RC-STEP=written"
dd if=$dev of=/tmp/back bs=64k count=256 iflag=direct 2>/dev/null || { echo "KITE-RC-READ-FAILED"; exit 1; }
echo "KITE-RC-READBACK=$(md5sum < /tmp/back | cut -d' ' -f1)"
