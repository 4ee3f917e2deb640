#!/usr/bin/env bash
# bench-virtio.sh: virtio-blk and virtio-net throughput, Kite vs QEMU microvm, in one sandbox run
# (tests/e2e/bench_virtio.sh): sequential O_DIRECT read and write MB/s, 4 KiB random-read IOPS, TCP
# guest -> host MB/s over a tap. Medians of BENCH_RUNS runs each, then the ratios (target >= 1.0).
#
#   scripts/bench-virtio.sh                 # Kite (build/vmm/kite or $KITE_BIN) vs QEMU
#   BENCH_VMM=qemu scripts/bench-virtio.sh  # QEMU vs QEMU: checks the harness itself (ratios ~1)
#
# Environment: BENCH_VMM, BENCH_BASELINE, BENCH_RUNS (3), BENCH_DISK_MIB (128), BENCH_NET_MIB (64),
#              BENCH_RAND_SECONDS (5), KITE_BIN, and scripts/sandbox.sh's SANDBOX_* variables.
#              Results are the "BENCH ..." lines.
set -euo pipefail
# The body is one brace group: bash parses it whole before running it, so editing this file while it
# runs cannot break a run in progress.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh

export BENCH_VMM=${BENCH_VMM:-kite} BENCH_BASELINE=${BENCH_BASELINE:-qemu} BENCH_RUNS=${BENCH_RUNS:-3}
if [[ $BENCH_VMM == kite && -z ${KITE_BIN-} && ! -x build/vmm/kite ]]; then
  echo "bench-virtio: no kite binary: build it (cmake -S . -B build -G Ninja && ninja -C build kite) or set KITE_BIN" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The measuring program, static so that it runs in the guest's initramfs and in the sandbox alike; the
# guest gets it as /bin/virtio_bench from a second archive appended to the initrd (the kernel unpacks
# concatenated archives in order).
gcc -static -O2 -Wall -Wextra -Werror tests/e2e/virtio_bench.c -o "$work/virtio_bench"
mkdir -p "$work/extra/bin"
cp "$work/virtio_bench" "$work/extra/bin/"
(cd "$work/extra" && echo bin/virtio_bench | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$work/extra.cpio.gz"
cat assets/initrd.gz "$work/extra.cpio.gz" > "$work/bench-initrd.gz"

SANDBOX_LOG=${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench-virtio.log} \
  scripts/sandbox.sh tests/e2e/bench_virtio.sh tests/e2e/lib.sh "$work/virtio_bench" "$work/bench-initrd.gz" |
  grep -a -E '^(BENCH|##|    )'
status=${PIPESTATUS[0]}
echo "(full log: ${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench-virtio.log})"
exit "$status"
exit $?
}
