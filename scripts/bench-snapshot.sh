#!/usr/bin/env bash
# bench-snapshot.sh: snapshot/restore throughput (GiB/s of guest RAM) with memory copied directly vs
# sealed through the mirror VM, and the pause a snapshot of a running guest costs. Runs
# tests/e2e/bench_snapshot.sh in the sandbox (scripts/sandbox.sh) and prints its "BENCH" lines.
#
#   scripts/bench-snapshot.sh          # build/vmm/kite or $KITE_BIN
#
# Then (part 2) direct snapshot and restore on this host's /dev/kvm with a small guest
# (tests/e2e/bench_snapshot_fill.sh), where the issue's target (direct >= 1 GiB/s) applies.
# Environment: BENCH_RUNS (3), BENCH_MEMORY (512M), BENCH_FILL (MiB of non-zero guest data, 128),
#              BENCH_VCPUS (2), KITE_BIN, and scripts/sandbox.sh's SANDBOX_* variables; part 2:
#              BENCH_HOST (1; 0 skips it), BENCH_HOST_MEMORY (1G), BENCH_HOST_DATA_MIB (768),
#              BENCH_SNAP_DIR, FILL_ELF.
set -euo pipefail
{
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh >/dev/null
if [[ -z ${KITE_BIN-} && ! -x build/vmm/kite ]]; then
  echo "bench-snapshot: no kite binary: build it (ninja -C build kite) or set KITE_BIN" >&2
  exit 2
fi
SANDBOX_LOG=${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench-snapshot.log} \
  scripts/sandbox.sh tests/e2e/bench_snapshot.sh tests/e2e/lib.sh | grep -a -E '^(BENCH|##)'
status=${PIPESTATUS[0]}
echo "(full log: ${SANDBOX_LOG:-$ROOT/.cache/sandbox/bench-snapshot.log})"

# Part 2, on this host's own /dev/kvm (the issue's target: direct >= 1 GiB/s on the host): a Linux guest
# cannot run there at usable speed on PVM, so the small fill-hash guest holds BENCH_HOST_DATA_MIB of
# random data in BENCH_HOST_MEMORY of RAM. The snapshot file goes to BENCH_SNAP_DIR (default: under /tmp).
fill=${FILL_ELF:-$ROOT/build/tests/guest/fill-hash.elf}
if [[ -e /dev/kvm && ${BENCH_HOST:-1} == 1 ]]; then
  if [[ -f $fill ]]; then
    where="host /dev/kvm$([[ -d /sys/module/kvm_pvm ]] && echo ", PVM")"
    KITE=${KITE_BIN:-$ROOT/build/vmm/kite} FILL_ELF=$fill BENCH_MEMORY=${BENCH_HOST_MEMORY:-1G} \
      BENCH_DATA_MIB=${BENCH_HOST_DATA_MIB:-768} BENCH_WHERE=$where bash tests/e2e/bench_snapshot_fill.sh ||
      status=1
  else
    echo "bench-snapshot: no $fill (build the test guests: ninja -C build kite_test_guests); host part skipped" >&2
  fi
fi
exit "$status"
}
