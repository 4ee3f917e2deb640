#include "vmm/arch/x86_64/boot/boot_params.h"

#include <cstring>
#include <string>

#include "base/size.h"

namespace kite::boot {

Result<boot_params> make_boot_params(const BzImage& image, const ZeroPageInputs& in) {
    if (in.e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
        return fail("zero page: " + std::to_string(in.e820.size()) + " e820 entries, it holds " +
                    std::to_string(E820_MAX_ENTRIES_ZEROPAGE));
    }
    if (in.kernel_load.value() >= k4GiB || in.cmdline.value() >= k4GiB) {
        return fail("zero page: kernel or command line above 4 GiB");
    }
    boot_params bp;
    std::memset(&bp, 0, sizeof bp);
    // Copy the header exactly as long as the image says it is (boot.rst: 0x202 + byte at 0x201).
    std::memcpy(reinterpret_cast<std::byte*>(&bp) + kSetupHeaderOffset, image.setup_header_bytes.data(),
                image.setup_header_bytes.size());

    bp.hdr.type_of_loader = kTypeOfLoaderUndefined;
    bp.hdr.loadflags = static_cast<uint8_t>(bp.hdr.loadflags | CAN_USE_HEAP);
    bp.hdr.heap_end_ptr = kHeapEndPtr;
    bp.hdr.vid_mode = kVidModeNormal;
    bp.hdr.code32_start = static_cast<uint32_t>(in.kernel_load.value());
    bp.hdr.cmd_line_ptr = static_cast<uint32_t>(in.cmdline.value());
    bp.ext_cmd_line_ptr = 0;
    if (in.initrd) {
        uint64_t addr = in.initrd->first.value();
        uint64_t size = in.initrd->second;
        bp.hdr.ramdisk_image = static_cast<uint32_t>(addr);
        bp.ext_ramdisk_image = static_cast<uint32_t>(addr >> 32);
        bp.hdr.ramdisk_size = static_cast<uint32_t>(size);
        bp.ext_ramdisk_size = static_cast<uint32_t>(size >> 32);
    }
    bp.e820_entries = static_cast<uint8_t>(in.e820.size());
    for (size_t i = 0; i < in.e820.size(); ++i) {
        bp.e820_table[i].addr = in.e820[i].addr;
        bp.e820_table[i].size = in.e820[i].size;
        bp.e820_table[i].type = in.e820[i].type;
    }
    if (in.rsdp && image.header.version >= kRsdpProtocol) bp.acpi_rsdp_addr = in.rsdp->value();
    return bp;
}

}  // namespace kite::boot
