#!/bin/sh
# vhost_fs.sh (guest, kite.test=vhost_fs): virtio-fs (tag kitefs) served on the host by virtiofsd. Reads
# the host's files and writes two of its own; the host checks what the guest printed and what it wrote.
set -e
mkdir -p /mnt/fs
mount -t virtiofs kitefs /mnt/fs
echo "KITE-FS-HOSTTEXT=$(cat /mnt/fs/from_host.txt)"
echo "KITE-FS-HOSTSUM=$(md5sum < /mnt/fs/from_host.bin | cut -d' ' -f1)"
echo "written-by-the-guest" > /mnt/fs/from_guest.txt
dd if=/dev/urandom of=/mnt/fs/from_guest.bin bs=64k count=16 2>/dev/null
echo "KITE-FS-GUESTSUM=$(md5sum < /mnt/fs/from_guest.bin | cut -d' ' -f1)"
sync
umount /mnt/fs
