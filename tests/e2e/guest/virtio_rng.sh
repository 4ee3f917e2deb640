#!/bin/sh
# virtio_rng: /dev/hwrng is fed by the virtio entropy device and yields varied bytes.
echo "KITE-RNG-MODULE=$(grep -c '^virtio_rng ' /proc/modules)"
echo "KITE-RNG-CURRENT=$(cat /sys/class/misc/hw_random/rng_current)"
a=$(timeout 30 dd if=/dev/hwrng bs=1024 count=1 iflag=fullblock 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
b=$(timeout 30 dd if=/dev/hwrng bs=1024 count=1 iflag=fullblock 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
echo "KITE-RNG-BYTES=$((${#a} / 2))"
echo "KITE-RNG-DISTINCT=$(echo "$a" | fold -w2 | sort -u | wc -l)"
if [ -n "$a" ] && [ "$a" != "$b" ]; then echo "KITE-RNG-READS-DIFFER=yes"; else echo "KITE-RNG-READS-DIFFER=no"; fi
