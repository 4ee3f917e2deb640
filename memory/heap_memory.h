// GuestMemory backed by plain heap buffers: for unit tests and fuzz targets that need guest RAM
// without KVM (fake virtqueues, loader tests). Regions are fixed at construction.
#pragma once

#include <memory>
#include <vector>

#include "memory/guest_memory.h"

namespace kite {

class HeapMemory final : public GuestMemory {
public:
    struct Region {
        GuestAddress base;
        uint64_t size;
    };
    // One region at guest address 0.
    explicit HeapMemory(uint64_t size);
    explicit HeapMemory(std::vector<Region> regions);

    std::optional<std::span<std::byte>> span(GuestAddress addr, uint64_t len) override;
    uint64_t contiguous_from(GuestAddress addr) override;

private:
    struct Block {
        GuestAddress base;
        std::vector<std::byte> bytes;
    };
    std::vector<Block> blocks_;
};

}  // namespace kite
