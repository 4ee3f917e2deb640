#!/bin/sh
# panic.sh (guest, kite.test=panic): says whether the pvpanic driver bound Kite's device, then panics the
# kernel (SysRq c). The VMM must end with the panic's own status, whatever panic= says; reaching the end
# of this script is a failure.
if [ -e /sys/bus/platform/drivers/pvpanic-mmio/QEMU0001:00 ]; then echo "KITE-PVPANIC=bound"; else echo "KITE-PVPANIC=unbound"; fi
console-drain
echo c > /proc/sysrq-trigger
sleep 10
echo "panic: still running after the panic"
exit 1
