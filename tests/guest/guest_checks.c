// The checks both test guests run once their entry code has reached 64-bit mode. They read what Kite
// handed over (boot_params for the bzImage guest, hvm_start_info for the PVH guest), print one line per
// check on the serial port and write the number of failed checks to Kite's debug-exit port.
//
// The command line tells the guest what to expect:
//   kite_test=hello kite_ram_mb=<RAM in MiB> initrd_size=<bytes> initrd_cksum=<POSIX cksum CRC>
// or kite_test=triple_fault: the guest triple-faults at once (Kite must end with status 1 and say why).
// Ring-0 code is emulated slowly on the test host: every loop here is short.
#include <stdint.h>

#include "guest_io.h"

// Register values the entry code saved before touching anything.
uint64_t entry_cr0, entry_efer, entry_rflags, entry_cs, entry_info;

static int failures;

static void report(int ok, const char* what, uint64_t detail) {
    put(ok ? "GUEST: PASS " : "GUEST: FAIL ");
    put(what);
    if (!ok) {
        put(" ");
        put_hex(detail);
    }
    put("\n");
    failures += !ok;
}

static uint32_t rd32(uint64_t addr) { return *(volatile uint32_t*)addr; }
static uint64_t rd64(uint64_t addr) { return *(volatile uint64_t*)addr; }

static int cmdline_has(const char* cmdline, const char* token) {
    for (const char* p = cmdline; *p; ++p) {
        if (p != cmdline && p[-1] != ' ') continue;
        const char* t = token;
        const char* q = p;
        while (*t && *q == *t) ++t, ++q;
        if (!*t && (*q == ' ' || *q == 0)) return 1;
    }
    return 0;
}

// POSIX cksum: CRC-32 (polynomial 0x04c11db7, MSB first) over the data, then over its length, inverted.
static uint32_t posix_cksum(const uint8_t* data, uint64_t size) {
    static uint32_t table[256];
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i << 24;
        for (int b = 0; b < 8; ++b) c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
        table[i] = c;
    }
    uint32_t crc = 0;
    for (uint64_t i = 0; i < size; ++i) crc = (crc << 8) ^ table[(crc >> 24) ^ data[i]];
    for (uint64_t n = size; n; n >>= 8) crc = (crc << 8) ^ table[(crc >> 24) ^ (n & 0xff)];
    return ~crc;
}

struct handover {
    const char* cmdline;
    uint64_t e820_count, e820_addr, e820_stride;
    uint64_t initrd_addr, initrd_size;
};

// Reads boot_params (Documentation/arch/x86/zero-page.rst offsets).
static int read_boot_params(uint64_t bp, struct handover* h) {
    report(rd32(bp + 0x202) == 0x53726448u, "boot_params (rsi) has HdrS", rd32(bp + 0x202));
    report(*(volatile uint8_t*)(bp + 0x210) == 0xff, "type_of_loader 0xff", *(volatile uint8_t*)(bp + 0x210));
    h->cmdline = (const char*)(rd32(bp + 0x228) | (uint64_t)rd32(bp + 0xc8) << 32);
    h->e820_count = *(volatile uint8_t*)(bp + 0x1e8);
    h->e820_addr = bp + 0x2d0;
    h->e820_stride = 20;
    h->initrd_addr = rd32(bp + 0x218) | (uint64_t)rd32(bp + 0xc0) << 32;
    h->initrd_size = rd32(bp + 0x21c) | (uint64_t)rd32(bp + 0xc4) << 32;
    return rd32(bp + 0x202) == 0x53726448u;
}

// Reads hvm_start_info (version 1: memmap at +40).
static int read_start_info(uint64_t si, struct handover* h) {
    int ok = rd32(si) == 0x336ec578u;
    report(ok, "start_info (ebx) magic", rd32(si));
    report(rd32(si + 4) >= 1, "start_info version >= 1", rd32(si + 4));
    h->cmdline = (const char*)rd64(si + 24);
    h->e820_count = rd32(si + 48);
    h->e820_addr = rd64(si + 40);
    h->e820_stride = 24;
    h->initrd_addr = rd32(si + 12) ? rd64(rd64(si + 16)) : 0;
    h->initrd_size = rd32(si + 12) ? rd64(rd64(si + 16) + 8) : 0;
    return ok;
}

void guest_main(int pvh) {
    failures = 0;  // .bss beyond the bzImage file part is not zeroed by every loader
    put(pvh ? "GUEST: PVH guest started\n" : "GUEST: bzImage guest started\n");
    report((entry_rflags & (1u << 9)) == 0, "interrupts off at entry", entry_rflags);
    if (pvh) {
        report((entry_cr0 & 0x80000001u) == 1, "mode 32-bit protected, paging off", entry_cr0);
    } else {
        report((entry_efer & (1u << 10)) && (entry_cr0 & 0x80000001u) == 0x80000001u, "mode 64-bit long mode, paging on",
               entry_efer);
        report((entry_cs & 0xffff) == 0x10, "cs is __BOOT_CS", entry_cs);  // mov from %cs: only 16 bits defined
    }

    struct handover h;
    int ok = pvh ? read_start_info(entry_info, &h) : read_boot_params(entry_info, &h);
    if (ok && h.cmdline) {
        const char* c = h.cmdline;
        if (cmdline_has(c, "kite_test=triple_fault")) {
            // An empty IDT: the breakpoint cannot be delivered (#GP), nor can that (#DF): a triple fault.
            static const struct __attribute__((packed)) { uint16_t limit; uint64_t base; } no_idt = {0, 0};
            put("GUEST: triple fault next\n");
            __asm__ volatile("lidt %0; int3" : : "m"(no_idt));
            put("GUEST: FAIL still running after the triple fault\n");
        }
        report(cmdline_has(c, "kite_test=hello"), "cmdline", 0);

        uint64_t ram_end = (uint64_t)cmdline_number(c, "kite_ram_mb") << 20;
        // RAM must start at 1 MiB, and the map (RAM, plus whatever the VMM reserves, such as ACPI tables
        // at the top) must reach the configured end of RAM without a gap.
        uint64_t count = h.e820_count < 128 ? h.e820_count : 128;
        uint64_t reach = 0x100000;
        int ram_at_1m = 0;
        for (uint64_t pass = 0; pass < count; ++pass) {
            for (uint64_t i = 0; i < count; ++i) {
                uint64_t e = h.e820_addr + i * h.e820_stride;
                uint64_t addr = rd64(e), size = rd64(e + 8);
                uint32_t type = rd32(e + 16);
                ram_at_1m |= type == 1 && addr <= 0x100000 && addr + size > 0x100000;
                if (addr <= reach && addr + size > reach) reach = addr + size;
            }
        }
        int covered = ram_at_1m && reach >= ram_end;
        report(covered && ram_end > 0x100000, "e820 RAM covers 1 MiB to the configured RAM end", h.e820_count);
        for (uint64_t i = 0; !covered && i < h.e820_count && i < 128; ++i) {
            uint64_t e = h.e820_addr + i * h.e820_stride;
            put("GUEST: e820 ");
            put_hex(rd64(e));
            put(" ");
            put_hex(rd64(e + 8));
            put(" ");
            put_hex(rd32(e + 16));
            put("\n");
        }

        int64_t want_size = cmdline_number(c, "initrd_size");
        int64_t want_sum = cmdline_number(c, "initrd_cksum");
        report(h.initrd_size == (uint64_t)want_size, "initrd size", h.initrd_size);
        int placed = h.initrd_addr >= 0x100000 && (h.initrd_addr & 0xfff) == 0 && h.initrd_addr + h.initrd_size <= ram_end;
        report(placed, "initrd placement", h.initrd_addr);
        uint32_t sum = placed ? posix_cksum((const uint8_t*)h.initrd_addr, h.initrd_size) : 0;
        report(placed && sum == (uint32_t)want_sum, "initrd cksum", sum);
    } else {
        report(0, "cmdline pointer", 0);
    }
    put(failures ? "GUEST: DONE with failures\n" : "GUEST: DONE all passed\n");
    outb(DEBUG_EXIT_PORT, (uint8_t)(failures > 255 ? 255 : failures));
    for (;;) __asm__ volatile("cli; hlt");
}
