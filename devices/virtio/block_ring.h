// The io_uring ring virtio-blk submits to (block_io.cpp). io_uring operations run in the kernel, out of
// the seccomp filter's sight, so a VMM taken over by the guest could otherwise openat, linkat, mkdirat or
// connect through its ring. The ring therefore starts disabled, gets its completion eventfd, and is
// restricted (IORING_REGISTER_RESTRICTIONS) to the operations the block engine submits, without SQE flags
// and without further io_uring_register calls; only then is it enabled.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <span>

#include "base/error.h"

namespace kite {

// The IORING_OP_* codes the block engine submits: readv, writev, fsync, fallocate.
std::span<const uint8_t> block_ring_operations();

// Sets up `ring` with `entries` entries and completions signalled on `eventfd`, restricted as above. On
// failure the ring is already torn down; on success the caller owns it (io_uring_queue_exit).
Result<void> setup_block_ring(io_uring& ring, unsigned entries, int eventfd);

}  // namespace kite
