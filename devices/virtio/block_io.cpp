#include "devices/virtio/block_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <cerrno>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

#include "base/event_fd.h"
#include "base/log_limit.h"
#include "base/fd.h"
#include "base/fd_watcher.h"
#include "devices/virtio/block_range_job.h"
#include "devices/virtio/block_ring.h"

namespace kite {

namespace {


int64_t vectored(int fd, const BlockOp& op, bool write) {
    std::vector<iovec> iov = op.iov;
    size_t first = 0;
    uint64_t done = 0;
    while (done < op.length && first < iov.size()) {
        ssize_t n = write ? ::pwritev(fd, iov.data() + first, int(std::min<size_t>(iov.size() - first, IOV_MAX)),
                                      off_t(op.offset + done))
                          : ::preadv(fd, iov.data() + first, int(std::min<size_t>(iov.size() - first, IOV_MAX)),
                                     off_t(op.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;  // end of file: the caller sees a short transfer
        done += uint64_t(n);
        // Step past what was transferred.
        uint64_t skip = uint64_t(n);
        while (first < iov.size() && skip >= iov[first].iov_len) skip -= iov[first++].iov_len;
        if (first < iov.size()) {
            iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + skip;
            iov[first].iov_len -= skip;
        }
    }
    return int64_t(done);
}

bool is_range(const BlockOp& op) {
    return op.kind == BlockOp::Kind::kDiscard || op.kind == BlockOp::Kind::kWriteZeroes;
}

class SyncEngine final : public BlockEngine {
public:
    SyncEngine(int fd, asio::io_context& io, Completion done) : fd_(fd), io_(io), done_(std::move(done)) {}
    void submit(BlockOp op) override {
        if (!is_range(op)) return done_(op.tag, run_block_op_sync(fd_, op));
        jobs_.push_back(RangeJob::from(op));
        schedule();
    }
    void cancel_all() override { jobs_.clear(); }  // they touch no guest memory
    void finish_all() override {
        while (!jobs_.empty()) step();
    }
    bool is_async() const override { return false; }

private:
    // One slice of the oldest job per event-loop pass (RangeJob); the handler does nothing once the
    // engine is gone.
    void schedule() {
        if (scheduled_ || jobs_.empty()) return;
        scheduled_ = true;
        asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
            if (alive.expired()) return;
            scheduled_ = false;
            step();
            schedule();
        });
    }
    void step() {
        RangeJob& job = jobs_.front();
        std::optional<int64_t> result = job.slice() == 0 ? 0 : job.advance(run_slice_sync(fd_, job));
        if (!result) return;
        uint64_t tag = job.tag;
        jobs_.pop_front();
        done_(tag, *result);
    }

    int fd_;
    asio::io_context& io_;
    Completion done_;
    std::deque<RangeJob> jobs_;
    bool scheduled_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>();
};

class UringEngine final : public BlockEngine {
public:
    UringEngine(int fd, Completion done, BlockRing& ring)
        : fd_(fd), done_(std::move(done)), ring_(ring.ring()), event_fd_(ring.eventfd()) {}
    // The ring stays with the device (a reset makes a new engine on it): only what is in flight goes.
    ~UringEngine() override { cancel_all(); }

    Result<void> init(asio::io_context& io) {
        auto watcher = FdWatcher::create(io, event_fd_, FdWatcher::Mode::kDrainEventfd, [this] { reap(); });
        if (!watcher) return std::unexpected(watcher.error());
        watcher_ = std::move(*watcher);
        return {};
    }
    void submit(BlockOp op) override {
        if (is_range(op)) {
            uint64_t tag = op.tag;
            jobs_.emplace(tag, RangeJob::from(op));
            return start_slice(tag);
        }
        // A full ring is never expected with one 256-entry queue.
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {
            done_(op.tag, run_block_op_sync(fd_, op));
            return;
        }
        // A new operation here must be added to block_ring_operations(), or the ring refuses it (EACCES).
        switch (op.kind) {
            case BlockOp::Kind::kRead:
                io_uring_prep_readv(sqe, fd_, op.iov.data(), unsigned(op.iov.size()), op.offset);
                break;
            case BlockOp::Kind::kWrite:
                io_uring_prep_writev(sqe, fd_, op.iov.data(), unsigned(op.iov.size()), op.offset);
                break;
            case BlockOp::Kind::kFlush: io_uring_prep_fsync(sqe, fd_, 0); break;
            case BlockOp::Kind::kDiscard:
            case BlockOp::Kind::kWriteZeroes: break;  // range jobs, above
        }
        uint64_t tag = op.tag;
        // The iovec array must stay alive until the kernel has consumed the SQE: keep the op.
        in_flight_.emplace(tag, std::move(op));
        io_uring_sqe_set_data64(sqe, tag);
        submit_ring();
    }

    void cancel_all() override {
        dropping_ = true;
        while (busy()) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
            take(cqe);
        }
        in_flight_.clear();
        jobs_.clear();
        dropping_ = false;
    }
    void finish_all() override {
        while (busy()) {
            io_uring_cqe* cqe = nullptr;
            if (int r = io_uring_wait_cqe(&ring_, &cqe); r < 0) {
                if (r == -EINTR) continue;
                log_.warn("virtio-blk: io_uring_wait_cqe: {}", -r);
                return;
            }
            take(cqe);
        }
    }
    bool is_async() const override { return true; }

private:
    // Device tags count up from 0; a range job's slice carries its tag with this bit set.
    static constexpr uint64_t kSliceBit = 1ull << 63;

    bool busy() const { return !in_flight_.empty() || !jobs_.empty(); }

    void submit_ring() {
        // On failure the SQE stays queued and goes in with the next successful submit.
        if (int r = io_uring_submit(&ring_); r < 0) log_.warn("virtio-blk: io_uring_submit: {}", -r);
    }

    void reap() {
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring_, &cqe) == 0) take(cqe);
    }

    // Consumes one completion: an op's, or a range job's slice (which starts the next slice).
    void take(io_uring_cqe* cqe) {
        uint64_t data = io_uring_cqe_get_data64(cqe);
        int64_t res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        if (data & kSliceBit) return slice_done(data & ~kSliceBit, res);
        if (in_flight_.erase(data) && !dropping_) done_(data, res);
    }

    // Puts the job's next slice in the ring: one slice in flight per job, so a job never holds the
    // ring, and cancel_all() never waits for more than one slice of it.
    void start_slice(uint64_t tag) {
        for (;;) {
            RangeJob& job = jobs_.at(tag);
            if (job.slice() == 0) return finish_job(tag, 0);
            if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
                if (job.how == RangeJob::How::kWriteByHand)
                    io_uring_prep_write(sqe, fd_, zero_buffer().data(), unsigned(job.slice()), job.offset);
                else
                    io_uring_prep_fallocate(sqe, fd_, job.fallocate_mode(), off_t(job.offset), off_t(job.slice()));
                io_uring_sqe_set_data64(sqe, tag | kSliceBit);
                return submit_ring();
            }
            // A full ring (not expected): this slice synchronously.
            if (auto result = job.advance(run_slice_sync(fd_, job))) return finish_job(tag, *result);
        }
    }
    void slice_done(uint64_t tag, int64_t res) {
        auto it = jobs_.find(tag);
        if (it == jobs_.end()) return;
        if (dropping_) {
            jobs_.erase(it);
            return;
        }
        if (auto result = it->second.advance(res)) return finish_job(tag, *result);
        start_slice(tag);
    }
    void finish_job(uint64_t tag, int64_t result) {
        jobs_.erase(tag);
        done_(tag, result);
    }

    int fd_;
    Completion done_;
    io_uring& ring_;
    int event_fd_;
    bool dropping_ = false;
    std::unique_ptr<FdWatcher> watcher_;
    std::unordered_map<uint64_t, BlockOp> in_flight_;
    std::unordered_map<uint64_t, RangeJob> jobs_;  // discard and write-zeroes, by tag
    LogLimit log_;
};

}  // namespace

int64_t run_block_op_sync(int fd, const BlockOp& op) {
    switch (op.kind) {
        case BlockOp::Kind::kRead: return vectored(fd, op, false);
        case BlockOp::Kind::kWrite: return vectored(fd, op, true);
        case BlockOp::Kind::kFlush: return ::fdatasync(fd) == 0 ? 0 : -errno;
        case BlockOp::Kind::kDiscard:
        case BlockOp::Kind::kWriteZeroes: {
            RangeJob job = RangeJob::from(op);
            for (;;) {
                if (job.slice() == 0) return 0;
                if (auto result = job.advance(run_slice_sync(fd, job))) return *result;
            }
        }
    }
    return -EINVAL;
}

Result<std::unique_ptr<BlockEngine>> BlockEngine::create(int fd, asio::io_context& io, Completion done,
                                                         BlockRing* ring) {
    if (ring) {
        auto engine = std::make_unique<UringEngine>(fd, done, *ring);
        auto r = engine->init(io);
        if (r) return std::unique_ptr<BlockEngine>(std::move(engine));
        spdlog::info("virtio-blk: io_uring unavailable ({}), using synchronous I/O", r.error().message);
    }
    return std::unique_ptr<BlockEngine>(std::make_unique<SyncEngine>(fd, io, std::move(done)));
}

}  // namespace kite
