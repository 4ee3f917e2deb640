// GuestRam: the guest's RAM as the VMM holds it. It owns RAM blocks (memfd-backed, numbered in the
// order they were added, with consecutive RAM offsets) and maps each at most once into guest-physical
// space. The VMM installs one KVM memslot per mapped region (see regions()).
//
// Changing the map (map_block/unmap_block/add_block) is not synchronised with readers: do it only while
// no vCPU or device thread uses this object (at build time, or with vCPUs paused).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"
#include "memory/ram_block.h"

namespace kite {

struct MappedRegion {
    size_t block;  // index for GuestRam::block()
    GuestAddress gpa;
    uint64_t size;
    std::byte* host;
    int fd;  // the block's memfd, to share with vhost-user back-ends (fd offset 0 is the block start)
    RamOffset ram_offset;
};

class GuestRam final : public GuestMemory {
public:
    GuestRam() = default;
    GuestRam(const GuestRam&) = delete;
    GuestRam& operator=(const GuestRam&) = delete;

    // Creates a new, unmapped block right after the existing ones in RAM-offset space; returns its index.
    Result<size_t> add_block(uint64_t size, HugePages mode);
    // Makes the block visible to the guest at [gpa, gpa + size). Refused if the block does not exist or
    // is already mapped, gpa is not 4 KiB aligned, the range wraps, or it overlaps another mapped block.
    Result<void> map_block(size_t block, GuestAddress gpa);
    // Hides the block from the guest; it keeps its memory and RAM offset.
    Result<void> unmap_block(size_t block);

    // Mapped regions in guest-physical order.
    std::vector<MappedRegion> regions() const;

    std::optional<std::span<std::byte>> span(GuestAddress addr, uint64_t len) override;
    uint64_t contiguous_from(GuestAddress addr) override;

    // Host view of [offset, offset + len) in RAM-offset space, mapped into the guest or not, if the
    // range lies inside one block. len 0 gives an empty span inside or at the end of a block.
    std::optional<std::span<std::byte>> ram_span(RamOffset offset, uint64_t len);
    // Sum of all block sizes (mapped or not).
    uint64_t ram_size() const { return ram_size_; }
    // Precondition: index < block_count().
    const RamBlock& block(size_t index) const { return *blocks_[index].ram; }
    size_t block_count() const { return blocks_.size(); }

    // Where RAM at this offset is in guest-physical space, if its block is mapped.
    std::optional<GuestAddress> gpa_of(RamOffset offset) const;
    // Which RAM offset this guest-physical address is backed by, if it is mapped RAM.
    std::optional<RamOffset> ram_offset_of(GuestAddress addr) const;

private:
    struct Mapped {
        GuestAddress gpa;
        uint64_t size;
        size_t block;
    };
    // The mapped entry containing addr (or, if end_ok, ending exactly at addr), else mapped_.end().
    std::vector<Mapped>::const_iterator find_mapped(GuestAddress addr, bool end_ok) const;
    // Index of the block containing offset (or, if end_ok, ending exactly at offset).
    std::optional<size_t> find_block(RamOffset offset, bool end_ok) const;

    struct Block {
        // unique_ptr: a RamBlock never moves once created, so the references block() hands out stay
        // valid while blocks are added.
        std::unique_ptr<RamBlock> ram;
        std::optional<GuestAddress> gpa;  // set while mapped
    };
    std::vector<Block> blocks_;  // in RAM-offset order (offsets are assigned consecutively)
    std::vector<Mapped> mapped_;  // sorted by gpa, never overlapping
    uint64_t ram_size_ = 0;
};

}  // namespace kite
