#include "devices/virtio/block_ring.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace kite {

namespace {

// io_uring_register by hand: Debian 12's liburing 2.3 declares io_uring_register_restrictions and
// io_uring_enable_rings but its shared library does not export them. Returns -errno like liburing.
int ring_register(const io_uring& ring, unsigned opcode, const void* arg, unsigned count) {
    long r = ::syscall(__NR_io_uring_register, ring.ring_fd, opcode, arg, count);
    return r < 0 ? -errno : 0;
}

}  // namespace

std::span<const uint8_t> block_ring_operations() {
    // WRITE: write-zeroes slices on files that cannot zero a range (devices/virtio/block_range_job.h).
    static constexpr uint8_t kOperations[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_WRITE, IORING_OP_FSYNC,
                                              IORING_OP_FALLOCATE};
    return kOperations;
}

Result<void> setup_block_ring(io_uring& ring, unsigned entries, int eventfd) {
    // Restrictions can only be registered while the ring is disabled (Linux 5.10 and later; older
    // kernels refuse the flag and the block device falls back to synchronous I/O).
    if (int r = io_uring_queue_init(entries, &ring, IORING_SETUP_R_DISABLED); r < 0)
        return std::unexpected(errno_error("io_uring_queue_init", -r));
    auto give_up = [&ring](const char* what, int r) -> Result<void> {
        io_uring_queue_exit(&ring);
        return std::unexpected(errno_error(what, -r));
    };
    if (int r = io_uring_register_eventfd(&ring, eventfd); r < 0) return give_up("io_uring_register_eventfd", r);
    // Only SQE operations are listed: no register operation (buffers, files, personalities, ...) is
    // allowed once the ring runs, and no SQE flag (linking, fixed files, ...).
    std::vector<io_uring_restriction> allowed;
    for (uint8_t op : block_ring_operations()) {
        io_uring_restriction r{};
        r.opcode = IORING_RESTRICTION_SQE_OP;
        r.sqe_op = op;
        allowed.push_back(r);
    }
    if (int r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, allowed.data(), unsigned(allowed.size())); r < 0)
        return give_up("io_uring_register_restrictions", r);
    if (int r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, nullptr, 0); r < 0) return give_up("io_uring_enable_rings", r);
    return {};
}

Result<std::unique_ptr<BlockRing>> BlockRing::create(unsigned entries) {
    auto event = EventFd::create();
    if (!event) return std::unexpected(event.error());
    std::unique_ptr<BlockRing> ring(new BlockRing());
    ring->event_ = std::move(*event);
    if (auto r = setup_block_ring(ring->ring_, entries, ring->event_.get()); !r) return std::unexpected(r.error());
    ring->ready_ = true;
    return ring;
}

BlockRing::~BlockRing() {
    if (ready_) io_uring_queue_exit(&ring_);
}

}  // namespace kite
