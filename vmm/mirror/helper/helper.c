/* The mirror helper: a freestanding program entered by the VMM in 64-bit long mode at KITE_MIRROR_CODE_GPA
 * with RSP = KITE_MIRROR_STACK_TOP, identity page tables, interrupts off. It serves one mailbox command per
 * KVM_RUN: the VMM increments go_seq and runs the vCPU; the helper performs the command, sets done_seq and
 * executes HLT (KVM_EXIT_HLT to the VMM, which has no irqchip). The next KVM_RUN resumes after the HLT.
 *
 * It trusts nothing in the mailbox: every RAM offset, GPA and count is checked before use. RAM is reached
 * at KITE_MIRROR_RAM_VA + ram_offset (mirror GPA high_base + ram_offset); only pages inside
 * [0, ram_size) and inside the declared windows are touched.
 * On import a record is copied into private memory before it is authenticated and opened, so the target
 * page is written only after the MAC of exactly the bytes being decrypted has been checked. */
#include <stddef.h>
#include <stdint.h>

#include "vmm/mirror/helper_abi.h"
#include "vmm/mirror/seal_core.h"

#ifndef KITE_HELPER_HOSTED
/* The compiler may emit calls to these for struct copies and loops, even freestanding. */
void* memcpy(void* dst, const void* src, size_t n) {
    uint8_t* d = (uint8_t*)dst;
    const uint8_t* s = (const uint8_t*)src;
    while (n--) *d++ = *s++;
    return dst;
}
void* memset(void* dst, int c, size_t n) {
    uint8_t* d = (uint8_t*)dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

#define MAILBOX ((volatile struct kite_mirror_mailbox*)KITE_MIRROR_MAILBOX_GPA)
#define SECRET ((const struct kite_mirror_secret*)KITE_MIRROR_SECRET_GPA)
#define RECORDS ((struct kite_mirror_record*)KITE_MIRROR_RECORDS_GPA)
#define SCRATCH ((struct kite_mirror_record*)KITE_MIRROR_SCRATCH_GPA)
#define RAM_VA KITE_MIRROR_RAM_VA
#define GPA_PTR(gpa) ((const uint8_t*)(gpa))
#endif
/* KITE_HELPER_HOSTED: tests/fuzz/fuzz_mirror_mailbox.cpp includes this file on the host and defines the
 * macros above to point at host buffers, so the command logic is fuzzed exactly as built for the mirror. */

/* Helper-private state, in the code image's .bss (inside the private window). */
static uint64_t next_nonce;
static uint64_t nonce_ready;

/* The helper's view of RAM, captured once per command so a concurrent mailbox change cannot move it. */
struct ram_view {
    uint64_t va; /* KITE_MIRROR_RAM_VA: a constant, never taken from the mailbox */
    uint64_t size;
};

static int page_in_ram(const struct ram_view* ram, uint64_t offset) {
    return (offset & (KITE_MIRROR_PAGE_SIZE - 1)) == 0 && offset < ram->size &&
           ram->size - offset >= KITE_MIRROR_PAGE_SIZE;
}

static int page_in_windows(uint64_t gpa, uint32_t count) {
    if (gpa & (KITE_MIRROR_PAGE_SIZE - 1)) return 0;
    if (count > KITE_MIRROR_MAX_WINDOWS) return 0;
    for (uint32_t i = 0; i < count; ++i) {
        uint64_t base = MAILBOX->windows[i].gpa, len = MAILBOX->windows[i].length;
        if (gpa >= base && gpa - base < len && len - (gpa - base) >= KITE_MIRROR_PAGE_SIZE) return 1;
    }
    return 0;
}

static void seal(const uint8_t* page, uint64_t label, uint32_t flags, struct kite_mirror_record* out) {
    uint32_t words[3];
    out->ram_offset = label;
    out->nonce = next_nonce++;
    out->flags = flags;
    out->reserved = 0;
    kite_record_nonce_words(out->nonce, words);
    kite_chacha20_xor(SECRET->cipher_key, words, 0, page, out->ciphertext, KITE_MIRROR_PAGE_SIZE);
    out->mac = kite_record_mac(SECRET->mac_key, out);
}

static int export_pages(const struct ram_view* ram, uint32_t count, uint32_t* done) {
    for (uint32_t i = 0; i < count; ++i) {
        uint64_t offset = MAILBOX->offsets[i];
        if (!page_in_ram(ram, offset)) return KITE_MIRROR_ERR_RANGE;
        seal((const uint8_t*)(ram->va + offset), offset, 0, &RECORDS[i]);
        *done = i + 1;
    }
    return KITE_MIRROR_OK;
}

static int import_pages(const struct ram_view* ram, uint32_t count, uint32_t* done) {
    struct kite_mirror_record* r = SCRATCH;
    for (uint32_t i = 0; i < count; ++i) {
        memcpy(r, &RECORDS[i], sizeof *r);
        if (r->flags != 0 || r->reserved != 0) return KITE_MIRROR_ERR_RECORD;
        if (!page_in_ram(ram, r->ram_offset)) return KITE_MIRROR_ERR_RANGE;
        if (kite_record_mac(SECRET->mac_key, r) != r->mac) return KITE_MIRROR_ERR_MAC;
        uint32_t words[3];
        kite_record_nonce_words(r->nonce, words);
        kite_chacha20_xor(SECRET->cipher_key, words, 0, r->ciphertext, (uint8_t*)(ram->va + r->ram_offset),
                          KITE_MIRROR_PAGE_SIZE);
        *done = i + 1;
    }
    return KITE_MIRROR_OK;
}

static int run_command(uint32_t command, uint32_t* done) {
    struct ram_view ram = {RAM_VA, MAILBOX->ram_size};
    if (ram.size > KITE_MIRROR_RAM_VA) ram.size = 0; /* RAM beyond the mapped view: refuse every offset */
    uint32_t count = MAILBOX->count;
    if (!nonce_ready || command == KITE_MIRROR_CMD_RESET) {
        next_nonce = SECRET->nonce_base;
        nonce_ready = 1;
    }
    switch (command) {
    case KITE_MIRROR_CMD_RESET: return KITE_MIRROR_OK;
    case KITE_MIRROR_CMD_EXPORT: return export_pages(&ram, 1, done);
    case KITE_MIRROR_CMD_IMPORT: return import_pages(&ram, 1, done);
    case KITE_MIRROR_CMD_EXPORT_BATCH:
        if (count == 0 || count > KITE_MIRROR_MAX_BATCH) return KITE_MIRROR_ERR_COUNT;
        return export_pages(&ram, count, done);
    case KITE_MIRROR_CMD_IMPORT_BATCH:
        if (count == 0 || count > KITE_MIRROR_MAX_BATCH) return KITE_MIRROR_ERR_COUNT;
        return import_pages(&ram, count, done);
    case KITE_MIRROR_CMD_EXPORT_GPA: {
        uint64_t gpa = MAILBOX->offsets[0];
        if (!page_in_windows(gpa, MAILBOX->window_count)) return KITE_MIRROR_ERR_RANGE;
        seal(GPA_PTR(gpa), gpa, KITE_MIRROR_RECORD_BY_GPA, &RECORDS[0]);
        *done = 1;
        return KITE_MIRROR_OK;
    }
    default: return KITE_MIRROR_ERR_COMMAND;
    }
}

#ifndef KITE_HELPER_HOSTED
__attribute__((noreturn, section(".text.entry"))) void helper_main(void) {
    for (;;) {
        uint64_t go = MAILBOX->go_seq;
        if (go != MAILBOX->done_seq) {
            uint32_t done = 0;
            int status = run_command(MAILBOX->command, &done);
            MAILBOX->count = done;
            MAILBOX->status = status;
            __asm__ volatile("" ::: "memory"); /* status before done: the VMM reads done last */
            MAILBOX->done_seq = go;
        }
        __asm__ volatile("hlt" ::: "memory");
    }
}
#endif
