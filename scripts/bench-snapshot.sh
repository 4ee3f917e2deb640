#!/usr/bin/env bash
# bench-snapshot.sh: snapshot/restore throughput (GiB/s of guest RAM) with memory copied directly vs
# sealed through the mirror VM, and the pause a snapshot of a running guest costs. Runs
# tests/e2e/bench_snapshot.sh in the sandbox (scripts/sandbox.sh) and prints its "BENCH" lines.
#
#   scripts/bench-snapshot.sh          # build/vmm/kite or $KITE_BIN
#
# Environment: BENCH_RUNS (3), BENCH_MEMORY (512M), BENCH_FILL (MiB of non-zero guest data, 128),
#              BENCH_VCPUS (2), KITE_BIN, and scripts/sandbox.sh's SANDBOX_* variables.
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
exit "$status"
}
