// Reading and writing the KVM-held state a snapshot needs: per vCPU (registers, special registers,
// FPU, XSAVE, XCRs, MSRs, LAPIC, pending events, MP state) and per VM (the KVM clock; the I/O APIC is
// Kite's, a device with its own state). The caller pauses the vCPUs first; every call here is a plain ioctl sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "vmm/arch/x86_64/vcpu_state.h"
#include "vmm/kvm/kvm.h"

namespace kite {

// The MSRs this KVM can save and restore for `vcpu`: KVM_GET_MSR_INDEX_LIST minus the ones the vCPU
// refuses to read (the list names MSRs of features the vCPU's CPUID may not have).
Result<std::vector<uint32_t>> readable_msrs(const Kvm& kvm, const VcpuFd& vcpu);

// Bytes of this KVM's XSAVE area (KVM_CAP_XSAVE2; 4096 without it).
Result<size_t> xsave_size(const VmFd& vm);

Result<VcpuState> capture_vcpu(const VcpuFd& vcpu, uint32_t index, const std::vector<uint32_t>& msrs,
                               size_t xsave_size);
// Order matters: MP state and registers first, the LAPIC before the MSRs (KVM ignores a TSC deadline
// written while the LAPIC timer is not in TSC-deadline mode), the TSC before the TSC deadline (the index
// list's order), pending events last. The vCPU's CPUID must already be set (it validates XSAVE, MSRs).
Result<void> restore_vcpu(const VcpuFd& vcpu, const VcpuState& state, size_t xsave_size);

struct VmLevelState {
    kvm_clock_data clock{};
};
Result<VmLevelState> capture_vm_level(const VmFd& vm);
Result<void> restore_vm_level(const VmFd& vm, const VmLevelState& state);

}  // namespace kite
