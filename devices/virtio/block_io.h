// The I/O engines behind virtio-blk: io_uring on the device's ring (devices/virtio/block_ring.h;
// completions reaped on the VMM thread when the ring's eventfd fires) with a synchronous fallback
// (preadv/pwritev/fsync/fallocate on the VMM thread) for kernels or sandboxes without io_uring. Both run
// discard and write-zeroes in slices (devices/virtio/block_range_job.h): io_uring one slice in flight per
// request, the synchronous engine one slice per event-loop pass, so such a request never holds the VMM
// thread for long.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/error.h"

namespace asio {
class io_context;
}

namespace kite {

class BlockRing;

struct BlockOp {
    enum class Kind { kRead, kWrite, kFlush, kDiscard, kWriteZeroes };
    Kind kind = Kind::kRead;
    uint64_t offset = 0;      // bytes into the image
    uint64_t length = 0;      // bytes (data length for read/write)
    std::vector<iovec> iov;   // read/write only: host views of the guest buffers
    uint64_t tag = 0;         // handed back with the completion
};

class BlockEngine {
public:
    // tag, then bytes transferred (read/write), 0 (other ops) or -errno.
    using Completion = std::function<void(uint64_t tag, int64_t result)>;

    // io_uring on `ring` (block_ring.h; it must outlive the engine), else (nullptr) the synchronous engine.
    static Result<std::unique_ptr<BlockEngine>> create(int fd, asio::io_context& io, Completion done,
                                                       BlockRing* ring);
    virtual ~BlockEngine() = default;

    // Starts the op; the completion runs on the VMM thread, possibly before submit() returns.
    virtual void submit(BlockOp op) = 0;
    // Waits for every op in flight and drops their completions (device reset: the guest memory they
    // point at must not be touched by the kernel once the driver may reuse it).
    virtual void cancel_all() = 0;
    // Waits for every op in flight and runs their completions before returning (snapshot: afterwards
    // every request the device took from its queue is in the used ring).
    virtual void finish_all() = 0;
    virtual bool is_async() const = 0;
};

// Runs one op synchronously: the sync engine, and the io_uring engine when its ring is full.
int64_t run_block_op_sync(int fd, const BlockOp& op);

}  // namespace kite
