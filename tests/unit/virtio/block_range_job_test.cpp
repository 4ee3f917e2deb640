#include <doctest/doctest.h>

#include <cerrno>

#include "devices/virtio/block_io.h"
#include "devices/virtio/block_range_job.h"

using namespace kite;

namespace {

RangeJob job_for(BlockOp::Kind kind, uint64_t offset, uint64_t length) {
    BlockOp op;
    op.kind = kind;
    op.offset = offset;
    op.length = length;
    op.tag = 7;
    return RangeJob::from(op);
}

}  // namespace

TEST_CASE("range job: fallocate slices are bounded and cover the range") {
    auto job = job_for(BlockOp::Kind::kWriteZeroes, 4096, 2 * RangeJob::kFallocateSlice + 512);
    CHECK(job.tag == 7);
    CHECK(job.slice() == RangeJob::kFallocateSlice);
    CHECK(!job.advance(0));
    CHECK(!job.advance(0));
    CHECK(job.slice() == 512);
    CHECK(job.advance(0) == 0);
    CHECK(job.slice() == 0);
}

TEST_CASE("range job: write zeroes where ZERO_RANGE is refused goes on by hand, a slice at a time") {
    auto job = job_for(BlockOp::Kind::kWriteZeroes, 0, 3 * RangeJob::kWriteSlice);
    CHECK(!job.advance(-EOPNOTSUPP));
    CHECK(job.how == RangeJob::How::kWriteByHand);
    CHECK(job.slice() == RangeJob::kWriteSlice);
    CHECK(!job.advance(int64_t(RangeJob::kWriteSlice)));
    CHECK(!job.advance(100));  // a short write: the next slice starts where it ended
    CHECK(job.offset == RangeJob::kWriteSlice + 100);
    CHECK(job.advance(0) == -EIO);  // no progress
}

TEST_CASE("range job: a discard error is the request's result, with no fallback") {
    auto job = job_for(BlockOp::Kind::kDiscard, 0, 4096);
    CHECK(job.how == RangeJob::How::kPunchHole);
    CHECK(job.advance(-EOPNOTSUPP) == -EOPNOTSUPP);
}
