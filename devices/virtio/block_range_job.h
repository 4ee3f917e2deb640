// A discard or write-zeroes request cut into slices. One request may cover 1 GiB
// (BlockDevice::kMaxDiscardSectors) and a queue holds 256 of them; done in one go on the VMM thread, with
// the fallback of writing zeroes by hand, that stalled the event loop (SIGTERM included) for minutes
// (issue 12 item 11). The engines run one slice at a time per request: io_uring asynchronously, the
// synchronous engine one slice per event-loop pass, so other work runs between slices.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace kite {

struct BlockOp;

struct RangeJob {
    // What a slice does; kZeroRange becomes kWriteByHand where the file cannot FALLOC_FL_ZERO_RANGE.
    enum class How { kPunchHole, kZeroRange, kWriteByHand };
    // At most this much per fallocate slice, and per slice written by hand (zero_buffer()'s size).
    static constexpr uint64_t kFallocateSlice = 8 << 20;
    static constexpr uint64_t kWriteSlice = 1 << 20;

    uint64_t tag = 0;  // the op's
    uint64_t offset = 0;
    uint64_t end = 0;
    How how = How::kZeroRange;

    // A kDiscard or kWriteZeroes op.
    static RangeJob from(const BlockOp& op);
    // The next slice's length (0 once done).
    uint64_t slice() const;
    // Takes a slice's result (0 from fallocate, bytes from a write, or -errno): nullopt while the job goes
    // on, else the op's result (0, or -errno).
    std::optional<int64_t> advance(int64_t result);
    int fallocate_mode() const;  // kPunchHole and kZeroRange only
};

// kWriteSlice zeroes, for writing by hand (never written to).
std::span<const char> zero_buffer();

// Runs the job's next slice synchronously and returns its result, for advance().
int64_t run_slice_sync(int fd, const RangeJob& job);

}  // namespace kite
