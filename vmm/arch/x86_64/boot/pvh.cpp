#include "vmm/arch/x86_64/boot/pvh.h"

#include <string>
#include <vector>

namespace kite::boot {

Result<void> write_pvh_start_info(GuestMemory& mem, const PvhInputs& in) {
    if (in.e820.size() > kE820MaxEntries) return fail("PVH: " + std::to_string(in.e820.size()) + " memory map entries is too many");
    HvmStartInfo info{};
    info.magic = kHvmStartMagic;
    info.version = kHvmStartVersion;
    info.cmdline_paddr = in.cmdline.value();
    info.rsdp_paddr = in.rsdp ? in.rsdp->value() : 0;  // 0 means "not present"
    info.memmap_paddr = kPvhMemmapAddr;
    info.memmap_entries = static_cast<uint32_t>(in.e820.size());

    std::vector<HvmMemmapEntry> memmap;
    for (const auto& e : in.e820) memmap.push_back(HvmMemmapEntry{e.addr, e.size, e.type, 0});
    Result<void> ok;
    if (in.initrd) {
        info.nr_modules = 1;
        info.modlist_paddr = kPvhModlistAddr;
        ok = mem.write_obj(GuestAddress(kPvhModlistAddr), HvmModlistEntry{in.initrd->first.value(), in.initrd->second, 0, 0})
                 ? Result<void>()
                 : fail("modlist outside guest RAM");
    }
    if (ok) ok = mem.write(GuestAddress(kPvhMemmapAddr), std::as_bytes(std::span(memmap)));
    if (ok) ok = mem.write(GuestAddress(kPvhStartInfoAddr), std::as_bytes(std::span(&info, 1)));
    if (!ok) return fail("PVH: writing start_info: " + ok.error().message);
    return {};
}

}  // namespace kite::boot
