// Finding room in guest RAM for something of a given size (the initrd).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "memory/address.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

// The highest `align`-aligned address A such that [A, A + size) lies inside one RAM range, ends at or
// below `limit` and overlaps none of `occupied`. nullopt if there is no such address. align: a power of 2.
std::optional<GuestAddress> highest_free(std::span<const AddressRange> ram, std::span<const AddressRange> occupied,
                                         uint64_t size, uint64_t align, uint64_t limit);

}  // namespace kite::boot
