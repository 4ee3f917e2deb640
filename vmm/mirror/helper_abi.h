/* The ABI between the VMM and the mirror helper program (vmm/mirror/helper/): the layout of the helper's
 * private memory, the mailbox, and the sealed page record. Plain C so the freestanding helper (built with
 * gcc -ffreestanding, no libc) and the C++ VMM include the same definitions.
 *
 * Address spaces. The mirror VM's guest-physical space holds:
 *  - the private window [KITE_MIRROR_PRIVATE_BASE, +KITE_MIRROR_PRIVATE_SIZE): the helper's own memfd
 *    (code, stack, page tables, mailbox, key, record buffer). It sits below 4 GiB, in the top of the 32-bit
 *    hole where no x86 machine layout puts RAM (flash/reset vector area), so that option 1's identity alias
 *    of the main VM's low RAM never collides with it;
 *  - option 1: the main VM's RAM regions below 4 GiB at their main-VM GPAs (identity alias);
 *  - option 2: guest-requested windows (main GPA range -> mirror GPA), at mirror GPAs in
 *    [4 GiB, min(high_base, KITE_MIRROR_RAM_VA));
 *  - every RAM block at high_base + ram_offset (mapped into the main VM or not).
 * The helper's page tables (built by the VMM) map virtual == physical for the low 4 GiB and the option-2
 * windows, so every address in this file is both a GPA and a helper pointer; RAM is the exception: RAM
 * offset X is at helper virtual address KITE_MIRROR_RAM_VA + X (-> GPA high_base + X), because high_base can
 * be 2^47 or more, beyond the canonical lower half of 4-level paging.
 *
 * Protocol. The VMM fills the mailbox, increments go_seq and runs the vCPU until KVM_EXIT_HLT. The helper
 * sees go_seq != done_seq, performs the command, writes status/count, sets done_seq = go_seq and halts.
 */
#ifndef KITE_VMM_MIRROR_HELPER_ABI_H
#define KITE_VMM_MIRROR_HELPER_ABI_H

#include <stdint.h>

#define KITE_MIRROR_PAGE_SIZE 4096u

/* ---- private window (mirror GPA == helper virtual address) ---- */
#define KITE_MIRROR_PRIVATE_BASE 0xffe00000ull
#define KITE_MIRROR_PRIVATE_SIZE 0x200000ull /* 2 MiB, one memfd */

#define KITE_MIRROR_GDT_GPA (KITE_MIRROR_PRIVATE_BASE + 0x0000ull)     /* null, code64 0x08, data 0x10 */
#define KITE_MIRROR_MAILBOX_GPA (KITE_MIRROR_PRIVATE_BASE + 0x1000ull) /* struct kite_mirror_mailbox */
#define KITE_MIRROR_SECRET_GPA (KITE_MIRROR_PRIVATE_BASE + 0x2000ull)  /* struct kite_mirror_secret */
#define KITE_MIRROR_SCRATCH_GPA (KITE_MIRROR_PRIVATE_BASE + 0x3000ull) /* one page: record copy on import */
#define KITE_MIRROR_STACK_BOTTOM (KITE_MIRROR_PRIVATE_BASE + 0x4000ull)
#define KITE_MIRROR_STACK_TOP (KITE_MIRROR_PRIVATE_BASE + 0x10000ull)
#define KITE_MIRROR_CODE_GPA (KITE_MIRROR_PRIVATE_BASE + 0x10000ull) /* entry point = first byte */
#define KITE_MIRROR_CODE_SIZE 0x10000ull
#define KITE_MIRROR_PAGE_TABLES_GPA (KITE_MIRROR_PRIVATE_BASE + 0x20000ull) /* PML4 first */
#define KITE_MIRROR_PAGE_TABLES_SIZE 0x60000ull
#define KITE_MIRROR_RECORDS_GPA (KITE_MIRROR_PRIVATE_BASE + 0x80000ull) /* struct kite_mirror_record[] */
#define KITE_MIRROR_RECORDS_SIZE 0x100000ull

/* Helper virtual address of RAM offset 0 (64 TiB): fixed, so the VMM cannot point the helper elsewhere. */
#define KITE_MIRROR_RAM_VA 0x400000000000ull

#define KITE_MIRROR_GDT_CODE64 0x08
#define KITE_MIRROR_GDT_DATA 0x10

/* ---- commands and status codes ---- */
enum kite_mirror_command {
    KITE_MIRROR_CMD_RESET = 0,        /* re-read the secret, reset the nonce counter; status only */
    KITE_MIRROR_CMD_EXPORT = 1,       /* seal the page at offsets[0] into records[0] */
    KITE_MIRROR_CMD_IMPORT = 2,       /* verify records[0], open it into its own ram_offset */
    KITE_MIRROR_CMD_EXPORT_BATCH = 3, /* seal offsets[0..count) into records[0..count) */
    KITE_MIRROR_CMD_IMPORT_BATCH = 4, /* open records[0..count) in order, stop at the first refusal */
    KITE_MIRROR_CMD_EXPORT_GPA = 5,   /* seal the page at mirror GPA offsets[0] (inside a window) */
};

enum kite_mirror_status {
    KITE_MIRROR_OK = 0,
    KITE_MIRROR_ERR_COMMAND = 1, /* unknown command */
    KITE_MIRROR_ERR_RANGE = 2,   /* RAM offset / GPA not page aligned or outside RAM / windows */
    KITE_MIRROR_ERR_COUNT = 3,   /* batch count 0 or above KITE_MIRROR_MAX_BATCH */
    KITE_MIRROR_ERR_MAC = 4,     /* record failed authentication: target page left unchanged */
    KITE_MIRROR_ERR_RECORD = 5,  /* record header malformed (flags, by-GPA record on import) */
};

#define KITE_MIRROR_MAX_BATCH 128u
#define KITE_MIRROR_MAX_WINDOWS 16u

/* A guest-physical range the helper may read with EXPORT_GPA (option 1 identity alias, option 2 windows). */
struct kite_mirror_window {
    uint64_t gpa;
    uint64_t length;
};

struct kite_mirror_mailbox {
    uint64_t go_seq;   /* written by the VMM: increment to start a command */
    uint64_t done_seq; /* written by the helper: = go_seq when the command is finished */
    uint32_t command;  /* enum kite_mirror_command */
    int32_t status;    /* enum kite_mirror_status, written by the helper */
    uint32_t count;    /* in: batch size; out: records produced / pages imported */
    uint32_t window_count;
    uint64_t ram_size;    /* RAM offsets [0, ram_size) exist (at most KITE_MIRROR_RAM_VA bytes) */
    uint64_t high_base;   /* informational: RAM offset X is at mirror GPA high_base + X */
    uint64_t records_gpa; /* = KITE_MIRROR_RECORDS_GPA */
    uint64_t reserved[2];
    struct kite_mirror_window windows[KITE_MIRROR_MAX_WINDOWS];
    uint64_t offsets[KITE_MIRROR_MAX_BATCH]; /* RAM offsets (or a GPA for EXPORT_GPA) */
};

/* Key material: written once by the VMM at mirror creation (getrandom or a supplied transport key). */
struct kite_mirror_secret {
    uint8_t cipher_key[32]; /* ChaCha20 (RFC 8439) key */
    uint8_t mac_key[16];    /* SipHash-2-4 key */
    uint64_t nonce_base;    /* first nonce this helper uses; the helper counts up from here */
};

#define KITE_MIRROR_RECORD_BY_GPA 1u /* flags: ram_offset holds a mirror GPA (EXPORT_GPA) */

/* One sealed page, all integers little-endian:
 *   ciphertext = page XOR ChaCha20(cipher_key, 96-bit nonce = 0^32 || nonce, block counter 0..63)
 *   mac        = SipHash-2-4(mac_key, ram_offset || nonce || flags || reserved || ciphertext)
 * i.e. the MAC covers the record's first 24 bytes and the ciphertext, so a record cannot be replayed to a
 * different RAM offset or have its flags changed. reserved must be 0. */
struct kite_mirror_record {
    uint64_t ram_offset;
    uint64_t nonce;
    uint32_t flags;
    uint32_t reserved;
    uint64_t mac;
    uint8_t ciphertext[KITE_MIRROR_PAGE_SIZE];
};

#define KITE_MIRROR_RECORD_SIZE (32u + KITE_MIRROR_PAGE_SIZE)
#define KITE_MIRROR_MAC_HEADER_SIZE 24u /* ram_offset, nonce, flags, reserved */

#ifdef __cplusplus
static_assert(sizeof(struct kite_mirror_record) == KITE_MIRROR_RECORD_SIZE, "record layout");
static_assert(sizeof(struct kite_mirror_mailbox) <= KITE_MIRROR_PAGE_SIZE, "mailbox fits its page");
static_assert(sizeof(struct kite_mirror_secret) == 56, "secret layout");
static_assert(KITE_MIRROR_MAX_BATCH * KITE_MIRROR_RECORD_SIZE <= KITE_MIRROR_RECORDS_SIZE, "batch fits");
static_assert(KITE_MIRROR_RECORDS_GPA + KITE_MIRROR_RECORDS_SIZE <= KITE_MIRROR_PRIVATE_BASE + KITE_MIRROR_PRIVATE_SIZE,
              "records inside the private window");
static_assert(KITE_MIRROR_PRIVATE_BASE + KITE_MIRROR_PRIVATE_SIZE == 0x100000000ull, "window ends at 4 GiB");
#else
_Static_assert(sizeof(struct kite_mirror_record) == KITE_MIRROR_RECORD_SIZE, "record layout");
_Static_assert(sizeof(struct kite_mirror_mailbox) <= KITE_MIRROR_PAGE_SIZE, "mailbox fits its page");
#endif

#endif /* KITE_VMM_MIRROR_HELPER_ABI_H */
