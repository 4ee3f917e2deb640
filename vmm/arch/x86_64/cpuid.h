// Per-vCPU CPUID: KVM's supported set, with the topology, APIC ids and hypervisor leaves a Linux guest
// needs to bring every CPU online.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include <vector>

namespace kite {

struct CpuTopology {
    unsigned vcpu_count = 1;  // one socket, one thread per core, vcpu_count cores
};

// Returns the CPUID table for vCPU `index` (its APIC id is `index`). Pure function of its inputs so it
// can be unit-tested with a made-up supported set.
std::vector<kvm_cpuid_entry2> vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported, unsigned index,
                                         const CpuTopology& topology);

}  // namespace kite
