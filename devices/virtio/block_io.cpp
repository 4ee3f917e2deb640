#include "devices/virtio/block_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <cerrno>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <unordered_map>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/fd_watcher.h"
#include "devices/virtio/block_ring.h"

namespace kite {

namespace {

// Zeroes a range by writing zeroes: for files whose filesystem cannot FALLOC_FL_ZERO_RANGE.
int64_t write_zeroes_by_hand(int fd, uint64_t offset, uint64_t length) {
    static const std::vector<char> zeroes(64 * 1024);
    while (length > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(length, zeroes.size()));
        ssize_t w = ::pwrite(fd, zeroes.data(), n, static_cast<off_t>(offset));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        offset += uint64_t(w);
        length -= uint64_t(w);
    }
    return 0;
}

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

class SyncEngine final : public BlockEngine {
public:
    SyncEngine(int fd, Completion done) : fd_(fd), done_(std::move(done)) {}
    void submit(BlockOp op) override { done_(op.tag, run_block_op_sync(fd_, op)); }
    void cancel_all() override {}
    void finish_all() override {}
    bool is_async() const override { return false; }

private:
    int fd_;
    Completion done_;
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
        // Write-zeroes goes the synchronous way: it falls back to writing zeroes by hand where the
        // filesystem cannot FALLOC_FL_ZERO_RANGE. A full ring is never expected with one 256-entry queue.
        io_uring_sqe* sqe = op.kind == BlockOp::Kind::kWriteZeroes ? nullptr : io_uring_get_sqe(&ring_);
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
                io_uring_prep_fallocate(sqe, fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(op.offset),
                                        off_t(op.length));
                break;
            case BlockOp::Kind::kWriteZeroes: break;  // handled above
        }
        uint64_t tag = op.tag;
        // The iovec array must stay alive until the kernel has consumed the SQE: keep the op.
        in_flight_.emplace(tag, std::move(op));
        io_uring_sqe_set_data64(sqe, tag);
        // On failure the SQE stays queued and goes in with the next successful submit.
        if (int r = io_uring_submit(&ring_); r < 0) spdlog::warn("virtio-blk: io_uring_submit: {}", -r);
    }

    void cancel_all() override {
        dropping_ = true;
        while (!in_flight_.empty()) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
            in_flight_.erase(io_uring_cqe_get_data64(cqe));
            io_uring_cqe_seen(&ring_, cqe);
        }
        in_flight_.clear();
        dropping_ = false;
    }
    void finish_all() override {
        while (!in_flight_.empty()) {
            io_uring_cqe* cqe = nullptr;
            if (int r = io_uring_wait_cqe(&ring_, &cqe); r < 0) {
                if (r == -EINTR) continue;
                spdlog::warn("virtio-blk: io_uring_wait_cqe: {}", -r);
                return;
            }
            uint64_t tag = io_uring_cqe_get_data64(cqe);
            int64_t res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            if (in_flight_.erase(tag)) done_(tag, res);
        }
    }
    bool is_async() const override { return true; }

private:
    void reap() {
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
            uint64_t tag = io_uring_cqe_get_data64(cqe);
            int64_t res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            if (in_flight_.erase(tag) && !dropping_) done_(tag, res);
        }
    }

    int fd_;
    Completion done_;
    io_uring& ring_;
    int event_fd_;
    bool dropping_ = false;
    std::unique_ptr<FdWatcher> watcher_;
    std::unordered_map<uint64_t, BlockOp> in_flight_;
};

}  // namespace

int64_t run_block_op_sync(int fd, const BlockOp& op) {
    switch (op.kind) {
        case BlockOp::Kind::kRead: return vectored(fd, op, false);
        case BlockOp::Kind::kWrite: return vectored(fd, op, true);
        case BlockOp::Kind::kFlush: return ::fdatasync(fd) == 0 ? 0 : -errno;
        case BlockOp::Kind::kDiscard:
            return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(op.offset), off_t(op.length)) == 0
                       ? 0
                       : -errno;
        case BlockOp::Kind::kWriteZeroes:
            if (::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off_t(op.offset), off_t(op.length)) == 0)
                return 0;
            if (errno != EOPNOTSUPP && errno != EINVAL) return -errno;
            return write_zeroes_by_hand(fd, op.offset, op.length);
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
    return std::unique_ptr<BlockEngine>(std::make_unique<SyncEngine>(fd, std::move(done)));
}

}  // namespace kite
