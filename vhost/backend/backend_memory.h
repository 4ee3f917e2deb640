// The guest memory a vhost-user back-end sees: the regions of SET_MEM_TABLE / ADD_MEM_REG, each mmapped
// from the fd the front-end sent, with translation of the front-end's user addresses (vring addresses)
// to guest addresses. Implements GuestMemory so devices/virtio Queue can run over it.
#pragma once

#include <optional>
#include <vector>

#include "memory/guest_memory.h"
#include "memory/host_mapping.h"
#include "vhost/protocol.h"

namespace kite::vhost {

class BackendMemory final : public GuestMemory {
public:
    // Maps `region` from fd (borrowed). Refused: size 0, unaligned mmap offset, wrapping guest or user
    // ranges, overlap with an existing region, more than `max_regions`.
    Result<void> add(const MemoryRegion& region, int fd, size_t max_regions);
    // Removes the region with the same guest address, user address and size.
    Result<void> remove(const MemoryRegion& region);
    void clear() { regions_.clear(); }
    size_t region_count() const { return regions_.size(); }

    // The guest address of a front-end user address, if it lies inside a region.
    std::optional<GuestAddress> user_to_guest(uint64_t uaddr) const;

    std::optional<std::span<std::byte>> span(GuestAddress addr, uint64_t len) override;
    uint64_t contiguous_from(GuestAddress addr) override;

private:
    struct Region {
        MemoryRegion desc;
        HostMapping mapping;  // covers [mmap_offset, mmap_offset + size) of the fd, page-rounded start
        uint64_t skew;        // bytes between mapping start and guest address desc.guest_phys_addr
    };
    const Region* find(GuestAddress addr) const;
    std::vector<Region> regions_;
};

}  // namespace kite::vhost
