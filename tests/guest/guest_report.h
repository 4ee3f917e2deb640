// Numbered checks for the freestanding test guests: each prints "GUEST: PASS <name>" or
// "GUEST: FAIL <name> (check N) <detail>" on the serial port; finish_checks() prints the verdict
// run_guest_tests.sh looks for and writes the number of the first failed check (0: none, at most 255)
// to the debug-exit port, which becomes Kite's exit status.
#pragma once

#include "guest_io.h"

static int check_no, first_failed;

static inline void report(int ok, const char* name, uint64_t detail) {
    ++check_no;
    put(ok ? "GUEST: PASS " : "GUEST: FAIL ");
    put(name);
    if (!ok) {
        if (!first_failed) first_failed = check_no;
        put(" (check ");
        put_dec((uint64_t)check_no);
        put(") ");
        put_hex(detail);
    }
    put("\n");
}

static inline void finish_checks(void) {
    put(first_failed ? "GUEST: DONE with failures\n" : "GUEST: DONE all passed\n");
    outb(DEBUG_EXIT_PORT, (uint8_t)(first_failed > 255 ? 255 : first_failed));
}
