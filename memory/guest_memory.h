// The one interface through which Kite's libraries touch guest memory.
// Every access is bounds-checked with an overflow-safe test. Callers never keep the span returned by
// span() across calls that may change the memory map (hot-unplug, restore): take it, use it, drop it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "base/error.h"
#include "memory/address.h"

namespace kite {

class GuestMemory {
public:
    virtual ~GuestMemory() = default;

    // Host view of [addr, addr + len) if the whole range lies inside one mapped RAM region.
    // len 0 returns an empty span if addr is inside (or at the end of) a region.
    virtual std::optional<std::span<std::byte>> span(GuestAddress addr, uint64_t len) = 0;

    // Number of bytes from addr to the end of the RAM region that contains addr; 0 if addr is not RAM.
    virtual uint64_t contiguous_from(GuestAddress addr) = 0;

    // Copy out of / into guest memory. A range may cross adjacent regions; any byte outside RAM fails
    // the whole call before anything is copied.
    virtual Result<void> read(GuestAddress addr, std::span<std::byte> out);
    virtual Result<void> write(GuestAddress addr, std::span<const std::byte> in);

    // True if every byte of [addr, addr + len) is guest RAM.
    bool contains(GuestAddress addr, uint64_t len);

    template <class T>
    std::optional<T> read_obj(GuestAddress addr) {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(addr, std::as_writable_bytes(std::span(&value, 1)))) return std::nullopt;
        return value;
    }

    template <class T>
    bool write_obj(GuestAddress addr, const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(addr, std::as_bytes(std::span(&value, 1))).has_value();
    }
};

}  // namespace kite
