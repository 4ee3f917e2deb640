// The mirror VM's address-space arithmetic, kept free of KVM so it can be unit-tested on any host:
// where RAM goes (high_base), and the page tables the helper runs on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"

namespace kite {

inline constexpr uint64_t kFourGiB = 1ull << 32;

// Physical address widths that bound the mirror's guest-physical space.
struct PhysAddressBits {
    unsigned host = 0;           // host CPUID 0x80000008 EAX[7:0]: KVM refuses memslots beyond it
    unsigned guest = 0;          // the mirror vCPU's CPUID 0x80000008 (EAX[23:16] if set, else EAX[7:0])
    unsigned sev_reduction = 0;  // CPUID 0x8000001F EBX[11:6] under SEV (the C-bit and friends), else 0
};

// The mirror GPA of RAM offset 0. Formula: with
//     bits  = min(host, guest) - sev_reduction
//     limit = 2^bits                     (first GPA neither KVM nor the vCPU's page walk can reach)
//     high_base = 2^(bits - 1)           (the upper half, as the SEV discussion proposed)
// the mirror's RAM view [high_base, high_base + ram_size) must end at or below limit, and high_base must be
// at least 4 GiB so the low 4 GiB (private window, option-1 alias) and option-2 windows in
// [4 GiB, high_base) never meet RAM. Errors name the widths so a too-small host is diagnosable.
Result<uint64_t> mirror_high_base(const PhysAddressBits& bits, uint64_t ram_size);

// Reads the host's widths (CPUID instruction) and the guest's (from KVM's supported CPUID entries).
PhysAddressBits host_phys_address_bits(unsigned supported_guest_leaf_80000008_eax, bool sev);

// [va, va + length) -> [pa, pa + length). va and pa must be congruent modulo the page size used.
struct PageRange {
    uint64_t va;
    uint64_t pa;
    uint64_t length;
};

// Builds 4-level page tables covering every range, with 1 GiB pages when `gib_pages` (the vCPU's CPUID has
// PDPE1GB) or else 2 MiB pages, writable, into `area` (which the helper sees at guest-physical `area_gpa`;
// page-aligned). Ranges are widened to page boundaries. Returns the CR3 value (area_gpa: the PML4 is the
// first page). Fails if the tables do not fit in `area`, va and pa are not congruent, or a range leaves
// the canonical lower half (2^47) or the 52-bit physical space.
Result<uint64_t> build_page_tables(std::span<std::byte> area, uint64_t area_gpa, std::span<const PageRange> ranges,
                                   bool gib_pages);

// Walks tables built above: the physical address `va` translates to, or nullopt if unmapped (for tests).
std::optional<uint64_t> translate(std::span<const std::byte> area, uint64_t area_gpa, uint64_t va);

}  // namespace kite
