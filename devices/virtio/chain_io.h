// Reading and writing across the buffers of a descriptor chain, through GuestMemory. Device code uses
// these instead of touching descriptors: a ChainReader over the device-readable buffers, a ChainWriter
// over the device-writable ones (it counts what it wrote: the used length to report).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "devices/virtio/descriptor_chain.h"
#include "memory/guest_memory.h"

namespace kite {

// A position in a list of guest buffers.
class BufferCursor {
public:
    BufferCursor(GuestMemory& memory, std::vector<GuestBuffer> buffers);

    uint64_t remaining() const { return remaining_; }
    // Advances by n bytes; fails (and does not move) if fewer remain.
    Result<void> skip(uint64_t n);
    // Host views of the next n bytes, split at buffer and RAM-region ends; advances past them. For
    // vectored I/O by the kernel (preadv/pwritev/io_uring): the views are only valid until the memory
    // map changes, and a stale one makes the kernel fail the I/O with EFAULT, never the VMM crash.
    Result<std::vector<iovec>> take_iovecs(uint64_t n);

protected:
    // Calls fn(guest_address, length) for each piece of the next n bytes and advances. Fails up front if
    // fewer than n bytes remain, or when fn fails.
    template <class Fn>
    Result<void> walk(uint64_t n, Fn&& fn);

    GuestMemory* memory_;

private:
    std::vector<GuestBuffer> buffers_;
    size_t index_ = 0;        // current buffer
    uint64_t offset_ = 0;     // offset inside it
    uint64_t remaining_ = 0;  // bytes left in all buffers from the current position
};

class ChainReader : public BufferCursor {
public:
    using BufferCursor::BufferCursor;
    // Reads exactly out.size() bytes or fails without a partial result being meaningful.
    Result<void> read(std::span<std::byte> out);
    template <class T>
    std::optional<T> read_obj() {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(std::as_writable_bytes(std::span(&value, 1)))) return std::nullopt;
        return value;
    }
};

class ChainWriter : public BufferCursor {
public:
    using BufferCursor::BufferCursor;
    // Writes exactly in.size() bytes or fails (nothing is written if too little room remains).
    Result<void> write(std::span<const std::byte> in);
    template <class T>
    Result<void> write_obj(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(std::as_bytes(std::span(&value, 1)));
    }
    // Counts bytes the caller wrote itself through take_iovecs().
    void account(uint64_t n) { written_ += n; }
    uint64_t written() const { return written_; }

private:
    uint64_t written_ = 0;
};

// Removes the last byte of the last non-empty buffer from `buffers` and returns its address: where a
// virtio-blk request's status byte goes. nullopt if the buffers hold no byte at all.
std::optional<GuestAddress> take_last_byte(std::vector<GuestBuffer>& buffers);

}  // namespace kite
