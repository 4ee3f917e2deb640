// bzImage parsing and loading for the 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst).
// Only the protected-mode part is loaded: Kite enters the kernel at its 64-bit entry (load + 0x200),
// so the real-mode setup code never runs.
#pragma once

#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

inline constexpr uint32_t kHdrSMagic = 0x53726448;    // "HdrS" at 0x202
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint64_t kHdrSOffset = 0x202;
inline constexpr uint16_t kMinProtocol = 0x020c;      // 2.12: xloadflags, so XLF_KERNEL_64 can be checked
inline constexpr uint16_t kRsdpProtocol = 0x020e;     // 2.14: boot_params.acpi_rsdp_addr
inline constexpr uint64_t kStartup64Offset = 0x200;   // 64-bit entry, from the protected-mode start

// A validated bzImage. The spans point into the image bytes given to parse_bzimage: keep those alive.
struct BzImage {
    setup_header header;                          // as in the file (the kernel's fields, before we fill ours)
    std::span<const std::byte> setup_header_bytes;  // [0x1f1, end of header) to copy into the zero page
    std::span<const std::byte> kernel;            // the protected-mode part
    uint64_t memory_needed;                       // max(init_size, kernel size): linear bytes from the load address
};

// True if the image carries the "HdrS" setup-header magic (the Auto protocol test).
bool has_hdrs_magic(std::span<const std::byte> image);

// Validates the setup header against the file: magic, boot flag, protocol >= 2.12 with XLF_KERNEL_64,
// LOADED_HIGH, setup_sects and syssize within the file, kernel_alignment, init_size. Never reads
// outside `image`.
Result<BzImage> parse_bzimage(std::span<const std::byte> image);  // image is guest-controlled

// Where the protected-mode kernel goes: pref_address if the kernel is relocatable and
// [pref_address, +memory_needed) is RAM above 1 MiB and below 4 GiB; else the lowest
// kernel_alignment-aligned address at or above 1 MiB where it fits; a non-relocatable kernel only at 1 MiB.
Result<GuestAddress> choose_bzimage_load_address(const BzImage& image, std::span<const AddressRange> ram);

// Copies the protected-mode kernel to `load`.
Result<void> load_bzimage(GuestMemory& mem, const BzImage& image, GuestAddress load);

}  // namespace kite::boot
