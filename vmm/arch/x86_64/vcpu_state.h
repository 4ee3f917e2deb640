// One x86_64 vCPU's KVM-held state as plain data: what vm_state.h captures and restores and what a
// snapshot stores (vmm/snapshot/snapshot.h). A second architecture has its own.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace kite {

struct VcpuState {
    uint32_t index = 0;
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_fpu fpu{};
    std::vector<uint8_t> xsave;  // KVM_GET_XSAVE(2) area, as many bytes as KVM gave
    kvm_xcrs xcrs{};
    std::vector<kvm_msr_entry> msrs;
    kvm_lapic_state lapic{};
    kvm_vcpu_events events{};
    kvm_mp_state mp_state{};
};

}  // namespace kite
