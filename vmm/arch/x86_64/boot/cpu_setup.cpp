#include "vmm/arch/x86_64/boot/cpu_setup.h"

#include <array>

#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

namespace {

constexpr uint8_t kTypeCodeExecReadAccessed = 0xb;
constexpr uint8_t kTypeDataReadWriteAccessed = 0x3;
constexpr uint8_t kTypeBusyTss = 0xb;
constexpr uint8_t kTypeLdt = 0x2;
constexpr size_t kGdtEntries = 4;
constexpr size_t kIdtBytes = 16;  // one (empty) 64-bit gate

BootState::Segment flat(uint16_t selector, uint8_t type, uint8_t db, uint8_t l) {
    return BootState::Segment{
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type, .present = 1, .dpl = 0,
        .db = db, .s = 1, .l = l, .g = 1};
}

}  // namespace

uint64_t gdt_descriptor(const BootState::Segment& seg) {
    uint64_t limit = seg.g ? seg.limit >> 12 : seg.limit;  // the 20-bit field
    uint64_t access = uint64_t{seg.present} << 7 | uint64_t{seg.dpl & 3u} << 5 | uint64_t{seg.s} << 4 | (seg.type & 0xfu);
    uint64_t flags = uint64_t{seg.g} << 3 | uint64_t{seg.db} << 2 | uint64_t{seg.l} << 1;
    return (limit & 0xffff) | (seg.base & 0xffffff) << 16 | access << 40 | ((limit >> 16) & 0xf) << 48 |
           flags << 52 | ((seg.base >> 24) & 0xff) << 56;
}

BootState initial_cpu_state(BootState::Mode mode) {
    BootState s;
    s.mode = mode;
    bool long_mode = mode == BootState::Long64;
    // 64-bit code has L=1 and D=0; 32-bit code has D=1.
    s.cs = long_mode ? flat(kBootCsSelector, kTypeCodeExecReadAccessed, 0, 1)
                     : flat(kBootCsSelector, kTypeCodeExecReadAccessed, 1, 0);
    s.ds = flat(kBootDsSelector, kTypeDataReadWriteAccessed, 1, 0);
    s.es = s.fs = s.gs = s.ss = s.ds;
    // TR and LDTR are not in our GDT (the IDT follows it at 0x520): VM entry needs a usable busy TSS in
    // the hidden part only, and Linux loads its own TR and LDTR before it could ever reload these.
    s.tr = BootState::Segment{.base = 0, .limit = 0x67, .selector = 0, .type = kTypeBusyTss, .present = 1};
    s.ldt = BootState::Segment{.base = 0, .limit = 0xffff, .selector = 0, .type = kTypeLdt, .present = 0};
    s.gdt_base = kGdtAddr;
    s.gdt_limit = kGdtEntries * 8 - 1;
    s.idt_base = kIdtAddr;
    s.idt_limit = kIdtBytes - 1;
    s.rsp = kBootStackTop;
    if (long_mode) {
        s.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
        s.cr3 = kPml4Addr;
        s.cr4 = kCr4Pae;
        s.efer = kEferLme | kEferLma;
    } else {
        s.cr0 = kCr0Pe | kCr0Et;  // PVH: protected mode, paging off, CR4 and EFER clear
    }
    return s;
}

Result<void> write_descriptor_tables(GuestMemory& mem, const BootState& state) {
    std::array<uint64_t, kGdtEntries> gdt{};
    gdt[state.cs.selector / 8] = gdt_descriptor(state.cs);
    gdt[state.ds.selector / 8] = gdt_descriptor(state.ds);
    std::array<std::byte, kIdtBytes> idt{};
    auto ok = mem.write(GuestAddress(kGdtAddr), std::as_bytes(std::span(gdt)));
    if (ok) ok = mem.write(GuestAddress(kIdtAddr), idt);
    if (!ok) return fail("writing the GDT/IDT: " + ok.error().message);
    return {};
}

Result<void> write_identity_page_tables(GuestMemory& mem) {
    constexpr size_t kEntries = 512;
    constexpr uint64_t kTableFlags = kPtePresent | kPteWritable;
    std::array<uint64_t, kEntries> pml4{}, pdpt{}, pd{};
    pml4[0] = kPdptAddr | kTableFlags;
    auto ok = mem.write(GuestAddress(kPml4Addr), std::as_bytes(std::span(pml4)));
    for (uint64_t i = 0; i < 4; ++i) pdpt[i] = (kPdAddr + i * 0x1000) | kTableFlags;
    if (ok) ok = mem.write(GuestAddress(kPdptAddr), std::as_bytes(std::span(pdpt)));
    for (uint64_t dir = 0; ok && dir < 4; ++dir) {
        for (uint64_t i = 0; i < kEntries; ++i) pd[i] = ((dir * kEntries + i) << 21) | kTableFlags | kPteHuge;
        ok = mem.write(GuestAddress(kPdAddr + dir * 0x1000), std::as_bytes(std::span(pd)));
    }
    if (!ok) return fail("writing the boot page tables: " + ok.error().message);
    return {};
}

}  // namespace kite::boot
