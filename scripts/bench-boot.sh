#!/usr/bin/env bash
# bench-boot.sh: Kite vs QEMU microvm start-up benchmarks in one sandbox run (tests/e2e/bench_boot.sh):
# boot-to-init time (target Kite <= 0.8x QEMU), process start to first guest instruction (<= 0.1x) and
# Kite's memory overhead (peak RSS minus guest RAM touched, <= 3 MiB). Medians of BENCH_RUNS runs.
#
#   sudo scripts/bench-boot.sh                 # Kite (build/vmm/kite or $KITE_BIN) vs QEMU
#   BENCH_VMM=qemu sudo scripts/bench-boot.sh  # QEMU vs QEMU: checks the harness itself (ratios ~1)
#
# Environment: BENCH_VMM, BENCH_BASELINE, BENCH_RUNS (5), BENCH_MEMORY (512M), BENCH_VCPUS (2), KITE_BIN,
#              BENCH_HOST (1: on a PVM host, also run part 2 on the host's /dev/kvm; 0: do not),
#              and scripts/sandbox.sh's SANDBOX_* variables. Results are the "BENCH ..." lines.
set -euo pipefail
# The body is one brace group: bash parses it whole before running it, so editing this file while it
# runs cannot break a run in progress.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh

export BENCH_VMM=${BENCH_VMM:-kite} BENCH_BASELINE=${BENCH_BASELINE:-qemu} BENCH_RUNS=${BENCH_RUNS:-5}
if [[ $BENCH_VMM == kite && -z ${KITE_BIN-} && ! -x build/vmm/kite ]]; then
  echo "bench-boot: no kite binary: build it (cmake -S . -B build -G Ninja && ninja -C build kite) or set KITE_BIN" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tiny PVH guest: an ELF64 whose Xen PHYS32_ENTRY note points at 32-bit code that prints '!' at once.
gcc -c tests/e2e/tiny_pvh.S -o "$work/tiny_pvh.o"
ld -static -nostdlib -z max-page-size=4096 -z noexecstack --build-id=none -Ttext-segment=0x100000 -e _start \
  "$work/tiny_pvh.o" -o "$work/tiny-pvh.elf"

SANDBOX_LOG=${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench.log} \
  scripts/sandbox.sh tests/e2e/bench_boot.sh tests/e2e/lib.sh "$work/tiny-pvh.elf" | grep -a -E '^(BENCH|##)'
status=${PIPESTATUS[0]}
echo "(full log: ${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench.log})"

# On a PVM host (README.md, Requirements) the sandbox above is nested under TCG, where start-up is dominated by the
# emulator translating code. Part 2 (a tiny guest) also runs on the host's own /dev/kvm, where QEMU needs
# -cpu host,-arch-capabilities. Firmware and ring-0 code are emulated slowly by PVM: QEMU's firmware
# (qboot, which loads the PVH image) pays for that; Kite has none.
if [[ -e /dev/kvm && -d /sys/module/kvm_pvm && ${BENCH_HOST:-1} == 1 ]]; then
  cp tests/e2e/lib.sh tests/e2e/bench_boot.sh "$work/"
  (cd "$work" && KITE=${KITE_BIN:-$ROOT/build/vmm/kite} QEMU=$(command -v qemu-system-x86_64) ASSETS=$ROOT/assets \
     E2E_QEMU_CPU=host,-arch-capabilities BENCH_PARTS=2 BENCH_WHERE="host /dev/kvm, PVM" bash ./bench_boot.sh) |
    grep -a -E '^(BENCH|##)'
fi
exit "$status"
exit $?
}
