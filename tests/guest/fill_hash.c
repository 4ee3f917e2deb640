// Snapshot test guest (PVH entry, pvh_entry.S): fills fill_mb MiB of RAM at FILL_BASE with words derived
// from fill_seed (both from the command line), hashes them and prints "FILLHASH <hex>" on the serial port,
// then prints "FILL: READY" and polls the serial port for one byte of input. run_guest_tests.sh snapshots
// it there, restores it in a new Kite process and sends the byte to the restored guest only:
//   'v'  hash the region again and compare with the hash kept in RAM (PASS/FAIL, exit status 0/1)
//   'c'  flip one bit of the region first, then the same: must FAIL (proves the check can fail)
// Whatever it did, it prints "FILLHASH <hex>" again and writes its failure count to the debug-exit port.
// Ring-0 code is emulated slowly on the test host (~1M instructions/s): a few instructions per word.
#include <stdint.h>

#include "guest_io.h"

#define SERIAL_LSR (SERIAL_PORT + 5)
#define FILL_BASE 0x400000ull  // 4 MiB: above the image (1 MiB) and what Kite places below it
#define FILL_MAX_MB 64

// Register values pvh_entry.S saves before touching anything (only entry_info is used here).
uint64_t entry_cr0, entry_efer, entry_rflags, entry_cs, entry_info;

// Kept in RAM (this image's .bss) across the snapshot: what the restored guest compares against.
static uint64_t kept_hash, kept_words, kept_seed;

// Every word of the region from a 64-bit LCG started at the seed (never all equal, never zero pages).
static void fill(uint64_t seed, uint64_t words) {
    volatile uint64_t* p = (volatile uint64_t*)FILL_BASE;
    uint64_t x = seed;
    for (uint64_t i = 0; i < words; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = x;
    }
}

// FNV-1a over 64-bit words: xor and multiply by an odd constant are both bijective, so changing any one
// word always changes the hash.
static uint64_t hash(uint64_t words) {
    const volatile uint64_t* p = (const volatile uint64_t*)FILL_BASE;
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < words; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void finish(int failures) {
    outb(DEBUG_EXIT_PORT, (uint8_t)failures);
    for (;;) __asm__ volatile("cli; hlt");
}

void guest_main(int pvh) {
    (void)pvh;
    put("FILL: guest started\n");
    // hvm_start_info: magic at +0, cmdline_paddr at +24.
    const volatile uint32_t* si = (const volatile uint32_t*)entry_info;
    const char* cmdline = si[0] == 0x336ec578u ? (const char*)*(const volatile uint64_t*)(entry_info + 24) : 0;
    int64_t seed = cmdline ? cmdline_number(cmdline, "fill_seed") : -1;
    int64_t mb = cmdline ? cmdline_number(cmdline, "fill_mb") : -1;
    if (seed < 0 || mb < 1 || mb > FILL_MAX_MB) {
        put("FILL: FAIL need fill_seed=<n> fill_mb=<1..64> on the command line\n");
        finish(1);
    }
    kept_seed = (uint64_t)seed;
    kept_words = (uint64_t)mb << 17;  // 8-byte words
    fill(kept_seed, kept_words);
    kept_hash = hash(kept_words);
    put("FILLHASH ");
    put_hex_digits(kept_hash);
    put("\nFILL: READY seed ");
    put_hex_digits(kept_seed);
    put("\n");

    // Wait for one byte of serial input, polling the line status register (interrupts stay off).
    while (!(inb(SERIAL_LSR) & 1))
        for (int i = 0; i < 64; ++i) __asm__ volatile("pause");
    uint8_t command = inb(SERIAL_PORT);
    if (command == 'c') {
        ((volatile uint64_t*)FILL_BASE)[kept_words / 2] ^= 1ull << 17;
        put("FILL: flipped one bit of the region\n");
    } else if (command != 'v') {
        put("FILL: FAIL unknown command byte\n");
        finish(1);
    }
    uint64_t now = hash(kept_words);
    put("FILLHASH ");
    put_hex_digits(now);
    put(now == kept_hash ? "\nFILL: PASS hash after restore\n" : "\nFILL: FAIL hash after restore\n");
    finish(now == kept_hash ? 0 : 1);
}
