#include "devices/bus.h"

#include <algorithm>
#include <fmt/format.h>

#include "memory/address.h"

namespace kite {

Result<void> Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
    if (!device) return fail("bus: null device");
    if (len == 0) return fail(fmt::format("bus: empty range at {:#x}", base));
    if (!range_fits(base, len)) return fail(fmt::format("bus: range {:#x}+{:#x} wraps around", base, len));
    // The first range starting after base; only it and its predecessor can overlap [base, base+len).
    auto next = std::upper_bound(ranges_.begin(), ranges_.end(), base,
                                 [](uint64_t b, const Range& r) { return b < r.base; });
    if (next != ranges_.end() && ranges_overlap(base, len, next->base, next->len))
        return fail(fmt::format("bus: range {:#x}+{:#x} overlaps {:#x}+{:#x}", base, len, next->base, next->len));
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (ranges_overlap(base, len, prev->base, prev->len))
            return fail(fmt::format("bus: range {:#x}+{:#x} overlaps {:#x}+{:#x}", base, len, prev->base, prev->len));
    }
    ranges_.insert(next, Range{base, len, std::move(device)});
    return {};
}

const Bus::Range* Bus::find(uint64_t addr, uint64_t size) const {
    if (size == 0 || !range_fits(addr, size)) return nullptr;
    auto next = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                                 [](uint64_t a, const Range& r) { return a < r.base; });
    if (next == ranges_.begin()) return nullptr;
    const Range& r = *std::prev(next);
    // addr >= r.base here; the access must end inside the range (no straddling into the next device).
    uint64_t offset = addr - r.base;
    if (offset >= r.len || size > r.len - offset) return nullptr;
    return &r;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
    const Range* r = find(addr, data.size());
    if (!r) return false;
    r->device->read(addr - r->base, data);
    return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
    const Range* r = find(addr, data.size());
    if (!r) return false;
    r->device->write(addr - r->base, data);
    return true;
}

}  // namespace kite
