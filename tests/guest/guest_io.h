// Serial output, port I/O and command-line parsing shared by the freestanding test guests.
// Everything is static inline: each guest uses what it needs and -Wall stays quiet about the rest.
#pragma once
#include <stdint.h>

#define SERIAL_PORT 0x3f8
#define DEBUG_EXIT_PORT 0x501  // Kite's debug-exit port: the byte written becomes Kite's exit status

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void put(const char* s) {
    while (*s) outb(SERIAL_PORT, (uint8_t)*s++);
}

// Sixteen lower-case hex digits, no prefix.
static inline void put_hex_digits(uint64_t v) {
    char buf[17];
    for (int i = 0; i < 16; ++i) buf[i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
    buf[16] = 0;
    put(buf);
}

static inline void put_hex(uint64_t v) {
    put("0x");
    put_hex_digits(v);
}

static inline void put_dec(uint64_t v) {
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do buf[--i] = (char)('0' + v % 10), v /= 10;
    while (v);
    put(buf + i);
}

// The command line value of "key=" as a decimal number; -1 if the key is missing or not a number.
static inline int64_t cmdline_number(const char* cmdline, const char* key) {
    for (const char* p = cmdline; *p; ++p) {
        if (p != cmdline && p[-1] != ' ') continue;
        const char* k = key;
        const char* q = p;
        while (*k && *q == *k) ++k, ++q;
        if (*k || *q != '=' || q[1] < '0' || q[1] > '9') continue;
        int64_t n = 0;
        for (++q; *q >= '0' && *q <= '9'; ++q) n = n * 10 + (*q - '0');
        return n;
    }
    return -1;
}
