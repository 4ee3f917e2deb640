#!/bin/sh
# Counts on the serial console, one KITE-COUNTER=N line a second, until the VM is stopped.
# tests/e2e/e2e_snapshot.sh snapshots the guest while it counts and checks that the restored guest goes on
# from the same number (a fresh boot would start again at 0 and print KITE-INIT first).
i=0
while :; do
  echo "KITE-COUNTER=$i"
  i=$((i + 1))
  sleep 1
done
