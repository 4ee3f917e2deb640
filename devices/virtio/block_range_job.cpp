#include "devices/virtio/block_range_job.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "devices/virtio/block_io.h"

namespace kite {

RangeJob RangeJob::from(const BlockOp& op) {
    How how = op.kind == BlockOp::Kind::kDiscard ? How::kPunchHole : How::kZeroRange;
    return RangeJob{op.tag, op.offset, op.offset + op.length, how};
}

uint64_t RangeJob::slice() const {
    return std::min(end - offset, how == How::kWriteByHand ? kWriteSlice : kFallocateSlice);
}

std::optional<int64_t> RangeJob::advance(int64_t result) {
    if (result < 0) {
        // Filesystems without ZERO_RANGE (tmpfs, say) answer EOPNOTSUPP, some older ones EINVAL.
        if (how != How::kZeroRange || (result != -EOPNOTSUPP && result != -EINVAL)) return result;
        how = How::kWriteByHand;
        return std::nullopt;
    }
    if (how == How::kWriteByHand) {
        if (result == 0) return -EIO;  // a write that makes no progress would loop forever
        offset += std::min(uint64_t(result), end - offset);
    } else {
        offset += slice();
    }
    if (offset >= end) return 0;
    return std::nullopt;
}

int RangeJob::fallocate_mode() const {
    return (how == How::kPunchHole ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
}

std::span<const char> zero_buffer() {
    static const std::vector<char> zeroes(RangeJob::kWriteSlice);
    return zeroes;
}

int64_t run_slice_sync(int fd, const RangeJob& job) {
    for (;;) {
        int64_t r = job.how == RangeJob::How::kWriteByHand
                        ? ::pwrite(fd, zero_buffer().data(), job.slice(), off_t(job.offset))
                        : ::fallocate(fd, job.fallocate_mode(), off_t(job.offset), off_t(job.slice()));
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

}  // namespace kite
