// ELF vmlinux loading for the PVH boot ABI (x86_64 ELF64, or i386 ELF32): PT_LOAD segments go to their physical addresses and the
// 32-bit entry comes from the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

inline constexpr uint32_t kXenElfnotePhys32Entry = 18;

struct ElfSegment {
    GuestAddress paddr;
    uint64_t file_offset;
    uint64_t file_size;
    uint64_t mem_size;  // >= file_size; the rest is zeroed (bss)
};

// A validated PVH kernel. `image` points into the bytes given to parse_pvh_elf: keep those alive.
struct PvhElf {
    std::span<const std::byte> image;
    std::vector<ElfSegment> segments;  // PT_LOAD with a non-zero p_memsz
    GuestAddress entry;                // from the PVH note; below 4 GiB, inside a loaded segment
};

// True if the image starts with the ELF magic.
bool has_elf_magic(std::span<const std::byte> image);

// Validates a little-endian ELF64 x86_64 or ELF32 i386 image: program headers inside the file, PT_LOAD file ranges
// inside the file, p_filesz <= p_memsz, no segment wrapping, overlapping another or starting below 1 MiB
// (the loader's own structures live there), and a well-formed PVH note. Never reads outside `image`.
Result<PvhElf> parse_pvh_elf(std::span<const std::byte> image);  // image is guest-controlled

// Copies every segment to its p_paddr and zeroes its bss part. Fails (before writing anything) if a
// segment is not entirely guest RAM.
Result<void> load_pvh_elf(GuestMemory& mem, const PvhElf& elf);

// The guest-physical ranges the segments occupy (for placing the initrd around them).
std::vector<AddressRange> pvh_elf_ranges(const PvhElf& elf);

}  // namespace kite::boot
