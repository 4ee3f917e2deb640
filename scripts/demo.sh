#!/usr/bin/env bash
# demo.sh: the README's first command. Installs what is needed (scripts/setup.sh), builds kite and boots
# configs/demo.yaml (stock Debian kernel + busybox initramfs, 2 vCPUs, 512M) to a busybox shell on this
# terminal. `poweroff` in the guest ends it.
#
#   sudo scripts/demo.sh
#
# With hardware KVM (/dev/kvm and no /sys/module/kvm_pvm) kite runs directly; otherwise inside the nested
# KVM sandbox (scripts/sandbox.sh, interactive; Ctrl-A x kills the outer VM).
# Environment: DEMO_VMM=kite (default) or qemu (the same guest under QEMU microvm, e.g. while kite
# cannot boot Linux yet), JOBS (build parallelism, default 2).
set -euo pipefail
# The body is one brace group: bash parses it whole before running it, so editing this file while it
# runs cannot break a run in progress.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh

export DEMO_VMM=${DEMO_VMM:-kite}
if [[ $DEMO_VMM == kite ]]; then
  echo "[demo] building kite (build/)"
  cmake -S . -B build -G Ninja > /dev/null
  cmake --build build --target kite -j "${JOBS:-2}"
fi

if [[ -e /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then
  if [[ $DEMO_VMM == kite ]]; then exec build/vmm/kite run configs/demo.yaml; fi
  (cd "$(mktemp -d)" && cp "$ROOT/tests/e2e/lib.sh" . && cp -r "$ROOT/configs" . &&
   ASSETS=$ROOT/assets QEMU=$(command -v qemu-system-x86_64) exec bash "$ROOT/scripts/demo-scenario.sh")
  exit $?
fi

echo "[demo] no hardware KVM here: booting the demo inside the nested KVM sandbox (about a minute)"
SANDBOX_INTERACTIVE=1 SANDBOX_PASS_ENV=DEMO_VMM exec scripts/sandbox.sh scripts/demo-scenario.sh configs tests/e2e/lib.sh
exit $?
}
