#include "memory/guest_memory.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "base/size.h"

namespace kite {

namespace {

// Calls fn(host_piece, offset_in_request) for each region-contiguous piece of [addr, addr+len).
template <class Fn>
void for_each_piece(GuestMemory& mem, GuestAddress addr, uint64_t len, Fn&& fn) {
    uint64_t done = 0;
    while (done < len) {
        GuestAddress at(addr.value() + done);
        uint64_t n = std::min(len - done, mem.contiguous_from(at));
        fn(*mem.span(at, n), done);
        done += n;
    }
}

}  // namespace

bool GuestMemory::contains(GuestAddress addr, uint64_t len) {
    if (!range_fits(addr.value(), len)) return false;
    if (len == 0) return span(addr, 0).has_value();
    uint64_t done = 0;
    while (done < len) {
        uint64_t n = contiguous_from(GuestAddress(addr.value() + done));
        if (n == 0) return false;
        done += std::min(n, len - done);
    }
    return true;
}

Result<void> GuestMemory::read(GuestAddress addr, std::span<std::byte> out) {
    if (!contains(addr, out.size())) return fail("guest read outside RAM " + range_text(addr.value(), out.size()));
    for_each_piece(*this, addr, out.size(), [&](std::span<std::byte> piece, uint64_t off) {
        std::memcpy(out.data() + off, piece.data(), piece.size());
    });
    return {};
}

Result<void> GuestMemory::write(GuestAddress addr, std::span<const std::byte> in) {
    if (!contains(addr, in.size())) return fail("guest write outside RAM " + range_text(addr.value(), in.size()));
    for_each_piece(*this, addr, in.size(), [&](std::span<std::byte> piece, uint64_t off) {
        std::memcpy(piece.data(), in.data() + off, piece.size());
    });
    return {};
}

}  // namespace kite
