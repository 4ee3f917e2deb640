#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>

#include "vmm/arch/x86_64/cpuid.h"

using namespace kite;

namespace {

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index = 0) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    return e;
}

const kvm_cpuid_entry2& find(const std::vector<kvm_cpuid_entry2>& v, uint32_t function, uint32_t index = 0) {
    return *std::find_if(v.begin(), v.end(), [&](const auto& e) { return e.function == function && e.index == index; });
}

const std::vector<kvm_cpuid_entry2> kSupported = {leaf(0x1), leaf(0xb, 0), leaf(0xb, 1), leaf(0xa),
                                                  leaf(0x80000008)};

}  // namespace

TEST_CASE("leaf 1 carries the vCPU's APIC id, the CPU count and the hypervisor bit") {
    auto table = vcpu_cpuid(kSupported, 3, CpuTopology{4});
    const auto& e = find(table, 0x1);
    CHECK((e.ebx >> 24) == 3);
    CHECK(((e.ebx >> 16) & 0xff) == 4);
    CHECK((e.ecx & (1u << 31)) != 0);
}

TEST_CASE("leaf 0xb reports one thread per core and all vCPUs as cores, with the x2APIC id") {
    auto table = vcpu_cpuid(kSupported, 2, CpuTopology{3});
    const auto& smt = find(table, 0xb, 0);
    const auto& core = find(table, 0xb, 1);
    CHECK(smt.ebx == 1);
    CHECK(((smt.ecx >> 8) & 0xff) == 1);
    CHECK(core.ebx == 3);
    CHECK(core.eax == 2);  // bits needed to number 3 cores
    CHECK(((core.ecx >> 8) & 0xff) == 2);
    CHECK(core.edx == 2);
}

TEST_CASE("the performance-monitoring leaf is cleared") {
    auto supported = kSupported;
    std::find_if(supported.begin(), supported.end(), [](const auto& e) { return e.function == 0xa; })->eax = 0x07300403;
    auto table = vcpu_cpuid(supported, 0, CpuTopology{1});
    CHECK(find(table, 0xa).eax == 0);
}

TEST_CASE("leaf 0x80000008 reports the core count minus one") {
    auto table = vcpu_cpuid(kSupported, 0, CpuTopology{4});
    CHECK((find(table, 0x80000008).ecx & 0xff) == 3);
}
