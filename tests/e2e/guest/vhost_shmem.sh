#!/bin/sh
# vhost_shmem.sh (guest, kite.test=vhost_shmem, cmdline iomem=relaxed): the SHMEM demo. Device 42 is served
# by examples/shmem-backend on the host. The host maps the pattern or takes it away when this script asks
# (a KITE-SHM-STEP line on the console) and answers with a line on the console once it has.
# shmem-guest-check reads shared memory region 0 of the device through /dev/mem.
echo "KITE-SHM-STEP=want-map"
read -r answer
echo "KITE-SHM-HOST-SAID=$answer"
shmem-guest-check
echo "KITE-SHM-MAPPED-RC=$?"
# Offset 0 of the window was never mapped: reading it touches a hole.
shmem-guest-check --offset 0 --len 0x1000
echo "KITE-SHM-HOLE-RC=$?"
echo "KITE-SHM-STEP=want-unmap"
read -r answer
echo "KITE-SHM-HOST-SAID=$answer"
shmem-guest-check
echo "KITE-SHM-UNMAPPED-RC=$?"
echo "KITE-SHM-ALIVE=yes"
