#!/bin/sh
# Writes the byte given as kite.exit=N on the kernel command line to the debug-exit port 0x501; the VMM
# must end with that status at once, so reaching the end of this script is a failure.
n=
for w in $(cat /proc/cmdline); do
  case $w in kite.exit=*) n=${w#kite.exit=} ;; esac
done
[ -n "$n" ] || { echo "exit_code: no kite.exit=N on the command line"; exit 2; }
echo "exit_code: writing $n to port 0x501"
printf "\\$(printf %o "$n")" | dd of=/dev/port bs=1 seek=$((0x501)) count=1 2>/dev/null
sleep 10
echo "exit_code: still running after the port write"
exit 1
