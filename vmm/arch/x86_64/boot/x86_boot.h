// Direct Linux boot on x86_64: loads a bzImage (64-bit boot protocol) or a PVH ELF vmlinux, the initrd
// and the command line into guest memory, builds the zero page or PVH start_info, the e820 map, GDT,
// IDT and page tables, and returns the vCPU state to start from.
//
// Guest-physical layout (vmm/arch/x86_64/boot/layout.h): GDT 0x500, IDT 0x520, PVH start_info 0x6000, zero page
// 0x7000, page tables 0x9000..0xefff, command line 0x20000; the kernel above 1 MiB; the initrd at the
// highest page-aligned free spot below the kernel's initrd_addr_max (PVH: below 4 GiB).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/error.h"
#include "memory/guest_memory.h"
#include "vmm/arch/x86_64/boot/boot_state.h"
#include "vmm/arch/x86_64/boot/layout.h"

namespace kite::boot {

// A file to read, or bytes already in memory (which must outlive the load_linux call).
using ImageSource = std::variant<std::filesystem::path, std::span<const std::byte>>;

enum class BootProtocol {
    Auto,     // bzImage if it has the "HdrS" magic, else an ELF with a PVH note, else an error
    BzImage,  // 64-bit boot protocol
    Pvh,      // PVH ELF entry
};

inline constexpr uint64_t kMaxPvhCmdline = 2048;  // x86 COMMAND_LINE_SIZE: Linux truncates beyond it

struct BootInputs {
    ImageSource kernel;
    std::optional<ImageSource> initrd;
    std::string cmdline;
    BootProtocol protocol = BootProtocol::Auto;
    std::vector<AddressRange> ram;       // guest RAM, as mapped (e.g. [0, 3 GiB) and [4 GiB, ...))
    std::vector<AddressRange> reserved;  // listed as reserved in e820 (e.g. ACPI tables in RAM)
    std::optional<GuestAddress> rsdp;    // ACPI RSDP, passed via acpi_rsdp_addr / start_info.rsdp_paddr
};

Result<BootState> load_linux(GuestMemory& mem, const BootInputs& in);

}  // namespace kite::boot
