#!/bin/sh
# vhost_blk.sh (guest, kite.test=vhost_blk): the vhost-user disk /dev/vda, served on the host by
# qemu-storage-daemon. mkfs.ext4, write two files, read them back after a remount with the page cache
# dropped, and print both checksums; the host compares them with the files it extracts from the image.
set -e
dev=/dev/vda
[ -b $dev ] || { echo "vhost_blk: no $dev"; exit 1; }
# Which transport the disk came through: its sysfs path, and its MSI-X interrupts (0 under virtio-mmio).
echo "KITE-BLK-DEVPATH=$(readlink -f /sys/block/vda)"
echo "KITE-BLK-MSIX=$(grep -c 'PCI-MSI.*virtio[0-9]*-req' /proc/interrupts)"
mkfs.ext4 -q -F $dev
mkdir -p /mnt/disk
mount -t ext4 $dev /mnt/disk
dd if=/dev/urandom of=/mnt/disk/random.bin bs=1M count=8 2>/dev/null
i=0
while [ $i -lt 2000 ]; do echo "line $i of a text file written through vhost-user-blk"; i=$((i + 1)); done > /mnt/disk/text.txt
sync
echo "KITE-BLK-WRITTEN-random=$(md5sum < /mnt/disk/random.bin | cut -d' ' -f1)"
echo "KITE-BLK-WRITTEN-text=$(md5sum < /mnt/disk/text.txt | cut -d' ' -f1)"
umount /mnt/disk
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 -o ro $dev /mnt/disk
echo "KITE-BLK-READBACK-random=$(md5sum < /mnt/disk/random.bin | cut -d' ' -f1)"
echo "KITE-BLK-READBACK-text=$(md5sum < /mnt/disk/text.txt | cut -d' ' -f1)"
umount /mnt/disk
