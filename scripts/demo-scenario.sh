#!/usr/bin/env bash
# demo-scenario.sh: the sandbox side of scripts/demo.sh. Boots configs/demo.yaml (its paths are relative
# to the config: ../assets) on this terminal; DEMO_VMM=qemu runs the same guest under QEMU microvm.
set -uo pipefail
[[ -e assets ]] || ln -s "$ASSETS" assets
if [[ ${DEMO_VMM:-kite} == kite ]]; then
  exec "$KITE" run configs/demo.yaml
fi
. ./lib.sh
E2E_VMM=qemu vmm_command --kernel "$ASSETS/vmlinuz" --initrd "$ASSETS/initrd.gz" --cmdline "console=ttyS0 quiet" \
  --memory 512M --vcpus 2 --serial stdio
echo "demo: running the demo guest under QEMU microvm (DEMO_VMM=qemu), not kite"
exec "${VMM_CMD[@]}"
