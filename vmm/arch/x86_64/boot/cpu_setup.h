// The processor side of direct boot: the GDT and IDT, the identity page tables for the 64-bit entry,
// and the register state for each entry mode.
#pragma once

#include <cstdint>

#include "base/error.h"
#include "memory/guest_memory.h"
#include "vmm/arch/x86_64/boot/boot_state.h"

namespace kite::boot {

inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteHuge = 1ull << 7;  // a 2 MiB page in a page-directory entry

// The 8-byte GDT descriptor for a code/data segment (limit is the byte limit; g scales it by 4 KiB).
uint64_t gdt_descriptor(const BootState::Segment& seg);

// Segment registers, control registers and descriptor tables for the mode; rip/rsp/rsi/rbx and the
// load addresses are left to the caller.
BootState initial_cpu_state(BootState::Mode mode);

// Writes the GDT (matching state.cs and state.ds: null, unused, code 0x10, data 0x18) and an empty IDT.
Result<void> write_descriptor_tables(GuestMemory& mem, const BootState& state);

// PML4 at kPml4Addr, one PDPT, four page directories of 2 MiB pages: identity map of the first 4 GiB.
Result<void> write_identity_page_tables(GuestMemory& mem);

}  // namespace kite::boot
