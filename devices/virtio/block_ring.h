// The io_uring ring virtio-blk submits to (block_io.cpp). io_uring operations run in the kernel, out of
// the seccomp filter's sight, so a VMM taken over by the guest could otherwise openat, linkat, mkdirat or
// connect through its ring. The ring therefore starts disabled, gets its completion eventfd, and is
// restricted (IORING_REGISTER_RESTRICTIONS) to the operations the block engine submits, without SQE flags
// and without further io_uring_register calls; only then is it enabled. The ring is made when the disk is
// opened, before the sandbox, and kept across device resets: the seccomp filter then refuses
// io_uring_setup, so a taken-over VMM cannot make a ring of its own without these restrictions.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>

#include "base/error.h"
#include "base/event_fd.h"

namespace kite {

// One queue of at most 256 descriptors: the ring never fills.
inline constexpr unsigned kBlockRingEntries = 256;

// The IORING_OP_* codes the block engine submits: readv, writev, write (zeroes), fsync, fallocate.
std::span<const uint8_t> block_ring_operations();

// Sets up `ring` with `entries` entries and completions signalled on `eventfd`, restricted as above. On
// failure the ring is already torn down; on success the caller owns it (io_uring_queue_exit).
Result<void> setup_block_ring(io_uring& ring, unsigned entries, int eventfd);

// A ring set up so, with its eventfd; torn down on destruction.
class BlockRing {
public:
    static Result<std::unique_ptr<BlockRing>> create(unsigned entries);
    ~BlockRing();
    BlockRing(const BlockRing&) = delete;
    BlockRing& operator=(const BlockRing&) = delete;

    io_uring& ring() { return ring_; }
    int eventfd() const { return event_.get(); }

private:
    BlockRing() = default;
    io_uring ring_{};
    bool ready_ = false;  // set up (and so to be torn down)
    EventFd event_;
};

}  // namespace kite
