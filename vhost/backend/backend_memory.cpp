#include "vhost/backend/backend_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kite::vhost {

Result<void> BackendMemory::add(const MemoryRegion& r, int fd, size_t max_regions) {
    // guest-controlled (front-end-controlled): every field of the region.
    if (regions_.size() >= max_regions) return fail(fmt::format("memory table full ({} regions)", max_regions));
    if (r.memory_size == 0) return fail("memory region of size 0");
    if (!range_fits(r.guest_phys_addr, r.memory_size) || !range_fits(r.userspace_addr, r.memory_size) ||
        !range_fits(r.mmap_offset, r.memory_size))
        return fail(fmt::format("memory region {:#x}+{:#x} wraps around", r.guest_phys_addr, r.memory_size));
    for (const auto& other : regions_)
        if (ranges_overlap(r.guest_phys_addr, r.memory_size, other.desc.guest_phys_addr, other.desc.memory_size))
            return fail(fmt::format("memory region at {:#x} overlaps the one at {:#x}", r.guest_phys_addr,
                                    other.desc.guest_phys_addr));
    auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    uint64_t skew = r.mmap_offset % page;
    uint64_t len = r.memory_size + skew;
    if (len < r.memory_size) return fail("memory region too large");
    void* addr = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                        static_cast<off_t>(r.mmap_offset - skew));
    if (addr == MAP_FAILED) return std::unexpected(errno_error("vhost-user back-end: mmap of a memory region"));
    regions_.push_back(Region{r, HostMapping(addr, len), skew});
    return {};
}

Result<void> BackendMemory::remove(const MemoryRegion& r) {
    for (auto it = regions_.begin(); it != regions_.end(); ++it) {
        if (it->desc.guest_phys_addr == r.guest_phys_addr && it->desc.userspace_addr == r.userspace_addr &&
            it->desc.memory_size == r.memory_size) {
            regions_.erase(it);
            return {};
        }
    }
    return fail(fmt::format("no memory region at {:#x}+{:#x}", r.guest_phys_addr, r.memory_size));
}

std::optional<GuestAddress> BackendMemory::user_to_guest(uint64_t uaddr) const {
    for (const auto& region : regions_) {
        uint64_t start = region.desc.userspace_addr;
        if (uaddr >= start && uaddr - start < region.desc.memory_size)
            return GuestAddress(region.desc.guest_phys_addr + (uaddr - start));
    }
    return std::nullopt;
}

const BackendMemory::Region* BackendMemory::find(GuestAddress addr) const {
    // Inside a region first; the end of a region only for empty spans (it may be the start of the next).
    for (const auto& region : regions_) {
        auto off = addr.offset_from(GuestAddress(region.desc.guest_phys_addr));
        if (off && *off < region.desc.memory_size) return &region;
    }
    for (const auto& region : regions_) {
        auto off = addr.offset_from(GuestAddress(region.desc.guest_phys_addr));
        if (off && *off == region.desc.memory_size) return &region;
    }
    return nullptr;
}

std::optional<std::span<std::byte>> BackendMemory::span(GuestAddress addr, uint64_t len) {
    const Region* region = find(addr);
    if (region == nullptr) return std::nullopt;
    uint64_t off = addr.value() - region->desc.guest_phys_addr;
    if (len > region->desc.memory_size - off) return std::nullopt;
    return std::span<std::byte>(region->mapping.data() + region->skew + off, len);
}

uint64_t BackendMemory::contiguous_from(GuestAddress addr) {
    const Region* region = find(addr);
    if (region == nullptr) return 0;
    return region->desc.memory_size - (addr.value() - region->desc.guest_phys_addr);
}

}  // namespace kite::vhost
