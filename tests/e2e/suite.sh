#!/usr/bin/env bash
# suite.sh: everything scripts/test.sh runs in one sandbox boot (one outer boot saves ~15-30 s):
#   1. tests/guest/run_guest_tests.sh (small freestanding guests) under the ASan kite, if shipped
#      (files: run_guest_tests.sh and the image dir copied as ./guest-images)
#   2. the Linux e2e checks (linux_boot.sh) with $E2E_VMM (kite by default)
# Prints PASS/FAIL lines for scripts/test.sh to count; the status is non-zero on any failure.
set -uo pipefail
status=0

if [[ -f ./run_guest_tests.sh ]]; then
  echo "## guest tests: run_guest_tests.sh $KITE_ASAN ./guest-images"
  bash ./run_guest_tests.sh "$KITE_ASAN" ./guest-images | sed -e 's/^ok   /PASS guest\//' -e 's/^FAIL /FAIL guest\//'
  rc=${PIPESTATUS[0]}
  echo "## guest tests: status $rc"
  if [[ $rc -ne 0 ]]; then
    echo "FAIL guest-tests-status: run_guest_tests.sh exited $rc"
    status=1
  fi
fi

echo "## linux e2e (E2E_VMM=${E2E_VMM:-kite})"
bash ./linux_boot.sh || status=1
exit $status
