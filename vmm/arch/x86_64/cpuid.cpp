#include "vmm/arch/x86_64/cpuid.h"

#include <bit>
#include <cstdint>
#include <cstring>

namespace kite {

namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafPerfMon = 0xa;
constexpr uint32_t kLeafExtTopology = 0xb;
constexpr uint32_t kLeafExtTopologyV2 = 0x1f;
constexpr uint32_t kLeafHypervisor = 0x40000000;
constexpr uint32_t kLeafAmdExtSize = 0x80000008;
constexpr uint32_t kLeafAmdTopology = 0x8000001e;

constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEdxHtt = 1u << 28;

// Bits needed to number `n` items (at least 0).
uint32_t width_for(unsigned n) { return n <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(n - 1)); }

}  // namespace

std::vector<kvm_cpuid_entry2> vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported, unsigned index,
                                         const CpuTopology& topology) {
    std::vector<kvm_cpuid_entry2> out;
    const uint32_t cores = topology.vcpu_count;
    const uint32_t core_bits = width_for(cores);
    for (auto e : supported) {
        switch (e.function) {
        case kLeafFeatures:
            // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package, EBX[15:8] CLFLUSH size.
            e.ebx = (index << 24) | ((cores > 255 ? 255 : cores) << 16) | (8u << 8) | (e.ebx & 0xff);
            e.ecx |= kEcxHypervisor;
            e.ecx |= kEcxTscDeadline;  // KVM emulates the deadline timer with the in-kernel LAPIC
            if (cores > 1) e.edx |= kEdxHtt;
            break;
        case kLeafCacheParams:
            // EAX[31:26] = cores per package - 1, EAX[25:14] = threads sharing this cache - 1.
            e.eax &= 0x3fff;
            e.eax |= ((cores - 1) & 0x3f) << 26;
            if (((e.eax >> 5) & 7) == 3) e.eax |= ((cores - 1) & 0xfff) << 14;  // L3 shared by all cores
            break;
        case kLeafPerfMon:
            e.eax = e.ebx = e.ecx = e.edx = 0;  // no PMU: Kite does not virtualise performance counters
            break;
        case kLeafExtTopology:
        case kLeafExtTopologyV2:
            // Sub-leaf 0: SMT level (1 thread per core); sub-leaf 1: core level; others: invalid.
            e.edx = index;  // x2APIC id
            if (e.index == 0) {
                e.eax = 0;
                e.ebx = 1;
                e.ecx = (1u << 8) | 0;
            } else if (e.index == 1) {
                e.eax = core_bits;
                e.ebx = cores;
                e.ecx = (2u << 8) | 1;
            } else {
                e.eax = e.ebx = 0;
                e.ecx = e.index;
            }
            break;
        case kLeafAmdExtSize:
            // ECX[7:0] = cores - 1, ECX[15:12] = APIC id bits.
            e.ecx = (e.ecx & ~0xf0ffu) | ((cores - 1) & 0xff) | (core_bits << 12);
            break;
        case kLeafAmdTopology:
            e.eax = index;  // extended APIC id
            e.ebx = index;  // compute unit id, one thread per unit
            e.ecx = 0;      // node 0
            break;
        case kLeafHypervisor:
            // Keep KVM's signature ("KVMKVMKVM") so the guest uses kvm-clock and PV features.
            break;
        default:
            break;
        }
        out.push_back(e);
    }
    return out;
}

}  // namespace kite
