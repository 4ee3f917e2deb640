#!/bin/sh
# Counts on the serial console, one KITE-COUNTER=N line a second, until the VM is stopped.
# tests/e2e/e2e_snapshot.sh snapshots the guest while it counts and checks that the restored guest goes on
# from the same number (a fresh boot would start again at 0 and print KITE-INIT first).
# kite.fill=MIB (for scripts/bench-snapshot.sh): first write MIB MiB of non-zero data to the RAM-backed /tmp,
# so a snapshot has that much more memory to save than an idle guest.
for w in $(cat /proc/cmdline); do
  case $w in kite.fill=*) yes kite-fill | head -c $((${w#kite.fill=} * 1048576)) > /tmp/fill; echo "KITE-FILLED" ;; esac
done
i=0
while :; do
  echo "KITE-COUNTER=$i"
  i=$((i + 1))
  sleep 1
done
