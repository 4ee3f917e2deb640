// The PVH start-of-day structure (xen/include/public/arch-x86/hvm/start_info.h, version 1), which the
// kernel finds through %ebx at its 32-bit PVH entry. All addresses are 64-bit little-endian values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"
#include "vmm/arch/x86_64/boot/e820.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;  // "xEn3" with the 0x80 bit of the "E" set
inline constexpr uint32_t kHvmStartVersion = 1;         // version 1 adds the memory map

struct HvmStartInfo {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(offsetof(HvmStartInfo, modlist_paddr) == 16);
static_assert(offsetof(HvmStartInfo, cmdline_paddr) == 24);
static_assert(offsetof(HvmStartInfo, rsdp_paddr) == 32);
static_assert(offsetof(HvmStartInfo, memmap_paddr) == 40);
static_assert(offsetof(HvmStartInfo, memmap_entries) == 48);

struct HvmModlistEntry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

struct HvmMemmapEntry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;  // same numbering as e820 (1 RAM, 2 reserved)
    uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

// Where the pieces go: start_info, then the (single) module entry, then the memory map.
inline constexpr uint64_t kPvhModlistAddr = kPvhStartInfoAddr + 0x40;
inline constexpr uint64_t kPvhMemmapAddr = kPvhStartInfoAddr + 0x80;

struct PvhInputs {
    GuestAddress cmdline;
    std::optional<AddressRange> initrd;  // becomes module 0
    std::span<const E820Entry> e820;
    std::optional<GuestAddress> rsdp;
};

// Writes start_info at kPvhStartInfoAddr, the modlist and the memmap after it.
Result<void> write_pvh_start_info(GuestMemory& mem, const PvhInputs& in);

}  // namespace kite::boot
