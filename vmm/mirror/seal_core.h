/* The page sealing primitives, in C with no library calls, shared by the freestanding helper (which does
 * the sealing inside the mirror VM) and the host's PageSeal (which verifies the helper in tests):
 * ChaCha20 as in RFC 8439 (32-bit block counter, 96-bit nonce) and SipHash-2-4 (64-bit tag).
 * Both are checked against OpenSSL-generated vectors in tests/unit/mirror. */
#ifndef KITE_VMM_MIRROR_SEAL_CORE_H
#define KITE_VMM_MIRROR_SEAL_CORE_H

#include <stdint.h>

#include "vmm/mirror/helper_abi.h"

static inline uint32_t kite_rotl32(uint32_t v, int c) { return (v << c) | (v >> (32 - c)); }
static inline uint64_t kite_rotl64(uint64_t v, int c) { return (v << c) | (v >> (64 - c)); }

static inline uint32_t kite_load32(const uint8_t* p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kite_load64(const uint8_t* p) {
    return (uint64_t)kite_load32(p) | (uint64_t)kite_load32(p + 4) << 32;
}

#define KITE_CHACHA_QR(a, b, c, d)              \
    a += b; d ^= a; d = kite_rotl32(d, 16);     \
    c += d; b ^= c; b = kite_rotl32(b, 12);     \
    a += b; d ^= a; d = kite_rotl32(d, 8);      \
    c += d; b ^= c; b = kite_rotl32(b, 7)

/* One 64-byte keystream block for (key, nonce words, counter), as 16 little-endian words. */
static inline void kite_chacha20_block(const uint8_t key[32], const uint32_t nonce[3], uint32_t counter,
                                       uint32_t out[16]) {
    uint32_t in[16];
    in[0] = 0x61707865u; in[1] = 0x3320646eu; in[2] = 0x79622d32u; in[3] = 0x6b206574u;
    for (int i = 0; i < 8; ++i) in[4 + i] = kite_load32(key + 4 * i);
    in[12] = counter;
    in[13] = nonce[0]; in[14] = nonce[1]; in[15] = nonce[2];
    uint32_t x[16];
    for (int i = 0; i < 16; ++i) x[i] = in[i];
    for (int round = 0; round < 10; ++round) {
        KITE_CHACHA_QR(x[0], x[4], x[8], x[12]);
        KITE_CHACHA_QR(x[1], x[5], x[9], x[13]);
        KITE_CHACHA_QR(x[2], x[6], x[10], x[14]);
        KITE_CHACHA_QR(x[3], x[7], x[11], x[15]);
        KITE_CHACHA_QR(x[0], x[5], x[10], x[15]);
        KITE_CHACHA_QR(x[1], x[6], x[11], x[12]);
        KITE_CHACHA_QR(x[2], x[7], x[8], x[13]);
        KITE_CHACHA_QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; ++i) out[i] = x[i] + in[i];
}

/* out[i] = in[i] ^ keystream[i] for len bytes starting at block `counter`; in == out is allowed. */
static inline void kite_chacha20_xor(const uint8_t key[32], const uint32_t nonce[3], uint32_t counter,
                                     const uint8_t* in, uint8_t* out, uint64_t len) {
    uint32_t block[16];
    while (len > 0) {
        kite_chacha20_block(key, nonce, counter++, block);
        uint64_t n = len < 64 ? len : 64;
        for (uint64_t i = 0; i < n; ++i) out[i] = in[i] ^ (uint8_t)(block[i / 4] >> (8 * (i % 4)));
        in += n;
        out += n;
        len -= n;
    }
}

/* The record nonce as ChaCha20's three nonce words: 0, low half, high half. */
static inline void kite_record_nonce_words(uint64_t nonce, uint32_t words[3]) {
    words[0] = 0;
    words[1] = (uint32_t)nonce;
    words[2] = (uint32_t)(nonce >> 32);
}

struct kite_sip {
    uint64_t v0, v1, v2, v3;
};

static inline void kite_sip_round(struct kite_sip* s) {
    s->v0 += s->v1; s->v1 = kite_rotl64(s->v1, 13); s->v1 ^= s->v0; s->v0 = kite_rotl64(s->v0, 32);
    s->v2 += s->v3; s->v3 = kite_rotl64(s->v3, 16); s->v3 ^= s->v2;
    s->v0 += s->v3; s->v3 = kite_rotl64(s->v3, 21); s->v3 ^= s->v0;
    s->v2 += s->v1; s->v1 = kite_rotl64(s->v1, 17); s->v1 ^= s->v2; s->v2 = kite_rotl64(s->v2, 32);
}

static inline void kite_sip_init(struct kite_sip* s, const uint8_t key[16]) {
    uint64_t k0 = kite_load64(key), k1 = kite_load64(key + 8);
    s->v0 = k0 ^ 0x736f6d6570736575ull;
    s->v1 = k1 ^ 0x646f72616e646f6dull;
    s->v2 = k0 ^ 0x6c7967656e657261ull;
    s->v3 = k1 ^ 0x7465646279746573ull;
}

static inline void kite_sip_word(struct kite_sip* s, uint64_t m) {
    s->v3 ^= m;
    kite_sip_round(s);
    kite_sip_round(s);
    s->v0 ^= m;
}

/* Absorbs whole 8-byte words of msg; returns how many bytes were consumed (len rounded down to 8). */
static inline uint64_t kite_sip_words(struct kite_sip* s, const uint8_t* msg, uint64_t len) {
    uint64_t whole = len & ~(uint64_t)7;
    for (uint64_t i = 0; i < whole; i += 8) kite_sip_word(s, kite_load64(msg + i));
    return whole;
}

/* Finishes with the 0..7 tail bytes and the total message length. */
static inline uint64_t kite_sip_final(struct kite_sip* s, const uint8_t* tail, uint64_t tail_len, uint64_t total) {
    uint64_t b = total << 56;
    for (uint64_t i = 0; i < tail_len; ++i) b |= (uint64_t)tail[i] << (8 * i);
    kite_sip_word(s, b);
    s->v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) kite_sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static inline uint64_t kite_siphash24(const uint8_t key[16], const uint8_t* msg, uint64_t len) {
    struct kite_sip s;
    kite_sip_init(&s, key);
    uint64_t done = kite_sip_words(&s, msg, len);
    return kite_sip_final(&s, msg + done, len - done, len);
}

/* The MAC of a record: over its first 24 bytes and its ciphertext (see helper_abi.h). */
static inline uint64_t kite_record_mac(const uint8_t mac_key[16], const struct kite_mirror_record* r) {
    struct kite_sip s;
    kite_sip_init(&s, mac_key);
    kite_sip_word(&s, r->ram_offset);
    kite_sip_word(&s, r->nonce);
    kite_sip_word(&s, (uint64_t)r->flags | (uint64_t)r->reserved << 32);
    kite_sip_words(&s, r->ciphertext, KITE_MIRROR_PAGE_SIZE);
    return kite_sip_final(&s, 0, 0, KITE_MIRROR_MAC_HEADER_SIZE + KITE_MIRROR_PAGE_SIZE);
}

#endif /* KITE_VMM_MIRROR_SEAL_CORE_H */
