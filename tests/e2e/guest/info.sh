#!/bin/sh
# Prints what the host-side e2e checks compare: online CPUs, memory size, kernel, a computed value.
echo "KITE-CPUS=$(cat /sys/devices/system/cpu/online)"
echo "KITE-MEMKB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "KITE-UNAME=$(uname -r)"
echo "KITE-SUM=$((6 * 7))"
echo "KITE-CMDLINE=$(cat /proc/cmdline)"
