#include "vmm/arch/x86_64/layout.h"

#include <algorithm>
#include <string>

#include "base/size.h"

namespace kite {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kShmBaseAlign = 1ull << 30;
constexpr unsigned kFirstVirtioIrq = 5;
constexpr unsigned kLastIoapicPin = 23;

}  // namespace

Result<X86Layout> x86_layout(uint64_t ram_size) {
    if (ram_size < kMinRamSize)
        return fail("guest RAM size " + format_size(ram_size) + " is below the minimum of " + format_size(kMinRamSize));
    if (ram_size % kPageSize != 0)
        return fail("guest RAM size " + format_size(ram_size) + " is not a multiple of 4 KiB");

    X86Layout layout;
    uint64_t low = std::min(ram_size, kMmioHoleStart);
    layout.ram.emplace_back(GuestAddress(0), low);
    uint64_t ram_end = low;
    if (ram_size > low) {
        uint64_t high = ram_size - low;
        // The high part plus the smallest shared-memory area must fit under the limit.
        if (high > kGuestPhysLimit - kMmioHoleEnd - kShmBaseAlign)
            return fail("guest RAM size " + format_size(ram_size) + " does not fit below the " +
                        format_size(kGuestPhysLimit) + " guest-physical limit");
        layout.ram.emplace_back(GuestAddress(kMmioHoleEnd), high);
        ram_end = kMmioHoleEnd + high;
    }
    // Cannot wrap: ram_end <= kGuestPhysLimit - 1 GiB.
    layout.shm_base = *GuestAddress(std::max(ram_end, kMmioHoleEnd)).align_up(kShmBaseAlign);
    layout.shm_limit = GuestAddress(kGuestPhysLimit);
    return layout;
}

Result<GuestAddress> ShmAllocator::allocate(uint64_t size) {
    if (size == 0) return fail("shared-memory window of size 0");
    if (size % kPageSize != 0)
        return fail("shared-memory window size " + format_size(size) + " is not a multiple of 4 KiB");
    auto base = next_.align_up(kShmWindowAlign);
    if (!base || *base >= limit_ || size > limit_.value() - base->value())
        return fail("no guest-physical space left for a " + format_size(size) + " shared-memory window (space ends at " +
                    hex_text(limit_.value()) + ")");
    next_ = GuestAddress(base->value() + size);
    return *base;
}

GuestAddress virtio_mmio_base(unsigned index) {
    return GuestAddress(kVirtioMmioBase + uint64_t{index} * kVirtioMmioStride);
}

std::optional<unsigned> virtio_mmio_irq(unsigned index) {
    if (index > kLastIoapicPin - kFirstVirtioIrq) return std::nullopt;
    return kFirstVirtioIrq + index;
}

}  // namespace kite
