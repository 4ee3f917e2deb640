// Interrupt guest: a ring-0 guest that programs Kite's I/O APIC (devices/legacy/ioapic.h) and takes real
// interrupts through it, from the serial port (pin 4, Kite's own device) and from a virtio-rng transport
// (pin 5). Run with `--rng` and 64 MiB of RAM.
//
// Checks: the version register; entries start masked; an unmasked entry delivers its vector to the
// destination it names (physical and logical); a masked entry delivers nothing, and the edge it dropped
// does not come back at unmask; a used-buffer interrupt of the virtio device arrives on its pin.
// Each check prints "GUEST: PASS <name>" or "GUEST: FAIL <name> (check N) <detail>"; the debug-exit port
// gets 0 if all passed, else the number of the first failed check.
#include "guest_report.h"
#include "virtio_hostile_driver.h"

// Written by pvh_entry.S before it calls guest_main.
uint64_t entry_cr0, entry_efer, entry_rflags, entry_cs, entry_info;

#define IOAPIC 0xfec00000ull
#define LAPIC 0xfee00000ull
#define COM1_IRQ 4
#define RNG_IRQ 5        // the first virtio-mmio transport's pin (vmm/arch/x86_64/layout.h)
#define WAIT_IRQ 4000000000ull   // TSC ticks: long enough under nested TCG, only waited out on a failure
#define WAIT_QUIET 400000000ull  // how long an interrupt that must not come is given to show up

static uint32_t ioapic_read(uint32_t reg) {
    *(volatile uint32_t*)IOAPIC = reg;
    return *(volatile uint32_t*)(IOAPIC + 0x10);
}
static void ioapic_write(uint32_t reg, uint32_t value) {
    *(volatile uint32_t*)IOAPIC = reg;
    *(volatile uint32_t*)(IOAPIC + 0x10) = value;
}
static void set_entry(int pin, uint32_t low, uint32_t high) {
    ioapic_write(0x11 + 2 * pin, high);
    ioapic_write(0x10 + 2 * pin, low);
}
static void lapic_write(uint32_t reg, uint32_t value) { *(volatile uint32_t*)(LAPIC + reg) = value; }

// ---- interrupts ----

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t ist, type;
    uint16_t offset_mid;
    uint32_t offset_high, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static volatile uint32_t hits[256];

struct interrupt_frame;
#define HANDLER(vec)                                                                   \
    __attribute__((interrupt)) static void handler_##vec(struct interrupt_frame* f) { \
        (void)f;                                                                       \
        ++hits[vec];                                                                   \
        lapic_write(0xb0, 0); /* EOI */                                                \
    }
HANDLER(0x40)
HANDLER(0x41)
HANDLER(0x42)

static void set_gate(int vec, void (*fn)(struct interrupt_frame*)) {
    uint64_t a = (uint64_t)fn;
    idt[vec] = (struct idt_gate){(uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
}

static void setup_interrupts(void) {
    set_gate(0x40, handler_0x40);
    set_gate(0x41, handler_0x41);
    set_gate(0x42, handler_0x42);
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" : : "m"(desc));
    lapic_write(0xf0, 0x1ff);       // spurious vector register: APIC on, vector 0xff
    lapic_write(0x80, 0);           // task priority: accept everything
    lapic_write(0xe0, 0xffffffff);  // destination format: flat
    lapic_write(0xd0, 0x01000000);  // logical ID 1
}

// Waits up to `ticks` with interrupts on until hits[vec] reaches `want`; returns hits[vec].
static uint32_t wait_hits(int vec, uint32_t want, uint64_t ticks) {
    uint64_t end = rdtsc() + ticks;
    __asm__ volatile("sti" ::: "memory");
    while (hits[vec] < want && rdtsc() < end) cpu_pause();
    __asm__ volatile("cli" ::: "memory");
    return hits[vec];
}

// One THR-empty interrupt from the serial port: enabling ETBEI while THR is empty raises it (one edge).
// IIR is read and ETBEI cleared again before anything is printed.
static void serial_pulse(void) { outb(SERIAL_PORT + 1, 0x02); }
static void serial_quiet(void) {
    (void)inb(SERIAL_PORT + 2);
    outb(SERIAL_PORT + 1, 0x00);
}

static void serial_checks(void) {
    report(ioapic_read(0x01) == 0x00170011, "version: 0x11 with 24 entries", ioapic_read(0x01));
    report(ioapic_read(0x10 + 2 * COM1_IRQ) == 0x00010000, "entries start masked", ioapic_read(0x10 + 2 * COM1_IRQ));

    set_entry(COM1_IRQ, 0x40, 0x00000000);  // physical destination APIC 0, fixed, vector 0x40
    serial_pulse();
    uint32_t n = wait_hits(0x40, 1, WAIT_IRQ);
    serial_quiet();
    report(n == 1, "serial interrupt arrives on its vector (physical destination)", n);

    set_entry(COM1_IRQ, 0x10040, 0);  // masked
    serial_pulse();
    n = wait_hits(0x40, 2, WAIT_QUIET);
    serial_quiet();
    report(n == 1, "a masked pin delivers nothing", n);

    set_entry(COM1_IRQ, 0x41, 0);  // unmasked, another vector: the dropped edge stays dropped
    n = wait_hits(0x41, 1, WAIT_QUIET);
    report(n == 0 && hits[0x40] == 1, "the edge dropped while masked is not delivered at unmask", n);
    serial_pulse();
    n = wait_hits(0x41, 1, WAIT_IRQ);
    serial_quiet();
    report(n == 1 && hits[0x40] == 1, "a reprogrammed vector takes effect", n);

    set_entry(COM1_IRQ, 0x842, 0x01000000);  // logical destination 1 (this CPU), vector 0x42
    serial_pulse();
    n = wait_hits(0x42, 1, WAIT_IRQ);
    serial_quiet();
    report(n == 1, "logical destination", n);

    set_entry(COM1_IRQ, 0x842, 0x02000000);  // logical destination 2: no CPU has it
    serial_pulse();
    n = wait_hits(0x42, 2, WAIT_QUIET);
    serial_quiet();
    report(n == 1, "a destination no CPU matches receives nothing", n);
    set_entry(COM1_IRQ, 0x10000, 0);
}

// A virtio-rng request completed by Kite raises the used-buffer interrupt on the transport's pin.
static void virtio_checks(void) {
    static struct vq q;
    set_entry(RNG_IRQ, 0x41, 0);
    uint32_t status = vq_start(&q, 0, 0x800000, 8, F_VERSION_1, 1);
    report(!(status & S_FAILED) && (status & S_DRIVER_OK), "virtio-rng ready", status);
    const uint32_t before = hits[0x41];
    volatile struct desc* d = &VQ_DESC(&q)[0];
    d->addr = VQ_BUF(&q);
    d->len = 16;
    d->flags = D_WRITE;
    d->next = 0;
    vq_publish(&q, 0);
    vq_notify(&q);
    uint32_t n = wait_hits(0x41, before + 1, WAIT_IRQ);
    report(n == before + 1, "virtio used-buffer interrupt arrives on its pin", n - before);
    uint32_t id = 0, len = 0;
    report(vq_wait_used(&q, WAIT_IRQ, &id, &len) && id == 0 && len == 16, "the request completed", len);
    uint32_t isr = rd(0, R_INT_STATUS);
    report(isr & 1, "InterruptStatus says used buffer", isr);
    wr(0, R_INT_ACK, isr);
}

void guest_main(int pvh) {
    (void)pvh;
    map_mmio_hole();
    setup_interrupts();
    serial_checks();
    virtio_checks();
    finish_checks();
}
