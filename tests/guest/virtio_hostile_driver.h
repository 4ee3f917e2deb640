// A minimal ring-0 virtio-mmio driver for the hostile-guest test (virtio_hostile.c): register access of
// any width, the status and feature steps, one split virtqueue per device in fixed guest RAM, polling of
// the used ring (interrupts stay off). Every helper is short: ring-0 code runs slowly in the sandbox.
#pragma once

#include <stdint.h>

#include "guest_io.h"

#define MMIO_BASE 0xd0000000ull  // kVirtioMmioBase (vmm/arch/x86_64/layout.h)
#define MMIO_STRIDE 0x1000ull

// Register offsets (VIRTIO 1.2, 4.2.2).
enum {
    R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_VENDOR = 0x00c,
    R_DEV_FEATURES = 0x010, R_DEV_FEATURES_SEL = 0x014, R_DRV_FEATURES = 0x020, R_DRV_FEATURES_SEL = 0x024,
    R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
    R_QUEUE_NOTIFY = 0x050, R_INT_STATUS = 0x060, R_INT_ACK = 0x064, R_STATUS = 0x070,
    R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_AVAIL_LO = 0x090, R_AVAIL_HI = 0x094,
    R_USED_LO = 0x0a0, R_USED_HI = 0x0a4, R_CONFIG = 0x100,
};

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 0x40, S_FAILED = 0x80 };
#define F_INDIRECT (1ull << 28)
#define F_VERSION_1 (1ull << 32)

enum { D_NEXT = 1, D_WRITE = 2, D_INDIRECT = 4 };

static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void cpu_pause(void) { __asm__ volatile("pause"); }
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return lo | (uint64_t)hi << 32;
}

// The PVH entry maps only the first GiB; the transports sit at 3.25 GiB. These tables map [0, 1 GiB)
// as RAM and [3 GiB, 4 GiB) uncached, with 2 MiB pages.
static uint64_t pt_pml4[512] __attribute__((aligned(4096)));
static uint64_t pt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t pt_pd_low[512] __attribute__((aligned(4096)));
static uint64_t pt_pd_hole[512] __attribute__((aligned(4096)));

static void map_mmio_hole(void) {
    for (int i = 0; i < 512; ++i) {
        pt_pml4[i] = pt_pdpt[i] = 0;
        pt_pd_low[i] = ((uint64_t)i << 21) | 0x83;                           // present, writable, 2 MiB
        pt_pd_hole[i] = (0xc0000000ull + ((uint64_t)i << 21)) | 0x83 | 0x18;  // + PWT, PCD
    }
    pt_pml4[0] = (uint64_t)pt_pdpt | 3;
    pt_pdpt[0] = (uint64_t)pt_pd_low | 3;
    pt_pdpt[3] = (uint64_t)pt_pd_hole | 3;
    __asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)pt_pml4) : "memory");
}

// Register access of a given width at transport `dev`.
static inline uint64_t reg_addr(int dev, uint64_t off) { return MMIO_BASE + (uint64_t)dev * MMIO_STRIDE + off; }
static inline uint32_t rd(int dev, uint64_t off) { return *(volatile uint32_t*)reg_addr(dev, off); }
static inline void wr(int dev, uint64_t off, uint32_t v) { *(volatile uint32_t*)reg_addr(dev, off) = v; }
static inline void wr_width(int dev, uint64_t off, int width, uint64_t v) {
    uint64_t a = reg_addr(dev, off);
    if (width == 1) *(volatile uint8_t*)a = (uint8_t)v;
    else if (width == 2) *(volatile uint16_t*)a = (uint16_t)v;
    else if (width == 4) *(volatile uint32_t*)a = (uint32_t)v;
    else *(volatile uint64_t*)a = v;
}
static inline uint64_t rd_width(int dev, uint64_t off, int width) {
    uint64_t a = reg_addr(dev, off);
    if (width == 1) return *(volatile uint8_t*)a;
    if (width == 2) return *(volatile uint16_t*)a;
    if (width == 4) return *(volatile uint32_t*)a;
    return *(volatile uint64_t*)a;
}

// Waits about `ticks` TSC ticks.
static void delay(uint64_t ticks) {
    uint64_t end = rdtsc() + ticks;
    while (rdtsc() < end) cpu_pause();
}

// ACKNOWLEDGE, DRIVER, the features, FEATURES_OK. Returns the status read back.
static uint32_t negotiate(int dev, uint64_t features) {
    wr(dev, R_STATUS, 0);
    wr(dev, R_STATUS, S_ACK);
    wr(dev, R_STATUS, S_ACK | S_DRIVER);
    wr(dev, R_DRV_FEATURES_SEL, 0);
    wr(dev, R_DRV_FEATURES, (uint32_t)features);
    wr(dev, R_DRV_FEATURES_SEL, 1);
    wr(dev, R_DRV_FEATURES, (uint32_t)(features >> 32));
    wr(dev, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    return rd(dev, R_STATUS);
}

static void driver_ok(int dev) { wr(dev, R_STATUS, rd(dev, R_STATUS) | S_DRIVER_OK); }

// One split virtqueue in guest RAM at `area`: descriptor table at +0, avail ring at +0x1000, used ring
// at +0x2000, data buffers from +0x3000, indirect tables from +0x6000. The driver's own indexes live here.
struct vq {
    int dev;
    uint64_t area;
    uint16_t size;
    uint16_t avail_idx;  // next avail.idx to publish
    uint16_t used_seen;  // used.idx already consumed
};

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

#define VQ_DESC(q) ((volatile struct desc*)((q)->area))
#define VQ_AVAIL_FLAGS(q) ((volatile uint16_t*)((q)->area + 0x1000))
#define VQ_AVAIL_IDX(q) ((volatile uint16_t*)((q)->area + 0x1002))
#define VQ_AVAIL_RING(q) ((volatile uint16_t*)((q)->area + 0x1004))
#define VQ_USED_IDX(q) ((volatile uint16_t*)((q)->area + 0x2002))
#define VQ_USED_RING(q) ((volatile uint32_t*)((q)->area + 0x2004))  // pairs of id, len
#define VQ_BUF(q) ((q)->area + 0x3000)
#define VQ_INDIRECT(q, n) ((volatile struct desc*)((q)->area + 0x6000 + 0x1000 * (n)))
#define VQ_AREA_SIZE 0x8000

static void zero(uint64_t addr, uint64_t len) {
    for (uint64_t i = 0; i < len; i += 8) *(volatile uint64_t*)(addr + i) = 0;
}

// Selects queue `sel` and writes its size and ring addresses, then QueueReady = 1.
static void set_queue_regs(int dev, uint32_t sel, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used) {
    wr(dev, R_QUEUE_SEL, sel);
    wr(dev, R_QUEUE_NUM, size);
    wr(dev, R_DESC_LO, (uint32_t)desc);
    wr(dev, R_DESC_HI, (uint32_t)(desc >> 32));
    wr(dev, R_AVAIL_LO, (uint32_t)avail);
    wr(dev, R_AVAIL_HI, (uint32_t)(avail >> 32));
    wr(dev, R_USED_LO, (uint32_t)used);
    wr(dev, R_USED_HI, (uint32_t)(used >> 32));
    wr(dev, R_QUEUE_READY, 1);
}

// Resets the device, negotiates, sets up queue 0 with zeroed rings and (if go) sets DRIVER_OK.
// Returns the status read back.
static uint32_t vq_start(struct vq* q, int dev, uint64_t area, uint16_t size, uint64_t features, int go) {
    q->dev = dev;
    q->area = area;
    q->size = size;
    q->avail_idx = q->used_seen = 0;
    zero(area, VQ_AREA_SIZE);
    negotiate(dev, features);
    set_queue_regs(dev, 0, size, area, area + 0x1000, area + 0x2000);
    if (go) driver_ok(dev);
    return rd(dev, R_STATUS);
}

// Makes descriptor `head` available (without notifying).
static void vq_publish(struct vq* q, uint16_t head) {
    VQ_AVAIL_RING(q)[q->avail_idx % q->size] = head;
    barrier();
    *VQ_AVAIL_IDX(q) = ++q->avail_idx;
    barrier();
}

static void vq_notify(struct vq* q) { wr(q->dev, R_QUEUE_NOTIFY, 0); }

// Waits up to `ticks` for used.idx to pass q->used_seen. Returns 1 and fills id/len for the next used
// element (consuming it), or 0 on timeout.
static int vq_wait_used(struct vq* q, uint64_t ticks, uint32_t* id, uint32_t* len) {
    uint64_t end = rdtsc() + ticks;
    while (*VQ_USED_IDX(q) == q->used_seen) {
        if (rdtsc() > end) return 0;
        cpu_pause();
    }
    barrier();
    uint16_t slot = q->used_seen % q->size;
    *id = VQ_USED_RING(q)[2 * slot];
    *len = VQ_USED_RING(q)[2 * slot + 1];
    ++q->used_seen;
    return 1;
}

// Polls the status register until `bit` is set, for up to `ticks`. Returns the last status read.
static inline uint32_t wait_status_bit(int dev, uint32_t bit, uint64_t ticks) {
    uint64_t end = rdtsc() + ticks;
    uint32_t s = rd(dev, R_STATUS);
    while (!(s & bit) && rdtsc() < end) {
        delay(1000000);
        s = rd(dev, R_STATUS);
    }
    return s;
}
