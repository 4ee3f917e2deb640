#include "vmm/arch/x86_64/boot/e820.h"

#include <algorithm>

#include "base/size.h"

namespace kite::boot {

namespace {

bool covers(std::span<const AddressRange> ranges, uint64_t addr) {
    return std::ranges::any_of(ranges, [&](const AddressRange& r) {
        return addr >= r.first.value() && addr - r.first.value() < r.second;
    });
}

Result<void> check_ranges(std::span<const AddressRange> ranges, const char* what) {
    for (const auto& [start, size] : ranges) {
        // The end must be representable: start + size <= 2^64 - 1.
        if (size != 0 && !start.checked_add(size)) {
            return fail(std::string(what) + " range " + range_text(start.value(), size) +
                        " wraps around the address space");
        }
    }
    return {};
}

}  // namespace

Result<std::vector<E820Entry>> build_e820(std::span<const AddressRange> ram, std::span<const AddressRange> reserved) {
    if (auto ok = check_ranges(ram, "RAM"); !ok) return std::unexpected(ok.error());
    if (auto ok = check_ranges(reserved, "reserved"); !ok) return std::unexpected(ok.error());

    std::vector<AddressRange> all_reserved(reserved.begin(), reserved.end());
    all_reserved.emplace_back(GuestAddress(kEbdaStart), kHighMemoryStart - kEbdaStart);

    // Cut the address space at every range edge; each piece between two cuts has a single type.
    std::vector<uint64_t> cuts;
    for (const auto& list : {std::span<const AddressRange>(ram), std::span<const AddressRange>(all_reserved)}) {
        for (const auto& [start, size] : list) {
            if (size == 0) continue;
            cuts.push_back(start.value());
            cuts.push_back(start.value() + size);
        }
    }
    std::ranges::sort(cuts);
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

    std::vector<E820Entry> map;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
        uint64_t at = cuts[i];
        uint32_t type = covers(all_reserved, at) ? kE820Reserved : covers(ram, at) ? kE820Ram : 0;
        if (type == 0) continue;  // a hole: not listed
        uint64_t size = cuts[i + 1] - at;
        if (!map.empty() && map.back().type == type && map.back().addr + map.back().size == at) {
            map.back().size += size;
        } else {
            map.push_back(E820Entry{at, size, type});
        }
    }
    if (map.size() > kE820MaxEntries) {
        return fail("memory map has " + std::to_string(map.size()) + " entries, the zero page holds at most " +
                    std::to_string(kE820MaxEntries));
    }
    return map;
}

}  // namespace kite::boot
