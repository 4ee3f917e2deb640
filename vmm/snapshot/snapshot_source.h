// Where the snapshot decoder reads from: bytes already in memory (decode_snapshot) or a file
// (read_snapshot, which reads it piece by piece and puts guest pages straight where they belong).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/error.h"
#include "vmm/snapshot/snapshot.h"

namespace kite {

class SnapshotSource {
public:
    explicit SnapshotSource(uint64_t size) : size_(size) {}
    virtual ~SnapshotSource() = default;
    uint64_t size() const { return size_; }
    uint64_t position() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    // Copies the next out.size() bytes; the caller has checked that they exist.
    virtual Result<void> read(std::span<uint8_t> out) = 0;
    // The same for whole pages of guest memory (page-aligned), the fastest way the source has.
    virtual Result<void> read_pages(std::span<std::byte> out) {
        return read({reinterpret_cast<uint8_t*>(out.data()), out.size()});
    }
    // The next n bytes without a copy, valid as long as the source's bytes; nullopt if it cannot lend.
    virtual std::optional<std::span<const uint8_t>> lend(uint64_t) { return std::nullopt; }

protected:
    uint64_t size_;
    uint64_t pos_ = 0;
};

// Decodes and validates a whole snapshot from `in` (snapshot_decode.cpp). With a `target`, Plain pages
// go to the memory it gives; without one they are lent by the source (copy_pages false and the source
// can) or copied into `pages`.
Result<SnapshotData> decode_from(SnapshotSource& in, const MemoryTarget& target, bool copy_pages);

// Calls fn(n, first, count) for each run of consecutive page numbers in `indices` (strictly increasing):
// indices[n] == first, and the run covers pages first .. first + count - 1. The walk stops at the first
// run for which fn returns false.
template <class Fn>
void for_each_page_run(std::span<const uint64_t> indices, Fn fn) {
    for (size_t n = 0; n < indices.size();) {
        size_t count = 1;
        while (n + count < indices.size() && indices[n + count] == indices[n] + count) ++count;
        if (!fn(n, indices[n], count)) return;
        n += count;
    }
}

// Zeroes guest pages: shared memory (guest RAM) drops them (MADV_REMOVE) without touching them, other
// memory is cleared by hand (snapshot_encode.cpp).
void zero_guest_pages(std::span<std::byte> pages);

}  // namespace kite
