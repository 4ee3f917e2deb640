#!/bin/sh
# virtio_disk: the disk checks of tests/e2e/e2e_virtio.sh. The host attaches three disks, told apart by
# their sizes in 512-byte sectors (kite.scratch=, kite.image=, kite.ro= on the command line):
#   scratch  empty: mkfs.ext4, files written, their checksums printed, sync, unmount
#   image    host-prepared random bytes: checksum of the whole device, buffered and O_DIRECT
#   ro       host-prepared ext4, attached read-only: writes must be refused
# Prints KITE-... lines that the host compares with what it sees in the images afterwards.
arg() {
  for w in $(cat /proc/cmdline); do
    case $w in "kite.$1="*) echo "${w#kite.$1=}"; return ;; esac
  done
}
disk_of_size() {
  for d in /sys/block/vd*; do
    [ -f "$d/size" ] && [ "$(cat "$d/size")" = "$1" ] && { echo "${d##*/}"; return 0; }
  done
  return 1
}
sha() { sha256sum | cut -d' ' -f1; }
oneline() { tr '\n' ' '; }

echo "KITE-DISKS=$(cd /sys/block && ls -d vd* 2>/dev/null | oneline)"
for d in /sys/block/vd*; do echo "KITE-DISK ${d##*/} sectors=$(cat "$d/size") ro=$(cat "$d/ro") serial=$(cat "$d/serial" 2>/dev/null)"; done
rc=0
for role in scratch image ro; do
  d=$(disk_of_size "$(arg $role)") || { echo "virtio_disk: no disk of $(arg $role) sectors for $role"; rc=1; }
  eval "$role=\$d"
done
echo "KITE-ROLES scratch=$scratch image=$image ro=$ro"

# Host-prepared image: read back exactly.
if [ -n "$image" ]; then
  echo "KITE-IMAGE-SHA=$(sha < "/dev/$image")"
  echo "KITE-IMAGE-DIRECT-SHA=$(dd if="/dev/$image" bs=64k iflag=direct 2>/dev/null | sha)"
fi

# Scratch disk: a fresh ext4 with files.
if [ -n "$scratch" ]; then
  if /sbin/mkfs.ext4 -q -F -t ext4 "/dev/$scratch"; then echo "KITE-MKFS=ok"; else echo "KITE-MKFS=failed"; fi
  if mount -t ext4 "/dev/$scratch" /mnt; then
    mkdir -p /mnt/dir
    dd if=/dev/urandom of=/mnt/big.bin bs=64k count=48 2>/dev/null
    dd if=/dev/urandom of=/mnt/dir/small.bin bs=1000 count=7 2>/dev/null
    seq 1 20000 > /mnt/dir/numbers.txt
    for f in big.bin dir/small.bin dir/numbers.txt; do echo "KITE-FILE /$f $(sha < "/mnt/$f")"; done
    sync
    if umount /mnt; then echo "KITE-UMOUNT=ok"; else echo "KITE-UMOUNT=failed"; fi
  else
    echo "KITE-MOUNT=failed"
  fi
fi

# Read-only disk: the kernel sees it read-only, raw writes and file system writes are refused.
if [ -n "$ro" ]; then
  echo "KITE-RO-SYSFS=$(cat "/sys/block/$ro/ro")"
  out=$(dd if=/dev/zero of="/dev/$ro" bs=4096 count=1 oflag=direct 2>&1)
  echo "KITE-RO-RAW-WRITE rc=$? $(echo "$out" | oneline)"
  # The mount below makes the kernel log "Can't open blockdev" (it tries read-write first); console
  # output is queued, and that message once landed inside the line above. Let the line out first.
  console-drain
  out=$(mount -t ext4 "/dev/$ro" /mnt 2>&1)
  echo "KITE-RO-MOUNT rc=$? $(echo "$out" | oneline) opts=$(awk -v d="/dev/$ro" '$1 == d {print $4}' /proc/mounts)"
  echo "KITE-RO-FILE $(sha < /mnt/hello.txt)"
  out=$(touch /mnt/new.txt 2>&1)
  echo "KITE-RO-FS-WRITE rc=$? $(echo "$out" | oneline)"
  umount /mnt
fi
exit $rc
