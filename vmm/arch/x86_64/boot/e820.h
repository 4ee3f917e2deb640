// The e820 memory map handed to the guest (boot_params.e820_table and the PVH memmap use the same
// entries). RAM is usable except for the legacy area 0x9fc00..1 MiB (EBDA, VGA, BIOS, where the ACPI
// RSDP may live) and the reserved ranges the VMM names; anything that is neither (the 32-bit MMIO hole)
// is not listed at all.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr size_t kE820MaxEntries = 128;  // what the zero page can hold

struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    bool operator==(const E820Entry&) const = default;
};

// Sorted, non-overlapping, adjacent entries of one type merged. Reserved wins where it overlaps RAM.
// Fails on a range that wraps around 2^64 or a map with more than kE820MaxEntries entries.
Result<std::vector<E820Entry>> build_e820(std::span<const AddressRange> ram, std::span<const AddressRange> reserved);

}  // namespace kite::boot
