// Where the direct-boot loader puts things in guest-physical memory. Everything the loader builds
// itself lives below 1 MiB; kernels and initrds go above 1 MiB.
#pragma once

#include <cstdint>
#include <utility>

#include "memory/address.h"

namespace kite::boot {

// A [start, start + size) range of guest-physical addresses (RAM or reserved).
using AddressRange = std::pair<GuestAddress, uint64_t>;

inline constexpr uint64_t kGdtAddr = 0x500;        // 4 descriptors: null, unused, code (0x10), data (0x18)
inline constexpr uint64_t kIdtAddr = 0x520;        // one empty gate: any early exception shuts the VM down
inline constexpr uint64_t kPvhStartInfoAddr = 0x6000;  // hvm_start_info, then modlist, then memmap
inline constexpr uint64_t kZeroPageAddr = 0x7000;  // struct boot_params (4 KiB)
inline constexpr uint64_t kBootStackTop = 0x8ff0;  // a scratch stack in the free page below the PML4
inline constexpr uint64_t kPml4Addr = 0x9000;
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;        // 4 page directories, 0xb000..0xefff
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;   // our buffer: 0x20000..0x30000, whatever the kernel says
inline constexpr uint64_t kEbdaStart = 0x9fc00;    // 0x9fc00..1 MiB: EBDA, VGA hole, BIOS area (ACPI RSDP)
inline constexpr uint64_t kHighMemoryStart = 0x100000;
inline constexpr uint64_t k4GiB = 0x1'0000'0000;

// GDT selectors, as Linux's boot code expects them (__BOOT_CS, __BOOT_DS).
inline constexpr uint16_t kBootCsSelector = 0x10;
inline constexpr uint16_t kBootDsSelector = 0x18;

}  // namespace kite::boot
