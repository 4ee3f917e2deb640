#include "vmm/arch/x86_64/vcpu_setup.h"

#include <cstring>

namespace kite {

namespace {

constexpr uint32_t kMsrIa32Tsc = 0x10;
constexpr uint32_t kMsrIa32SysenterCs = 0x174;
constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
constexpr uint32_t kMsrIa32SysenterEip = 0x176;
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnable = 1u << 11;
constexpr uint64_t kMtrrTypeWriteBack = 6;

// LAPIC register offsets and delivery modes (Intel SDM vol. 3, 10.5.1).
constexpr size_t kApicLvt0 = 0x350;
constexpr size_t kApicLvt1 = 0x360;
constexpr uint32_t kApicDeliveryExtInt = 0x7 << 8;
constexpr uint32_t kApicDeliveryNmi = 0x4 << 8;

uint32_t get_apic_reg(const kvm_lapic_state& l, size_t off) {
    uint32_t v;
    std::memcpy(&v, l.regs + off, sizeof v);
    return v;
}
void set_apic_reg(kvm_lapic_state& l, size_t off, uint32_t v) { std::memcpy(l.regs + off, &v, sizeof v); }

kvm_segment to_kvm(const boot::BootState::Segment& s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.unusable = s.present ? 0 : 1;
    return k;
}

}  // namespace

Result<void> setup_vcpu_common(const VcpuFd& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid) {
    if (auto r = vcpu.set_cpuid(cpuid); !r) return r;

    std::vector<kvm_msr_entry> msrs;
    auto add = [&](uint32_t index, uint64_t value) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = value;
        msrs.push_back(e);
    };
    add(kMsrIa32SysenterCs, 0);
    add(kMsrIa32SysenterEsp, 0);
    add(kMsrIa32SysenterEip, 0);
    add(kMsrStar, 0);
    add(kMsrCstar, 0);
    add(kMsrKernelGsBase, 0);
    add(kMsrSyscallMask, 0);
    add(kMsrLstar, 0);
    add(kMsrIa32Tsc, 0);
    add(kMsrIa32MiscEnable, kMiscEnableFastString);
    add(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack);
    auto n = vcpu.set_msrs(msrs);
    if (!n) return std::unexpected(n.error());
    if (*n != msrs.size())
        return fail("KVM_SET_MSRS: KVM refused MSR " + std::to_string(msrs[*n].index));

    kvm_fpu fpu{};
    fpu.fcw = 0x37f;  // x87 default control word: all exceptions masked, 64-bit precision
    fpu.mxcsr = 0x1f80;  // SSE default: all exceptions masked
    if (auto r = vcpu.set_fpu(fpu); !r) return r;

    // LINT0 delivers the legacy PIC's ExtINT, LINT1 is NMI: what firmware leaves for Linux.
    kvm_lapic_state lapic{};
    if (auto r = vcpu.get_lapic(lapic); !r) return r;
    set_apic_reg(lapic, kApicLvt0, (get_apic_reg(lapic, kApicLvt0) & ~0x700u) | kApicDeliveryExtInt);
    set_apic_reg(lapic, kApicLvt1, (get_apic_reg(lapic, kApicLvt1) & ~0x700u) | kApicDeliveryNmi);
    return vcpu.set_lapic(lapic);
}

Result<void> setup_boot_vcpu(const VcpuFd& vcpu, const boot::BootState& state) {
    kvm_sregs sregs{};
    if (auto r = vcpu.get_sregs(sregs); !r) return r;
    sregs.cs = to_kvm(state.cs);
    sregs.ds = to_kvm(state.ds);
    sregs.es = to_kvm(state.es);
    sregs.fs = to_kvm(state.fs);
    sregs.gs = to_kvm(state.gs);
    sregs.ss = to_kvm(state.ss);
    sregs.tr = to_kvm(state.tr);
    sregs.ldt = to_kvm(state.ldt);
    sregs.gdt.base = state.gdt_base;
    sregs.gdt.limit = state.gdt_limit;
    sregs.idt.base = state.idt_base;
    sregs.idt.limit = state.idt_limit;
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
    if (auto r = vcpu.set_sregs(sregs); !r) return r;

    kvm_regs regs{};
    regs.rflags = 0x2;  // bit 1 is reserved-set; interrupts off
    regs.rip = state.rip;
    regs.rsp = state.rsp;
    regs.rbp = state.rsp;
    regs.rsi = state.rsi;
    regs.rbx = state.rbx;
    return vcpu.set_regs(regs);
}

}  // namespace kite
