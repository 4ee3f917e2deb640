// The zero page (struct boot_params, Documentation/arch/x86/zero-page.rst) for the 64-bit boot protocol.
// The layout comes from the kernel's UAPI header <asm/bootparam.h>; the offsets are pinned below.
#pragma once

#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/error.h"
#include "memory/address.h"
#include "vmm/arch/x86_64/boot/bzimage.h"
#include "vmm/arch/x86_64/boot/e820.h"

static_assert(sizeof(boot_params) == 4096);
static_assert(offsetof(boot_params, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(boot_params, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(boot_params, ext_ramdisk_size) == 0x0c4);
static_assert(offsetof(boot_params, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(boot_params, e820_entries) == 0x1e8);
static_assert(offsetof(boot_params, hdr) == 0x1f1);
static_assert(offsetof(boot_params, hdr.vid_mode) == 0x1fa);
static_assert(offsetof(boot_params, hdr.type_of_loader) == 0x210);
static_assert(offsetof(boot_params, hdr.loadflags) == 0x211);
static_assert(offsetof(boot_params, hdr.ramdisk_image) == 0x218);
static_assert(offsetof(boot_params, hdr.heap_end_ptr) == 0x224);
static_assert(offsetof(boot_params, hdr.cmd_line_ptr) == 0x228);
static_assert(offsetof(boot_params, hdr.pref_address) == 0x258);
static_assert(offsetof(boot_params, hdr.init_size) == 0x260);
static_assert(offsetof(boot_params, e820_table) == 0x2d0);
static_assert(sizeof(boot_e820_entry) == 20);

namespace kite::boot {

inline constexpr uint8_t kTypeOfLoaderUndefined = 0xff;  // "no assigned id" (boot.rst)
inline constexpr uint16_t kVidModeNormal = 0xffff;       // "normal" VGA mode: don't ask
inline constexpr uint16_t kHeapEndPtr = 0xfe00;          // boot.rst's value for a setup at its usual place

struct ZeroPageInputs {
    GuestAddress kernel_load;
    GuestAddress cmdline;
    std::optional<AddressRange> initrd;
    std::span<const E820Entry> e820;
    std::optional<GuestAddress> rsdp;  // written only for protocol 2.14+, which reads acpi_rsdp_addr
};

// A zeroed boot_params with the image's setup header copied in and the loader's fields filled:
// type_of_loader, loadflags (CAN_USE_HEAP) + heap_end_ptr, vid_mode, code32_start, cmd_line_ptr,
// ramdisk_image/size (+ ext_ high halves), e820_table, acpi_rsdp_addr.
Result<boot_params> make_boot_params(const BzImage& image, const ZeroPageInputs& in);

}  // namespace kite::boot
