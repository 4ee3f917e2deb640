#!/usr/bin/env bash
# Scenario for scripts/sandbox.sh: runs the mirror KVM tests where a hardware-style /dev/kvm exists.
# GUEST_MIRROR_FILTER=<substring> runs only the matching tests.
#   SANDBOX_BINS=build/tests/guest/mirror/guest_mirror_test scripts/sandbox.sh tests/guest/mirror/sandbox_scenario.sh
set -u
echo "mirror scenario: sandbox=$SANDBOX"
guest_mirror_test ${GUEST_MIRROR_FILTER:-}
rc=$?
echo "mirror scenario: exit status $rc"
exit $rc
