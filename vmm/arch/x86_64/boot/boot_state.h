// The vCPU state a loader hands to the VMM core, as plain data (no KVM structs): the core copies it into
// kvm_regs / kvm_sregs. Segment limits are byte limits, as kvm_segment carries them (0xffffffff for a
// flat 4 GiB segment with g = 1).
#pragma once

#include <cstdint>

#include "memory/address.h"

namespace kite::boot {

struct BootState {
    enum Mode { Long64, Pvh32 } mode = Long64;
    uint64_t rip = 0, rsp = 0, rsi = 0, rbx = 0;
    uint64_t rflags = 0x2;  // bit 1 is reserved-one; IF clear: interrupts off at entry
    uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
    struct Segment {
        uint64_t base = 0;
        uint32_t limit = 0;
        uint16_t selector = 0;
        uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0;
    };
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    uint64_t gdt_base = 0;
    uint16_t gdt_limit = 0;
    uint64_t idt_base = 0;
    uint16_t idt_limit = 0;
    GuestAddress kernel_load, initrd_load;  // initrd_load is 0 when there is no initrd
    uint64_t initrd_size = 0;
    GuestAddress cmdline_addr;
};

}  // namespace kite::boot
