#include "vmm/arch/x86_64/boot/placement.h"

#include <algorithm>
#include <vector>

namespace kite::boot {

std::optional<GuestAddress> highest_free(std::span<const AddressRange> ram, std::span<const AddressRange> occupied,
                                         uint64_t size, uint64_t align, uint64_t limit) {
    if (size == 0) return std::nullopt;
    // The best spot ends right below some "ceiling": the end of a RAM range, the start of an occupied
    // range, or the limit itself.
    std::vector<uint64_t> ceilings{limit};
    for (const auto& [start, len] : ram) ceilings.push_back(std::min(limit, start.value() + len));
    for (const auto& [start, len] : occupied) ceilings.push_back(std::min(limit, start.value()));

    std::optional<GuestAddress> best;
    for (uint64_t top : ceilings) {
        if (top < size) continue;
        uint64_t at = (top - size) & ~(align - 1);
        bool in_ram = std::ranges::any_of(ram, [&](const AddressRange& r) {
            auto off = GuestAddress(at).offset_from(r.first);
            return off && *off <= r.second && size <= r.second - *off;
        });
        bool is_free = std::ranges::none_of(occupied, [&](const AddressRange& o) {
            return ranges_overlap(at, size, o.first.value(), o.second);
        });
        if (in_ram && is_free && (!best || at > best->value())) best = GuestAddress(at);
    }
    return best;
}

}  // namespace kite::boot
