#!/usr/bin/env bash
# e2e_virtio.sh: virtio-blk, -net, -rng and -console with the stock Debian kernel. A sandbox scenario:
#   scripts/sandbox.sh tests/e2e/e2e_virtio.sh tests/e2e/lib.sh
# E2E_VMM=kite|qemu selects the VMM (see lib.sh). Three guest boots:
#   1. three disks (guest scripts: tests/e2e/guest/virtio_disk.sh): mkfs.ext4 + files on a scratch disk,
#      checked on the host with e2fsck and debugfs; a host-prepared image read back; a read-only disk
#   2. a NIC on a tap in the sandbox (virtio_net.sh): pings both ways, a TCP transfer each way (busybox nc)
#   3. a virtio console on stdio with console=hvc0: a shell on hvc0 runs typed commands, among them
#      virtio_rng.sh (/dev/hwrng from the virtio entropy device)
set -uo pipefail
. ./lib.sh

COMMON=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory 512M --vcpus 2)
work=$(mktemp -d)
sha() { sha256sum < "$1" | cut -d' ' -f1; }
# log_line LOG PREFIX : the last line of LOG that starts with PREFIX
log_line() { grep -a -- "^$2" "$1" | tail -n1; }

# ---- 1. disks ----------------------------------------------------------------------------------------
SCRATCH_MIB=64 IMAGE_MIB=8 RO_MIB=6 # distinct sizes: the guest tells the disks apart by size
truncate -s "${SCRATCH_MIB}M" "$work/scratch.img"
head -c $((IMAGE_MIB << 20)) /dev/urandom > "$work/image.img"
mkdir "$work/rodir"
{ echo "written by the host"; seq 1 5000; } > "$work/rodir/hello.txt"
truncate -s "${RO_MIB}M" "$work/ro.img"
mke2fs -q -F -t ext4 -d "$work/rodir" "$work/ro.img" || fail disk-host-mke2fs "mke2fs -d failed"
ro_sha_before=$(sha "$work/ro.img")

log=$work/disk.log
vmm_run "$log" "${COMMON[@]}" --serial stdio \
  --cmdline "$E2E_CMDLINE_BASE kite.test=virtio_disk kite.scratch=$((SCRATCH_MIB * 2048)) kite.image=$((IMAGE_MIB * 2048)) kite.ro=$((RO_MIB * 2048))" \
  --disk "$work/scratch.img,id=scratch" --disk "$work/image.img,id=image" --disk "$work/ro.img,readonly,id=ro"
rc=$?
check disk-three-attached "guest block devices: '$(log_line "$log" KITE-DISKS=)'" \
  test "$(log_line "$log" KITE-DISKS= | wc -w)" -eq 3
check disk-roles-found "$(log_line "$log" virtio_disk:)" log_has "$log" "KITE-ROLES scratch=vd"
check disk-ids-seen "serials: $(grep -a -o 'serial=[^ ]*' "$log" | tr '\n' ' ')" \
  bash -c "grep -a -q 'serial=scratch' '$log' && grep -a -q 'serial=image' '$log' && grep -a -q 'serial=ro' '$log'"
image_sha=$(sha "$work/image.img")
check disk-image-reads-back "guest $(log_value "$log" KITE-IMAGE-SHA), host $image_sha" \
  test "$(log_value "$log" KITE-IMAGE-SHA)" = "$image_sha"
check disk-image-reads-back-direct "guest O_DIRECT $(log_value "$log" KITE-IMAGE-DIRECT-SHA), host $image_sha" \
  test "$(log_value "$log" KITE-IMAGE-DIRECT-SHA)" = "$image_sha"
check disk-mkfs-ext4 "mkfs=$(log_value "$log" KITE-MKFS) umount=$(log_value "$log" KITE-UMOUNT)" \
  bash -c "grep -a -q '^KITE-MKFS=ok' '$log' && grep -a -q '^KITE-UMOUNT=ok' '$log'"
if command -v e2fsck >/dev/null && command -v debugfs >/dev/null; then
  e2fsck -fn "$work/scratch.img" > "$work/fsck.out" 2>&1
  fsck_rc=$?
  sed 's/^/  e2fsck: /' "$work/fsck.out"
  check disk-e2fsck-clean "e2fsck -fn status $fsck_rc" test "$fsck_rc" -eq 0
  files_ok=0 files_bad=""
  while read -r _ path guest_sha; do
    rm -f "$work/dumped"
    debugfs -R "dump $path $work/dumped" "$work/scratch.img" >/dev/null 2>&1
    if [[ -f $work/dumped && $(sha "$work/dumped") == "$guest_sha" ]]; then files_ok=$((files_ok + 1))
    else files_bad+=" $path"; fi
  done < <(grep -a '^KITE-FILE ' "$log")
  check disk-files-match-on-host "matching: $files_ok of 3, differing or missing:$files_bad" \
    test "$files_ok" -eq 3
else
  fail disk-e2fsck-clean "no e2fsck/debugfs in the sandbox (scripts/sandbox.sh BASE_BINS)"
  fail disk-files-match-on-host "no debugfs in the sandbox"
fi
check disk-readonly-sysfs "guest /sys/block/vdX/ro = $(log_value "$log" KITE-RO-SYSFS)" \
  test "$(log_value "$log" KITE-RO-SYSFS)" = 1
raw=$(log_line "$log" KITE-RO-RAW-WRITE)
check disk-readonly-raw-write-refused "guest: $raw" \
  bash -c "[[ '$raw' != *'rc=0 '* && ( '$raw' == *'Operation not permitted'* || '$raw' == *'Read-only file system'* ) ]]"
fsw=$(log_line "$log" KITE-RO-FS-WRITE)
check disk-readonly-fs-write-refused "guest: $fsw ($(log_line "$log" KITE-RO-MOUNT))" \
  bash -c "[[ '$fsw' == *'Read-only file system'* ]]"
check disk-readonly-file-reads "guest $(log_line "$log" KITE-RO-FILE), host $(sha "$work/rodir/hello.txt")" \
  test "$(log_line "$log" KITE-RO-FILE)" = "KITE-RO-FILE $(sha "$work/rodir/hello.txt")"
check disk-readonly-image-unchanged "ro.img changed" test "$(sha "$work/ro.img")" = "$ro_sha_before"
check disk-guest-test-ok "no 'KITE-TEST-RESULT virtio_disk rc=0'" log_has "$log" "KITE-TEST-RESULT virtio_disk rc=0"
check disk-exits-0 "status $rc" test "$rc" -eq 0
rm -f "$work"/*.img

# ---- 2. network ----------------------------------------------------------------------------------------
TAP=kitetap0 HOST_IP=10.0.2.1 GUEST_IP=10.0.2.15 MAC=52:54:00:12:34:56 NET_BYTES=2097152
ip tuntap add dev "$TAP" mode tap 2>/dev/null || tunctl -t "$TAP" >/dev/null
ip addr add "$HOST_IP/24" dev "$TAP"
ip link set "$TAP" up
head -c "$NET_BYTES" /dev/urandom > "$work/to_guest"
# The listener's input is a FIFO we hold open: on EOF busybox nc would shut its sending side down at once.
mkfifo "$work/hold"
exec {hold}<>"$work/hold"
nc -l -p 5001 < "$work/hold" > "$work/from_guest" &
listener=$!
host_side() { # ping the guest once it answers, then send it to_guest on its port 5002
  local i result=failed
  for ((i = 0; i < 300; i++)); do
    if ping -c 1 -W 1 "$GUEST_IP" > "$work/host-ping.out" 2>&1; then result=ok; break; fi
    sleep 0.5
  done
  echo "$result" > "$work/host-ping"
  result=failed
  for ((i = 0; i < 120; i++)); do
    if nc -w 5 "$GUEST_IP" 5002 < "$work/to_guest" 2>/dev/null; then result=ok; break; fi
    sleep 1
  done
  echo "$result" > "$work/host-send"
}
host_side &
sender=$!
log=$work/net.log
vmm_run "$log" "${COMMON[@]}" --serial stdio --net "tap=$TAP,mac=$MAC" \
  --cmdline "$E2E_CMDLINE_BASE kite.test=virtio_net kite.ip=$GUEST_IP kite.host=$HOST_IP kite.bytes=$NET_BYTES"
rc=$?
kill "$sender" "$listener" 2>/dev/null
wait "$sender" "$listener" 2>/dev/null
exec {hold}>&-
check net-guest-mac "guest MAC $(log_value "$log" KITE-NET-MAC), want $MAC" test "$(log_value "$log" KITE-NET-MAC)" = "$MAC"
check net-guest-pings-host "$(log_line "$log" KITE-PING-HOST)" log_has "$log" "KITE-PING-HOST=ok"
check net-host-pings-guest "host ping: $(cat "$work/host-ping" 2>/dev/null)" \
  test "$(cat "$work/host-ping" 2>/dev/null)" = ok
check net-tcp-guest-to-host "received $(wc -c < "$work/from_guest") bytes, sha $(sha "$work/from_guest"), guest sent $(log_value "$log" KITE-NET-OUT-SHA)" \
  test "$(sha "$work/from_guest")" = "$(log_value "$log" KITE-NET-OUT-SHA)"
check net-tcp-host-to-guest "host send $(cat "$work/host-send" 2>/dev/null); $(log_line "$log" KITE-NET-RECEIVED) sha $(log_value "$log" KITE-NET-IN-SHA), host $(sha "$work/to_guest")" \
  test "$(log_value "$log" KITE-NET-IN-SHA)" = "$(sha "$work/to_guest")"
check net-exits-0 "status $rc" test "$rc" -eq 0
ip link del "$TAP" 2>/dev/null || tunctl -d "$TAP" >/dev/null 2>&1

# ---- 3. virtio console (hvc0) with a shell, and the entropy device -----------------------------------
# console_session LOG SCRIPT ARGS... : the VMM with stdin from SCRIPT's lines, typed once the shell's
# prompt appears on stdout (the virtio console); returns the VMM's status.
console_session() {
  local log=$1 script=$2; shift 2
  vmm_command "$@" || return 125
  echo "# ${VMM_CMD[*]} (console input from $script)"
  local fifo=$work/console.fifo start=$EPOCHREALTIME waited=0 line
  mkfifo "$fifo"
  vmm_timed "${VMM_CMD[@]}" < "$fifo" > "$log.raw" 2>&1 &
  local pid=$!
  exec {feed}>"$fifo"
  until grep -a -q 'kite-guest:' "$log.raw" 2>/dev/null; do
    sleep 0.5
    waited=$((waited + 1))
    if ! kill -0 "$pid" 2>/dev/null || [[ $waited -gt $((E2E_BOOT_TIMEOUT * 2)) ]]; then break; fi
  done
  sleep 1
  while IFS= read -r line; do
    printf '%s\n' "$line" >&"$feed"
    sleep 1
  done < "$script"
  wait "$pid"
  local rc=$?
  exec {feed}>&-
  tr -d '\r' < "$log.raw" > "$log"
  sed 's/^/| /' "$log"
  echo "# exit status $rc after $(elapsed "$start") s"
  return "$rc"
}
cat > "$work/commands" <<'EOF'
echo KITE-TTY=$(tty)
echo KITE-SUM=$((6 * 7))
sh /tests/virtio_rng.sh
poweroff
EOF
log=$work/console.log
console_session "$log" "$work/commands" "${COMMON[@]}" --serial "file:$work/serial.log" --console stdio --rng \
  --cmdline "console=hvc0 quiet panic=-1"
rc=$?
[[ ! -f $work/serial.log ]] || sed 's/^/| serial: /' "$work/serial.log" | tr -d '\r'
check console-shell-on-hvc0 "the shell's tty: '$(log_value "$log" KITE-TTY)'" test "$(log_value "$log" KITE-TTY)" = /dev/hvc0
check console-command-output "KITE-SUM=$(log_value "$log" KITE-SUM), want 42" test "$(log_value "$log" KITE-SUM)" = 42
check rng-module-loaded "virtio_rng in /proc/modules: $(log_value "$log" KITE-RNG-MODULE)" \
  test "$(log_value "$log" KITE-RNG-MODULE)" = 1
check rng-is-current "rng_current=$(log_value "$log" KITE-RNG-CURRENT)" \
  bash -c "[[ '$(log_value "$log" KITE-RNG-CURRENT)' == virtio_rng* ]]"
check rng-yields-bytes "read $(log_value "$log" KITE-RNG-BYTES) of 1024 bytes from /dev/hwrng" \
  test "$(log_value "$log" KITE-RNG-BYTES)" = 1024
check rng-bytes-vary "$(log_value "$log" KITE-RNG-DISTINCT) distinct byte values in 1024, reads differ: $(log_value "$log" KITE-RNG-READS-DIFFER)" \
  bash -c "[[ '$(log_value "$log" KITE-RNG-DISTINCT)' -gt 128 && '$(log_value "$log" KITE-RNG-READS-DIFFER)' == yes ]]"
check console-poweroff-exits-0 "status $rc" test "$rc" -eq 0

rm -rf "$work"
e2e_finish
