#!/usr/bin/env bash
# sandbox.sh: run a scenario script where a hardware-style /dev/kvm exists.
#
#   scripts/sandbox.sh SCENARIO.sh [FILE|DIR...]
#
# On a host with hardware KVM (/dev/kvm present and no /sys/module/kvm_pvm) the scenario runs directly on
# the host. Otherwise (this project's PVM machines, or no /dev/kvm at all) it runs inside the nested
# sandbox: QEMU TCG `-cpu EPYC` boots the stock Debian kernel, its initramfs loads kvm_amd, and the
# scenario runs there as root with a real /dev/kvm (see README.md, Requirements).
#
# The scenario runs under bash with the FILE/DIR arguments copied next to it (cwd), and sees:
#   ASSETS      dir with vmlinuz, vmlinuz-cloud, vmlinux, initrd.gz (from scripts/setup.sh)
#   KITE        the kite binary (from $KITE_BIN), KITE_ASAN the ASan one (from $KITE_ASAN_BIN), if given
#   QEMU        qemu-system-x86_64 (its firmware is in QEMU's default data dir), QEMU_MICROVM the
#               microvm-only build; qemu-storage-daemon, /usr/lib/qemu/virtiofsd, mke2fs, bash, GNU time
#   SANDBOX     "nested" or "direct"
#   every E2E_*, BENCH_* and GUEST_* variable of the caller, and those named in $SANDBOX_PASS_ENV
# The scenario's exit status becomes this script's exit status.
#
# Environment:
#   KITE_BIN, KITE_ASAN_BIN  kite binaries to ship (default: build/vmm/kite, build-asan/vmm/kite if they exist)
#   SANDBOX_BINS             more host executables to ship into /usr/local/bin (space separated)
#   SANDBOX_TIMEOUT          scenario time limit in seconds (default 1200)
#   SANDBOX_WALL_TIMEOUT     whole-run wall-clock limit in seconds (default SANDBOX_TIMEOUT + 180)
#   SANDBOX_SMP, SANDBOX_MEM outer vCPUs (default 2) and memory in MiB (default 4096)
#   SANDBOX_INTERACTIVE=1    pass the terminal through (for scripts/demo.sh); no log parsing
#   SANDBOX_LOG              where the serial log goes (default .cache/sandbox/last.log)
#   SANDBOX_MODE             auto (default), nested or direct
#   SANDBOX_PASS_ENV         names of more variables to pass to the scenario
#   SANDBOX_QEMU_ARGS        more outer QEMU arguments, e.g. "-monitor unix:/tmp/mon.sock,server,nowait"
#                            to read the outer vCPUs' registers (`info registers -a`) when a run hangs
#   SANDBOX_KERNEL_ARGS      more words for the outer kernel's command line (e.g. idle=poll)
set -euo pipefail
# The body is one brace group: bash parses it whole before running it, so editing this file while it
# runs cannot break a run in progress.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS_HOST=${KITE_ASSETS:-$ROOT/assets}
CACHE=$ROOT/.cache/sandbox
log() { echo "[sandbox] $*" >&2; }
die() { echo "[sandbox] error: $*" >&2; exit 125; }

[[ $# -ge 1 ]] || die "usage: scripts/sandbox.sh SCENARIO.sh [FILE|DIR...]"
SCENARIO=$1; shift
[[ -f $SCENARIO ]] || die "no scenario $SCENARIO"
for f in "$@"; do [[ -e $f ]] || die "no file $f"; done
[[ -f $ASSETS_HOST/initrd.gz && -f $ASSETS_HOST/sandbox/vmlinuz ]] || die "no assets: run scripts/setup.sh first"

TIMEOUT=${SANDBOX_TIMEOUT:-1200}
WALL_TIMEOUT=${SANDBOX_WALL_TIMEOUT:-$((TIMEOUT + 180))}
KITE_BIN=${KITE_BIN-}
KITE_ASAN_BIN=${KITE_ASAN_BIN-}
[[ -n $KITE_BIN || ! -x $ROOT/build/vmm/kite ]] || KITE_BIN=$ROOT/build/vmm/kite
[[ -n $KITE_ASAN_BIN || ! -x $ROOT/build-asan/vmm/kite ]] || KITE_ASAN_BIN=$ROOT/build-asan/vmm/kite
for b in $KITE_BIN $KITE_ASAN_BIN; do [[ -x $b ]] || die "not an executable: $b"; done

mode=${SANDBOX_MODE:-auto}
if [[ $mode == auto ]]; then
  if [[ -e /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then mode=direct; else mode=nested; fi
fi

# The variables handed to the scenario, as a sourceable file.
write_env() { # SANDBOX-KIND ASSETS KITE KITE_ASAN QEMU QEMU_MICROVM
  printf 'export SANDBOX=%q ASSETS=%q KITE=%q KITE_ASAN=%q QEMU=%q QEMU_MICROVM=%q\n' "$@"
  local name
  for name in $(compgen -v | grep -E '^(E2E|BENCH|GUEST)_' || true) ${SANDBOX_PASS_ENV-}; do
    [[ -v $name ]] && printf 'export %s=%q\n' "$name" "${!name}"
  done
  return 0
}

# ---- direct: hardware KVM on this host ---------------------------------------------------------------
if [[ $mode == direct ]]; then
  run=$(mktemp -d)
  trap 'rm -rf "$run"' EXIT
  cp "$SCENARIO" "$run/scenario.sh"
  for f in "$@"; do cp -a "$f" "$run/"; done
  write_env direct "$ASSETS_HOST" "${KITE_BIN:-kite}" "${KITE_ASAN_BIN:-kite-asan}" \
    "$(command -v qemu-system-x86_64)" "$(command -v qemu-system-x86_64-microvm || command -v qemu-system-x86_64)" \
    > "$run/env"
  log "hardware KVM: running $(basename "$SCENARIO") directly"
  set +e
  (cd "$run" && set -a && . ./env && set +a && timeout -k 10 "$TIMEOUT" bash ./scenario.sh)
  rc=$?
  set -e
  echo "SANDBOX-EXIT rc=$rc"
  exit "$rc"
fi

# ---- nested: the outer initramfs -------------------------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run scripts/setup.sh"
mkdir -p "$CACHE"

# stage_bin SRC DEST STAGE: copy an executable and every library ldd lists. Libraries land under
# usr/lib*, and the outer root has lib -> usr/lib, lib64 -> usr/lib64 (Debian's merged /usr).
stage_bin() {
  local src=$1 dest=$2 stage=$3 lib
  mkdir -p "$stage/$(dirname "$dest")"
  cp -L "$src" "$stage/$dest"
  for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    local to=usr/${lib#/usr/}
    to=${to//\/\//\/}
    if [[ ! -e $stage/$to ]]; then
      mkdir -p "$stage/$(dirname "$to")"
      cp -L "$lib" "$stage/$to"
    fi
  done
}

make_cpio() { # DIR -> newc archive on stdout
  (cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet)
}

# The outer /init: load KVM, run the scenario with a time limit, report, power off.
OUTER_INIT='#!/bin/sh
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin HOME=/root TERM=${TERM:-linux}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname sandbox
while read -r m; do insmod /sandbox-modules/$m || echo "sandbox: insmod $m failed"; done < /sandbox-modules/load-order
# Shared memory in huge pages where a program asks (the Debian default is never). Kite keeps guest RAM
# in a memfd and asks (hugepages: auto); the anonymous RAM of QEMU gets them under the default anon
# setting. With 4 KiB pages a booting guest took 1.5 s longer to reach its kernel here: every page it
# first touches is a nested page fault, and TCG makes each one slow.
echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null ||
  echo "sandbox: cannot set shmem_enabled"
# Hold KVM static keys on (scripts/sandbox-key-holder.c says why); wait until it holds them.
if [ -c /dev/kvm ]; then
  sandbox-key-holder > /tmp/key-holder.out 2>&1 &
  i=0
  while ! grep -q holding /tmp/key-holder.out && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  grep -q holding /tmp/key-holder.out || { echo "sandbox: key holder failed:"; cat /tmp/key-holder.out; }
fi
# Heartbeat on the second serial port (a file on the host): when this kernel wedges its timers stop, and
# sandbox.sh sees the file go stale even if the console never reports a lockup.
( while :; do cut -d" " -f1 /proc/uptime > /dev/ttyS1; sleep 10; done ) 2>/dev/null &
read -r up _ < /proc/uptime
# _text locates the kernel (KASLR): RIPs of a wedged run (QEMU monitor) can then be read against System.map.
echo "SANDBOX-START uptime=$up kvm=$(test -c /dev/kvm && echo yes || echo no) _text=$(grep -m1 " _text$" /proc/kallsyms | cut -d" " -f1)"
cd /sandbox
if [ ! -c /dev/kvm ]; then
  rc=99
  echo "sandbox: no /dev/kvm after loading the KVM modules"
elif [ -f /sandbox/.interactive ]; then
  setsid cttyhack bash -c "set -a; . ./env; set +a; exec bash ./scenario.sh"
  rc=$?
else
  timeout -s KILL "$(cat /sandbox/.timeout)" bash -c "set -a; . ./env; set +a; exec bash ./scenario.sh" </dev/null
  rc=$?
fi
echo "SANDBOX-EXIT rc=$rc"
sync
poweroff -f
'

# Base archive: everything that does not change between runs; cached, keyed on its inputs.
QEMU_FIRMWARE=(qboot.rom bios-microvm.bin linuxboot_dma.bin linuxboot.bin pvh.bin multiboot_dma.bin
               kvmvapic.bin bios-256k.bin)
BASE_BINS=(/usr/bin/qemu-system-x86_64 /usr/bin/qemu-system-x86_64-microvm /usr/bin/qemu-storage-daemon
           /usr/lib/qemu/virtiofsd /usr/sbin/mke2fs /usr/bin/bash /usr/bin/time /usr/bin/qemu-img /usr/bin/cksum
           /usr/sbin/e2fsck /usr/sbin/debugfs)
base_inputs() {
  echo "$OUTER_INIT"
  declare -f stage_bin
  cat "$ROOT/scripts/sandbox-key-holder.c"
  stat -L -c '%n %s %Y' "${BASE_BINS[@]}" /bin/busybox "$ASSETS_HOST"/{vmlinuz,vmlinuz-cloud,vmlinux} \
    "$ASSETS_HOST"/sandbox/modules/* 2>/dev/null
}
BASE_KEY=$(base_inputs | sha256sum | cut -c1-16)
BASE=$ASSETS_HOST/sandbox/base-$BASE_KEY.cpio

build_base() {
  local stage
  stage=$(mktemp -d)
  log "building the outer base initramfs ($BASE_KEY)"
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,proc,sys,dev,tmp,run,root,etc}
  mkdir -p "$stage"/{sandbox,sandbox-modules,assets,usr/share/qemu,usr/lib/qemu}
  ln -s usr/lib "$stage/lib"
  ln -s usr/lib64 "$stage/lib64"
  cp /bin/busybox "$stage/bin/busybox"
  cc -O2 -Wall -Wextra -Werror -static -o "$stage/usr/bin/sandbox-key-holder" "$ROOT/scripts/sandbox-key-holder.c" ||
    die "cannot build scripts/sandbox-key-holder.c"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$stage/bin/$applet"
  done
  local b
  for b in "${BASE_BINS[@]}"; do
    [[ -e $b ]] || die "missing $b (run scripts/setup.sh)"
    stage_bin "$b" "${b#/}" "$stage"
  done
  local fw
  for fw in "${QEMU_FIRMWARE[@]}"; do
    if [[ -e /usr/share/qemu/$fw ]]; then cp -L "/usr/share/qemu/$fw" "$stage/usr/share/qemu/"
    elif [[ -e /usr/share/seabios/$fw ]]; then cp -L "/usr/share/seabios/$fw" "$stage/usr/share/qemu/"
    else die "QEMU firmware $fw not found"; fi
  done
  cp "$ASSETS_HOST"/sandbox/modules/* "$stage/sandbox-modules/"
  cp "$ASSETS_HOST"/{vmlinuz,vmlinuz-cloud,vmlinux} "$stage/assets/"
  printf '%s' "$OUTER_INIT" > "$stage/init"
  chmod 0755 "$stage/init"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$stage/etc/passwd"
  echo 'root:x:0:' > "$stage/etc/group"
  make_cpio "$stage" > "$BASE.tmp.$$"
  mv "$BASE.tmp.$$" "$BASE"
  rm -rf "$stage"
  find "$ASSETS_HOST/sandbox" -name 'base-*.cpio' ! -name "base-$BASE_KEY.cpio" -delete
}

exec 9>"$CACHE/base.lock"
flock 9
[[ -f $BASE ]] || build_base
flock -u 9

# Per-run archive: the scenario, its files, the kite binaries and their libraries, the environment.
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
stage=$run/stage
mkdir -p "$stage/sandbox" "$stage/usr/local/bin" "$stage/assets"
cp "$ASSETS_HOST/initrd.gz" "$stage/assets/" # small and changes with tests/e2e/guest: not in the base
cp "$SCENARIO" "$stage/sandbox/scenario.sh"
for f in "$@"; do cp -a "$f" "$stage/sandbox/"; done
[[ -z $KITE_BIN ]] || stage_bin "$KITE_BIN" usr/local/bin/kite "$stage"
[[ -z $KITE_ASAN_BIN ]] || stage_bin "$KITE_ASAN_BIN" usr/local/bin/kite-asan "$stage"
for b in ${SANDBOX_BINS-}; do stage_bin "$(command -v "$b")" "usr/local/bin/$(basename "$b")" "$stage"; done
write_env nested /assets /usr/local/bin/kite /usr/local/bin/kite-asan /usr/bin/qemu-system-x86_64 \
  /usr/bin/qemu-system-x86_64-microvm > "$stage/sandbox/env"
echo "$TIMEOUT" > "$stage/sandbox/.timeout"
[[ ${SANDBOX_INTERACTIVE:-0} != 1 ]] || touch "$stage/sandbox/.interactive"
make_cpio "$stage" | gzip -1 > "$run/run.cpio.gz"
cat "$BASE" "$run/run.cpio.gz" > "$run/initrd"

QEMU_ARGS=(-M q35 -cpu EPYC -m "${SANDBOX_MEM:-4096}" -smp "${SANDBOX_SMP:-2}" -nodefaults -no-user-config
           -nographic -no-reboot -kernel "$ASSETS_HOST/sandbox/vmlinuz" -initrd "$run/initrd"
           -append "console=ttyS0 quiet panic=-1 mitigations=off ${SANDBOX_KERNEL_ARGS-}")

if [[ ${SANDBOX_INTERACTIVE:-0} == 1 ]]; then
  log "nested KVM sandbox (interactive; Ctrl-A x quits the outer VM)"
  exec 9>&-
  set +e
  qemu-system-x86_64 "${QEMU_ARGS[@]}" -serial mon:stdio 2> >(grep -v "TCG doesn't support requested feature" >&2)
  exit $?
fi

LOG=${SANDBOX_LOG:-$CACHE/last.log}
mkdir -p "$(dirname "$LOG")"
log "nested KVM sandbox: $(basename "$SCENARIO") (log: $LOG)"
start=$SECONDS
: > "$LOG"
# A wedged outer kernel never recovered in the runs seen: stop QEMU then instead of waiting for the
# wall-clock limit. Three signs: the console reports a CPU stuck for 100 s or more, the init's heartbeat
# (ttyS1, every 10 s) has not come for SANDBOX_STALL_SECS (default 180; the wedges seen froze time, so
# no lockup report ever came), or no heartbeat came at all that long after QEMU started.
stall=${SANDBOX_STALL_SECS:-180}
started_at=$(date +%s)
( while sleep 10; do
    [[ -f $run/qemu.pid ]] || continue
    kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null || break
    why=""
    if grep -a -q -E 'soft lockup - CPU#[0-9]+ stuck for [0-9]{3,}s' "$LOG"; then
      why="its console reports a soft lockup"
    elif [[ -s $run/heartbeat ]] && (( $(date +%s) - $(stat -c %Y "$run/heartbeat") > stall )); then
      why="no heartbeat for more than $stall s"
    elif [[ ! -s $run/heartbeat ]] && (( $(date +%s) - started_at > stall )); then
      # Its init writes the first beat about 15 s after QEMU starts; once a boot hung before that.
      why="no heartbeat $stall s after QEMU started"
    fi
    if [[ -n $why ]]; then
      log "the outer kernel wedged ($why): stopping QEMU (its console output is in $LOG)"
      kill "$(cat "$run/qemu.pid")"
      break
    fi
  done ) &
wedge_watch=$!
set +e
# shellcheck disable=SC2086 # SANDBOX_QEMU_ARGS is a list of words
timeout -k 10 "$WALL_TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" ${SANDBOX_QEMU_ARGS-} -pidfile "$run/qemu.pid" \
    -serial stdio -serial "file:$run/heartbeat" </dev/null 2>&1 |
  sed -u -e 's/\r//g' -e "/TCG doesn't support requested feature/d" | tee "$LOG"
qrc=${PIPESTATUS[0]}
kill "$wedge_watch" 2>/dev/null
set -e
rc=$(grep -a -o 'SANDBOX-EXIT rc=[0-9]*' "$LOG" | tail -n1 | cut -d= -f2 || true)
if [[ -z $rc ]]; then
  if [[ $qrc -eq 124 ]]; then log "wall-clock timeout (${WALL_TIMEOUT}s)"; fi
  log "no SANDBOX-EXIT marker (qemu status $qrc); last lines of output:"
  tail -n 30 "$LOG" >&2
  exit 125
fi
log "scenario exit status $rc after $((SECONDS - start)) s"
exit "$rc"
exit $?
}
