#!/usr/bin/env bash
# setup.sh: install everything Kite's build, tests, fuzzing and nested sandbox need on Debian 12, and
# prepare the guest assets under assets/ (gitignored). Run as root. Idempotent and cached: a second run
# skips apt when every package is present and rebuilds assets only when their inputs changed.
#
#   sudo scripts/setup.sh
#
# Environment:
#   KITE_ASSETS   asset directory (default: <repo>/assets)
#   KITE_NO_APT=1 never call apt-get install (fail if something is missing)
#
# Produces, in $KITE_ASSETS:
#   vmlinuz        stock Debian kernel (bzImage), linux-image-amd64's dependency
#   vmlinuz-cloud  the -cloud-amd64 flavour
#   vmlinux        the ELF decompressed from vmlinuz's payload (has the PVH entry note)
#   initrd.gz      busybox initramfs with both kernels' virtio modules and tests/e2e/guest/*.sh
#   sandbox/       outer-sandbox pieces: the outer kernel (= vmlinuz) and its KVM modules
#   kernel.env     KITE_KVER / KITE_CLOUD_KVER of the kernels above
set -euo pipefail
# The body is one brace group: bash parses it whole before running it, so editing this file while it
# runs cannot break a run in progress.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS=${KITE_ASSETS:-$ROOT/assets}
log() { echo "[setup] $*" >&2; }
die() { echo "[setup] error: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (sudo scripts/setup.sh)"

PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang-16 libclang-rt-16-dev
  libyaml-cpp-dev libasio-dev doctest-dev libcli11-dev libspdlog-dev libfmt-dev liburing-dev libseccomp-dev
  nlohmann-json3-dev
  qemu-system-x86 qemu-utils qemu-system-common qemu-system-data seabios
  busybox-static cpio acpica-tools e2fsprogs xz-utils zstd gzip iproute2 kmod binutils coreutils
  util-linux procps time dpkg apt
)

# ---- packages --------------------------------------------------------------------------------------
missing_packages() { # one dpkg-query for all: it is slow on a loaded machine
  local installed
  installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null |
              awk '$1 == "ii" {print $2}' || true)
  comm -23 <(printf '%s\n' "${PACKAGES[@]}" | sort -u) <(sed 's/:.*//' <<<"$installed" | sort -u)
}

apt_updated=0
apt_update() {
  if [[ $apt_updated -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}

mapfile -t missing < <(missing_packages)
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ ${KITE_NO_APT:-0} == 1 ]] && die "missing packages: ${missing[*]}"
  apt_update
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "all ${#PACKAGES[@]} packages present, skipping apt"
fi

# ---- kernel versions ---------------------------------------------------------------------------------
# The meta packages linux-image-amd64 / linux-image-cloud-amd64 depend on the versioned image package.
# One apt-cache call for both (it takes seconds on a loaded machine).
resolve_images() {
  apt-cache depends linux-image-amd64 linux-image-cloud-amd64 2>/dev/null |
    awk '/^linux-image-(cloud-)?amd64$/ {meta=$1} /Depends: linux-image-[0-9]/ && meta {print meta, $2; meta=""}'
}

mkdir -p "$ASSETS"
images=$(resolve_images)
if [[ $(wc -l <<<"$images") -ne 2 ]]; then
  apt_update
  images=$(resolve_images)
fi
IMAGE_PKG=$(awk '$1 == "linux-image-amd64" {print $2}' <<<"$images")
CLOUD_PKG=$(awk '$1 == "linux-image-cloud-amd64" {print $2}' <<<"$images")
[[ -n $IMAGE_PKG && -n $CLOUD_PKG ]] || die "cannot resolve the kernel packages behind linux-image-{,cloud-}amd64"
KVER=${IMAGE_PKG#linux-image-}
CLOUD_KVER=${CLOUD_PKG#linux-image-}

# ---- cache key -----------------------------------------------------------------------------------------
# Assets depend on the kernel versions, this script and the guest test scripts packed into the initrd.
guest_inputs=("${BASH_SOURCE[0]}" /sbin/mke2fs)
shopt -s nullglob
guest_inputs+=("$ROOT"/tests/e2e/guest/*.sh)
shopt -u nullglob
guest_inputs+=("$ROOT"/examples/shmem-guest-check/main.cpp "$ROOT"/examples/shmem-backend/pattern.h
              "$ROOT"/tests/e2e/guest/console-drain.c)
KEY=$( { echo "$KVER $CLOUD_KVER"; cat "${guest_inputs[@]}"; } | sha256sum | cut -c1-16)
STAMP=$ASSETS/.stamp
if [[ -f $STAMP && $(cat "$STAMP") == "$KEY" && -f $ASSETS/initrd.gz && -f $ASSETS/vmlinux ]]; then
  log "assets up to date ($KVER, $CLOUD_KVER, key $KEY)"
  exit 0
fi

# ---- download and extract the kernels (cached per version) -----------------------------------------
extract_kernel() {
  local pkg=$1 kver=$2 dir=$ASSETS/kernel/$2
  if [[ -f $dir/.extracted ]]; then return; fi
  mkdir -p "$ASSETS/debs"
  local deb
  deb=$(ls "$ASSETS"/debs/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [[ -z $deb ]]; then
    log "downloading $pkg"
    (cd "$ASSETS/debs" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' >&2 || true)
    deb=$(ls "$ASSETS"/debs/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    [[ -n $deb ]] || die "apt-get download $pkg failed"
  fi
  log "extracting $deb"
  rm -rf "$dir" && mkdir -p "$dir"
  dpkg -x "$deb" "$dir"
  # The package ships no modules.dep (depmod runs at install time); generate it in the extracted tree.
  depmod -b "$dir" "$kver"
  touch "$dir/.extracted"
}
extract_kernel "$IMAGE_PKG" "$KVER"
extract_kernel "$CLOUD_PKG" "$CLOUD_KVER"
K=$ASSETS/kernel/$KVER
KC=$ASSETS/kernel/$CLOUD_KVER

install -m 0644 "$K/boot/vmlinuz-$KVER" "$ASSETS/vmlinuz"
install -m 0644 "$KC/boot/vmlinuz-$CLOUD_KVER" "$ASSETS/vmlinuz-cloud"

# ---- vmlinux: the ELF inside the bzImage payload -----------------------------------------------------
# CONFIG_KERNEL_XZ: the payload is one xz stream; find its magic (FD 37 7A 58 5A 00; bash strings stop at
# the NUL, the first five bytes are enough) and decompress it.
extract_vmlinux() {
  local bz=$1 out=$2 off
  off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$bz" | head -n1 | cut -d: -f1 || true)
  [[ -n $off ]] || die "no xz stream in $bz"
  tail -c +$((off + 1)) "$bz" | xz -dc --single-stream > "$out.tmp" 2>/dev/null || true
  [[ $(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] || die "payload of $bz is not an ELF"
  # The PVH entry point is a Xen ELF note of type XEN_ELFNOTE_PHYS32_ENTRY (0x12).
  readelf -n "$out.tmp" | grep -q 'Xen.*0x00000012' || die "$bz's vmlinux has no PVH (Xen 0x12) note"
  mv "$out.tmp" "$out"
}
if [[ ! -f $ASSETS/vmlinux || $(cat "$ASSETS/.vmlinux-kver" 2>/dev/null) != "$KVER" ]]; then
  log "decompressing vmlinux"
  extract_vmlinux "$ASSETS/vmlinuz" "$ASSETS/vmlinux"
  echo "$KVER" > "$ASSETS/.vmlinux-kver"
fi

# ---- module lists ------------------------------------------------------------------------------------
# modprobe --show-depends prints the insmod order (dependencies first) or "builtin NAME".
module_order() { # TREE KVER MODULE... -> relative .ko paths in load order, no duplicates
  local tree=$1 kver=$2; shift 2
  local m
  for m in "$@"; do
    modprobe -d "$tree" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | sed "s|^$tree/lib/modules/$kver/||"
}

# Inner guest: virtio transports (virtio_pci for QEMU comparisons) + devices, ext4 for disk tests, and
# pvpanic-mmio (a guest panic ends Kite with its own status).
GUEST_MODULES=(virtio_ring virtio virtio_mmio virtio_pci virtio_blk failover net_failover virtio_net virtio-rng
               virtio_console fuse virtiofs ext4 pvpanic-mmio)
# Outer sandbox: KVM on AMD (in this order: irqbypass kvm ccp kvm-amd), tun for tap tests.
SANDBOX_MODULES=(irqbypass kvm ccp kvm-amd tun)

# ---- inner initramfs -----------------------------------------------------------------------------------
log "building initrd.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
R=$work/root
mkdir -p "$R"/{bin,sbin,etc/init.d,proc,sys,dev,tmp,run,root,mnt,tests,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$R/bin/$applet"
done
for applet in init poweroff reboot halt; do ln -sf ../bin/busybox "$R/sbin/$applet"; done
ln -sf bin/busybox "$R/init"

for pair in "$K:$KVER" "$KC:$CLOUD_KVER"; do
  tree=${pair%%:*} kver=${pair#*:}
  mapfile -t mods < <(module_order "$tree" "$kver" "${GUEST_MODULES[@]}")
  dst=$R/lib/modules/$kver
  mkdir -p "$dst"
  : > "$dst/load-order"
  for m in "${mods[@]}"; do
    mkdir -p "$dst/$(dirname "$m")"
    cp "$tree/lib/modules/$kver/$m" "$dst/$m"
    echo "$m" >> "$dst/load-order"
  done
  log "  $kver: ${#mods[@]} modules"
done

# The real mkfs.ext4 (e2fsprogs' mke2fs; busybox's mke2fs makes ext2 only) with its shared libraries.
cp -L /sbin/mke2fs "$R/sbin/mke2fs.e2fsprogs"
ln -sf mke2fs.e2fsprogs "$R/sbin/mkfs.ext4"
cp /etc/mke2fs.conf "$R/etc/"
for lib in $(ldd /sbin/mke2fs | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  case $lib in */ld-linux*) dir=lib64 ;; *) dir=lib/x86_64-linux-gnu ;; esac
  mkdir -p "$R/$dir"
  cp -L "$lib" "$R/$dir/"
done

cat > "$R/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/bin/cttyhack /bin/sh -l
::shutdown:/bin/sync
EOF

cat > "$R/etc/profile" <<'EOF'
export PATH=/bin:/sbin
export PS1='kite-guest:\w# '
EOF

# rcS: mount, print the init marker, load modules, then either run kite.test=NAME and power off or
# fall through to the interactive shell that inittab respawns on the console.
cat > "$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r up _ < /proc/uptime
echo "KITE-INIT uptime=$up"
cmdline=$(cat /proc/cmdline)
case " $cmdline " in *" kite.bench "*) poweroff -f ;; esac
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname kite-guest
kver=$(uname -r)
if [ -f /lib/modules/$kver/load-order ]; then
  while read -r m; do
    # insmod, unlike kmod's modprobe, does not pick up MODULE.PARAM=VALUE from the kernel command line
    # (virtio_mmio.device=... among them): pass those on here.
    name=$(basename "$m" .ko | tr - _)
    params=
    for w in $cmdline; do
      case $w in "$name".*=*) params="$params ${w#"$name".}" ;; esac
    done
    insmod /lib/modules/$kver/$m $params 2>/dev/null || echo "rcS: insmod $m failed"
  done < /lib/modules/$kver/load-order
else
  echo "rcS: no modules for kernel $kver"
fi
test=
for w in $cmdline; do
  case $w in kite.test=*) test=${w#kite.test=} ;; esac
done
if [ -n "$test" ]; then
  if [ -f /tests/$test.sh ]; then
    sh /tests/$test.sh
    rc=$?
  else
    echo "rcS: no test /tests/$test.sh"
    rc=127
  fi
  echo "KITE-TEST-RESULT $test rc=$rc"
  console-drain
  poweroff -f
fi
echo "Kite guest: busybox shell on the console. 'poweroff' ends the VM."
EOF
chmod +x "$R/etc/init.d/rcS"

shopt -s nullglob
for t in "$ROOT"/tests/e2e/guest/*.sh; do install -m 0755 "$t" "$R/tests/"; done
shopt -u nullglob

# The SHMEM demo's guest-side check (examples/shmem-guest-check), static, as /bin/shmem-guest-check.
g++ -std=c++2b -O2 -static -I"$ROOT" -o "$R/bin/shmem-guest-check" "$ROOT/examples/shmem-guest-check/main.cpp" ||
  die "cannot build examples/shmem-guest-check"
# rcS drains the console with it before a forced power-off (tests/e2e/guest/console-drain.c).
gcc -O2 -static -o "$R/bin/console-drain" "$ROOT/tests/e2e/guest/console-drain.c" ||
  die "cannot build tests/e2e/guest/console-drain.c"

(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -6 > "$ASSETS/initrd.gz.tmp"
mv "$ASSETS/initrd.gz.tmp" "$ASSETS/initrd.gz"

# ---- outer sandbox pieces ------------------------------------------------------------------------------
S=$ASSETS/sandbox
rm -rf "$S" && mkdir -p "$S/modules"
install -m 0644 "$K/boot/vmlinuz-$KVER" "$S/vmlinuz"
mapfile -t smods < <(module_order "$K" "$KVER" "${SANDBOX_MODULES[@]}")
for m in "${smods[@]}"; do
  cp "$K/lib/modules/$KVER/$m" "$S/modules/"
  basename "$m" >> "$S/modules/load-order"
done
log "sandbox modules: $(tr '\n' ' ' < "$S/modules/load-order")"

printf 'KITE_KVER=%s\nKITE_CLOUD_KVER=%s\n' "$KVER" "$CLOUD_KVER" > "$ASSETS/kernel.env"
echo "$KEY" > "$STAMP"
log "assets ready in $ASSETS ($KVER, $CLOUD_KVER)"
exit $?
}
