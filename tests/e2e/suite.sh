#!/usr/bin/env bash
# suite.sh: the guest tests and Linux e2e scenarios, inside one sandbox boot (scripts/test.sh boots one per group).
#
# Convention (scripts/test.sh ships all of it; nothing to register):
#   - Scenarios: tests/e2e/linux_boot.sh and every tests/e2e/e2e_*.sh, run here in name order with
#     $E2E_VMM (kite by default), each `bash ./NAME.sh` in this folder. A scenario sources ./lib.sh, prints
#     `PASS check` / `FAIL check: why` lines (lib.sh's pass/fail/check) and ends with `e2e_finish`, whose
#     E2E-SUMMARY line proves it ran to the end; a non-zero status without a FAIL line also fails.
#     Results appear as `PASS NAME/check` (NAME: the file name without .sh).
#   - Side files: every file directly in tests/e2e/ is copied next to the scenarios (this folder).
#   - Guest side: tests/e2e/guest/*.sh are /tests/*.sh in $ASSETS/initrd.gz (scripts/setup.sh); a guest
#     runs one with kite.test=NAME on its command line.
#   - Host programs: every executable of build/examples/ (e.g. shmem-backend) and the guest test programs
#     (guest_*_test) are on the PATH; $KITE is the normal kite, $KITE_ASAN the ASan one.
#   - Guest test programs: every guest_*_test on the PATH (e.g. tests/guest/mirror's guest_mirror_test,
#     ASan build) runs with no arguments; it prints PASS/FAIL lines and exits 0, 1 (a failure) or
#     77 (skipped). Results appear as `PASS guest_NAME_test/check`.
#   - The freestanding test guests: ./run_guest_tests.sh with the images in ./guest-images, under the
#     ASan kite, if shipped (results `PASS guest/NAME`).
#   - Each scenario or program gets E2E_SCENARIO_TIMEOUT seconds (default 600); what it leaves running
#     is killed afterwards (it runs in its own session).
#   - E2E_SUITE_PARTS picks parts (default: all): "guest" (the freestanding guests), "programs" (the
#     guest_*_test programs) and scenario names such as "linux_boot e2e_vhost". scripts/test.sh gives each
#     group of parts its own sandbox boot.
# Ends with `SUITE-SUMMARY ...`; the status is non-zero on any failure.
set -uo pipefail
status=0
work=$(mktemp -d)
timeout_s=${E2E_SCENARIO_TIMEOUT:-600}

# run_part LABEL KIND COMMAND... : run COMMAND in its own session with a time limit, print its output with
# PASS/FAIL lines renamed to LABEL/check, and judge it. KIND: e2e (must print E2E-SUMMARY), program
# (status 77 = skipped), guest (run_guest_tests.sh: "ok   NAME" lines are passes).
run_part() {
  local label=$1 kind=$2; shift 2
  echo "## $label: $*"
  local line last="" finished=0 failed_lines=0 start=$SECONDS
  while IFS= read -r line; do
    case $line in
      "ok   "*) [[ $kind == guest ]] && line="PASS $label/${line#ok   }" ;;
      "PASS "* | "FAIL "* | "SKIP "*) line="${line%% *} $label/${line#* }" ;;
    esac
    case $line in
      "FAIL "*) failed_lines=$((failed_lines + 1)) ;;
      E2E-SUMMARY*) finished=1 ;;
    esac
    printf '%s\n' "$line"
    [[ -z $line ]] || last=$line
  done < <(setsid bash -c 'echo $$ > "$0"; exec timeout -k 10 "$1" "${@:2}"' "$work/$label.pid" "$timeout_s" "$@" \
             < /dev/null 2>&1
           echo $? > "$work/$label.rc"
           # Whatever it left running (and holding this pipe open) goes with its session.
           kill -KILL -- "-$(cat "$work/$label.pid")" 2>/dev/null)
  local rc elapsed=$((SECONDS - start))
  rc=$(cat "$work/$label.rc" 2>/dev/null || echo 255)
  echo "## $label: status $rc after $elapsed s"
  # A limit hit shows as 124 (GNU timeout) or the signal's status (busybox timeout execs the command).
  if [[ $elapsed -ge $timeout_s && ( $rc -eq 124 || $rc -eq 137 || $rc -eq 143 ) ]]; then
    echo "FAIL $label/finished: killed after the ${timeout_s} s limit (E2E_SCENARIO_TIMEOUT)"
  elif [[ $kind == e2e && $finished -eq 0 ]]; then
    echo "FAIL $label/finished: ended without an E2E-SUMMARY line (status $rc)"
  elif [[ $kind == program && $rc -eq 77 ]]; then
    echo "SKIP $label: skipped (status 77)"
    return 0
  elif [[ $rc -ne 0 && $failed_lines -eq 0 ]]; then
    echo "FAIL $label/status: exited $rc without a FAIL line; last output: ${last:0:160}"
  elif [[ $rc -eq 0 && $failed_lines -eq 0 ]]; then
    return 0
  fi
  status=1
}

# selected PART: E2E_SUITE_PARTS is unset or names PART.
selected() { [[ -z ${E2E_SUITE_PARTS-} || " $E2E_SUITE_PARTS " == *" $1 "* ]]; }

parts=0
if [[ -f ./run_guest_tests.sh ]] && selected guest; then
  run_part guest guest bash ./run_guest_tests.sh "$KITE_ASAN" ./guest-images
  parts=$((parts + 1))
fi

IFS=: read -r -a path_dirs <<< "$PATH"
mapfile -t programs < <(for d in "${path_dirs[@]}"; do
                          for p in "$d"/guest_*_test; do [[ -x $p ]] && basename "$p"; done
                        done | sort -u)
selected programs || programs=()
for p in "${programs[@]}"; do
  run_part "$p" program "$p"
  parts=$((parts + 1))
done

echo "## linux e2e (E2E_VMM=${E2E_VMM:-kite})"
for s in ./linux_boot.sh ./e2e_*.sh; do
  [[ -f $s ]] || continue
  name=$(basename "$s" .sh)
  selected "$name" || continue
  run_part "$name" e2e bash "$s"
  parts=$((parts + 1))
done

rm -rf "$work"
echo "SUITE-SUMMARY parts=$parts status=$status"
exit $status
