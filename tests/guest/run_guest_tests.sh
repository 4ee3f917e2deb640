#!/bin/bash
# Runs the freestanding test guests under Kite and checks what they report.
#   run_guest_tests.sh <kite binary> [<guest image dir>]
# The image dir defaults to tests/guest next to the kite binary (the CMake build layout).
# Each guest gets a fresh random initrd and is told its size and POSIX cksum on the command line; it
# prints "GUEST: PASS/FAIL <check>" lines on the serial port and writes the number of failed checks to
# the debug-exit port (0x501), which becomes Kite's exit status.
# Exit status: 0 all passed, 1 a failure, 77 skipped (no /dev/kvm), 2 bad usage.
set -u

kite=${1:?usage: run_guest_tests.sh <kite binary> [<guest image dir>]}
images=${2:-$(dirname "$kite")/tests/guest}
[ -x "$kite" ] || { echo "run_guest_tests: $kite is not an executable" >&2; exit 2; }
[ -e /dev/kvm ] || { echo "run_guest_tests: no /dev/kvm, skipping"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 4096 /dev/urandom > "$work/initrd.bin"
read -r initrd_sum initrd_size _ < <(cksum "$work/initrd.bin")

failed=0

# run_one NAME IMAGE EXPECTED_STATUS CMDLINE...: runs one guest, checks status and output.
run_one() {
    local name=$1 image=$2 want=$3 cmdline=$4
    local log="$work/$name.log"
    timeout 120 "$kite" run --kernel "$images/$image" --initrd "$work/initrd.bin" --cmdline "$cmdline" \
        --memory 64M --serial stdio > "$log" 2>&1 < /dev/null
    local status=$?
    local ok=1
    [ "$status" -eq "$want" ] || ok=0
    grep -q "GUEST: DONE" "$log" || ok=0
    if [ "$want" -eq 0 ]; then
        grep -q "GUEST: FAIL" "$log" && ok=0
        grep -q "GUEST: DONE all passed" "$log" || ok=0
    else
        grep -q "GUEST: FAIL initrd cksum" "$log" || ok=0
    fi
    if [ "$ok" -eq 1 ]; then
        echo "ok   $name (exit $status)"
    else
        echo "FAIL $name (exit $status, wanted $want); output:"
        sed 's/^/    /' "$log"
        failed=1
    fi
}

good="console=ttyS0 kite_test=hello kite_ram_mb=64 initrd_size=$initrd_size initrd_cksum=$initrd_sum"
bad="console=ttyS0 kite_test=hello kite_ram_mb=64 initrd_size=$initrd_size initrd_cksum=$((initrd_sum ^ 1))"
run_one pvh pvh-guest.elf 0 "$good"
run_one bzimage bzimage-guest 0 "$good"
# A wrong checksum must fail exactly one check: proves the guest's verdict reaches Kite's exit status.
run_one pvh-wrong-cksum pvh-guest.elf 1 "$bad"
run_one bzimage-wrong-cksum bzimage-guest 1 "$bad"

# The hostile virtio guest (virtio_hostile.c) abuses virtio-mmio transport 0 (an rng) and checks that
# transport 1 (another rng) keeps serving; transport 2 (a disk) gets the garbage register writes too.
# Besides the guest's verdict, Kite must have logged what it refused and must not have tripped a sanitizer.
run_hostile() {
    local log="$work/virtio-hostile.log"
    truncate -s 1M "$work/disk.img"
    timeout 300 "$kite" run --kernel "$images/virtio-hostile.elf" --cmdline "console=ttyS0" --memory 64M \
        --serial stdio --rng --rng --disk "$work/disk.img" > "$log" 2>&1 < /dev/null
    local status=$? ok=1 why=""
    [ "$status" -eq 0 ] || { ok=0; why="exit status $status"; }
    grep -q "GUEST: DONE all passed" "$log" || { ok=0; why="$why; no 'GUEST: DONE all passed'"; }
    ! grep -q "GUEST: FAIL" "$log" || { ok=0; why="$why; a guest check failed"; }
    ! grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$log" || { ok=0; why="$why; sanitizer report"; }
    for logged in "virtio-mmio: .*ignored" "virtio-rng: bad request: descriptor chain longer than" \
                  "virtqueue: avail ring head 32768 beyond a queue of 8"; do
        grep -Eq "$logged" "$log" || { ok=0; why="$why; kite did not log '$logged'"; }
    done
    if [ "$ok" -eq 1 ]; then
        echo "ok   virtio-hostile ($(grep -c 'GUEST: PASS' "$log") checks)"
    else
        echo "FAIL virtio-hostile (${why#; }); output:"
        sed 's/^/    /' "$log"
        failed=1
    fi
}
run_hostile
exit $failed
