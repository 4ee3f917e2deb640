#include "memory/heap_memory.h"

namespace kite {

HeapMemory::HeapMemory(uint64_t size) : HeapMemory(std::vector<Region>{{GuestAddress(0), size}}) {}

HeapMemory::HeapMemory(std::vector<Region> regions) {
    for (const auto& r : regions) blocks_.push_back(Block{r.base, std::vector<std::byte>(r.size)});
}

std::optional<std::span<std::byte>> HeapMemory::span(GuestAddress addr, uint64_t len) {
    for (auto& b : blocks_) {
        auto off = addr.offset_from(b.base);
        if (!off || *off > b.bytes.size()) continue;
        if (len > b.bytes.size() - *off) continue;  // may still fit in a region starting right here
        return std::span<std::byte>(b.bytes.data() + *off, len);
    }
    return std::nullopt;
}

uint64_t HeapMemory::contiguous_from(GuestAddress addr) {
    for (auto& b : blocks_) {
        auto off = addr.offset_from(b.base);
        if (off && *off < b.bytes.size()) return b.bytes.size() - *off;
    }
    return 0;
}

}  // namespace kite
