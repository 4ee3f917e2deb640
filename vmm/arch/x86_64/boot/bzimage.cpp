#include "vmm/arch/x86_64/boot/bzimage.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include "base/size.h"

namespace kite::boot {

namespace {

constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kHeaderAreaEnd = 0x290;  // the zero page's setup-header area ends here (edd_mbr_sig_buffer)
// The header must at least reach init_size (0x260..0x264), the last 2.12 field we read.
constexpr uint64_t kMinHeaderEnd = 0x264;
constexpr uint64_t kMaxKernelAlignment = 1ull << 30;

std::string protocol_text(uint16_t version) {
    return std::to_string(version >> 8) + "." + (((version & 0xff) < 10) ? "0" : "") + std::to_string(version & 0xff);
}

// True if [addr, addr + size) lies inside one RAM range, at or above 1 MiB and below 4 GiB (the
// identity map the 64-bit entry runs on).
bool fits_in_ram(std::span<const AddressRange> ram, uint64_t addr, uint64_t size) {
    if (addr < kHighMemoryStart || size > k4GiB || addr > k4GiB - size) return false;
    return std::ranges::any_of(ram, [&](const AddressRange& r) {
        auto off = GuestAddress(addr).offset_from(r.first);
        return off && *off <= r.second && size <= r.second - *off;
    });
}

}  // namespace

bool has_hdrs_magic(std::span<const std::byte> image) {
    uint32_t magic = 0;
    if (image.size() < kHdrSOffset + sizeof magic) return false;
    std::memcpy(&magic, image.data() + kHdrSOffset, sizeof magic);
    return magic == kHdrSMagic;
}

Result<BzImage> parse_bzimage(std::span<const std::byte> image) {  // guest-controlled
    constexpr uint64_t header_struct_end = kSetupHeaderOffset + sizeof(setup_header);
    if (image.size() < header_struct_end) {
        return fail("bzImage truncated: " + std::to_string(image.size()) + " bytes, the setup header needs " +
                    hex_text(header_struct_end));
    }
    BzImage out{};
    std::memcpy(&out.header, image.data() + kSetupHeaderOffset, sizeof(setup_header));
    const setup_header& hdr = out.header;

    if (hdr.header != kHdrSMagic) return fail("bzImage: bad setup header magic " + hex_text(hdr.header) + " (want \"HdrS\")");
    if (hdr.boot_flag != kBootFlag) return fail("bzImage: bad boot_flag " + hex_text(hdr.boot_flag) + " (want 0xaa55)");
    if (hdr.version < kMinProtocol) {
        return fail("bzImage: boot protocol " + protocol_text(hdr.version) +
                    " is too old, the 64-bit entry needs 2.12 or later");
    }
    if (!(hdr.xloadflags & XLF_KERNEL_64)) return fail("bzImage: no 64-bit entry point (XLF_KERNEL_64 not set)");
    if (!(hdr.loadflags & LOADED_HIGH)) return fail("bzImage: LOADED_HIGH not set (a zImage is not supported)");

    // The header's own length: 0x202 + the jump offset byte at 0x201.
    uint64_t header_end = kHdrSOffset + static_cast<uint8_t>(image[0x201]);
    if (header_end < kMinHeaderEnd) {
        return fail("bzImage: setup header ends at " + hex_text(header_end) + ", before the 2.12 fields end at " +
                    hex_text(kMinHeaderEnd));
    }
    header_end = std::min(header_end, kHeaderAreaEnd);  // never copy past the zero page's header area

    uint64_t setup_sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;  // 0 means 4 (boot.rst)
    uint64_t setup_size = (setup_sects + 1) * kSectorSize;
    if (setup_size >= image.size()) {
        return fail("bzImage: setup_sects " + std::to_string(setup_sects) + " puts the kernel at " + hex_text(setup_size) +
                    ", past the end of the " + std::to_string(image.size()) + "-byte file");
    }
    if (header_end > setup_size) return fail("bzImage: setup header runs past the setup code");
    uint64_t kernel_size = image.size() - setup_size;
    uint64_t syssize_bytes = uint64_t{hdr.syssize} * 16;
    if (hdr.syssize == 0) return fail("bzImage: syssize is 0");
    if (syssize_bytes > kernel_size) {
        return fail("bzImage: syssize says " + std::to_string(syssize_bytes) + " bytes of kernel but the file has " +
                    std::to_string(kernel_size) + " (truncated?)");
    }
    if (hdr.relocatable_kernel &&
        (!std::has_single_bit(hdr.kernel_alignment) || hdr.kernel_alignment > kMaxKernelAlignment)) {
        return fail("bzImage: kernel_alignment " + hex_text(hdr.kernel_alignment) + " is not a power of two up to 1 GiB");
    }
    if (hdr.pref_address % 4096 != 0) return fail("bzImage: pref_address " + hex_text(hdr.pref_address) + " is not page-aligned");

    out.setup_header_bytes = image.subspan(kSetupHeaderOffset, header_end - kSetupHeaderOffset);
    out.kernel = image.subspan(setup_size);
    out.memory_needed = std::max<uint64_t>(hdr.init_size, kernel_size);
    return out;
}

Result<GuestAddress> choose_bzimage_load_address(const BzImage& image, std::span<const AddressRange> ram) {
    const setup_header& hdr = image.header;
    if (!hdr.relocatable_kernel) {
        if (fits_in_ram(ram, kHighMemoryStart, image.memory_needed)) return GuestAddress(kHighMemoryStart);
        return fail("bzImage: non-relocatable kernel needs " + hex_text(image.memory_needed) +
                    " bytes of RAM at 1 MiB, guest RAM does not have them");
    }
    if (fits_in_ram(ram, hdr.pref_address, image.memory_needed)) return GuestAddress(hdr.pref_address);
    std::vector<AddressRange> sorted(ram.begin(), ram.end());
    std::ranges::sort(sorted);
    for (const auto& [start, size] : sorted) {
        auto candidate = GuestAddress(std::max(start.value(), kHighMemoryStart)).align_up(hdr.kernel_alignment);
        if (candidate && fits_in_ram(ram, candidate->value(), image.memory_needed)) return *candidate;
    }
    return fail("bzImage: no room for the kernel: it needs " + hex_text(image.memory_needed) +
                " bytes (init_size) of RAM between 1 MiB and 4 GiB, aligned to " + hex_text(hdr.kernel_alignment));
}

Result<void> load_bzimage(GuestMemory& mem, const BzImage& image, GuestAddress load) {
    if (auto ok = mem.write(load, image.kernel); !ok) return fail("bzImage: loading the kernel: " + ok.error().message);
    return {};
}

}  // namespace kite::boot
