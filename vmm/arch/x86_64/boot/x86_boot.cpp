#include "vmm/arch/x86_64/boot/x86_boot.h"

#include <algorithm>
#include <cstring>

#include "base/size.h"
#include "vmm/arch/x86_64/boot/boot_params.h"
#include "vmm/arch/x86_64/boot/bzimage.h"
#include "vmm/arch/x86_64/boot/cpu_setup.h"
#include "vmm/arch/x86_64/boot/e820.h"
#include "vmm/arch/x86_64/boot/elf_pvh.h"
#include "vmm/arch/x86_64/boot/image_file.h"
#include "vmm/arch/x86_64/boot/placement.h"
#include "vmm/arch/x86_64/boot/pvh.h"

namespace kite::boot {

namespace {

constexpr uint64_t kPageSize = 4096;

// What load_linux has decided so far, shared by both protocols.
struct Loaded {
    std::vector<E820Entry> e820;
    std::optional<AddressRange> initrd;
};

Result<void> write_cmdline(GuestMemory& mem, const std::string& cmdline, uint64_t max_len) {
    if (cmdline.find('\0') != std::string::npos) return fail("command line contains a NUL byte");
    if (cmdline.size() > max_len) {
        return fail("command line is " + std::to_string(cmdline.size()) + " bytes, the kernel accepts at most " +
                    std::to_string(max_len));
    }
    auto ok = mem.write(GuestAddress(kCmdlineAddr), std::as_bytes(std::span(cmdline.c_str(), cmdline.size() + 1)));
    if (!ok) return fail("writing the command line: " + ok.error().message);
    return {};
}

// Places the initrd at the highest page-aligned free spot ending at or below `limit`, then copies it in.
Result<std::optional<AddressRange>> load_initrd(GuestMemory& mem, const BootInputs& in,
                                                std::span<const AddressRange> occupied, uint64_t limit) {
    if (!in.initrd) return std::optional<AddressRange>();
    std::optional<ImageFile> file;
    std::span<const std::byte> bytes;
    std::string label = "initrd";
    if (auto* path = std::get_if<std::filesystem::path>(&*in.initrd)) {
        auto opened = open_image_file(*path, "initrd");
        if (!opened) return std::unexpected(opened.error());
        file = std::move(*opened);
        label = file->label;
    } else {
        bytes = std::get<std::span<const std::byte>>(*in.initrd);
        if (bytes.empty()) return fail("initrd is empty");
    }
    uint64_t size = file ? file->size : bytes.size();
    auto at = highest_free(in.ram, occupied, size, kPageSize, limit);
    if (!at) {
        return fail(label + ": " + std::to_string(size) + " bytes do not fit in free guest RAM below " + hex_text(limit));
    }
    auto dest = mem.span(*at, size);
    if (!dest) return fail(label + ": guest RAM at " + range_text(at->value(), size) + " is not one contiguous block");
    if (file) {
        if (auto ok = read_image_file(*file, *dest); !ok) return std::unexpected(ok.error());
    } else {
        std::memcpy(dest->data(), bytes.data(), size);
    }
    return std::optional<AddressRange>(AddressRange{*at, size});
}

// The kernel must not land on a range the VMM reserved (ACPI tables, firmware data).
Result<void> check_not_reserved(const BootInputs& in, std::span<const AddressRange> kernel) {
    for (const auto& k : kernel) {
        for (const auto& r : in.reserved) {
            if (ranges_overlap(k.first.value(), k.second, r.first.value(), r.second)) {
                return fail("kernel at " + range_text(k.first.value(), k.second) + " overlaps the reserved range " +
                            range_text(r.first.value(), r.second));
            }
        }
    }
    return {};
}

void record_common(BootState& state, const std::optional<AddressRange>& initrd) {
    state.cmdline_addr = GuestAddress(kCmdlineAddr);
    if (initrd) {
        state.initrd_load = initrd->first;
        state.initrd_size = initrd->second;
    }
}

Result<BootState> boot_bzimage(GuestMemory& mem, const BootInputs& in, std::span<const std::byte> kernel,
                               const std::vector<E820Entry>& e820) {
    auto image = parse_bzimage(kernel);
    if (!image) return std::unexpected(image.error());
    auto load = choose_bzimage_load_address(*image, in.ram);
    if (!load) return std::unexpected(load.error());
    AddressRange kernel_range{*load, image->memory_needed};
    if (auto ok = check_not_reserved(in, std::span(&kernel_range, 1)); !ok) return std::unexpected(ok.error());
    if (auto ok = load_bzimage(mem, *image, *load); !ok) return std::unexpected(ok.error());
    if (auto ok = write_cmdline(mem, in.cmdline, std::min<uint64_t>(image->header.cmdline_size, kCmdlineMax - 1)); !ok) {
        return std::unexpected(ok.error());
    }
    std::vector<AddressRange> occupied{{GuestAddress(0), kHighMemoryStart}, {*load, image->memory_needed}};
    occupied.insert(occupied.end(), in.reserved.begin(), in.reserved.end());
    // initrd_addr_max is the highest address the initrd may occupy, so its end may be one past it.
    auto initrd = load_initrd(mem, in, occupied, uint64_t{image->header.initrd_addr_max} + 1);
    if (!initrd) return std::unexpected(initrd.error());

    auto zero_page = make_boot_params(*image, ZeroPageInputs{*load, GuestAddress(kCmdlineAddr), *initrd, e820, in.rsdp});
    if (!zero_page) return std::unexpected(zero_page.error());
    if (!mem.write_obj(GuestAddress(kZeroPageAddr), *zero_page)) return fail("writing the zero page: outside guest RAM");

    BootState state = initial_cpu_state(BootState::Long64);
    state.rip = load->value() + kStartup64Offset;
    state.rsi = kZeroPageAddr;
    state.kernel_load = *load;
    record_common(state, *initrd);
    if (auto ok = write_identity_page_tables(mem); !ok) return std::unexpected(ok.error());
    if (auto ok = write_descriptor_tables(mem, state); !ok) return std::unexpected(ok.error());
    return state;
}

Result<BootState> boot_pvh(GuestMemory& mem, const BootInputs& in, std::span<const std::byte> kernel,
                           const std::vector<E820Entry>& e820) {
    auto elf = parse_pvh_elf(kernel);
    if (!elf) return std::unexpected(elf.error());
    if (auto ok = check_not_reserved(in, pvh_elf_ranges(*elf)); !ok) return std::unexpected(ok.error());
    if (auto ok = load_pvh_elf(mem, *elf); !ok) return std::unexpected(ok.error());
    if (auto ok = write_cmdline(mem, in.cmdline, kMaxPvhCmdline - 1); !ok) return std::unexpected(ok.error());
    std::vector<AddressRange> occupied = pvh_elf_ranges(*elf);
    occupied.emplace_back(GuestAddress(0), kHighMemoryStart);
    occupied.insert(occupied.end(), in.reserved.begin(), in.reserved.end());
    auto initrd = load_initrd(mem, in, occupied, k4GiB);
    if (!initrd) return std::unexpected(initrd.error());
    if (auto ok = write_pvh_start_info(mem, PvhInputs{GuestAddress(kCmdlineAddr), *initrd, e820, in.rsdp}); !ok) {
        return std::unexpected(ok.error());
    }

    BootState state = initial_cpu_state(BootState::Pvh32);
    state.rip = elf->entry.value();
    state.rbx = kPvhStartInfoAddr;
    state.kernel_load = elf->segments.front().paddr;
    record_common(state, *initrd);
    if (auto ok = write_descriptor_tables(mem, state); !ok) return std::unexpected(ok.error());
    return state;
}

}  // namespace

Result<BootState> load_linux(GuestMemory& mem, const BootInputs& in) {
    if (in.ram.empty()) return fail("boot: no guest RAM ranges given");
    auto e820 = build_e820(in.ram, in.reserved);
    if (!e820) return std::unexpected(e820.error());

    std::vector<std::byte> owned;
    std::span<const std::byte> kernel;
    std::string label = "kernel image";
    if (auto* path = std::get_if<std::filesystem::path>(&in.kernel)) {
        auto bytes = read_whole_image(*path, "kernel image");
        if (!bytes) return std::unexpected(bytes.error());
        owned = std::move(*bytes);
        kernel = owned;
        label += " " + path->string();
    } else {
        kernel = std::get<std::span<const std::byte>>(in.kernel);
        if (kernel.empty()) return fail("kernel image is empty");
    }

    BootProtocol protocol = in.protocol;
    if (protocol == BootProtocol::Auto) {
        if (has_hdrs_magic(kernel)) {
            protocol = BootProtocol::BzImage;
        } else if (has_elf_magic(kernel)) {
            protocol = BootProtocol::Pvh;
        } else {
            return fail(label + ": neither a bzImage (no \"HdrS\" at 0x202) nor an ELF file");
        }
    }
    auto state = protocol == BootProtocol::BzImage ? boot_bzimage(mem, in, kernel, *e820) : boot_pvh(mem, in, kernel, *e820);
    if (!state) return fail(label + ": " + state.error().message);
    return state;
}

}  // namespace kite::boot
