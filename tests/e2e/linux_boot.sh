#!/usr/bin/env bash
# linux_boot.sh: stock Debian kernels boot under the VMM. A sandbox scenario:
#   scripts/sandbox.sh tests/e2e/linux_boot.sh tests/e2e/lib.sh
# E2E_VMM=kite|qemu selects the VMM (see lib.sh). Four guest boots, several checks each.
set -uo pipefail
. ./lib.sh

MEMORY_MIB=512
VCPUS=2
COMMON=(--initrd "$ASSETS/initrd.gz" --memory "${MEMORY_MIB}M" --vcpus "$VCPUS" --serial stdio)
work=$(mktemp -d)

mem_close_to_configured() { # MemTotal is the RAM minus what the kernel reserves: 80-100 % of --memory
  local kb=$1
  [[ -n $kb ]] && (( kb * 100 >= MEMORY_MIB * 1024 * 80 && kb <= MEMORY_MIB * 1024 ))
}

# 1. bzImage, interactive: the shell answers commands typed on the serial console, `poweroff` ends the VMM
#    with status 0.
cat > "$work/commands" <<'EOF'
echo KITE-CPUS=$(cat /sys/devices/system/cpu/online)
echo KITE-MEMKB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
echo KITE-SUM=$((6 * 7))
poweroff
EOF
log=$work/shell.log
vmm_interactive "$log" "$work/commands" --kernel "$ASSETS/vmlinuz" --cmdline "$E2E_CMDLINE_BASE" "${COMMON[@]}"
rc=$?
check bzimage-boots-to-init "no KITE-INIT marker" log_has "$log" "KITE-INIT uptime="
check bzimage-shell-prompt "no shell banner" log_has "$log" "busybox shell on the console"
check serial-command-output "KITE-SUM=$(log_value "$log" KITE-SUM), want 42" test "$(log_value "$log" KITE-SUM)" = 42
check two-vcpus-online "online=$(log_value "$log" KITE-CPUS)" test "$(log_value "$log" KITE-CPUS)" = 0-$((VCPUS - 1))
check memory-size-seen "MemTotal=$(log_value "$log" KITE-MEMKB) kB for ${MEMORY_MIB} MiB" \
  mem_close_to_configured "$(log_value "$log" KITE-MEMKB)"
check poweroff-exits-0 "status $rc" test "$rc" -eq 0
check poweroff-reached "no power-down message" log_has "$log" "reboot: Power down"

# 2. The -cloud kernel flavour boots and runs a guest test.
log=$work/cloud.log
vmm_run "$log" --kernel "$ASSETS/vmlinuz-cloud" --cmdline "$E2E_CMDLINE_BASE kite.test=info" "${COMMON[@]}"
rc=$?
check cloud-kernel-boots "no test result" log_has "$log" "KITE-TEST-RESULT info rc=0"
check cloud-kernel-is-cloud "uname $(log_value "$log" KITE-UNAME)" grep -a -q '^KITE-UNAME=.*-cloud-amd64' "$log"
check cloud-two-vcpus-online "online=$(log_value "$log" KITE-CPUS)" test "$(log_value "$log" KITE-CPUS)" = 0-$((VCPUS - 1))
check cloud-exits-0 "status $rc" test "$rc" -eq 0

# 3. PVH: the ELF vmlinux through its Xen PVH entry note.
log=$work/pvh.log
vmm_run "$log" --kernel "$ASSETS/vmlinux" --boot-protocol pvh --cmdline "$E2E_CMDLINE_BASE kite.test=info" "${COMMON[@]}"
rc=$?
check pvh-boots "no test result" log_has "$log" "KITE-TEST-RESULT info rc=0"
check pvh-two-vcpus-online "online=$(log_value "$log" KITE-CPUS)" test "$(log_value "$log" KITE-CPUS)" = 0-$((VCPUS - 1))
check pvh-memory-size-seen "MemTotal=$(log_value "$log" KITE-MEMKB) kB" mem_close_to_configured "$(log_value "$log" KITE-MEMKB)"
check pvh-exits-0 "status $rc" test "$rc" -eq 0

# 4. A guest write of N to port 0x501 ends the VMM with status N.
exit_value=7
want=$(expected_debug_exit "$exit_value")
log=$work/exit.log
vmm_run "$log" --kernel "$ASSETS/vmlinuz" --cmdline "$E2E_CMDLINE_BASE kite.test=exit_code kite.exit=$exit_value" "${COMMON[@]}"
rc=$?
check debug-exit-port-status "status $rc, want $want" test "$rc" -eq "$want"
check debug-exit-immediate "guest kept running after the write" \
  bash -c "! grep -a -q 'still running after the port write' '$log'"

# 5. A YAML config like configs/demo.yaml (the README demo: 2 vCPUs, 512M, virtio-rng), flags overriding
#    the file's command line. Kite only: the QEMU adapter translates flags, not config files.
if [[ $E2E_VMM == kite ]]; then
  cat > "$work/demo.yaml" <<EOF2
vcpus: $VCPUS
memory: ${MEMORY_MIB}M
kernel: $ASSETS/vmlinuz
initrd: $ASSETS/initrd.gz
cmdline: "console=ttyS0 quiet"
serial: {file: $work/serial.log}
log-level: info
devices:
  - rng
EOF2
  log=$work/yaml.log
  vmm_run "$log" "$work/demo.yaml" --cmdline "$E2E_CMDLINE_BASE kite.test=info"
  rc=$?
  serial=$work/serial.txt
  strip_cr < "$work/serial.log" > "$serial"
  check yaml-config-boots "no test result in the serial file" log_has "$serial" "KITE-TEST-RESULT info rc=0"
  check yaml-serial-to-file-only "guest output on stdout too" bash -c "! grep -a -q KITE-TEST-RESULT '$log'"
  check yaml-config-vcpus "online=$(log_value "$serial" KITE-CPUS)" test "$(log_value "$serial" KITE-CPUS)" = 0-$((VCPUS - 1))
  check yaml-config-exits-0 "status $rc" test "$rc" -eq 0

  # 6. Guest `reboot` ends Kite with its own status, 4 (ACPI reset register or the i8042); QEMU's
  #    -no-reboot exits 0.
  log=$work/reboot.log
  vmm_run "$log" "$work/demo.yaml" --cmdline "$E2E_CMDLINE_BASE kite.test=reboot" --serial stdio
  rc=$?
  want=4; [[ $E2E_VMM == kite ]] || want=0
  check reboot-exits-$want "status $rc" test "$rc" -eq "$want"
  [[ $E2E_VMM == kite ]] && check reboot-is-a-reset "kite did not report a guest reset" grep -a -q -i "guest reset" "$log"
  check reboot-immediate "guest kept running after reboot -f" bash -c "! grep -a -q 'still running after reboot' '$log'"

  # 6b. A guest kernel panic ends Kite with status 3 through pvpanic, whether the kernel would reboot
  #     (panic=-1, the CI default) or wait for ever (panic=0). Kite only: QEMU here has no pvpanic.
  if [[ $E2E_VMM == kite ]]; then
    for mode in -1 0; do
      log=$work/panic$mode.log
      vmm_run "$log" "$work/demo.yaml" --cmdline "$E2E_CMDLINE_BASE kite.test=panic panic=$mode" --serial stdio
      rc=$?
      check "panic$mode-pvpanic-bound" "driver: $(log_value "$log" KITE-PVPANIC)" test "$(log_value "$log" KITE-PVPANIC)" = bound
      check "panic$mode-exits-3" "status $rc" test "$rc" -eq 3
      check "panic$mode-kite-says-panic" "kite did not report the panic" grep -a -q "guest kernel panicked" "$log"
    done
  fi

  # 7. --virtio-discovery cmdline: the transports go to the kernel command line as virtio_mmio.device=
  #    (for kernels built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES; Debian's is not, so the guest ignores
  #    them and the check is that the kernel received them: the guest prints /proc/cmdline).
  log=$work/discovery.log
  vmm_run "$log" --kernel "$ASSETS/vmlinuz" --cmdline "$E2E_CMDLINE_BASE kite.test=info" \
    --virtio-discovery cmdline --rng --rng "${COMMON[@]}"
  rc=$?
  check cmdline-discovery-params "the kernel's command line lacks both transports" \
    grep -a -q "^KITE-CMDLINE=.* virtio_mmio.device=0x1000@0xd0000000:5 virtio_mmio.device=0x1000@0xd0001000:6" "$log"
  check cmdline-discovery-exits-0 "status $rc" test "$rc" -eq 0
fi

rm -rf "$work"
e2e_finish
