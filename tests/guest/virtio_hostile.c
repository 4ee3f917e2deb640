// Hostile-guest test: a ring-0 guest that abuses Kite's virtio-mmio transports and queues, then checks
// that Kite survived, flagged DEVICE_NEEDS_RESET where the spec calls for it, and kept serving the other
// device. Needs two virtio-rng devices as transports 0 and 1 (`--rng --rng`); further transports (a
// disk, say) only get the garbage register writes. Guest RAM must be 64 MiB (`--memory 64M`).
//
// Transport 0 ("A") takes the abuse; transport 1 ("B") is the bystander that must keep working.
// Each check prints "GUEST: PASS <name>" or "GUEST: FAIL <name> (check N) <detail>" on the serial port;
// the debug-exit port gets 0 if all passed, else the number N of the first failed check.
#include "guest_report.h"
#include "virtio_hostile_driver.h"

// Written by pvh_entry.S before it calls guest_main.
uint64_t entry_cr0, entry_efer, entry_rflags, entry_cs, entry_info;

#define DEV_A 0
#define DEV_B 1
#define AREA_A 0x800000ull  // 8 MiB: A's rings and buffers
#define AREA_B 0x900000ull  // 9 MiB: B's
#define RAM_END (64ull << 20)
#define NOT_RAM 0x80000000ull  // 2 GiB: below the MMIO hole, above RAM
#define VIRTIO_MAGIC 0x74726976u
#define ID_RNG 4

// TSC ticks: long enough for Kite's VMM thread under nested TCG, only ever waited out on a failure.
#define WAIT_DONE 8000000000ull
// How long a request that must NOT be served is given to show up anyway.
#define WAIT_QUIET 600000000ull

static void set_desc(volatile struct desc* d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    d->addr = addr;
    d->len = len;
    d->flags = flags;
    d->next = next;
}

// A real entropy request of n bytes (descriptor 0): it must complete with n bytes, not all zero.
static void rng_request(struct vq* q, uint32_t n, const char* name) {
    volatile uint8_t* buf = (volatile uint8_t*)VQ_BUF(q);
    for (uint32_t i = 0; i < n; ++i) buf[i] = 0;
    set_desc(&VQ_DESC(q)[0], VQ_BUF(q), n, D_WRITE, 0);
    vq_publish(q, 0);
    vq_notify(q);
    uint32_t id = 0, len = 0;
    int done = vq_wait_used(q, WAIT_DONE, &id, &len);
    uint8_t any = 0;
    for (uint32_t i = 0; i < n; ++i) any |= buf[i];
    report(done && id == 0 && len == n && any, name, done ? ((uint64_t)id << 32 | len) : 0xdead0000ull);
}

// Submits the chain already written from descriptor 0 and expects it back unused (length 0) with the
// device still healthy: a bad request is an error of that request, not of the device.
static void expect_refused(struct vq* q, const char* name) {
    vq_publish(q, 0);
    vq_notify(q);
    uint32_t id = 0, len = 0xffffffff;
    int done = vq_wait_used(q, WAIT_DONE, &id, &len);
    uint32_t status = rd(q->dev, R_STATUS);
    int ok = done && id == 0 && len == 0 && !(status & S_NEEDS_RESET);
    report(ok, name, done ? ((uint64_t)status << 32 | len) : 0xdead0000ull | status);
}

// Writes garbage of every width to every register, to reserved offsets, to config space and across the
// end of the window, resets the device and checks that the transport still identifies itself and holds
// nothing of the garbage.
static void garbage_registers(int dev) {
    static const uint32_t patterns[] = {0xffffffffu, 0xdeadbeefu, 0x80000001u, 0x00010000u};
    uint32_t id = rd(dev, R_DEVICE_ID);
    wr(dev, R_QUEUE_SEL, 0);
    uint32_t qmax = rd(dev, R_QUEUE_NUM_MAX);
    for (unsigned p = 0; p < sizeof patterns / sizeof patterns[0]; ++p)
        for (uint64_t off = 0; off < R_CONFIG; off += 4) wr(dev, off, patterns[p]);
    for (uint64_t off = 0; off < R_CONFIG; off += 4) {
        wr_width(dev, off + 1, 1, 0xa5);
        wr_width(dev, off + 2, 2, 0x5a5a);
        wr_width(dev, off, 8, ~0ull);
        wr_width(dev, off + 1, 4, 0xffffffffu);
        (void)rd_width(dev, off + 3, 1);
        (void)rd_width(dev, off, 2);
        (void)rd_width(dev, off, 8);
    }
    for (uint64_t off = R_CONFIG; off < 0x1000 - 8; off += 0x7b) {
        for (int w = 1; w <= 8; w *= 2) {
            wr_width(dev, off, w, 0xfedcba9876543210ull);
            (void)rd_width(dev, off, w);
        }
    }
    // Across the end of the window: into the next transport's MagicValue, or into nothing.
    wr_width(dev, 0xffc, 8, ~0ull);
    wr_width(dev, 0xffe, 4, 0xffffffffu);
    (void)rd_width(dev, 0xffc, 8);

    wr(dev, R_STATUS, 0);
    uint32_t magic = rd(dev, R_MAGIC), version = rd(dev, R_VERSION), id_after = rd(dev, R_DEVICE_ID);
    report(magic == VIRTIO_MAGIC && version == 2 && id_after == id, "garbage writes: transport still identifies itself",
           (uint64_t)magic << 32 | id_after);
    uint32_t status = rd(dev, R_STATUS);
    wr(dev, R_QUEUE_SEL, 0);
    uint32_t max_after = rd(dev, R_QUEUE_NUM_MAX), num = rd(dev, R_QUEUE_NUM), ready = rd(dev, R_QUEUE_READY);
    report(status == 0 && max_after == qmax && num == 0 && ready == 0, "garbage writes: reset leaves a clean device",
           (uint64_t)status << 48 | (uint64_t)max_after << 32 | num << 16 | ready);
    wr(dev, R_INT_ACK, 0xffffffffu);
    report(rd(dev, R_INT_STATUS) == 0, "garbage writes: no interrupt pending after ACK", rd(dev, R_INT_STATUS));
}

static void status_rules(void) {
    wr(DEV_A, R_STATUS, 0);
    wr(DEV_A, R_STATUS, S_ACK);
    wr(DEV_A, R_STATUS, S_ACK | S_DRIVER);
    wr(DEV_A, R_STATUS, S_ACK);
    report(rd(DEV_A, R_STATUS) == (S_ACK | S_DRIVER), "status write that clears bits is ignored", rd(DEV_A, R_STATUS));

    uint32_t s = negotiate(DEV_A, F_INDIRECT);
    report(!(s & S_FEATURES_OK), "FEATURES_OK refused without VERSION_1", s);
    s = negotiate(DEV_A, F_VERSION_1 | 1ull | (1ull << 50));
    report(!(s & S_FEATURES_OK), "FEATURES_OK refused for features not offered", s);

    wr(DEV_A, R_STATUS, 0);
    wr(DEV_A, R_STATUS, S_ACK | S_DRIVER);
    wr(DEV_A, R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
    s = rd(DEV_A, R_STATUS);
    report(!(s & S_DRIVER_OK), "DRIVER_OK refused without FEATURES_OK", s);

    wr(DEV_A, R_DEV_FEATURES_SEL, 1);
    uint32_t hi = rd(DEV_A, R_DEV_FEATURES);
    wr(DEV_A, R_DEV_FEATURES_SEL, 2);
    uint32_t sel2 = rd(DEV_A, R_DEV_FEATURES);
    wr(DEV_A, R_DEV_FEATURES_SEL, 0xffffffffu);
    uint32_t sel_max = rd(DEV_A, R_DEV_FEATURES);
    report((hi & 1) && sel2 == 0 && sel_max == 0, "DeviceFeatures: VERSION_1 offered, 0 beyond word 1",
           (uint64_t)hi << 32 | sel2 | sel_max);
    wr(DEV_A, R_STATUS, 0);
}

// Sets up queue 0 with the given size and rings, sets QueueReady and tries DRIVER_OK: the queue must stay
// not ready, the device must report DEVICE_NEEDS_RESET, and DRIVER_OK must not take.
static void expect_queue_refused(uint32_t size, uint64_t desc, uint64_t avail, uint64_t used, const char* name) {
    negotiate(DEV_A, F_VERSION_1);
    set_queue_regs(DEV_A, 0, size, desc, avail, used);
    uint32_t ready = rd(DEV_A, R_QUEUE_READY);
    driver_ok(DEV_A);
    uint32_t s = rd(DEV_A, R_STATUS);
    report(ready == 0 && (s & S_NEEDS_RESET) && !(s & S_DRIVER_OK), name, (uint64_t)ready << 32 | s);
}

static void queue_config_rules(void) {
    const uint64_t d = AREA_A, a = AREA_A + 0x1000, u = AREA_A + 0x2000;
    wr(DEV_A, R_STATUS, 0);
    wr(DEV_A, R_QUEUE_SEL, 0);
    uint32_t qmax = rd(DEV_A, R_QUEUE_NUM_MAX);
    report(qmax >= 8 && qmax <= 32768 && (qmax & (qmax - 1)) == 0, "QueueNumMax a power of two", qmax);

    negotiate(DEV_A, F_VERSION_1);
    set_queue_regs(DEV_A, 0, 8, d, a, u);
    uint32_t ready = rd(DEV_A, R_QUEUE_READY), s = rd(DEV_A, R_STATUS);
    report(ready == 1 && !(s & S_NEEDS_RESET), "queue of 8 in RAM accepted", (uint64_t)ready << 32 | s);
    wr(DEV_A, R_QUEUE_NUM, 3);
    wr(DEV_A, R_DESC_LO, 0xfffffff0u);
    report(rd(DEV_A, R_QUEUE_NUM) == 8 && rd(DEV_A, R_DESC_LO) == (uint32_t)d,
           "queue registers ignored while the queue is ready", rd(DEV_A, R_QUEUE_NUM));

    expect_queue_refused(0, d, a, u, "queue size 0 refused with DEVICE_NEEDS_RESET");
    expect_queue_refused(3, d, a, u, "queue size 3 refused with DEVICE_NEEDS_RESET");
    expect_queue_refused(65535, d, a, u, "queue size 65535 refused with DEVICE_NEEDS_RESET");
    expect_queue_refused(qmax * 2, d, a, u, "queue size above QueueNumMax refused with DEVICE_NEEDS_RESET");
    expect_queue_refused(0x10008, d, a, u, "queue size beyond 16 bits refused with DEVICE_NEEDS_RESET");
    expect_queue_refused(8, NOT_RAM, a, u, "descriptor table outside RAM refused");
    expect_queue_refused(8, d, MMIO_BASE + MMIO_STRIDE, u, "avail ring on the other transport's registers refused");
    expect_queue_refused(8, d, a, RAM_END - 8, "used ring across the end of RAM refused");
    expect_queue_refused(8, 0xfffffffffffff000ull, a, u, "descriptor table at the top of the address space refused");
    expect_queue_refused(8, d + 8, a, u, "misaligned descriptor table refused");
    expect_queue_refused(8, d, d + 64, u, "avail ring overlapping the descriptor table refused");

    // Linux answers with virtio_add_status(FAILED): it writes back what it read, DEVICE_NEEDS_RESET too.
    uint32_t needs_reset = rd(DEV_A, R_STATUS);
    wr(DEV_A, R_STATUS, needs_reset | S_FAILED);
    report(rd(DEV_A, R_STATUS) == (needs_reset | S_FAILED), "FAILED written with DEVICE_NEEDS_RESET read back is taken",
           rd(DEV_A, R_STATUS));
    wr(DEV_A, R_STATUS, 0);
    report(rd(DEV_A, R_STATUS) == 0, "reset clears DEVICE_NEEDS_RESET", rd(DEV_A, R_STATUS));

    negotiate(DEV_A, F_VERSION_1);
    wr(DEV_A, R_QUEUE_SEL, 1);  // virtio-rng has one queue
    uint32_t absent_max = rd(DEV_A, R_QUEUE_NUM_MAX);
    set_queue_regs(DEV_A, 1, 8, d, a, u);
    ready = rd(DEV_A, R_QUEUE_READY);
    s = rd(DEV_A, R_STATUS);
    report(absent_max == 0 && ready == 0 && !(s & S_NEEDS_RESET), "absent queue: QueueNumMax 0, writes ignored",
           (uint64_t)absent_max << 32 | ready << 16 | s);
    wr(DEV_A, R_STATUS, 0);
}

static void notify_before_driver_ok(struct vq* qa) {
    vq_start(qa, DEV_A, AREA_A, 8, F_VERSION_1 | F_INDIRECT, 0);
    set_desc(&VQ_DESC(qa)[0], VQ_BUF(qa), 64, D_WRITE, 0);
    vq_publish(qa, 0);
    vq_notify(qa);
    wr(DEV_A, R_QUEUE_NOTIFY, 7);
    wr(DEV_A, R_QUEUE_NOTIFY, 0xffffffffu);
    delay(WAIT_QUIET);
    report(*VQ_USED_IDX(qa) == 0, "notify before DRIVER_OK: nothing consumed", *VQ_USED_IDX(qa));

    driver_ok(DEV_A);
    vq_notify(qa);
    uint32_t id = 0, len = 0;
    int done = vq_wait_used(qa, WAIT_DONE, &id, &len);
    report(done && id == 0 && len == 64, "notify before DRIVER_OK: request served after DRIVER_OK",
           done ? len : 0xdead0000ull);
}

static void hostile_chains(struct vq* qa) {
    volatile struct desc* t = VQ_DESC(qa);
    volatile struct desc* i0 = VQ_INDIRECT(qa, 0);
    volatile struct desc* i1 = VQ_INDIRECT(qa, 1);
    uint64_t buf = VQ_BUF(qa);

    set_desc(&t[0], buf, 16, D_WRITE | D_NEXT, 1);
    set_desc(&t[1], buf + 16, 16, D_WRITE | D_NEXT, 0);
    expect_refused(qa, "descriptor loop 0 -> 1 -> 0 completes with 0 bytes");
    set_desc(&t[0], buf, 16, D_WRITE | D_NEXT, 0);
    expect_refused(qa, "descriptor pointing at itself completes with 0 bytes");
    set_desc(&t[0], buf, 16, D_WRITE | D_NEXT, 200);
    expect_refused(qa, "next index beyond the queue completes with 0 bytes");
    set_desc(&t[0], NOT_RAM, 64, D_WRITE, 0);
    expect_refused(qa, "buffer outside RAM completes with 0 bytes");
    set_desc(&t[0], MMIO_BASE + MMIO_STRIDE, 64, D_WRITE, 0);
    expect_refused(qa, "buffer on the other transport's registers completes with 0 bytes");
    set_desc(&t[0], RAM_END - 32, 64, D_WRITE, 0);
    expect_refused(qa, "buffer across the end of RAM completes with 0 bytes");
    set_desc(&t[0], buf, 0xffffffffu, D_WRITE, 0);
    expect_refused(qa, "4 GiB buffer completes with 0 bytes");
    set_desc(&t[0], 0xfffffffffffff000ull, 0x2000, D_WRITE, 0);
    expect_refused(qa, "buffer wrapping the address space completes with 0 bytes");
    set_desc(&t[0], 16ull << 20, 32u << 20, D_WRITE | D_NEXT, 1);
    set_desc(&t[1], 16ull << 20, 32u << 20, D_WRITE | D_NEXT, 2);
    set_desc(&t[2], 16ull << 20, 32u << 20, D_WRITE, 0);
    expect_refused(qa, "chain of 96 MiB completes with 0 bytes");

    set_desc(&t[0], (uint64_t)i0, 32, D_INDIRECT, 0);
    set_desc(&i0[0], (uint64_t)i1, 16, D_INDIRECT, 0);
    set_desc(&i1[0], buf, 64, D_WRITE, 0);
    expect_refused(qa, "indirect inside indirect completes with 0 bytes");
    set_desc(&i0[0], buf, 16, D_WRITE | D_NEXT, 1);
    set_desc(&i0[1], buf + 16, 16, D_WRITE | D_NEXT, 0);
    expect_refused(qa, "loop inside an indirect table completes with 0 bytes");
    set_desc(&t[0], (uint64_t)i0, 0, D_INDIRECT, 0);
    expect_refused(qa, "indirect table of length 0 completes with 0 bytes");
    set_desc(&t[0], (uint64_t)i0, 20, D_INDIRECT, 0);
    expect_refused(qa, "indirect table of length 20 completes with 0 bytes");
    set_desc(&t[0], (uint64_t)i0, 0xfffffff0u, D_INDIRECT, 0);
    expect_refused(qa, "indirect table of 4 GiB completes with 0 bytes");
    set_desc(&t[0], NOT_RAM, 32, D_INDIRECT, 0);
    expect_refused(qa, "indirect table outside RAM completes with 0 bytes");
    set_desc(&t[0], (uint64_t)i0, 32, D_INDIRECT | D_NEXT, 1);
    expect_refused(qa, "indirect descriptor with NEXT completes with 0 bytes");
    set_desc(&t[0], buf, 16, D_WRITE | D_NEXT, 1);
    set_desc(&t[1], buf + 16, 16, D_NEXT, 2);
    set_desc(&t[2], buf + 32, 16, D_WRITE, 0);
    expect_refused(qa, "readable buffer after a writable one completes with 0 bytes");

    // The transport's queue registers are frozen once the device runs.
    wr(DEV_A, R_QUEUE_READY, 0);
    wr(DEV_A, R_QUEUE_NUM, 3);
    report(rd(DEV_A, R_QUEUE_READY) == 1 && rd(DEV_A, R_QUEUE_NUM) == 8, "queue registers ignored after DRIVER_OK",
           rd(DEV_A, R_QUEUE_NUM));
    rng_request(qa, 64, "A: entropy after the hostile chains");
}

// A queue made unusable by the driver: the device must flag DEVICE_NEEDS_RESET with a configuration
// change interrupt (spec 2.1.2), and come back after a reset.
static void broken_queue(struct vq* qa) {
    vq_publish(qa, 0x8000);  // head index beyond the queue
    vq_notify(qa);
    uint32_t s = wait_status_bit(DEV_A, S_NEEDS_RESET, WAIT_DONE);
    report(s & S_NEEDS_RESET, "avail head beyond the queue sets DEVICE_NEEDS_RESET", s);
    uint32_t isr = rd(DEV_A, R_INT_STATUS);
    report(isr & 2, "DEVICE_NEEDS_RESET raises a configuration change interrupt", isr);
    wr(DEV_A, R_INT_ACK, isr);
    report(!(rd(DEV_A, R_INT_STATUS) & 2), "InterruptACK clears the configuration change bit", rd(DEV_A, R_INT_STATUS));

    wr(DEV_A, R_STATUS, 0);
    report(rd(DEV_A, R_STATUS) == 0, "reset after DEVICE_NEEDS_RESET reads 0", rd(DEV_A, R_STATUS));
    vq_start(qa, DEV_A, AREA_A, 8, F_VERSION_1 | F_INDIRECT, 1);
    rng_request(qa, 64, "A: entropy again after the reset");

    *VQ_AVAIL_IDX(qa) = (uint16_t)(qa->avail_idx + 100);  // a hundred buffers in a queue of 8
    barrier();
    vq_notify(qa);
    s = wait_status_bit(DEV_A, S_NEEDS_RESET, WAIT_DONE);
    report(s & S_NEEDS_RESET, "avail.idx far ahead sets DEVICE_NEEDS_RESET", s);
    wr(DEV_A, R_STATUS, 0);
}

// A buffer over A's own avail ring: the device scribbles random bytes over the ring it reads next. The
// outcome is up to the device (more random requests, or DEVICE_NEEDS_RESET); B must be served meanwhile.
static void self_overwrite(struct vq* qa, struct vq* qb) {
    vq_start(qa, DEV_A, AREA_A, 8, F_VERSION_1 | F_INDIRECT, 1);
    set_desc(&VQ_DESC(qa)[0], qa->area + 0x1000, 64, D_WRITE, 0);
    vq_publish(qa, 0);
    vq_notify(qa);
    delay(WAIT_QUIET);
    rng_request(qb, 32, "B: entropy while A's queue overwrites itself");
    wr(DEV_A, R_STATUS, 0);
    report(rd(DEV_A, R_STATUS) == 0 && rd(DEV_A, R_MAGIC) == VIRTIO_MAGIC, "A: resets after overwriting its ring",
           rd(DEV_A, R_STATUS));
}

static void finish(void) {
    finish_checks();
    for (;;) __asm__ volatile("cli; hlt");
}

void guest_main(int pvh) {
    (void)pvh;
    check_no = first_failed = 0;
    map_mmio_hole();
    put("GUEST: virtio hostile guest started\n");

    int ndev = 0;
    while (ndev < 16 && rd(ndev, R_MAGIC) == VIRTIO_MAGIC) ++ndev;
    int ids_ok = ndev >= 2 && rd(DEV_A, R_DEVICE_ID) == ID_RNG && rd(DEV_B, R_DEVICE_ID) == ID_RNG &&
                 rd(DEV_A, R_VERSION) == 2 && rd(DEV_B, R_VERSION) == 2;
    report(ids_ok, "two virtio-mmio v2 rng transports at 0xd0000000", (uint64_t)ndev);
    if (!ids_ok) finish();

    struct vq qa, qb;
    uint32_t sb = vq_start(&qb, DEV_B, AREA_B, 8, F_VERSION_1, 1);
    report(sb == (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK), "B: driver ready", sb);
    rng_request(&qb, 64, "B: entropy before the abuse");
    uint64_t end = rdtsc() + WAIT_DONE;
    while (!(rd(DEV_B, R_INT_STATUS) & 1) && rdtsc() < end) delay(1000000);
    report(rd(DEV_B, R_INT_STATUS) & 1, "B: used buffer interrupt status", rd(DEV_B, R_INT_STATUS));
    wr(DEV_B, R_INT_ACK, 1);

    garbage_registers(DEV_A);
    for (int dev = 2; dev < ndev; ++dev) garbage_registers(dev);
    status_rules();
    queue_config_rules();
    notify_before_driver_ok(&qa);
    hostile_chains(&qa);
    broken_queue(&qa);
    self_overwrite(&qa, &qb);

    rng_request(&qb, 64, "B: entropy after the abuse");
    uint32_t sb_after = rd(DEV_B, R_STATUS);
    report(sb_after == sb, "B: status untouched", sb_after);
    wr(DEV_B, R_STATUS, 0);
    finish();
}
