// Strong types for the two address spaces Kite deals in:
//  - GuestAddress: a guest-physical address, as the guest and KVM memslots see it;
//  - RamOffset: an offset into the VMM's RAM (the concatenation of all RAM blocks), which stays
//    valid for RAM that is not mapped into the guest at the moment (snapshot/migration commands).
// Arithmetic is checked: anything that can overflow returns std::optional.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

namespace kite {

template <class Tag>
class Address {
public:
    constexpr Address() = default;
    constexpr explicit Address(uint64_t value) : value_(value) {}

    constexpr uint64_t value() const { return value_; }

    constexpr std::optional<Address> checked_add(uint64_t n) const {
        uint64_t out;
        if (__builtin_add_overflow(value_, n, &out)) return std::nullopt;
        return Address(out);
    }
    constexpr std::optional<Address> checked_sub(uint64_t n) const {
        if (n > value_) return std::nullopt;
        return Address(value_ - n);
    }
    // Distance from `base` to this address, if this address is not below base.
    constexpr std::optional<uint64_t> offset_from(Address base) const {
        if (value_ < base.value_) return std::nullopt;
        return value_ - base.value_;
    }
    constexpr Address align_down(uint64_t alignment) const { return Address(value_ & ~(alignment - 1)); }
    constexpr std::optional<Address> align_up(uint64_t alignment) const {
        auto bumped = checked_add(alignment - 1);
        if (!bumped) return std::nullopt;
        return bumped->align_down(alignment);
    }
    constexpr bool is_aligned(uint64_t alignment) const { return (value_ & (alignment - 1)) == 0; }

    constexpr auto operator<=>(const Address&) const = default;

private:
    uint64_t value_ = 0;
};

struct GuestAddressTag {};
struct RamOffsetTag {};
using GuestAddress = Address<GuestAddressTag>;
using RamOffset = Address<RamOffsetTag>;

// True if [start, start+len) does not wrap around 2^64. len 0 is an empty range and fits.
constexpr bool range_fits(uint64_t start, uint64_t len) { return len == 0 || start + (len - 1) >= start; }

// True if [a, a+alen) and [b, b+blen) share at least one byte. Both ranges must fit.
constexpr bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
    if (alen == 0 || blen == 0) return false;
    return a <= b + (blen - 1) && b <= a + (alen - 1);
}

}  // namespace kite
