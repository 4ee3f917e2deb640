// Initial vCPU state: CPUID, boot MSRs, FPU, LAPIC LVTs for every vCPU, and the boot-protocol registers
// for the boot vCPU. Application processors wait for INIT/SIPI from the guest (in-kernel LAPIC).
#pragma once

#include <vector>

#include "base/error.h"
#include "vmm/arch/x86_64/boot/x86_boot.h"
#include "vmm/kvm/kvm.h"

namespace kite {

Result<void> setup_vcpu_common(const VcpuFd& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid);
Result<void> setup_boot_vcpu(const VcpuFd& vcpu, const boot::BootState& state);

}  // namespace kite
