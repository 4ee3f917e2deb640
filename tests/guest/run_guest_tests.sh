#!/bin/bash
# Runs the freestanding test guests under Kite and checks what they report.
#   run_guest_tests.sh <kite binary> [<guest image dir>]
# The image dir defaults to tests/guest next to the kite binary (the CMake build layout).
# Each guest gets a fresh random initrd and is told its size and POSIX cksum on the command line; it
# prints "GUEST: PASS/FAIL <check>" lines on the serial port and writes the number of failed checks to
# the debug-exit port (0x501), which becomes Kite's exit status. fill-hash.elf is snapshotted through the
# control socket and restored in a new Kite process (directly, and through the mirror VM where /dev/kvm is
# not PVM); its hash of 2 MiB of RAM must survive (see the end of this script).
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

# verdict NAME OK WHY LOG [DETAIL]: prints "ok   NAME [DETAIL]", or "FAIL NAME (WHY)" and LOG indented
# (WHY is a list of "; "-joined reasons, its leading separator dropped) and marks the run failed.
verdict() {
    local name=$1 ok=$2 why=$3 log=$4 detail=${5-}
    if [ "$ok" -eq 1 ]; then
        echo "ok   $name${detail:+ $detail}"
    else
        echo "FAIL $name (${why#; }); output:"
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

# A triple fault is a crash, not a reboot: Kite ends with status 1 and says where the vCPU was. (PVM's
# ring-0 emulator gives up on the undeliverable exception instead: an internal error, also status 1.)
run_triple_fault() {
    local log="$work/triple-fault.log" want="vCPU 0: the guest triple-faulted \(KVM_EXIT_SHUTDOWN\) at rip 0x[0-9a-f]+"
    [ -d /sys/module/kvm_pvm ] && want="vCPU 0: KVM internal error, suberror [0-9]+ at rip 0x[0-9a-f]+"
    timeout 120 "$kite" run --kernel "$images/pvh-guest.elf" --cmdline "console=ttyS0 kite_test=triple_fault" \
        --memory 64M --serial stdio > "$log" 2>&1 < /dev/null
    local status=$?
    if [ "$status" -eq 1 ] && grep -q "GUEST: triple fault next" "$log" && grep -Eq "$want" "$log"; then
        echo "ok   triple-fault (exit $status)"
    else
        echo "FAIL triple-fault (exit $status, wanted 1 and kite's report); output:"
        sed 's/^/    /' "$log"
        failed=1
    fi
}
run_triple_fault

# The hostile virtio guest (virtio_hostile.c) abuses virtio-mmio transport 0 (an rng) and checks that
# transport 1 (another rng) keeps serving; transport 2 (a disk) gets the garbage register writes too.
# Besides the guest's verdict, Kite must have logged what it refused and must not have tripped a sanitizer.
# The guest reads registers thousands of times: with KVM's read-only memslots none of those reads may
# have exited to Kite (the register pages of devices/virtio/mmio_transport.h answered them).
run_hostile() {
    local log="$work/virtio-hostile.log"
    truncate -s 1M "$work/disk.img"
    timeout 300 "$kite" run --kernel "$images/virtio-hostile.elf" --cmdline "console=ttyS0" --memory 64M \
        --serial stdio --rng --rng --disk "$work/disk.img" --log-level debug > "$log" 2>&1 < /dev/null
    local status=$? ok=1 why=""
    [ "$status" -eq 0 ] || { ok=0; why="exit status $status"; }
    grep -q "GUEST: DONE all passed" "$log" || { ok=0; why="$why; no 'GUEST: DONE all passed'"; }
    ! grep -q "GUEST: FAIL" "$log" || { ok=0; why="$why; a guest check failed"; }
    ! grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$log" || { ok=0; why="$why; sanitizer report"; }
    for logged in "virtio-mmio: .*ignored" "virtio-rng: bad request: descriptor chain longer than" \
                  "virtqueue: avail ring head 32768 beyond a queue of 8"; do
        grep -Eq "$logged" "$log" || { ok=0; why="$why; kite did not log '$logged'"; }
    done
    if ! grep -q "KVM lacks read-only memslots" "$log"; then
        [ "$(grep -c 'register or config reads exited to Kite' "$log")" -eq 3 ] &&
            ! grep 'register or config reads exited to Kite' "$log" | grep -vq ': 0 register' ||
            { ok=0; why="$why; register reads exited to Kite despite the register pages"; }
    fi
    verdict virtio-hostile "$ok" "$why" "$log" "($(grep -c 'GUEST: PASS' "$log") checks)"
}
run_hostile

# The interrupt guest (ioapic_guest.c) programs Kite's I/O APIC and takes interrupts through it: from the
# serial port and from a virtio-rng's used buffer, each an irqfd on a pin that Kite routes to KVM as an MSI.
run_ioapic() {
    local log="$work/ioapic.log"
    timeout 120 "$kite" run --kernel "$images/ioapic-guest.elf" --cmdline "console=ttyS0" --memory 64M \
        --serial stdio --rng > "$log" 2>&1 < /dev/null
    local status=$? ok=1 why=""
    [ "$status" -eq 0 ] || { ok=0; why="exit status $status"; }
    grep -q "GUEST: DONE all passed" "$log" || { ok=0; why="$why; no 'GUEST: DONE all passed'"; }
    ! grep -q "GUEST: FAIL" "$log" || { ok=0; why="$why; a guest check failed"; }
    ! grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:|error:" "$log" || { ok=0; why="$why; kite reported an error"; }
    verdict ioapic "$ok" "$why" "$log" "($(grep -c 'GUEST: PASS' "$log") checks)"
}
run_ioapic

# SIGUSR1 makes Kite log where each vCPU is and what the I/O APIC routes, and the guest runs on: a running
# fill-hash guest (waiting for serial input) must report, stay alive, and then stop on SIGTERM as usual.
# Only the shell's own kill and wait: the sandbox has no pgrep or pkill.
run_state_report() {
    local log="$work/state-report.log" pid ok=1 why="" status hold
    mkfifo "$work/state-report.in"  # kite's stdin: open and silent while we hold the write end
    "$kite" run --kernel "$images/fill-hash.elf" --memory 16M --serial stdio --cmdline "fill_seed=1 fill_mb=1" \
        < "$work/state-report.in" > "$log" 2>&1 &
    pid=$!
    exec {hold}> "$work/state-report.in"
    for _ in $(seq 1200); do grep -q "FILL: READY" "$log" && break; sleep 0.1; done
    kill -USR1 "$pid" 2>/dev/null
    for _ in $(seq 300); do grep -q "I/O APIC:" "$log" && break; sleep 0.1; done
    grep -Eq "vCPU 0: rip 0x[0-9a-f]+ .*local APIC: TPR" "$log" || { ok=0; why="no vCPU line"; }
    grep -q "I/O APIC: every pin masked" "$log" || { ok=0; why="$why; no I/O APIC line"; }
    kill -0 "$pid" 2>/dev/null || { ok=0; why="$why; kite did not survive the report"; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    exec {hold}>&-
    status=$(grep -o "exit status [0-9]*" "$log" | tail -n1)
    [ "$status" = "exit status 143" ] || { ok=0; why="$why; ended with '$status', not SIGTERM's 143"; }
    verdict state-report "$ok" "$why" "$log"
}
run_state_report

# Snapshot and restore (fill_hash.c): the guest fills 2 MiB of RAM from a fresh seed, prints FILLHASH and
# waits for a serial byte. Kite snapshots it (--then stop); a new Kite process restores the file and sends
# 'v' on stdin: the restored guest hashes the region again, compares with the hash it kept in RAM and
# exits 0 on a match. The hash it prints must also equal the first VM's. For the direct snapshot, 'c'
# (flip one bit, then check) must fail, and the file with one byte changed must be refused.
fill_args=(--kernel "$images/fill-hash.elf" --memory 16M --serial stdio)
# fill_check NAME WHY COMMAND...: records one result of the snapshot test.
fill_check() {
    local name=$1 why=$2; shift 2
    if "$@"; then
        echo "ok   $name"
    else
        echo "FAIL $name ($why)"
        failed=1 fill_failed=1
    fi
}
fill_hash_of() { tr -d '\r' < "$1" | grep -a -o -E '^FILLHASH [0-9a-f]{16}$' | cut -d' ' -f2 | tail -n1; }
no_sanitizer() { ! grep -a -Eq "AddressSanitizer|LeakSanitizer|runtime error:" "$@"; }
# fill_verdict LOG STATUS WORD HASH: the guest exited STATUS, said "FILL: WORD hash after restore" and
# printed HASH (PASS) or a hash other than HASH (FAIL) as its last FILLHASH line.
fill_verdict() {
    local got
    got=$(fill_hash_of "$1")
    [ "$fill_status" -eq "$2" ] && grep -a -q "^FILL: $3 hash after restore" "$1" && [ -n "$got" ] || return 1
    if [ "$3" = PASS ]; then [ "$got" = "$4" ]; else [ "$got" != "$4" ]; fi
}
# fill_refused LOG: kite exited 2 naming the checksum, and no guest ran.
fill_refused() { [ "$fill_status" -eq 2 ] && grep -a -q checksum "$1" && ! grep -a -q FILL "$1"; }
# fill_restore NAME SNAP BYTE: restores SNAP in a new kite with BYTE on its stdin; status in $fill_status.
fill_restore() {
    printf '%s' "$3" | timeout 120 "$kite" run "${fill_args[@]}" --cmdline "console=ttyS0" --restore "$2" \
        > "$work/$1.log" 2>&1
    fill_status=$?
}
run_fill_hash() {
    local via=$1 name=fill-hash-$1
    local sock=$work/$name.sock snap=$work/$name.snap log=$work/$name.log
    local seed=$(( (RANDOM << 15 | RANDOM) + 1 ))  # fresh each run: a stale snapshot cannot match
    fill_failed=0
    "$kite" run "${fill_args[@]}" --cmdline "console=ttyS0 fill_seed=$seed fill_mb=2" --api-socket "$sock" \
        < /dev/null > "$log" 2>&1 &
    local pid=$! i
    for ((i = 0; i < 240; i++)); do
        grep -a -q "^FILL: READY" "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    local hash reply status
    hash=$(fill_hash_of "$log")
    if ! grep -a -q "^FILL: READY" "$log" || [ -z "$hash" ]; then
        kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        echo "FAIL $name (the guest never got ready); output:"
        sed 's/^/    /' "$log"
        failed=1
        return
    fi
    reply=$(timeout 600 "$kite" snapshot "$snap" --via "$via" --then stop --api-socket "$sock" 2>&1)
    status=$?
    fill_check "$name-snapshot" "status $status: $reply" test "$status" -eq 0
    for ((i = 0; i < 600 && status == 0; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    fill_check "$name-first-kite-exits-0" "status $status" test "$status" -eq 0

    fill_restore "$name-restored" "$snap" v
    local rlog=$work/$name-restored.log rhash
    rhash=$(fill_hash_of "$rlog")
    fill_check "$name-restored" "exit $fill_status, hash ${rhash:-none} after restore, $hash before" \
        fill_verdict "$rlog" 0 PASS "$hash"
    fill_check "$name-restored-no-reboot" "the restored guest started again" \
        bash -c "! grep -a -q 'FILL: guest started' '$rlog'"
    fill_check "$name-no-sanitizer" "sanitizer report" no_sanitizer "$log" "$rlog"
    if [ "$via" = direct ]; then
        fill_restore "$name-flipped" "$snap" c
        fill_check "$name-flipped-bit-fails" "exit $fill_status, hash $(fill_hash_of "$work/$name-flipped.log")" \
            fill_verdict "$work/$name-flipped.log" 1 FAIL "$hash"
        # One byte in the middle of the file (the filled pages) inverted: the file's checksum must refuse it.
        local at byte clog=$work/$name-corrupt.log
        at=$(( $(stat -c %s "$snap") / 2 ))
        byte=$(od -An -tu1 -j "$at" -N1 "$snap" | tr -d ' ')
        cp "$snap" "$work/corrupt.snap"
        printf "\\$(printf %03o $((byte ^ 0xff)))" | dd of="$work/corrupt.snap" bs=1 seek="$at" conv=notrunc status=none
        fill_restore "$name-corrupt" "$work/corrupt.snap" v
        fill_check "$name-corrupt-refused" "exit $fill_status: $(head -c 300 "$clog")" \
            fill_refused "$clog"
    fi
    if [ "$fill_failed" -ne 0 ]; then
        for l in "$log" "$rlog"; do echo "    --- $(basename "$l")"; sed 's/^/    /' "$l"; done
    fi
}
run_fill_hash direct
# The mirror helper seals every page in ring 0: far too slow where /dev/kvm is PVM (~1M instructions/s),
# so there it runs in the KVM sandbox only (scripts/test.sh runs this script there too).
if [ -d /sys/module/kvm_pvm ]; then
    echo "SKIP fill-hash-mirror (PVM /dev/kvm: the helper's ring-0 sealing would take minutes)"
else
    run_fill_hash mirror
fi
exit $failed
