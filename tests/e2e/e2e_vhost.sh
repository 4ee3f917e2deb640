#!/usr/bin/env bash
# e2e_vhost.sh: vhost-user devices under kite with real back-ends and the stock Linux kernel. A sandbox
# scenario:
#   KITE_BIN=build/vmm/kite SANDBOX_BINS="build/examples/shmem-backend/shmem-backend" \
#     scripts/sandbox.sh tests/e2e/e2e_vhost.sh tests/e2e/lib.sh
# Five guest boots, several checks each:
#   1. vhost-user-blk served by qemu-storage-daemon: mkfs.ext4, files written and read back in the guest,
#      then e2fsck and the files' checksums on the host; once over virtio-mmio and once over virtio-pci
#      (transport=pci: the disk sits on the PCI bus and its queue interrupts are MSI-X vectors).
#   2. vhost-user-fs served by virtiofsd: the guest reads host files and writes files the host then sees.
#   3. The SHMEM demo: examples/shmem-backend maps a pattern into region 0 of device 42 on request, and
#      shmem-guest-check (in the initrd) reads it through /dev/mem; after the unmap it is gone; reading a
#      hole of the window leaves kite running.
#   4. qemu-storage-daemon killed (SIGKILL) while the guest writes with O_DIRECT, and started again: kite
#      reconnects, the writes complete and the data on the disk is what the guest wrote.
set -uo pipefail
. ./lib.sh
E2E_VMM=kite  # lib.sh's QEMU adapter knows no vhost-user flags

QSD=${E2E_QSD:-qemu-storage-daemon}
VIRTIOFSD=${E2E_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
SHMEM_BACKEND=${E2E_SHMEM_BACKEND:-shmem-backend}
COMMON=(--kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --memory 512M --vcpus 2 --serial stdio)
work=$(mktemp -d)
started=()  # pids of the back-ends this scenario started
trap 'for p in "${started[@]}"; do kill "$p" 2>/dev/null; done' EXIT

# wait_for SECONDS COMMAND... : polls COMMAND until it succeeds; false after SECONDS, or at once when
# COMMAND returns 255 (it will never succeed).
wait_for() {
  local tries=$(($1 * 5)) rc; shift
  while true; do
    "$@"
    rc=$?
    [[ $rc -eq 0 ]] && return 0
    [[ $rc -ne 255 ]] || return 1
    tries=$((tries - 1))
    [[ $tries -gt 0 ]] || return 1
    sleep 0.2
  done
}

# part NAME : the scenario runs section NAME (E2E_VHOST_PARTS, default all: blk blkpci fs shmem reconnect).
part() { [[ " ${E2E_VHOST_PARTS:-blk blkpci fs shmem reconnect} " == *" $1 "* ]]; }

md5_of() { md5sum < "$1" | cut -d' ' -f1; }

# start_qsd IMAGE SOCKET LOG : qemu-storage-daemon exporting IMAGE as vhost-user-blk on SOCKET; sets QSD_PID.
start_qsd() {
  rm -f "$2"
  "$QSD" --blockdev "driver=file,node-name=file0,filename=$1" \
    --export "type=vhost-user-blk,id=vub0,node-name=file0,addr.type=unix,addr.path=$2,writable=on" >>"$3" 2>&1 &
  QSD_PID=$!
  started+=("$QSD_PID")
  wait_for 30 test -S "$2"
}

# vm_start LOG KITE-RUN-ARGS... : kite in the background, output to LOG, serial input from a fifo this
# script writes through fd $VM_FEED; sets VM_PID. Fifos are opened read-write here, so neither the open
# nor a write can block or raise SIGPIPE when the other side is already gone.
vm_start() {
  local log=$1; shift
  vmm_command "$@" || return 1
  echo "# ${VMM_CMD[*]}"
  local fifo=$work/feed.$RANDOM
  mkfifo "$fifo"
  vmm_timed "${VMM_CMD[@]}" <"$fifo" >"$log" 2>&1 &
  VM_PID=$!
  exec {VM_FEED}<>"$fifo"
}

# vm_says LOG TEXT : LOG has TEXT; fails at once (stopping wait_for) when kite has exited without it.
vm_says() {
  log_has "$1" "$2" && return 0
  kill -0 "$VM_PID" 2>/dev/null || { log_has "$1" "$2"; return $(( $? ? 255 : 0 )); }
  return 1
}

# vm_wait LOG : waits for kite, strips carriage returns from LOG, shows it; returns kite's status.
vm_wait() {
  wait "$VM_PID"
  local rc=$?
  exec {VM_FEED}>&-
  tr -d '\r' < "$1" > "$1.tmp" && mv "$1.tmp" "$1"
  sed 's/^/| /' "$1"
  echo "# exit status $rc"
  return "$rc"
}

# ---- 1. vhost-user-blk (qemu-storage-daemon), over virtio-mmio and over virtio-pci -------------------
# blk_run PREFIX TRANSPORT : one boot with the disk on TRANSPORT; checks named PREFIX-...
blk_run() {
  local prefix=$1 transport=$2
  local img=$work/$prefix.img sock=$work/$prefix.sock log=$work/$prefix.log rc
  truncate -s 128M "$img"
  if ! start_qsd "$img" "$sock" "$work/qsd-$prefix.log"; then
    fail "$prefix-backend-starts" "qemu-storage-daemon did not listen: $(tail -n3 "$work/qsd-$prefix.log")"
    return
  fi
  vmm_run "$log" "${COMMON[@]}" --cmdline "$E2E_CMDLINE_BASE kite.test=vhost_blk" \
    --vhost-user-blk "socket=$sock,transport=$transport"
  rc=$?
  kill "$QSD_PID" 2>/dev/null; wait "$QSD_PID" 2>/dev/null
  check "$prefix-guest-test-passes" "no 'KITE-TEST-RESULT vhost_blk rc=0'" log_has "$log" "KITE-TEST-RESULT vhost_blk rc=0"
  check "$prefix-exits-0" "status $rc" test "$rc" -eq 0
  check "$prefix-host-fsck-clean" "e2fsck -fn reports problems" e2fsck -fn "$img"
  local pair key file written back host
  for pair in random:random.bin text:text.txt; do
    key=${pair%%:*} file=${pair#*:}
    written=$(log_value "$log" "KITE-BLK-WRITTEN-$key")
    back=$(log_value "$log" "KITE-BLK-READBACK-$key")
    rm -f "$work/$file"
    debugfs -R "dump /$file $work/$file" "$img" >/dev/null 2>&1
    host=$( [[ -f $work/$file ]] && md5_of "$work/$file")
    check "$prefix-guest-reads-back-$key" "wrote ${written:-?}, read ${back:-?}" test -n "$written" -a "$written" = "$back"
    check "$prefix-host-checksum-$key" "guest ${written:-?}, host ${host:-?}" test -n "$host" -a "$host" = "$written"
  done
  local where msix
  where=$(log_value "$log" KITE-BLK-DEVPATH) msix=$(log_value "$log" KITE-BLK-MSIX)
  if [[ $transport == pci ]]; then
    check "$prefix-disk-on-pci" "/sys/block/vda is ${where:-?}" grep -q -E '/pci0000:00/0000:00:[0-9a-f]{2}\.0/' <<<"$where"
    check "$prefix-queue-irq-is-msix" "MSI-X interrupts of the disk queues: ${msix:-?}" test "${msix:-0}" -ge 1
  else
    check "$prefix-disk-on-mmio" "/sys/block/vda is ${where:-?}" grep -q -E 'LNRO0005|virtio-mmio' <<<"$where"
  fi
}
part blk && blk_run blk mmio
part blkpci && blk_run blkpci pci

# ---- 2. vhost-user-fs (virtiofsd) ---------------------------------------------------------------------
if part fs; then
  share=$work/share
  mkdir -p "$share"
  host_text="from-the-host-$RANDOM$RANDOM"
  echo "$host_text" > "$share/from_host.txt"
  head -c 1048576 /dev/urandom > "$share/from_host.bin"
  sock=$work/fs.sock
  "$VIRTIOFSD" --socket-path="$sock" -o source="$share" -o cache=none -o sandbox=chroot >"$work/virtiofsd.log" 2>&1 &
  fs_pid=$!
  started+=("$fs_pid")
  if wait_for 30 test -S "$sock"; then
    log=$work/fs.log
    vmm_run "$log" "${COMMON[@]}" --cmdline "$E2E_CMDLINE_BASE kite.test=vhost_fs" --vhost-user-fs "socket=$sock,tag=kitefs"
    rc=$?
    kill "$fs_pid" 2>/dev/null; wait "$fs_pid" 2>/dev/null
    check fs-guest-test-passes "no 'KITE-TEST-RESULT vhost_fs rc=0'" log_has "$log" "KITE-TEST-RESULT vhost_fs rc=0"
    check fs-exits-0 "status $rc" test "$rc" -eq 0
    got=$(log_value "$log" KITE-FS-HOSTTEXT)
    check fs-guest-reads-host-text "guest read '${got}'" test "$got" = "$host_text"
    got=$(log_value "$log" KITE-FS-HOSTSUM)
    check fs-guest-reads-host-binary "guest sum ${got:-?}" test "$got" = "$(md5_of "$share/from_host.bin")"
    check fs-host-sees-guest-text "from_guest.txt: $(cat "$share/from_guest.txt" 2>&1)" \
      test "$(cat "$share/from_guest.txt" 2>/dev/null)" = written-by-the-guest
    got=$(log_value "$log" KITE-FS-GUESTSUM)
    host=$( [[ -f $share/from_guest.bin ]] && md5_of "$share/from_guest.bin")
    check fs-host-sees-guest-binary "guest ${got:-?}, host ${host:-?}" test -n "$got" -a "$got" = "$host"
  else
    fail fs-backend-starts "virtiofsd did not listen: $(tail -n3 "$work/virtiofsd.log")"
  fi
fi

# ---- 3. SHMEM demo (examples/shmem-backend, shmem-guest-check) ----------------------------------------
if part shmem; then
  sock=$work/shm.sock
  cmds=$work/shm.cmds
  mkfifo "$cmds"
  "$SHMEM_BACKEND" --socket-path "$sock" <"$cmds" >"$work/shm-backend.log" 2>&1 &
  shm_pid=$!
  started+=("$shm_pid")
  exec {SHM_CMD}<>"$cmds"
  if wait_for 30 test -S "$sock"; then
    log=$work/shmem.log
    vm_start "$log" "${COMMON[@]}" --cmdline "$E2E_CMDLINE_BASE iomem=relaxed kite.test=vhost_shmem" \
      --vhost-user "socket=$sock,virtio-id=42"
    # Each step: the guest asks on the console, the back-end acts, the guest hears back once it has.
    for step in map:mapped unmap:unmapped; do
      ask=${step%%:*} done_text=${step#*:}
      if wait_for "$E2E_BOOT_TIMEOUT" vm_says "$log" "KITE-SHM-STEP=want-$ask" &&
         echo "$ask" >&"$SHM_CMD" &&
         wait_for 30 log_has "$work/shm-backend.log" "shmem-backend: $done_text"; then
        echo "$done_text" >&"$VM_FEED"
      else
        echo "# SHMEM step '$ask' did not happen; stopping kite"
        kill "$VM_PID" 2>/dev/null
        break
      fi
    done
    vm_wait "$log"
    rc=$?
    echo quit >&"$SHM_CMD"
    sed 's/^/| backend: /' "$work/shm-backend.log"
    check shmem-guest-test-ends "no 'KITE-TEST-RESULT vhost_shmem rc=0'" log_has "$log" "KITE-TEST-RESULT vhost_shmem rc=0"
    check shmem-exits-0 "status $rc" test "$rc" -eq 0
    check shmem-region-0-found "no shm region 0 line" log_has "$log" "shmem-guest-check: shm region 0 base"
    check shmem-pattern-seen-when-mapped "rc $(log_value "$log" KITE-SHM-MAPPED-RC)" \
      test "$(log_value "$log" KITE-SHM-MAPPED-RC)" = 0
    check shmem-hole-holds-no-pattern "rc $(log_value "$log" KITE-SHM-HOLE-RC)" \
      test "$(log_value "$log" KITE-SHM-HOLE-RC)" = 1
    check shmem-pattern-gone-after-unmap "rc $(log_value "$log" KITE-SHM-UNMAPPED-RC)" \
      test "$(log_value "$log" KITE-SHM-UNMAPPED-RC)" = 1
    check shmem-kite-runs-after-hole "guest did not finish" test "$(log_value "$log" KITE-SHM-ALIVE)" = yes
    check shmem-backend-unmapped "back-end log has no unmap" log_has "$work/shm-backend.log" "shmem-backend: unmapped"
  else
    fail shmem-backend-starts "shmem-backend did not listen: $(tail -n3 "$work/shm-backend.log")"
  fi
  exec {SHM_CMD}>&-
fi

# ---- 4. back-end killed during guest I/O, restarted ---------------------------------------------------
if part reconnect; then
  img=$work/rc.img
  truncate -s 64M "$img"
  sock=$work/rc.sock
  if start_qsd "$img" "$sock" "$work/qsd-rc.log"; then
    log=$work/reconnect.log
    # With every vhost-user message in the log: when this part fails, the log shows how far the replay got.
    # qemu-storage-daemon keeps no inflight state (it does not offer INFLIGHT_SHMFD), so after a restart
    # it resumes at the used index, and a request it had completed out of order is done twice while an
    # earlier one is lost (the guest hangs). One request at a time (virtio_blk.queue_depth=1) has no
    # order to lose: the request in flight at the kill is simply done again.
    vm_start "$log" "${COMMON[@]}" --cmdline "$E2E_CMDLINE_BASE kite.test=vhost_reconnect virtio_blk.queue_depth=1" \
      --vhost-user-blk "socket=$sock,reconnect-timeout-ms=60000" --vhost-trace
    killed_mid_io=no restarted=no
    if wait_for "$E2E_BOOT_TIMEOUT" vm_says "$log" "KITE-RC-STEP=writing"; then
      sleep "${E2E_RC_KILL_DELAY:-1}"
      log_has "$log" "KITE-RC-STEP=written" || killed_mid_io=yes
      kill -9 "$QSD_PID"; wait "$QSD_PID" 2>/dev/null
      echo "# killed qemu-storage-daemon (mid-I/O: $killed_mid_io)"
      sleep 1
      start_qsd "$img" "$sock" "$work/qsd-rc.log" && restarted=yes
      echo "# restarted qemu-storage-daemon: $restarted"
    else
      kill "$VM_PID" 2>/dev/null
    fi
    vm_wait "$log"
    rc=$?
    kill "$QSD_PID" 2>/dev/null; wait "$QSD_PID" 2>/dev/null
    sum=$(log_value "$log" KITE-RC-SUM)
    check rc-backend-killed-mid-io "the guest had finished writing before the kill" test "$killed_mid_io" = yes
    check rc-backend-restarted "qemu-storage-daemon did not come back" test "$restarted" = yes
    check rc-kite-reconnected "no 'back-end reconnected' in kite's log" log_has "$log" "back-end reconnected"
    check rc-guest-writes-complete "no KITE-RC-STEP=written" log_has "$log" "KITE-RC-STEP=written"
    check rc-guest-reads-back "wrote ${sum:-?}, read $(log_value "$log" KITE-RC-READBACK)" \
      test -n "$sum" -a "$(log_value "$log" KITE-RC-READBACK)" = "$sum"
    host=$(head -c 16777216 "$img" | md5sum | cut -d' ' -f1)
    check rc-host-image-matches "guest ${sum:-?}, image $host" test "$host" = "$sum"
    check rc-guest-test-passes "no 'KITE-TEST-RESULT vhost_reconnect rc=0'" log_has "$log" "KITE-TEST-RESULT vhost_reconnect rc=0"
    check rc-exits-0 "status $rc" test "$rc" -eq 0
  else
    fail rc-backend-starts "qemu-storage-daemon did not listen: $(tail -n3 "$work/qsd-rc.log")"
  fi
fi

rm -rf "$work"
e2e_finish
